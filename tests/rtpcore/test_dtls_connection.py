"""DtlsConnection end to end: our client against our server in memory and over the simulated
network (loss, duplication, reordering, MTU 500), retransmission timing with a fake clock
(RFC 6347 §4.2.4), fingerprints (RFC 8122), alerts, and the cookie exchange (RFC 6347 §4.2.1).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from netsim import FakeClock, LinkProfile, Simulation
from rtpcore.dtls import (
    AlertReceived,
    ApplicationDataReceived,
    ConnectionClosed,
    DtlsConnection,
    DtlsHandshakeTimeout,
    DtlsTimers,
    FingerprintMismatch,
    HandshakeCompleted,
    HandshakeFailure,
    State,
    fingerprint,
    generate_certificate,
)
from rtpcore.dtls.alerts import BadCertificate, alert_for
from rtpcore.dtls.constants import AlertDescription, CipherSuite, ContentType, HandshakeType, SrtpProfile
from rtpcore.dtls.fragment import handshake_header, parse_fragments
from rtpcore.dtls.keylog import KeyLogWriter, parse_keylog_line
from rtpcore.dtls.messages import ClientHello, HelloVerifyRequest, parse_handshake_body
from rtpcore.dtls.prf import prf
from rtpcore.dtls.record import encode_record, parse_records
from rtpcore.errors import LocalProtocolError

NOW = 1_800_000_000.0
CLIENT = generate_certificate(now=NOW, common_name="client")
SERVER = generate_certificate(now=NOW, common_name="server")
OTHER = generate_certificate(now=NOW, common_name="mallory")


def rng_from(seed: int):
    """Deterministic injected randomness (a counter through SHA-256 would do too)."""
    state = [seed]

    def rng(n: int) -> bytes:
        out = b""
        while len(out) < n:
            state[0] += 1
            out += prf(state[0].to_bytes(8, "big"), b"rng", b"", 32)
        return out[:n]

    return rng


def pair(client_kw: dict[str, Any] | None = None, server_kw: dict[str, Any] | None = None,
         server_cert: tuple[Any, Any] = SERVER) -> tuple[DtlsConnection, DtlsConnection]:
    ckw = {"remote_fingerprint": fingerprint(server_cert[0]), "rng": rng_from(1), **(client_kw or {})}
    skw = {"remote_fingerprint": fingerprint(CLIENT[0]), "rng": rng_from(2), **(server_kw or {})}
    return (DtlsConnection("client", CLIENT[0], CLIENT[1], **ckw),
            DtlsConnection("server", server_cert[0], server_cert[1], **skw))


def pump(a: DtlsConnection, b: DtlsConnection, now: float = 0.0, rounds: int = 10) -> list[int]:
    """Deliver everything both ways; returns datagram sizes seen."""
    sizes = []
    for _ in range(rounds):
        moved = False
        for src, dst in ((a, b), (b, a)):
            for d in src.datagrams_to_send():
                sizes.append(len(d))
                moved = True
                dst.receive(d, now)
        if not moved:
            break
    return sizes


def completed(conn: DtlsConnection) -> HandshakeCompleted:
    evs = [e for e in conn.events() if isinstance(e, HandshakeCompleted)]
    assert len(evs) == 1
    return evs[0]


def check_keys(c: HandshakeCompleted, s: HandshakeCompleted) -> None:
    assert c.srtp_profile == s.srtp_profile and c.srtp_profile is not None
    assert c.local_key == s.remote_key and c.local_salt == s.remote_salt
    assert c.remote_key == s.local_key and c.remote_salt == s.local_salt
    assert len(c.local_key) == c.srtp_profile.master_key_length
    assert len(c.local_salt) == c.srtp_profile.master_salt_length
    assert c.local_key != c.remote_key


# -- in memory ------------------------------------------------------------------------------

def test_handshake_in_memory_with_cookie_exchange() -> None:
    client, server = pair()
    client.start(0.0)
    sizes = pump(client, server)
    assert client.state is State.CONNECTED and server.state is State.CONNECTED
    assert len(sizes) == 6  # CH, HVR, CH+cookie, flight 4, flight 5, flight 6
    c, s = completed(client), completed(server)
    check_keys(c, s)
    assert c.cipher_suite is CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
    assert c.srtp_profile is SrtpProfile.SRTP_AEAD_AES_128_GCM and c.extended_master_secret
    assert c.peer_fingerprint == fingerprint(SERVER[0]) and s.peer_fingerprint == fingerprint(CLIENT[0])
    assert repr(c.local_key) not in repr(c)
    assert client.next_deadline() is None and server.next_deadline() is None
    # RFC 5705 exporter agrees on both sides; the SRTP keys are its RFC 5764 §4.2 split
    ekm = client.export_keying_material(b"EXTRACTOR-dtls_srtp", 56)
    assert ekm == server.export_keying_material(b"EXTRACTOR-dtls_srtp", 56)
    assert ekm == c.local_key + c.remote_key + c.local_salt + c.remote_salt
    # application data both ways, and a replayed record is dropped
    client.send(b"ping")
    (rec,) = client.datagrams_to_send()
    server.receive(rec, 1.0)
    server.receive(rec, 1.0)
    assert [e.data for e in server.events() if isinstance(e, ApplicationDataReceived)] == [b"ping"]
    server.send(b"pong")
    pump(client, server)
    assert [e.data for e in client.events() if isinstance(e, ApplicationDataReceived)] == [b"pong"]


def test_deterministic_with_injected_rng_except_ephemeral_keys() -> None:
    sent = []
    for _ in range(2):
        client, _ = pair()
        client.start(0.0)
        (ch,) = client.datagrams_to_send()
        sent.append(ch)
    assert sent[0] == sent[1]  # same random, same ClientHello


@pytest.mark.parametrize("suites,expected", [
    ((CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,), CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384),
    ((CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,), CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
])
def test_cipher_suites(suites: tuple[CipherSuite, ...], expected: CipherSuite) -> None:
    client, server = pair({"cipher_suites": suites})
    client.start(0.0)
    pump(client, server)
    c, s = completed(client), completed(server)
    assert c.cipher_suite is expected and s.cipher_suite is expected
    check_keys(c, s)


def rsa_certificate() -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """An RSA self-signed certificate like baresip's (our generator makes P-256 only)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rsa")])
    t = datetime.datetime.fromtimestamp(NOW, tz=datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(7).not_valid_before(t).not_valid_after(t + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return cert, key


def test_rsa_server_certificate_uses_ecdhe_rsa() -> None:
    cert, key = rsa_certificate()
    client, server = pair(server_cert=(cert, key))
    client.start(0.0)
    pump(client, server)
    c, s = completed(client), completed(server)
    assert c.cipher_suite is CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
    check_keys(c, s)


@pytest.mark.parametrize("profile", list(SrtpProfile))
def test_each_srtp_profile(profile: SrtpProfile) -> None:
    client, server = pair({"srtp_profiles": [profile]}, {"srtp_profiles": list(SrtpProfile)})
    client.start(0.0)
    pump(client, server)
    c, s = completed(client), completed(server)
    assert c.srtp_profile is profile
    check_keys(c, s)


def test_no_common_srtp_profile_is_handshake_failure() -> None:
    client, server = pair({"srtp_profiles": [SrtpProfile.SRTP_AES128_CM_HMAC_SHA1_32]},
                          {"srtp_profiles": [SrtpProfile.SRTP_AEAD_AES_128_GCM]})
    client.start(0.0)
    with pytest.raises(HandshakeFailure, match="handshake_failure.*SRTP"):
        pump(client, server)
    assert server.state is State.FAILED
    pump(client, server)  # the alert reaches the client
    evs = client.events()
    alerts = [e for e in evs if isinstance(e, AlertReceived)]
    assert alerts and alerts[0].name == "handshake_failure" and alerts[0].fatal
    assert isinstance(alerts[0].as_error(), HandshakeFailure)
    assert any(isinstance(e, ConnectionClosed) and e.by_peer for e in evs)
    assert client.state is State.FAILED


def test_without_cookie_exchange_server_answers_first_hello() -> None:
    client, server = pair(server_kw={"cookie_exchange": False})
    client.start(0.0)
    sizes = pump(client, server)
    assert len(sizes) == 4
    check_keys(completed(client), completed(server))


# -- fingerprints ---------------------------------------------------------------------------

def test_client_rejects_server_fingerprint_mismatch() -> None:
    client, server = pair({"remote_fingerprint": fingerprint(OTHER[0])})
    client.start(0.0)
    with pytest.raises(FingerprintMismatch) as info:
        pump(client, server)
    assert isinstance(info.value, BadCertificate)
    assert info.value.expected == fingerprint(OTHER[0]) and info.value.actual == fingerprint(SERVER[0])
    assert client.state is State.FAILED
    pump(client, server)
    alerts = [e for e in server.events() if isinstance(e, AlertReceived)]
    assert [a.description for a in alerts] == [AlertDescription.bad_certificate]
    assert server.state is State.FAILED


def test_server_rejects_client_fingerprint_mismatch() -> None:
    client, server = pair(server_kw={"remote_fingerprint": [fingerprint(OTHER[0]), fingerprint(OTHER[0], "sha-1")]})
    client.start(0.0)
    with pytest.raises(FingerprintMismatch, match="bad_certificate"):
        pump(client, server)
    pump(client, server)
    assert client.state is State.FAILED
    assert not any(isinstance(e, HandshakeCompleted) for e in client.events() + server.events())


def test_deferred_fingerprint_after_handshake() -> None:
    client, server = pair({"remote_fingerprint": None})
    client.start(0.0)
    pump(client, server)
    assert client.state is State.CONNECTED
    assert client.events() == []  # not reported before the peer is authenticated
    server.send(b"early")
    pump(client, server)
    assert client.events() == []  # held back too
    with pytest.raises(LocalProtocolError):
        client.send(b"x")
    client.set_remote_fingerprint(fingerprint(SERVER[0]))
    evs = client.events()
    assert isinstance(evs[0], HandshakeCompleted) and isinstance(evs[1], ApplicationDataReceived)
    assert evs[1].data == b"early"
    check_keys(evs[0], completed(server))


def test_deferred_fingerprint_mismatch() -> None:
    client, server = pair(server_kw={"remote_fingerprint": None})
    client.start(0.0)
    pump(client, server)
    assert server.events() == [] and server.state is State.CONNECTED
    with pytest.raises(FingerprintMismatch):
        server.set_remote_fingerprint(fingerprint(OTHER[0]))
    assert server.state is State.FAILED
    pump(client, server)
    assert [e.name for e in client.events() if isinstance(e, AlertReceived)] == ["bad_certificate"]


def test_deferred_fingerprint_known_before_certificate() -> None:
    client, server = pair({"remote_fingerprint": None})
    client.set_remote_fingerprint(fingerprint(SERVER[0]))
    client.start(0.0)
    pump(client, server)
    check_keys(completed(client), completed(server))


# -- close, misuse ----------------------------------------------------------------------------

def test_close_notify() -> None:
    client, server = pair()
    client.start(0.0)
    pump(client, server)
    client.events(), server.events()
    client.close()
    assert client.state is State.CLOSED
    pump(client, server)
    evs = server.events()
    assert [type(e) for e in evs] == [AlertReceived, ConnectionClosed]
    assert evs[0].name == "close_notify" and not evs[0].fatal and evs[1].by_peer
    assert server.state is State.CLOSED


def test_local_misuse() -> None:
    with pytest.raises(LocalProtocolError):
        DtlsConnection("client", CLIENT[0], SERVER[1])
    with pytest.raises(LocalProtocolError):
        DtlsConnection("client", CLIENT[0], CLIENT[1], mtu=50)
    with pytest.raises(LocalProtocolError):
        DtlsConnection("peer", CLIENT[0], CLIENT[1])  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        DtlsConnection("client", CLIENT[0], CLIENT[1], srtp_profiles=[0x0099])
    client, _ = pair()
    with pytest.raises(LocalProtocolError):
        client.send(b"x")
    with pytest.raises(LocalProtocolError):
        client.export_keying_material(b"x", 8)
    client.start(0.0)
    with pytest.raises(LocalProtocolError):
        client.start(0.0)


def test_typed_alerts_name_themselves() -> None:
    for desc in AlertDescription:
        err = alert_for(desc, "detail")
        assert err.description is desc and str(err).startswith(f"{desc.name}({int(desc)}): detail")
    assert type(alert_for(51)).__name__ == "DecryptError"


def test_keylog_lines_match_on_both_sides() -> None:
    lines_c: list[str] = []
    lines_s: list[str] = []
    client, server = pair({"keylog": lines_c.append}, {"keylog": lines_s.append})
    client.start(0.0)
    pump(client, server)
    assert len(lines_c) == 1 and lines_c == lines_s
    label, cr, ms = parse_keylog_line(lines_c[0])  # type: ignore[misc]
    assert label == "CLIENT_RANDOM" and len(cr) == 32 and len(ms) == 48

    class Sink:
        def __init__(self) -> None:
            self.text = ""

        def write(self, s: str) -> int:
            self.text += s
            return len(s)

        def flush(self) -> None:
            pass

    sink = Sink()
    KeyLogWriter(sink)(lines_c[0])
    assert sink.text == lines_c[0] + "\n"


# -- retransmission timing (RFC 6347 §4.2.4.1) ----------------------------------------------------

def test_retransmission_timer_doubles_to_the_cap_then_names_the_flight() -> None:
    clock = FakeClock(1000.0)
    client, _ = pair({"timers": DtlsTimers(initial=1.0, maximum=60.0, max_retransmissions=7)})
    client.start(clock.now)
    (first,) = client.datagrams_to_send()
    deadlines = []
    while True:
        d = client.next_deadline()
        assert d is not None
        deadlines.append(round(d - 1000.0, 6))
        client.handle_timeout(d - 0.01)  # early: nothing happens
        assert client.datagrams_to_send() == []
        clock.now = d
        try:
            client.handle_timeout(clock.now)
        except DtlsHandshakeTimeout as exc:
            err = exc
            break
        (again,) = client.datagrams_to_send()
        (r1,), (r2,) = parse_records(first), parse_records(again)
        assert r2.fragment == r1.fragment and r2.sequence_number > r1.sequence_number
    assert deadlines == [1, 3, 7, 15, 31, 63, 123, 183]  # 1,2,4,...,32, then capped at 60
    assert err.flight == 1 and "flight 1 (ClientHello)" in str(err) and err.retransmissions == 7
    assert client.state is State.FAILED and client.next_deadline() is None
    assert isinstance(client.events()[-1], ConnectionClosed)


def test_configurable_initial_timer_and_stuck_in_flight_3() -> None:
    client, server = pair({"timers": DtlsTimers(initial=0.05, maximum=0.4, max_retransmissions=3)})
    client.start(0.0)
    for d in client.datagrams_to_send():
        server.receive(d, 0.0)
    for d in server.datagrams_to_send():  # the HelloVerifyRequest
        client.receive(d, 0.01)
    client.datagrams_to_send()  # ClientHello with cookie is "lost" from now on
    assert client.next_deadline() == pytest.approx(0.06)
    now = 0.0
    with pytest.raises(DtlsHandshakeTimeout, match=r"flight 3 \(ClientHello with cookie\)"):
        for _ in range(10):
            now = client.next_deadline() or now
            client.handle_timeout(now)
    assert now == pytest.approx(0.01 + 0.05 + 0.1 + 0.2 + 0.4)


def test_server_flight_4_times_out() -> None:
    client, server = pair(server_kw={"timers": DtlsTimers(initial=0.5, max_retransmissions=2)})
    client.start(0.0)
    pump(client, server, rounds=1)  # CH -> HVR -> (client answers, server gets CH2 next round)
    for d in client.datagrams_to_send():
        server.receive(d, 0.0)
    assert server.state is State.WAIT_CLIENT_CERTIFICATE
    server.datagrams_to_send()
    with pytest.raises(DtlsHandshakeTimeout) as info:
        for _ in range(5):
            server.handle_timeout(server.next_deadline() or 0.0)
    assert info.value.flight == 4
    assert info.value.flight_name == "ServerHello, Certificate, ServerKeyExchange, CertificateRequest, ServerHelloDone"


def test_lost_final_flight_is_resent_when_client_repeats() -> None:
    client, server = pair()
    client.start(0.0)
    for _ in range(2):  # CH/HVR/CH2/flight 4
        for d in client.datagrams_to_send():
            server.receive(d, 0.0)
        for d in server.datagrams_to_send():
            client.receive(d, 0.0)
    for d in client.datagrams_to_send():  # flight 5
        server.receive(d, 0.0)
    assert server.state is State.CONNECTED
    server.datagrams_to_send()  # flight 6 lost
    assert client.state is State.WAIT_FINISHED
    client.handle_timeout(client.next_deadline() or 0.0)  # client resends flight 5
    for d in client.datagrams_to_send():
        server.receive(d, 1.0)
    resent = server.datagrams_to_send()
    assert resent  # the server answers the repeated flight with flight 6
    for d in resent:
        client.receive(d, 1.0)
    assert client.state is State.CONNECTED
    check_keys(completed(client), completed(server))


# -- simulated network ---------------------------------------------------------------------------

@dataclass
class Node:
    conn: DtlsConnection
    remote: tuple[str, int]
    events: list[Any] = field(default_factory=list)

    def on_receive(self, data: bytes, addr: tuple[str, int], now: float) -> None:
        self.conn.receive(data, now)
        self.events.extend(self.conn.events())

    def outgoing(self, now: float) -> list[tuple[bytes, tuple[str, int]]]:
        return [(d, self.remote) for d in self.conn.datagrams_to_send()]

    def on_timeout(self, now: float) -> None:
        self.conn.handle_timeout(now)
        self.events.extend(self.conn.events())

    @property
    def done(self) -> bool:
        return any(isinstance(e, HandshakeCompleted) for e in self.events)


def run_sim(seed: int, profile: LinkProfile, mtu: int = 500) -> tuple[Node, Node, Simulation]:
    sim = Simulation(seed=seed, profile=profile)
    timers = DtlsTimers(max_retransmissions=12)
    a_addr, b_addr = ("10.0.0.1", 5000), ("10.0.0.2", 6000)
    client, server = pair({"mtu": mtu, "timers": timers, "rng": rng_from(seed)},
                          {"mtu": mtu, "timers": timers, "rng": rng_from(seed + 1000)})
    a, b = Node(client, b_addr), Node(server, a_addr)
    for addr, node in ((a_addr, a), (b_addr, b)):
        sim.add_endpoint(addr, on_receive=node.on_receive, outgoing=node.outgoing,
                         next_deadline=node.conn.next_deadline, on_timeout=node.on_timeout)
    client.start(sim.clock.now)
    assert sim.run_for(600, stop_when=lambda: a.done and b.done)
    return a, b, sim


@pytest.mark.parametrize("seed", range(12))
def test_handshake_over_lossy_reordering_network_with_small_mtu(seed: int) -> None:
    profile = LinkProfile(loss=0.25, duplicate=0.15, reorder=0.3, delay=0.02, jitter=0.01, mtu=500)
    a, b, sim = run_sim(seed, profile)
    c = next(e for e in a.events if isinstance(e, HandshakeCompleted))
    s = next(e for e in b.events if isinstance(e, HandshakeCompleted))
    check_keys(c, s)
    assert sim.stats.dropped_mtu == 0  # everything was fragmented to fit
    assert max(len(d) for _, _, _, d in sim.log) <= 500


def test_fragmentation_at_mtu_500_really_fragments() -> None:
    _, _, sim = run_sim(3, LinkProfile(mtu=500))
    frags = []
    for _, _, _, data in sim.log:
        for rec in parse_records(data):
            if rec.content_type == ContentType.HANDSHAKE and rec.epoch == 0:
                frags.extend(parse_fragments(rec.fragment))
    split = [f for f in frags if len(f.fragment) < f.length]
    assert split, "some handshake message must have been split"
    assert all(f.fragment_offset + len(f.fragment) <= f.length for f in split)
    assert {f.msg_type for f in split} <= {HandshakeType.CERTIFICATE, HandshakeType.SERVER_KEY_EXCHANGE,
                                         HandshakeType.CLIENT_HELLO, HandshakeType.CERTIFICATE_VERIFY,
                                         HandshakeType.CERTIFICATE_REQUEST, HandshakeType.CLIENT_KEY_EXCHANGE}
    assert sim.stats.lost == 0


@pytest.mark.parametrize("seed", range(4))
def test_heavy_loss_still_completes(seed: int) -> None:
    a, b, sim = run_sim(100 + seed, LinkProfile(loss=0.4, reorder=0.5, delay=0.01, mtu=500))
    check_keys(next(e for e in a.events if isinstance(e, HandshakeCompleted)),
               next(e for e in b.events if isinstance(e, HandshakeCompleted)))
    assert sim.stats.lost > 0


def test_hello_verify_request_mirrors_client_hello() -> None:
    client, server = pair()
    client.start(0.0)
    (ch,) = client.datagrams_to_send()
    server.receive(ch, 0.0)
    (hvr_dg,) = server.datagrams_to_send()
    (rec,) = parse_records(hvr_dg)
    (frag,) = parse_fragments(rec.fragment)
    hvr = parse_handshake_body(frag.msg_type, frag.fragment)
    assert isinstance(hvr, HelloVerifyRequest) and len(hvr.cookie) == 32
    assert rec.version == 0xFEFF and rec.sequence_number == 0 and frag.message_seq == 0
    assert server.state is State.WAIT_CLIENT_HELLO and server.next_deadline() is None  # stateless
    # a ClientHello with a forged cookie gets a fresh HelloVerifyRequest, not a ServerHello
    (crec,) = parse_records(ch)
    (cfrag,) = parse_fragments(crec.fragment)
    forged = replace(ClientHello.parse(cfrag.fragment), cookie=b"\x00" * 32)
    body = forged.serialize()
    dg = encode_record(22, 0xFEFF, 0, 1, handshake_header(1, len(body), 1, 0, len(body)) + body)
    server.receive(dg, 0.0)
    (again,) = server.datagrams_to_send()
    (rec2,) = parse_records(again)
    assert parse_fragments(rec2.fragment)[0].msg_type == HandshakeType.HELLO_VERIFY_REQUEST
    assert rec2.sequence_number == 1


def test_garbage_and_dtls13_records_are_dropped() -> None:
    vec = Path(__file__).parent.parent / "vectors" / "dtls"
    client, server = pair()
    client.start(0.0)
    for name in ("chromium_dtls13_server_encrypted.bin", "chromium_dtls13_server_epoch3.bin"):
        client.receive((vec / name).read_bytes(), 0.0)
    client.receive(b"", 0.0)
    assert client.dropped_records == 2
    # an epoch-1 record before any keys is held (bounded) for after the CCS, then fails to decrypt
    client.receive(b"\x17\xfe\xfd\x00\x01" + b"\x00" * 6 + b"\x00\x20" + b"\x00" * 32, 0.0)
    assert client.state is State.WAIT_SERVER_HELLO
    pump(client, server)
    check_keys(completed(client), completed(server))
    assert client.dropped_records == 3  # the held epoch-1 garbage failed authentication


def test_repeated_peer_flight_triggers_immediate_resend_rate_limited() -> None:
    # RFC 6347 §4.2.4: a peer repeating its flight means ours was lost
    client, server = pair(server_kw={"cookie_exchange": False})
    client.start(0.0)
    (ch,) = client.datagrams_to_send()
    server.receive(ch, 0.0)
    flight4 = server.datagrams_to_send()
    server.receive(ch, 0.1)  # too soon after sending flight 4: no resend yet
    assert server.datagrams_to_send() == []
    client.handle_timeout(1.0)
    (ch_again,) = client.datagrams_to_send()
    server.receive(ch_again, 1.0)  # the client's retransmission: resend flight 4 now, not at t=2
    resent = server.datagrams_to_send()
    assert [parse_records(d)[0].fragment for d in resent] == [parse_records(d)[0].fragment for d in flight4]
    assert server.next_deadline() == pytest.approx(1.0)  # the timer itself is unchanged
    for d in resent:
        client.receive(d, 1.05)
    assert client.state is State.WAIT_FINISHED
    flight5 = client.datagrams_to_send()
    for d in flight4:  # a late duplicate of flight 4: the client resends flight 5
        client.receive(d, 1.7)
    assert len(client.datagrams_to_send()) == len(flight5)
    for d in flight5:
        server.receive(d, 1.8)
    pump(client, server, 1.8)
    check_keys(completed(client), completed(server))
