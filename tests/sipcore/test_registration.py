"""REGISTER client (RFC 3261 §10.2, RFC 5626) against a fake registrar built on DigestServer."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from netsim import FakeClock
from sipcore import LocalProtocolError, SipRequest, SipResponse, make_response, parse_message
from sipcore.auth import DigestServer
from sipcore.header_extra import parse_auth
from sipcore.registration import (
    Registered,
    RegistrationClient,
    RegistrationFailed,
    RegistrationPolicy,
    RegistrationState,
    Unregistered,
    keepalive_interval,
)

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "sip_auth"

AOR = "sip:alice@example.com"
REGISTRAR = "sip:example.com"
CONTACT = "sip:alice@192.0.2.10:5060"


def counter_rng(seed: int = 0) -> Callable[[int], bytes]:
    counter = itertools.count(seed)

    def rng(n: int) -> bytes:
        return bytes((next(counter) * 13 + i) & 0xFF for i in range(n))

    return rng


class FakeRegistrar:
    """A registrar (RFC 3261 §10.3) in a few lines: digest auth, Min-Expires, bindings per AOR.

    ``script`` lists canned answers given before normal processing: a status code, or
    (status, extra headers).
    """

    def __init__(self, *, users: dict[str, str] | None = None, min_expires: int = 60, max_expires: int = 3600,
                 nonce_ttl: float = 300.0, require_auth: bool = True, rewrite_contact_host: str | None = None,
                 extra_ok_headers: list[tuple[str, str]] | None = None) -> None:
        self.users = users if users is not None else {"alice": "pw"}
        self.auth = DigestServer("example.com", rng=counter_rng(1000), nonce_ttl=nonce_ttl)
        self.min_expires = min_expires
        self.max_expires = max_expires
        self.require_auth = require_auth
        self.rewrite_contact_host = rewrite_contact_host
        self.extra_ok_headers = extra_ok_headers or []
        self.bindings: dict[str, tuple[float, str]] = {}  # contact URI text -> (expires at, contact params)
        self.script: list[int | tuple[int, list[tuple[str, str]]]] = []
        self.received: list[SipRequest] = []
        self.challenges = 0

    def handle(self, req: SipRequest, now: float) -> SipResponse:
        self.received.append(req)
        wire = parse_message(bytes(req), strict=True)  # what we send must survive the wire
        assert isinstance(wire, SipRequest)
        if self.script:
            item = self.script.pop(0)
            code, headers = (item, []) if isinstance(item, int) else item
            return make_response(wire, code, to_tag="reg", headers=headers)
        if self.require_auth:
            result = self.auth.verify(wire, now, self.users.get)
            if not result.ok:
                self.challenges += 1
                return self.auth.challenge_response(wire, now, stale=result.stale, to_tag="reg")
        header_expires = wire.expires
        contacts = wire.contacts
        if len(contacts) == 1 and contacts[0].star:
            if header_expires != 0:
                return make_response(wire, 400, to_tag="reg")
            self.bindings.clear()
        else:
            for c in contacts:
                expires = c.expires if c.expires is not None else header_expires
                expires = 3600 if expires is None else expires
                if 0 < expires < self.min_expires:
                    return make_response(wire, 423, to_tag="reg", headers=[("Min-Expires", str(self.min_expires))])
            for c in contacts:
                expires = c.expires if c.expires is not None else (header_expires or 0)
                uri = str(c.uri)
                params = "".join(f";{k}={v}" if v is not None else f";{k}" for k, v in c.params
                                 if k.lower() != "expires")
                if expires == 0:
                    self.bindings.pop(uri, None)
                else:
                    self.bindings[uri] = (now + min(expires, self.max_expires), params)
        out = []
        for uri, (until, params) in self.bindings.items():
            if until > now:
                shown = uri.replace("192.0.2.10", self.rewrite_contact_host) if self.rewrite_contact_host else uri
                out.append(("Contact", f"<{shown}>{params};expires={int(until - now)}"))
        return make_response(wire, 200, to_tag="reg", headers=out + self.extra_ok_headers)


def pump(client: RegistrationClient, registrar: FakeRegistrar, now: float) -> list[SipRequest]:
    """Deliver every queued REGISTER to the registrar and its answer back, until quiet."""
    sent = []
    while True:
        batch = client.requests_to_send()
        if not batch:
            return sent
        for req in batch:
            sent.append(req)
            client.receive_response(registrar.handle(req, now), now)


def new_client(**kw: object) -> RegistrationClient:
    args: dict[str, object] = {"credentials": ("alice", "pw"), "rng": counter_rng()}
    args.update(kw)
    return RegistrationClient(AOR, REGISTRAR, CONTACT, **args)  # type: ignore[arg-type]


# -- the happy path ------------------------------------------------------------------------------------
def test_401_challenge_then_200() -> None:
    clock = FakeClock(100.0)
    registrar = FakeRegistrar()
    client = new_client(user_agent="pyvoice-test")
    assert client.next_deadline() is None and client.state is RegistrationState.IDLE
    client.register(clock.now)
    assert client.state is RegistrationState.REGISTERING
    sent = pump(client, registrar, clock.now)
    assert [r.cseq.seq for r in sent] == [1, 2]
    first, second = sent
    assert "via" not in first.headers  # the stack adds Via with a fresh branch
    assert first.uri_text == REGISTRAR and first.headers.get("to") == f"<{AOR}>"
    assert first.from_.tag == second.from_.tag and first.call_id == second.call_id
    assert first.headers.get("contact") == f"<{CONTACT}>;expires=600" and first.expires == 600
    assert first.headers.get("user-agent") == "pyvoice-test"
    assert "authorization" not in first.headers and "authorization" in second.headers
    [event] = client.events()
    assert isinstance(event, Registered)
    assert event.expires == 600 and event.refresh_at == 100.0 + 568.0
    assert event.contacts == (f"<{CONTACT}>;expires=600",)
    assert client.state is RegistrationState.REGISTERED and client.is_registered(clock.now)
    assert client.next_deadline() == 668.0 and client.expires_at == 700.0
    assert CONTACT in registrar.bindings


def test_refreshes_keep_call_id_and_increase_cseq() -> None:
    clock = FakeClock(0.0)
    registrar = FakeRegistrar(nonce_ttl=3600.0)
    client = new_client()
    client.register(clock.now)
    pump(client, registrar, clock.now)
    client.events()
    assert not client.handle_timeout(clock.advance(567.9))
    assert client.requests_to_send() == []
    assert client.handle_timeout(clock.advance(0.1))
    sent = pump(client, registrar, clock.now)
    # the cached nonce is reused (nc=2): no new challenge
    assert [r.cseq.seq for r in sent] == [3]
    assert dict(parse_auth(sent[0].headers.get("authorization") or "").params)["nc"] == "00000002"
    assert registrar.challenges == 1
    assert sent[0].call_id == client.call_id
    [event] = client.events()
    assert isinstance(event, Registered) and event.refresh_at == 568.0 + 568.0
    assert client.next_deadline() == 1136.0


def test_refresh_with_an_expired_nonce_is_retried_transparently() -> None:
    clock = FakeClock(0.0)
    registrar = FakeRegistrar(nonce_ttl=300.0)
    client = new_client()
    client.register(clock.now)
    pump(client, registrar, clock.now)
    clock.advance(568.0)
    assert client.handle_timeout(clock.now)
    sent = pump(client, registrar, clock.now)
    assert [r.cseq.seq for r in sent] == [3, 4]  # stale nonce -> 401 stale=true -> retry
    assert [type(e) for e in client.events()] == [Registered, Registered]
    assert client.state is RegistrationState.REGISTERED


def test_short_grant_refreshes_at_half_life_and_follows_the_registrar() -> None:
    registrar = FakeRegistrar(max_expires=40, min_expires=10)
    client = new_client(expires=600)
    client.register(50.0)
    pump(client, registrar, 50.0)
    [event] = client.events()
    assert isinstance(event, Registered) and event.expires == 40
    assert event.refresh_at == 50.0 + 20.0  # max(40 * 0.5, 40 - 32)
    policy = RegistrationPolicy(refresh_margin=5.0, min_refresh_ratio=0.25)
    other = new_client(policy=policy)
    other.register(0.0)
    pump(other, FakeRegistrar(max_expires=40, min_expires=10), 0.0)
    [ev] = other.events()
    assert isinstance(ev, Registered) and ev.refresh_at == 35.0


def test_423_retries_with_min_expires() -> None:
    registrar = FakeRegistrar(min_expires=300)
    client = new_client(expires=60)
    client.register(0.0)
    sent = pump(client, registrar, 0.0)
    assert [(r.cseq.seq, r.expires) for r in sent] == [(1, 60), (2, 60), (3, 300)]
    assert sent[2].headers.get("contact") == f"<{CONTACT}>;expires=300"
    [event] = client.events()
    assert isinstance(event, Registered) and event.expires == 300
    # a 423 that does not raise the interval is a failure, not a loop
    stuck = new_client(expires=300)
    reg = FakeRegistrar()
    reg.script = [(423, [("Min-Expires", "300")])]
    stuck.register(0.0)
    pump(stuck, reg, 0.0)
    [failed] = stuck.events()
    assert isinstance(failed, RegistrationFailed) and failed.status == 423 and failed.retry_after is None


def test_real_kamailio_200_grants_the_contact_expires() -> None:
    client = RegistrationClient("sip:carol@lab.local", "sip:lab.local", "sip:carol-0x55b68fda1c70@127.0.0.1:5080",
                                expires=300, instance_id="urn:uuid:fc6ba236-bcb8-4beb-0d4e-2aaeefda9066",
                                call_id="8ecac5787a4f97c1", rng=counter_rng())
    client.register(10.0)
    [req] = client.requests_to_send()
    assert req.headers.get("contact") == ('<sip:carol-0x55b68fda1c70@127.0.0.1:5080>;'
                                          '+sip.instance="<urn:uuid:fc6ba236-bcb8-4beb-0d4e-2aaeefda9066>";expires=300')
    ok = parse_message((VECTORS / "kamailio_200_register.udp.sip").read_bytes())
    assert isinstance(ok, SipResponse)
    ok.headers.set("CSeq", f"{req.cseq.seq} REGISTER")  # the capture's CSeq was 47993
    client.receive_response(ok, 10.2)
    [event] = client.events()
    assert isinstance(event, Registered) and event.expires == 300 and event.refresh_at == 10.0 + 268.0


def test_real_kamailio_ws_200_matches_by_instance_and_reg_id() -> None:
    client = RegistrationClient("sip:webrtc1@lab.local", "sip:lab.local", "sip:jc6gf6ss@qumuet7krahk.invalid;transport=ws",
                                expires=600, instance_id="<urn:uuid:d428d0b5-7f4e-4bf7-80b2-7725726f129f>", reg_id=1,
                                call_id="9o0l03drshdkckrcis84pc", rng=counter_rng())
    client.register(0.0)
    [req] = client.requests_to_send()
    assert req.headers.get("supported") == "outbound"
    assert ';reg-id=1;' in (req.headers.get("contact") or "")
    ok = parse_message((VECTORS / "kamailio_200_register.ws.sip").read_bytes())
    assert isinstance(ok, SipResponse)
    ok.headers.set("CSeq", f"{req.cseq.seq} REGISTER")
    client.receive_response(ok, 0.1)
    [event] = client.events()
    assert isinstance(event, Registered) and event.expires == 600 and not event.outbound


# -- failures ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("code", "reason"), [(403, "Forbidden"), (302, "Moved Temporarily"), (404, "Not Found"),
                                              (603, "Decline"), (488, "Not Acceptable Here")])
def test_permanent_failures_wait_for_the_application(code: int, reason: str) -> None:
    registrar = FakeRegistrar()
    registrar.script = [code]
    client = new_client()
    client.register(0.0)
    pump(client, registrar, 0.0)
    assert client.events() == [RegistrationFailed(status=code, reason=reason, retry_after=None)]
    assert client.state is RegistrationState.FAILED and client.next_deadline() is None
    client.register(5.0)  # the application tries again
    pump(client, registrar, 5.0)
    assert isinstance(client.events()[-1], Registered)


def test_503_with_retry_after_is_retried_then() -> None:
    clock = FakeClock(0.0)
    registrar = FakeRegistrar()
    registrar.script = [(503, [("Retry-After", "120 (maintenance)")])]
    client = new_client()
    client.register(clock.now)
    pump(client, registrar, clock.now)
    assert client.events() == [RegistrationFailed(status=503, reason="Service Unavailable", retry_after=120.0)]
    assert client.next_deadline() == 120.0
    assert not client.handle_timeout(clock.advance(119.0))
    assert client.handle_timeout(clock.advance(1.0))
    pump(client, registrar, clock.now)
    [event] = client.events()
    assert isinstance(event, Registered) and client.state is RegistrationState.REGISTERED


def test_timeouts_back_off_per_rfc5626() -> None:
    registrar = FakeRegistrar()
    registrar.script = [408, 408, 500]
    client = new_client()
    now = 0.0
    client.register(now)
    waits = []
    for _ in range(3):
        pump(client, registrar, now)
        [event] = client.events()
        assert isinstance(event, RegistrationFailed) and event.retry_after is not None
        waits.append(event.retry_after)
        now = client.next_deadline() or 0.0
        assert client.handle_timeout(now)
    assert 30.0 <= waits[0] <= 60.0 and 60.0 <= waits[1] <= 120.0 and 120.0 <= waits[2] <= 240.0
    pump(client, registrar, now)
    assert isinstance(client.events()[0], Registered)
    registrar.script = [503]
    client.register(now)
    pump(client, registrar, now)
    [again] = client.events()
    assert isinstance(again, RegistrationFailed) and again.retry_after is not None and again.retry_after <= 60.0


def test_wrong_password_and_missing_credentials() -> None:
    client = new_client(credentials=("alice", "wrong"))
    client.register(0.0)
    sent = pump(client, FakeRegistrar(), 0.0)
    assert len(sent) == 2
    [event] = client.events()
    assert isinstance(event, RegistrationFailed) and event.status == 401 and event.retry_after is None
    assert "wrong username or password" in event.reason
    anonymous = new_client(credentials=None)
    anonymous.register(0.0)
    pump(anonymous, FakeRegistrar(), 0.0)
    assert anonymous.events() == [RegistrationFailed(status=401, reason="no credentials configured", retry_after=None)]


def test_challenge_loops_are_bounded() -> None:
    registrar = FakeRegistrar()
    nonce = itertools.count()
    registrar.script = [
        (401, [("WWW-Authenticate", f'Digest realm="example.com", nonce="n{next(nonce)}", qop="auth", stale=true')])
        for _ in range(10)
    ]
    client = new_client(policy=RegistrationPolicy(max_auth_attempts=3))
    client.register(0.0)
    sent = pump(client, registrar, 0.0)
    assert len(sent) == 4
    [event] = client.events()
    assert isinstance(event, RegistrationFailed) and event.reason == "too many challenges"


def test_stray_and_provisional_responses_are_ignored() -> None:
    registrar = FakeRegistrar(require_auth=False)
    client = new_client()
    client.register(0.0)
    [req] = client.requests_to_send()
    client.receive_response(make_response(req, 100), 0.0)
    old = req.copy()
    old.headers.set("CSeq", "0 REGISTER")
    client.receive_response(make_response(old, 200, to_tag="x"), 0.0)
    other = req.copy()
    other.headers.set("Call-ID", "someone-else")
    client.receive_response(make_response(other, 200, to_tag="x"), 0.0)
    assert client.events() == [] and client.state is RegistrationState.REGISTERING
    client.receive_response(registrar.handle(req, 0.0), 0.0)
    assert isinstance(client.events()[0], Registered)
    client.receive_response(registrar.handle(req, 0.0), 0.0)  # a retransmitted 200: nothing new
    assert client.events() == []


def test_200_without_our_binding_is_a_failure() -> None:
    registrar = FakeRegistrar(require_auth=False)
    registrar.script = [(200, [("Contact", "<sip:other@192.0.2.99>;expires=100"), ("Expires", "0")])]
    client = new_client()
    client.register(0.0)
    pump(client, registrar, 0.0)
    [event] = client.events()
    assert isinstance(event, RegistrationFailed) and event.reason == "registrar kept no binding"
    assert event.retry_after is not None


# -- unregister --------------------------------------------------------------------------------------------
def test_unregister_removes_the_binding() -> None:
    registrar = FakeRegistrar()
    client = new_client()
    client.register(0.0)
    pump(client, registrar, 0.0)
    client.events()
    client.unregister(10.0)
    assert client.next_deadline() is None and client.state is RegistrationState.UNREGISTERING
    sent = pump(client, registrar, 10.0)
    assert [r.headers.get("contact") for r in sent] == [f"<{CONTACT}>;expires=0"]
    assert sent[0].expires == 0 and "authorization" in sent[0].headers  # nonce reused: no extra 401
    assert client.events() == [Unregistered(status=200, reason="OK")]
    assert registrar.bindings == {} and client.state is RegistrationState.IDLE
    assert not client.is_registered(10.0) and client.next_deadline() is None


def test_unregister_all_bindings_with_star() -> None:
    registrar = FakeRegistrar()
    registrar.bindings["sip:alice@198.51.100.7"] = (10_000.0, "")
    client = new_client()
    client.unregister(0.0, all_bindings=True)
    sent = pump(client, registrar, 0.0)
    assert [r.headers.get("contact") for r in sent] == ["*", "*"] and sent[0].expires == 0
    assert client.events() == [Unregistered(status=200, reason="OK")] and registrar.bindings == {}


def test_unregister_while_registering_waits_for_the_final_response() -> None:
    registrar = FakeRegistrar()
    client = new_client()
    client.register(0.0)
    [first] = client.requests_to_send()
    client.unregister(0.5)
    assert client.requests_to_send() == []  # one REGISTER at a time (RFC 3261 §10.2)
    client.receive_response(registrar.handle(first, 0.5), 0.5)  # 401: answered first
    sent = pump(client, registrar, 0.6)
    assert [r.expires for r in sent] == [600, 0]
    assert [type(e) for e in client.events()] == [Registered, Unregistered]
    assert client.state is RegistrationState.IDLE and registrar.bindings == {}


def test_refused_unregister_is_reported() -> None:
    registrar = FakeRegistrar()
    client = new_client()
    client.register(0.0)
    pump(client, registrar, 0.0)
    registrar.script = [500]
    client.unregister(1.0)
    pump(client, registrar, 1.0)
    assert client.events()[-1] == Unregistered(status=500, reason="Server Internal Error")


# -- RFC 5626 outbound --------------------------------------------------------------------------------------
def test_outbound_contact_matching_flow_timer_and_keepalive() -> None:
    registrar = FakeRegistrar(rewrite_contact_host="203.0.113.5",
                              extra_ok_headers=[("Require", "outbound"), ("Flow-Timer", "60"),
                                                ("Service-Route", "<sip:orig@edge.example.com;lr>")])
    client = new_client(instance_id="urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF", reg_id=1, expires=900)
    client.register(0.0)
    sent = pump(client, registrar, 0.0)
    assert sent[0].headers.get("supported") == "outbound"
    [event] = client.events()
    assert isinstance(event, Registered)
    assert event.expires == 900 and event.outbound and event.flow_timer == 60
    assert event.service_route == ("<sip:orig@edge.example.com;lr>",)
    assert "203.0.113.5" in event.contacts[0]  # URI rewritten: matched by +sip.instance/reg-id
    for seed in range(20):
        assert 48.0 <= keepalive_interval(event.flow_timer, reliable=True, rng=counter_rng(seed)) <= 60.0
    assert 96.0 <= keepalive_interval(None, reliable=True, rng=counter_rng()) <= 120.0
    assert 20.0 <= keepalive_interval(None, reliable=False, rng=counter_rng()) <= 25.0


def test_configuration_errors() -> None:
    with pytest.raises(LocalProtocolError):
        new_client(reg_id=1)
    with pytest.raises(LocalProtocolError):
        new_client(expires=0)
    with pytest.raises(LocalProtocolError):
        new_client(instance_id='"<>"')
    with pytest.raises(LocalProtocolError):
        RegistrationPolicy(min_refresh_ratio=0.0)
    with pytest.raises(LocalProtocolError):
        RegistrationPolicy(backoff_base=10.0, backoff_max=5.0)


# -- hostile input: only typed outcomes --------------------------------------------------------------
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([200, 401, 407, 423, 503, 302]),
       st.sampled_from(["Contact", "Expires", "Min-Expires", "Retry-After", "Require", "Flow-Timer", "CSeq",
                        "Call-ID", "WWW-Authenticate", "Proxy-Authenticate"]),
       st.text(alphabet="<>;:=@\"*, sip0123456789expires.²Digestrealmnonce", max_size=40))
def test_hostile_responses_never_raise(code: int, name: str, value: str) -> None:
    client = new_client()
    client.register(0.0)
    [request] = client.requests_to_send()
    response = make_response(request, code, to_tag="x")
    response.headers.add(name, value)
    client.receive_response(response, 0.0)
    for event in client.events():
        assert isinstance(event, Registered | RegistrationFailed)


def test_non_ascii_digits_in_contact_expires_fall_back_to_the_expires_header() -> None:
    # str.isdigit() accepts "²", int() does not: the granted time must come from a checked parse
    client = new_client()
    client.register(0.0)
    [request] = client.requests_to_send()
    ok = make_response(request, 200, to_tag="x", headers=[("Contact", f"<{CONTACT}>;expires=²"), ("Expires", "90")])
    client.receive_response(ok, 0.0)
    [event] = client.events()
    assert isinstance(event, Registered) and event.expires == 90
