"""RFC 3261 §17 / RFC 6026 transaction state machines, one transition at a time, fake clock.

Times are plain floats passed in; retransmission schedules are checked to the exact
instant. Section numbers in the test names point at the rule being checked.
"""

from __future__ import annotations

import dataclasses

import pytest

import sipcore.transaction as txmod
from sipcore import LocalProtocolError, SipRequest, SipResponse, make_response, parse_message
from sipcore.timers import SipTimers
from sipcore.transaction import (
    AckReceived,
    ClientTransaction,
    ResponseReceived,
    ServerTransaction,
    TransactionTerminated,
    TransactionTimeout,
    TransportFailed,
    TxInput,
    TxKind,
    TxState,
    format_transitions,
    transaction_method,
)

BRANCH = "z9hG4bK74bf9"


def request(method: str = "INVITE", *, branch: str | None = BRANCH, extra: str = "", body: bytes = b"",
            cseq: int = 314159, to_tag: str | None = None) -> SipRequest:
    via = "SIP/2.0/UDP pc33.atlanta.example.com;rport" + (f";branch={branch}" if branch else "")
    to = "Bob <sip:bob@biloxi.example.com>" + (f";tag={to_tag}" if to_tag else "")
    text = (
        f"{method} sip:bob@biloxi.example.com SIP/2.0\r\n"
        f"Via: {via}\r\n"
        "Max-Forwards: 70\r\n"
        f"To: {to}\r\n"
        "From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n"
        "Call-ID: 3848276298220188511@atlanta.example.com\r\n"
        f"CSeq: {cseq} {method}\r\n"
        "Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
        f"{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    msg = parse_message(text)
    assert isinstance(msg, SipRequest)
    return msg


def response(req: SipRequest, code: int, to_tag: str | None = "8321234356") -> SipResponse:
    return make_response(req, code, to_tag=to_tag if code != 100 else None)


def drain(tx: ClientTransaction | ServerTransaction) -> tuple[list[bytes], list[object]]:
    return [bytes(m) for m in tx.messages_to_send()], list(tx.events())


def run_until(tx: ClientTransaction | ServerTransaction, until: float) -> list[tuple[float, list[bytes]]]:
    """Fire every deadline up to ``until``; return (time, messages sent then) for each firing."""
    fired = []
    while (d := tx.next_deadline()) is not None and d <= until:
        tx.handle_timeout(d)
        fired.append((d, [bytes(m) for m in tx.messages_to_send()]))
    return fired


def kinds(events: list[object]) -> list[str]:
    return [type(e).__name__ for e in events]


# -- timers (RFC 3261 Table 4, RFC 6026) --------------------------------------------------------
def test_timer_defaults_follow_table_4() -> None:
    t = SipTimers()
    assert (t.t1, t.t2, t.t4) == (0.5, 4.0, 5.0)
    assert t.timer_a == t.timer_e == t.timer_g == 0.5
    assert t.timer_b == t.timer_f == t.timer_h == t.timer_l == t.timer_m == 32.0
    assert (t.timer_d(False), t.timer_d(True)) == (32.0, 0.0)
    assert (t.timer_i(False), t.timer_i(True)) == (5.0, 0.0)
    assert (t.timer_j(False), t.timer_j(True)) == (32.0, 0.0)
    assert (t.timer_k(False), t.timer_k(True)) == (5.0, 0.0)


def test_timers_scale_with_t1_and_timer_d_keeps_its_floor() -> None:
    small = SipTimers(t1=0.1, t2=0.8, t4=1.0)
    assert small.timer_b == pytest.approx(6.4) and small.timer_j(False) == pytest.approx(6.4)
    assert small.timer_k(False) == 1.0 and small.timer_i(False) == 1.0
    assert small.timer_d(False) == 32.0  # "at least 32 seconds" (§17.1.1.2)
    assert SipTimers(t1=1.0).timer_d(False) == 64.0  # must outlast the server's 64*T1 window


@pytest.mark.parametrize("kwargs", [{"t1": 0}, {"t2": -1}, {"t4": 0}, {"t1": 2.0, "t2": 1.0}])
def test_bad_timer_values_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(LocalProtocolError):
        SipTimers(**kwargs)


def test_timers_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        SipTimers().t1 = 1.0  # type: ignore[misc]


# -- documentation and tables -----------------------------------------------------------------
@pytest.mark.parametrize("kind", list(TxKind))
def test_docstring_transition_tables_match_the_code(kind: TxKind) -> None:
    doc = txmod.__doc__ or ""
    for line in format_transitions(kind).splitlines():
        assert f"    {line}\n" in doc, f"docstring lacks: {line!r}"


@pytest.mark.parametrize("kind", list(TxKind))
def test_every_table_state_has_entry_actions(kind: TxKind) -> None:
    table, entry, initial = txmod._MACHINES[kind]
    states = {s for s, _ in table} | {n for _, n in table.values() if n is not None} | {initial}
    assert states == set(entry)
    # every timer a state starts is handled in that state (or it could never fire)
    for state, timers in entry.items():
        for timer in timers or ():
            assert (state, timer) in table, (kind, state, timer)


def test_transaction_method_maps_ack_to_invite() -> None:
    assert transaction_method("ACK") == "INVITE"
    assert transaction_method("CANCEL") == "CANCEL"
    assert transaction_method("INVITE") == "INVITE"


# -- ICT: RFC 3261 §17.1.1, RFC 6026 §7.2 ------------------------------------------------------------
def test_ict_sends_invite_and_retransmits_with_timer_a_until_timer_b() -> None:
    inv = request()
    tx = ClientTransaction(inv, now=100.0)
    assert tx.kind is TxKind.ICT and tx.state is TxState.CALLING and tx.key == (BRANCH, "INVITE")
    sent, events = drain(tx)
    assert sent == [bytes(inv)] and events == []
    fired = run_until(tx, 1000.0)
    # Timer A: 0.5, 1, 2, 4, 8, 16 s apart; Timer B (64*T1 = 32 s) ends it.
    assert [t - 100.0 for t, _ in fired] == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5, 32.0]
    assert all(msgs == [bytes(inv)] for _, msgs in fired[:-1])
    assert fired[-1][1] == []  # no ACK on timeout (§17.1.1.2)
    assert tx.state is TxState.TERMINATED and tx.next_deadline() is None
    events = tx.events()
    assert events == [TransactionTimeout(tx, "B"), TransactionTerminated(tx)]


