"""Our DTLS endpoints fed with real Chromium / baresip / OpenSSL datagrams.

* Our server answers captured ClientHellos (fragmented Chromium, baresip, OpenSSL) with a
  stateless HelloVerifyRequest (RFC 6347 §4.2.1), then with a full, verifiable flight 4.
* Our client, given the captured client random through the injected rng, processes the real
  baresip server flight: it verifies baresip's RSA-PSS ServerKeyExchange signature and
  answers with flight 5. Flights it must refuse (ChaCha20 suite, unoffered extension) raise
  the typed alert.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from rtpcore.dtls import DtlsConnection, State, fingerprint, generate_certificate
from rtpcore.dtls.alerts import HandshakeFailure, IllegalParameter, UnsupportedExtension
from rtpcore.dtls.certificate import certificate_der, verify_signature
from rtpcore.dtls.constants import (
    CipherSuite,
    ContentType,
    DtlsVersion,
    ExtensionType,
    HandshakeType,
    SrtpProfile,
)
from rtpcore.dtls.fragment import Reassembler, fragment_message, parse_fragments
from rtpcore.dtls.messages import (
    Certificate,
    CertificateRequest,
    ClientHello,
    HelloVerifyRequest,
    ServerHello,
    ServerKeyExchange,
    parse_handshake_body,
)
from rtpcore.dtls.record import encode_record, parse_records

VECTORS = Path(__file__).parent.parent / "vectors" / "dtls"
NOW = 1_800_000_000.0
OURS = generate_certificate(now=NOW, common_name="ours")


def datagrams(name: str) -> list[bytes]:
    p = VECTORS / name
    if name.endswith(".hexlines"):
        return [bytes.fromhex(line) for line in p.read_text().split()]
    return [p.read_bytes()]


def handshake_messages(dgs: list[bytes]) -> list[tuple[int, object]]:
    reasm: Reassembler | None = None
    out = []
    for dg in dgs:
        for rec in parse_records(dg):
            if rec.content_type != ContentType.HANDSHAKE or rec.epoch != 0:
                continue
            for frag in parse_fragments(rec.fragment):
                if reasm is None:
                    reasm = Reassembler(next_seq=frag.message_seq)
                reasm.add(frag, 0)
            while reasm is not None and (m := reasm.pop()) is not None:
                out.append((m.message_seq, parse_handshake_body(m.msg_type, m.body)))
    return out


def captured_hello(name: str) -> ClientHello:
    ((_, ch),) = handshake_messages(datagrams(name))
    assert isinstance(ch, ClientHello)
    return ch


def hello_with_cookie(ch: ClientHello, cookie: bytes, *, max_fragment: int = 1175) -> list[bytes]:
    """The client's second ClientHello (message_seq 1), fragmented as Chromium does."""
    body = replace(ch, cookie=cookie).serialize()
    return [encode_record(ContentType.HANDSHAKE, DtlsVersion.DTLS_1_0, 0, 10 + i, f.serialize())
            for i, f in enumerate(fragment_message(HandshakeType.CLIENT_HELLO, 1, body, max_fragment))]


def server(**kw) -> DtlsConnection:
    return DtlsConnection("server", OURS[0], OURS[1], remote_fingerprint=None, **kw)


