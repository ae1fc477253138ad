"""SIP/tel URI parsing, formatting and RFC 3261 §19.1.4 comparison."""

from __future__ import annotations

import pytest

from sipcore import SipParseError, SipUri, TelUri, parse_uri
from sipcore.uri import AbsoluteUri

# RFC 3261 §19.1.4: pairs that are equivalent
EQUAL = [
    ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
    ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
    ("sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
     "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"),
    ("sip:alice@atlanta.com?subject=project%20x&priority=urgent",
     "sip:alice@atlanta.com?priority=urgent&subject=project%20x"),
]
# ... and pairs that are not
NOT_EQUAL = [
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
]


@pytest.mark.parametrize(("a", "b"), EQUAL)
def test_rfc3261_equivalent_uris(a: str, b: str) -> None:
    assert parse_uri(a) == parse_uri(b)
    assert hash(parse_uri(a)) == hash(parse_uri(b))


@pytest.mark.parametrize(("a", "b"), NOT_EQUAL)
def test_rfc3261_different_uris(a: str, b: str) -> None:
    assert parse_uri(a) != parse_uri(b)


@pytest.mark.parametrize(
    "text",
    [
        "sip:alice@atlanta.com",
        "sips:alice:secretword@atlanta.com;transport=tcp",
        "sip:+1-212-555-1212:1234@gateway.com;user=phone",
        "sip:alice@192.0.2.4:5070",
        "sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com",
        "sip:alice;day=tuesday@atlanta.com",
        "sip:[2001:db8::10]:5070;transport=udp",
        "tel:+358-555-1234567;postd=pp22",
        "mailto:someone@example.com",
    ],
)
def test_uris_format_back_to_their_text(text: str) -> None:
    assert str(parse_uri(text)) == text


def test_components() -> None:
    u = parse_uri("sips:alice:pw@[2001:db8::1]:5061;transport=tls;lr?subject=x")
    assert isinstance(u, SipUri)
    assert (u.user, u.password, u.host, u.port) == ("alice", "pw", "[2001:db8::1]", 5061)
    assert u.secure and u.transport == "tls" and u.has_param("lr")
    assert u.headers == [("subject", "x")]
    t = parse_uri("tel:+1-201-555-0123")
    assert isinstance(t, TelUri) and t == parse_uri("tel:+12015550123")
    assert isinstance(parse_uri("soap.beep://192.0.2.1"), AbsoluteUri)


@pytest.mark.parametrize(
    "text",
    ["", "sip:", "alice@atlanta.com", "<sip:a@b>", "sip:a b@c", "sip:2001:db8::10", "sip:@host",
     "sip:host:99999", "sip:[2001:db8::1", "sip:a@h;;x", "sip:host?x", "1sip:host"],
)
def test_malformed_uris_raise_parse_errors(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_uri(text)


def test_with_params_replaces_and_adds_flags() -> None:
    u = parse_uri("sip:a@b;transport=udp;lr")
    assert isinstance(u, SipUri)
    assert str(u.with_params(transport="tcp")) == "sip:a@b;lr;transport=tcp"
    assert str(u.with_params(ob=None)) == "sip:a@b;transport=udp;lr;ob"
