"""SIP over TLS on 127.0.0.1 (RFC 3261 §26.2, RFC 5922 §7): a private CA made with ``cryptography``,
server verification against it, host name checks, mutual TLS, and a whole call between UAs."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sipcore.aiostack import AioSipEndpoint
from sipcore.aioua import IncomingInvite, UserAgent
from sipcore.stack import Target
from sipcore.transport import Flow, TransportError, TransportManager

MSG = (b"OPTIONS sip:a@sip.example.test SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1;branch=z9hG4bK1\r\nCall-ID: c\r\n"
       b"Content-Length: 3\r\n\r\nabc")
SDP = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None = None) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        path.with_suffix(".key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("Test SIP CA")).issuer_name(_name("Test SIP CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))

    def leaf(cn: str, san: list[x509.GeneralName], usage: x509.ObjectIdentifier) -> tuple[x509.Certificate,
                                                                                            ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName(san), critical=False)
                .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .sign(ca_key, hashes.SHA256()))
        return cert, key

    server, server_key = leaf("sip.example.test", [x509.DNSName("sip.example.test"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
                              ExtendedKeyUsageOID.SERVER_AUTH)
    client, client_key = leaf("alice.example.test", [x509.UniformResourceIdentifier("sip:alice@example.test")],
                              ExtendedKeyUsageOID.CLIENT_AUTH)
    _write(d / "ca.pem", ca)
    _write(d / "server.pem", server, server_key)
    _write(d / "client.pem", client, client_key)
    return Pki(d / "ca.pem", d / "server.pem", d / "server.key", d / "client.pem", d / "client.key")


def _server_ctx(pki: Pki, *, require_client: bool = False) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.server_cert, pki.server_key)
    if require_client:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(pki.ca)
    return ctx


def _client_ctx(pki: Pki, *, with_cert: bool = False) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    if with_cert:
        ctx.load_cert_chain(pki.client_cert, pki.client_key)
    return ctx


async def _server(pki: Pki, **kw: bool) -> tuple[TransportManager, asyncio.Queue[tuple[bytes, Flow]], int]:
    got: asyncio.Queue[tuple[bytes, Flow]] = asyncio.Queue()
    server = TransportManager(lambda d, f: got.put_nowait((d, f)))
    _, port = await server.listen_tcp("127.0.0.1", 0, ssl_context=_server_ctx(pki, **kw))
    return server, got, port


def test_tls_round_trip_with_verified_server(pki: Pki) -> None:
    async def run() -> None:
        server, got, port = await _server(pki)
        back: asyncio.Queue[bytes] = asyncio.Queue()
        client = TransportManager(lambda d, f: back.put_nowait(d), tls_context=_client_ctx(pki))
        try:
            flow = await client.send(MSG, transport="tls", host="127.0.0.1", port=port, server_name="sip.example.test")
            data, in_flow = await asyncio.wait_for(got.get(), 5)
            assert data == MSG and in_flow.transport == "tls" and flow.transport == "tls"
            cert = client.peer_certificate(flow)
            assert cert is not None and ("DNS", "sip.example.test") in cert["subjectAltName"]
            await server.send(MSG.replace(b"abc", b"xyz"), flow=in_flow)  # the answer on the same connection
            assert (await asyncio.wait_for(back.get(), 5)).endswith(b"xyz")
            again = await client.send(MSG, transport="tls", host="127.0.0.1", port=port)
            assert again.conn_id == flow.conn_id  # reused, no second handshake
            # the IP address is in the certificate too
            other = TransportManager(lambda d, f: None, tls_context=_client_ctx(pki))
            await other.send(MSG, transport="tls", host="127.0.0.1", port=port)
            await asyncio.wait_for(got.get(), 5)
            await asyncio.wait_for(got.get(), 5)
            await other.close()
        finally:
            await client.close()
            await server.close()

    asyncio.run(asyncio.wait_for(run(), 20))


def test_untrusted_or_misnamed_server_is_refused(pki: Pki) -> None:
    async def run() -> None:
        server, got, port = await _server(pki)
        try:
            system_cas = TransportManager(lambda d, f: None, connect_timeout=3)  # does not know our CA
            with pytest.raises(TransportError, match="certificate|CERTIFICATE"):
                await system_cas.send(MSG, transport="tls", host="127.0.0.1", port=port)
            await system_cas.close()
            wrong_name = TransportManager(lambda d, f: None, tls_context=_client_ctx(pki), connect_timeout=3)
            with pytest.raises(TransportError):
                await wrong_name.send(MSG, transport="tls", host="127.0.0.1", port=port,
                                      server_name="evil.example.test")
            await wrong_name.close()
            lab = TransportManager(lambda d, f: None, verify_tls=False)  # explicit opt-out
            flow = await lab.send(MSG, transport="tls", host="127.0.0.1", port=port)
            assert (await asyncio.wait_for(got.get(), 5))[0] == MSG and lab.peer_certificate(flow) is None
            await lab.close()
            assert got.empty()
        finally:
            await server.close()

    asyncio.run(asyncio.wait_for(run(), 20))


def test_mutual_tls(pki: Pki) -> None:
    async def run() -> None:
        server, got, port = await _server(pki, require_client=True)
        try:
            # without a client certificate the server aborts the handshake; with TLS 1.3 the client
            # learns it only after its first write: the message is never delivered, the flow closes
            anonymous = TransportManager(lambda d, f: None, tls_context=_client_ctx(pki), connect_timeout=3)
            closed = asyncio.Event()
            anonymous.on_flow_closed = lambda f: closed.set()
            try:
                await anonymous.send(MSG, transport="tls", host="127.0.0.1", port=port)
            except TransportError:
                closed.set()  # TLS 1.2 style: refused during the handshake
            await asyncio.wait_for(closed.wait(), 5)
            await asyncio.sleep(0.1)
            await anonymous.close()
            assert got.empty()
            alice = TransportManager(lambda d, f: None, tls_context=_client_ctx(pki, with_cert=True))
            await alice.send(MSG, transport="tls", host="127.0.0.1", port=port)
            data, flow = await asyncio.wait_for(got.get(), 5)
            cert = server.peer_certificate(flow)
            assert data == MSG and cert is not None
            assert ("URI", "sip:alice@example.test") in cert["subjectAltName"]
            await alice.close()
        finally:
            await server.close()

    asyncio.run(asyncio.wait_for(run(), 20))


def test_call_between_uas_over_tls(pki: Pki) -> None:
    async def run() -> None:
        eb = AioSipEndpoint()
        host, port = await eb.transport.listen_tcp("127.0.0.1", 0, ssl_context=_server_ctx(pki))
        eb.stack.sent_by["tls"] = (host, port)
        bob = UserAgent(eb, aor="sip:bob@example.test", outbound=None)
        ended = asyncio.Event()

        async def on_invite(inc: IncomingInvite) -> None:
            assert inc.source.transport == "tls"
            inc.ring()
            inc.answer(SDP).on_bye = lambda req: ended.set()

        bob.on_invite = on_invite
        ea = AioSipEndpoint()
        ea.transport.tls_context = _client_ctx(pki)
        alice = UserAgent(ea, aor="sip:alice@example.test", outbound=Target("tls", host, port))
        session = await asyncio.wait_for(alice.invite("sips:bob@example.test", SDP).result, 5)
        assert session.target.transport == "tls"
        assert "transport=tls" in alice.contact
        for _ in range(100):
            if not bob._uas_2xx:
                break
            await asyncio.sleep(0.02)
        assert not bob._uas_2xx  # the ACK came over TLS too
        await session.bye()
        await asyncio.wait_for(ended.wait(), 5)
        labels = [e.label for e in eb.trace]
        assert labels[:1] == ["INVITE"] and "ACK" in labels and "BYE" in labels
        assert all(e.src.startswith("tls:") for e in eb.trace if not e.label[0].isdigit())
        for ua in (alice, bob):
            await ua.close()
            await ua.endpoint.close()

    asyncio.run(asyncio.wait_for(run(), 20))
