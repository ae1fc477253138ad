"""Digest authentication (RFC 7616, RFC 2617, RFC 3261 §22, RFC 8760): vectors, captures, round trips."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from sipcore import Headers, SipError, SipRequest, SipResponse, make_response, parse_message
from sipcore.auth import (
    AuthenticationFailed,
    DigestClient,
    DigestServer,
    compute_ha1,
    digest_response,
)
from sipcore.errors import LocalProtocolError
from sipcore.header_extra import parse_auth

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "sip_auth"


def load(name: str) -> SipRequest | SipResponse:
    return parse_message((VECTORS / name).read_bytes())


def counter_rng(seed: int = 0) -> Callable[[int], bytes]:
    """Deterministic stand-in for os.urandom."""
    counter = itertools.count(seed)

    def rng(n: int) -> bytes:
        return bytes((next(counter) * 7 + i) & 0xFF for i in range(n))

    return rng


def scripted_rng(*chunks: bytes) -> Callable[[int], bytes]:
    queue = list(chunks)
    fallback = counter_rng(99)

    def rng(n: int) -> bytes:
        if queue and len(queue[0]) == n:
            return queue.pop(0)
        return fallback(n)

    return rng


def register(uri: str = "sip:example.com", cseq: int = 1, body: bytes = b"", method: str = "REGISTER") -> SipRequest:
    h = Headers([
        ("Via", "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKfirst;rport"),
        ("Max-Forwards", "70"),
        ("To", "<sip:alice@example.com>"),
        ("From", "<sip:alice@example.com>;tag=abc"),
        ("Call-ID", "reg-1@192.0.2.10"),
        ("CSeq", f"{cseq} {method}"),
        ("Contact", "<sip:alice@192.0.2.10:5060>"),
    ])
    if body:
        h.add("Content-Type", "text/plain")
    return SipRequest(method, uri, h, body)


def cred_params(req: SipRequest, header: str = "Authorization") -> dict[str, str]:
    values = req.headers.get_all(header)
    assert len(values) == 1, values
    return dict(parse_auth(values[0]).params)


# -- RFC vectors -----------------------------------------------------------------------------------
RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        # RFC 7616 §3.9.1, the two Authorization examples
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_section_3_9_1(algorithm: str, expected: str) -> None:
    ha1 = compute_ha1(algorithm, "Mufasa", "http-auth@example.org", "Circle of Life")
    got = digest_response(algorithm, ha1, "GET", "/dir/index.html", RFC7616_NONCE,
                          qop="auth", nc="00000001", cnonce=RFC7616_CNONCE)
    assert got == expected


def test_rfc2617_section_3_5() -> None:
    ha1 = compute_ha1("MD5", "Mufasa", "testrealm@host.com", "Circle Of Life")
    got = digest_response("MD5", ha1, "GET", "/dir/index.html", "dcd98b7102dd2f0e8b11d0f600bfb0c093",
                          qop="auth", nc="00000001", cnonce="0a4f113b")
    assert got == "6629fae49393a05397450978507c4ef1"


def test_rfc7616_section_3_9_2_sha512_256_as_corrected_by_erratum() -> None:
    # The RFC prints response ae66e67d... and userhash 48886947..., which are SHA-512 truncated to
    # 256 bits; the RFC errata give the FIPS 180-4 SHA-512/256 value checked here.
    ha1 = compute_ha1("SHA-512-256", "J\u00e4s\u00f8n Doe", "api@example.org", "Secret, or not?")
    got = digest_response("SHA-512-256", ha1, "GET", "/doe.json", "5TsQWLVdgBdmrQ0XsxbDODV+57QdFR34I9HAbC/RVvkK",
                          qop="auth", nc="00000001", cnonce="NTg6RKcb9boFIAS3KrFK9BGeh+iDa/sm6jUMp2wds69v")
    assert got == "3798d4131c277846293534c3edc11bd8a5e4cdcbff78b05db9d95eeb1cec68a5"
    assert got != "ae66e67d6b427bd3f120414a82e4acff38e8ecd9101d6c861229025f607a79dd"


def test_rfc2069_and_sess_and_auth_int_arithmetic() -> None:
    ha1 = compute_ha1("MD5", "Mufasa", "testrealm@host.com", "Circle Of Life")
    # RFC 2069 compatibility (no qop): H(H(A1):nonce:H(A2)), recomputed here independently
    md5 = lambda s: hashlib.md5(s.encode()).hexdigest()  # noqa: E731
    nonce = "dcd98b7102dd2f0e8b11d0f600bfb0c093"
    assert digest_response("MD5", ha1, "GET", "/dir/index.html", nonce) == (
        md5(f"{md5('Mufasa:testrealm@host.com:Circle Of Life')}:{nonce}:{md5('GET:/dir/index.html')}")
    )
    sess = digest_response("MD5-sess", ha1, "GET", "/x", "n", qop="auth", nc="00000001", cnonce="c")
    plain = digest_response("MD5", ha1, "GET", "/x", "n", qop="auth", nc="00000001", cnonce="c")
    assert sess != plain
    a = digest_response("SHA-256", ha1, "MESSAGE", "sip:b@x", "n", qop="auth-int", nc="00000001", cnonce="c", body=b"hi")
    b = digest_response("SHA-256", ha1, "MESSAGE", "sip:b@x", "n", qop="auth-int", nc="00000001", cnonce="c", body=b"ho")
    assert a != b and len(a) == 64
    with pytest.raises(LocalProtocolError):
        digest_response("SHA-1", ha1, "GET", "/", "n")
    with pytest.raises(LocalProtocolError):
        digest_response("MD5", ha1, "GET", "/", "n", qop="auth-conf", nc="00000001", cnonce="c")
    with pytest.raises(LocalProtocolError):
        digest_response("MD5-sess", ha1, "GET", "/", "n")


# -- real captures ---------------------------------------------------------------------------------
def test_baresip_register_is_reproduced_byte_for_byte() -> None:
    initial = load("baresip_register_initial.udp.sip")
    challenge = load("kamailio_401_register.udp.sip")
    captured = load("baresip_register_auth.udp.sip")
    assert isinstance(initial, SipRequest) and isinstance(challenge, SipResponse) and isinstance(captured, SipRequest)
    cnonce = bytes.fromhex(dict(parse_auth(captured.headers.get("authorization") or "").params)["cnonce"])
    client = DigestClient("carol", "secret", rng=scripted_rng(cnonce))
    retry = client.authorize(initial, challenge)
    assert retry.headers.get("Authorization") == captured.headers.get("Authorization")
    assert retry.cseq.seq == captured.cseq.seq == initial.cseq.seq + 1
    assert retry.call_id == initial.call_id and retry.from_.tag == initial.from_.tag
    # the old transaction's Via is gone (the stack adds a fresh one); with baresip's, the bytes match
    assert "Via" not in retry.headers
    retry.headers.add_first("Via", captured.headers.get("Via") or "")
    auth = retry.headers.get("Authorization") or ""
    retry.headers.remove("Authorization")
    retry.headers.insert(3, "Authorization", auth)  # baresip's header order
    assert bytes(retry) == (VECTORS / "baresip_register_auth.udp.sip").read_bytes()


@pytest.mark.parametrize(("request_file", "user"), [("baresip_register_auth.udp.sip", "carol"),
                                                      ("jssip_register_auth.ws.sip", "webrtc1")])
def test_server_checks_real_client_digests(request_file: str, user: str) -> None:
    req = load(request_file)
    assert isinstance(req, SipRequest)
    server = DigestServer("lab.local", rng=counter_rng(), algorithms=("MD5",))
    # the digest is right, but Kamailio issued the nonce: a stale answer lets the client retry
    res = server.verify(req, 0.0, {user: "secret"}.get)
    assert (res.ok, res.stale, res.username, res.reason) == (False, True, user, "nonce not issued by this server")
    wrong = server.verify(req, 0.0, {user: "not-secret"}.get)
    assert (wrong.ok, wrong.stale, wrong.reason) == (False, False, "wrong digest response")
    ha1 = compute_ha1("MD5", user, "lab.local", "secret")
    via_ha1 = server.verify(req, 0.0, lookup_ha1=lambda u, alg: ha1 if (u, alg) == (user, "MD5") else None)
    assert via_ha1.stale and via_ha1.reason == "nonce not issued by this server"


def test_jssip_style_challenge_is_answered_with_a_new_transaction() -> None:
    initial = load("jssip_register_initial.ws.sip")
    challenge = load("kamailio_401_register.ws.sip")
    assert isinstance(initial, SipRequest) and isinstance(challenge, SipResponse)
    client = DigestClient("webrtc1", "secret", rng=counter_rng())
    retry = client.authorize(initial, challenge)
    p = cred_params(retry)
    assert p["nonce"] == "awOGnmsDhXJ9F9yGXxaB6z4JKdxgtO2jKKqAX4A=" and p["uri"] == "sip:lab.local"
    assert "algorithm" not in p  # not in the challenge, so not echoed
    ha1 = compute_ha1("MD5", "webrtc1", "lab.local", "secret")
    assert p["response"] == digest_response("MD5", ha1, "REGISTER", "sip:lab.local", p["nonce"], qop="auth",
                                            nc="00000001", cnonce=p["cnonce"])
    assert "Via" not in retry.headers and retry.cseq.seq == load("jssip_register_auth.ws.sip").cseq.seq == 2
    assert bytes(initial) == (VECTORS / "jssip_register_initial.ws.sip").read_bytes()  # original untouched


# -- client <-> server round trips -----------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ["MD5", "MD5-sess", "SHA-256", "SHA-256-sess", "SHA-512-256", "SHA-512-256-sess"])
@pytest.mark.parametrize("qop", ["auth", "auth-int", None])
def test_round_trip(algorithm: str, qop: str | None) -> None:
    server = DigestServer("example.com", rng=counter_rng(1), algorithms=(algorithm,), qop=qop)
    client = DigestClient("alice", "pa55", rng=counter_rng(2), prefer_auth_int=True)
    req = register(body=b"hello", method="MESSAGE")
    first = server.verify(req, 10.0, {"alice": "pa55"}.get)
    assert (first.ok, first.reason) == (False, "no credentials")
    challenge = server.challenge_response(req, 10.0, to_tag="t1")
    retry = client.authorize(req, challenge)
    p = cred_params(retry)
    assert p["algorithm"].upper() == algorithm.upper()
    assert p.get("qop") == qop
    res = server.verify(retry, 11.0, {"alice": "pa55"}.get)
    assert res.ok and res.username == "alice", res
    if qop == "auth-int":
        tampered = retry.copy()
        tampered.body = b"hellO"
        assert server.verify(tampered, 11.0, {"alice": "pa55"}.get).reason == "wrong digest response"


def test_client_prefers_the_strongest_algorithm_offered() -> None:
    req = register()
    md5_first = DigestServer("example.com", rng=counter_rng(), algorithms=("MD5", "SHA-256", "SHA-512-256"))
    challenge = md5_first.challenge_response(req, 0.0)
    assert [parse_auth(v).get("algorithm") for v in challenge.headers.get_all("WWW-Authenticate")] == [
        "MD5", "SHA-256", "SHA-512-256"]
    retry = DigestClient("alice", "pw", rng=counter_rng()).authorize(req, challenge)
    assert cred_params(retry)["algorithm"] == "SHA-512-256"  # one answer per realm, the strongest
    assert md5_first.verify(retry, 1.0, {"alice": "pw"}.get).ok
    only_md5 = DigestClient("alice", "pw", rng=counter_rng(), algorithms=("MD5",)).authorize(
        req, md5_first.challenge_response(req, 0.5))
    assert cred_params(only_md5)["algorithm"] == "MD5"
    assert md5_first.verify(only_md5, 1.0, {"alice": "pw"}.get).ok


def test_stale_nonce_is_retried_with_the_same_password() -> None:
    server = DigestServer("example.com", rng=counter_rng(5), nonce_ttl=300.0)
    client = DigestClient("alice", "pw", rng=counter_rng(6))
    req = register()
    retry = client.authorize(req, server.challenge_response(req, 0.0))
    assert server.verify(retry, 299.0, {"alice": "pw"}.get).ok
    # a later request reuses the nonce after it expired
    later = register(cseq=retry.cseq.seq + 1)
    for name, value in client.reuse_credentials("REGISTER", later.uri_text):
        later.headers.add(name, value)
    assert cred_params(later)["nc"] == "00000002"
    res = server.verify(later, 301.0, {"alice": "pw"}.get)
    assert (res.ok, res.stale, res.reason) == (False, True, "nonce expired")
    again = client.authorize(later, server.challenge_response(later, 301.0, stale=True))
    assert cred_params(again)["nc"] == "00000001" and cred_params(again)["nonce"] != cred_params(later)["nonce"]
    assert server.verify(again, 302.0, {"alice": "pw"}.get).ok
    # the same nonce declared stale again: the loop is detected
    with pytest.raises(AuthenticationFailed, match="same nonce"):
        client.authorize(again, _challenge_with(again, "example.com", cred_params(again)["nonce"], stale=True))


def _challenge_with(req: SipRequest, realm: str, nonce: str, *, stale: bool = False, status: int = 401,
                    extra: str = "") -> SipResponse:
    header = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
    value = f'Digest realm="{realm}", nonce="{nonce}", qop="auth"{extra}' + (", stale=true" if stale else "")
    return make_response(req, status, to_tag="x", headers=[(header, value)])


def test_wrong_password_gives_up_with_a_typed_error() -> None:
    server = DigestServer("example.com", rng=counter_rng(7))
    client = DigestClient("alice", "wrong", rng=counter_rng(8))
    req = register()
    retry = client.authorize(req, server.challenge_response(req, 0.0))
    res = server.verify(retry, 1.0, {"alice": "right"}.get)
    assert (res.ok, res.stale, res.reason) == (False, False, "wrong digest response")
    with pytest.raises(AuthenticationFailed) as info:
        client.authorize(retry, server.challenge_response(retry, 1.0))
    err = info.value
    assert isinstance(err, SipError) and err.realm == "example.com" and err.status == 401
    assert "wrong username or password" in err.cause
    # the same nonce sent back without stale is a loop too
    with pytest.raises(AuthenticationFailed, match="same nonce"):
        client.authorize(retry, _challenge_with(retry, "example.com", cred_params(retry)["nonce"]))


def test_replayed_nonce_count_is_refused_as_stale() -> None:
    server = DigestServer("example.com", rng=counter_rng(9))
    client = DigestClient("alice", "pw", rng=counter_rng(10))
    req = register()
    retry = client.authorize(req, server.challenge_response(req, 0.0))
    assert server.verify(retry, 1.0, {"alice": "pw"}.get).ok
    replay = server.verify(retry, 2.0, {"alice": "pw"}.get)
    assert (replay.ok, replay.stale, replay.reason) == (False, True, "replayed nonce count")
    nxt = register(cseq=5)
    for name, value in client.reuse_credentials("REGISTER", nxt.uri_text):
        nxt.headers.add(name, value)
    assert server.verify(nxt, 3.0, {"alice": "pw"}.get).ok


def test_rfc2069_mode_makes_nonces_single_use() -> None:
    server = DigestServer("example.com", rng=counter_rng(11), qop=None)
    client = DigestClient("alice", "pw", rng=counter_rng(12))
    req = register()
    challenge = server.challenge_response(req, 0.0)
    assert parse_auth(challenge.headers.get("WWW-Authenticate") or "").get("qop") is None
    retry = client.authorize(req, challenge)
    p = cred_params(retry)
    assert "qop" not in p and "nc" not in p and "cnonce" not in p
    assert server.verify(retry, 1.0, {"alice": "pw"}.get).ok
    assert server.verify(retry, 2.0, {"alice": "pw"}.get).stale


def test_opaque_is_echoed_and_checked() -> None:
    server = DigestServer("example.com", rng=counter_rng(13), opaque="FQhe/qaU925k")
    client = DigestClient("alice", "pw", rng=counter_rng(14))
    req = register()
    retry = client.authorize(req, server.challenge_response(req, 0.0))
    assert cred_params(retry)["opaque"] == "FQhe/qaU925k"
    assert server.verify(retry, 1.0, {"alice": "pw"}.get).ok
    forged = retry.copy()
    forged.headers.set("Authorization", (retry.headers.get("Authorization") or "").replace("FQhe/qaU925k", "other"))
    assert server.verify(forged, 1.0, {"alice": "pw"}.get).reason == "opaque mismatch"


def test_multiple_realms_and_proxy_challenges() -> None:
    req = register(uri="sip:bob@biloxi.example.com", method="INVITE")
    resp = make_response(req, 407, to_tag="p", headers=[
        ("Proxy-Authenticate", 'Digest realm="atlanta.example.com", nonce="n1", qop="auth", opaque="o1"'),
        ("Proxy-Authenticate", 'Digest realm="biloxi.example.com", nonce="n2", algorithm=SHA-256, qop="auth"'),
        ("Proxy-Authenticate", 'Digest realm="biloxi.example.com", nonce="n3", algorithm=MD5, qop="auth"'),
        ("Proxy-Authenticate", "Basic realm=\"legacy\""),
        ("Proxy-Authenticate", 'Digest realm="bad'),  # malformed: skipped, not fatal
    ])
    client = DigestClient("alice", "pw", rng=counter_rng(15))
    retry = client.authorize(req, resp)
    creds = [dict(parse_auth(v).params) for v in retry.headers.get_all("Proxy-Authorization")]
    assert [(c["realm"], c["nonce"], c.get("algorithm")) for c in creds] == [
        ("atlanta.example.com", "n1", None), ("biloxi.example.com", "n2", "SHA-256")]
    assert creds[0]["opaque"] == "o1"
    assert "Authorization" not in retry.headers
    # only biloxi challenges again (stale): atlanta's credentials stay, biloxi's are replaced
    again = client.authorize(retry, make_response(retry, 407, to_tag="p", headers=[
        ("Proxy-Authenticate", 'Digest realm="biloxi.example.com", nonce="n4", qop="auth", stale=true')]))
    realms = [(dict(parse_auth(v).params)["realm"], dict(parse_auth(v).params)["nonce"])
              for v in again.headers.get_all("Proxy-Authorization")]
    assert realms == [("atlanta.example.com", "n1"), ("biloxi.example.com", "n4")]
    assert again.cseq.seq == req.cseq.seq + 2


def test_proxy_server_uses_407() -> None:
    server = DigestServer("atlanta.example.com", rng=counter_rng(16), proxy=True)
    req = register(uri="sip:bob@biloxi.example.com", method="INVITE")
    challenge = server.challenge_response(req, 0.0)
    assert challenge.status_code == 407 and "Proxy-Authenticate" in challenge.headers
    retry = DigestClient("alice", "pw", rng=counter_rng(17)).authorize(req, challenge)
    assert "Proxy-Authorization" in retry.headers and "Authorization" not in retry.headers
    assert server.verify(retry, 1.0, {"alice": "pw"}.get).ok


def test_unusable_challenges_raise() -> None:
    req = register()
    client = DigestClient("alice", "pw", rng=counter_rng())
    for value in ('Basic realm="x"', 'Digest realm="x", nonce="n", algorithm=SHA-1',
                  'Digest realm="x", nonce="n", qop="auth-conf"', 'Digest nonce="n"'):
        with pytest.raises(AuthenticationFailed, match="no supported"):
            client.authorize(req, make_response(req, 401, to_tag="a", headers=[("WWW-Authenticate", value)]))
    with pytest.raises(AuthenticationFailed):
        DigestClient("alice", "pw", realms={"other"}).authorize(
            req, _challenge_with(req, "example.com", "n"))
    with pytest.raises(LocalProtocolError):
        client.credentials_for(req, make_response(req, 403))


def test_reused_nonce_may_be_rechallenged_once_without_stale() -> None:
    client = DigestClient("alice", "pw", rng=counter_rng(18))
    req = register()
    first = client.authorize(req, _challenge_with(req, "example.com", "n1"))
    refresh = register(cseq=first.cseq.seq + 1)
    for name, value in client.reuse_credentials("REGISTER", refresh.uri_text):
        refresh.headers.add(name, value)
    # a server that forgot the nonce and does not say stale: one more try is allowed
    retry = client.authorize(refresh, _challenge_with(refresh, "example.com", "n2"))
    assert cred_params(retry)["nonce"] == "n2"
    with pytest.raises(AuthenticationFailed, match="rejected"):
        client.authorize(retry, _challenge_with(retry, "example.com", "n3"))


def test_server_rejections() -> None:
    server = DigestServer("example.com", rng=counter_rng(19), algorithms=("SHA-256",))
    other = DigestServer("example.com", rng=counter_rng(20), algorithms=("SHA-256",))
    client = DigestClient("alice", "pw", rng=counter_rng(21))
    req = register()
    good = client.authorize(req, server.challenge_response(req, 100.0))
    lookup = {"alice": "pw"}.get
    assert server.verify(good, 100.0, lookup).ok
    # a nonce signed with another secret: right digest, so stale (e.g. after a restart)
    res = other.verify(good, 100.0, lookup)
    assert res.stale and res.reason == "nonce not issued by this server"
    # a nonce from the future
    assert server.verify(client.authorize(req, server.challenge_response(req, 500.0)), 100.0, lookup).stale
    # the digest-uri must be the Request-URI
    moved = good.copy()
    moved.uri = "sip:elsewhere.example.com"
    assert server.verify(moved, 100.0, lookup).reason == "digest-uri does not match the Request-URI"
    # unknown user, bad headers, wrong algorithm
    assert server.verify(good, 100.0, {}.get).reason == "unknown user"
    for value, reason in [
        ('Digest realm="example.com", nonce="x", uri="sip:example.com", response="0"', "credentials without username"),
        ('Digest username="alice", realm="example.com', "malformed credentials"),
        ('Digest username="alice", realm="example.com", nonce="x", uri="sip:example.com", response="0", '
         "algorithm=MD5, qop=auth, nc=00000001, cnonce=\"c\"", "algorithm MD5 not offered"),
        ('Digest username="alice", realm="example.com", nonce="x", uri="sip:example.com", response="0", '
         "algorithm=SHA-256", "qop None not offered"),
        ('Digest username="alice", realm="example.com", nonce="x", uri="sip:example.com", response="0", '
         'algorithm=SHA-256, qop=auth, nc=zz, cnonce="c"', "bad nc or cnonce"),
    ]:
        bad = req.copy()
        bad.headers.add("Authorization", value)
        assert server.verify(bad, 100.0, lookup).reason == reason
    other_realm = req.copy()
    other_realm.headers.add("Authorization", 'Digest username="alice", realm="elsewhere", nonce="x"')
    assert server.verify(other_realm, 100.0, lookup).reason == "no credentials"
    with pytest.raises(LocalProtocolError):
        server.verify(good, 100.0)
    with pytest.raises(LocalProtocolError):
        DigestServer("r", qop="auth-conf")
    with pytest.raises(LocalProtocolError):
        DigestServer("r", algorithms=("SHA-1",))


def test_replay_table_is_bounded_and_stays_safe() -> None:
    server = DigestServer("example.com", rng=counter_rng(22), max_tracked_nonces=2)
    client = DigestClient("alice", "pw", rng=counter_rng(23))
    lookup = {"alice": "pw"}.get
    authorized = []
    for i in range(3):
        req = register(cseq=10 * i + 1)
        authorized.append(client.authorize(req, server.challenge_response(req, float(i))))
    for i, req in enumerate(authorized):
        assert server.verify(req, 3.0 + i, lookup).ok
    # the oldest nonce left the table while still live: it is now refused (stale), not replayable
    res = server.verify(authorized[0], 10.0, lookup)
    assert (res.ok, res.stale) == (False, True)


def test_nonce_is_hmac_signed_and_opaque_to_tampering() -> None:
    server = DigestServer("example.com", rng=counter_rng(24))
    nonce = server.make_nonce(42.5)
    assert len(nonce) == 43 and server._nonce_time(nonce) == 42.5
    flipped = nonce[:-1] + ("A" if nonce[-1] != "A" else "B")
    assert server._nonce_time(flipped) is None
    assert server._nonce_time("not base64 !!") is None
    assert server._nonce_time("A" * 43) is None
    assert DigestServer("other.realm", rng=counter_rng(24))._nonce_time(nonce) is None


# -- hostile input: only typed outcomes --------------------------------------------------------------
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_AUTH_TEXT = st.one_of(
    st.text(max_size=120),
    st.builds(lambda k, v: f'Digest realm="example.com", {k}={v}',
              st.sampled_from(["nonce", "nc", "qop", "algorithm", "uri", "response", "cnonce", "username", "stale"]),
              st.text(alphabet="0123456789abcdefgAUTH-\"=, ²", max_size=20)),
)


@settings(max_examples=300, deadline=None)
@given(_AUTH_TEXT)
def test_hostile_credentials_give_a_result_never_an_exception(value: str) -> None:
    server = DigestServer("example.com", rng=counter_rng(30), algorithms=("SHA-256", "MD5-sess"))
    bad = register()
    try:
        bad.headers.add("Authorization", value)
    except SipError:
        return
    result = server.verify(bad, 1.0, {"alice": "pw"}.get)
    assert not result.ok


@settings(max_examples=300, deadline=None)
@given(_AUTH_TEXT)
def test_hostile_challenges_raise_only_authentication_failed(value: str) -> None:
    req = register()
    try:
        resp = make_response(req, 401, to_tag="x", headers=[("WWW-Authenticate", value)])
    except SipError:
        return
    try:
        pairs = DigestClient("alice", "pw", rng=counter_rng(31)).credentials_for(req, resp)
    except AuthenticationFailed:
        return
    assert [name for name, _ in pairs] == ["Authorization"]
