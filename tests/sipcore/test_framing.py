"""Stream framing: split at any byte, keepalives, bounds."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipcore import SipParseError, parse_message
from sipcore.framing import PING, PONG, StreamFramer

MSG1 = (b"OPTIONS sip:a@h SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nCall-ID: c1\r\n"
        b"Content-Length: 5\r\n\r\nhello")
MSG2 = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nCall-ID: c2\r\nl: 0\r\n\r\n"
STREAM = b"\r\n\r\n" + MSG1 + MSG2 + b"\r\n"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(STREAM)), max_size=8))
def test_any_split_gives_the_same_messages(cuts: list[int]) -> None:
    framer = StreamFramer()
    out: list[object] = []
    # a ping split in the middle is two pongs by definition (RFC 5626 §4.4.1 has no way to tell)
    points = sorted(set(cuts) - {2}) + [len(STREAM)]
    prev = 0
    for p in points:
        out.extend(framer.feed(STREAM[prev:p]))
        prev = p
    assert out == [PING, MSG1, MSG2, PONG]
    assert framer.buffered == 0
    assert parse_message(MSG1).body == b"hello"


def test_missing_content_length_is_an_error_on_streams() -> None:
    with pytest.raises(SipParseError):
        list(StreamFramer().feed(b"OPTIONS sip:a@h SIP/2.0\r\nCall-ID: c\r\n\r\n"))


def test_bounds() -> None:
    with pytest.raises(SipParseError) as info:
        list(StreamFramer(max_header=100).feed(b"X" * 200))
    assert info.value.status_hint == 513
    with pytest.raises(SipParseError) as info:
        list(StreamFramer(max_body=10).feed(b"SIP/2.0 200 OK\r\nContent-Length: 11\r\n\r\n"))
    assert info.value.status_hint == 413
    with pytest.raises(SipParseError):
        list(StreamFramer().feed(b"SIP/2.0 200 OK\r\nContent-Length: 1\r\nl: 2\r\n\r\n"))
