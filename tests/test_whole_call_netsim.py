"""A whole call, sans-IO, over a bad simulated network with a fake clock.

REGISTER with digest, INVITE/180/200/ACK with an ICE + DTLS-SRTP offer/answer, a tone both
ways, RFC 4733 digits, BYE: every protocol object of the stack at once, under loss,
duplication, reordering and jitter, deterministically, in about a second of real time for a minute of simulated time.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np
import pytest

from netsim import LinkProfile, Simulation
from rtpcore.media_session import DtmfReceived, MediaConfig, MediaSession, MediaState
from sipcore.auth import DigestServer
from sipcore.dialog import Dialog
from sipcore.headers import Headers
from sipcore.message import SipRequest, SipResponse, make_response, random_tag
from sipcore.registration import Registered, RegistrationClient
from sipcore.stack import RequestReceived, ResponseReceived, SipStack, StrayResponse, Target

ALICE, BOB, REGISTRAR = "10.0.0.1", "10.0.0.2", "10.0.0.3"
SIP, RTP = 5060, 4000
T1 = 0.5


def _rng(seed: int) -> Callable[[int], bytes]:
    r = random.Random(seed)
    return lambda n: r.randbytes(n)


class Phone:
    """A tiny sans-IO user agent: a SipStack, one dialog, one MediaSession, a 20 ms media clock."""

    def __init__(self, sim: Simulation, host: str, name: str, seed: int, tone_hz: float) -> None:
        self.sim = sim
        self.host = host
        self.name = name
        self.rng = _rng(seed)
        self.stack = SipStack({"udp": (host, SIP)}, rng=self.rng)
        self.media = MediaSession((host, RTP), now=sim.clock.now, rng=self.rng,
                                  config=MediaConfig(security="dtls", codecs=("PCMU",)))
        self.tone_hz = tone_hz
        self.sent_samples = 0
        self.received: list[np.ndarray] = []
        self.digits: list[str] = []
        self.dialog: Dialog | None = None
        self.invite: SipRequest | None = None
        self.peer = Target("udp", "", SIP)
        self.ok_200: SipResponse | None = None
        self.ok_resend_at: float | None = None
        self.ok_interval = T1
        self.acked = False
        self.bye_done = False
        self.ended = False
        self.next_frame: float | None = None
        self.registration: RegistrationClient | None = None
        self.registered = False
        sim.add_endpoint((host, SIP), on_receive=self._sip_in, outgoing=self._sip_out,
                         next_deadline=self._sip_deadline, on_timeout=self._sip_timeout)
        sim.add_endpoint((host, RTP), on_receive=self._rtp_in, outgoing=self._rtp_out,
                         next_deadline=self._rtp_deadline, on_timeout=self._rtp_timeout)

    # -- signalling --------------------------------------------------------------------------------
    def _sip_in(self, data: bytes, src: tuple[str, int], now: float) -> None:
        self.stack.receive(data, Target("udp", src[0], src[1]), now)
        self._events(now)

    def _sip_out(self, now: float) -> list[tuple[bytes, tuple[str, int]]]:
        self._events(now)
        return [(d, (t.host, t.port)) for d, t in self.stack.datagrams_to_send()]

    def _sip_deadline(self) -> float | None:
        ds = [d for d in (self.stack.next_deadline(), self.ok_resend_at) if d is not None]
        if self.registration is not None:
            d = self.registration.next_deadline()
            if d is not None:
                ds.append(d)
        return min(ds) if ds else None

    def _sip_timeout(self, now: float) -> None:
        self.stack.handle_timeout(now)
        if self.registration is not None and (self.registration.next_deadline() or 1e18) <= now:
            self.registration.handle_timeout(now)
            self._registration_out(now)
        if self.ok_resend_at is not None and now >= self.ok_resend_at and self.ok_200 is not None:
            self.stack.send_stateless(self.ok_200, self.peer)  # §13.3.1.4: the UAS core retransmits 2xx
            self.ok_interval = min(self.ok_interval * 2, 4.0)
            self.ok_resend_at = now + self.ok_interval
        self._events(now)

    def _registration_out(self, now: float) -> None:
        assert self.registration is not None
        for req in self.registration.requests_to_send():
            self.stack.send_request(req, Target("udp", REGISTRAR, SIP), now)
        for ev in self.registration.events():
            if isinstance(ev, Registered):
                self.registered = True

    def register(self, now: float) -> None:
        self.registration = RegistrationClient(f"sip:{self.name}@example.test", "sip:example.test",
                                               f"sip:{self.name}@{self.host}:{SIP}", rng=self.rng,
                                               credentials=(self.name, "secret"), expires=300)
        self.registration.register(now)
        self._registration_out(now)

    def call(self, other: Phone, now: float) -> None:
        h = Headers()
        h.add("From", f"<sip:{self.name}@example.test>;tag={random_tag(self.rng)}")
        h.add("To", f"<sip:{other.name}@example.test>")
        h.add("Call-ID", random_tag(self.rng, 12))
        h.add("CSeq", "1 INVITE")
        h.add("Contact", f"<sip:{self.name}@{self.host}:{SIP}>")
        h.add("Content-Type", "application/sdp")
        self.invite = SipRequest("INVITE", f"sip:{other.name}@{other.host}:{SIP}", h, self.media.create_offer(now))
        self.peer = Target("udp", other.host, SIP)
        self.stack.send_request(self.invite, self.peer, now)

    def hang_up(self, now: float) -> None:
        assert self.dialog is not None
        self.stack.send_request(self.dialog.create_request("BYE"), self.peer, now)

    def _events(self, now: float) -> None:
        for ev in self.stack.events():
            if isinstance(ev, RequestReceived):
                self._on_request(ev, now)
            elif isinstance(ev, ResponseReceived):
                self._on_response(ev.response, now)
            elif isinstance(ev, StrayResponse):
                self._on_response(ev.response, now)

    def _on_request(self, ev: RequestReceived, now: float) -> None:
        req = ev.request
        if req.method == "INVITE" and ev.transaction is not None:
            if self.ok_200 is not None:
                return
            self.peer = Target("udp", ev.source.host, ev.source.port)
            answer = self.media.receive_offer(req.body, now)
            tag = random_tag(self.rng)
            self.stack.send_response(ev.transaction, make_response(req, 180, to_tag=tag), now)
            ok = make_response(req, 200, to_tag=tag, headers=[("Contact", f"<sip:{self.name}@{self.host}:{SIP}>")],
                               body=answer, content_type="application/sdp")
            self.stack.send_response(ev.transaction, ok, now)
            self.dialog = Dialog.from_uas(req, ok, rng=self.rng)
            self.ok_200, self.ok_resend_at = ok, now + T1
            self._start_media(now)
        elif req.method == "ACK":
            self.acked = True
            self.ok_resend_at = None
        elif req.method == "BYE" and ev.transaction is not None:
            self.stack.send_response(ev.transaction, make_response(req, 200), now)
            self.ended = True

    def _on_response(self, resp: SipResponse, now: float) -> None:
        method = resp.cseq.method
        if method == "REGISTER" and self.registration is not None:
            self.registration.receive_response(resp, now)
            self._registration_out(now)
        elif method == "INVITE" and 200 <= resp.status_code < 300 and self.invite is not None:
            if self.dialog is None:
                self.dialog = Dialog.from_uac(self.invite, resp)
                self.media.receive_answer(resp.body, now)
                self._start_media(now)
            self.stack.send_ack(self.dialog.create_ack(self.invite.cseq.seq), self.peer)  # every 2xx gets an ACK
        elif method == "BYE" and resp.status_code >= 200:
            self.bye_done = True

    # -- media ---------------------------------------------------------------------------------------
    def _start_media(self, now: float) -> None:
        if self.next_frame is None:
            self.next_frame = now

    def _rtp_in(self, data: bytes, src: tuple[str, int], now: float) -> None:
        self.media.receive(data, src, now)
        for ev in self.media.events():
            if isinstance(ev, DtmfReceived):
                self.digits.append(ev.digit)

    def _rtp_out(self, now: float) -> list[tuple[bytes, tuple[str, int]]]:
        return self.media.datagrams_to_send()

    def _rtp_deadline(self) -> float | None:
        ds = [d for d in (self.media.next_deadline(), self.next_frame) if d is not None]
        return min(ds) if ds else None

    def _rtp_timeout(self, now: float) -> None:
        d = self.media.next_deadline()
        if d is not None and d <= now:
            self.media.handle_timeout(now)
        if self.ended:
            self.next_frame = None
        if self.next_frame is not None and now >= self.next_frame:
            n = self.media.frame_samples
            t = (np.arange(n) + self.sent_samples) / 8000
            self.media.send_audio((np.sin(2 * np.pi * self.tone_hz * t) * 8000).astype(np.int16), now)
            self.sent_samples += n
            self.received.append(self.media.pull_audio(now))
            self.next_frame += 0.02
        for ev in self.media.events():
            if isinstance(ev, DtmfReceived):
                self.digits.append(ev.digit)


class Registrar:
    def __init__(self, sim: Simulation) -> None:
        self.stack = SipStack({"udp": (REGISTRAR, SIP)}, rng=_rng(99))
        self.digest = DigestServer("example.test", rng=_rng(98))
        self.bindings: dict[str, str] = {}
        sim.add_endpoint((REGISTRAR, SIP), on_receive=self._in, outgoing=self._out,
                         next_deadline=self.stack.next_deadline, on_timeout=self._timeout)

    def _in(self, data: bytes, src: tuple[str, int], now: float) -> None:
        self.stack.receive(data, Target("udp", src[0], src[1]), now)
        for ev in self.stack.events():
            if isinstance(ev, RequestReceived) and ev.transaction is not None:
                req = ev.request
                res = self.digest.verify(req, now, lambda user: "secret")
                if not res.ok:
                    resp = make_response(req, 401, to_tag="r1", headers=self.digest.challenge(now, stale=res.stale))
                else:
                    self.bindings[str(req.to.uri)] = str(req.contacts[0].uri)
                    resp = make_response(req, 200, to_tag="r1",
                                         headers=[("Contact", f"<{req.contacts[0].uri}>;expires=300")])
                self.stack.send_response(ev.transaction, resp, now)

    def _out(self, now: float) -> list[tuple[bytes, tuple[str, int]]]:
        return [(d, (t.host, t.port)) for d, t in self.stack.datagrams_to_send()]

    def _timeout(self, now: float) -> None:
        self.stack.handle_timeout(now)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_register_call_talk_dial_and_hang_up_over_a_bad_network(seed: int) -> None:
    sim = Simulation(seed=seed, profile=LinkProfile(loss=0.15, duplicate=0.05, reorder=0.05, delay=0.02,
                                                    jitter=0.02))
    registrar = Registrar(sim)
    alice = Phone(sim, ALICE, "alice", seed * 10 + 1, tone_hz=440.0)
    bob = Phone(sim, BOB, "bob", seed * 10 + 2, tone_hz=700.0)

    alice.register(sim.clock.now)
    assert sim.run_for(40, lambda: alice.registered), "REGISTER with digest completes despite loss"
    assert registrar.bindings["sip:alice@example.test"] == f"sip:alice@{ALICE}:{SIP}"

    alice.call(bob, sim.clock.now)
    assert sim.run_for(40, lambda: alice.dialog is not None and bob.acked), "INVITE/200/ACK completes"
    assert sim.run_for(30, lambda: alice.media.state is MediaState.FLOWING and bob.media.state is MediaState.FLOWING)
    assert alice.media.ice is not None and alice.media.ice.selected_pair() is not None
    assert alice.media.security == "dtls"

    sim.run_for(4.0)
    alice.media.send_dtmf("159#", sim.clock.now)
    sim.run_for(3.0)
    assert bob.digits == list("159#"), "RFC 4733 end packets are sent three times: digits survive 15 % loss"

    for phone, want in ((bob, 440.0), (alice, 700.0)):
        pcm = np.concatenate(phone.received[-150:]).astype(float)
        peak = np.argmax(np.abs(np.fft.rfft(pcm))) * 8000 / len(pcm)
        assert abs(peak - want) < 10, f"{phone.name} hears the other side's tone"
        st = phone.media.stats(sim.clock.now)
        assert 0.05 < st.inbound_loss < 0.3

    alice.hang_up(sim.clock.now)
    assert sim.run_for(40, lambda: alice.bye_done and bob.ended), "BYE completes"
