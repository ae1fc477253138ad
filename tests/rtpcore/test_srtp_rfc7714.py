"""AES-GCM SRTP and SRTCP: RFC 7714 §16 and §17 test vectors (session keys, no KDF step)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rtpcore.errors import SrtpAuthError
from rtpcore.srtp import SessionKeys, SrtpSession, profile_by_sdes_name

VECTORS = json.loads(
    (Path(__file__).resolve().parent.parent / "vectors" / "srtp" / "srtp_rfc7714.json").read_text()
)


def _session(case: dict[str, Any], *, encrypt: bool) -> SrtpSession:
    profile = profile_by_sdes_name(case["profile"])
    keys = SessionKeys(
        cipher_key=bytes.fromhex(case["key"]), cipher_salt=bytes.fromhex(case["salt"]), auth_key=b""
    )
    return SrtpSession.from_session_keys(profile, keys, keys, encrypt_rtp=encrypt, encrypt_rtcp=encrypt)


def _flip(data: bytes, pos: int, mask: int = 0x01) -> bytes:
    b = bytearray(data)
    b[pos] ^= mask
    return bytes(b)


@pytest.mark.parametrize("case", VECTORS["srtp"], ids=lambda c: c["name"])
def test_srtp_gcm_vector(case: dict[str, Any]) -> None:
    encrypt = case["op"] in ("encrypt", "decrypt")
    plain = bytes.fromhex(case["plaintext_packet"])
    protected = bytes.fromhex(case["protected_packet"])
    if case["op"] in ("encrypt", "tag_only"):
        assert _session(case, encrypt=encrypt).protect_rtp(plain) == protected
    assert _session(case, encrypt=encrypt).unprotect_rtp(protected) == plain
    # §16.1.2 / §16.2.2 / §16.1.4 / §16.2.4 also mean: a changed tag or payload fails.
    with pytest.raises(SrtpAuthError):
        _session(case, encrypt=encrypt).unprotect_rtp(_flip(protected, -1))
    with pytest.raises(SrtpAuthError):
        _session(case, encrypt=encrypt).unprotect_rtp(_flip(protected, -20))


@pytest.mark.parametrize("case", VECTORS["srtcp"], ids=lambda c: c["name"])
def test_srtcp_gcm_vector(case: dict[str, Any]) -> None:
    encrypt = bool(case["e_flag"])
    plain = bytes.fromhex(case["plaintext_packet"])
    protected = bytes.fromhex(case["protected_packet"])
    # The E flag and the 31-bit index are the last word, after the tag (RFC 7714 §9).
    word = int.from_bytes(protected[-4:], "big")
    assert (word >> 31, word & 0x7FFFFFFF) == (case["e_flag"], case["srtcp_index"])
    assert protected[-20:-4].hex() == case["tag"]
    receiver = _session(case, encrypt=True)  # a receiver follows the E flag of the packet
    assert receiver.unprotect_rtcp(protected) == plain

    # Protect: bring the sender's SRTCP index to the vector's 1492 first.
    sender = _session(case, encrypt=encrypt)
    ssrc = int(case["ssrc"], 16)
    while (sender.srtcp_index(ssrc) or 1) < case["srtcp_index"]:
        sender.protect_rtcp(plain)
    assert sender.protect_rtcp(plain) == protected

    for pos, mask, what in ((-5, 0x01, "tag"), (-1, 0x01, "index"), (-4, 0x80, "E flag"), (9, 0x01, "body")):
        with pytest.raises(SrtpAuthError):
            _session(case, encrypt=True).unprotect_rtcp(_flip(protected, pos, mask))
            pytest.fail(f"changed {what} accepted")
