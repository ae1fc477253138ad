"""Dialogs (RFC 3261 §12, §13.2.2.4, §15): RFC 3665 call flow, real captures, routing and CSeq rules."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sipcore import LocalProtocolError, SipRequest, SipResponse, make_response, parse_message
from sipcore.dialog import (
    Dialog,
    DialogError,
    DialogId,
    DialogSet,
    DialogState,
    dialog_id_for_request,
    dialog_id_for_response,
)
from sipcore.errors import RemoteProtocolError

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "sip_dialog"

SDP_ALICE = (b"v=0\r\no=alice 2890844526 2890844526 IN IP4 client.atlanta.example.com\r\ns=-\r\n"
             b"c=IN IP4 192.0.2.101\r\nt=0 0\r\nm=audio 49172 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
SDP_BOB = (b"v=0\r\no=bob 2890844527 2890844527 IN IP4 client.biloxi.example.com\r\ns=-\r\n"
           b"c=IN IP4 192.0.2.201\r\nt=0 0\r\nm=audio 3456 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


def wire(head: str, body: bytes = b"") -> bytes:
    """Header lines (one per line, no Content-Length) + body -> the message bytes."""
    lines = [line.strip() for line in head.strip().splitlines()]
    return ("\r\n".join([*lines, f"Content-Length: {len(body)}"]) + "\r\n\r\n").encode() + body


# RFC 3665 §3.2 "Session Establishment Through Two Proxies" (Alice -> Proxy 1 -> Proxy 2 -> Bob).
# Header values as in the RFC; bodies are the RFC's SDP with CRLF line ends.
F4_INVITE_ALICE = wire("""
    INVITE sip:bob@biloxi.example.com SIP/2.0
    Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9
    Max-Forwards: 70
    From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl
    To: Bob <sip:bob@biloxi.example.com>
    Call-ID: 3848276298220188511@atlanta.example.com
    CSeq: 2 INVITE
    Proxy-Authorization: Digest username="alice", realm="atlanta.example.com", nonce="wf84f1ceczx41ae6cbe5aea9c8e88d359", opaque="", uri="sip:bob@biloxi.example.com", response="42ce3cef44b22f50c6a6071bc8"
    Contact: <sip:alice@client.atlanta.example.com;transport=tcp>
    Content-Type: application/sdp
""", SDP_ALICE)

F6_INVITE_AT_BOB = wire("""
    INVITE sip:bob@client.biloxi.example.com SIP/2.0
    Via: SIP/2.0/TCP ss2.biloxi.example.com:5060;branch=z9hG4bK721e4.1
    Via: SIP/2.0/TCP ss1.atlanta.example.com:5060;branch=z9hG4bK2d4790.1;received=192.0.2.111
    Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9;received=192.0.2.101
    Max-Forwards: 68
    Record-Route: <sip:ss2.biloxi.example.com;lr>
    Record-Route: <sip:ss1.atlanta.example.com;lr>
    From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl
    To: Bob <sip:bob@biloxi.example.com>
    Call-ID: 3848276298220188511@atlanta.example.com
    CSeq: 2 INVITE
    Contact: <sip:alice@client.atlanta.example.com;transport=tcp>
    Content-Type: application/sdp
""", SDP_ALICE)

F8_180_FROM_BOB = wire("""
    SIP/2.0 180 Ringing
    Via: SIP/2.0/TCP ss2.biloxi.example.com:5060;branch=z9hG4bK721e4.1;received=192.0.2.222
    Via: SIP/2.0/TCP ss1.atlanta.example.com:5060;branch=z9hG4bK2d4790.1;received=192.0.2.111
    Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9;received=192.0.2.101
    Record-Route: <sip:ss2.biloxi.example.com;lr>
    Record-Route: <sip:ss1.atlanta.example.com;lr>
    From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl
    To: Bob <sip:bob@biloxi.example.com>;tag=314159
    Call-ID: 3848276298220188511@atlanta.example.com
    CSeq: 2 INVITE
    Contact: <sip:bob@client.biloxi.example.com;transport=tcp>