def check_flight_4(dgs: list[bytes], ch: ClientHello, first_seq: int) -> ServerHello:
    for dg in dgs:
        for rec in parse_records(dg):
            assert rec.version == DtlsVersion.DTLS_1_2 and rec.epoch == 0
    msgs = handshake_messages(dgs)
    assert [seq for seq, _ in msgs] == list(range(first_seq, first_seq + 5))
    sh, cert, ske, creq, done = (m for _, m in msgs)
    assert isinstance(sh, ServerHello) and sh.server_version == DtlsVersion.DTLS_1_2 and len(sh.random) == 32
    assert sh.cipher_suite in ch.cipher_suites and sh.compression_method == 0
    offered = {e.type for e in ch.extensions or ()}
    if CipherSuite.TLS_EMPTY_RENEGOTIATION_INFO_SCSV in ch.cipher_suites:
        offered.add(ExtensionType.renegotiation_info)  # RFC 5746 §3.6: the SCSV counts as the extension
    assert {e.type for e in sh.extensions or ()} <= offered  # RFC 5246 §7.4.1.4
    assert sh.extension(ExtensionType.renegotiation_info) == b"\x00"
    assert sh.extension(ExtensionType.extended_master_secret) == b""
    use_srtp = sh.use_srtp
    assert use_srtp is not None and len(use_srtp.profiles) == 1 and ch.use_srtp is not None
    assert use_srtp.profiles[0] in ch.use_srtp.profiles and use_srtp.mki == ch.use_srtp.mki
    assert isinstance(cert, Certificate) and cert.certificates == (fingerprint_der(),)
    assert isinstance(ske, ServerKeyExchange)
    assert ch.supported_groups is not None and ske.named_group in ch.supported_groups
    assert ch.signature_algorithms is not None and ske.signature_scheme in ch.signature_algorithms
    verify_signature(OURS[0].public_key(), ske.signature_scheme, ch.random + sh.random + ske.params(), ske.signature)
    assert isinstance(creq, CertificateRequest) and 64 in creq.certificate_types
    assert type(done).__name__ == "ServerHelloDone"
    return sh


def fingerprint_der() -> bytes:
    return certificate_der(OURS[0])


@pytest.mark.parametrize("name,last_record_seq", [
    ("chromium_clienthello.hexlines", 1),
    ("chromium_clienthello_retransmit.hexlines", 3),
    ("chromium_clienthello_G.hexlines", 1),
    ("openssl_s_client_clienthello.bin", 0),
    ("baresip_clienthello.bin", 0),
])
def test_server_answers_captured_hello_with_hello_verify_request(name: str, last_record_seq: int) -> None:
    srv = server()
    for dg in datagrams(name):
        srv.receive(dg, 0.0)
    (hvr_dg,) = srv.datagrams_to_send()
    (rec,) = parse_records(hvr_dg)
    assert rec.version == DtlsVersion.DTLS_1_0 and rec.sequence_number == last_record_seq
    ((seq, hvr),) = handshake_messages([hvr_dg])
    assert seq == 0 and isinstance(hvr, HelloVerifyRequest)
    assert hvr.server_version == DtlsVersion.DTLS_1_0 and len(hvr.cookie) == 32
    assert srv.state is State.WAIT_CLIENT_HELLO and srv.next_deadline() is None

    ch = captured_hello(name)
    for dg in hello_with_cookie(ch, hvr.cookie):
        srv.receive(dg, 0.1)
    flight = srv.datagrams_to_send()
    assert all(len(d) <= 1200 for d in flight)
    sh = check_flight_4(flight, ch, first_seq=1)
    assert srv.state is State.WAIT_CLIENT_CERTIFICATE and srv.next_deadline() == pytest.approx(1.1)
    if name.startswith("chromium"):
        # Chromium offers 1.3 too, but we answer as a DTLS 1.2 server and ignore key_share
        assert sh.cipher_suite == CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        assert sh.use_srtp is not None and sh.use_srtp.profiles == (SrtpProfile.SRTP_AEAD_AES_128_GCM,)
        assert sh.extension(ExtensionType.supported_versions) is None


def test_server_without_cookie_exchange_answers_baresip_directly() -> None:
    srv = server(cookie_exchange=False, srtp_profiles=[SrtpProfile.SRTP_AES128_CM_HMAC_SHA1_80], mtu=500)
    srv.receive(datagrams("baresip_clienthello.bin")[0], 0.0)
    flight = srv.datagrams_to_send()
    assert len(flight) >= 2 and all(len(d) <= 500 for d in flight)
    sh = check_flight_4(flight, captured_hello("baresip_clienthello.bin"), first_seq=0)
    assert sh.use_srtp is not None and sh.use_srtp.profiles == (1,)


def test_server_rejects_hello_with_only_unsupported_suites() -> None:
    ch = captured_hello("chromium_clienthello.hexlines")
    srv = server(cookie_exchange=False, cipher_suites=[CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384])
    body = ch.serialize()
    dg = encode_record(22, DtlsVersion.DTLS_1_0, 0, 0, fragment_message(1, 0, body, 2000)[0].serialize())
    with pytest.raises(HandshakeFailure) as info:
        srv.receive(dg, 0.0)
    assert "handshake_failure" in str(info.value) and "cipher suite" in str(info.value)
    (alert,) = srv.datagrams_to_send()
    assert parse_records(alert)[0].fragment == b"\x02\x28"


