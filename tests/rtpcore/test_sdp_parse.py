"""SDP model, parser and serializer (RFC 8866) against real SDP from browsers and softphones.

Every vector in tests/vectors/sdp (see PROVENANCE.md there) is parsed, checked field by
field, and serialized back to the same bytes. Values that change with every capture (ICE
credentials, fingerprints, keys) are cross-checked against the raw text with a regex
instead of being hard-coded.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtpcore.errors import RemoteProtocolError, SdpParseError
from rtpcore.sdp import (
    Bandwidth,
    Candidate,
    Connection,
    Crypto,
    Direction,
    ExtMap,
    Fingerprint,
    Group,
    KeyParams,
    MediaDescription,
    Msid,
    Origin,
    RtcpAddress,
    RtcpFeedback,
    RtpMap,
    SdpLimits,
    SessionDescription,
    Setup,
    SsrcAttribute,
    SsrcGroup,
    Timing,
    parse_sdp,
)

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "sdp"


def sdp_body(name: str) -> bytes:
    """The SDP of a vector: a .sdp file as is, a .sip message's body (or its SDP MIME part)."""
    data = (VECTORS / name).read_bytes()
    if name.endswith(".sdp"):
        return data
    head, _, body = data.partition(b"\r\n\r\n")
    m = re.search(rb"(?im)^content-type:\s*multipart/[^;\r\n]+;\s*boundary=\"?([^\";\r\n]+)", head)
    if m is None:
        return body
    for part in body.split(b"--" + m.group(1)):
        part_head, _, part_body = part.partition(b"\r\n\r\n")
        if b"application/sdp" in part_head.lower():
            return part_body[:-2] if part_body.endswith(b"\r\n") else part_body  # CRLF belongs to delimiter
    raise AssertionError(f"no SDP part in {name}")


ALL_VECTORS = sorted(p.name for p in VECTORS.iterdir() if p.suffix in (".sdp", ".sip"))

# The only non-canonical bodies, and what canonical form the serializer gives them.
NON_CANONICAL = {
    "audiocodes-invite.sip": lambda b: b + b"\r\n",  # last line has no CRLF
    "dialogic-200ok.sip": lambda b: b + b"\r\n",  # last line has no CRLF
    "sipjs-wss-invite-chrome-sdp.sip": lambda b: b[:-2],  # an extra empty line at the end
}


def raw_attr(body: bytes, name: str) -> list[str]:
    """Independent extraction of attribute values from the raw text."""
    return [v.decode() for v in re.findall(rb"(?m)^a=" + re.escape(name.encode()) + rb":([^\r\n]*)\r?$", body)]


def test_vector_set_is_complete() -> None:
    assert len(ALL_VECTORS) == 30
    assert (VECTORS / "PROVENANCE.md").is_file()


@pytest.mark.parametrize("name", ALL_VECTORS)
def test_vector_round_trip_is_byte_exact(name: str) -> None:
    body = sdp_body(name)
    sdp = parse_sdp(body)
    expected = NON_CANONICAL.get(name, lambda b: b)(body)
    assert sdp.to_bytes() == expected
    assert str(sdp) == expected.decode()
    # str input gives the same model, and the output re-parses to an equal model
    assert parse_sdp(body.decode()) == sdp
    assert parse_sdp(sdp.to_bytes()) == sdp


@pytest.mark.parametrize("name", ALL_VECTORS)
def test_vector_lf_only_and_trailing_space_parse_to_the_same_model(name: str) -> None:
    body = sdp_body(name)
    sdp = parse_sdp(body)
    lf = body.replace(b"\r\n", b"\n")
    assert parse_sdp(lf) == sdp
    spaced = b"\n".join(line + b" \t" for line in lf.split(b"\n"))
    assert parse_sdp(spaced) == sdp


@pytest.mark.parametrize("name", ALL_VECTORS)
def test_vector_typed_views_agree_with_raw_text(name: str) -> None:
    """Each typed attribute re-formats to its exact raw value (canonical spacing in all vectors)."""
    body = sdp_body(name)
    sdp = parse_sdp(body)
    cands = [c for m in sdp.media for c in m.candidates]
    assert [str(c) for c in cands] == raw_attr(body, "candidate")
    fps = sdp.fingerprints + [f for m in sdp.media for f in m.fingerprints]
    assert sorted(str(f) for f in fps) == sorted(raw_attr(body, "fingerprint"))
    assert [str(c) for m in sdp.media for c in m.crypto] == raw_attr(body, "crypto")
    assert [str(s) for m in sdp.media for s in m.ssrcs] == raw_attr(body, "ssrc")
    assert [str(s) for m in sdp.media for s in m.ssrc_groups] == raw_attr(body, "ssrc-group")
    assert [str(e) for m in sdp.media for e in m.extmaps] == raw_attr(body, "extmap")
    assert [str(g) for g in sdp.groups] == raw_attr(body, "group")
    assert [str(r) for m in sdp.media if m.rtcp for r in [m.rtcp]] == raw_attr(body, "rtcp")
    assert [str(f) for m in sdp.media for f in m.rtcp_feedback] == raw_attr(body, "rtcp-fb")
    assert [str(x) for m in sdp.media for x in m.msids] == raw_attr(body, "msid")
    ufrags = [sdp.ice_ufrag] if sdp.ice_ufrag else []
    ufrags += [m.ice_ufrag for m in sdp.media if m.ice_ufrag]
    assert ufrags == raw_attr(body, "ice-ufrag")


# -- field-by-field checks of the real vectors -----------------------------------------------