""")

F11_180_AT_ALICE = wire("""
    SIP/2.0 180 Ringing
    Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9;received=192.0.2.101
    Record-Route: <sip:ss2.biloxi.example.com;lr>
    Record-Route: <sip:ss1.atlanta.example.com;lr>
    From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl
    To: Bob <sip:bob@biloxi.example.com>;tag=314159
    Call-ID: 3848276298220188511@atlanta.example.com
    CSeq: 2 INVITE
    Contact: <sip:bob@client.biloxi.example.com;transport=tcp>
""")

F15_200_AT_ALICE = wire("""
    SIP/2.0 200 OK
    Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9;received=192.0.2.101
    Record-Route: <sip:ss2.biloxi.example.com;lr>
    Record-Route: <sip:ss1.atlanta.example.com;lr>
    From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl
    To: Bob <sip:bob@biloxi.example.com>;tag=314159
    Call-ID: 3848276298220188511@atlanta.example.com
    CSeq: 2 INVITE
    Contact: <sip:bob@client.biloxi.example.com;transport=tcp>
    Content-Type: application/sdp
""", SDP_BOB)

F16_ACK_FROM_ALICE = wire("""
    ACK sip:bob@client.biloxi.example.com;transport=tcp SIP/2.0
    Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74b76
    Max-Forwards: 70
    Route: <sip:ss1.atlanta.example.com;lr>, <sip:ss2.biloxi.example.com;lr>
    From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl
    To: Bob <sip:bob@biloxi.example.com>;tag=314159
    Call-ID: 3848276298220188511@atlanta.example.com
    CSeq: 2 ACK
""")

F19_BYE_FROM_BOB = wire("""
    BYE sip:alice@client.atlanta.example.com;transport=tcp SIP/2.0
    Via: SIP/2.0/TCP client.biloxi.example.com:5060;branch=z9hG4bK721e4
    Max-Forwards: 70
    Route: <sip:ss2.biloxi.example.com;lr>, <sip:ss1.atlanta.example.com;lr>
    From: Bob <sip:bob@biloxi.example.com>;tag=314159
    To: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl
    Call-ID: 3848276298220188511@atlanta.example.com
    CSeq: 1 BYE
