"""NSS key log lines for Wireshark (the SSLKEYLOGFILE format).

For TLS/DTLS 1.2 one line per handshake is enough to decrypt a capture::

    CLIENT_RANDOM <64 hex: client_random> <96 hex: master_secret>

:class:`~rtpcore.dtls.connection.DtlsConnection` calls a ``keylog`` callback with that line
(no newline) when the master secret is known; :class:`KeyLogWriter` appends lines to a
text stream the caller opened (point Wireshark's "(Pre)-Master-Secret log filename" at it).
Key material is secret: only enable this for debugging.
"""

from __future__ import annotations

from typing import Protocol


def client_random_line(client_random: bytes, master_secret: bytes) -> str:
    if len(client_random) != 32 or len(master_secret) != 48:
        raise ValueError("CLIENT_RANDOM needs a 32-octet random and a 48-octet master secret")
    return f"CLIENT_RANDOM {client_random.hex()} {master_secret.hex()}"


def parse_keylog_line(line: str) -> tuple[str, bytes, bytes] | None:
    """(label, client_random, secret) of one key log line; None for comments/blank lines."""
    parts = line.split()
    if len(parts) != 3 or line.lstrip().startswith("#"):
        return None
    try:
        return parts[0], bytes.fromhex(parts[1]), bytes.fromhex(parts[2])
    except ValueError:
        return None


class _TextSink(Protocol):
    def write(self, s: str, /) -> int: ...

    def flush(self) -> None: ...


class KeyLogWriter:
    """Callable that appends key log lines to an open text stream and flushes each one."""

    __slots__ = ("_stream",)

    def __init__(self, stream: _TextSink) -> None:
        self._stream = stream

    def __call__(self, line: str) -> None:
        self._stream.write(line + "\n")
        self._stream.flush()
