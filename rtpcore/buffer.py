"""Bounds-checked byte buffer for binary protocol codecs (aioquic style).

Reads past the end raise :class:`~rtpcore.errors.BufferReadError` (a
``RemoteProtocolError``: the peer sent a truncated message); writes past the capacity
raise :class:`~rtpcore.errors.BufferWriteError`. Every ``pull_*`` has a ``push_*`` twin.
"""

from __future__ import annotations

import struct

from .errors import BufferReadError, BufferWriteError

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_U64 = struct.Struct("!Q")


class Buffer:
    """A cursor over ``data`` (reading) or a growable/capped byte array (writing)."""

    __slots__ = ("_data", "_pos", "_capacity")

    def __init__(self, data: bytes | bytearray | memoryview | None = None, *, capacity: int | None = None) -> None:
        self._data = bytearray(data) if data is not None else bytearray()
        self._pos = 0
        self._capacity = capacity

    # -- state -------------------------------------------------------------------
    @property
    def data(self) -> bytes:
        """Everything written so far (or the whole input when reading)."""
        return bytes(self._data)

    def data_slice(self, start: int, end: int) -> bytes:
        if start < 0 or end > len(self._data) or start > end:
            raise BufferReadError("slice out of bounds")
        return bytes(self._data[start:end])

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int) -> None:
        if pos < 0 or pos > len(self._data):
            raise BufferReadError("seek out of bounds")
        self._pos = pos

    def eof(self) -> bool:
        return self._pos >= len(self._data)

    def remaining(self) -> int:
        return len(self._data) - self._pos

    def __len__(self) -> int:
        return len(self._data)

    # -- reading -----------------------------------------------------------------
    def _take(self, n: int) -> int:
        if n < 0 or self._pos + n > len(self._data):
            raise BufferReadError(f"need {n} bytes at offset {self._pos}, have {len(self._data) - self._pos}")
        pos = self._pos
        self._pos += n
        return pos

    def pull_bytes(self, n: int) -> bytes:
        pos = self._take(n)
        return bytes(self._data[pos : pos + n])

    def pull_uint8(self) -> int:
        pos = self._take(1)
        return self._data[pos]

    def pull_uint16(self) -> int:
        pos = self._take(2)
        return int(_U16.unpack_from(self._data, pos)[0])

    def pull_uint24(self) -> int:
        pos = self._take(3)
        d = self._data
        return (d[pos] << 16) | (d[pos + 1] << 8) | d[pos + 2]

    def pull_uint32(self) -> int:
        pos = self._take(4)
        return int(_U32.unpack_from(self._data, pos)[0])

    def pull_uint48(self) -> int:
        pos = self._take(6)
        return int.from_bytes(self._data[pos : pos + 6], "big")

    def pull_uint64(self) -> int:
        pos = self._take(8)
        return int(_U64.unpack_from(self._data, pos)[0])

    def pull_vector(self, length_bytes: int) -> bytes:
        """A TLS-style opaque vector: ``length_bytes``-byte length prefix then the data."""
        n = int.from_bytes(self.pull_bytes(length_bytes), "big")
        return self.pull_bytes(n)

    # -- writing -----------------------------------------------------------------
    def _grow(self, n: int) -> None:
        if self._capacity is not None and len(self._data) + n > self._capacity:
            raise BufferWriteError(f"write of {n} bytes exceeds capacity {self._capacity}")

    def push_bytes(self, value: bytes | bytearray | memoryview) -> None:
        self._grow(len(value))
        self._data += value
        self._pos = len(self._data)

    def push_uint8(self, value: int) -> None:
        self.push_bytes(bytes((value & 0xFF,)))

    def push_uint16(self, value: int) -> None:
        self.push_bytes(_U16.pack(value & 0xFFFF))

    def push_uint24(self, value: int) -> None:
        self.push_bytes((value & 0xFFFFFF).to_bytes(3, "big"))

    def push_uint32(self, value: int) -> None:
        self.push_bytes(_U32.pack(value & 0xFFFFFFFF))

    def push_uint48(self, value: int) -> None:
        self.push_bytes((value & 0xFFFFFFFFFFFF).to_bytes(6, "big"))

    def push_uint64(self, value: int) -> None:
        self.push_bytes(_U64.pack(value & 0xFFFFFFFFFFFFFFFF))

    def push_vector(self, length_bytes: int, value: bytes) -> None:
        if len(value) >= 1 << (8 * length_bytes):
            raise BufferWriteError(f"vector of {len(value)} bytes does not fit a {length_bytes}-byte length")
        self.push_bytes(len(value).to_bytes(length_bytes, "big"))
        self.push_bytes(value)