def test_ict_timer_a_scales_with_t1() -> None:
    tx = ClientTransaction(request(), now=0.0, timers=SipTimers(t1=0.1, t2=1.0, t4=1.0))
    tx.messages_to_send()
    times = [round(t, 6) for t, _ in run_until(tx, 100.0)]
    assert times == [0.1, 0.3, 0.7, 1.5, 3.1, 6.3, 6.4]


def test_ict_reliable_transport_sends_once_and_keeps_timer_b() -> None:
    tx = ClientTransaction(request(), now=0.0, reliable=True)
    assert len(tx.messages_to_send()) == 1
    assert tx.next_deadline() == 32.0 and tx.timer_deadline(TxInput.TIMER_A) is None
    fired = run_until(tx, 100.0)
    assert fired == [(32.0, [])]
    assert kinds(tx.events()) == ["TransactionTimeout", "TransactionTerminated"]


def test_ict_calling_to_proceeding_stops_retransmissions() -> None:
    inv = request()
    tx = ClientTransaction(inv, now=0.0)
    tx.messages_to_send()
    tx.handle_timeout(0.5)
    assert len(tx.messages_to_send()) == 1
    ringing = response(inv, 180)
    tx.receive_response(ringing, 0.7)
    assert tx.state is TxState.PROCEEDING and tx.can_cancel
    assert tx.events() == [ResponseReceived(tx, ringing)]
    assert tx.next_deadline() is None  # A and B stopped: the TU runs Timer C / CANCEL
    again = response(inv, 183)
    tx.receive_response(again, 5.0)
    assert tx.state is TxState.PROCEEDING and tx.events() == [ResponseReceived(tx, again)]
    assert tx.messages_to_send() == [] and tx.last_response is again


