"""DTLS-SRTP interop with real OpenSSL peers (``openssl s_server`` / ``s_client -dtls1_2``).

Our sans-IO connection is driven over a plain UDP socket on 127.0.0.1; OpenSSL prints the
RFC 5764 exporter output (``-keymatexport EXTRACTOR-dtls_srtp``), which must equal the SRTP
keys we derived: client_key | server_key | client_salt | server_salt. Both sides present
certificates (``-verify`` / ``-cert``), fingerprints are checked, application data crosses in
both directions, and small MTUs force our handshake messages to be fragmented.
"""

from __future__ import annotations

import datetime
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from conftest import require
from rtpcore.dtls import (
    ApplicationDataReceived,
    DtlsConnection,
    DtlsTimers,
    HandshakeCompleted,
    SrtpProfile,
    State,
    fingerprint,
    generate_certificate,
)

pytestmark = pytest.mark.interop

OPENSSL_PROFILE = {
    SrtpProfile.SRTP_AES128_CM_HMAC_SHA1_80: "SRTP_AES128_CM_SHA1_80",
    SrtpProfile.SRTP_AES128_CM_HMAC_SHA1_32: "SRTP_AES128_CM_SHA1_32",
    SrtpProfile.SRTP_AEAD_AES_128_GCM: "SRTP_AEAD_AES_128_GCM",
    SrtpProfile.SRTP_AEAD_AES_256_GCM: "SRTP_AEAD_AES_256_GCM",
}
KEYMAT_RE = re.compile(r"Keying material:\s*([0-9A-Fa-f]+)")
HANDSHAKE_TIMEOUT = 15.0


def write_pem(directory: Path, stem: str, cert: x509.Certificate, key) -> tuple[Path, Path]:
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def rsa_certificate() -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "openssl-rsa")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    return cert, key


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def drive(conn: DtlsConnection, sock: socket.socket, peer: tuple[str, int] | None,
          until, timeout: float) -> tuple[list[object], tuple[str, int] | None]:
    """Run the sans-IO connection over the socket until ``until(events)`` or timeout."""
    events: list[object] = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if peer is not None:
            for dg in conn.datagrams_to_send():
                sock.sendto(dg, peer)
        events.extend(conn.events())
        if until(events):
            return events, peer
        deadline = conn.next_deadline()
        wait = 0.05 if deadline is None else min(0.05, max(0.0, deadline - time.monotonic()))
        sock.settimeout(max(wait, 0.001))
        try:
            data, addr = sock.recvfrom(65535)
        except TimeoutError:
            conn.handle_timeout(time.monotonic())
            continue
        peer = peer or addr
        conn.receive(data, time.monotonic())
        conn.handle_timeout(time.monotonic())
    raise AssertionError(f"timed out in state {conn.state.name}; events so far: {events}")


def stop(proc: subprocess.Popen[bytes]) -> str:
    try:
        out, _ = proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate(timeout=5)
    return out.decode(errors="replace")


def check_keys(done: HandshakeCompleted, output: str, *, we_are_client: bool) -> None:
    m = KEYMAT_RE.search(output)
    assert m, f"openssl printed no keying material:\n{output[-2000:]}"
    theirs = bytes.fromhex(m.group(1))
    if we_are_client:
        ours = done.local_key + done.remote_key + done.local_salt + done.remote_salt
    else:
        ours = done.remote_key + done.local_key + done.remote_salt + done.local_salt
    assert ours == theirs
    assert done.srtp_profile is not None and len(theirs) == done.srtp_profile.keying_material_length