# name -> (m= kinds, proto of m[0], formats of m[0], candidates in m[0], setup, fingerprint algorithm,
#          crypto lines in m[0], effective direction of m[0], mid of m[0], BUNDLE mids, rtcp-mux of m[0])
EXPECTED = {
    "baresip_offer_plain.sdp": (["audio"], "RTP/AVP", "0 8 101", 0, None, None, 0, "sendrecv", None, None, True),
    "baresip_answer_plain.sdp": (["audio"], "RTP/AVP", "0 8 101", 0, None, None, 0, "sendrecv", None, None, True),
    "baresip_offer_sdes.sdp": (["audio"], "RTP/SAVP", "96 0 101", 0, None, None, 1, "sendrecv", None, None, True),
    "baresip_answer_sdes.sdp": (["audio"], "RTP/SAVP", "96 0 101", 0, None, None, 1, "sendrecv", None, None, True),
    "baresip_offer_dtls_ice.sdp": (["audio"], "UDP/TLS/RTP/SAVPF", "96 0 101", 1, "actpass", "sha-256", 0,
                                   "sendrecv", None, None, True),
    "baresip_answer_dtls_ice.sdp": (["audio"], "UDP/TLS/RTP/SAVPF", "111 0 126", 1, "active", "sha-256", 0,
                                    "sendrecv", None, None, True),
    "chromium_offer.sdp": (["audio"], "UDP/TLS/RTP/SAVPF", "111 63 9 0 8 13 110 126", 2, "actpass", "sha-256", 0,
                           "sendrecv", "0", ("0",), True),
    "chromium_answer.sdp": (["audio"], "UDP/TLS/RTP/SAVPF", "96 0 101", 1, "active", "sha-256", 0, "sendrecv",
                            "0", None, True),
    "sipp_offer_pcma.sdp": (["audio"], "RTP/AVP", "8 0 101", 0, None, None, 0, "sendrecv", None, None, False),
    "kamailio_200_invite_rr.udp.sip": (["audio"], "RTP/AVP", "8 0 101", 0, None, None, 0, "sendrecv", None, None,
                                       False),
    "linphone_200_invite_recvonly.udp.sip": (["audio"], "RTP/AVP", "8 0 101", 0, None, None, 0, "recvonly", None,
                                             None, False),
    "sipp_uac_invite_builtin.udp.sip": (["audio"], "RTP/AVP", "0", 0, None, None, 0, "sendrecv", None, None, False),
    "chrome-audio-offer.sdp": (["audio"], "UDP/TLS/RTP/SAVPF", "111 103 104 9 0 8 106 105 13 110 112 113 126", 4,
                               "actpass", "sha-256", 0, "sendrecv", "audio", ("audio",), True),
    "chrome-video-offer.sdp": (["video"], "UDP/TLS/RTP/SAVPF", "96 97 98 99 100 101 102", 2, "actpass", "sha-256",
                               0, "sendrecv", "video", ("video",), True),
    "firefox58-audio-offer.sdp": (["audio"], "UDP/TLS/RTP/SAVPF", "109 9 0 8 101", 10, "actpass", "sha-256", 0,
                                  "sendrecv", "sdparta_0", ("sdparta_0",), True),
    "firefox61-video-offer.sdp": (["video"], "UDP/TLS/RTP/SAVPF", "120 121", 4, "actpass", "sha-256", 0,
                                  "sendrecv", "sdparta_0", ("sdparta_0",), True),
    "safari-audio-video-data-offer.sdp": (["audio", "video", "application"], "UDP/TLS/RTP/SAVPF",
                                          "111 103 9 102 0 8 105 13 110 113 126", 3, "actpass", "sha-256", 0,
                                          "sendrecv", "audio", ("audio", "video", "data"), True),
    "freeswitch-webrtc-answer.sdp": (["audio"], "UDP/TLS/RTP/SAVPF", "8 101", 1, "active", "sha-256", 0,
                                     "sendrecv", None, None, True),
    "jssip-wss-invite-chrome-offer.sip": (["audio"], "UDP/TLS/RTP/SAVPF",
                                          "111 103 104 9 0 8 106 105 13 110 112 113 126", 3, "actpass", "sha-256",
                                          0, "sendrecv", "0", ("0",), True),
    "jssip-wss-200ok-chrome-answer.sip": (["audio"], "UDP/TLS/RTP/SAVPF",
                                          "111 103 104 9 0 8 106 105 13 110 112 113 126", 3, "active", "sha-256",
                                          0, "sendrecv", "0", None, True),
    "kamailio-relayed-invite-wss.sip": (["audio"], "UDP/TLS/RTP/SAVPF",
                                        "111 103 104 9 0 8 106 105 13 110 112 113 126", 4, "actpass", "sha-1", 0,
                                        "sendrecv", "0", None, True),
    "kamailio-relayed-200ok-wss.sip": (["audio"], "UDP/TLS/RTP/SAVPF",
                                       "111 103 104 9 0 8 106 105 13 110 112 113 126", 2, "passive", "sha-1", 0,
                                       "sendrecv", "0", None, True),
    "sipjs-wss-invite-chrome-sdp.sip": (["audio"], "RTP/SAVPF", "111 103 104 0 8 106 105 13 126", 2, "actpass",
                                        "sha-256", 2, "sendrecv", "audio", ("audio",), True),
    "audiocodes-invite.sip": (["audio"], "RTP/AVP", "0", 0, None, None, 0, "sendrecv", None, None, False),
    "dialogic-200ok.sip": (["audio"], "RTP/AVP", "0", 0, None, None, 0, "sendrecv", None, None, False),
    "siprec-multipart-invite.sip": (["audio", "audio"], "RTP/AVP", "0", 0, None, None, 0, "sendonly", None, None,
                                    False),
    "rfc5118-ipv6-in-sdp.sip": (["audio", "video"], "RTP/AVP", "2", 0, None, None, 0, "sendrecv", None, None,
                                False),
    "rfc5118-ipv4-mapped-ipv6.sip": (["audio", "video"], "RTP/AVP", "2", 0, None, None, 0, "sendrecv", None, None,
                                     False),
    "rfc5118-mult-ip-in-sdp.sip": (["audio", "video"], "RTP/AVP", "0", 0, None, None, 0, "sendrecv", None, None,
                                   False),
    "rfc4475-sdp01.sip": (["audio", "video"], "RTP/AVP", "0 12", 0, None, None, 0, "sendrecv", None, None, False),
}


