"""Framing SIP messages on stream transports (TCP, TLS) and keepalives (RFC 3261 §18.3, RFC 5626 §4.4.1).

On a stream, Content-Length is mandatory and is the only message boundary. The framer
buffers bytes, finds the end of the header block, reads Content-Length (compact ``l``
too) and yields whole messages. It is bounded: a header block larger than ``max_header``
or a body larger than ``max_body`` raises :class:`SipParseError` (413/513), after which
the connection must be closed (there is no way to resynchronise a stream).

CRLF keepalives (RFC 5626 §3.5.1): a double CRLF ("ping") between messages is answered with
a single CRLF ("pong"); a lone CRLF between messages is a pong and is reported as such (so a
ping split after its first CRLF reads as two pongs: the stream carries no way to tell).

::

    framer = StreamFramer()
    for item in framer.feed(chunk):
        if item is PING: send(b"\\r\\n")
        elif item is PONG: keepalive.ok()
        else: handle(item)            # bytes of exactly one message, for parse_message()
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final

from .errors import SipParseError

__all__ = ["PING", "PONG", "StreamFramer"]


class _Marker:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


PING: Final = _Marker("PING")
"""A CRLFCRLF keepalive was received; answer with a single CRLF."""
PONG: Final = _Marker("PONG")
"""A single CRLF keepalive answer was received."""

_CL_RE = re.compile(rb"(?im)^(?:content-length|l)[ \t]*:[ \t]*([^\r\n]*)")


class StreamFramer:
    """Incremental splitter of a SIP byte stream into messages."""

    def __init__(self, *, max_header: int = 64 * 1024, max_body: int = 1 << 20) -> None:
        self._buf = bytearray()
        self.max_header = max_header
        self.max_body = max_body

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> Iterator[bytes | _Marker]:
        """Add bytes; yield complete messages and keepalive markers in order."""
        buf = self._buf
        buf += data
        while buf:
            if buf[0] in (13, 10):
                if buf.startswith(b"\r\n\r\n"):
                    del buf[:4]
                    yield PING
                    continue
                if buf == b"\r\n" or (buf.startswith(b"\r\n") and buf[2] not in (13,)):
                    del buf[:2]
                    yield PONG
                    continue
                if len(buf) < 4 and b"\r\n\r\n".startswith(bytes(buf)):
                    return  # wait: could be the start of a ping
                del buf[:1]  # stray CR or LF
                continue
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > self.max_header:
                    raise SipParseError(f"header block exceeds {self.max_header} bytes", 513)
                return
            if end > self.max_header:
                raise SipParseError(f"header block exceeds {self.max_header} bytes", 513)
            head = bytes(buf[:end])
            values = _CL_RE.findall(head)
            if not values:
                raise SipParseError("Content-Length is mandatory on stream transports", 400,
                                    header="content-length")
            lengths = {v.strip() for v in values}
            if len(lengths) != 1:
                raise SipParseError("conflicting Content-Length values", 400, header="content-length")
            text = lengths.pop()
            if not text.isdigit():
                raise SipParseError(f"malformed Content-Length {text!r}", 400, header="content-length")
            clen = int(text)
            if clen > self.max_body:
                raise SipParseError(f"body of {clen} bytes exceeds {self.max_body}", 413, header="content-length")
            total = end + 4 + clen
            if len(buf) < total:
                return
            msg = bytes(buf[:total])
            del buf[:total]
            yield msg
