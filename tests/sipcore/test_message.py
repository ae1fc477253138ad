"""Message parsing, typed header views, modification, serialisation and make_response."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipcore import Headers, SipParseError, SipRequest, SipResponse, make_response, parse_message, parse_uri

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKnashds8;rport\r\n"
    b"v: SIP/2.0/TCP proxy.example.com:5061 ;branch=z9hG4bK77, SIP/2.0/UDP [2001:db8::9]:5070;received=192.0.2.1\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b"From: \"Alice \\\"A\\\"\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com;transport=udp>;expires=60, sip:a2@h;q=0.5\r\n"
    b"Subject: folded\r\n  over two lines\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"v=0\n"
)


def test_parse_request_and_typed_views() -> None:
    msg = parse_message(INVITE, strict=True)
    assert isinstance(msg, SipRequest)
    assert msg.method == "INVITE" and str(msg.uri) == "sip:bob@biloxi.example.com"
    vias = msg.vias
    assert [v.transport for v in vias] == ["UDP", "TCP", "UDP"]
    assert vias[0].branch == "z9hG4bKnashds8" and vias[0].has_param("rport") and vias[0].rport is None
    assert vias[1].port == 5061 and vias[2].host == "[2001:db8::9]" and vias[2].received == "192.0.2.1"
    assert msg.top_via.branch == "z9hG4bKnashds8"
    assert msg.from_.display_name == 'Alice "A"' and msg.from_.tag == "1928301774"
    assert msg.to.tag is None and msg.to.display_name == "Bob"
    assert msg.call_id == "a84b4c76e66710"
    assert (msg.cseq.seq, msg.cseq.method) == (314159, "INVITE")
    assert msg.max_forwards == 70
    assert [c.expires for c in msg.contacts] == [60, None]
    assert msg.contacts[1].q == 0.5 and not msg.contacts[1].bracketed
    assert msg.headers.get("subject") == "folded over two lines"
    assert msg.content_type is not None and msg.content_type.mime == "application/sdp"
    assert msg.body == b"v=0\n"
    assert bytes(msg) == INVITE


def test_compact_and_long_names_are_the_same_header() -> None:
    msg = parse_message(INVITE)
    assert msg.headers.count("via") == 2 and msg.headers.count("V") == 2
    assert len(msg.headers.values("Via")) == 3
    assert "content-length" in msg.headers and "l" in msg.headers


def test_modification_keeps_untouched_lines_and_fixes_content_length() -> None:
    msg = parse_message(INVITE)
    msg.headers.add_first("Via", "SIP/2.0/UDP p1.example.com;branch=z9hG4bKp1")
    msg.body = b"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n"
    out = bytes(msg)
    assert b"Subject: folded\r\n  over two lines\r\n" in out  # folded raw text kept
    assert out.startswith(b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\nVia: SIP/2.0/UDP p1.example.com")
    again = parse_message(out, strict=True)
    assert again.top_via.host == "p1.example.com"
    assert again.body == msg.body and again.headers.get("content-length") == str(len(msg.body))
    # the typed cache follows the change
    assert msg.top_via.host == "p1.example.com"


def test_response_round_trip_and_properties() -> None:
    data = b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:b@h>;tag=9\r\n" \
           b"From: <sip:a@h>;tag=1\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    msg = parse_message(data, strict=True)
    assert isinstance(msg, SipResponse)
    assert msg.status_code == 180 and msg.reason == "Ringing" and msg.is_provisional
    assert bytes(msg) == data
    msg.reason = "Ringing Loudly"
    assert bytes(msg).startswith(b"SIP/2.0 180 Ringing Loudly\r\n")


def test_make_response_follows_rfc3261_8_2_6() -> None:
    req = parse_message(INVITE)
    assert isinstance(req, SipRequest)
    resp = make_response(req, 180, to_tag="abc")
    assert resp.reason == "Ringing"
    assert [v.branch for v in resp.vias] == [v.branch for v in req.vias]
    assert resp.to.tag == "abc" and resp.from_.tag == "1928301774"
    assert resp.call_id == req.call_id and resp.cseq == req.cseq
    assert make_response(req, 100, to_tag="abc").to.tag is None
    parsed = parse_message(bytes(make_response(req, 200, to_tag="t", body=b"x", content_type="text/plain")))
    assert parsed.body == b"x" and parsed.headers.get("content-type") == "text/plain"


def test_build_a_request_from_scratch() -> None:
    h = Headers([("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx"), ("From", "<sip:a@h>;tag=1"),
                 ("To", "<sip:b@h>"), ("Call-ID", "c"), ("CSeq", "1 OPTIONS"), ("Max-Forwards", "70")])
    req = SipRequest("OPTIONS", parse_uri("sip:b@h"), h)
    out = bytes(req)
    assert out.endswith(b"Content-Length: 0\r\n\r\n")
    assert parse_message(out, strict=True).cseq.method == "OPTIONS"


def test_content_length_rules() -> None:
    head = b"OPTIONS sip:a@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCall-ID: c\r\n"
    # no Content-Length: rest of the datagram is the body (UDP)
    assert parse_message(head + b"\r\nabc").body == b"abc"
    # trailing bytes after the body are ignored
    m = parse_message(head + b"Content-Length: 2\r\n\r\nabcdef")
    assert m.body == b"ab" and bytes(m).endswith(b"\r\n\r\nab")
    for bad in (b"-1", b"x", b"99"):
        with pytest.raises(SipParseError) as info:
            parse_message(head + b"Content-Length: " + bad + b"\r\n\r\nabc")
        assert info.value.status_hint == 400
    with pytest.raises(SipParseError):
        parse_message(head + b"Content-Length: 1\r\nl: 2\r\n\r\nabc")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\r\n\r\n",
        b"INVITE sip:a@h SIP/2.0",
        b"INVITE  sip:a@h SIP/2.0\r\n\r\n",
        b"INVITE sip:a@h SIP/2.0 \r\n\r\n",
        b"INVITE sip:a@h\r\n\r\n",
        b"INVITE sip:a@h HTTP/1.1\r\n\r\n",
        b"SIP/2.0 20 OK\r\n\r\n",
        b"SIP/2.0 800 OK\r\n\r\n",
        b"SIP/2.0 200 OK\r\nno colon here\r\n\r\n",
        b"SIP/2.0 200 OK\r\n folded first\r\n\r\n",
        b"SIP/2.0 200 OK\r\nBad Name: x\r\n\r\n",
    ],
)
def test_framing_errors(data: bytes) -> None:
    with pytest.raises(SipParseError):
        parse_message(data)


def test_too_large_is_513() -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(b"x" * 2000, max_size=1000)
    assert info.value.status_hint == 513


def test_lazy_errors_surface_on_access() -> None:
    data = b"OPTIONS sip:a@h SIP/2.0\r\nVia: garbage\r\nCSeq: x\r\nCall-ID: c\r\nContent-Length: 0\r\n\r\n"
    msg = parse_message(data)
    assert msg.call_id == "c"
    with pytest.raises(SipParseError):
        _ = msg.top_via
    with pytest.raises(SipParseError):
        _ = msg.cseq
    with pytest.raises(SipParseError):
        parse_message(data, strict=True)


def test_lf_only_messages_are_tolerated() -> None:
    data = b"OPTIONS sip:a@h SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nCall-ID: c\nContent-Length: 0\n\n"
    msg = parse_message(data)
    assert msg.call_id == "c" and bytes(msg) == data


_token = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~", min_size=1,
                 max_size=12)
_value = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=30)


@settings(max_examples=200, deadline=None)
@given(method=_token, user=_token, host=st.from_regex(r"[a-z][a-z0-9]{0,10}(\.[a-z]{2,5}){0,2}", fullmatch=True),
       headers=st.lists(st.tuples(st.sampled_from(["X-A", "Subject", "x-b", "Organization"]), _value), max_size=6),
       body=st.binary(max_size=64))
def test_built_messages_round_trip(method: str, user: str, host: str, headers: list[tuple[str, str]],
                                   body: bytes) -> None:
    h = Headers([("Via", f"SIP/2.0/UDP {host};branch=z9hG4bK{user}"), ("Call-ID", user),
                 ("CSeq", f"1 {method}"), *headers])
    req = SipRequest(method, f"sip:{user}@{host}", h, body)
    data = bytes(req)
    msg = parse_message(data, strict=True)
    assert isinstance(msg, SipRequest)
    assert msg.method == method and msg.body == body and bytes(msg) == data
    assert [(n, v) for n, v in msg.headers][: len(h)] == list(h)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_parse_errors(data: bytes) -> None:
    try:
        msg = parse_message(data, strict=True)
    except SipParseError:
        return
    bytes(msg)


@settings(max_examples=300, deadline=None)
@given(pos=st.integers(min_value=0, max_value=len(INVITE) - 1), byte=st.integers(0, 255))
def test_mutated_messages_raise_only_parse_errors(pos: int, byte: int) -> None:
    data = bytearray(INVITE)
    data[pos] = byte
    try:
        msg = parse_message(bytes(data), strict=True)
    except SipParseError:
        return
    raw = bytes(data)
    assert bytes(msg) == raw[len(raw) - len(raw.lstrip(b"\r\n")) : msg.consumed]


def test_multipart_parts_from_the_siprec_capture() -> None:
    from pathlib import Path

    data = (Path(__file__).parent.parent / "vectors" / "sip" / "real" / "siprec-multipart-invite.sip").read_bytes()
    msg = parse_message(data, strict=True)
    parts = msg.parts()
    assert [p.content_type for p in parts] == ["application/sdp", "application/rs-metadata+xml"]
    assert parts[0].body.startswith(b"v=0")
    assert bytes(msg) == data[: msg.consumed]


def test_make_response_generates_a_to_tag_from_the_injected_rng() -> None:
    req = parse_message(INVITE)
    assert isinstance(req, SipRequest)
    resp = make_response(req, 200, rng=lambda n: b"\x01" * n)
    assert resp.to.tag == "01" * 8


def _record_routed(method: str = "INVITE", to_tag: str | None = None) -> SipRequest:
    """An INVITE (or another method) as the callee receives it through two record-routing proxies."""
    to = "Bob <sip:bob@biloxi.example.com>" + (f";tag={to_tag}" if to_tag else "")
    req = SipRequest(method, "sip:bob@192.0.2.4", Headers([
        ("Via", "SIP/2.0/UDP ss2.biloxi.example.com;branch=z9hG4bK721e4"),
        ("Via", "SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKnashds8"),
        ("Record-Route", "<sip:ss2.biloxi.example.com;lr>"),
        ("Record-Route", "<sip:ss1.atlanta.example.com;lr;ftag=x>;unknown-param=1"),
        ("To", to), ("From", "Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl"),
        ("Call-ID", "3848276298220188511@atlanta.example.com"), ("CSeq", f"2 {method}")]))
    return req


@pytest.mark.parametrize("status", [180, 183, 200, 202])
@pytest.mark.parametrize("method", ["INVITE", "SUBSCRIBE", "REFER"])
def test_dialog_creating_responses_copy_record_route_rfc3261_12_1_1(method: str, status: int) -> None:
    req = _record_routed(method)
    resp = make_response(req, status, to_tag="314159")
    # every value, parameters included (known or not), in the request's order
    assert resp.headers.get_all("record-route") == ["<sip:ss2.biloxi.example.com;lr>",
                                                    "<sip:ss1.atlanta.example.com;lr;ftag=x>;unknown-param=1"]
    assert [str(r.uri) for r in parse_message(bytes(resp)).record_routes] == [
        "sip:ss2.biloxi.example.com;lr", "sip:ss1.atlanta.example.com;lr;ftag=x"]


def test_responses_that_establish_no_dialog_carry_no_record_route() -> None:
    assert "record-route" not in make_response(_record_routed(), 100).headers
    assert "record-route" not in make_response(_record_routed(), 486, to_tag="t").headers
    assert "record-route" not in make_response(_record_routed("MESSAGE"), 200, to_tag="t").headers
    assert "record-route" not in make_response(_record_routed("OPTIONS"), 200, to_tag="t").headers
    # in a dialog the route set is fixed (§12.2): a re-INVITE's 2xx does not echo it
    assert "record-route" not in make_response(_record_routed(to_tag="314159"), 200).headers


def test_record_route_given_by_the_caller_replaces_the_copy() -> None:
    resp = make_response(_record_routed(), 200, to_tag="t", headers=[("Record-Route", "<sip:only.example.com;lr>")])
    assert resp.headers.get_all("record-route") == ["<sip:only.example.com;lr>"]


def test_dispatch_fields_agree_with_the_typed_views() -> None:
    from pathlib import Path

    for path in sorted((Path(__file__).parent.parent / "vectors" / "sip").glob("*/*.sip")):
        try:
            msg = parse_message(path.read_bytes(), strict=True)
        except SipParseError:
            continue
        if "via" in msg.headers:
            assert msg.branch == msg.top_via.branch, path.name
        if "from" in msg.headers:
            assert msg.from_tag == msg.from_.tag, path.name
        if "to" in msg.headers:
            assert msg.to_tag == msg.to.tag, path.name