def test_every_vector_has_expectations() -> None:
    assert set(EXPECTED) | {"safari-audio-video-data-offer.sdp"} == set(ALL_VECTORS)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_vector_key_fields(name: str) -> None:
    kinds, proto, formats, n_cand, setup, fp_alg, n_crypto, direction, mid, bundle, mux = EXPECTED[name]
    body = sdp_body(name)
    sdp = parse_sdp(body)
    m = sdp.media[0]
    assert [x.kind for x in sdp.media] == kinds
    assert m.proto == proto
    assert " ".join(m.formats) == formats
    assert len(m.candidates) == n_cand
    eff_setup = sdp.effective_setup(m)
    assert (eff_setup.value if eff_setup else None) == setup
    fps = sdp.effective_fingerprints(m)
    assert (fps[0].algorithm if fps else None) == fp_alg
    assert len(m.crypto) == n_crypto
    assert sdp.effective_direction(m).value == direction
    assert m.mid == mid
    assert sdp.bundle_mids == bundle
    assert m.rtcp_mux is mux
    # ICE credentials: media level wins, else session level; compare with the raw text
    ice = sdp.effective_ice(m)
    pwds = raw_attr(body, "ice-pwd")
    if pwds:
        assert ice is not None and ice.pwd == pwds[0] and ice.ufrag == raw_attr(body, "ice-ufrag")[0]
        assert len(ice.ufrag) >= 4 and len(ice.pwd) >= 22  # RFC 8839 §5.4
    else:
        assert ice is None
    o = re.search(rb"(?m)^o=(\S+) (\d+) (\d+) IN (IP[46]) (\S+)\r?$", body)
    assert o is not None
    assert sdp.origin == Origin(o[1].decode(), o[2].decode(), int(o[3]), "IN", o[4].decode(), o[5].decode())


def test_chromium_offer_codecs_and_candidates() -> None:
    sdp = parse_sdp(sdp_body("chromium_offer.sdp"))
    m = sdp.media[0]
    assert sdp.origin.sess_version == 2 and sdp.origin.username == "-"
    assert m.port == 41000
    assert m.connection == Connection("10.77.0.1")
    rtpmap = m.rtpmap
    assert rtpmap[111] == RtpMap(111, "opus", 48000, 2)
    assert rtpmap[63] == RtpMap(63, "red", 48000, 2)
    assert rtpmap[0] == RtpMap(0, "PCMU", 8000, 1)
    assert rtpmap[110] == RtpMap(110, "telephone-event", 48000)
    assert rtpmap[126] == RtpMap(126, "telephone-event", 8000)
    fmtp = m.fmtp
    assert fmtp[111].get("useinbandfec") == "1" and fmtp[111].get("MINPTIME") == "10"
    assert fmtp[63].params == (("111/111", ""),)
    assert [c.encoding for c in m.codecs] == ["opus", "red", "G722", "PCMU", "PCMA", "CN", "telephone-event",
                                              "telephone-event"]
    udp, tcp = m.candidates
    assert (udp.transport, udp.type, udp.port, udp.component, udp.priority) == ("udp", "host", 41000, 1, 2122260223)
    assert udp.generation == 0 and udp.extension("network-id") == "1"
    assert (tcp.transport, tcp.tcptype, tcp.port) == ("tcp", "active", 9)
    assert m.rtcp == RtcpAddress(9, "IN", "IP4", "0.0.0.0")
    assert m.ice_options == ("trickle",)
    assert m.rtcp_rsize
    assert [e.id for e in m.extmaps] == [1, 2, 3, 4]
    assert m.extmaps[0].uri == "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
    assert [f.type for f in m.rtcp_feedback] == ["transport-cc"]
    assert m.cname == raw_attr(sdp_body("chromium_offer.sdp"), "ssrc")[0].split("cname:")[1]
    assert m.msids[0].track_id is not None
    assert sdp.has_attribute("extmap-allow-mixed") and sdp.attribute("extmap-allow-mixed") is None
    # "a=msid-semantic: WMS ..." keeps its odd leading space
    semantic = sdp.attribute("msid-semantic")
    assert semantic is not None and semantic.startswith(" WMS ")
    fp = sdp.effective_fingerprints(m)[0]
    assert len(fp.digest) == 32


