"""STUN codec (RFC 8489 / RFC 5389) and client transaction (RFC 8489 §6.2.1).

Golden vectors: RFC 5769 §2.1-§2.4 and captures from Chromium, baresip and coturn
(tests/vectors/stun/PROVENANCE.md). Each parses, its fields match, MESSAGE-INTEGRITY and
FINGERPRINT verify with the documented key, and it re-encodes byte for byte, both verbatim
and with MESSAGE-INTEGRITY/FINGERPRINT recomputed from the key.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtpcore.errors import LocalProtocolError, RemoteProtocolError, StunError
from rtpcore.ice.stun import (
    AlternateServer,
    ChannelNumber,
    Data,
    DontFragment,
    ErrorCode,
    EvenPort,
    Fingerprint,
    IceControlled,
    IceControlling,
    Lifetime,
    MappedAddress,
    MessageClass,
    MessageIntegrity,
    MessageIntegritySha256,
    Method,
    Nonce,
    Priority,
    Realm,
    RequestedAddressFamily,
    RequestedTransport,
    ReservationToken,
    Software,
    StunMessage,
    UnknownAttribute,
    UnknownAttributes,
    UseCandidate,
    Username,
    XorMappedAddress,
    XorPeerAddress,
    XorRelayedAddress,
    error_response_for,
    is_stun,
    long_term_key,
    parse_header,
    parse_message,
    saslprep,
    short_term_key,
)
from rtpcore.ice.stun_transaction import StunClientTransaction, StunTimers, TransactionState

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "stun"
RFC5769 = json.loads((VECTORS / "rfc5769.json").read_text())["vectors"]
CAPTURES = json.loads((VECTORS / "captures.json").read_text())["fixtures"]
STUN_CAPTURES = [f for f in CAPTURES if f["protocol"].startswith("STUN")]
TID = bytes(range(12))

_NAME_TO_CLASS = {
    "SOFTWARE": Software,
    "PRIORITY": Priority,
    "ICE-CONTROLLED": IceControlled,
    "USERNAME": Username,
    "MESSAGE-INTEGRITY": MessageIntegrity,
    "FINGERPRINT": Fingerprint,
    "XOR-MAPPED-ADDRESS": XorMappedAddress,
    "NONCE": Nonce,
    "REALM": Realm,
}


def _key(creds: dict) -> bytes:
    if creds["kind"] == "short-term":
        return short_term_key(creds["password"])
    return long_term_key(creds["username"], creds["realm"], creds["password_before_saslprep"])


# -- RFC 5769 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("vec", RFC5769, ids=lambda v: v["name"])
def test_rfc5769_vector_fields(vec: dict) -> None:
    data = bytes.fromhex(vec["message_hex"])
    exp = vec["expected"]
    msg = parse_message(data)
    assert msg.message_type == int(exp["message_type"], 16)
    assert msg.method is Method.BINDING
    assert msg.message_class is {"request": MessageClass.REQUEST, "success response": MessageClass.SUCCESS}[exp["class"]]
    assert msg.transaction_id.hex() == exp["transaction_id"]
    assert len(msg.attributes) == len(exp["attributes"])
    for attr, e in zip(msg.attributes, exp["attributes"]):
        assert isinstance(attr, _NAME_TO_CLASS[e["name"]]), e["name"]
        assert attr.attr_type == int(e["type"], 16)
        if "value_utf8" in e:
            assert attr.value == e["value_utf8"]  # type: ignore[attr-defined]
        if "padding_hex" in e:
            assert attr.pad.hex() == e["padding_hex"]
        if e["name"] == "PRIORITY":
            assert attr == Priority(e["value_uint"])
        if e["name"] == "ICE-CONTROLLED":
            assert attr == IceControlled(e["tie_breaker"])
        if e["name"] == "XOR-MAPPED-ADDRESS":
            assert attr == XorMappedAddress((e["address"], e["port"]))
        if e["name"] in ("MESSAGE-INTEGRITY",):
            assert attr.hmac.hex() == e["value_hex"]  # type: ignore[attr-defined]
        if e["name"] == "FINGERPRINT":
            assert attr == Fingerprint(int(e["value_hex"], 16))


@pytest.mark.parametrize("vec", RFC5769, ids=lambda v: v["name"])
def test_rfc5769_integrity_and_reencoding(vec: dict) -> None:
    data = bytes.fromhex(vec["message_hex"])
    msg = parse_message(data)
    key = _key(vec["credentials"])
    assert msg.verify_integrity(key)
    assert not msg.verify_integrity(key + b"x")
    msg.check_integrity(key)
    with pytest.raises(StunError) as ei:
        msg.check_integrity(b"wrong")
    assert ei.value.error_code == 401
    assert msg.encode() == data
    has_fp = msg.get(Fingerprint) is not None
    assert msg.encode(integrity_key=key, fingerprint=has_fp) == data


def test_rfc5769_long_term_key_uses_saslprep() -> None:
    vec = RFC5769[3]
    creds = vec["credentials"]
    assert saslprep(creds["password_before_saslprep"]) == creds["password_after_saslprep"] == "TheMatrIX"
    assert long_term_key(creds["username"], creds["realm"], creds["password_before_saslprep"]).hex() == creds["hmac_key_hex"]
    assert saslprep("I\u00adX") == "IX"  # RFC 4013 §3 example: soft hyphen mapped to nothing
    assert saslprep("a\u00a0b") == "a b"  # non-ASCII space mapped to SPACE
    with pytest.raises(LocalProtocolError):
        saslprep("a\u0007b")  # RFC 4013 §3 example: prohibited control character


# -- captures from real peers ---------------------------------------------------------------------


@pytest.mark.parametrize("fix", STUN_CAPTURES, ids=lambda f: Path(f["file"]).stem)
def test_capture_parses_verifies_and_reencodes(fix: dict) -> None:
    data = (VECTORS / fix["file"]).read_bytes()
    assert len(data) == fix["bytes"]
    assert is_stun(data)
    msg = parse_message(data)
    assert msg.encode() == data
    integ = fix.get("integrity")
    if integ:
        if "key_hex" in integ:
            key = long_term_key(integ["username"], integ["realm"], integ["password"])
            assert key.hex() == integ["key_hex"]
        else:
            key = short_term_key(integ["password"])
        assert msg.verify_integrity(key)
        assert not msg.verify_integrity(b"not the key")
        assert msg.encode(integrity_key=key, fingerprint=msg.get(Fingerprint) is not None) == data
    else:
        assert not msg.has_integrity
    if msg.get(Fingerprint) is not None:
        assert msg.encode(fingerprint=True) == data


def _capture(name: str) -> StunMessage:
    return parse_message((VECTORS / "captures" / name).read_bytes())


def test_capture_fields_chromium_and_baresip() -> None:
    m = _capture("chromium_binding_request_controlling.bin")
    assert m.get(Username) == Username("jk2zSJH:MQ54")
    assert m.get(Priority) == Priority(1853824767)
    assert m.get(IceControlling) == IceControlling(0x7990E6C829F3096F)
    assert m.get(UseCandidate) is not None
    goog = [a for a in m.attributes if isinstance(a, UnknownAttribute)]
    assert len(goog) == 1 and goog[0].attr_type == 0xC057 and not goog[0].comprehension_required
    r = _capture("baresip_binding_response.bin")
    assert r.get(XorMappedAddress) == XorMappedAddress(("10.77.0.1", 41000))
    sw = r.get(Software)
    assert sw is not None and sw.value == "ice stunsrv v1.1.0 (x86_64/linux)" and len(sw.pad) == 3
    assert _capture("baresip_binding_request_controlling.bin").get(UseCandidate) is None
    assert _capture("baresip_binding_request_controlling_usecand.bin").get(UseCandidate) is not None


def test_capture_fields_coturn() -> None:
    e = _capture("coturn_allocate_401.bin")
    assert e.method is Method.ALLOCATE and e.message_class is MessageClass.ERROR
    assert e.error == ErrorCode(401, "Unauthorized")
    assert e.get(Realm) == Realm("lab.local") and e.get(Nonce) == Nonce("fe92f821beb6b344")
    ok = _capture("coturn_allocate_success.bin")
    assert ok.get(XorRelayedAddress) == XorRelayedAddress(("127.0.0.1", 49160))
    assert ok.get(XorMappedAddress) == XorMappedAddress(("127.0.0.1", 50496))
    assert ok.get(Lifetime) == Lifetime(777)
    tok = ok.get(ReservationToken)
    assert tok is not None and len(tok.token) == 8
    req = _capture("turnutils_allocate_request_auth.bin")
    assert req.get(RequestedTransport) == RequestedTransport(17)
    assert req.get(EvenPort) == EvenPort(True)
    assert req.get(RequestedAddressFamily) == RequestedAddressFamily(1)
    assert req.get(DontFragment) is not None
    cb = _capture("turnutils_channelbind_request.bin")
    assert cb.get(ChannelNumber) == ChannelNumber(0x55E8)
    assert cb.get(XorPeerAddress) == XorPeerAddress(("127.0.0.1", 3480))
    b = _capture("coturn_binding_response.bin")
    assert b.get(MappedAddress) == MappedAddress(("127.0.0.1", 48716))
    assert _capture("turnutils_binding_request.bin").attributes == []


# -- building messages ----------------------------------------------------------------------------

ALL_ATTRS = [
    MappedAddress(("192.0.2.7", 1)),
    XorMappedAddress(("2001:db8::1", 65535)),
    XorPeerAddress(("10.1.2.3", 3480)),
    XorRelayedAddress(("::1", 5000)),
    AlternateServer(("198.51.100.4", 3478)),
    Username("ufrag:other"),
    Realm("example.org"),
    Nonce("abc"),
    Software("pyvoice"),
    ErrorCode(487, "Role Conflict"),
    UnknownAttributes((0x0033, 0x0044, 0x0055)),
    Priority(0x6E0001FF),
    Lifetime(600),
    UseCandidate(),
    DontFragment(),
    IceControlled(2**64 - 1),
    IceControlling(1),
    Data(b"\x00\x01\x02"),
    RequestedTransport(17),
    ChannelNumber(0x4001),
    RequestedAddressFamily(2),
    EvenPort(True),
    ReservationToken(b"12345678"),
    UnknownAttribute(0xC057, b"\x00\x01\x00\x00"),
]


def test_every_typed_attribute_round_trips() -> None:
    msg = StunMessage(Method.ALLOCATE, MessageClass.SUCCESS, TID, ALL_ATTRS)
    data = msg.encode(integrity_key=b"k", fingerprint=True)
    back = parse_message(data)
    assert back.attributes[: len(ALL_ATTRS)] == ALL_ATTRS
    assert isinstance(back.attributes[-2], MessageIntegrity) and isinstance(back.attributes[-1], Fingerprint)
    assert back.verify_integrity(b"k")
    assert back.encode() == data


@pytest.mark.parametrize(
    ("method", "cls", "wire"),
    [
        (Method.BINDING, MessageClass.REQUEST, 0x0001),
        (Method.BINDING, MessageClass.INDICATION, 0x0011),
        (Method.BINDING, MessageClass.SUCCESS, 0x0101),
        (Method.BINDING, MessageClass.ERROR, 0x0111),
        (Method.ALLOCATE, MessageClass.ERROR, 0x0113),
        (Method.SEND, MessageClass.INDICATION, 0x0016),
        (Method.DATA, MessageClass.INDICATION, 0x0017),
        (Method.CHANNEL_BIND, MessageClass.SUCCESS, 0x0109),
        (0xFFF, MessageClass.ERROR, 0x3FFF),
    ],
)
def test_message_type_bit_interleaving(method: int, cls: MessageClass, wire: int) -> None:
    data = StunMessage(method, cls, TID).encode()
    assert struct.unpack("!H", data[:2])[0] == wire
    assert parse_header(data) == (method, cls, TID)


def test_message_integrity_sha256_full_and_truncated() -> None:
    msg = StunMessage(Method.BINDING, MessageClass.REQUEST, TID, [Username("a:b")])
    data = msg.encode(integrity_sha256_key=b"secret", fingerprint=True)
    back = parse_message(data)
    assert back.verify_integrity(b"secret") and not back.verify_integrity(b"other")
    mi = back.get(MessageIntegritySha256)
    assert mi is not None and len(mi.hmac) == 32
    # a truncated (16-byte) MESSAGE-INTEGRITY-SHA256 is still verifiable (RFC 8489 §14.6)
    body = data[20:-8]
    body = body[: -32 - 4]
    trunc_hdr = struct.pack("!HHI12s", 0x0001, len(body) + 4 + 16, 0x2112A442, TID)
    import hashlib
    import hmac

    mac = hmac.new(b"secret", trunc_hdr + body, hashlib.sha256).digest()[:16]
    trunc = trunc_hdr + body + struct.pack("!HH", 0x001C, 16) + mac
    assert parse_message(trunc).verify_integrity(b"secret")
    assert not parse_message(trunc).verify_integrity(b"secreT")


def test_attributes_after_message_integrity_are_ignored_by_get() -> None:
    data = StunMessage(Method.BINDING, MessageClass.REQUEST, TID, [Username("a:b")]).encode(integrity_key=b"k")
    # an on-path attacker appends USE-CANDIDATE after MESSAGE-INTEGRITY
    body = data[20:] + struct.pack("!HH", 0x0025, 0)
    forged = struct.pack("!HHI12s", 0x0001, len(body), 0x2112A442, TID) + body
    msg = parse_message(forged)
    assert msg.get_all(UseCandidate)  # kept for re-encoding
    assert msg.get(UseCandidate) is None  # but not believed
    assert msg.verify_integrity(b"k")
    assert msg.encode() == forged


def test_unauthenticated_message_fails_integrity_checks() -> None:
    msg = parse_message(StunMessage(Method.BINDING, MessageClass.REQUEST, TID).encode())
    assert not msg.verify_integrity(b"k")
    with pytest.raises(StunError) as ei:
        msg.check_integrity(b"k")
    assert ei.value.error_code == 400
    assert not StunMessage(Method.BINDING, MessageClass.REQUEST, TID).verify_integrity(b"k")


def test_local_misuse_is_local_error() -> None:
    with pytest.raises(LocalProtocolError):
        StunMessage(Method.BINDING, MessageClass.REQUEST, b"short")
    with pytest.raises(LocalProtocolError):
        StunMessage(Method.BINDING, MessageClass.REQUEST, TID, [XorMappedAddress(("not-ip", 1))]).encode()
    with pytest.raises(LocalProtocolError):
        StunMessage(Method.BINDING, MessageClass.ERROR, TID, [ErrorCode(200)]).encode()


# -- malformed input ------------------------------------------------------------------------------


def _with_attr(atype: int, value: bytes, cls: int = 0x0001) -> bytes:
    body = struct.pack("!HH", atype, len(value)) + value + bytes(-len(value) & 3)
    return struct.pack("!HHI12s", cls, len(body), 0x2112A442, TID) + body


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", 0),
        (b"\x00\x01\x00\x00\x21\x12\xa4\x42", 0),
        (struct.pack("!HHI12s", 0x0001, 0, 0xDEADBEEF, TID), 0),  # no magic cookie
        (struct.pack("!HHI12s", 0xC001, 0, 0x2112A442, TID), 0),  # top bits set (RTP/DTLS etc.)
        (struct.pack("!HHI12s", 0x0001, 4, 0x2112A442, TID), 0),  # length beyond datagram
        (struct.pack("!HHI12s", 0x0001, 2, 0x2112A442, TID) + b"\x00\x00", 0),  # not multiple of 4
        (struct.pack("!HHI12s", 0x0001, 4, 0x2112A442, TID) + b"\x00\x06\x00\x08", 400),  # overrun
        (_with_attr(0x0020, b"\x00\x01\x00"), 400),  # address too short
        (_with_attr(0x0020, b"\x00\x03\x00\x01\x01\x02\x03\x04"), 400),  # family 3
        (_with_attr(0x0020, b"\x00\x02\x00\x01\x01\x02\x03\x04"), 400),  # IPv6 with 4 bytes
        (_with_attr(0x0006, b"\xff\xfe"), 400),  # USERNAME not UTF-8
        (_with_attr(0x0006, b"a" * 513), 400),  # USERNAME too long
        (_with_attr(0x0008, b"\x00" * 19), 400),  # MESSAGE-INTEGRITY not 20 bytes
        (_with_attr(0x001C, b"\x00" * 12), 400),  # MESSAGE-INTEGRITY-SHA256 too short
        (_with_attr(0x0009, b"\x00\x00\x02\x00"), 400),  # ERROR-CODE class 2
        (_with_attr(0x0009, b"\x00\x01"), 400),  # ERROR-CODE too short
        (_with_attr(0x0009, b"\x00\x00\x04\x64"), 400),  # ERROR-CODE number 100
        (_with_attr(0x0024, b"\x00\x00\x01"), 400),  # PRIORITY 3 bytes
        (_with_attr(0x0025, b"\x00"), 400),  # USE-CANDIDATE with a value
        (_with_attr(0x802A, b"\x00" * 4), 400),  # ICE-CONTROLLING 4 bytes
        (_with_attr(0x000A, b"\x00\x01\x00"), 400),  # UNKNOWN-ATTRIBUTES odd
        (_with_attr(0x0017, b"\x03\x00\x00\x00"), 400),  # REQUESTED-ADDRESS-FAMILY 3
        (_with_attr(0x8028, b"\x00\x00\x00\x00"), 0),  # wrong FINGERPRINT
    ],
)
def test_malformed_input_raises_stun_error(data: bytes, code: int) -> None:
    with pytest.raises(StunError) as ei:
        parse_message(data)
    assert ei.value.error_code == code
    assert isinstance(ei.value, RemoteProtocolError)


def test_fingerprint_must_be_last() -> None:
    good = StunMessage(Method.BINDING, MessageClass.REQUEST, TID).encode(fingerprint=True)
    body = good[20:] + struct.pack("!HH", 0x8022, 4) + b"abcd"
    bad = struct.pack("!HHI12s", 0x0001, len(body), 0x2112A442, TID) + body
    with pytest.raises(StunError) as ei:
        parse_message(bad)
    assert ei.value.error_code == 400
    corrupt = bytearray(good)
    corrupt[-1] ^= 1
    with pytest.raises(StunError) as ei:
        parse_message(bytes(corrupt))
    assert ei.value.error_code == 0


def test_unknown_comprehension_required_gives_420_response() -> None:
    req = StunMessage(
        Method.BINDING,
        MessageClass.REQUEST,
        TID,
        [UnknownAttribute(0x0033, b"x"), UnknownAttribute(0xC001, b""), UnknownAttribute(0x0044, b"")],
    ).encode(fingerprint=True)
    with pytest.raises(StunError) as ei:
        parse_message(req)
    assert ei.value.error_code == 420 and ei.value.unknown_attributes == (0x0033, 0x0044)
    resp_bytes = error_response_for(req, ei.value, integrity_key=b"pw")
    assert resp_bytes is not None
    resp = parse_message(resp_bytes)
    assert resp.message_class is MessageClass.ERROR and resp.transaction_id == TID
    assert resp.error == ErrorCode(420, "Unknown Attribute")
    assert resp.get(UnknownAttributes) == UnknownAttributes((0x0033, 0x0044))
    assert resp.verify_integrity(b"pw")


def test_error_response_only_for_requests_with_a_response_due() -> None:
    ind = _with_attr(0x0006, b"\xff", cls=0x0011)
    with pytest.raises(StunError) as ei:
        parse_message(ind)
    assert error_response_for(ind, ei.value) is None  # indications are never answered
    req = _with_attr(0x0006, b"\xff")
    with pytest.raises(StunError) as ei:
        parse_message(req)
    out = error_response_for(req, ei.value)
    assert out is not None and parse_message(out).error == ErrorCode(400, "Bad Request")
    assert error_response_for(b"\x80" * 30, StunError("x", error_code=0)) is None


def test_unknown_optional_attribute_is_kept_in_order() -> None:
    attrs = [Username("x:y"), UnknownAttribute(0xC0DE, b"\x01\x02\x03", pad=b"\xaa"), Priority(5)]
    data = StunMessage(Method.BINDING, MessageClass.REQUEST, TID, attrs).encode()
    assert data[20 + 8 + 4 + 3] == 0xAA  # the kept padding byte is re-emitted
    back = parse_message(data)
    assert back.attributes == attrs and back.encode() == data


def test_is_stun_demux() -> None:
    assert is_stun(StunMessage(Method.BINDING, MessageClass.REQUEST, TID).encode())
    assert not is_stun(b"\x80\x00" + bytes(30))  # RTP
    assert not is_stun(b"\x16\xfe\xfd" + bytes(30))  # DTLS
    assert not is_stun((VECTORS / "captures" / "coturn_channeldata.bin").read_bytes())


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0x8100, 0xFFFF), st.binary(max_size=40), st.binary(min_size=0, max_size=3)),
        max_size=6,
    ),
    st.integers(0, 0xFFF),
    st.sampled_from(list(MessageClass)),
)
def test_property_unknown_optional_attributes_round_trip(items, method, cls) -> None:
    attrs = [UnknownAttribute(t, v, pad=p) for t, v, p in items if t != 0x8028 and t not in range(0x8022, 0x802D)]
    data = StunMessage(method, cls, TID, attrs).encode(fingerprint=True)
    back = parse_message(data)
    assert back.attributes[:-1] == attrs
    assert back.encode() == data


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=120))
def test_property_random_bytes_raise_only_stun_error(blob: bytes) -> None:
    data = struct.pack("!HHI12s", 0x0001, len(blob), 0x2112A442, TID) + blob
    for d in (blob, data):
        try:
            parse_message(d)
        except StunError:
            pass


def test_fingerprint_is_crc32_xor_stun() -> None:
    data = StunMessage(Method.BINDING, MessageClass.REQUEST, TID).encode(fingerprint=True)
    assert struct.unpack("!I", data[-4:])[0] == zlib.crc32(data[:-8]) ^ 0x5354554E


# -- client transaction (RFC 8489 §6.2.1) ----------------------------------------------------------


def _request() -> StunMessage:
    return StunMessage(Method.BINDING, MessageClass.REQUEST, TID, [Username("a:b")])


def _run_until_done(tr: StunClientTransaction, start: float) -> list[float]:
    sends = []
    now = start
    sends += [now] * len(tr.datagrams_to_send(now))
    while (d := tr.next_deadline()) is not None:
        now = d
        tr.handle_timeout(now)
        sends += [now] * len(tr.datagrams_to_send(now))
    return sends


def test_transaction_default_schedule_matches_rfc8489() -> None:
    tr = StunClientTransaction.for_message(_request(), ("192.0.2.1", 3478), 100.0)
    sends = _run_until_done(tr, 100.0)
    assert [round(s - 100.0, 6) for s in sends] == [0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert tr.state is TransactionState.TIMED_OUT and tr.result is None
    assert StunTimers().schedule() == [0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5, 39.5]


def test_transaction_rto_cap_and_custom_counts() -> None:
    t = StunTimers(rto=0.1, rc=5, rm=4, rto_max=0.3)
    assert [round(x, 6) for x in t.schedule()] == [0, 0.1, 0.3, 0.6, 0.9, 1.3]
    tr = StunClientTransaction.for_message(_request(), ("192.0.2.1", 3478), 0.0, timers=t)
    assert len(_run_until_done(tr, 0.0)) == 5
    with pytest.raises(LocalProtocolError):
        StunTimers(rc=0)


def test_transaction_ends_on_matching_authenticated_response() -> None:
    tr = StunClientTransaction.for_message(_request(), ("192.0.2.1", 3478), 0.0, integrity_key=b"pw")
    sent = tr.datagrams_to_send(0.0)
    req = parse_message(sent[0])
    assert req.verify_integrity(b"pw") and req.get(Fingerprint) is not None
    other = StunMessage(Method.BINDING, MessageClass.SUCCESS, bytes(12)).encode(integrity_key=b"pw")
    assert not tr.receive_response(parse_message(other), ("192.0.2.1", 3478), 0.1)
    forged = StunMessage(Method.BINDING, MessageClass.SUCCESS, TID).encode(integrity_key=b"bad")
    assert not tr.receive_response(parse_message(forged), ("192.0.2.1", 3478), 0.1)
    unsigned = StunMessage(Method.BINDING, MessageClass.SUCCESS, TID).encode()
    assert not tr.receive_response(parse_message(unsigned), ("192.0.2.1", 3478), 0.1)
    good = StunMessage(Method.BINDING, MessageClass.SUCCESS, TID, [XorMappedAddress(("1.2.3.4", 5))])
    assert tr.receive_response(parse_message(good.encode(integrity_key=b"pw")), ("192.0.2.1", 3478), 0.2)
    assert tr.done and tr.state is TransactionState.DONE and tr.next_deadline() is None
    assert tr.result is not None and tr.result.get(XorMappedAddress) == XorMappedAddress(("1.2.3.4", 5))
    assert not tr.receive_response(parse_message(good.encode(integrity_key=b"pw")), ("192.0.2.1", 3478), 0.3)


def test_transaction_long_term_challenge_may_be_unauthenticated() -> None:
    tr = StunClientTransaction.for_message(
        _request(), ("192.0.2.1", 3478), 0.0, integrity_key=b"k", accept_unauthenticated=frozenset({401, 438})
    )
    stale = StunMessage(Method.BINDING, MessageClass.ERROR, TID, [ErrorCode(438, "Stale Nonce")]).encode()
    assert tr.receive_response(parse_message(stale), ("192.0.2.1", 3478), 0.1)
    assert tr.result is not None and tr.result.error == ErrorCode(438, "Stale Nonce")


def test_transaction_stop_retransmitting_and_cancel() -> None:
    tr = StunClientTransaction.for_message(_request(), ("192.0.2.1", 3478), 0.0)
    tr.datagrams_to_send(0.0)
    tr.stop_retransmitting(0.2)
    assert tr.next_deadline() == pytest.approx(8.2)
    tr.handle_timeout(8.2)
    assert tr.datagrams_to_send(8.2) == [] and tr.state is TransactionState.TIMED_OUT
    tr2 = StunClientTransaction.for_message(_request(), ("192.0.2.1", 3478), 0.0)
    tr2.cancel()
    assert tr2.state is TransactionState.CANCELLED and tr2.next_deadline() is None
    with pytest.raises(LocalProtocolError):
        StunClientTransaction.for_message(StunMessage(Method.BINDING, MessageClass.SUCCESS, TID), ("1.1.1.1", 1), 0)


def test_reserved_bits_are_kept_for_byte_exact_reencoding() -> None:
    # found by fuzz/fuzz_stun.py: RFFU/reserved bits are ignored on receipt but must survive a round trip
    cases = [
        _with_attr(0x000C, b"\x55\xe8\x00\x08"),  # CHANNEL-NUMBER with non-zero RFFU
        _with_attr(0x0019, b"\x11\x01\x02\x03"),  # REQUESTED-TRANSPORT RFFU
        _with_attr(0x0017, b"\x01\x00\x00\x09"),  # REQUESTED-ADDRESS-FAMILY RFFU
        _with_attr(0x0018, b"\x81"),  # EVEN-PORT with a reserved bit
        _with_attr(0x0009, b"\x01\x02\x0c\x01oops"),  # ERROR-CODE reserved bits (class 4, number 1)
        _with_attr(0x0020, b"\x07\x01\xa1\x47\xe1\x12\xa6\x43"),  # XOR-MAPPED-ADDRESS reserved first byte
    ]
    for data in cases:
        msg = parse_message(data)
        assert msg.encode() == data
    assert parse_message(cases[0]).get(ChannelNumber) == ChannelNumber(0x55E8)
    assert parse_message(cases[4]).error == ErrorCode(401, "oops")
    assert parse_message(cases[5]).get(XorMappedAddress) == XorMappedAddress(("192.0.2.1", 32853))
