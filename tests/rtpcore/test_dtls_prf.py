"""TLS 1.2 PRF, master secrets, key expansion and the DTLS-SRTP exporter.

Vectors: tests/vectors/dtls/dtls_srtp.json (see PROVENANCE.md): the TLS WG PRF KATs
(P_SHA256, P_SHA384, TLS 1.0 MD5/SHA-1) and two OpenSSL EXTRACTOR-dtls_srtp samples.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes

from rtpcore.dtls.constants import SrtpProfile
from rtpcore.dtls.prf import (
    SrtpKeyingMaterial,
    export_keying_material,
    extended_master_secret,
    finished_verify_data,
    key_expansion,
    master_secret,
    prf,
    prf_tls10,
    srtp_keying_material,
)

VECTORS = json.loads((Path(__file__).parent.parent / "vectors" / "dtls" / "dtls_srtp.json").read_text())
HASHES = {"sha256": hashes.SHA256, "sha384": hashes.SHA384}


@pytest.mark.parametrize("vec", [v for v in VECTORS["tls_prf_vectors"] if v["hash"] in HASHES], ids=lambda v: v["hash"])
def test_tls12_prf_known_answers(vec: dict) -> None:
    # RFC 5246 §5 P_hash, KATs from the TLS WG list (msg03416)
    out = prf(bytes.fromhex(vec["secret"]), vec["label"].encode(), bytes.fromhex(vec["seed"]), vec["length"],
              HASHES[vec["hash"]])
    assert out.hex() == vec["output"]


def test_tls10_prf_known_answer() -> None:
    (vec,) = [v for v in VECTORS["tls_prf_vectors"] if v["hash"] == "md5+sha1"]
    out = prf_tls10(bytes.fromhex(vec["secret"]), vec["label"].encode(), bytes.fromhex(vec["seed"]), vec["length"])
    assert out.hex() == vec["output"]


def test_prf_prefix_property() -> None:
    # P_hash output of a longer length starts with the shorter output
    long = prf(b"k", b"l", b"s", 200)
    assert prf(b"k", b"l", b"s", 33) == long[:33]
    assert len(long) == 200


@pytest.mark.parametrize("sample", VECTORS["exporter_samples"], ids=lambda s: s["negotiated_srtp_profile"])
def test_openssl_exporter_samples(sample: dict) -> None:
    # RFC 5764 §4.2 / RFC 5705 §4: no context
    hash_type = HASHES[sample["prf_hash"]]
    master = bytes.fromhex(sample["master_secret"])
    cr, sr = bytes.fromhex(sample["client_random"]), bytes.fromhex(sample["server_random"])
    ekm = export_keying_material(master, sample["label"].encode(), cr, sr, sample["length"], hash_type=hash_type)
    assert ekm.hex() == sample["exported_keying_material"]
    name = {"SRTP_AES128_CM_SHA1_80": "SRTP_AES128_CM_HMAC_SHA1_80"}.get(sample["negotiated_srtp_profile"],
                                                                           sample["negotiated_srtp_profile"])
    profile = SrtpProfile[name]
    km = srtp_keying_material(master, cr, sr, profile, hash_type)
    split = sample["split"]
    assert km.client_key.hex() == split["client_write_master_key"]
    assert km.server_key.hex() == split["server_write_master_key"]
    assert km.client_salt.hex() == split["client_write_master_salt"]
    assert km.server_salt.hex() == split["server_write_master_salt"]
    # by role: the client's local key is the client_write key, the server's is the server_write key
    lk, ls, rk, rs = km.local_remote(is_client=True)
    assert (lk, ls, rk, rs) == (km.client_key, km.client_salt, km.server_key, km.server_salt)
    assert km.local_remote(is_client=False) == (rk, rs, lk, ls)
    assert repr(km.client_key) not in repr(km)  # keys never appear in logs


def test_exporter_context_none_differs_from_empty() -> None:
    m, cr, sr = b"m" * 48, b"c" * 32, b"s" * 32
    a = export_keying_material(m, b"EXPERIMENTAL x", cr, sr, 20)
    b = export_keying_material(m, b"EXPERIMENTAL x", cr, sr, 20, context=b"")
    assert a != b
    assert b == prf(m, b"EXPERIMENTAL x", cr + sr + b"\x00\x00", 20)


def test_master_secrets_and_key_block_layout() -> None:
    pms, cr, sr = bytes(range(32)), b"\x01" * 32, b"\x02" * 32
    ms = master_secret(pms, cr, sr)
    assert ms == prf(pms, b"master secret", cr + sr, 48)
    ems = extended_master_secret(pms, b"\x05" * 32)
    assert ems == prf(pms, b"extended master secret", b"\x05" * 32, 48)
    assert ems != ms
    kb = key_expansion(ms, cr, sr, key_length=16, iv_length=4)
    block = prf(ms, b"key expansion", sr + cr, 40)
    assert kb.client_write_key == block[:16] and kb.server_write_key == block[16:32]
    assert kb.client_write_iv == block[32:36] and kb.server_write_iv == block[36:40]
    vd = finished_verify_data(ms, client=True, handshake_hash=b"h" * 32)
    assert vd == prf(ms, b"client finished", b"h" * 32, 12)
    assert finished_verify_data(ms, client=False, handshake_hash=b"h" * 32) != vd


def test_split_rejects_wrong_length() -> None:
    with pytest.raises(ValueError):
        SrtpKeyingMaterial.split(SrtpProfile.SRTP_AEAD_AES_128_GCM, b"x" * 60)
    assert SrtpProfile.SRTP_AEAD_AES_256_GCM.keying_material_length == 88
    assert SrtpProfile.SRTP_AES128_CM_HMAC_SHA1_80.keying_material_length == 60