def test_baresip_session_level_ice_and_dtls() -> None:
    body = sdp_body("baresip_offer_dtls_ice.sdp")
    sdp = parse_sdp(body)
    m = sdp.media[0]
    assert m.ice_ufrag is None and m.fingerprint is None and m.setup is None  # all at session level
    assert sdp.effective_setup(m) is Setup.ACTPASS
    fp = sdp.effective_fingerprints(m)[0]
    assert fp.hash_function == "SHA-256" and fp.algorithm == "sha-256"
    assert fp.matches(bytes.fromhex(raw_attr(body, "fingerprint")[0].split()[1].replace(":", "")))
    assert not fp.matches(bytes(32))
    # session c= is 127.0.0.1 but the media c= (10.77.0.1) wins
    assert sdp.connection == Connection("127.0.0.1")
    assert sdp.effective_connection(m) == Connection("10.77.0.1")
    cand = m.candidates[0]
    assert cand.foundation == "0a4d0001" and cand.transport == "UDP" and cand.extensions == ()
    assert m.ptime == 20.0 and m.attribute("minptime") == "20" and m.attribute("label") == "1"
    assert m.ssrcs == [SsrcAttribute(2534396672, "cname", "sip:gina@lab.local")]


def test_sdes_crypto_lines() -> None:
    body = sdp_body("baresip_offer_sdes.sdp")
    sdp = parse_sdp(body)
    (crypto,) = sdp.media[0].crypto
    assert crypto.tag == 1 and crypto.suite == "AES_CM_128_HMAC_SHA1_80"
    inline = raw_attr(body, "crypto")[0].split("inline:")[1]
    assert crypto.key_salt == base64.b64decode(inline)
    assert len(crypto.key_salt) == 30  # 16-byte key + 14-byte salt (RFC 4568 §6.2.1)
    sipjs = parse_sdp(sdp_body("sipjs-wss-invite-chrome-sdp.sip")).media[0]
    assert [(c.tag, c.suite) for c in sipjs.crypto] == [(0, "AES_CM_128_HMAC_SHA1_32"), (1, "AES_CM_128_HMAC_SHA1_80")]
    assert sipjs.maxptime == 60.0


def test_crypto_lifetime_mki_and_session_params() -> None:
    # RFC 4568 §9.1 example with lifetime and MKI, plus a second key and a session parameter
    v = ("1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32;"
         "inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|2:32 UNENCRYPTED_SRTCP")
    c = Crypto.parse(v)
    assert str(c) == v
    k1, k2 = c.key_params
    assert k1.lifetime_packets == 1 << 20 and k1.mki_value_length == (1, 32)
    assert k2.mki_value_length == (2, 32)
    assert c.session_params == ("UNENCRYPTED_SRTCP",)
    assert KeyParams.parse("inline:YUJDZGVmZ2hpSktMbW9QUXJzVHVWd3l6MTIzNDU2|1048576").lifetime_packets == 1048576
    made = Crypto.inline(2, "AEAD_AES_128_GCM", bytes(range(28)))
    assert Crypto.parse(str(made)) == made and made.key_salt == bytes(range(28))
    for bad in ("x AES_CM_128_HMAC_SHA1_80 inline:abcd", "1 AES_CM_128_HMAC_SHA1_80", "1 S inline:ab|3^20",
                "1 S inline:ab|1:x", "1 S nocolon", "1 S inline:***", "1 S inline:ab|1|2|3"):
        with pytest.raises(SdpParseError):
            Crypto.parse(bad)
    with pytest.raises(SdpParseError):
        KeyParams("abc").key_salt_bytes()  # bad base64 padding


def test_candidate_forms() -> None:
    v = "1 1 UDP 1685921791 1.2.3.4 37264 typ srflx raddr 192.168.99.58 rport 37264"
    c = Candidate.parse(v)
    assert (c.related_address, c.related_port, c.type) == ("192.168.99.58", 37264, "srflx")
    assert str(c) == v
    assert Candidate.parse("candidate:" + v) == c  # trickle form (RFC 8840)
    v6 = "2665802302 1 udp 2122262783 2a02:a03f:3eb0:e000:b0aa:d60a:cff2:933c 38475 typ host generation 0 network-cost 10"
    c6 = Candidate.parse(v6)
    assert c6.ip.startswith("2a02:") and c6.network_cost == 10 and c6.ufrag is None and str(c6) == v6
    mdns = Candidate.parse("1 1 udp 2122260223 4f4d3b0e-0b51-4e55-9c5e-d8b4c3b3c2a1.local 54400 typ host")
    assert mdns.ip.endswith(".local")
    for bad in ("1 1 udp 1 1.2.3.4 9 host", "1 1 udp 1 1.2.3.4 9 typ", "1 x udp 1 1.2.3.4 9 typ host",
                "1 1 udp 1 1.2.3.4 70000 typ host", "1 1 udp 1 1.2.3.4 9 typ host generation",
                "1 1 udp 99999999999 1.2.3.4 9 typ host", "1 1 udp 1 1.2.3.4 9 typ host rport x",
                "f@@ 1 udp 1 1.2.3.4 9 typ host", "1 1 udp 1 1.2.3.4 9 typ host raddr a\u00e9 rport 1"):
        with pytest.raises(SdpParseError):
            Candidate.parse(bad)


