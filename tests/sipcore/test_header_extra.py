"""Extension header views: auth, Reason, Event, Subscription-State, Replaces, Session-Expires, RAck."""

from __future__ import annotations

import pytest

from sipcore import SipParseError
from sipcore.header_extra import (
    parse_auth,
    parse_event,
    parse_rack,
    parse_reason,
    parse_replaces,
    parse_session_expires,
    parse_subscription_state,
)


def test_digest_challenge_rfc7616_example() -> None:
    value = ('Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, '
             'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
             'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"')
    ch = parse_auth(value)
    assert ch.scheme == "Digest"
    assert ch.get("realm") == "http-auth@example.org" and ch.get("qop") == "auth, auth-int"
    assert ch.get("ALGORITHM") == "SHA-256"
    again = parse_auth(str(ch))
    assert again.params == ch.params


def test_credentials_with_escaped_quotes_and_unknown_scheme() -> None:
    cr = parse_auth('Digest username="bob\\"x", realm="r", nonce="n", uri="sip:a@b", response="00", nc=00000001')
    assert cr.get("username") == 'bob"x' and cr.get("nc") == "00000001"
    assert parse_auth(str(cr)).params == cr.params
    assert parse_auth("NoOneKnowsThisScheme opaque-data=here").scheme == "NoOneKnowsThisScheme"
    for bad in ('Digest realm="unterminated', "Digest =x", "Di@gest realm=x"):
        with pytest.raises(SipParseError):
            parse_auth(bad)


def test_reason_event_state() -> None:
    r = parse_reason('SIP ;cause=200 ;text="Call completed elsewhere", Q.850;cause=16')
    assert [(x.protocol, x.cause) for x in r] == [("SIP", 200), ("Q.850", 16)]
    assert r[0].text == "Call completed elsewhere"
    ev = parse_event("refer;id=93809824")
    assert ev.package == "refer" and ev.id == "93809824" and str(ev) == "refer;id=93809824"
    st = parse_subscription_state("terminated;reason=timeout;retry-after=30")
    assert st.state == "terminated" and st.reason == "timeout" and st.retry_after == 30
    assert parse_subscription_state("active;expires=600").expires == 600
    with pytest.raises(SipParseError):
        parse_subscription_state("active;expires=-1")


def test_replaces_session_expires_rack() -> None:
    rp = parse_replaces("98732@sip.example.com;from-tag=r33th4x0r;to-tag=ff87ff;early-only")
    assert (rp.call_id, rp.to_tag, rp.from_tag, rp.early_only) == ("98732@sip.example.com", "ff87ff",
                                                                   "r33th4x0r", True)
    with pytest.raises(SipParseError):
        parse_replaces("98732@sip.example.com;from-tag=x")
    se = parse_session_expires("1800;refresher=uas")
    assert se.seconds == 1800 and se.refresher == "uas" and str(se) == "1800;refresher=uas"
    with pytest.raises(SipParseError):
        parse_session_expires("1800;refresher=me")
    ra = parse_rack("776656 1 INVITE")
    assert (ra.rseq, ra.cseq, ra.method) == (776656, 1, "INVITE")
    with pytest.raises(SipParseError):
        parse_rack("1 INVITE")
