"""TransactionLayer: matching (RFC 3261 §17.1.3, §17.2.3, §9.2, RFC 2543 fallback), one deadline
heap for all transactions, output routed with each transaction's context, cleanup."""

from __future__ import annotations

import pytest

from sipcore import LocalProtocolError, SipParseError, SipRequest, SipResponse, make_response, parse_message
from sipcore.timers import SipTimers
from sipcore.transaction import (
    AckReceived,
    ClientTransaction,
    ResponseReceived,
    ServerTransaction,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimeout,
    TxKind,
    TxState,
)

DEST = ("192.0.2.10", 5060)


def request(
    method: str = "INVITE",
    *,
    branch: str | None = "z9hG4bKnashds8",
    sent_by: str = "pc33.atlanta.example.com",
    uri: str = "sip:bob@biloxi.example.com",
    call_id: str = "a84b4c76e66710",
    from_tag: str | None = "1928301774",
    to_tag: str | None = None,
    cseq: int = 314159,
    cseq_method: str | None = None,
) -> SipRequest:
    via = f"SIP/2.0/UDP {sent_by}" + (f";branch={branch}" if branch else "")
    text = (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: {via}\r\n"
        "Max-Forwards: 70\r\n"
        "To: Bob <sip:bob@biloxi.example.com>" + (f";tag={to_tag}" if to_tag else "") + "\r\n"
        "From: Alice <sip:alice@atlanta.example.com>" + (f";tag={from_tag}" if from_tag else "") + "\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} {cseq_method or method}\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    msg = parse_message(text.encode())
    assert isinstance(msg, SipRequest)
    return msg


def ack_for(invite: SipRequest, resp: SipResponse) -> SipRequest:
    """What an RFC 2543 or RFC 3261 UAC sends for a non-2xx final (§17.1.1.3)."""
    ack = SipRequest("ACK", invite.uri_text)
    ack.headers.add("Via", invite.headers.get("via") or "")
    ack.headers.add("To", resp.headers.get("to") or "")
    ack.headers.add("From", invite.headers.get("from") or "")
    ack.headers.add("Call-ID", invite.call_id)
    ack.headers.add("CSeq", f"{invite.cseq.seq} ACK")
    return parse_message(bytes(ack))  # type: ignore[return-value]


# -- client side: §17.1.3 ---------------------------------------------------------------------
def test_client_registers_and_sends_with_context() -> None:
    layer = TransactionLayer()
    inv = request()
    tx = layer.client(inv, 0.0, context=DEST)
    assert len(layer) == 1 and layer.client_transactions == [tx]
    assert layer.messages_to_send() == [(inv, DEST)]
    assert layer.messages_to_send() == []
    assert tx.messages_to_send() == [] and tx.events() == []  # output goes through the layer


def test_match_response_by_branch_and_cseq_method() -> None:
    layer = TransactionLayer()
    inv = request()
    itx = layer.client(inv, 0.0)
    ctx = layer.client(itx.cancel_request(), 1.0)
    assert layer.match_response(make_response(inv, 180)) is itx
    cancel_ok = make_response(itx.cancel_request(), 200)
    assert layer.match_response(cancel_ok) is ctx  # same branch, CSeq method CANCEL
    other = request(branch="z9hG4bKother")
    assert layer.match_response(make_response(other, 200)) is None
    bogus = make_response(inv, 200)
    bogus.headers.set("CSeq", f"{inv.cseq.seq} ACK")  # nobody answers an ACK
    assert layer.match_response(bogus) is None
    no_branch = make_response(inv, 200)
    no_branch.headers.set("Via", "SIP/2.0/UDP pc33.atlanta.example.com")
    assert layer.match_response(no_branch) is None


def test_match_response_raises_only_sip_parse_error_on_broken_headers() -> None:
    layer = TransactionLayer()
    inv = request()
    layer.client(inv, 0.0)
    resp = make_response(inv, 200)
    resp.headers.remove("via")
    with pytest.raises(SipParseError):
        layer.match_response(resp)


def test_duplicate_client_key_is_refused() -> None:
    layer = TransactionLayer()
    layer.client(request(), 0.0)
    with pytest.raises(LocalProtocolError):
        layer.client(request(), 0.1)


def test_client_events_and_cleanup_through_the_layer() -> None:
    layer = TransactionLayer()
    inv = request()
    tx = layer.client(inv, 0.0, context=DEST)
    layer.messages_to_send()
    busy = make_response(inv, 486, to_tag="t")
    found = layer.match_response(busy)
    assert found is tx
    found.receive_response(busy, 1.0)
    out = layer.messages_to_send()
    assert [(m.method, c) for m, c in out if isinstance(m, SipRequest)] == [("ACK", DEST)]
    assert layer.events() == [ResponseReceived(tx, busy)]
    assert layer.next_deadline() == 33.0
    layer.handle_timeout(33.0)
    assert layer.events() == [TransactionTerminated(tx)]
    assert len(layer) == 0 and layer.match_response(busy) is None and layer.next_deadline() is None


def test_one_heap_orders_many_transactions() -> None:
    layer = TransactionLayer()
    inv = layer.client(request(branch="z9hG4bK1"), 0.0)  # A at 0.5, B at 32
    opt = layer.client(request("OPTIONS", branch="z9hG4bK2"), 0.2)  # E at 0.7, F at 32.2
    srv = layer.server(request("INVITE", branch="z9hG4bK3", sent_by="far.example"), 0.3)  # trying at 0.5
    layer.messages_to_send()
    assert layer.next_deadline() == 0.5
    layer.handle_timeout(0.5)
    sent = layer.messages_to_send()
    assert [(type(m).__name__, getattr(m, "status_code", None)) for m, _ in sent] == [
        ("SipRequest", None), ("SipResponse", 100)]
    assert layer.next_deadline() == pytest.approx(0.7)
    layer.handle_timeout(0.7)
    assert [m for m, _ in layer.messages_to_send()] == [opt.request]
    # a transaction changing its own deadline (a response) re-keys the heap
    inv.receive_response(make_response(inv.request, 180), 0.8)
    assert layer.next_deadline() == pytest.approx(1.5 + 0.2)  # E of OPTIONS: 0.7 + 1.0
    layer.handle_timeout(31.9)
    layer.events()
    assert layer.next_deadline() == pytest.approx(32.2)  # F; the ICT in Proceeding has no timer
    layer.handle_timeout(100.0)
    events = layer.events()
    assert TransactionTimeout(opt, "F") in events and TransactionTerminated(opt) in events
    assert inv.state is TxState.PROCEEDING and srv.state is TxState.PROCEEDING
    assert len(layer) == 2 and layer.next_deadline() is None


def test_stale_heap_entries_do_not_fire_twice() -> None:
    layer = TransactionLayer()
    tx = layer.client(request("OPTIONS"), 0.0)
    layer.messages_to_send()
    resp = make_response(tx.request, 200)
    tx.receive_response(resp, 0.1)  # E/F replaced by K at 5.1
    layer.handle_timeout(0.5)  # the old E entry is stale
    assert layer.messages_to_send() == []
    assert len(layer._heap) == 1  # a stale entry is dropped, not re-armed as a duplicate
    assert layer.next_deadline() == pytest.approx(5.1)


# -- server side: §17.2.3 ---------------------------------------------------------------------
def test_match_request_retransmission_and_ack_go_to_the_ist() -> None:
    layer = TransactionLayer()
    inv = request()
    assert layer.match_request(inv) is None
    tx = layer.server(inv, 0.0, context=DEST)
    assert tx.key == ("z9hG4bKnashds8", "pc33.atlanta.example.com", None, "INVITE")
    assert layer.match_request(request()) is tx
    assert layer.match_request(request(sent_by="PC33.Atlanta.Example.COM")) is tx  # host case
    assert layer.match_request(request("ACK", to_tag="x")) is tx  # ACK counts as INVITE
    assert layer.match_request(request(sent_by="pc33.atlanta.example.com:5070")) is None
    assert layer.match_request(request(sent_by="evil.example.com")) is None
    assert layer.match_request(request(branch="z9hG4bKdifferent")) is None
    assert layer.match_request(request("CANCEL")) is None  # CANCEL is its own transaction
    with pytest.raises(LocalProtocolError):
        layer.server(request(), 0.1)  # the stack must match first
    with pytest.raises(LocalProtocolError):
        layer.server(request("ACK"), 0.1)


def test_full_ist_exchange_through_the_layer() -> None:
    layer = TransactionLayer()
    inv = request()
    tx = layer.server(inv, 0.0, context=DEST)
    busy = make_response(inv, 486, to_tag="b")
    tx.send_response(busy, 0.1)
    assert layer.messages_to_send() == [(busy, DEST)]
    retrans = request()
    found = layer.match_request(retrans)
    assert found is tx
    found.receive_request(retrans, 0.2)
    assert layer.messages_to_send() == [(busy, DEST)]
    ack = ack_for(inv, busy)
    found = layer.match_request(ack)
    assert found is tx
    found.receive_request(ack, 0.3)
    assert layer.events() == [AckReceived(tx, ack)] and tx.state is TxState.CONFIRMED
    layer.handle_timeout(0.3 + 5.0)
    assert layer.events() == [TransactionTerminated(tx)] and len(layer) == 0
    assert layer.match_request(ack) is None  # after Timer I an ACK is stray (the stack drops it)


def test_cancel_matching_per_9_2() -> None:
    layer = TransactionLayer()
    inv = request()
    itx = layer.server(inv, 0.0)
    opt = layer.server(request("OPTIONS", branch="z9hG4bKopt"), 0.0)
    cancel = request("CANCEL")
    assert layer.match_request(cancel) is None
    assert layer.find_invite_for_cancel(cancel) is itx
    ctx = layer.server(cancel, 0.1)
    assert ctx.kind is TxKind.NIST and layer.match_request(request("CANCEL")) is ctx  # retransmitted CANCEL
    assert layer.find_invite_for_cancel(request("CANCEL", branch="z9hG4bKunknown")) is None
    assert layer.find_invite_for_cancel(request("CANCEL", sent_by="elsewhere.example")) is None
    assert layer.find_invite_for_cancel(request("CANCEL", branch="z9hG4bKopt")) is None  # not an INVITE
    assert opt.kind is TxKind.NIST


def test_server_output_uses_context_and_trying_timer() -> None:
    layer = TransactionLayer(SipTimers(t1=0.1, t2=0.4, t4=0.5))
    inv = request()
    tx = layer.server(inv, 5.0, context="conn-7")
    assert layer.next_deadline() == pytest.approx(5.2)
    layer.handle_timeout(5.2)
    ((msg, ctx),) = layer.messages_to_send()
    assert isinstance(msg, SipResponse) and msg.status_code == 100 and ctx == "conn-7"
    immediate = layer.server(request(branch="z9hG4bKnow"), 5.3, trying_delay=0)
    assert [c for _, c in layer.messages_to_send()] == [None] and immediate.context is None
    assert tx.state is TxState.PROCEEDING


# -- RFC 2543 fallback (§17.2.3, no z9hG4bK cookie) --------------------------------------------------
@pytest.mark.parametrize("branch", [None, "1ee4b2ff"])
def test_rfc2543_invite_retransmission_matching(branch: str | None) -> None:
    layer = TransactionLayer()
    inv = request(branch=branch)
    tx = layer.server(inv, 0.0)
    assert tx.legacy
    assert layer.match_request(request(branch=branch)) is tx
    # Request-URI compared per §19.1.4: host case does not matter
    assert layer.match_request(request(branch=branch, uri="sip:bob@BILOXI.example.com")) is tx
    for changed in (
        {"uri": "sip:carol@biloxi.example.com"},
        {"call_id": "other"},
        {"from_tag": "9999"},
        {"to_tag": "zzz"},
        {"cseq": 314160},
        {"sent_by": "elsewhere.example.com"},
    ):
        assert layer.match_request(request(branch=branch, **changed)) is None, changed  # type: ignore[arg-type]


def test_rfc2543_ack_matches_on_the_to_tag_of_the_response_sent() -> None:
    layer = TransactionLayer()
    inv = request(branch=None)
    tx = layer.server(inv, 0.0)
    busy = make_response(inv, 486, to_tag="srv-tag")
    early_ack = ack_for(inv, busy)
    assert layer.match_request(early_ack) is None  # no final response sent yet
    tx.send_response(busy, 0.1)
    assert tx.to_tag == "srv-tag"
    ack = ack_for(inv, busy)
    assert layer.match_request(ack) is tx
    wrong = ack_for(inv, make_response(inv, 486, to_tag="another"))
    assert layer.match_request(wrong) is None
    other_call = ack_for(request(branch=None, call_id="zzz"), busy)
    assert layer.match_request(other_call) is None
    tx.receive_request(ack, 0.2)
    assert tx.state is TxState.CONFIRMED
    layer.handle_timeout(10.0)
    assert len(layer) == 0 and layer.match_request(ack) is None
    assert layer._legacy_acks == {}


def test_rfc2543_cancel_and_non_invite() -> None:
    layer = TransactionLayer()
    itx = layer.server(request(branch=None), 0.0)
    cancel = request("CANCEL", branch=None)
    assert layer.match_request(cancel) is None
    assert layer.find_invite_for_cancel(cancel) is itx
    assert layer.find_invite_for_cancel(request("CANCEL", branch=None, from_tag="x")) is None
    reg = layer.server(request("REGISTER", branch=None, cseq=7), 0.0)
    assert layer.match_request(request("REGISTER", branch=None, cseq=7)) is reg
    assert layer.match_request(request("REGISTER", branch=None, cseq=8)) is None


def test_rfc3261_and_rfc2543_keys_never_collide() -> None:
    layer = TransactionLayer()
    new = layer.server(request(branch="z9hG4bKaaa"), 0.0)
    old = layer.server(request(branch="aaa"), 0.0)
    assert new is not old
    assert layer.match_request(request(branch="z9hG4bKaaa")) is new
    assert layer.match_request(request(branch="aaa")) is old


# -- client and server layers talking directly -------------------------------------------------------
def test_two_layers_invite_486_ack_without_a_network() -> None:
    alice, bob = TransactionLayer(), TransactionLayer()
    ict = alice.client(request(), 0.0, context="to-bob")
    ((wire, _),) = alice.messages_to_send()
    invite = parse_message(bytes(wire))
    assert isinstance(invite, SipRequest) and bob.match_request(invite) is None
    ist = bob.server(invite, 0.01, context="to-alice")
    ist.send_response(make_response(invite, 180, to_tag="bt"), 0.02)
    ist.send_response(make_response(invite, 486, to_tag="bt"), 0.5)
    for out, _ in bob.messages_to_send():
        resp = parse_message(bytes(out))
        assert isinstance(resp, SipResponse)
        tx = alice.match_response(resp)
        assert tx is ict
        tx.receive_response(resp, 0.6)
    assert [e.response.status_code for e in alice.events() if isinstance(e, ResponseReceived)] == [180, 486]
    ((ack_msg, ctx),) = alice.messages_to_send()
    ack = parse_message(bytes(ack_msg))
    assert isinstance(ack, SipRequest) and ctx == "to-bob"
    assert bob.match_request(ack) is ist  # the ICT's ACK uses the INVITE's branch and sent-by
    ist.receive_request(ack, 0.7)
    assert bob.events() == [AckReceived(ist, ack)]
    alice.handle_timeout(0.6 + 32)
    bob.handle_timeout(0.7 + 5)
    assert len(alice) == len(bob) == 0
    assert isinstance(ict, ClientTransaction) and isinstance(ist, ServerTransaction)


def test_many_transactions_match_by_dict_lookup() -> None:
    layer = TransactionLayer()
    txs = [layer.server(request(branch=f"z9hG4bK{i}"), 0.0) for i in range(2000)]
    assert all(layer.match_request(request(branch=f"z9hG4bK{i}")) is tx for i, tx in enumerate(txs))
    layer.handle_timeout(0.2)
    assert len(layer.messages_to_send()) == 2000  # one 100 Trying each
    assert layer.next_deadline() is None
