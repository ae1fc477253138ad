"""RFC 4475 / RFC 5118 torture messages and real-world SIP, judged by their recorded verdicts."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from sipcore import SipParseError, SipRequest, parse_message, sanity_check

VECTORS = Path(__file__).parent.parent / "vectors" / "sip"
INDEX = json.loads((VECTORS / "index.json").read_text())
MESSAGES: list[dict[str, Any]] = INDEX["messages"]


def _load(entry: dict[str, Any]) -> bytes:
    data = (VECTORS / entry["file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == entry["sha256"], "vector file changed"
    return data


def _by(expected: str) -> list[Any]:
    return [pytest.param(m, id=m["name"]) for m in MESSAGES if m["expected"] == expected and
            m["file"].endswith(".sip")]


@pytest.mark.parametrize("entry", _by("invalid-parse"))
def test_invalid_messages_are_rejected_by_the_strict_parser(entry: dict[str, Any]) -> None:
    data = _load(entry)
    with pytest.raises(SipParseError) as info:
        parse_message(data, strict=True)
    if entry["expected_status"] is not None:
        assert info.value.status_hint == entry["expected_status"]


@pytest.mark.parametrize("entry", _by("valid"))
def test_valid_messages_parse_and_round_trip(entry: dict[str, Any]) -> None:
    data = _load(entry)
    msg = parse_message(data, strict=True)
    start = len(data) - len(data.lstrip(b"\r\n"))
    assert bytes(msg) == data[start : msg.consumed]
    # a modified copy re-serialises to something that parses to the same header values
    copy = msg.copy()
    copy.headers.add("X-Touched", "1")
    again = parse_message(bytes(copy), strict=True)
    assert again.headers.get("x-touched") == "1"
    assert again.body == msg.body
    assert again.call_id == msg.call_id
    assert again.cseq == msg.cseq


@pytest.mark.parametrize("entry", _by("valid"))
def test_valid_requests_pass_the_sanity_check_unless_their_role_says_otherwise(entry: dict[str, Any]) -> None:
    msg = parse_message(_load(entry), strict=True)
    if not isinstance(msg, SipRequest):
        return
    roles = entry.get("status_by_role") or {}
    expected = roles.get("endpoint")
    if "siprec" in (msg.headers.get("require") or ""):
        with pytest.raises(SipParseError) as info:  # a UA without SIPREC support answers 420
            sanity_check(msg)
        assert info.value.status_hint == 420 and info.value.unsupported == ("siprec",)
        sanity_check(msg, supported=("siprec",))
    elif isinstance(expected, int):
        with pytest.raises(SipParseError) as info:
            sanity_check(msg, role="endpoint")
        assert info.value.status_hint == expected
    elif msg.method == "REGISTER":
        sanity_check(msg, role="registrar")
    else:
        sanity_check(msg, role="endpoint")


@pytest.mark.parametrize("entry", _by("valid-syntax-but-reject"))
def test_reject_messages_parse_but_fail_the_sanity_check(entry: dict[str, Any]) -> None:
    msg = parse_message(_load(entry), strict=True)
    assert isinstance(msg, SipRequest)
    roles = entry.get("status_by_role") or {}
    role = "registrar" if "registrar" in roles else "endpoint"
    with pytest.raises(SipParseError) as info:
        sanity_check(msg, role=role)
    acceptable = entry.get("acceptable_statuses") or [roles.get(role, entry["expected_status"])]
    assert info.value.status_hint in acceptable


def test_bext01_lists_the_unsupported_option_tags() -> None:
    entry = next(m for m in MESSAGES if m["name"] == "bext01")
    msg = parse_message(_load(entry))
    assert isinstance(msg, SipRequest)
    with pytest.raises(SipParseError) as info:
        sanity_check(msg)
    assert info.value.unsupported
    assert all(tag in (msg.headers.get("require") or "") + (msg.headers.get("proxy-require") or "")
               for tag in info.value.unsupported)


def test_zero_max_forwards_is_483_at_a_proxy_only() -> None:
    entry = next(m for m in MESSAGES if m["name"] == "zeromf")
    msg = parse_message(_load(entry))
    assert isinstance(msg, SipRequest)
    sanity_check(msg, role="endpoint")
    with pytest.raises(SipParseError) as info:
        sanity_check(msg, role="proxy")
    assert info.value.status_hint == 483