@pytest.mark.parametrize("profile,server_key,mtu,cipher", [
    (SrtpProfile.SRTP_AES128_CM_HMAC_SHA1_80, "ec", 1200, "ECDHE-ECDSA-AES128-GCM-SHA256"),
    (SrtpProfile.SRTP_AEAD_AES_128_GCM, "rsa", 1200, "ECDHE-RSA-AES128-GCM-SHA256"),
    (SrtpProfile.SRTP_AEAD_AES_256_GCM, "ec", 300, "ECDHE-ECDSA-AES256-GCM-SHA384"),
    (SrtpProfile.SRTP_AES128_CM_HMAC_SHA1_80, "rsa", 1200, "ECDHE-RSA-AES256-GCM-SHA384"),
])
def test_our_client_against_openssl_s_server(tmp_path: Path, profile: SrtpProfile, server_key: str, mtu: int,
                                             cipher: str) -> None:
    require("openssl")
    s_cert, s_key = rsa_certificate() if server_key == "rsa" else generate_certificate(now=time.time())
    cert_path, key_path = write_pem(tmp_path, "server", s_cert, s_key)
    c_cert, c_key = generate_certificate(now=time.time())
    port = free_udp_port()
    cmd = ["openssl", "s_server", "-dtls1_2", "-4", "-accept", str(port), "-cert", str(cert_path),
           "-key", str(key_path), "-use_srtp", OPENSSL_PROFILE[profile], "-keymatexport", "EXTRACTOR-dtls_srtp",
           "-keymatexportlen", str(profile.keying_material_length), "-verify", "1", "-naccept", "1",
           "-cipher", cipher]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("127.0.0.1", 0))
        conn = DtlsConnection("client", c_cert, c_key, [profile], remote_fingerprint=fingerprint(s_cert),
                              mtu=mtu, timers=DtlsTimers(initial=0.25, max_retransmissions=8))
        conn.start(time.monotonic())
        events, peer = drive(conn, sock, ("127.0.0.1", port),
                             lambda evs: any(isinstance(e, HandshakeCompleted) for e in evs), HANDSHAKE_TIMEOUT)
        done = next(e for e in events if isinstance(e, HandshakeCompleted))
        assert done.srtp_profile is profile and done.peer_fingerprint == fingerprint(s_cert)
        conn.send(b"hello from rtpcore client\n")
        for dg in conn.datagrams_to_send():
            sock.sendto(dg, ("127.0.0.1", port))
        time.sleep(0.3)
        conn.close()
        for dg in conn.datagrams_to_send():
            sock.sendto(dg, ("127.0.0.1", port))
        output = stop(proc)
    finally:
        sock.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    check_keys(done, output, we_are_client=True)
    assert f"SRTP Extension negotiated, profile={OPENSSL_PROFILE[profile]}" in output
    assert "hello from rtpcore client" in output
    assert "Client certificate" in output  # s_server saw (and printed) our certificate
    assert f"CIPHER is {cipher}" in output


@pytest.mark.parametrize("profile,mtu,cookie", [
    (SrtpProfile.SRTP_AES128_CM_HMAC_SHA1_80, 1200, True),
    (SrtpProfile.SRTP_AEAD_AES_128_GCM, 256, True),
    (SrtpProfile.SRTP_AES128_CM_HMAC_SHA1_32, 1200, False),
])
def test_openssl_s_client_against_our_server(tmp_path: Path, profile: SrtpProfile, mtu: int, cookie: bool) -> None:
    require("openssl")
    c_cert, c_key = generate_certificate(now=time.time())
    cert_path, key_path = write_pem(tmp_path, "client", c_cert, c_key)
    s_cert, s_key = generate_certificate(now=time.time())
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    conn = DtlsConnection("server", s_cert, s_key, [profile], remote_fingerprint=fingerprint(c_cert), mtu=mtu,
                          cookie_exchange=cookie, timers=DtlsTimers(initial=0.25, max_retransmissions=8))
    cmd = ["openssl", "s_client", "-dtls1_2", "-connect", f"127.0.0.1:{port}", "-cert", str(cert_path),
           "-key", str(key_path), "-use_srtp", OPENSSL_PROFILE[profile], "-keymatexport", "EXTRACTOR-dtls_srtp",
           "-keymatexportlen", str(profile.keying_material_length)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        events, peer = drive(conn, sock, None,
                             lambda evs: any(isinstance(e, HandshakeCompleted) for e in evs), HANDSHAKE_TIMEOUT)
        assert peer is not None
        done = next(e for e in events if isinstance(e, HandshakeCompleted))
        assert done.peer_fingerprint == fingerprint(c_cert)
        conn.send(b"hello from rtpcore server\n")
        assert proc.stdin is not None
        proc.stdin.write(b"hello from openssl\n")
        proc.stdin.flush()
        more, _ = drive(conn, sock, peer, lambda evs: any(isinstance(e, ApplicationDataReceived) for e in evs), 5.0)
        assert [e.data for e in more if isinstance(e, ApplicationDataReceived)] == [b"hello from openssl\n"]
        proc.stdin.close()
        proc.stdin = None
        output = stop(proc)
    finally:
        sock.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    check_keys(done, output, we_are_client=False)
    assert f"SRTP Extension negotiated, profile={OPENSSL_PROFILE[profile]}" in output
    assert "hello from rtpcore server" in output
    assert conn.state in (State.CONNECTED, State.CLOSED)