def seq_rng(*chunks: bytes):
    queue = list(chunks)

    def rng(n: int) -> bytes:
        out = queue.pop(0) if queue else b"\x01" * n
        assert len(out) == n
        return out

    return rng


def baresip_certificate_fingerprint() -> str:
    msgs = handshake_messages(datagrams("baresip_server_flight.bin"))
    cert = msgs[1][1]
    assert isinstance(cert, Certificate)
    return fingerprint(cert.certificates[0])


def test_client_processes_real_baresip_server_flight() -> None:
    # We replay Chromium's side of run B: same client random, so baresip's signature must verify.
    chromium = captured_hello("chromium_clienthello.hexlines")
    client = DtlsConnection(
        "client", OURS[0], OURS[1], [SrtpProfile.SRTP_AES128_CM_HMAC_SHA1_80],
        remote_fingerprint=baresip_certificate_fingerprint(), rng=seq_rng(b"\x00" * 32, chromium.random),
    )
    client.start(0.0)
    (our_hello,) = client.datagrams_to_send()
    ((_, ours),) = handshake_messages([our_hello])
    assert isinstance(ours, ClientHello) and ours.random == chromium.random
    client.receive(datagrams("baresip_server_flight.bin")[0], 0.05)
    assert client.state is State.WAIT_FINISHED
    flight5 = client.datagrams_to_send()
    records = [r for dg in flight5 for r in parse_records(dg)]
    types = [r.content_type for r in records]
    assert types == [22, 22, 22, 20, 22] and records[-1].epoch == 1
    msgs = handshake_messages(flight5)
    assert [type(m).__name__ for _, m in msgs] == ["Certificate", "ClientKeyExchange", "CertificateVerify"]
    assert [seq for seq, _ in msgs] == [1, 2, 3]
    # baresip's real Finished was made with other ECDHE keys: it fails authentication and is dropped
    client.receive(datagrams("baresip_server_ccs_finished.bin")[0], 0.1)
    assert client.state is State.WAIT_FINISHED and client.dropped_records == 1


def test_client_refuses_chromium_chacha20_choice() -> None:
    baresip = captured_hello("baresip_clienthello.bin")
    client = DtlsConnection("client", OURS[0], OURS[1], rng=seq_rng(b"\x00" * 32, baresip.random))
    client.start(0.0)
    client.datagrams_to_send()
    with pytest.raises(IllegalParameter, match="0xcca9"):
        client.receive(datagrams("chromium_server_flight_dtls12.bin")[0], 0.0)
    (alert,) = client.datagrams_to_send()
    assert parse_records(alert)[0].fragment == b"\x02\x2f"


def test_client_answers_openssl_hello_verify_request_then_refuses_unoffered_ticket() -> None:
    openssl = captured_hello("openssl_s_client_clienthello.bin")
    client = DtlsConnection("client", OURS[0], OURS[1], [SrtpProfile.SRTP_AES128_CM_HMAC_SHA1_80],
                            rng=seq_rng(b"\x00" * 32, openssl.random))
    client.start(0.0)
    client.datagrams_to_send()
    client.receive(datagrams("openssl_s_server_helloverifyrequest.bin")[0], 0.0)
    (second,) = client.datagrams_to_send()
    ((seq, ch),) = handshake_messages([second])
    (rec,) = parse_records(second)
    assert seq == 1 and rec.sequence_number == 1 and isinstance(ch, ClientHello)
    assert ch.cookie == captured_hello("openssl_s_client_clienthello_cookie.bin").cookie
    assert ch.random == openssl.random
    # s_server echoed session_ticket because s_client offered it; we never do (RFC 5246 §7.4.1.4)
    with pytest.raises(UnsupportedExtension):
        for dg in datagrams("openssl_s_server_flight_fragmented.hexlines"):
            client.receive(dg, 0.1)