def test_other_attribute_types() -> None:
    assert Fingerprint.parse("sha-1 4F:A6:94") == Fingerprint("sha-1", "4F:A6:94")
    fp = Fingerprint.from_digest("sha-256", b"\x01\xab")
    assert str(fp) == "sha-256 01:AB" and fp.digest == b"\x01\xab"
    for bad in ("sha-256", "sha-256 0G:00", "sha-256 001:00", "sha-256 00 11"):
        with pytest.raises(SdpParseError):
            Fingerprint.parse(bad)
    e = ExtMap.parse("1/sendonly urn:ietf:params:rtp-hdrext:ssrc-audio-level")
    assert e.direction is Direction.SENDONLY and str(e) == "1/sendonly urn:ietf:params:rtp-hdrext:ssrc-audio-level"
    assert ExtMap.parse("7 urn:x some attrs").attributes == "some attrs"
    assert Group.parse("BUNDLE a b") == Group("BUNDLE", ("a", "b"))
    assert SsrcGroup.parse("FID 1 2") == SsrcGroup("FID", (1, 2))
    assert Msid.parse("stream") == Msid("stream")
    assert RtcpAddress.parse("10028") == RtcpAddress(10028)
    assert RtcpFeedback.parse("* nack") == RtcpFeedback(None, "nack")
    assert RtpMap.parse("9 G722/8000/1") == RtpMap(9, "G722", 8000, 1)
    assert str(RtpMap(111, "opus", 48000, 2)) == "111 opus/48000/2"
    assert Setup.parse("ACTPASS") is Setup.ACTPASS
    bad_values = [
        (ExtMap.parse, "x urn:a"), (ExtMap.parse, "1/sideways urn:a"), (ExtMap.parse, "1"),
        (Group.parse, ""), (SsrcGroup.parse, "FID x"), (Msid.parse, "a b c"), (RtcpAddress.parse, "9 IN IP4"),
        (RtcpAddress.parse, "9 IN IP4 999.1.1.1"), (RtcpFeedback.parse, "x nack"), (RtpMap.parse, "31 LPC"),
        (RtpMap.parse, "128 x/8000"), (RtpMap.parse, "96 opus/48000/two"), (Setup.parse, "sometimes"),
        (SsrcAttribute.parse, "4294967296 cname:x"), (SsrcAttribute.parse, "1 :x"),
    ]
    for fn, value in bad_values:
        with pytest.raises(SdpParseError):
            fn(value)


def test_direction_algebra() -> None:
    assert Direction.SENDONLY.reverse() is Direction.RECVONLY
    assert Direction.INACTIVE.reverse() is Direction.INACTIVE
    assert Direction.SENDRECV.intersect(Direction.RECVONLY) is Direction.RECVONLY
    assert Direction.SENDONLY.intersect(Direction.RECVONLY) is Direction.INACTIVE


def test_session_level_direction_is_the_default() -> None:
    sdp = parse_sdp(sdp_body("siprec-multipart-invite.sip"))
    assert [sdp.effective_direction(m) for m in sdp.media] == [Direction.SENDONLY, Direction.SENDONLY]
    assert [m.attribute("label") for m in sdp.media] == ["1", "2"]
    text = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\na=inactive\r\nm=audio 9 RTP/AVP 0\r\n"
    s = parse_sdp(text)
    assert s.media[0].direction is None and s.effective_direction(s.media[0]) is Direction.INACTIVE


def test_ipv6_and_multiple_connections() -> None:
    sdp = parse_sdp(sdp_body("rfc5118-ipv6-in-sdp.sip"))
    assert sdp.origin.addrtype == "IP6" and sdp.connection == Connection("2001:db8::20", "IP6")
    assert sdp.timing == [Timing(3338481189, 3370017201)]
    assert sdp.session_name == "Live video feed for today's meeting"
    assert sdp.media[0].codecs[0].encoding == "G726-32"
    mult = parse_sdp(sdp_body("rfc5118-mult-ip-in-sdp.sip"))
    assert mult.session_name == "" and mult.origin.address == "host.example.com" and mult.connection is None
    assert mult.media[0].connection == Connection("192.0.2.1")
    assert mult.media[1].connection == Connection("2001:db8::1", "IP6")
    mapped = parse_sdp(sdp_body("rfc5118-ipv4-mapped-ipv6.sip"))
    assert mapped.connection is not None and mapped.connection.address == "::ffff:192.0.2.2"


def test_static_payload_types_without_rtpmap() -> None:
    m = parse_sdp(sdp_body("linphone_200_invite_recvonly.udp.sip")).media[0]
    assert [(c.payload_type, c.encoding, c.clock_rate) for c in m.codecs] == [
        (8, "PCMA", 8000), (0, "PCMU", 8000), (101, "telephone-event", 8000)]
    m = parse_sdp("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 9 RTP/AVP 0 96 97\r\na=rtpmap:97 x/1\r\n").media[0]
    assert [c.payload_type for c in m.codecs] == [0, 97]  # 96 has no rtpmap: meaningless, left out


def test_malformed_attribute_value_raises_on_access_only() -> None:
    """RFC 4475 sdp01 has ``a=rtpmap:31 LPC`` (no clock rate): the SDP parses, the view refuses."""
    sdp = parse_sdp(sdp_body("rfc4475-sdp01.sip"))
    assert [c.encoding for c in sdp.media[0].codecs] == ["PCMU", "QCELP"]
    with pytest.raises(SdpParseError, match="rtpmap"):
        _ = sdp.media[1].rtpmap
    with pytest.raises(RemoteProtocolError):
        _ = sdp.media[1].codecs


