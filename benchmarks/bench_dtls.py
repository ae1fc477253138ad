"""DTLS 1.2 handshakes per second in memory, and record protection throughput.

Handshake: our client and server (ECDHE x25519, ECDSA P-256, AES-128-GCM, use_srtp, EMS,
mutual certificates) exchange every datagram directly; "with cookie" adds the
HelloVerifyRequest round trip. The reference in the same run is the bare public-key
cryptography a handshake cannot avoid (per side: one x25519 key generation and exchange,
one ECDSA signature, parsing the peer certificate and verifying its signature), so the
ratio shows what the protocol machinery in Python costs on top of OpenSSL's math.

Records: 1200-octet application-data records sealed and opened through our record layer
beside raw ``AESGCM.encrypt``/``decrypt`` calls on the same sizes.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from rtpcore.dtls import DtlsConnection, fingerprint, generate_certificate
from rtpcore.dtls.record import AeadCipher, EpochReader, EpochWriter, parse_records

CLIENT = generate_certificate(now=1_800_000_000.0, common_name="bench-client")
SERVER = generate_certificate(now=1_800_000_000.0, common_name="bench-server")


def _handshake(cookie: bool) -> None:
    client = DtlsConnection("client", *CLIENT, remote_fingerprint=fingerprint(SERVER[0]))
    server = DtlsConnection("server", *SERVER, remote_fingerprint=fingerprint(CLIENT[0]), cookie_exchange=cookie)
    client.start(0.0)
    for _ in range(8):
        moved = False
        for src, dst in ((client, server), (server, client)):
            for d in src.datagrams_to_send():
                moved = True
                dst.receive(d, 0.0)
        if not moved:
            break
    if client.handshake_result is None or server.handshake_result is None:
        raise RuntimeError("benchmark handshake did not complete")


def _crypto_floor() -> None:
    """The public-key work of both sides of one handshake, with nothing else."""
    ckey, skey = CLIENT[1], SERVER[1]
    cder = CLIENT[0].public_bytes(serialization.Encoding.DER)
    sder = SERVER[0].public_bytes(serialization.Encoding.DER)
    a, b = x25519.X25519PrivateKey.generate(), x25519.X25519PrivateKey.generate()
    a.exchange(b.public_key())
    b.exchange(a.public_key())
    for key, der in ((skey, sder), (ckey, cder)):
        sig = key.sign(b"x" * 200, ec.ECDSA(hashes.SHA256()))
        pub = x509.load_der_x509_certificate(der).public_key()
        assert isinstance(pub, ec.EllipticCurvePublicKey)
        pub.verify(sig, b"x" * 200, ec.ECDSA(hashes.SHA256()))


def _rate(fn: Callable[[], object], seconds: float = 1.5) -> float:
    n, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds:
        fn()
        n += 1
    return n / elapsed


def _records(n: int = 20_000) -> tuple[float, float, float, float]:
    key, iv = bytes(range(16)), b"\x01\x02\x03\x04"
    payload = bytes(1200)
    writer, reader = EpochWriter(1, AeadCipher(key, iv)), EpochReader(1, AeadCipher(key, iv))
    t0 = time.perf_counter()
    wire = [writer.encode(23, 0xFEFD, payload) for _ in range(n)]
    seal = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for dg in wire:
        (rec,) = parse_records(dg)
        reader.open(rec)
    open_rate = n / (time.perf_counter() - t0)
    aead = AESGCM(key)
    nonce, aad = bytes(12), bytes(13)
    t0 = time.perf_counter()
    raw = [aead.encrypt(nonce, payload, aad) for _ in range(n)]
    raw_seal = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for ct in raw:
        aead.decrypt(nonce, ct, aad)
    raw_open = n / (time.perf_counter() - t0)
    return seal, open_rate, raw_seal, raw_open


def main() -> None:
    _handshake(True)  # warm up
    with_cookie = _rate(lambda: _handshake(True))
    no_cookie = _rate(lambda: _handshake(False))
    floor = _rate(_crypto_floor)
    print(f"{'handshake (both sides)':34} {'per second':>12} {'ms each':>9} {'vs crypto floor':>16}")
    for name, rate in (("with HelloVerifyRequest", with_cookie), ("without cookie exchange", no_cookie),
                       ("crypto floor (reference)", floor)):
        print(f"{name:34} {rate:12.1f} {1000 / rate:9.2f} {floor / rate:15.2f}x")
    seal, opened, raw_seal, raw_open = _records()
    print(f"\n{'1200-octet records':34} {'per second':>12} {'us each':>9} {'vs raw AESGCM':>16}")
    for name, rate, ref in (("seal (our record layer)", seal, raw_seal), ("open + replay check", opened, raw_open),
                            ("raw AESGCM.encrypt", raw_seal, raw_seal), ("raw AESGCM.decrypt", raw_open, raw_open)):
        print(f"{name:34} {rate:12.0f} {1e6 / rate:9.2f} {ref / rate:15.2f}x")


if __name__ == "__main__":
    main()
