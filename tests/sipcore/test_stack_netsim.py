"""SipStack instances over a hostile simulated UDP network (tests/netsim.py), fake clock.

30 % loss, 20 % duplication, 30 % reordering, fixed seeds. A small sans-IO UA (:class:`SimUA`:
SipStack + sipcore.invite, no asyncio) plays each role; every run checks both the outcome and
the wire:

* INVITE/180/486/ACK, INVITE/200/ACK/BYE, OPTIONS and MESSAGE: one final response to the TU,
  every transaction gone in time, and every retransmission at exactly the instant the RFC
  schedule gives (Timers A, E, G, §13.3.1.4 2xx), apart from resends a retransmitted request
  triggers at the instant it arrives.
* A proxy-less fork: the network hands Alice's INVITE to Bob and Carol, both answer 200 with
  their own To tag. Alice ACKs both and BYEs the one she did not keep (§13.2.2.4).
* Glare: both sides send a re-INVITE at the same instant; the loser(s) get 491 and retry after
  the §14.1 back-off (Call-ID owner 2.1-4 s, the other 0-2 s); both re-INVITEs end up 200.
* The CANCEL/200 race: Bob answers at the instant Alice cancels; the 200 wins, Bob's stack
  still answers the CANCEL 200, and Alice ACKs then BYEs (§9.1, §15).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from netsim import LinkProfile, Simulation
from sipcore import SipRequest, SipResponse, SipUri, make_response, parse_message
from sipcore.dialog import Dialog, DialogId, dialog_id_for_request
from sipcore.headers import Headers
from sipcore.invite import (
    AckAgain,
    Answered,
    Failed,
    ForkDiscarded,
    InviteClient,
    InviteClientEvent,
    OfferState,
    ProvisionalReceived,
    ResponseRetransmitter,
    RetransmitAction,
    glare_backoff,
)
from sipcore.stack import (
    CancelReceived,
    RequestReceived,
    ResponseReceived,
    SipStack,
    StrayResponse,
    Target,
)
from sipcore.timers import SipTimers
from sipcore.transaction import ClientTransaction, ServerTransaction

Addr = tuple[str, int]
ALICE: Addr = ("10.0.0.1", 5060)
BOB: Addr = ("10.0.0.2", 5060)
CAROL: Addr = ("10.0.0.3", 5060)
LOSSY = LinkProfile(loss=0.3, duplicate=0.2, reorder=0.3, delay=0.02, jitter=0.03)
T = SipTimers()
SDP = b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
EPS = 1e-9


def _target_of(dialog: Dialog) -> Target:
    uri = dialog.remote_target
    assert isinstance(uri, SipUri)
    return Target("udp", uri.host, uri.port or 5060)


@dataclass
class SimSession:
    dialog: Dialog
    offers: OfferState = field(default_factory=OfferState)
    acked: bool = False
    ended_by: str | None = None
    reinvites: list[tuple[float, int]] = field(default_factory=list)
    """(time, final status) of every re-INVITE this side sent."""


@dataclass
class Incoming:
    request: SipRequest
    tx: ServerTransaction
    source: Target
    to_tag: str
    done: bool = False
    cancelled_at: float | None = None


@dataclass
class Call:
    client: InviteClient
    tx: ClientTransaction
    events: list[tuple[float, InviteClientEvent]] = field(default_factory=list)
    cancel_wanted: bool = False


class SimUA:
    """SipStack + the sans-IO INVITE helpers, plugged into the simulation."""

    def __init__(self, sim: Simulation, addr: Addr, name: str, seed: int) -> None:
        rnd = random.Random(seed)
        self.rng: Callable[[int], bytes] = rnd.randbytes
        self.sim = sim
        self.addr = addr
        self.name = name
        self.stack = SipStack({"udp": addr}, timers=T, rng=self.rng)
        self.contact = f"<sip:{name}@{addr[0]}:{addr[1]}>"
        self.sent: list[tuple[float, bytes, Addr]] = []
        self.received: list[tuple[float, bytes]] = []
        self.log: list[tuple[float, str]] = []
        self._jobs: list[tuple[float, int, Callable[[float], None]]] = []
        self._seq = 0
        self.sessions: dict[DialogId, SimSession] = {}
        self.calls: dict[tuple[str, int], Call] = {}
        self.acks: dict[tuple[str, int], tuple[SipRequest, Target]] = {}
        self.handlers: dict[int, Callable[[SipResponse, float], None]] = {}
        self.incoming: dict[int, Incoming] = {}
        self.uas_2xx: dict[tuple[str, str, int], tuple[ResponseRetransmitter, SipResponse, Target, SimSession]] = {}
        self.acks_received: list[tuple[float, SipRequest]] = []
        self.on_invite: Callable[[Incoming, float], None] = lambda inc, now: None
        self.tee: list[Addr] = []
        """Extra destinations for every INVITE/CANCEL sent to BOB: a proxy-less fork."""
        sim.add_endpoint(addr, on_receive=self.receive, outgoing=self.outgoing,
                         next_deadline=self.next_deadline, on_timeout=self.handle_timeout)

    # -- netsim hooks -------------------------------------------------------------------------------
    def receive(self, data: bytes, src: Addr, now: float) -> None:
        self.received.append((now, data))
        self.stack.receive(data, Target("udp", src[0], src[1]), now)
        self.process(now)

    def outgoing(self, now: float) -> list[tuple[bytes, Addr]]:
        self.process(now)
        out: list[tuple[bytes, Addr]] = []
        for data, target in self.stack.datagrams_to_send():
            dst = (target.host, target.port)
            out.append((data, dst))
            if dst == BOB and data[:7] in (b"INVITE ", b"CANCEL "):
                out.extend((data, extra) for extra in self.tee)
        for data, dst in out:
            self.sent.append((now, data, dst))
        return out

    def next_deadline(self) -> float | None:
        times = [t for t in (self.stack.next_deadline(),) if t is not None]
        if self._jobs:
            times.append(self._jobs[0][0])
        times += [d for d in (r.next_deadline() for r, _, _, _ in self.uas_2xx.values()) if d is not None]
        return min(times) if times else None

    def handle_timeout(self, now: float) -> None:
        self.stack.handle_timeout(now)
        while self._jobs and self._jobs[0][0] <= now:
            _, _, job = heapq.heappop(self._jobs)
            job(now)
        for key, (retx, resp, target, session) in list(self.uas_2xx.items()):
            deadline = retx.next_deadline()
            if deadline is None or deadline > now:
                continue
            action = retx.handle_timeout(now)
            if action is RetransmitAction.RESEND:
                self.stack.send_stateless(resp, target)
            elif action is RetransmitAction.GIVE_UP:
                self.log.append((now, f"no ACK for {key}"))
                del self.uas_2xx[key]
                self.bye(session, now)
        self.process(now)

    def later(self, at: float, job: Callable[[float], None]) -> None:
        self._seq += 1
        heapq.heappush(self._jobs, (at, self._seq, job))

    # -- stack events --------------------------------------------------------------------------------
    def process(self, now: float) -> None:
        for ev in self.stack.events():
            if isinstance(ev, RequestReceived):
                self.on_request(ev, now)
            elif isinstance(ev, ResponseReceived):
                handler = self.handlers.get(id(ev.transaction))
                if handler is not None:
                    if ev.response.status_code >= 200:
                        del self.handlers[id(ev.transaction)]
                    handler(ev.response, now)
            elif isinstance(ev, StrayResponse):
                self.on_stray(ev.response, now)
            elif isinstance(ev, CancelReceived):
                inc = self.incoming.get(id(ev.invite_transaction))
                self.log.append((now, "CANCEL received"))
                if inc is not None and not inc.done:
                    inc.done, inc.cancelled_at = True, now
                    self.respond(inc.tx, make_response(inc.request, 487, to_tag=inc.to_tag), now)

    def respond(self, tx: ServerTransaction, resp: SipResponse, now: float) -> None:
        self.stack.send_response(tx, resp, now)

    def on_request(self, ev: RequestReceived, now: float) -> None:
        req, tx = ev.request, ev.transaction
        if req.method == "ACK":
            self.acks_received.append((now, req))
            key = (req.call_id, req.from_.tag or "", req.cseq.seq)
            entry = self.uas_2xx.pop(key, None)
            if entry is not None:
                entry[3].acked = True
            return
        assert tx is not None
        did = dialog_id_for_request(req)
        if did is None:
            if req.method == "INVITE":
                inc = Incoming(req, tx, ev.source, self.rng(4).hex())
                self.incoming[id(tx)] = inc
                self.on_invite(inc, now)
            else:
                self.respond(tx, make_response(req, 200, to_tag=self.rng(4).hex()), now)
            return
        session = self.sessions.get(did)
        if session is None:
            self.respond(tx, make_response(req, 481), now)
            return
        session.dialog.receive_request(req)
        if req.method == "BYE":
            self.respond(tx, make_response(req, 200), now)
            session.ended_by = "remote BYE"
        elif req.method == "INVITE":
            collision = session.offers.check_incoming("INVITE", bool(req.body), self.rng)
            if collision is not None:
                status, headers = collision
                self.log.append((now, f"re-INVITE answered {status}"))
                self.respond(tx, make_response(req, status, headers=headers), now)
                return
            ok = make_response(req, 200, headers=[("Contact", self.contact)], body=SDP,
                               content_type="application/sdp")
            self.send_2xx(tx, ok, ev.source, session, now)
        else:
            self.respond(tx, make_response(req, 200), now)

    # -- UAS -----------------------------------------------------------------------------------------
    def ring(self, inc: Incoming, now: float) -> None:
        if not inc.done:
            self.respond(inc.tx, make_response(inc.request, 180, to_tag=inc.to_tag,
                                               headers=[("Contact", self.contact)]), now)

    def reject(self, inc: Incoming, status: int, now: float) -> None:
        if not inc.done:
            inc.done = True
            self.respond(inc.tx, make_response(inc.request, status, to_tag=inc.to_tag), now)

    def answer(self, inc: Incoming, now: float) -> SimSession | None:
        if inc.done:
            return None
        inc.done = True
        ok = make_response(inc.request, 200, to_tag=inc.to_tag, headers=[("Contact", self.contact)],
                           body=SDP, content_type="application/sdp")
        dialog = Dialog.from_uas(inc.request, ok, rng=self.rng)
        dialog.local_target = self.contact
        session = SimSession(dialog)
        self.sessions[dialog.id] = session
        self.send_2xx(inc.tx, ok, inc.source, session, now)
        self.log.append((now, "answered"))
        return session

    def send_2xx(self, tx: ServerTransaction, ok: SipResponse, source: Target, session: SimSession,
                 now: float) -> None:
        req = tx.request
        key = (req.call_id, req.from_.tag or "", req.cseq.seq)
        self.uas_2xx[key] = (ResponseRetransmitter.for_2xx(now, T), ok, self.stack.response_target(req, source),
                             session)
        self.respond(tx, ok, now)

    # -- UAC -----------------------------------------------------------------------------------------
    def invite(self, uri: str, now: float, target: Addr = BOB) -> Call:
        h = Headers()
        h.add("From", f"<sip:{self.name}@example.test>;tag={self.rng(4).hex()}")
        h.add("To", f"<{uri}>")
        h.add("Call-ID", self.rng(8).hex())
        h.add("CSeq", "1 INVITE")
        h.add("Contact", self.contact)
        h.add("Content-Type", "application/sdp")
        req = SipRequest("INVITE", uri, h, SDP)
        client = InviteClient(req, local_target=self.contact)
        tx = self.stack.send_request(req, Target("udp", *target), now)
        call = Call(client, tx)
        self.calls[(req.call_id, req.cseq.seq)] = call

        def on_response(resp: SipResponse, t: float) -> None:
            self.invite_events(call, client.receive_response(resp), t)

        self.handlers[id(tx)] = on_response  # 1xx too: it stays registered until the final
        return call

    def cancel(self, call: Call, now: float) -> None:
        call.client.cancel()
        assert isinstance(call.tx, ClientTransaction)
        if call.tx.can_cancel:
            self.stack.send_cancel(call.tx, now)
            self.log.append((now, "CANCEL sent"))
        else:
            call.cancel_wanted = True  # §9.1: CANCEL only after a provisional response

    def invite_events(self, call: Call, events: list[InviteClientEvent], now: float) -> None:
        for ev in events:
            call.events.append((now, ev))
            if isinstance(ev, Answered):
                session = SimSession(ev.dialog, acked=True)
                self.sessions[ev.dialog.id] = session
                self.stack.send_ack(ev.ack, _target_of(ev.dialog))
            elif isinstance(ev, AckAgain):
                self.stack.send_ack(ev.ack, _target_of(ev.dialog))
            elif isinstance(ev, ForkDiscarded):
                self.stack.send_ack(ev.ack, _target_of(ev.dialog))
                self.send_in_dialog(ev.bye, ev.dialog, now, lambda r, t: self.log.append((t, f"BYE {r.status_code}")))
            elif isinstance(ev, ProvisionalReceived) and call.cancel_wanted:
                call.cancel_wanted = False
                self.cancel(call, now)

    def on_stray(self, resp: SipResponse, now: float) -> None:
        if not 200 <= resp.status_code < 300 or resp.cseq.method != "INVITE":
            return
        call = self.calls.get((resp.call_id, resp.cseq.seq))
        if call is not None:
            self.invite_events(call, call.client.receive_response(resp), now)
            return
        sent = self.acks.get((resp.call_id, resp.cseq.seq))
        if sent is not None:
            self.stack.send_ack(*sent)

    def send_in_dialog(self, req: SipRequest, dialog: Dialog, now: float,
                       on_final: Callable[[SipResponse, float], None]) -> None:
        tx = self.stack.send_request(req, _target_of(dialog), now)

        def handler(resp: SipResponse, t: float) -> None:
            if resp.status_code >= 200:
                on_final(resp, t)

        self.handlers[id(tx)] = handler

    def bye(self, session: SimSession, now: float) -> None:
        if session.ended_by is not None:
            return
        session.ended_by = "local BYE"
        req = session.dialog.create_request("BYE")
        self.send_in_dialog(req, session.dialog, now, lambda r, t: self.log.append((t, f"BYE {r.status_code}")))

    def reinvite(self, session: SimSession, now: float) -> None:
        dialog = session.dialog
        req = dialog.create_request("INVITE", body=SDP, content_type="application/sdp", contact=self.contact)
        session.offers.local_invite = session.offers.local_offer = True
        target = _target_of(dialog)

        def on_final(resp: SipResponse, t: float) -> None:
            session.offers.local_invite = session.offers.local_offer = False
            session.reinvites.append((t, resp.status_code))
            if 200 <= resp.status_code < 300:
                ack = dialog.create_ack(req.cseq.seq)
                self.acks[(req.call_id, req.cseq.seq)] = (ack, target)
                self.stack.send_ack(ack, target)
            elif resp.status_code == 491:
                self.later(t + glare_backoff(dialog.is_uac, self.rng), lambda t2: self.reinvite(session, t2))

        self.send_in_dialog(req, dialog, now, on_final)


# -- wire checks ------------------------------------------------------------------------------------
def doubling(t1: float, cap: float | None, until: float) -> list[float]:
    """Offsets of the retransmissions of a T1-doubling schedule (capped), below ``until``."""
    out, at, interval = [], 0.0, t1
    while True:
        at += interval
        if at >= until:
            return out
        out.append(at)
        interval = interval * 2 if cap is None else min(interval * 2, cap)


def check_schedule(sends: list[float], offsets: list[float], stop: float | None,
                   triggers: list[float] = ()) -> None:  # type: ignore[assignment]
    """Sends happen at start + every offset before ``stop`` and nowhere else, except at triggers."""
    start = sends[0]
    points = [start + o for o in offsets]
    for p in points:
        if stop is None or p < stop - EPS:
            assert any(abs(s - p) < EPS for s in sends), f"no retransmission at {p - start:.3f}s"
    for s in sends[1:]:
        scheduled = any(abs(s - p) < EPS for p in points) and (stop is None or s <= stop + EPS)
        triggered = any(abs(s - t) < EPS for t in triggers)
        assert scheduled or triggered, f"unexpected send at +{s - start:.4f}s (stop {stop})"


def sends_of(ua: SimUA, pred: Callable[[bytes], bool]) -> dict[bytes, list[float]]:
    """Send instants of every distinct message matching ``pred`` (retransmissions are byte-equal)."""
    out: dict[bytes, list[float]] = {}
    for t, data, _ in ua.sent:
        if pred(data):
            out.setdefault(data, []).append(t)
    return out


def received_at(ua: SimUA, pred: Callable[[bytes], bool]) -> list[float]:
    return [t for t, data in ua.received if pred(data)]


def branch_of(data: bytes) -> str:
    msg = parse_message(data)
    return msg.top_via.branch or ""


def first_line(data: bytes) -> bytes:
    return data.split(b"\r\n", 1)[0]


def is_response(code: int, method: str) -> Callable[[bytes], bool]:
    def pred(data: bytes) -> bool:
        if not data.startswith(b"SIP/2.0 %d " % code):
            return False
        return parse_message(data).cseq.method == method
    return pred


def is_request(method: str) -> Callable[[bytes], bool]:
    return lambda data: data.startswith(method.encode() + b" ")


def setup(seed: int, *names: str) -> tuple[Simulation, list[SimUA]]:
    sim = Simulation(seed=seed, profile=LOSSY)
    addrs = {"alice": ALICE, "bob": BOB, "carol": CAROL}
    uas = [SimUA(sim, addrs[n], n, seed * 10 + i) for i, n in enumerate(names)]
    return sim, uas


SEEDS = range(8)


# -- INVITE rejected ------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_invite_non_2xx(seed: int) -> None:
    sim, (alice, bob) = setup(seed, "alice", "bob")

    def on_invite(inc: Incoming, now: float) -> None:
        bob.later(now + 0.1, lambda t: bob.ring(inc, t))
        bob.later(now + 1.0, lambda t: bob.reject(inc, 486, t))

    bob.on_invite = on_invite
    t0 = sim.clock.now
    call = alice.invite("sip:bob@10.0.0.2", t0)
    assert sim.run(t0 + 200, stop_when=lambda: not alice.stack.transactions and not bob.stack.transactions
                   and sim.clock.now > t0 + 1)
    finals = [ev for _, ev in call.events if isinstance(ev, Failed)]
    assert [f.response.status_code for f in finals] == [486]
    assert not alice.sessions and not bob.sessions

    # Timer A: INVITE retransmissions until the first response reached Alice
    (invite_sends,) = sends_of(alice, is_request("INVITE")).values()
    first_resp = min(received_at(alice, lambda d: d.startswith(b"SIP/2.0 ")))
    check_schedule(invite_sends, doubling(T.t1, None, T.timer_b), first_resp)
    # Timer G: the 486 until Bob got the ACK; resent at once for every INVITE retransmission
    (busy_sends,) = sends_of(bob, is_response(486, "INVITE")).values()
    acks = received_at(bob, is_request("ACK"))
    assert acks, "the ACK for the 486 never reached Bob"
    invites_in = received_at(bob, is_request("INVITE"))
    check_schedule(busy_sends, doubling(T.t1, T.t2, T.timer_h), min(acks), triggers=invites_in)
    # the ICT's ACK for the 486 goes out for every 486 that reaches Alice, never otherwise
    ack_sends = [t for t, data, _ in alice.sent if is_request("ACK")(data)]
    busy_in = received_at(alice, is_response(486, "INVITE"))
    assert ack_sends and all(any(abs(a - b) < EPS for b in busy_in) for a in ack_sends)


# -- INVITE answered, then BYE ------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_invite_2xx_ack_and_bye(seed: int) -> None:
    sim, (alice, bob) = setup(seed, "alice", "bob")

    def on_invite(inc: Incoming, now: float) -> None:
        bob.later(now + 0.1, lambda t: bob.ring(inc, t))
        bob.later(now + 1.0, lambda t: bob.answer(inc, t))

    bob.on_invite = on_invite
    t0 = sim.clock.now
    call = alice.invite("sip:bob@10.0.0.2", t0)
    assert sim.run(t0 + 40, stop_when=lambda: any(s.acked for s in bob.sessions.values()))
    (a_session,) = alice.sessions.values()
    (b_session,) = bob.sessions.values()
    assert a_session.dialog.id == DialogId(b_session.dialog.call_id, b_session.dialog.remote_tag,
                                           b_session.dialog.local_tag)
    answered = [ev for _, ev in call.events if isinstance(ev, Answered)]
    assert len(answered) == 1
    sim.run_for(10.0)
    t_bye = sim.clock.now
    alice.bye(a_session, t_bye)
    assert sim.run(t_bye + 200, stop_when=lambda: not alice.stack.transactions and not bob.stack.transactions
                   and not bob.uas_2xx)
    assert b_session.ended_by == "remote BYE" and a_session.ended_by == "local BYE"
    assert [m for _, m in alice.log if m.startswith("BYE")] == ["BYE 200"]

    # §13.3.1.4: Bob's 2xx, T1 doubling up to T2, until the ACK arrived (no resend on INVITE retransmissions)
    (ok_sends,) = sends_of(bob, is_response(200, "INVITE")).values()
    first_ack = min(received_at(bob, is_request("ACK")))
    check_schedule(ok_sends, doubling(T.t1, T.t2, 64 * T.t1), first_ack)
    # Alice's ACK: once per 2xx that reached her, each with the same bytes (§13.2.2.4)
    ack_sends = sends_of(alice, is_request("ACK"))
    assert len(ack_sends) == 1
    oks_in = received_at(alice, is_response(200, "INVITE"))
    (ack_times,) = ack_sends.values()
    assert len(ack_times) == len(oks_in) and all(abs(a - b) < EPS for a, b in zip(ack_times, oks_in, strict=True))
    # Timer E: BYE retransmissions until its 200 reached Alice
    (bye_sends,) = sends_of(alice, is_request("BYE")).values()
    bye_ok = min(received_at(alice, is_response(200, "BYE")))
    check_schedule(bye_sends, doubling(T.t1, T.t2, T.timer_f), bye_ok)
    # Bob's NIST: the 200 to BYE once, then again only when a BYE retransmission arrives
    (bye_ok_sends,) = sends_of(bob, is_response(200, "BYE")).values()
    check_schedule(bye_ok_sends, [], None, triggers=received_at(bob, is_request("BYE")))


# -- non-INVITE out of dialog --------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_non_invite_transactions(seed: int) -> None:
    sim, (alice, bob) = setup(seed, "alice", "bob")
    t0 = sim.clock.now
    finals: dict[str, list[int]] = {"OPTIONS": [], "MESSAGE": []}
    for method in finals:
        h = Headers()
        h.add("From", f"<sip:alice@example.test>;tag={method.lower()}")
        h.add("To", "<sip:bob@example.test>")
        h.add("Call-ID", f"{method.lower()}-{seed}")
        h.add("CSeq", f"1 {method}")
        body = b"hello" if method == "MESSAGE" else b""
        if body:
            h.add("Content-Type", "text/plain")
        tx = alice.stack.send_request(SipRequest(method, "sip:bob@10.0.0.2", h, body), Target("udp", *BOB), t0)
        alice.handlers[id(tx)] = lambda r, t, m=method: finals[m].append(r.status_code)
    assert sim.run(t0 + 100, stop_when=lambda: not alice.stack.transactions and not bob.stack.transactions)
    assert finals == {"OPTIONS": [200], "MESSAGE": [200]}
    for method in finals:
        (sends,) = sends_of(alice, is_request(method)).values()
        got = min(received_at(alice, is_response(200, method)))
        check_schedule(sends, doubling(T.t1, T.t2, T.timer_f), got)  # Timer E, capped at T2
        (answers,) = sends_of(bob, is_response(200, method)).values()
        check_schedule(answers, [], None, triggers=received_at(bob, is_request(method)))
    assert sim.stats.lost + sim.stats.duplicated + sim.stats.reordered > 0


# -- forking ----------------------------------------------------------------------------------------
def _fork_run(seed: int) -> bool:
    """One run; True when both UAS got the INVITE (with loss, a fork may never see it: Alice
    stops retransmitting at the first provisional from the other)."""
    sim, (alice, bob, carol) = setup(seed, "alice", "bob", "carol")
    alice.tee = [CAROL]
    for ua in (bob, carol):
        def on_invite(inc: Incoming, now: float, ua: SimUA = ua) -> None:
            ua.later(now + 0.1, lambda t: ua.ring(inc, t))
            ua.later(now + 1.0, lambda t: ua.answer(inc, t))
        ua.on_invite = on_invite
    t0 = sim.clock.now
    call = alice.invite("sip:bob@10.0.0.2", t0)
    assert sim.run(t0 + 200, stop_when=lambda: not any(u.stack.transactions or u.uas_2xx
                                                       for u in (alice, bob, carol)) and sim.clock.now > t0 + 2)
    (kept,) = [ev for _, ev in call.events if isinstance(ev, Answered)]
    (a_session,) = alice.sessions.values()
    assert a_session.dialog is kept.dialog and a_session.ended_by is None
    winner, loser = (bob, carol) if _target_of(kept.dialog).host == BOB[0] else (carol, bob)
    (w_session,) = winner.sessions.values()
    assert w_session.acked and w_session.ended_by is None
    # the winner is never BYEd
    assert not any(first_line(d).startswith(b"BYE") for _, d, dst in alice.sent if dst == winner.addr)
    discarded = [ev for _, ev in call.events if isinstance(ev, ForkDiscarded)]
    if not loser.sessions:
        assert not received_at(loser, is_request("INVITE")) and not discarded
        return False
    # both UAS answered with their own To tag: Alice ACKed both, and BYEd the one she did not keep
    (dropped,) = discarded
    assert kept.dialog.remote_tag != dropped.dialog.remote_tag and not dropped.cancelled
    (l_session,) = loser.sessions.values()
    assert l_session.acked and l_session.ended_by == "remote BYE"
    assert [m for _, m in alice.log if m.startswith("BYE")] == ["BYE 200"]
    to_loser = [(t, first_line(d)) for t, d, dst in alice.sent if dst == loser.addr]
    first_bye = min(t for t, line in to_loser if line.startswith(b"BYE"))
    assert any(line.startswith(b"ACK") and t <= first_bye for t, line in to_loser)
    # every 2xx of the discarded fork that reached Alice was ACKed (retransmissions included)
    oks = [t for t, d in alice.received if is_response(200, "INVITE")(d) and parse_message(d).to.tag
           == dropped.dialog.remote_tag]
    acks = [t for t, d, dst in alice.sent if dst == loser.addr and is_request("ACK")(d)]
    assert len(acks) == len(oks)
    return True


def test_proxyless_fork_two_answers() -> None:
    forked = sum(_fork_run(seed) for seed in range(16))
    assert forked >= 8, f"only {forked} of 16 runs forked"


# -- glare --------------------------------------------------------------------------------------------
def _established(seed: int) -> tuple[Simulation, SimUA, SimUA, SimSession, SimSession]:
    sim, (alice, bob) = setup(seed, "alice", "bob")
    bob.on_invite = lambda inc, now: bob.answer(inc, now)
    t0 = sim.clock.now
    alice.invite("sip:bob@10.0.0.2", t0)
    assert sim.run(t0 + 40, stop_when=lambda: any(s.acked for s in bob.sessions.values()))
    (a,) = alice.sessions.values()
    (b,) = bob.sessions.values()
    sim.run_for(1.0)
    return sim, alice, bob, a, b


@pytest.mark.parametrize("seed", SEEDS)
def test_glare_491_and_backoff(seed: int) -> None:
    sim, alice, bob, a, b = _established(seed)
    t = sim.clock.now
    alice.reinvite(a, t)
    bob.reinvite(b, t)
    assert sim.run(t + 200, stop_when=lambda: any(c == 200 for _, c in a.reinvites)
                   and any(c == 200 for _, c in b.reinvites) and not alice.uas_2xx and not bob.uas_2xx)
    glare = [c for _, c in a.reinvites + b.reinvites if c == 491]
    assert glare, "simultaneous re-INVITEs must collide"
    assert all(c in (200, 491) for _, c in a.reinvites + b.reinvites)
    # §14.1 back-off: the next re-INVITE leaves within the window of the side's role
    for ua, session, window in ((alice, a, (2.1, 4.0)), (bob, b, (0.0, 2.0))):
        assert session.dialog.is_uac is (ua is alice)  # Alice sent the INVITE: she owns the Call-ID
        in_dialog = sends_of(ua, lambda d: d.startswith(b"INVITE ") and parse_message(d).to.tag is not None)
        sends = sorted(min(ts) for ts in in_dialog.values())
        for (got_491, code), nxt in zip(session.reinvites, sends[1:], strict=False):
            assert code == 491
            assert window[0] - EPS <= nxt - got_491 <= window[1] + EPS, (ua.name, nxt - got_491)
        assert len(sends) == len(session.reinvites)


def test_glare_backoff_windows() -> None:
    rnd = random.Random(5)
    owner = [glare_backoff(True, rnd.randbytes) for _ in range(2000)]
    other = [glare_backoff(False, rnd.randbytes) for _ in range(2000)]
    assert min(owner) >= 2.1 and max(owner) <= 4.0 and max(owner) - min(owner) > 1.7
    assert min(other) >= 0.0 and max(other) <= 2.0 and max(other) - min(other) > 1.8
    assert all(abs(x * 100 - round(x * 100)) < 1e-6 for x in owner + other)  # 10 ms units


# -- the CANCEL/200 race ------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_cancel_200_race_200_wins(seed: int) -> None:
    sim, (alice, bob) = setup(seed, "alice", "bob")
    t0 = sim.clock.now
    race_at = t0 + 3.0

    def on_invite(inc: Incoming, now: float) -> None:
        bob.later(now + 0.1, lambda t: bob.ring(inc, t))
        bob.later(race_at, lambda t: bob.answer(inc, t))

    bob.on_invite = on_invite
    call = alice.invite("sip:bob@10.0.0.2", t0)
    alice.later(race_at, lambda t: alice.cancel(call, t))
    assert sim.run(t0 + 200, stop_when=lambda: not alice.stack.transactions and not bob.stack.transactions
                   and not bob.uas_2xx and sim.clock.now > race_at)
    (b_session,) = bob.sessions.values()
    assert b_session.acked and b_session.ended_by == "remote BYE"
    assert not alice.sessions
    (discarded,) = [ev for _, ev in call.events if isinstance(ev, ForkDiscarded)]
    assert discarded.cancelled and discarded.response.status_code == 200
    assert not [ev for _, ev in call.events if isinstance(ev, Answered)]
    # Bob answered the CANCEL 200 (the INVITE was already answered: no 487). A CANCEL goes out
    # only after a provisional response (§9.1); when none got through in time there is none.
    provisional_before = [t for t in received_at(alice, lambda d: d.startswith(b"SIP/2.0 1")) if t <= race_at]
    if provisional_before:
        assert received_at(bob, is_request("CANCEL"))
        assert received_at(alice, is_response(200, "CANCEL"))
    else:
        assert not sends_of(alice, is_request("CANCEL"))
    assert not sends_of(bob, is_response(487, "INVITE"))
    # ACK first, then BYE
    ack_first = min(t for t, d, _ in alice.sent if is_request("ACK")(d))
    bye_first = min(t for t, d, _ in alice.sent if is_request("BYE")(d))
    assert ack_first <= bye_first
    assert [m for _, m in alice.log if m.startswith("BYE")] == ["BYE 200"]


def test_the_runs_were_hostile() -> None:
    lost = dup = reordered = 0
    for seed in SEEDS:
        sim, alice, bob, a, b = _established(seed)
        lost += sim.stats.lost
        dup += sim.stats.duplicated
        reordered += sim.stats.reordered
    assert lost > 5 and dup > 3 and reordered > 3