def test_multicast_connection_round_trip() -> None:
    text = ("v=0\r\no=- 1 1 IN IP4 224.2.17.12\r\ns=SDP Seminar\r\ni=A Seminar\r\nu=http://www.example.com/s.pdf\r\n"
            "e=j.doe@example.com (Jane Doe)\r\np=+1 617 555-6011\r\nc=IN IP4 224.2.17.12/127\r\nb=AS:64\r\n"
            "t=2873397496 2873404696\r\nr=7d 1h 0 25h\r\nz=2882844526 -1h 2898848070 0\r\nk=prompt\r\n"
            "a=recvonly\r\nm=audio 49170/2 RTP/AVP 0\r\ni=audio\r\nc=IN IP4 224.2.1.1/127/3\r\nc=IN IP6 ff15::101/3\r\n"
            "b=TIAS:64000\r\nk=clear:abc\r\nm=application 32416 udp wb\r\na=orient:portrait\r\n")
    sdp = parse_sdp(text)
    assert str(sdp) == text
    assert sdp.connection == Connection("224.2.17.12", ttl=127)
    m = sdp.media[0]
    assert m.port_count == 2 and m.info == "audio" and m.key == "clear:abc"
    assert m.connections == [Connection("224.2.1.1", ttl=127, count=3), Connection("ff15::101", "IP6", count=3)]
    assert sdp.bandwidths == [Bandwidth("AS", 64)] and m.bandwidths == [Bandwidth("TIAS", 64000)]
    assert sdp.timing[0].repeats == ("7d 1h 0 25h",) and sdp.zone == "2882844526 -1h 2898848070 0"
    assert sdp.emails == ["j.doe@example.com (Jane Doe)"] and sdp.phones == ["+1 617 555-6011"]
    assert sdp.media[1].formats == ["wb"] and sdp.media[1].payload_types == [] and not sdp.media[1].is_rtp


# -- tolerance ----------------------------------------------------------------------------------

BASE = "v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"


def test_lines_in_any_order_within_a_section_are_written_back_in_rfc_order() -> None:
    shuffled = ("v=0\na=tool:x\nt=0 0\ns=-\nc=IN IP4 192.0.2.1\no=- 1 2 IN IP4 192.0.2.1\n"
                "m=audio 4000 RTP/AVP 0\na=rtpmap:0 PCMU/8000\nb=AS:80\nc=IN IP4 192.0.2.9\n")
    sdp = parse_sdp(shuffled)
    assert str(sdp) == ("v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\na=tool:x\r\n"
                        "m=audio 4000 RTP/AVP 0\r\nc=IN IP4 192.0.2.9\r\nb=AS:80\r\na=rtpmap:0 PCMU/8000\r\n")


def test_missing_s_and_t_blank_lines_bom_and_repeated_attributes() -> None:
    sdp = parse_sdp("\ufeffv=0\n\no=- 1 2 IN IP4 192.0.2.1\n\nm=audio 4000 RTP/AVP 0\na=x\na=x\na=x:\n\n")
    assert sdp.session_name == "-" and sdp.timing == [Timing(0, 0)]
    assert sdp.media[0].attributes == [("x", None), ("x", None), ("x", "")]
    assert str(sdp).endswith("a=x\r\na=x\r\na=x:\r\n")


def test_non_utf8_bytes_survive_a_round_trip() -> None:
    raw = BASE.replace("s=-", "s=caf\xe9").encode("latin-1")
    sdp = parse_sdp(raw)
    assert sdp.to_bytes() == raw


def test_attribute_editing_keeps_order() -> None:
    sdp = parse_sdp(sdp_body("baresip_offer_plain.sdp"))
    m = sdp.media[0]
    names = [n for n, _ in m.attributes]
    m.set_direction(Direction.SENDONLY)
    assert [n for n, _ in m.attributes] == [("sendonly" if n == "sendrecv" else n) for n in names]
    m.set_attribute("ptime", "30")
    assert m.ptime == 30.0 and [n for n, _ in m.attributes].index("ptime") == names.index("ptime")
    assert m.remove_attribute("rtcp-mux") == 1 and not m.rtcp_mux
    m.add_attribute("rtcp-mux")
    assert m.attributes[-1] == ("rtcp-mux", None)
    m.set_attribute("new", "v")
    assert m.attribute("new") == "v" and m.attribute_values("rtpmap")[0] == "0 PCMU/8000"
    m.connection = Connection("192.0.2.55")
    assert m.connections == [Connection("192.0.2.55")]
    m.connection = None
    assert m.connections == []
    cp = sdp.copy()
    cp.media[0].add_attribute("only-in-copy")
    assert not sdp.media[0].has_attribute("only-in-copy")
    assert SessionDescription.parse(sdp.to_bytes()) == sdp


# -- errors -------------------------------------------------------------------------------------

