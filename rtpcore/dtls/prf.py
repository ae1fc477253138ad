"""TLS 1.2 key derivation used by DTLS 1.2 (RFC 5246 §5, §8.1, §6.3; RFC 7627; RFC 5705; RFC 5764 §4.2).

::

    pre_master_secret ──PRF("master secret", client_random + server_random)──▶ master_secret
                      └─PRF("extended master secret", session_hash)────────▶ (RFC 7627 §4)
    master_secret ──PRF("key expansion", server_random + client_random)──▶ key_block (§6.3)
                  ──PRF("client finished"/"server finished", Hash(handshake))──▶ verify_data (§7.4.9)
                  ──PRF(label, client_random + server_random [+ context])──▶ exporter (RFC 5705 §4)

    EXTRACTOR-dtls_srtp key block (RFC 5764 §4.2):
        client_write_SRTP_master_key | server_write_SRTP_master_key |
        client_write_SRTP_master_salt | server_write_SRTP_master_salt

The PRF is P_<hash> of RFC 5246 §5 with the cipher suite's hash (SHA-256, or SHA-384 for
``*_SHA384`` suites). HMAC runs through the standard library's C implementation.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes

from .constants import SRTP_EXPORTER_LABEL, VERIFY_DATA_LENGTH, SrtpProfile

HashType = type[hashes.HashAlgorithm]

MASTER_SECRET_LENGTH = 48  # RFC 5246 §8.1


def _name(hash_type: HashType | str) -> str:
    return hash_type if isinstance(hash_type, str) else hash_type().name


def p_hash(hash_type: HashType | str, secret: bytes, seed: bytes, length: int) -> bytes:
    """RFC 5246 §5 P_hash: HMAC chained over A(i) until ``length`` octets."""
    name = _name(hash_type)
    out = bytearray()
    a = seed
    while len(out) < length:
        a = hmac.digest(secret, a, name)
        out += hmac.digest(secret, a + seed, name)
    return bytes(out[:length])


def prf(secret: bytes, label: bytes, seed: bytes, length: int, hash_type: HashType | str = hashes.SHA256) -> bytes:
    """RFC 5246 §5: PRF(secret, label, seed) = P_<hash>(secret, label + seed)."""
    return p_hash(hash_type, secret, label + seed, length)


def prf_tls10(secret: bytes, label: bytes, seed: bytes, length: int) -> bytes:
    """RFC 4346 §5 (the DTLS 1.0 PRF): P_MD5(S1) XOR P_SHA1(S2) over the split secret."""
    half = (len(secret) + 1) // 2
    md5 = p_hash("md5", secret[:half], label + seed, length)
    sha = p_hash("sha1", secret[len(secret) - half :], label + seed, length)
    return bytes(x ^ y for x, y in zip(md5, sha, strict=True))


def transcript_hash(hash_type: HashType | str, messages: bytes) -> bytes:
    return hashlib.new(_name(hash_type), messages).digest()


def master_secret(
    pre_master: bytes, client_random: bytes, server_random: bytes, hash_type: HashType = hashes.SHA256
) -> bytes:
    """RFC 5246 §8.1."""
    return prf(pre_master, b"master secret", client_random + server_random, MASTER_SECRET_LENGTH, hash_type)


def extended_master_secret(pre_master: bytes, session_hash: bytes, hash_type: HashType = hashes.SHA256) -> bytes:
    """RFC 7627 §4: the session hash covers the handshake up to and including ClientKeyExchange."""
    return prf(pre_master, b"extended master secret", session_hash, MASTER_SECRET_LENGTH, hash_type)


@dataclass(frozen=True, slots=True)
class KeyBlock:
    """RFC 5246 §6.3 key block for AEAD suites (no MAC keys; 4-octet implicit IV, RFC 5288)."""

    client_write_key: bytes = field(repr=False)
    server_write_key: bytes = field(repr=False)
    client_write_iv: bytes = field(repr=False)
    server_write_iv: bytes = field(repr=False)
    client_write_mac_key: bytes = field(default=b"", repr=False)
    server_write_mac_key: bytes = field(default=b"", repr=False)


def key_expansion(
    master: bytes,
    client_random: bytes,
    server_random: bytes,
    *,
    key_length: int,
    iv_length: int,
    mac_key_length: int = 0,
    hash_type: HashType = hashes.SHA256,
) -> KeyBlock:
    """RFC 5246 §6.3: note the seed is server_random + client_random here."""
    total = 2 * (mac_key_length + key_length + iv_length)
    block = prf(master, b"key expansion", server_random + client_random, total, hash_type)
    pos = 0

    def take(n: int) -> bytes:
        nonlocal pos
        pos += n
        return block[pos - n : pos]

    cmac, smac = take(mac_key_length), take(mac_key_length)
    ckey, skey = take(key_length), take(key_length)
    civ, siv = take(iv_length), take(iv_length)
    return KeyBlock(ckey, skey, civ, siv, cmac, smac)


def finished_verify_data(
    master: bytes, *, client: bool, handshake_hash: bytes, hash_type: HashType = hashes.SHA256
) -> bytes:
    """RFC 5246 §7.4.9."""
    label = b"client finished" if client else b"server finished"
    return prf(master, label, handshake_hash, VERIFY_DATA_LENGTH, hash_type)


def export_keying_material(
    master: bytes,
    label: bytes,
    client_random: bytes,
    server_random: bytes,
    length: int,
    *,
    context: bytes | None = None,
    hash_type: HashType = hashes.SHA256,
) -> bytes:
    """RFC 5705 §4. ``context=None`` (no context) differs from ``b""`` (an empty context)."""
    seed = client_random + server_random
    if context is not None:
        if len(context) >= 1 << 16:
            raise ValueError("exporter context longer than 2^16-1 octets")
        seed += len(context).to_bytes(2, "big") + context
    return prf(master, label, seed, length, hash_type)


@dataclass(frozen=True, slots=True)
class SrtpKeyingMaterial:
    """RFC 5764 §4.2 split of the EXTRACTOR-dtls_srtp output."""

    profile: SrtpProfile
    client_key: bytes = field(repr=False)
    server_key: bytes = field(repr=False)
    client_salt: bytes = field(repr=False)
    server_salt: bytes = field(repr=False)

    @classmethod
    def split(cls, profile: SrtpProfile, material: bytes) -> SrtpKeyingMaterial:
        k, s = profile.master_key_length, profile.master_salt_length
        if len(material) != 2 * (k + s):
            raise ValueError(f"{profile.name} needs {2 * (k + s)} octets of keying material, got {len(material)}")
        return cls(profile, material[:k], material[k : 2 * k], material[2 * k : 2 * k + s], material[2 * k + s :])

    def local_remote(self, *, is_client: bool) -> tuple[bytes, bytes, bytes, bytes]:
        """(local_key, local_salt, remote_key, remote_salt): the client sends with client_write_*."""
        if is_client:
            return self.client_key, self.client_salt, self.server_key, self.server_salt
        return self.server_key, self.server_salt, self.client_key, self.client_salt


def srtp_keying_material(
    master: bytes,
    client_random: bytes,
    server_random: bytes,
    profile: SrtpProfile,
    hash_type: HashType = hashes.SHA256,
) -> SrtpKeyingMaterial:
    """RFC 5764 §4.2: exporter with label EXTRACTOR-dtls_srtp and no context."""
    material = export_keying_material(
        master, SRTP_EXPORTER_LABEL, client_random, server_random, profile.keying_material_length,
        hash_type=hash_type,
    )
    return SrtpKeyingMaterial.split(profile, material)
