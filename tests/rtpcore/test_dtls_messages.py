"""Golden-byte tests on real DTLS captures (Chromium 156, baresip 1.0 / OpenSSL 3.0, OpenSSL CLI).

Every record and handshake message is parsed, its fields checked, and re-serialized to the
identical bytes. Signatures in the captured ServerKeyExchange and CertificateVerify messages
are verified over the real randoms and the real transcript (RFC 5246 §7.4.3, §7.4.8), which
checks our transcript construction (RFC 6347 §4.2.6) against three independent stacks.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given
from hypothesis import strategies as st

from rtpcore.dtls.alerts import DecodeError, IllegalParameter, UnexpectedMessage
from rtpcore.dtls.certificate import certificate_public_key, load_der_certificate, verify_signature
from rtpcore.dtls.constants import (
    CipherSuite,
    ContentType,
    DtlsVersion,
    ExtensionType,
    HandshakeType,
    NamedGroup,
    SignatureScheme,
    SrtpProfile,
)
from rtpcore.dtls.fragment import ReassembledMessage, Reassembler, parse_fragments
from rtpcore.dtls.messages import (
    Certificate,
    CertificateRequest,
    CertificateVerify,
    ClientHello,
    ClientKeyExchange,
    Extension,
    HelloVerifyRequest,
    NewSessionTicket,
    ServerHello,
    ServerKeyExchange,
    UseSrtp,
    parse_handshake_body,
)
from rtpcore.dtls.record import parse_records
from rtpcore.errors import DtlsError

VECTORS = Path(__file__).parent.parent / "vectors" / "dtls"


def datagrams(name: str) -> list[bytes]:
    p = VECTORS / name
    if name.endswith(".hexlines"):
        return [bytes.fromhex(line) for line in p.read_text().split()]
    return [p.read_bytes()]


def messages(*names: str) -> list[ReassembledMessage]:
    """Reassemble the epoch-0 handshake messages of captures, checking record round trips."""
    out: list[ReassembledMessage] = []
    reasm: Reassembler | None = None
    for name in names:
        for dg in datagrams(name):
            records = parse_records(dg)
            assert b"".join(r.serialize() for r in records) == dg
            for rec in records:
                if rec.content_type != ContentType.HANDSHAKE or rec.epoch != 0:
                    continue
                frags = parse_fragments(rec.fragment)
                assert b"".join(f.serialize() for f in frags) == rec.fragment
                for frag in frags:
                    if reasm is None:
                        reasm = Reassembler(next_seq=frag.message_seq)
                    reasm.add(frag, rec.epoch)
                while reasm is not None and (m := reasm.pop()) is not None:
                    out.append(m)
    return out


def parsed(m: ReassembledMessage):
    msg = parse_handshake_body(m.msg_type, m.body)
    assert msg.serialize() == m.body, type(msg).__name__
    return msg


def ext_names(exts: tuple[Extension, ...] | None) -> list[str]:
    out = []
    for e in exts or ():
        try:
            out.append(ExtensionType(e.type).name)
        except ValueError:
            out.append(str(e.type))
    return out


def test_baresip_clienthello() -> None:
    (m,) = messages("baresip_clienthello.bin")
    (rec,) = parse_records(datagrams("baresip_clienthello.bin")[0])
    assert (rec.version, rec.epoch, rec.sequence_number) == (DtlsVersion.DTLS_1_0, 0, 0)
    ch = parsed(m)
    assert isinstance(ch, ClientHello) and m.message_seq == 0
    assert ch.client_version == DtlsVersion.DTLS_1_2 and ch.cookie == b"" and ch.session_id == b""
    assert len(ch.cipher_suites) == 28 and ch.cipher_suites[0] == CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
    assert ch.cipher_suites[-1] == CipherSuite.TLS_EMPTY_RENEGOTIATION_INFO_SCSV
    assert CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 in ch.cipher_suites
    assert ch.use_srtp == UseSrtp((1, 2, 7, 8), b"")
    assert ch.supported_groups == (29, 23, 30, 25, 24)
    assert ch.ec_point_formats == (0, 1, 2)
    assert ch.signature_algorithms is not None and len(ch.signature_algorithms) == 20
    assert ext_names(ch.extensions) == [
        "ec_point_formats", "supported_groups", "session_ticket", "use_srtp", "encrypt_then_mac",
        "extended_master_secret", "signature_algorithms",
    ]


@pytest.mark.parametrize("name", ["chromium_clienthello.hexlines", "chromium_clienthello_G.hexlines",
                                  "chromium_clienthello_retransmit.hexlines"])
def test_chromium_fragmented_clienthello(name: str) -> None:
    dgs = datagrams(name)
    assert [len(d) for d in dgs] == [1200, 263]
    frags = [parse_fragments(r.fragment)[0] for d in dgs for r in parse_records(d)]
    assert [(f.fragment_offset, len(f.fragment), f.length) for f in frags] == [(0, 1175, 1413), (1175, 238, 1413)]
    (m,) = messages(name)
    ch = parsed(m)
    assert isinstance(ch, ClientHello) and len(m.body) == 1413
    assert ch.cipher_suites == (0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xCCA9, 0xCCA8, 0xC009, 0xC013, 0xC00A,
                                0xC014, 0x009C, 0x002F, 0x0035)
    assert ch.use_srtp == UseSrtp((SrtpProfile.SRTP_AES128_CM_HMAC_SHA1_80, SrtpProfile.SRTP_AEAD_AES_256_GCM,
                                   SrtpProfile.SRTP_AEAD_AES_128_GCM))
    assert ch.supported_groups == (0x11EC, NamedGroup.x25519, NamedGroup.secp256r1, NamedGroup.secp384r1)
    assert ch.signature_algorithms is not None and len(ch.signature_algorithms) == 9
    assert ch.extension(ExtensionType.supported_versions) == b"\x04\xfe\xfc\xfe\xfd"
    assert ch.extension(ExtensionType.renegotiation_info) == b"\x00"
    assert ch.extension(ExtensionType.extended_master_secret) == b""
    assert sorted(ext_names(ch.extensions)) == sorted([
        "key_share", "supported_versions", "renegotiation_info", "use_srtp", "extended_master_secret",
        "ec_point_formats", "psk_key_exchange_modes", "supported_groups", "signature_algorithms",
    ])


def test_chromium_extension_order_is_permuted_and_kept() -> None:
    a = parsed(messages("chromium_clienthello.hexlines")[0])
    g = parsed(messages("chromium_clienthello_G.hexlines")[0])
    assert ext_names(a.extensions)[:2] == ["key_share", "supported_versions"]
    assert ext_names(g.extensions)[:2] == ["key_share", "signature_algorithms"]


def test_chromium_fragments_in_reverse_order() -> None:
    recs = [r for d in datagrams("chromium_clienthello.hexlines") for r in parse_records(d)]
    reasm = Reassembler()
    for rec in reversed(recs):
        for frag in parse_fragments(rec.fragment):
            reasm.add(frag, 0)
    m = reasm.pop()
    assert m is not None and m.body == messages("chromium_clienthello.hexlines")[0].body


def test_openssl_cookie_exchange() -> None:
    (ch1,) = messages("openssl_s_client_clienthello.bin")
    (hvr_m,) = messages("openssl_s_server_helloverifyrequest.bin")
    (ch2,) = messages("openssl_s_client_clienthello_cookie.bin")
    hvr = parsed(hvr_m)
    assert isinstance(hvr, HelloVerifyRequest)
    assert hvr.server_version == DtlsVersion.DTLS_1_0 and len(hvr.cookie) == 20
    c1, c2 = parsed(ch1), parsed(ch2)
    assert isinstance(c1, ClientHello) and isinstance(c2, ClientHello)
    assert (ch1.message_seq, ch2.message_seq) == (0, 1)
    assert c1.cookie == b"" and c2.cookie == hvr.cookie and c2.random == c1.random
    assert c1.use_srtp == UseSrtp((1,), b"")
    (rec,) = parse_records(datagrams("openssl_s_server_helloverifyrequest.bin")[0])
    assert rec.version == DtlsVersion.DTLS_1_0 and rec.sequence_number == 0


def test_openssl_fragmented_server_flight_and_ske_signature() -> None:
    msgs = messages("openssl_s_server_flight_fragmented.hexlines")
    assert [m.msg_type for m in msgs] == [2, 11, 12, 14] and [m.message_seq for m in msgs] == [1, 2, 3, 4]
    sh, cert, ske, _ = (parsed(m) for m in msgs)
    assert isinstance(sh, ServerHello) and sh.cipher_suite == CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
    assert sh.use_srtp == UseSrtp((1,), b"")
    assert ext_names(sh.extensions) == ["renegotiation_info", "ec_point_formats", "session_ticket", "use_srtp",
                                        "extended_master_secret"]
    assert isinstance(cert, Certificate) and len(msgs[1].body) == 386
    assert isinstance(ske, ServerKeyExchange) and ske.named_group == NamedGroup.x25519
    client = parsed(messages("openssl_s_client_clienthello_cookie.bin")[0])
    key = certificate_public_key(load_der_certificate(cert.certificates[0]))
    assert isinstance(key, ec.EllipticCurvePublicKey)
    verify_signature(key, ske.signature_scheme, client.random + sh.random + ske.params(), ske.signature)


def _verify_session(ch_file: str, server_file: str, client_file: str, suite: int, key_type: type) -> None:
    ch = messages(ch_file)
    server = messages(server_file)
    client = messages(client_file)
    hello = parsed(ch[0])
    sh, scert, ske, creq, _done = (parsed(m) for m in server)
    assert isinstance(sh, ServerHello) and sh.cipher_suite == suite
    assert sh.use_srtp == UseSrtp((SrtpProfile.SRTP_AES128_CM_HMAC_SHA1_80,), b"")
    assert isinstance(creq, CertificateRequest) and creq.certificate_authorities == ()
    # ServerKeyExchange: signed over client_random + server_random + params (RFC 8422 §5.4)
    skey = certificate_public_key(load_der_certificate(scert.certificates[0]))
    verify_signature(skey, ske.signature_scheme, hello.random + sh.random + ske.params(), ske.signature)
    # CertificateVerify: signed over every handshake message so far (RFC 5246 §7.4.8)
    ccert, cke, cv = (parsed(m) for m in client)
    assert isinstance(cke, ClientKeyExchange) and len(cke.public_key) == 32
    assert isinstance(cv, CertificateVerify)
    ckey = certificate_public_key(load_der_certificate(ccert.certificates[0]))
    assert isinstance(ckey, key_type)
    transcript = b"".join(m.transcript_bytes() for m in [*ch, *server, *client[:2]])
    verify_signature(ckey, cv.signature_scheme, transcript, cv.signature)
    with pytest.raises(DtlsError):
        verify_signature(ckey, cv.signature_scheme, transcript[:-1], cv.signature)


def test_chromium_client_against_baresip_server_transcript() -> None:
    # run B: Chromium is DTLS client, baresip (OpenSSL 3.0, RSA cert) the server
    _verify_session("chromium_clienthello.hexlines", "baresip_server_flight.bin", "chromium_client_flight2.bin",
                    CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, ec.EllipticCurvePublicKey)


def test_baresip_client_against_chromium_server_transcript() -> None:
    # run A: baresip is DTLS client (RSA cert), Chromium the server (ECDHE_ECDSA_CHACHA20_POLY1305)
    _verify_session("baresip_clienthello.bin", "chromium_server_flight_dtls12.bin", "baresip_client_flight2.bin",
                    0xCCA9, rsa.RSAPublicKey)
    cv = parsed(messages("baresip_client_flight2.bin")[2])
    assert cv.signature_scheme == SignatureScheme.rsa_pss_rsae_sha256


def test_ccs_and_encrypted_finished_records() -> None:
    for name, seq, length in [("baresip_server_ccs_finished.bin", 5, 48), ("chromium_server_ccs_finished.bin", 5, 40),
                              ("openssl_s_client_flight2.bin", 3, 48)]:
        recs = parse_records(datagrams(name)[0])
        ccs = [r for r in recs if r.content_type == ContentType.CHANGE_CIPHER_SPEC]
        assert len(ccs) == 1 and ccs[0].fragment == b"\x01" and ccs[0].sequence_number == seq
        assert recs[-1].epoch == 1 and recs[-1].sequence_number == 0 and len(recs[-1].fragment) == length


def test_new_session_ticket_parses() -> None:
    (m,) = messages("openssl_s_server_ticket_ccs_finished.hexlines")
    nst = parsed(m)
    assert isinstance(nst, NewSessionTicket) and nst.lifetime_hint == 7200 and m.message_seq == 5


@pytest.mark.parametrize("name", ["chromium_dtls13_client_encrypted.bin", "chromium_dtls13_server_encrypted.bin",
                                  "chromium_dtls13_server_epoch3.bin"])
def test_dtls13_unified_header_is_rejected_cleanly(name: str) -> None:
    with pytest.raises(DecodeError):
        parse_records(datagrams(name)[0])


def test_dtls13_serverhello_parses_as_plain_serverhello() -> None:
    (m,) = messages("chromium_dtls13_serverhello.bin")
    sh = parsed(m)
    assert isinstance(sh, ServerHello) and sh.cipher_suite == 0x1301
    assert sh.extension(ExtensionType.supported_versions) == b"\xfe\xfc"


# -- malformed input -------------------------------------------------------------------------

def test_truncations_raise_decode_error() -> None:
    (m,) = messages("baresip_clienthello.bin")
    ok = []
    for n in range(len(m.body)):
        try:
            ok.append(ClientHello.parse(m.body[:n]))
        except DtlsError:
            pass
    # the only valid prefix is the one that ends right before the optional extensions block
    assert len(ok) == 1 and ok[0].extensions is None and len(ok[0].cipher_suites) == 28
    with pytest.raises(DecodeError):
        ClientHello.parse(m.body + b"\x00")


def test_duplicate_extension_and_unknown_message() -> None:
    ch = ClientHello(0xFEFD, b"r" * 32, b"", b"", (0xC02B,), b"\x00",
                     (Extension(23, b""), Extension(23, b"")))
    with pytest.raises(IllegalParameter):
        ClientHello.parse(ch.serialize())
    with pytest.raises(UnexpectedMessage):
        parse_handshake_body(99, b"")
    with pytest.raises(IllegalParameter):
        ServerKeyExchange.parse(b"\x01\x00\x1d\x01\x00\x04\x03\x00\x00")


def test_reassembler_bounds_and_consistency() -> None:
    r = Reassembler(max_message=100, max_ahead=2)
    with pytest.raises(IllegalParameter):
        r.add(parse_fragments(bytes([1]) + (200).to_bytes(3, "big") + b"\x00\x00" + b"\x00" * 3 + b"\x00\x00\x01" + b"x")[0], 0)
    r.add(parse_fragments(b"\x01\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\x02ab")[0], 0)
    with pytest.raises(IllegalParameter):
        r.add(parse_fragments(b"\x02\x00\x00\x04\x00\x00\x00\x00\x02\x00\x00\x02cd")[0], 0)
    assert r.add(parse_fragments(b"\x01\x00\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00")[0], 0)  # too far ahead: dropped
    assert r.buffered == 1
    r.add(parse_fragments(b"\x01\x00\x00\x04\x00\x00\x00\x00\x01\x00\x00\x03bcd")[0], 0)  # overlapping
    m = r.pop()
    assert m is not None and m.body == b"abcd" and r.next_seq == 1
    assert r.add(parse_fragments(b"\x01\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\x02ab")[0], 0) is False  # old
    with pytest.raises(DecodeError):
        parse_fragments(b"\x01\x00\x00\x04\x00\x00\x00\x00\x03\x00\x00\x02ab")  # beyond length
    with pytest.raises(DecodeError):
        parse_fragments(b"\x01\x00\x00")


@given(st.binary(max_size=300))
def test_parsers_never_leak_other_exceptions(data: bytes) -> None:
    for t in HandshakeType:
        try:
            parse_handshake_body(t, data)
        except DtlsError:
            pass
    for fn in (parse_records, parse_fragments, UseSrtp.parse):
        try:
            fn(data)
        except DtlsError:
            pass


@given(st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=20), st.binary(max_size=255))
def test_use_srtp_round_trip(profiles: list[int], mki: bytes) -> None:
    u = UseSrtp(tuple(profiles), mki)
    assert UseSrtp.parse(u.serialize()) == u


@given(st.binary(min_size=32, max_size=32), st.binary(max_size=32), st.binary(max_size=255),
       st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=30),
       st.none() | st.lists(st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=40)), max_size=6,
                            unique_by=lambda t: t[0]))
def test_client_hello_round_trip(random: bytes, sid: bytes, cookie: bytes, suites: list[int], exts) -> None:
    ch = ClientHello(0xFEFD, random, sid, cookie, tuple(suites), b"\x00",
                     None if exts is None else tuple(Extension(t, d) for t, d in exts))
    assert ClientHello.parse(ch.serialize()) == ch