@pytest.mark.parametrize("first", [None, 180])
def test_ict_2xx_moves_to_accepted_and_timer_m_ends_it(first: int | None) -> None:
    inv = request()
    tx = ClientTransaction(inv, now=0.0)
    tx.messages_to_send()
    if first:
        tx.receive_response(response(inv, first), 0.1)
        tx.events()
    ok = response(inv, 200)
    tx.receive_response(ok, 1.0)
    assert tx.state is TxState.ACCEPTED
    assert tx.events() == [ResponseReceived(tx, ok)]
    assert tx.messages_to_send() == []  # the TU ACKs a 2xx, never the transaction
    assert tx.next_deadline() == 1.0 + 32.0  # Timer M
    # RFC 6026: retransmissions and 2xx from other forks go to the TU
    retrans, fork = response(inv, 200), response(inv, 200, to_tag="otherfork")
    tx.receive_response(retrans, 2.0)
    tx.receive_response(fork, 3.0)
    assert tx.events() == [ResponseReceived(tx, retrans), ResponseReceived(tx, fork)]
    # 1xx and non-2xx are not passed up in Accepted
    tx.receive_response(response(inv, 180), 4.0)
    tx.receive_response(response(inv, 486), 4.0)
    assert tx.events() == [] and tx.messages_to_send() == [] and tx.state is TxState.ACCEPTED
    tx.handle_timeout(32.9)
    assert tx.state is TxState.ACCEPTED
    tx.handle_timeout(33.0)
    assert tx.state is TxState.TERMINATED and tx.events() == [TransactionTerminated(tx)]
    # late 2xx after Terminated: the transaction is gone; nothing happens
    tx.receive_response(response(inv, 200), 40.0)
    assert tx.events() == [] and tx.messages_to_send() == []


@pytest.mark.parametrize("code", [300, 404, 486, 503, 603])
@pytest.mark.parametrize("via_proceeding", [False, True])
def test_ict_non_2xx_final_sends_ack_then_timer_d(code: int, via_proceeding: bool) -> None:
    inv = request()
    tx = ClientTransaction(inv, now=0.0)
    tx.messages_to_send()
    if via_proceeding:
        tx.receive_response(response(inv, 180), 0.2)
        tx.events()
    final = response(inv, code)
    tx.receive_response(final, 2.0)
    assert tx.state is TxState.COMPLETED
    msgs = tx.messages_to_send()
    assert [m.method for m in msgs if isinstance(m, SipRequest)] == ["ACK"] and msgs[0] is tx.ack
    assert tx.events() == [ResponseReceived(tx, final)]
    assert tx.next_deadline() == 2.0 + 32.0  # Timer D
    # a retransmitted final: ACK again, not passed up (§17.1.1.2)
    tx.receive_response(response(inv, code), 3.0)
    again = tx.messages_to_send()
    assert len(again) == 1 and bytes(again[0]) == bytes(msgs[0]) and tx.events() == []
    # nothing else is passed up in Completed
    tx.receive_response(response(inv, 180), 3.0)
    tx.receive_response(response(inv, 200), 3.0)
    assert tx.events() == [] and tx.messages_to_send() == []
    assert run_until(tx, 100.0) == [(34.0, [])]
    assert tx.state is TxState.TERMINATED and tx.events() == [TransactionTerminated(tx)]


def test_ict_reliable_non_2xx_terminates_at_once_after_acking() -> None:
    inv = request()
    tx = ClientTransaction(inv, now=0.0, reliable=True)
    tx.messages_to_send()
    final = response(inv, 486)
    tx.receive_response(final, 1.0)
    assert tx.state is TxState.TERMINATED  # Timer D = 0
    assert [m.method for m in tx.messages_to_send() if isinstance(m, SipRequest)] == ["ACK"]
    assert tx.events() == [ResponseReceived(tx, final), TransactionTerminated(tx)]


