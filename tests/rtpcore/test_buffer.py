from __future__ import annotations

import pytest

from rtpcore.buffer import Buffer
from rtpcore.errors import BufferReadError, BufferWriteError, RemoteProtocolError


def test_round_trip_all_widths() -> None:
    b = Buffer()
    b.push_uint8(0xAB)
    b.push_uint16(0xBEEF)
    b.push_uint24(0x123456)
    b.push_uint32(0xDEADBEEF)
    b.push_uint48(0x0102030405FF)
    b.push_uint64(2**64 - 2)
    b.push_vector(2, b"hello")
    r = Buffer(b.data)
    assert r.pull_uint8() == 0xAB
    assert r.pull_uint16() == 0xBEEF
    assert r.pull_uint24() == 0x123456
    assert r.pull_uint32() == 0xDEADBEEF
    assert r.pull_uint48() == 0x0102030405FF
    assert r.pull_uint64() == 2**64 - 2
    assert r.pull_vector(2) == b"hello"
    assert r.eof()


def test_truncated_read_is_remote_error() -> None:
    r = Buffer(b"\x00\x05abc")
    with pytest.raises(BufferReadError) as ei:
        r.pull_vector(2)
    assert isinstance(ei.value, RemoteProtocolError)


def test_capacity_is_enforced() -> None:
    b = Buffer(capacity=3)
    b.push_uint16(1)
    with pytest.raises(BufferWriteError):
        b.push_uint16(2)
    with pytest.raises(BufferWriteError):
        Buffer().push_vector(1, b"x" * 256)