ERRORS = [
    ("v=0\r\nthis is not sdp\r\n", 2, "type"),
    ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nx=unknown\r\n", 3, "unknown line type"),
    ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nV=0\r\n", 3, "unknown line type"),
    (BASE + "t=0 0\r\n", 8, "not allowed inside a media section"),
    (BASE + "o=- 1 1 IN IP4 1.2.3.4\r\n", 8, "not allowed inside a media section"),
    (BASE + "s=again\r\n", 8, "not allowed inside a media section"),
    (BASE + "i=a\r\ni=b\r\n", 9, "repeated i="),
    (BASE.replace("4000", "abc"), 6, "m= port"),
    (BASE.replace("4000", "70000"), 6, "m= port"),
    (BASE.replace("4000", "-1"), 6, "m= port"),
    (BASE.replace("4000", "4000/x"), 6, "port count"),
    (BASE.replace("m=audio 4000 RTP/AVP 0", "m=audio 4000"), 6, "m="),
    (BASE.replace("RTP/AVP", "RTP//AVP"), 6, "proto"),
    (BASE.replace("c=IN IP4 192.0.2.1", "c=IN IP4 300.1.1.1"), 4, "IPv4"),
    (BASE.replace("c=IN IP4 192.0.2.1", "c=IN IP4 1.2.3"), 4, "IPv4"),
    (BASE.replace("c=IN IP4 192.0.2.1", "c=IN IP6 zz::1"), 4, "IPv6"),
    (BASE.replace("c=IN IP4 192.0.2.1", "c=IN IP4 2001:db8::1"), 4, "c= address"),
    (BASE.replace("c=IN IP4 192.0.2.1", "c=IN IP4"), 4, "c="),
    (BASE.replace("c=IN IP4 192.0.2.1", "c=IN IP4 bad_host!"), 4, "c= address"),
    (BASE.replace("c=IN IP4 192.0.2.1", "c=IN IP4 224.2.1.1/300"), 4, "TTL"),
    (BASE.replace("c=IN IP4 192.0.2.1", "c=IN IP4 224.2.1.1/1/2/3"), 4, "suffixes"),
    (BASE.replace("c=IN IP4 192.0.2.1", "c=IN IP6 ff15::1/1/2"), 4, "suffixes"),
    (BASE + "c=IN IP4 192.0.2.1 extra\r\n", 8, "c="),
    (BASE.replace("o=- 1 2", "o=- 1 two"), 2, "sess-version"),
    (BASE.replace("o=- 1 2", "o=- one 2"), 2, "sess-id"),
    (BASE.replace("o=- 1 2", "o=- 1 \u0663"), 2, "sess-version"),  # Arabic-Indic digit three
    (BASE.replace("o=- 1 2", "o=- 1 123456789012345678901234"), 2, "sess-version"),
    (BASE.replace("o=- 1 2 IN IP4 192.0.2.1", "o=- 1 2 IN IP4"), 2, "6 fields"),
    (BASE.replace("t=0 0", "t=now 0"), 5, "t= start"),
    (BASE.replace("t=0 0", "t=0"), 5, "t="),
    (BASE + "b=AS:lots\r\n", 8, "bandwidth"),
    (BASE + "b=AS\r\n", 8, "b="),
    ("v=1\r\no=- 1 1 IN IP4 1.2.3.4\r\n", 1, "version"),
    ("o=- 1 1 IN IP4 1.2.3.4\r\nv=0\r\n", 1, "start with v="),
    ("v=0\r\ns=-\r\nt=0 0\r\n", None, "missing o="),
    ("v=0\r\nv=0\r\no=- 1 1 IN IP4 1.2.3.4\r\n", 2, "repeated v="),
    (BASE.replace("s=-", "s=-\r\no=- 1 1 IN IP4 1.2.3.4"), 4, "repeated o="),
    (BASE.replace("s=-", "s=-\r\ns=again"), 4, "repeated s="),
    (BASE.replace("t=0 0", "t=0 0\r\nc=IN IP4 192.0.2.2"), 6, "repeated c="),
    (BASE + "a=:value\r\n", 8, "attribute name"),
    (BASE + "a=\r\n", 8, "attribute name"),
    (BASE + "a=na me:v\r\n", 8, "attribute name"),
    (BASE + "a=x\x00y\r\n", 8, "NUL"),
    (BASE + "a=x\ry\r\n", 8, "CR"),
    ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nr=7d 1h 0\r\n", 3, "r= before"),
    (BASE.replace("t=0 0", "t=0 0\r\nr=7d"), 6, "r="),
    (BASE.replace("t=0 0", "t=0 0\r\nz=1"), 6, "z="),
    ("", None, "empty"),
    ("\r\n\r\n", None, "empty"),
]


@pytest.mark.parametrize(("text", "line", "fragment"), ERRORS)
def test_malformed_sdp_raises_sdp_parse_error_with_line(text: str, line: int | None, fragment: str) -> None:
    with pytest.raises(SdpParseError) as info:
        parse_sdp(text)
    assert info.value.line == line
    assert fragment.lower() in str(info.value).lower()
    with pytest.raises(SdpParseError):
        parse_sdp(text.encode("utf-8", "surrogatepass"))


def test_limits_are_enforced() -> None:
    small = SdpLimits(max_size=200, max_lines=10, max_media=2)
    with pytest.raises(SdpParseError, match="larger"):
        parse_sdp(BASE + "a=x:" + "y" * 200 + "\r\n", limits=small)
    with pytest.raises(SdpParseError, match="larger"):
        parse_sdp((BASE + "a=x:" + "y" * 200 + "\r\n").encode(), limits=small)
    with pytest.raises(SdpParseError, match="lines"):
        parse_sdp(BASE + "a=x\r\n" * 10, limits=SdpLimits(max_lines=10))
    three = BASE + "m=audio 1 RTP/AVP 0\r\nm=audio 2 RTP/AVP 0\r\n"
    with pytest.raises(SdpParseError, match="m= sections"):
        parse_sdp(three, limits=small.__class__(max_media=2))
    with pytest.raises(SdpParseError):
        parse_sdp(b"v=0\r\n" + b"a=x\r\n" * 300_000)  # default cap: 256 KiB
    with pytest.raises(SdpParseError, match="str or bytes"):
        parse_sdp(12345)  # type: ignore[arg-type]


# -- property tests -------------------------------------------------------------------------------

TOKEN_ALPHABET = "!#$%&'*+-.^_`{|}~" + "0123456789" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ" + "abcdefghijklmnopqrstuvwxyz"
tokens = st.text(TOKEN_ALPHABET, min_size=1, max_size=10)
texts = st.text(st.characters(exclude_characters="\r\n\x00", exclude_categories=["Cs"]), max_size=30).filter(
    lambda s: not s.endswith((" ", "\t")))