def test_ict_ack_for_non_2xx_header_by_header() -> None:
    """§17.1.1.3: Request-URI, Call-ID, From, CSeq number, top Via and Route of the INVITE; To of
    the response; CSeq method ACK; one Via; no body."""
    inv = request(
        extra=(
            "Route: <sip:p1.example.com;lr>\r\n"
            "Route: <sip:p2.example.com;lr>, <sip:p3.example.com;lr>\r\n"
            "Authorization: Digest username=\"alice\"\r\n"
            "Content-Type: application/sdp\r\n"
        ),
        body=b"v=0\r\n",
    )
    # a proxy's client transaction: several Via values, here in one comma-separated field line
    top = inv.headers.get("via")
    inv.headers.set("Via", f"{top}, SIP/2.0/UDP bottom.example.com;branch=z9hG4bKlower")
    inv.headers.add("Via", "SIP/2.0/TCP lowest.example.com;branch=z9hG4bKlowest")
    tx = ClientTransaction(inv, now=0.0)
    tx.messages_to_send()
    busy = make_response(inv, 486, to_tag="314159", headers=[("Contact", "<sip:elsewhere@example.com>")])
    tx.receive_response(busy, 1.0)
    (ack,) = tx.messages_to_send()
    assert isinstance(ack, SipRequest) and ack.method == "ACK"
    reparsed = parse_message(bytes(ack), strict=True)
    assert isinstance(reparsed, SipRequest)
    assert reparsed.uri_text == inv.uri_text == "sip:bob@biloxi.example.com"
    assert reparsed.headers.get_all("via") == ["SIP/2.0/UDP pc33.atlanta.example.com;rport;branch=" + BRANCH]
    assert reparsed.top_via.branch == BRANCH
    assert reparsed.headers.get_all("route") == inv.headers.get_all("route")
    assert reparsed.headers.get("from") == inv.headers.get("from")
    assert reparsed.headers.get("to") == busy.headers.get("to")
    assert reparsed.to.tag == "314159"
    assert reparsed.call_id == inv.call_id
    assert reparsed.cseq.seq == inv.cseq.seq and reparsed.cseq.method == "ACK"
    assert reparsed.max_forwards == 70
    assert reparsed.body == b"" and reparsed.headers.get("content-length") == "0"
    for absent in ("contact", "content-type", "authorization"):
        assert absent not in reparsed.headers


def test_ict_ack_follows_the_to_of_the_response_it_acknowledges() -> None:
    inv = request()
    tx = ClientTransaction(inv, now=0.0)
    tx.messages_to_send()
    tx.receive_response(response(inv, 486, to_tag="a"), 1.0)
    tx.receive_response(response(inv, 486, to_tag="b"), 1.5)
    acks = [m for m in tx.messages_to_send() if isinstance(m, SipRequest) and m.method == "ACK"]
    assert [a.to.tag for a in acks] == ["a", "b"]


def test_ict_transport_error_informs_tu_and_terminates() -> None:
    tx = ClientTransaction(request(), now=0.0)
    tx.transport_error(0.1)
    assert tx.state is TxState.TERMINATED
    assert tx.events() == [TransportFailed(tx), TransactionTerminated(tx)]
    tx.transport_error(0.2)  # nothing left to fail
    assert tx.events() == []


def test_ict_accepted_ignores_transport_errors() -> None:
    inv = request()
    tx = ClientTransaction(inv, now=0.0)
    tx.receive_response(response(inv, 200), 1.0)
    tx.events()
    tx.transport_error(1.1)
    assert tx.state is TxState.ACCEPTED and tx.events() == []


def test_ict_late_timer_call_fires_in_deadline_order() -> None:
    tx = ClientTransaction(request(), now=0.0)
    tx.messages_to_send()
    tx.handle_timeout(40.0)  # a driver that slept through everything
    assert tx.state is TxState.TERMINATED
    assert kinds(tx.events()) == ["TransactionTimeout", "TransactionTerminated"]


