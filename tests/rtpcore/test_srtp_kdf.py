"""Key derivation and AES-CM keystream: RFC 3711 Appendix B.2/B.3, RFC 6188 §7, RFC 7714 §11."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from rtpcore.errors import LocalProtocolError
from rtpcore.srtp import (
    AES_192_CM_HMAC_SHA1_80,
    AES_256_CM_HMAC_SHA1_80,
    SRTP_AEAD_AES_128_GCM,
    SRTP_AES128_CM_HMAC_SHA1_80,
    SessionKeys,
    SrtpSession,
)
from rtpcore.srtp.kdf import (
    SrtpLabel,
    aes_cm_prf,
    check_key_derivation_rate,
    derive_session_key,
    derive_srtcp_keys,
    derive_srtp_keys,
    prf_input,
)

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "srtp"
RFC3711 = json.loads((VECTORS / "srtp_rfc3711.json").read_text())
RFC6188 = json.loads((VECTORS / "srtp_rfc6188.json").read_text())
KEYSTREAM_CASES = RFC3711["aes_cm_keystream"] + RFC6188["aes_cm_keystream"]
KDF_CASES = RFC3711["key_derivation"] + RFC6188["key_derivation"]
PROFILE_FOR_KEY_LEN = {
    16: SRTP_AES128_CM_HMAC_SHA1_80,
    24: AES_192_CM_HMAC_SHA1_80,
    32: AES_256_CM_HMAC_SHA1_80,
}


@pytest.mark.parametrize("case", KEYSTREAM_CASES, ids=lambda c: c["name"])
def test_aes_cm_keystream_whole_segment(case: dict[str, Any]) -> None:
    # RFC 3711 B.2 / RFC 6188 7.1, 7.3: the keystream with IV = salt * 2^16 over 65282 blocks.
    key = bytes.fromhex(case["session_key"])
    shifted = bytes.fromhex(case["session_salt_shifted"])
    assert shifted[14:] == b"\x00\x00"
    stream = aes_cm_prf(key, shifted[:14], case["keystream_segment_blocks"] * 16)
    for block in case["blocks"]:
        i = block["index"]
        assert int.from_bytes(shifted, "big") + i == int(block["counter"], 16)
        assert stream[16 * i : 16 * i + 16].hex() == block["keystream"], block["index"]


@pytest.mark.parametrize("case", KEYSTREAM_CASES, ids=lambda c: c["name"])
def test_srtp_payload_encryption_uses_the_b2_keystream(case: dict[str, Any]) -> None:
    # The packet path (SSRC 0, ROC 0, SEQ 0): the payload of zeros comes out as the keystream.
    key = bytes.fromhex(case["session_key"])
    salt = bytes.fromhex(case["session_salt_shifted"])[:14]
    profile = PROFILE_FOR_KEY_LEN[len(key)]
    keys = SessionKeys(cipher_key=key, cipher_salt=salt, auth_key=bytes(20))
    session = SrtpSession.from_session_keys(profile, keys, keys)
    header = bytes.fromhex("800000000000000000000000")
    out = session.protect_rtp(header + bytes(48))
    first3 = "".join(b["keystream"] for b in case["blocks"][:3])
    assert out[12 : 12 + 48].hex() == first3


@pytest.mark.parametrize("length", [1, 15, 16, 17, 160, 1184, 65523])
def test_packet_keystream_equals_cryptography_ctr(length: int) -> None:
    # The counter-block construction in context.py against cryptography's own CTR mode.
    key = bytes(range(16))
    salt = bytes(range(100, 114))
    keys = SessionKeys(cipher_key=key, cipher_salt=salt, auth_key=bytes(20))
    session = SrtpSession.from_session_keys(SRTP_AES128_CM_HMAC_SHA1_80, keys, keys)
    ssrc, seq = 0xDEADBEEF, 0x1234
    header = bytes([0x80, 0x00]) + seq.to_bytes(2, "big") + bytes(4) + ssrc.to_bytes(4, "big")
    out = session.protect_rtp(header + bytes(length))
    iv = (int.from_bytes(salt, "big") << 16) ^ (ssrc << 64) ^ (seq << 16)
    ctr = Cipher(algorithms.AES(key), modes.CTR(iv.to_bytes(16, "big"))).encryptor()
    assert out[12 : 12 + length] == ctr.update(bytes(length))


@pytest.mark.parametrize("case", KDF_CASES, ids=lambda c: c["name"])
def test_key_derivation_vectors(case: dict[str, Any]) -> None:
    # RFC 3711 B.3, RFC 6188 7.2 / 7.4.
    key = bytes.fromhex(case["master_key"])
    salt = bytes.fromhex(case["master_salt"])
    for d in case["derived"]:
        if "x" in d:
            assert prf_input(salt, d["label"]).hex() == d["x"]
        got = derive_session_key(key, salt, d["label"], d["length"], index=case["index"], kdr=case["kdr"])
        assert got.hex() == d["value"], d["what"]
    profile = PROFILE_FOR_KEY_LEN[len(key)]
    keys = derive_srtp_keys(profile, key, salt)
    by_label = {d["label"]: d for d in case["derived"]}
    assert keys.cipher_key.hex() == by_label[0]["value"]
    assert keys.cipher_salt.hex() == by_label[2]["value"]
    assert keys.auth_key.hex() == by_label[1].get("value_first_20", by_label[1]["value"])[:40]


def test_srtcp_labels_differ_from_srtp_labels() -> None:
    case = RFC3711["key_derivation"][0]
    key, salt = bytes.fromhex(case["master_key"]), bytes.fromhex(case["master_salt"])
    rtp = derive_srtp_keys(SRTP_AES128_CM_HMAC_SHA1_80, key, salt)
    rtcp = derive_srtcp_keys(SRTP_AES128_CM_HMAC_SHA1_80, key, salt)
    assert rtcp.cipher_key == derive_session_key(key, salt, SrtpLabel.SRTCP_ENCRYPTION, 16)
    assert rtcp.auth_key == derive_session_key(key, salt, SrtpLabel.SRTCP_AUTHENTICATION, 20)
    assert rtcp.cipher_salt == derive_session_key(key, salt, SrtpLabel.SRTCP_SALT, 14)
    assert {rtp.cipher_key, rtp.auth_key[:16], rtp.cipher_salt} & {rtcp.cipher_key} == set()


def test_gcm_salt_is_padded_per_errata_4938() -> None:
    # RFC 7714 Errata 4938: the 12-octet master salt is multiplied by 2^16 before the AES-CM PRF.
    key, salt12 = bytes(range(16)), bytes(range(1, 13))
    keys = derive_srtp_keys(SRTP_AEAD_AES_128_GCM, key, salt12)
    assert keys.auth_key == b""
    assert len(keys.cipher_salt) == 12
    padded = salt12 + b"\x00\x00"
    assert keys.cipher_key == derive_session_key(key, padded, SrtpLabel.SRTP_ENCRYPTION, 16)
    assert keys.cipher_salt == derive_session_key(key, padded, SrtpLabel.SRTP_SALT, 14)[:12]


def test_nonzero_key_derivation_rate_places_r_after_the_label() -> None:
    # RFC 3711 §4.3.1: key_id = label || (index DIV kdr), 48-bit r, XORed into the salt's low bits.
    salt = bytes.fromhex(RFC3711["key_derivation"][0]["master_salt"])
    assert prf_input(salt, 0, 0) == salt
    x = prf_input(salt, 2, 0x0102030405)
    assert int.from_bytes(x, "big") == int.from_bytes(salt, "big") ^ (2 << 48) ^ 0x0102030405
    key = bytes(16)
    # index 0..15 share r = 0 with kdr 16; index 16 starts r = 1
    k0 = derive_session_key(key, salt, 0, 16, index=15, kdr=16)
    k1 = derive_session_key(key, salt, 0, 16, index=16, kdr=16)
    assert k0 == derive_session_key(key, salt, 0, 16)
    assert k1 == aes_cm_prf(key, prf_input(salt, 0, 1), 16) != k0


@pytest.mark.parametrize("kdr", [-1, 3, 6, (1 << 24) + 1, 1 << 25])
def test_bad_key_derivation_rates_are_refused(kdr: int) -> None:
    with pytest.raises(LocalProtocolError):
        check_key_derivation_rate(kdr)


def test_key_derivation_rate_log2() -> None:
    assert [check_key_derivation_rate(k) for k in (0, 1, 2, 1 << 24)] == [0, 0, 1, 24]


def test_session_keys_repr_hides_key_material() -> None:
    keys = derive_srtp_keys(SRTP_AES128_CM_HMAC_SHA1_80, bytes(range(16)), bytes(range(14)))
    assert keys.cipher_key.hex() not in repr(keys)
    assert "16 B" in repr(keys)


def test_wrong_master_key_length_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError):
        derive_srtp_keys(SRTP_AES128_CM_HMAC_SHA1_80, bytes(15), bytes(14))
    with pytest.raises(LocalProtocolError):
        SrtpSession(SRTP_AES128_CM_HMAC_SHA1_80, bytes(16), bytes(12))
