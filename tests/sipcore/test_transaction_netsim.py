"""Two TransactionLayers over a lossy simulated UDP link (tests/netsim.py).

30 % loss, duplication and reordering, fixed seeds, a fake clock. Alice sends INVITE (Bob
answers 180 then 486, Alice's ICT ACKs), OPTIONS (200), and a second INVITE that Bob accepts
(200, retransmitted by Bob's TU through the IST in Accepted until Alice's TU ACKs it, RFC 6026).
Every seed must end with both sides in the right final state, every TU event exactly once
where the RFC says once, and every transaction gone by the time its timers allow.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from netsim import LinkProfile, Simulation
from sipcore import SipRequest, SipResponse, make_response, parse_message
from sipcore.timers import SipTimers
from sipcore.transaction import (
    AckReceived,
    ClientTransaction,
    ResponseReceived,
    ServerTransaction,
    TransactionEvent,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimeout,
)

ALICE = ("10.0.0.1", 5060)
BOB = ("10.0.0.2", 5060)
LOSSY = LinkProfile(loss=0.3, duplicate=0.2, reorder=0.3, delay=0.02, jitter=0.03)
T = SipTimers()


def make_request(method: str, branch: str, call_id: str, cseq: int = 1) -> SipRequest:
    text = (
        f"{method} sip:bob@10.0.0.2 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 10.0.0.1:5060;branch={branch}\r\n"
        "Max-Forwards: 70\r\n"
        "To: <sip:bob@10.0.0.2>\r\n"
        "From: <sip:alice@10.0.0.1>;tag=a1\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} {method}\r\n"
        "Contact: <sip:alice@10.0.0.1>\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    msg = parse_message(text.encode())
    assert isinstance(msg, SipRequest)
    return msg


@dataclass
class Peer:
    """A minimal stack + TU around one TransactionLayer, plugged into the simulation."""

    name: str
    layer: TransactionLayer = field(default_factory=lambda: TransactionLayer(T))
    log: list[tuple[float, TransactionEvent]] = field(default_factory=list)
    created: list[tuple[float, ServerTransaction]] = field(default_factory=list)
    stray: list[tuple[float, SipRequest | SipResponse]] = field(default_factory=list)
    raw_out: list[tuple[bytes, tuple[str, int]]] = field(default_factory=list)
    tu_jobs: list[tuple[float, int, object]] = field(default_factory=list)
    wire: list[tuple[float, str]] = field(default_factory=list)
    tu_seq: int = 0

    # -- netsim hooks ---------------------------------------------------------------------------
    def receive(self, data: bytes, src: tuple[str, int], now: float) -> None:
        msg = parse_message(data)
        if isinstance(msg, SipResponse):
            self.wire.append((now, f"<- {msg.status_code} {msg.cseq.method}"))
            tx = self.layer.match_response(msg)
            if tx is None:
                self.stray.append((now, msg))
                self.on_stray_response(msg, src, now)
            else:
                tx.receive_response(msg, now)
        else:
            self.wire.append((now, f"<- {msg.method}"))
            stx = self.layer.match_request(msg)
            if stx is not None:
                stx.receive_request(msg, now)
            elif msg.method == "ACK":
                self.stray.append((now, msg))  # an ACK for a 2xx: the TU's business
                self.on_ack_for_2xx(msg, now)
            else:
                stx = self.layer.server(msg, now, context=src)
                self.created.append((now, stx))
                self.on_request(stx, now)
        self.pump(now)

    def outgoing(self, now: float) -> list[tuple[bytes, tuple[str, int]]]:
        out = [(bytes(m), ctx) for m, ctx in self.layer.messages_to_send()]  # type: ignore[misc]
        out += self.raw_out
        self.raw_out = []
        for data, _ in out:
            first = data.split(b"\r\n", 1)[0].decode()
            self.wire.append((now, "-> " + first))
        return out

    def next_deadline(self) -> float | None:
        times = [d for d in (self.layer.next_deadline(),) if d is not None]
        times += [t for t, _, _ in self.tu_jobs]
        return min(times) if times else None

    def on_timeout(self, now: float) -> None:
        due = [j for j in self.tu_jobs if j[0] <= now]
        self.tu_jobs = [j for j in self.tu_jobs if j[0] > now]
        for _, _, job in sorted(due, key=lambda j: (j[0], j[1])):
            job(now)  # type: ignore[operator]
        self.layer.handle_timeout(now)
        self.pump(now)

    # -- TU -------------------------------------------------------------------------------------
    def later(self, at: float, job: object) -> None:
        self.tu_seq += 1
        self.tu_jobs.append((at, self.tu_seq, job))

    def pump(self, now: float) -> None:
        for ev in self.layer.events():
            self.log.append((now, ev))
            self.on_event(ev, now)

    def on_request(self, stx: ServerTransaction, now: float) -> None:
        pass

    def on_event(self, ev: TransactionEvent, now: float) -> None:
        pass

    def on_stray_response(self, resp: SipResponse, src: tuple[str, int], now: float) -> None:
        pass

    def on_ack_for_2xx(self, ack: SipRequest, now: float) -> None:
        pass

    def events_of(self, tx: object, kind: type) -> list[tuple[float, TransactionEvent]]:
        return [(t, e) for t, e in self.log if isinstance(e, kind) and e.transaction is tx]


class Bob(Peer):
    """Rings then rejects call-1 after 2 s; accepts call-2 after 1 s and retransmits its 200."""

    acked_2xx: list[float]

    def __init__(self) -> None:
        super().__init__("bob")
        self.acked_2xx = []

    def on_request(self, stx: ServerTransaction, now: float) -> None:
        req = stx.request
        if req.method == "OPTIONS":
            stx.send_response(make_response(req, 200, to_tag="bopt"), now)
        elif req.call_id == "call-1":
            stx.send_response(make_response(req, 180, to_tag="b1"), now)
            self.later(now + 2.0, lambda t: stx.send_response(make_response(req, 486, to_tag="b1"), t))
        elif req.call_id == "call-2":
            ok = make_response(req, 200, to_tag="b2", headers=[("Contact", "<sip:bob@10.0.0.2>")])
            self.later(now + 1.0, lambda t: self.answer(stx, ok, t, t, T.t1))

    def answer(self, stx: ServerTransaction, ok: SipResponse, first: float, now: float, interval: float) -> None:
        # RFC 3261 §13.3.1.4: the UAS core retransmits its 2xx (T1 doubling to T2) until the
        # ACK arrives or 64*T1 has passed, through the IST while it is in Accepted.
        if self.acked_2xx or now - first >= T.timer_h or stx.terminated:
            return
        stx.send_response(ok, now)
        self.later(now + interval, lambda t: self.answer(stx, ok, first, t, min(2 * interval, T.t2)))

    def on_ack_for_2xx(self, ack: SipRequest, now: float) -> None:
        self.acked_2xx.append(now)


class Alice(Peer):
    """ACKs every 2xx herself (a new branch each time, outside any transaction, §13.2.2.4)."""

    def __init__(self) -> None:
        super().__init__("alice")
        self.acks_sent = 0

    def on_event(self, ev: TransactionEvent, now: float) -> None:
        if isinstance(ev, ResponseReceived) and 200 <= ev.response.status_code < 300:
            if ev.transaction.request.method == "INVITE":
                self.send_2xx_ack(ev.transaction.request, ev.response)

    def on_stray_response(self, resp: SipResponse, src: tuple[str, int], now: float) -> None:
        # a 2xx retransmission after Timer M: still ACK it (the dialog layer would)
        if resp.is_success and resp.cseq.method == "INVITE":
            self.send_2xx_ack(make_request("INVITE", "z9hG4bKx", resp.call_id, resp.cseq.seq), resp)

    def send_2xx_ack(self, invite: SipRequest, resp: SipResponse) -> None:
        self.acks_sent += 1
        ack = make_request("ACK", f"z9hG4bKack{self.acks_sent}", invite.call_id, invite.cseq.seq)
        ack.headers.set("To", resp.headers.get("to") or "")
        self.raw_out.append((bytes(ack), BOB))


def run(seed: int) -> tuple[Simulation, Alice, Bob, dict[str, ClientTransaction], float]:
    sim = Simulation(seed=seed, profile=LOSSY)
    alice, bob = Alice(), Bob()
    for addr, peer in ((ALICE, alice), (BOB, bob)):
        sim.add_endpoint(addr, on_receive=peer.receive, outgoing=peer.outgoing,
                         next_deadline=peer.next_deadline, on_timeout=peer.on_timeout)
    t0 = sim.clock.now
    txs = {
        "busy": alice.layer.client(make_request("INVITE", "z9hG4bKinv1", "call-1"), t0, context=BOB),
        "options": alice.layer.client(make_request("OPTIONS", "z9hG4bKopt1", "opt-1"), t0, context=BOB),
        "answered": alice.layer.client(make_request("INVITE", "z9hG4bKinv2", "call-2"), t0, context=BOB),
    }
    done = sim.run(t0 + 200.0, stop_when=lambda: not alice.layer and not bob.layer and not bob.tu_jobs)
    assert done, f"seed {seed}: still running: {alice.layer.client_transactions} {bob.layer.server_transactions}"
    return sim, alice, bob, txs, t0


def finals(peer: Peer, tx: object) -> list[tuple[float, int]]:
    return [(t, e.response.status_code) for t, e in peer.events_of(tx, ResponseReceived)  # type: ignore[attr-defined]
            if e.response.status_code >= 200]


@pytest.mark.parametrize("seed", range(12))
def test_transactions_survive_a_lossy_link(seed: int) -> None:
    sim, alice, bob, txs, t0 = run(seed)
    assert sim.stats.lost > 0
    bound_b = t0 + T.timer_b  # a final must arrive before Timer B / F would fire

    # -- INVITE / 180 / 486 / ACK -----------------------------------------------------------------
    busy = txs["busy"]
    (t_busy, code), *rest = finals(alice, busy)
    assert code == 486 and rest == []  # passed up once; retransmissions were absorbed
    assert t_busy < bound_b and not alice.events_of(busy, TransactionTimeout)
    ((t_end, _),) = alice.events_of(busy, TransactionTerminated)
    assert t_end == pytest.approx(t_busy + T.timer_d(False))  # Timer D after Completed
    assert busy.ack is not None and busy.ack.top_via.branch == "z9hG4bKinv1"
    (t_ist, ist), = [(t, s) for t, s in bob.created if s.request.call_id == "call-1"]
    ((t_ack, ack_event),) = bob.events_of(ist, AckReceived)  # the ACK reached Bob's IST, once
    assert isinstance(ack_event, AckReceived)
    assert ack_event.request.method == "ACK" and ack_event.request.cseq.method == "ACK"
    assert not bob.events_of(ist, TransactionTimeout)  # Timer H never fired
    ((t_ist_end, _),) = bob.events_of(ist, TransactionTerminated)
    assert t_ist_end == pytest.approx(t_ack + T.timer_i(False))  # Timer I after Confirmed
    assert t_ack <= t_ist + 2.0 + T.timer_h

    # -- OPTIONS / 200 ---------------------------------------------------------------------------
    opt = txs["options"]
    ((t_opt, code),) = finals(alice, opt)
    assert code == 200 and t_opt < bound_b
    ((t_opt_end, _),) = alice.events_of(opt, TransactionTerminated)
    assert t_opt_end == pytest.approx(t_opt + T.timer_k(False))  # Timer K
    ((t_nist, nist),) = [(t, s) for t, s in bob.created if s.request.method == "OPTIONS"]
    ((t_nist_end, _),) = bob.events_of(nist, TransactionTerminated)
    assert t_nist_end == pytest.approx(t_nist + T.timer_j(False))  # Bob answered at once; Timer J

    # -- INVITE / 200 (RFC 6026 Accepted on both sides) -------------------------------------------
    answered = txs["answered"]
    oks = finals(alice, answered)
    assert oks and {c for _, c in oks} == {200} and oks[0][0] < bound_b
    ((t_m, _),) = alice.events_of(answered, TransactionTerminated)
    assert t_m == pytest.approx(oks[0][0] + T.timer_m)  # Timer M from the first 2xx
    assert bob.acked_2xx, "Alice's ACK for the 2xx never reached Bob"
    (t_ist2, ist2), = [(t, s) for t, s in bob.created if s.request.call_id == "call-2"]
    ((t_l, _),) = bob.events_of(ist2, TransactionTerminated)
    assert t_l == pytest.approx(t_ist2 + 1.0 + T.timer_l)  # Timer L from Bob's first 2xx

    # Retransmitted and duplicated INVITEs never created a second server transaction
    assert sorted(s.request.call_id for _, s in bob.created) == ["call-1", "call-2", "opt-1"]
    assert not [m for _, m in bob.stray if isinstance(m, SipResponse)]
    assert len(alice.layer) == len(bob.layer) == 0
    assert sim.clock.now <= t0 + T.timer_b + T.timer_d(False) + 5.0


def test_the_link_really_is_hostile() -> None:
    """The chosen profile loses, duplicates and reorders packets in these runs."""
    lost = dup = reordered = invites = g_retrans = 0
    for seed in range(12):
        sim, alice, bob, _, _ = run(seed)
        lost += sim.stats.lost
        dup += sim.stats.duplicated
        reordered += sim.stats.reordered
        invites += sum(1 for _, w in alice.wire if w.startswith("-> INVITE"))
        g_retrans += sum(1 for _, w in bob.wire if w.startswith("-> SIP/2.0 486"))
    assert lost > 20 and dup > 10 and reordered > 10
    assert invites > 2 * 12  # Timer A retransmissions happened
    assert g_retrans > 12  # Timer G retransmissions happened


def test_same_seed_same_run() -> None:
    a = run(3)
    b = run(3)
    assert a[1].wire == b[1].wire and a[2].wire == b[2].wire