# -- CANCEL construction (§9.1) -----------------------------------------------------------------------
def test_cancel_request_header_by_header() -> None:
    inv = request(extra="Route: <sip:p1.example.com;lr>\r\nRequire: 100rel\r\nContent-Type: application/sdp\r\n",
                  body=b"v=0\r\n")
    inv.headers.set("Via", f"{inv.headers.get('via')}, SIP/2.0/UDP lower.example.com;branch=z9hG4bKx")
    tx = ClientTransaction(inv, now=0.0)
    assert not tx.can_cancel  # no provisional response yet (§9.1)
    tx.receive_response(response(inv, 180), 0.3)
    assert tx.can_cancel
    cancel = parse_message(bytes(tx.cancel_request()), strict=True)
    assert isinstance(cancel, SipRequest) and cancel.method == "CANCEL"
    assert cancel.uri_text == inv.uri_text
    assert cancel.call_id == inv.call_id
    assert cancel.headers.get("to") == inv.headers.get("to") and cancel.to.tag is None
    assert cancel.headers.get("from") == inv.headers.get("from")
    assert cancel.cseq.seq == inv.cseq.seq and cancel.cseq.method == "CANCEL"
    assert len(cancel.vias) == 1 and str(cancel.top_via) == str(inv.top_via)
    assert cancel.headers.get_all("route") == ["<sip:p1.example.com;lr>"]
    assert "require" not in cancel.headers and cancel.body == b""
    # the CANCEL is its own transaction: same branch, different key (§17.1.3)
    ctx = ClientTransaction(tx.cancel_request(), now=0.4)
    assert ctx.kind is TxKind.NICT and ctx.key == (BRANCH, "CANCEL") != tx.key


def test_cancel_of_a_non_invite_is_refused() -> None:
    tx = ClientTransaction(request("OPTIONS"), now=0.0)
    with pytest.raises(LocalProtocolError):
        tx.cancel_request()
    assert not tx.can_cancel


@pytest.mark.parametrize(
    "make",
    [
        lambda: request("ACK"),
        lambda: request(branch=None),
        lambda: request(branch="1234-rfc2543"),
    ],
)
def test_client_transaction_refuses_bad_requests(make) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(LocalProtocolError):
        ClientTransaction(make(), now=0.0)


def test_client_transaction_needs_a_via_and_a_matching_cseq() -> None:
    req = request()
    req.headers.remove("via")
    with pytest.raises(LocalProtocolError):
        ClientTransaction(req, now=0.0)
    for bad in ("1 OPTIONS", "one INVITE"):
        req = request()
        req.headers.set("CSeq", bad)
        with pytest.raises(LocalProtocolError):
            ClientTransaction(req, now=0.0)
    with pytest.raises(LocalProtocolError):
        ClientTransaction(response(request(), 200), now=0.0)  # type: ignore[arg-type]


# -- NICT: RFC 3261 §17.1.2 ---------------------------------------------------------------------
def test_nict_timer_e_doubles_up_to_t2_until_timer_f() -> None:
    opt = request("OPTIONS")
    tx = ClientTransaction(opt, now=0.0)
    assert tx.kind is TxKind.NICT and tx.state is TxState.TRYING
    assert drain(tx)[0] == [bytes(opt)]
    fired = run_until(tx, 100.0)
    assert [t for t, _ in fired] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5, 32.0]
    assert all(m == [bytes(opt)] for _, m in fired[:-1]) and fired[-1][1] == []
    assert tx.events() == [TransactionTimeout(tx, "F"), TransactionTerminated(tx)]


def test_nict_proceeding_keeps_timer_f_and_retransmits_every_t2() -> None:
    opt = request("REGISTER")
    tx = ClientTransaction(opt, now=0.0)
    tx.messages_to_send()
    trying = response(opt, 100)
    tx.receive_response(trying, 0.2)
    assert tx.state is TxState.PROCEEDING and tx.events() == [ResponseReceived(tx, trying)]
    assert tx.timer_deadline(TxInput.TIMER_E) == 0.5 and tx.timer_deadline(TxInput.TIMER_F) == 32.0
    fired = run_until(tx, 100.0)
    # E fires at 0.5 and is then reset to T2 each time (§17.1.2.2)
    assert [t for t, _ in fired] == [0.5, 4.5, 8.5, 12.5, 16.5, 20.5, 24.5, 28.5, 32.0]
    assert kinds(tx.events()) == ["TransactionTimeout", "TransactionTerminated"]


def test_nict_provisional_responses_all_go_up() -> None:
    opt = request("SUBSCRIBE")
    tx = ClientTransaction(opt, now=0.0)
    r1, r2 = response(opt, 100), response(opt, 183)
    tx.receive_response(r1, 0.1)
    tx.receive_response(r2, 0.2)
    assert tx.events() == [ResponseReceived(tx, r1), ResponseReceived(tx, r2)]


