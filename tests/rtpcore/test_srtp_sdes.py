"""SDES ``a=crypto`` (RFC 4568 §9) and the profile table (RFC 5764 §4.1.2, RFC 7714 §14, RFC 6188)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtpcore.errors import LocalProtocolError, RemoteProtocolError, SrtpError
from rtpcore.srtp import (
    AEAD_AES_128_GCM,
    AES_256_CM_HMAC_SHA1_80,
    PROFILES,
    SRTP_AEAD_AES_256_GCM,
    SRTP_AES128_CM_HMAC_SHA1_32,
    SRTP_AES128_CM_HMAC_SHA1_80,
    CryptoAttribute,
    DtlsSrtpProfileId,
    SrtpProfile,
    format_crypto_attribute,
    generate_crypto_attribute,
    parse_crypto_attribute,
    profile_by_dtls_id,
    profile_by_name,
    profile_by_sdes_name,
)

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "srtp"
BARESIP_ERIN = "1 AES_CM_128_HMAC_SHA1_80 inline:cvq0IxXP4tpTeZySMHn12/pFXJVuIGrrNV14XqaC"


def _counting_rng(n: int) -> bytes:
    return bytes(i & 0xFF for i in range(n))


# -- profiles ------------------------------------------------------------------------------------


def test_profile_table_matches_rfc5764_and_rfc7714() -> None:
    table = json.loads((VECTORS / "dtls_srtp.json").read_text())["protection_profiles"]
    checked = 0
    for row in table:
        if row["cipher"] == "NULL":
            with pytest.raises(SrtpError):
                profile_by_dtls_id(int(row["id"], 16))
            continue
        p = profile_by_dtls_id(int(row["id"], 16))
        assert p.name == row["name"] and p.sdes_name == row["sdes_name"]
        assert p.master_key_len * 8 == row["cipher_key_length"]
        assert p.master_salt_len * 8 == row["cipher_salt_length"]
        assert p.srtp_auth_tag_len * 8 == row.get("auth_tag_length", row.get("aead_auth_tag_length"))
        assert p.srtcp_auth_tag_len * 8 == row.get("rtcp_auth_tag_length", p.srtp_auth_tag_len * 8)
        assert p.auth_key_len * 8 == row["auth_key_length"]
        assert p.keying_material_len == row["keying_material_octets"]
        checked += 1
    assert checked == 4


def test_profile_lookups() -> None:
    assert profile_by_dtls_id(0x0001) is SRTP_AES128_CM_HMAC_SHA1_80
    assert profile_by_dtls_id(DtlsSrtpProfileId.SRTP_AEAD_AES_256_GCM) is SRTP_AEAD_AES_256_GCM
    assert profile_by_sdes_name("AES_CM_128_HMAC_SHA1_32") is SRTP_AES128_CM_HMAC_SHA1_32
    assert profile_by_sdes_name("AEAD_AES_128_GCM") is AEAD_AES_128_GCM
    assert profile_by_name("SRTP_AES128_CM_HMAC_SHA1_80") is profile_by_name("AES_CM_128_HMAC_SHA1_80")
    # RFC 6188: SDES only, 256-bit key, 112-bit salt
    assert AES_256_CM_HMAC_SHA1_80.dtls_id is None
    assert (AES_256_CM_HMAC_SHA1_80.master_key_len, AES_256_CM_HMAC_SHA1_80.master_salt_len) == (32, 14)
    for bad in (0x0003, 0x0009, 0xFFFF, -1):
        with pytest.raises(SrtpError):
            profile_by_dtls_id(bad)
    with pytest.raises(SrtpError):
        profile_by_sdes_name("F8_128_HMAC_SHA1_80")
    assert len({p.sdes_name for p in PROFILES}) == len(PROFILES)


# -- parsing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("sdp", ["baresip_offer_sdes.sdp", "baresip_answer_sdes.sdp"])
def test_baresip_crypto_lines_round_trip(sdp: str) -> None:
    text = (VECTORS / "captures" / sdp).read_bytes().decode()
    (line,) = [ln for ln in text.split("\r\n") if ln.startswith("a=crypto:")]
    value = line.removeprefix("a=crypto:")
    attr = parse_crypto_attribute(value)
    assert attr.tag == 1
    assert attr.profile is SRTP_AES128_CM_HMAC_SHA1_80
    assert len(attr.key) == 16 and len(attr.salt) == 14
    assert attr.key + attr.salt == base64.b64decode(value.split("inline:")[1])
    assert (attr.lifetime, attr.mki, attr.session_params) == (None, b"", ())
    assert format_crypto_attribute(attr) == value


def test_lifetime_mki_and_session_params() -> None:
    value = BARESIP_ERIN + "|2^31|1:4 KDR=4 UNENCRYPTED_SRTCP WSH=128 FEC_ORDER=FEC_SRTP"
    attr = parse_crypto_attribute(value)
    assert attr.lifetime == 2**31
    assert attr.mki == b"\x00\x00\x00\x01"
    assert attr.session_params == ("KDR=4", "UNENCRYPTED_SRTCP", "WSH=128", "FEC_ORDER=FEC_SRTP")
    assert attr.kdr == 16
    assert attr.unencrypted_srtcp and not attr.unencrypted_srtp and not attr.unauthenticated_srtp
    assert attr.window_size_hint == 128
    assert format_crypto_attribute(attr) == value


@pytest.mark.parametrize(
    ("suffix", "lifetime", "mki"),
    [
        ("|1048576", 2**20, b""),
        ("|1000", 1000, b""),
        ("|7:1", None, b"\x07"),
        ("|2^20|258:2", 2**20, b"\x01\x02"),
    ],
)
def test_lifetime_and_mki_forms(suffix: str, lifetime: int | None, mki: bytes) -> None:
    attr = parse_crypto_attribute(BARESIP_ERIN + suffix)
    assert (attr.lifetime, attr.mki) == (lifetime, mki)
    assert parse_crypto_attribute(format_crypto_attribute(attr)) == attr


def test_aead_and_256_bit_suites() -> None:
    key46 = base64.b64encode(bytes(range(46))).decode()
    attr = parse_crypto_attribute(f"2 AES_256_CM_HMAC_SHA1_80 inline:{key46}")
    assert attr.profile is AES_256_CM_HMAC_SHA1_80 and attr.key == bytes(range(32))
    assert (
        parse_crypto_attribute(f"2 AES_256_CM_HMAC_SHA1_80 inline:{key46.rstrip('=')}") == attr
    )  # no padding
    key28 = base64.b64encode(bytes(range(28))).decode()
    gcm = parse_crypto_attribute(f"3 AEAD_AES_128_GCM inline:{key28}")
    assert gcm.profile is AEAD_AES_128_GCM and len(gcm.salt) == 12


def test_new_session_uses_the_line() -> None:
    attr = parse_crypto_attribute(BARESIP_ERIN + "|1:2 KDR=10 WSH=512")
    tx, rx = attr.new_session(), attr.new_session()
    pkt = b"\x80\x00\x00\x01" + bytes(4) + b"\x00\x00\x00\x09" + b"payload"
    protected = tx.protect_rtp(pkt)
    assert protected[-12:-10] == b"\x00\x01"  # MKI before the tag
    assert rx.unprotect_rtp(protected) == pkt
    with pytest.raises(SrtpError):
        parse_crypto_attribute(BARESIP_ERIN + " UNAUTHENTICATED_SRTP").new_session()


MALFORMED = [
    "",
    "1",
    "1 AES_CM_128_HMAC_SHA1_80",
    "x AES_CM_128_HMAC_SHA1_80 inline:cvq0IxXP4tpTeZySMHn12/pFXJVuIGrrNV14XqaC",
    "1234567890 AES_CM_128_HMAC_SHA1_80 inline:cvq0IxXP4tpTeZySMHn12/pFXJVuIGrrNV14XqaC",
    "1 AES_CM_128_HMAC_SHA1_80 cvq0IxXP4tpTeZySMHn12/pFXJVuIGrrNV14XqaC",
    "1 AES_CM_128_HMAC_SHA1_80 uri:cvq0IxXP4tpTeZySMHn12/pFXJVuIGrrNV14XqaC",
    "1 NO_SUCH_SUITE inline:cvq0IxXP4tpTeZySMHn12/pFXJVuIGrrNV14XqaC",
    "1 AES_CM_128_HMAC_SHA1_80 inline:cvq0IxXP4tpTeZySMHn12/pFXJVuIGrrNV14Xq",  # 28 octets
    "1 AES_CM_128_HMAC_SHA1_80 inline:cvq0IxXP4tpTeZySMHn12/pFXJVuIGrrNV14XqaC==",  # bad padding
    "1 AES_CM_128_HMAC_SHA1_80 inline:cvq0IxXP4tpTeZySMHn12/pFXJVuIGrrNV14Xq!C",
    "1 AES_CM_128_HMAC_SHA1_80 inline:cvq0IxXP4tpTeZySMHn12/pFXJVuIGrrNV14XqaC|",
    "1 AES_CM_128_HMAC_SHA1_80 inline:cvq0IxXP4tpTeZySMHn12/pFXJVuIGrrNV14XqaC|2^",
    "1 AES_CM_128_HMAC_SHA1_80 inline:cvq0IxXP4tpTeZySMHn12/pFXJVuIGrrNV14XqaC|2^99",
    "1 AES_CM_128_HMAC_SHA1_80 inline:cvq0IxXP4tpTeZySMHn12/pFXJVuIGrrNV14XqaC|0",
    "1 AES_CM_128_HMAC_SHA1_80 inline:cvq0IxXP4tpTeZySMHn12/pFXJVuIGrrNV14XqaC|1:0",
    "1 AES_CM_128_HMAC_SHA1_80 inline:cvq0IxXP4tpTeZySMHn12/pFXJVuIGrrNV14XqaC|1:129",
    "1 AES_CM_128_HMAC_SHA1_80 inline:cvq0IxXP4tpTeZySMHn12/pFXJVuIGrrNV14XqaC|256:1",
    "1 AES_CM_128_HMAC_SHA1_80 inline:cvq0IxXP4tpTeZySMHn12/pFXJVuIGrrNV14XqaC|1:4|2^31",  # MKI before lifetime
    "1 AES_CM_128_HMAC_SHA1_80 inline:cvq0IxXP4tpTeZySMHn12/pFXJVuIGrrNV14XqaC|2^20|2^20",
    "1 AES_CM_128_HMAC_SHA1_80 inline:cvq0IxXP4tpTeZySMHn12/pFXJVuIGrrNV14XqaC|1|2|3|4",
    "1 AES_CM_128_HMAC_SHA1_80 inline:cvq0IxXP4tpTeZySMHn12/pFXJVuIGrrNV14XqaC|a:b",
    "1 AES_CM_128_HMAC_SHA1_80 inline:cvq0IxXP4tpTeZySMHn12/pFXJVuIGrrNV14XqaC KDR=25",
    "1 AES_CM_128_HMAC_SHA1_80 inline:cvq0IxXP4tpTeZySMHn12/pFXJVuIGrrNV14XqaC KDR=x",
    "1 AES_CM_128_HMAC_SHA1_80 inline:cvq0IxXP4tpTeZySMHn12/pFXJVuIGrrNV14XqaC WSH=10",
    "1 AES_CM_128_HMAC_SHA1_80 inline:cvq0IxXP4tpTeZySMHn12/pFXJVuIGrrNV14XqaC|1:4;inline:cvq0IxXP4tpTeZySMHn12/pFXJVuIGrrNV14XqaC|2:4",
    "\u0661 AES_CM_128_HMAC_SHA1_80 inline:cvq0IxXP4tpTeZySMHn12/pFXJVuIGrrNV14XqaC",  # Arabic-Indic digit
    "1 AES_CM_128_HMAC_SHA1_80 inline:cvq0IxXP4tpTeZySMHn12/pFXJVuIGrrNV14XqaC\u00e9",
]


@pytest.mark.parametrize("value", MALFORMED)
def test_malformed_values_raise_srtp_error(value: str) -> None:
    with pytest.raises(SrtpError) as ei:
        parse_crypto_attribute(value)
    assert isinstance(ei.value, RemoteProtocolError)
    assert "cvq0IxXP4tpTeZySMHn12" not in str(ei.value)  # key material stays out of messages


@given(st.text(max_size=120))
def test_arbitrary_text_parses_or_raises_srtp_error(value: str) -> None:
    try:
        attr = parse_crypto_attribute(value)
    except SrtpError:
        return
    assert parse_crypto_attribute(format_crypto_attribute(attr)) == attr


# -- generation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_generate_with_injected_rng(profile: SrtpProfile) -> None:
    attr = generate_crypto_attribute(profile, tag=7, rng=_counting_rng)
    assert attr.key == bytes(range(profile.master_key_len))
    assert attr.salt == bytes(range(profile.master_key_len, profile.master_key_len + profile.master_salt_len))
    value = format_crypto_attribute(attr)
    assert value.startswith(f"7 {profile.sdes_name} inline:")
    assert parse_crypto_attribute(value) == attr
    assert attr.key.hex() not in repr(attr) and attr.salt.hex() not in repr(attr)


def test_generate_uses_fresh_randomness_by_default() -> None:
    a = generate_crypto_attribute(SRTP_AES128_CM_HMAC_SHA1_80)
    b = generate_crypto_attribute(SRTP_AES128_CM_HMAC_SHA1_80)
    assert a.key + a.salt != b.key + b.salt


def test_generate_with_lifetime_mki_and_params() -> None:
    attr = generate_crypto_attribute(
        SRTP_AES128_CM_HMAC_SHA1_80, rng=_counting_rng, lifetime=2**31, mki=b"\x01", session_params=("KDR=1",)
    )
    assert format_crypto_attribute(attr).endswith("|2^31|1:1 KDR=1")


def test_local_misuse_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError):
        generate_crypto_attribute(SRTP_AES128_CM_HMAC_SHA1_80, rng=lambda n: b"short")
    with pytest.raises(LocalProtocolError):
        CryptoAttribute(tag=10**9, profile=SRTP_AES128_CM_HMAC_SHA1_80, key=bytes(16), salt=bytes(14))
    with pytest.raises(LocalProtocolError):
        CryptoAttribute(tag=1, profile=SRTP_AES128_CM_HMAC_SHA1_80, key=bytes(16), salt=bytes(12))
    with pytest.raises(LocalProtocolError):
        CryptoAttribute(
            tag=1, profile=SRTP_AES128_CM_HMAC_SHA1_80, key=bytes(16), salt=bytes(14), session_params=("A B",)
        )