small_uint = st.integers(0, 10**12)


@st.composite
def connections(draw: st.DrawFn) -> Connection:
    kind = draw(st.sampled_from(["IP4", "IP6", "FQDN"]))
    if kind == "IP4":
        addr = str(draw(st.ip_addresses(v=4)))
        ttl = draw(st.none() | st.integers(0, 255))
        count = draw(st.none() | st.integers(1, 10)) if ttl is not None else None
        return Connection(addr, "IP4", ttl=ttl, count=count)
    if kind == "IP6":
        return Connection(str(draw(st.ip_addresses(v=6))), "IP6", count=draw(st.none() | st.integers(1, 10)))
    host = draw(st.from_regex(r"[a-z][a-z0-9-]{0,8}[a-z0-9](\.[a-z][a-z0-9]{0,5}){0,2}", fullmatch=True))
    return Connection(host, draw(st.sampled_from(["IP4", "IP6"])))


attributes = st.lists(st.tuples(tokens, st.none() | texts), max_size=6)
typed_time = st.from_regex(r"[0-9]{1,6}[dhms]?", fullmatch=True)


@st.composite
def media_descriptions(draw: st.DrawFn) -> MediaDescription:
    return MediaDescription(
        kind=draw(tokens),
        port=draw(st.integers(0, 65535)),
        proto="/".join(draw(st.lists(tokens, min_size=1, max_size=4))),
        formats=draw(st.lists(tokens, max_size=5)),
        port_count=draw(st.none() | st.integers(1, 16)),
        info=draw(st.none() | texts),
        connections=draw(st.lists(connections(), max_size=2)),
        bandwidths=draw(st.lists(st.builds(Bandwidth, tokens, small_uint), max_size=2)),
        key=draw(st.none() | texts),
        attributes=draw(attributes),
    )


@st.composite
def session_descriptions(draw: st.DrawFn) -> SessionDescription:
    conn = draw(connections())
    origin = Origin(draw(tokens), draw(st.from_regex(r"[0-9]{1,20}", fullmatch=True)), draw(st.integers(0, 2**63)),
                    "IN", conn.addrtype, conn.address)
    timing = draw(st.lists(st.builds(Timing, small_uint, small_uint, st.lists(
        st.lists(typed_time, min_size=3, max_size=4).map(" ".join), max_size=2).map(tuple)), min_size=1, max_size=2))
    zone = draw(st.none() | st.lists(st.tuples(typed_time, typed_time), min_size=1, max_size=2).map(
        lambda pairs: " ".join(f"{a} {b}" for a, b in pairs)))
    return SessionDescription(
        origin=origin,
        session_name=draw(texts),
        info=draw(st.none() | texts),
        uri=draw(st.none() | texts),
        emails=draw(st.lists(texts, max_size=2)),
        phones=draw(st.lists(texts, max_size=2)),
        connection=draw(st.none() | connections()),
        bandwidths=draw(st.lists(st.builds(Bandwidth, tokens, small_uint), max_size=2)),
        timing=timing,
        zone=zone,
        key=draw(st.none() | texts),
        attributes=draw(attributes),
        media=draw(st.lists(media_descriptions(), max_size=3)),
    )


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(session_descriptions())
def test_property_model_serialize_parse_is_identity(sdp: SessionDescription) -> None:
    text = str(sdp)
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    assert parse_sdp(text) == sdp
    assert parse_sdp(sdp.to_bytes()) == sdp


def _exercise(sdp: SessionDescription) -> None:
    """Every typed view either works or raises SdpParseError."""
    views = ("direction", "ice_ufrag", "ice_options", "candidates", "fingerprints", "setup", "groups", "extmaps")
    for obj in [sdp, *sdp.media]:
        for name in views:
            try:
                getattr(obj, name)
            except SdpParseError:
                pass
    for m in sdp.media:
        for name in ("rtpmap", "fmtp", "codecs", "rtcp_feedback", "ptime", "maxptime", "mid", "rtcp", "crypto",
                     "ssrcs", "ssrc_groups", "msids", "cname", "payload_types"):
            try:
                getattr(m, name)
            except SdpParseError:
                pass
        for fn in (sdp.effective_ice, sdp.effective_fingerprints, sdp.effective_setup, sdp.effective_direction):
            try:
                fn(m)
            except SdpParseError:
                pass


@settings(max_examples=500)
@given(st.binary(max_size=600))
def test_property_random_bytes_only_raise_sdp_parse_error(data: bytes) -> None:
    try:
        sdp = parse_sdp(data)
    except SdpParseError:
        return
    _exercise(sdp)
    assert parse_sdp(sdp.to_bytes()) == sdp


line_kinds = st.sampled_from(list("vosiuepcbtrzkamx") + ["a=candidate", "a=rtpmap", "a=crypto", "a=fingerprint"])


@settings(max_examples=500)
@given(st.lists(st.tuples(line_kinds, st.text(max_size=40)), max_size=20))
def test_property_sdp_shaped_text_only_raises_sdp_parse_error(lines: list[tuple[str, str]]) -> None:
    text = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\n" + "".join(
        (f"{k}:{v}" if k.startswith("a=") else f"{k}={v}") + "\r\n" for k, v in lines)
    try:
        sdp = parse_sdp(text)
    except SdpParseError:
        return
    _exercise(sdp)
    assert parse_sdp(str(sdp)) == sdp