@pytest.mark.parametrize("code", [200, 202, 404, 500])
def test_nict_final_completes_and_timer_k_absorbs_retransmissions(code: int) -> None:
    opt = request("OPTIONS")
    tx = ClientTransaction(opt, now=0.0)
    tx.messages_to_send()
    final = response(opt, code)
    tx.receive_response(final, 0.4)
    assert tx.state is TxState.COMPLETED and tx.events() == [ResponseReceived(tx, final)]
    assert tx.next_deadline() == 0.4 + 5.0  # Timer K = T4, E and F stopped
    tx.receive_response(response(opt, code), 1.0)  # retransmission: absorbed
    tx.receive_response(response(opt, 100), 1.0)
    assert tx.events() == [] and tx.messages_to_send() == []
    assert run_until(tx, 100.0) == [(5.4, [])]
    assert tx.events() == [TransactionTerminated(tx)]


def test_nict_reliable_no_retransmissions_and_k_is_zero() -> None:
    opt = request("OPTIONS")
    tx = ClientTransaction(opt, now=0.0, reliable=True)
    assert len(tx.messages_to_send()) == 1 and tx.next_deadline() == 32.0  # only F
    final = response(opt, 200)
    tx.receive_response(final, 0.3)
    assert tx.state is TxState.TERMINATED
    assert tx.events() == [ResponseReceived(tx, final), TransactionTerminated(tx)]


@pytest.mark.parametrize("provisional", [False, True])
def test_nict_transport_error(provisional: bool) -> None:
    opt = request("BYE")
    tx = ClientTransaction(opt, now=0.0)
    if provisional:
        tx.receive_response(response(opt, 100), 0.1)
        tx.events()
    tx.transport_error(0.2)
    assert tx.events() == [TransportFailed(tx), TransactionTerminated(tx)]


def test_nict_completed_ignores_transport_error() -> None:
    opt = request("BYE")
    tx = ClientTransaction(opt, now=0.0)
    tx.receive_response(response(opt, 200), 0.1)
    tx.events()
    tx.transport_error(0.2)
    assert tx.state is TxState.COMPLETED and tx.events() == []


# -- IST: RFC 3261 §17.2.1, RFC 6026 §7.1 ----------------------------------------------------------------
def test_ist_sends_100_trying_after_200_ms() -> None:
    inv = request(extra="Timestamp: 54\r\n")
    tx = ServerTransaction(inv, now=10.0)
    assert tx.kind is TxKind.IST and tx.state is TxState.PROCEEDING
    assert tx.messages_to_send() == [] and tx.next_deadline() == pytest.approx(10.2)
    tx.handle_timeout(10.2)
    (trying,) = tx.messages_to_send()
    assert isinstance(trying, SipResponse) and trying.status_code == 100
    assert trying.to.tag is None and trying.headers.get("timestamp") == "54"
    assert trying.headers.get_all("via") == inv.headers.get_all("via") and trying.cseq == inv.cseq
    assert tx.next_deadline() is None and tx.events() == []


def test_ist_no_100_when_tu_answers_within_200_ms() -> None:
    inv = request()
    tx = ServerTransaction(inv, now=0.0)
    ringing = response(inv, 180)
    tx.send_response(ringing, 0.1)
    assert tx.messages_to_send() == [ringing] and tx.next_deadline() is None
    tx.handle_timeout(1.0)
    assert tx.messages_to_send() == []


def test_ist_trying_delay_zero_sends_100_at_once_and_auto_trying_off_never() -> None:
    inv = request()
    tx = ServerTransaction(inv, now=0.0, trying_delay=0)
    assert [m.status_code for m in tx.messages_to_send() if isinstance(m, SipResponse)] == [100]
    quiet = ServerTransaction(inv, now=0.0, auto_trying=False)
    assert quiet.next_deadline() is None and quiet.messages_to_send() == []
    quiet.receive_request(request(), 0.5)  # retransmission with nothing to resend
    assert quiet.messages_to_send() == []
    with pytest.raises(LocalProtocolError):
        ServerTransaction(inv, now=0.0, trying_delay=-1)