""")

CALL_ID = "3848276298220188511@atlanta.example.com"


def req(data: bytes) -> SipRequest:
    msg = parse_message(data, strict=True)
    assert isinstance(msg, SipRequest)
    return msg


def resp(data: bytes) -> SipResponse:
    msg = parse_message(data, strict=True)
    assert isinstance(msg, SipResponse)
    return msg


def load(name: str) -> bytes:
    return (VECTORS / name).read_bytes()


def routing(r: SipRequest) -> tuple[str, list[str], str, str, str, str]:
    """What §12.2.1.1 decides: Request-URI, Route entries, To, From, Call-ID, CSeq."""
    h = r.headers
    return (r.uri_text, h.values("route"), h.get("to") or "", h.get("from") or "", r.call_id, str(r.cseq))


def fixed_rng(value: bytes) -> Callable[[int], bytes]:
    return lambda n: (value * n)[:n]


# -- RFC 3665 §3.2 ------------------------------------------------------------------------------------
def test_rfc3665_uac_dialog_early_then_confirmed_then_ack() -> None:
    invite = req(F4_INVITE_ALICE)
    dialog = Dialog.from_uac(invite, resp(F11_180_AT_ALICE))
    assert dialog.state is DialogState.EARLY and dialog.is_uac
    assert dialog.id == DialogId(CALL_ID, "9fxced76sl", "314159")
    assert [str(r) for r in dialog.route_set] == ["<sip:ss1.atlanta.example.com;lr>", "<sip:ss2.biloxi.example.com;lr>"]
    assert str(dialog.remote_target) == "sip:bob@client.biloxi.example.com;transport=tcp"
    assert (dialog.local_seq, dialog.remote_seq, dialog.secure) == (2, None, False)
    assert str(dialog.local_uri) == "sip:alice@atlanta.example.com" and str(dialog.remote_uri) == "sip:bob@biloxi.example.com"

    dialog.update_from_response(resp(F15_200_AT_ALICE))
    assert dialog.state is DialogState.CONFIRMED
    ack = dialog.create_ack(2, via="SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74b76")
    expected = req(F16_ACK_FROM_ALICE)
    assert routing(ack) == routing(expected)
    assert ack.top_via.branch == "z9hG4bK74b76" and ack.max_forwards == 70
    assert dialog.local_seq == 2  # ACK does not consume a CSeq number
    bye = dialog.create_request("BYE")
    assert str(bye.cseq) == "3 BYE" and "via" not in bye.headers and bye.uri_text == ack.uri_text
    assert dialog.create_request("INFO").cseq.seq == 4


def test_rfc3665_uas_dialog_and_bye_from_the_callee() -> None:
    invite = req(F6_INVITE_AT_BOB)
    ringing = resp(F8_180_FROM_BOB)
    bob = Dialog.from_uas(invite, ringing, rng=fixed_rng(b"\x00\x00\x00\x01"))
    assert bob.state is DialogState.EARLY and not bob.is_uac
    assert bob.id == DialogId(CALL_ID, "314159", "9fxced76sl")
    assert [str(r) for r in bob.route_set] == ["<sip:ss2.biloxi.example.com;lr>", "<sip:ss1.atlanta.example.com;lr>"]
    assert str(bob.remote_target) == "sip:alice@client.atlanta.example.com;transport=tcp"
    assert (bob.local_seq, bob.remote_seq) == (None, 2)
    assert bob.local_target == "<sip:bob@client.biloxi.example.com;transport=tcp>"
    with pytest.raises(LocalProtocolError, match="early"):
        bob.create_request("BYE")
    bob.confirm()  # Bob sent the 200
    ack = req(F16_ACK_FROM_ALICE)
    assert dialog_id_for_request(ack) == bob.id
    bob.receive_request(ack)
    assert bob.remote_seq == 2

    bye = bob.create_request("BYE", branch="z9hG4bK721e4", via_host="client.biloxi.example.com:5060",
                             via_transport="tcp")
    expected = req(F19_BYE_FROM_BOB)
    assert routing(bye) == routing(expected)
    assert bye.headers.get("via") == expected.headers.get("via")

    # Alice receives it: it is her dialog seen from the other side
    alice = Dialog.from_uac(req(F4_INVITE_ALICE), resp(F15_200_AT_ALICE))
    assert alice.id == DialogId(bob.id.call_id, bob.id.remote_tag, bob.id.local_tag)
    alice.receive_request(expected)
    assert alice.state is DialogState.TERMINATED and alice.remote_seq == 1
    ok = make_response(bye, 200)
    bob.update_from_response(ok)
    assert bob.state is DialogState.TERMINATED


# -- real captures -------------------------------------------------------------------------------------
def test_jssip_uac_dialog_reproduces_the_captured_ack_and_bye() -> None:
    invite = req(load("jssip_invite_webrtc.ws.sip"))
    dialog = Dialog.from_uac(invite, resp(load("kamailio_180_rr.ws.sip")))
    assert dialog.state is DialogState.EARLY
    dialog.update_from_response(resp(load("kamailio_200_invite_rr.ws.sip")))
    assert dialog.state is DialogState.CONFIRMED
    ack, bye = req(load("jssip_ack.ws.sip")), req(load("jssip_bye.ws.sip"))
    assert routing(dialog.create_ack(invite.cseq.seq, max_forwards=69)) == routing(ack)
    assert routing(dialog.create_request("BYE", max_forwards=69)) == routing(bye)
    dialog.update_from_response(resp(load("kamailio_200_bye.ws.sip")))
    assert dialog.state is DialogState.TERMINATED


def test_baresip_uac_dialog_reproduces_the_captured_ack_and_bye() -> None:
    invite = req(load("baresip_invite_plain.udp.sip"))
    dialog = Dialog.from_uac(invite, resp(load("baresip_200_invite_plain.udp.sip")))
    # the INVITE's pre-loaded outbound-proxy Route is not part of the dialog: Record-Route is
    assert [str(r) for r in dialog.route_set] == ["<sip:127.0.0.1:5070;lr=on>"]
    ack, bye = req(load("baresip_ack.udp.sip")), req(load("baresip_bye.udp.sip"))
    assert routing(dialog.create_ack(45049)) == routing(ack)
    assert routing(dialog.create_request("BYE")) == routing(bye)


def test_baresip_uas_dialog_from_a_double_record_routed_invite() -> None:
    invite = req(load("kamailio_invite_relayed_to_baresip.udp.sip"))
    dave = Dialog.from_uas(invite, resp(load("baresip_180_ringing.udp.sip")))
    assert dave.state is DialogState.EARLY
    assert [str(r) for r in dave.route_set] == ["<sip:127.0.0.1:5070;r2=on;lr=on>",
                                                "<sip:127.0.0.1:8080;transport=ws;r2=on;lr=on>"]
    assert str(dave.remote_target) == "sip:jc6gf6ss@qumuet7krahk.invalid;alias=127.0.0.1~49192~5;transport=ws;ob"
    dave.confirm()
    jssip = Dialog.from_uac(req(load("jssip_invite_webrtc.ws.sip")), resp(load("kamailio_200_invite_rr.ws.sip")))
    assert dave.id == DialogId(jssip.call_id, jssip.remote_tag, jssip.local_tag)
    # the caller's ACK and BYE (as it sent them) belong to this dialog
    dave.receive_request(req(load("jssip_ack.ws.sip")))
    dave.receive_request(req(load("jssip_bye.ws.sip")))
    assert dave.state is DialogState.TERMINATED and dave.remote_seq == 8782
    with pytest.raises(DialogError) as info:
        dave.receive_request(req(load("jssip_bye.ws.sip")))
    assert info.value.status_hint == 481


# -- routing --------------------------------------------------------------------------------------------
def _uac_with_routes(*record_routes: str, contact: str = "<sip:bob@192.0.2.4>") -> Dialog:
    invite = req(wire("""
        INVITE sip:bob@biloxi.example.com SIP/2.0
        Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa
        From: <sip:alice@atlanta.example.com>;tag=a1
        To: <sip:bob@biloxi.example.com>
        Call-ID: c1
        CSeq: 10 INVITE
        Contact: <sip:alice@192.0.2.1>
        Max-Forwards: 70
    """))
    extra = [("Record-Route", rr) for rr in record_routes] + [("Contact", contact)]
    return Dialog.from_uac(invite, make_response(invite, 200, to_tag="b1", headers=extra))


def test_loose_routing() -> None:
    d = _uac_with_routes("<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>")
    r = d.create_request("INFO")
    assert r.uri_text == "sip:bob@192.0.2.4"
    assert r.headers.values("route") == ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]


def test_strict_routing_puts_the_router_in_the_request_uri() -> None:
    # RFC 3261 §12.2.1.1 example: route set <sip:p1> (strict), <sip:p2;lr>; target sip:bob@...
    d = _uac_with_routes("<sip:p2.example.com;lr>", "<sip:p1.example.com;method=INVITE;transport=udp>")
    r = d.create_request("INFO")
    assert r.uri_text == "sip:p1.example.com;transport=udp"  # method= is not allowed in a Request-URI
    assert r.headers.values("route") == ["<sip:p2.example.com;lr>", "<sip:bob@192.0.2.4>"]
    assert d.create_ack(10).uri_text == "sip:p1.example.com;transport=udp"


def test_no_route_set() -> None:
    d = _uac_with_routes()
    r = d.create_request("OPTIONS", headers=[("Accept", "application/sdp")])
    assert r.uri_text == "sip:bob@192.0.2.4" and "route" not in r.headers
    assert r.headers.get("accept") == "application/sdp"


def test_route_set_is_recomputed_from_the_2xx() -> None:
    invite = req(F4_INVITE_ALICE)
    early = resp(F11_180_AT_ALICE)
    dialog = Dialog.from_uac(invite, early)
    ok = resp(F15_200_AT_ALICE)
    ok.headers.remove("record-route")
    ok.headers.add("Record-Route", "<sip:only.example.com;lr>")
    dialog.update_from_response(ok)
    assert [str(r) for r in dialog.route_set] == ["<sip:only.example.com;lr>"]


# -- CSeq rules -------------------------------------------------------------------------------------------
def _in_dialog_request(method: str, cseq: int, *, to_tag: str = "314159", contact: str | None = None) -> SipRequest:
    head = f"""
        {method} sip:alice@client.atlanta.example.com SIP/2.0
        Via: SIP/2.0/TCP client.biloxi.example.com:5060;branch=z9hG4bK{method}{cseq}
        From: Bob <sip:bob@biloxi.example.com>;tag={to_tag}
        To: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl
        Call-ID: {CALL_ID}
        CSeq: {cseq} {method}
        Max-Forwards: 70
    """ + (f"Contact: {contact}\n" if contact else "")
    return req(wire(head))


def test_remote_cseq_must_not_go_backwards() -> None:
    alice = Dialog.from_uac(req(F4_INVITE_ALICE), resp(F15_200_AT_ALICE))
    alice.receive_request(_in_dialog_request("INFO", 100))
    assert alice.remote_seq == 100
    alice.receive_request(_in_dialog_request("INFO", 100))  # equal: a retransmission the transaction absorbs
    with pytest.raises(DialogError) as info:
        alice.receive_request(_in_dialog_request("INFO", 99))
    assert info.value.status_hint == 500 and isinstance(info.value, RemoteProtocolError)
    assert alice.remote_seq == 100
    alice.receive_request(_in_dialog_request("ACK", 5))  # ACK/CANCEL carry the INVITE's number
    with pytest.raises(DialogError) as other:
        alice.receive_request(_in_dialog_request("INFO", 101, to_tag="someone-else"))
    assert other.value.status_hint == 481


def test_uas_initial_local_cseq_is_random_and_below_2_31() -> None:
    bob = Dialog.from_uas(req(F6_INVITE_AT_BOB), resp(F8_180_FROM_BOB), rng=fixed_rng(b"\xff"))
    bob.confirm()
    first = bob.create_request("INFO")
    assert first.cseq.seq == 2**31 - 1
    assert bob.create_request("INFO").cseq.seq == 2**31


def test_local_cseq_exhaustion() -> None:
    d = _uac_with_routes()
    d.local_seq = 2**32 - 1
    with pytest.raises(LocalProtocolError):
        d.create_request("INFO")


# -- target refresh -----------------------------------------------------------------------------------------
def test_target_refresh_by_request_and_by_2xx() -> None:
    alice = Dialog.from_uac(req(F4_INVITE_ALICE), resp(F15_200_AT_ALICE))
    alice.receive_request(_in_dialog_request("INFO", 1, contact="<sip:bob@elsewhere.example.com>"))
    assert str(alice.remote_target) == "sip:bob@client.biloxi.example.com;transport=tcp"  # INFO refreshes nothing
    alice.receive_request(_in_dialog_request("INVITE", 2, contact="<sip:bob@moved.example.com>"))
    assert str(alice.remote_target) == "sip:bob@moved.example.com"
    alice.receive_request(_in_dialog_request("UPDATE", 3))  # no Contact: target unchanged
    assert str(alice.remote_target) == "sip:bob@moved.example.com"

    reinvite = alice.create_request("INVITE", body=SDP_ALICE, content_type="application/sdp")
    assert reinvite.headers.get("contact") == "<sip:alice@client.atlanta.example.com;transport=tcp>"
    assert reinvite.uri_text == "sip:bob@moved.example.com" and reinvite.body == SDP_ALICE
    ok = make_response(reinvite, 200, headers=[("Contact", "<sip:bob@third.example.com>")])
    alice.update_from_response(ok)
    assert str(alice.remote_target) == "sip:bob@third.example.com"
    info = alice.create_request("INFO", contact="<sip:ignored@x>")
    alice.update_from_response(make_response(info, 200, headers=[("Contact", "<sip:bob@not-a-refresh>")]))
    assert str(alice.remote_target) == "sip:bob@third.example.com"
    with pytest.raises(DialogError):
        alice.receive_request(_in_dialog_request("INVITE", 9, contact="*"))


# -- early dialogs and forking ----------------------------------------------------------------------------------
def _forked_180(invite: SipRequest, tag: str, contact: str) -> SipResponse:
    return make_response(invite, 180, to_tag=tag, headers=[("Contact", contact)])


def test_forking_creates_one_dialog_per_to_tag() -> None:
    invite = req(F4_INVITE_ALICE)
    dialogs = DialogSet()
    a = dialogs.process_uac_response(invite, _forked_180(invite, "desk", "<sip:bob@desk.example.com>"))
    b = dialogs.process_uac_response(invite, _forked_180(invite, "mobile", "<sip:bob@mobile.example.com>"))
    assert dialogs.process_uac_response(invite, make_response(invite, 100)) is None
    assert a is not None and b is not None and a is not b and len(dialogs) == 2
    assert {d.remote_tag for d in dialogs} == {"desk", "mobile"}
    assert all(d.state is DialogState.EARLY for d in dialogs)
    again = _forked_180(invite, "desk", "<sip:bob@desk2.example.com>")
    assert dialogs.process_uac_response(invite, again) is a
    assert str(a.remote_target) == "sip:bob@desk2.example.com"
    ok = make_response(invite, 200, to_tag="mobile", headers=[("Contact", "<sip:bob@mobile.example.com>")])
    assert dialogs.match_response(ok) is b
    assert dialogs.process_uac_response(invite, ok) is b
    assert b.state is DialogState.CONFIRMED and a.state is DialogState.EARLY
    bye = b.create_request("BYE")
    assert dialogs.match_request(_in_dialog_request("BYE", 7, to_tag="mobile")) is b
    assert dialogs.match_request(bye) is None  # our own request: the tags are the other way round
    assert DialogId(CALL_ID, "9fxced76sl", "mobile") in dialogs
    with pytest.raises(LocalProtocolError):
        dialogs.add(b)


def test_failure_response_ends_every_early_dialog() -> None:
    invite = req(F4_INVITE_ALICE)
    dialogs = DialogSet()
    a = dialogs.process_uac_response(invite, _forked_180(invite, "desk", "<sip:bob@desk.example.com>"))
    b = dialogs.process_uac_response(invite, _forked_180(invite, "mobile", "<sip:bob@mobile.example.com>"))
    assert dialogs.process_uac_response(invite, make_response(invite, 486, to_tag="desk")) is a
    assert a is not None and b is not None
    assert a.state is DialogState.TERMINATED and b.state is DialogState.TERMINATED
    assert dialogs.prune() == [a, b] and len(dialogs) == 0


def test_481_or_408_to_an_in_dialog_request_ends_the_dialog() -> None:
    for code in (481, 408):
        d = _uac_with_routes()
        d.update_from_response(make_response(d.create_request("INFO"), 404))
        assert d.state is DialogState.CONFIRMED
        d.update_from_response(make_response(d.create_request("INFO"), code))
        assert d.state is DialogState.TERMINATED
        with pytest.raises(LocalProtocolError, match="terminated"):
            d.create_request("INFO")


# -- construction errors and helpers ---------------------------------------------------------------------------
def test_what_does_not_create_a_dialog() -> None:
    invite = req(F4_INVITE_ALICE)
    with pytest.raises(LocalProtocolError):
        Dialog.from_uac(invite, make_response(invite, 100))
    with pytest.raises(LocalProtocolError):
        Dialog.from_uac(invite, make_response(invite, 180))  # no To tag
    with pytest.raises(LocalProtocolError):
        Dialog.from_uac(invite, make_response(invite, 486, to_tag="x"))
    other = req(F4_INVITE_ALICE)
    other.headers.set("CSeq", "3 INVITE")
    with pytest.raises(LocalProtocolError):
        Dialog.from_uac(other, resp(F15_200_AT_ALICE))
    no_contact = make_response(invite, 200, to_tag="x")
    with pytest.raises(DialogError):
        Dialog.from_uac(invite, no_contact)
    early = Dialog.from_uac(invite, make_response(invite, 183, to_tag="x"))  # early, no Contact yet
    assert str(early.remote_target) == "sip:bob@biloxi.example.com"
    bare = req(F6_INVITE_AT_BOB)
    bare.headers.remove("contact")
    with pytest.raises(DialogError) as info:
        Dialog.from_uas(bare, make_response(bare, 180, to_tag="t"))
    assert info.value.status_hint == 400


def test_request_factory_rules() -> None:
    invite = req(F4_INVITE_ALICE)
    early = Dialog.from_uac(invite, resp(F11_180_AT_ALICE))
    with pytest.raises(LocalProtocolError, match="re-INVITE"):
        early.create_request("INVITE")
    assert early.create_request("BYE").method == "BYE"  # the caller may BYE an early dialog (§15)
    assert early.create_request("PRACK").cseq.seq == 4
    for method in ("ACK", "CANCEL"):
        with pytest.raises(LocalProtocolError):
            early.create_request(method)
    with pytest.raises(LocalProtocolError, match="content_type"):
        early.create_request("UPDATE", body=b"v=0")
    with pytest.raises(LocalProtocolError, match="via_host"):
        early.create_request("INFO", branch="z9hG4bKx")
    with pytest.raises(LocalProtocolError, match="magic cookie"):
        early.create_request("INFO", branch="abc", via_host="h")
    noc = _uac_with_routes()
    noc.local_target = None
    with pytest.raises(LocalProtocolError, match="Contact"):
        noc.create_request("UPDATE")
    assert "contact" not in noc.create_request("NOTIFY").headers


def test_secure_flag_and_ids() -> None:
    invite = req(F4_INVITE_ALICE)
    invite.uri = "sips:bob@biloxi.example.com"
    assert Dialog.from_uac(invite, resp(F15_200_AT_ALICE)).secure
    assert not Dialog.from_uac(req(F4_INVITE_ALICE), resp(F15_200_AT_ALICE)).secure
    assert dialog_id_for_request(req(F4_INVITE_ALICE)) is None
    assert dialog_id_for_response(resp(F15_200_AT_ALICE)) == DialogId(CALL_ID, "9fxced76sl", "314159")
    assert dialog_id_for_response(make_response(req(F4_INVITE_ALICE), 100)) is None
    d = Dialog.from_uac(req(F4_INVITE_ALICE), resp(F15_200_AT_ALICE))
    assert "UAC CONFIRMED" in repr(d)
    with pytest.raises(LocalProtocolError):
        d.update_from_response(make_response(req(F4_INVITE_ALICE), 200, to_tag="not-bob"))


def test_rfc2543_peer_without_from_tag() -> None:
    invite = req(F6_INVITE_AT_BOB)
    invite.headers.set("From", "Alice <sip:alice@atlanta.example.com>")
    bob = Dialog.from_uas(invite, make_response(invite, 200, to_tag="314159",
                                               headers=[("Contact", "<sip:bob@client.biloxi.example.com>")]))
    assert bob.remote_tag == "" and bob.id == DialogId(CALL_ID, "314159", "")
    bye = bob.create_request("BYE")
    assert bye.headers.get("to") == "Alice <sip:alice@atlanta.example.com>"


# -- hostile input: only typed outcomes --------------------------------------------------------------
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["CSeq", "To", "From", "Call-ID", "Contact", "Record-Route"]),
       st.text(alphabet="<>;:=@\"*, sipabc0123456789tag.²", max_size=40),
       st.sampled_from(["INVITE", "UPDATE", "INFO", "BYE", "ACK"]))
def test_hostile_in_dialog_requests_raise_only_remote_protocol_errors(name: str, value: str, method: str) -> None:
    alice = Dialog.from_uac(req(F4_INVITE_ALICE), resp(F15_200_AT_ALICE))
    request = _in_dialog_request(method, 50, contact="<sip:bob@h>")
    request.headers.set(name, value)
    try:
        alice.receive_request(request)
    except RemoteProtocolError:
        return
    try:
        alice.update_from_response(make_response(request, 200, headers=[(name, value)]))
    except (RemoteProtocolError, LocalProtocolError):
        return