def test_ist_proceeding_retransmission_resends_latest_provisional() -> None:
    inv = request()
    tx = ServerTransaction(inv, now=0.0)
    # a retransmission before any provisional went out: send 100 at once
    tx.receive_request(request(), 0.1)
    (first,) = tx.messages_to_send()
    assert isinstance(first, SipResponse) and first.status_code == 100 and tx.next_deadline() is None
    r180, r183 = response(inv, 180), response(inv, 183)
    tx.send_response(r180, 1.0)
    tx.send_response(r183, 2.0)
    assert tx.messages_to_send() == [r180, r183]
    tx.receive_request(request(), 2.5)
    assert tx.messages_to_send() == [r183] and tx.events() == []


def test_ist_non_2xx_final_timer_g_schedule_until_timer_h() -> None:
    inv = request()
    tx = ServerTransaction(inv, now=0.0)
    busy = response(inv, 486)
    tx.send_response(busy, 1.0)
    assert tx.state is TxState.COMPLETED and tx.messages_to_send() == [busy]
    fired = run_until(tx, 100.0)
    # Timer G: T1, 2T1, 4T1, then capped at T2 = 4 s; Timer H = 64*T1
    assert [t - 1.0 for t, _ in fired] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5, 32.0]
    assert all(m == [bytes(busy)] for _, m in fired[:-1]) and fired[-1][1] == []
    assert tx.events() == [TransactionTimeout(tx, "H"), TransactionTerminated(tx)]


def test_ist_completed_resends_final_on_invite_and_ack_confirms() -> None:
    inv = request()
    tx = ServerTransaction(inv, now=0.0)
    busy = response(inv, 486)
    tx.send_response(busy, 1.0)
    tx.messages_to_send()
    tx.receive_request(request(), 1.2)
    assert tx.messages_to_send() == [busy]
    ack = request("ACK", to_tag="8321234356")
    tx.receive_request(ack, 1.3)
    assert tx.state is TxState.CONFIRMED and tx.events() == [AckReceived(tx, ack)]
    assert tx.next_deadline() == pytest.approx(1.3 + 5.0)  # Timer I = T4; G and H stopped
    # Confirmed absorbs ACK and INVITE retransmissions: nothing sent, nothing passed up
    tx.receive_request(request("ACK", to_tag="8321234356"), 2.0)
    tx.receive_request(request(), 2.0)
    assert tx.messages_to_send() == [] and tx.events() == []
    tx.handle_timeout(6.3)
    assert tx.state is TxState.TERMINATED and tx.events() == [TransactionTerminated(tx)]


def test_ist_reliable_no_timer_g_and_ack_terminates_at_once() -> None:
    inv = request()
    tx = ServerTransaction(inv, now=0.0, reliable=True)
    tx.send_response(response(inv, 603), 0.1)
    tx.messages_to_send()
    assert tx.timer_deadline(TxInput.TIMER_G) is None and tx.next_deadline() == pytest.approx(32.1)
    ack = request("ACK")
    tx.receive_request(ack, 0.2)
    assert tx.state is TxState.TERMINATED
    assert tx.events() == [AckReceived(tx, ack), TransactionTerminated(tx)]


def test_ist_2xx_accepted_absorbs_invites_and_timer_l_ends_it() -> None:
    inv = request()
    tx = ServerTransaction(inv, now=0.0)
    ok = response(inv, 200)
    tx.send_response(ok, 0.1)
    assert tx.state is TxState.ACCEPTED and tx.messages_to_send() == [ok]
    assert tx.next_deadline() == pytest.approx(0.1 + 32.0)  # Timer L, no Timer G
    tx.receive_request(request(), 0.6)  # RFC 6026: absorbed, no response resent
    assert tx.messages_to_send() == [] and tx.events() == []
    tx.send_response(ok, 0.6)  # the TU retransmits its 2xx through the transaction
    assert tx.messages_to_send() == [ok]
    ack = request("ACK", to_tag="8321234356")
    tx.receive_request(ack, 0.7)
    assert tx.state is TxState.ACCEPTED and tx.events() == [AckReceived(tx, ack)]
    for code in (180, 486):
        with pytest.raises(LocalProtocolError):
            tx.send_response(response(inv, code), 0.8)
    tx.handle_timeout(32.1)
    assert tx.state is TxState.TERMINATED and tx.events() == [TransactionTerminated(tx)]
    with pytest.raises(LocalProtocolError):
        tx.send_response(ok, 33.0)  # after Terminated the TU sends 2xx on its own


@pytest.mark.parametrize("state_code", [486, None])
def test_ist_transport_error_informs_tu_and_keeps_state(state_code: int | None) -> None:
    inv = request()
    tx = ServerTransaction(inv, now=0.0)
    if state_code:
        tx.send_response(response(inv, state_code), 0.1)
    before = tx.state
    tx.transport_error(0.2)
    assert tx.state is before and tx.events() == [TransportFailed(tx)]


def test_ist_illegal_send_response_raises() -> None:
    inv = request()
    tx = ServerTransaction(inv, now=0.0)
    with pytest.raises(LocalProtocolError):
        tx.send_response(request(), 0.1)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        tx.send_response(response(request(cseq=1), 180), 0.1)  # CSeq of another request
    tx.send_response(response(inv, 404), 0.2)
    for code in (100, 180, 200, 486):
        with pytest.raises(LocalProtocolError):
            tx.send_response(response(inv, code), 0.3)
    tx.receive_request(request("ACK"), 0.4)
    with pytest.raises(LocalProtocolError):
        tx.send_response(response(inv, 500), 0.5)
    with pytest.raises(LocalProtocolError):
        tx.receive_request(request("BYE"), 0.5)


def test_server_transaction_refuses_ack() -> None:
    with pytest.raises(LocalProtocolError):
        ServerTransaction(request("ACK"), now=0.0)
    with pytest.raises(LocalProtocolError):
        ServerTransaction(response(request(), 200), now=0.0)  # type: ignore[arg-type]


# -- NIST: RFC 3261 §17.2.2 ---------------------------------------------------------------------
def test_nist_trying_absorbs_retransmissions() -> None:
    reg = request("REGISTER")
    tx = ServerTransaction(reg, now=0.0)
    assert tx.kind is TxKind.NIST and tx.state is TxState.TRYING and tx.next_deadline() is None
    tx.receive_request(request("REGISTER"), 0.5)
    assert tx.messages_to_send() == [] and tx.events() == []


def test_nist_proceeding_and_completed_resend_last_response_then_timer_j() -> None:
    reg = request("REGISTER")
    tx = ServerTransaction(reg, now=0.0)
    trying = response(reg, 100)
    tx.send_response(trying, 0.1)
    assert tx.state is TxState.PROCEEDING and tx.messages_to_send() == [trying]
    tx.receive_request(request("REGISTER"), 0.5)
    assert tx.messages_to_send() == [trying]
    ok = response(reg, 200)
    tx.send_response(ok, 1.0)
    assert tx.state is TxState.COMPLETED and tx.messages_to_send() == [ok]
    assert tx.next_deadline() == 33.0  # Timer J = 64*T1
    tx.receive_request(request("REGISTER"), 2.0)
    assert tx.messages_to_send() == [ok]
    with pytest.raises(LocalProtocolError):
        tx.send_response(response(reg, 500), 2.0)
    with pytest.raises(LocalProtocolError):
        tx.send_response(response(reg, 100), 2.0)
    assert run_until(tx, 100.0) == [(33.0, [])]
    assert tx.events() == [TransactionTerminated(tx)]


def test_nist_final_from_trying_and_reliable_j_is_zero() -> None:
    opt = request("OPTIONS")
    tx = ServerTransaction(opt, now=0.0, reliable=True)
    ok = response(opt, 200)
    tx.send_response(ok, 0.1)
    assert tx.state is TxState.TERMINATED and tx.messages_to_send() == [ok]
    assert tx.events() == [TransactionTerminated(tx)]


def test_nist_transport_error_terminates() -> None:
    opt = request("OPTIONS")
    tx = ServerTransaction(opt, now=0.0)
    tx.send_response(response(opt, 180), 0.1)
    tx.transport_error(0.2)
    assert tx.events() == [TransportFailed(tx), TransactionTerminated(tx)]


def test_nist_rejects_ack_and_foreign_methods() -> None:
    tx = ServerTransaction(request("OPTIONS"), now=0.0)
    with pytest.raises(LocalProtocolError):
        tx.receive_request(request("ACK"), 0.1)
    with pytest.raises(LocalProtocolError):
        tx.receive_request(request("INVITE"), 0.1)
