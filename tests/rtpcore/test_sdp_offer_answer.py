"""RFC 3264 offer/answer: our offers and answers, real browser/softphone offers answered, and
real offer/answer pairs (baresip <-> Chromium, sipp <-> baresip, JsSIP/Chrome via rtpengine)
negotiated. Vectors: tests/vectors/sdp (PROVENANCE.md).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtpcore.errors import LocalProtocolError, OfferAnswerError, RemoteProtocolError, SdpParseError
from rtpcore.sdp import (
    G722,
    OPUS,
    PCMA,
    PCMU,
    Candidate,
    CodecSpec,
    Connection,
    Crypto,
    Direction,
    Fingerprint,
    LocalDtls,
    LocalIce,
    LocalMediaCapabilities,
    SessionDescription,
    Setup,
    create_answer,
    create_offer,
    negotiate,
    parse_sdp,
    proto_family,
)
from rtpcore.sdp.offer_answer import answer_setup

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
            return part_body[:-2] if part_body.endswith(b"\r\n") else part_body
    raise AssertionError(f"no SDP part in {name}")


def vector(name: str) -> SessionDescription:
    return parse_sdp(sdp_body(name))


def raw_attr(name: str, attr: str) -> list[str]:
    return [v.decode() for v in re.findall(rb"(?m)^a=" + re.escape(attr.encode()) + rb":([^\r\n]*)\r?$",
                                           sdp_body(name))]


def zero_rng(n: int) -> bytes:
    return bytes(n)


FP = Fingerprint.from_digest("sha-256", bytes(range(32)))
HOST = Candidate("1", 1, "udp", 2130706431, "192.0.2.10", 40000, "host", extensions=(("generation", "0"),))
ICE = LocalIce("abcd", "0123456789abcdefghijkl", (HOST,))
KEY80 = Crypto.inline(1, "AES_CM_128_HMAC_SHA1_80", bytes(range(30)))
KEY32 = Crypto.inline(2, "AES_CM_128_HMAC_SHA1_32", bytes(range(30, 60)))


def plain_caps(**kw: object) -> LocalMediaCapabilities:
    args: dict[str, object] = {"codecs": [PCMU, PCMA], "address": "192.0.2.10", "port": 40000}
    args.update(kw)
    return LocalMediaCapabilities(**args)  # type: ignore[arg-type]


def webrtc_caps(**kw: object) -> LocalMediaCapabilities:
    args: dict[str, object] = {"codecs": [OPUS, PCMU, PCMA], "address": "192.0.2.10", "port": 40000,
                               "proto": "UDP/TLS/RTP/SAVPF", "ice": ICE, "dtls": LocalDtls((FP,)), "ssrc": 1234,
                               "cname": "pyvoice"}
    args.update(kw)
    return LocalMediaCapabilities(**args)  # type: ignore[arg-type]


def sdes_caps(**kw: object) -> LocalMediaCapabilities:
    args: dict[str, object] = {"codecs": [OPUS, PCMU], "address": "192.0.2.10", "port": 40000, "proto": "RTP/SAVP",
                               "crypto": [KEY80]}
    args.update(kw)
    return LocalMediaCapabilities(**args)  # type: ignore[arg-type]


def assert_valid_answer(offer: SessionDescription, answer: SessionDescription) -> None:
    """RFC 3264 §6 shape checks plus a round trip through our own parser."""
    assert parse_sdp(answer.to_bytes()) == answer
    assert len(answer.media) == len(offer.media)
    for om, am in zip(offer.media, answer.media, strict=True):
        assert am.kind == om.kind and am.proto == om.proto
        assert am.formats, "every m-line keeps at least one format"
        assert am.mid == om.mid
        if am.port != 0:
            offered = {p.payload_type for p in om.codecs}
            assert {p.payload_type for p in am.codecs} <= offered  # answerer reuses the offerer's PTs
    negotiate(offer, answer)


# -- offers -------------------------------------------------------------------------------------


def test_plain_offer() -> None:
    offer = create_offer(plain_caps(username="alice"), rng=zero_rng)
    assert str(offer) == (
        "v=0\r\no=alice 0 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
        "m=audio 40000 RTP/AVP 0 8 101\r\na=sendrecv\r\na=rtcp-mux\r\na=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\n")
    assert parse_sdp(offer.to_bytes()) == offer


def test_offer_payload_types_static_dynamic_and_pinned() -> None:
    caps = plain_caps(codecs=[OPUS, CodecSpec("speex", 16000), PCMU, G722, CodecSpec("PCMA", 8000, 1, None, 8)])
    m = create_offer(caps).media[0]
    # preference order is kept; static PTs from RFC 3551, dynamic from 96, telephone-event per clock rate
    assert m.formats == ["96", "97", "0", "9", "8", "98", "99", "101"]
    assert [(c.encoding, c.clock_rate) for c in m.codecs] == [
        ("opus", 48000), ("speex", 16000), ("PCMU", 8000), ("G722", 8000), ("PCMA", 8000),
        ("telephone-event", 48000), ("telephone-event", 16000), ("telephone-event", 8000)]
    assert m.fmtp[96].raw == "minptime=10;useinbandfec=1"
    pinned = create_offer(plain_caps(codecs=[CodecSpec("opus", 48000, 2, None, 111)], dtmf=False)).media[0]
    assert pinned.formats == ["111"] and 111 not in pinned.fmtp


def test_webrtc_offer_has_ice_dtls_and_bundle() -> None:
    caps = webrtc_caps(mid="0", bundle=True, ice=LocalIce("abcd", "0123456789abcdefghijkl", (HOST,),
                                                          end_of_candidates=True, lite=True))
    offer = create_offer(caps)
    m = offer.media[0]
    assert offer.bundle_mids == ("0",) and offer.ice_lite
    assert m.setup is Setup.ACTPASS and m.fingerprints == [FP]
    assert offer.effective_ice(m) is not None and m.candidates == [HOST] and m.end_of_candidates
    assert m.mid == "0" and m.rtcp_mux and m.cname == "pyvoice"
    assert parse_sdp(str(offer)) == offer


def test_sdes_offer_lists_our_crypto() -> None:
    offer = create_offer(sdes_caps(crypto=[KEY80, KEY32]))
    assert offer.media[0].proto == "RTP/SAVP"
    assert offer.media[0].crypto == [KEY80, KEY32]


def test_offer_rng_is_injected() -> None:
    a = create_offer(plain_caps(), rng=lambda n: b"\xff" * n)
    assert a.origin.sess_id == str((2**64 - 1) >> 2) and a.origin.sess_version == 1
    assert create_offer(plain_caps()).origin.sess_id != create_offer(plain_caps()).origin.sess_id


def test_ipv6_local_address() -> None:
    offer = create_offer(plain_caps(address="2001:db8::10"))
    assert offer.connection == Connection("2001:db8::10", "IP6") and offer.origin.addrtype == "IP6"


@pytest.mark.parametrize("kw", [
    {"codecs": []},
    {"codecs": [CodecSpec("bad name", 8000)]},
    {"codecs": [CodecSpec("PCMU", 0)]},
    {"codecs": [CodecSpec("x", 8000, 1, None, 200)]},
    {"port": 0},
    {"port": 70000},
    {"address": "300.1.1.1"},
    {"proto": "RTP AVP"},
    {"proto": "UDP/TLS/RTP/SAVPF"},  # needs dtls
    {"proto": "RTP/SAVP"},  # needs crypto
    {"bundle": True},  # needs mid
])
def test_bad_local_capabilities(kw: dict[str, object]) -> None:
    with pytest.raises(LocalProtocolError):
        plain_caps(**kw)


def test_codecs_as_plain_tuples() -> None:
    caps = plain_caps(codecs=[("PCMU", 8000, 1, None), ("opus", 48000, 2, "useinbandfec=1")])
    assert caps.codec_specs == (PCMU, CodecSpec("opus", 48000, 2, "useinbandfec=1"))
    assert "LocalIce" in repr(ICE) and ICE.pwd not in repr(ICE)  # ice-pwd is never printed


# -- answering real offers ----------------------------------------------------------------------


def test_answer_chromium_offer_with_opus_and_g711() -> None:
    offer = vector("chromium_offer.sdp")
    answer = create_answer(offer, webrtc_caps())
    assert_valid_answer(offer, answer)
    m = answer.media[0]
    assert m.proto == "UDP/TLS/RTP/SAVPF" and m.port == 40000
    assert m.formats == ["111", "0", "8", "110", "126"]  # opus/PCMU/PCMA + telephone-event at 48k and 8k
    assert m.setup is Setup.ACTIVE and m.fingerprints == [FP]
    assert m.ice_ufrag == "abcd" and m.candidates == [HOST]
    assert m.mid == "0" and answer.bundle_mids == ("0",)
    assert m.rtcp_mux and not m.rtcp_rsize
    assert answer.effective_direction(m) is Direction.SENDRECV
    result = negotiate(offer, answer)
    audio = result.audio
    assert audio is not None and audio.codec is not None
    assert (audio.codec.encoding, audio.codec.offerer_pt, audio.codec.answerer_pt) == ("opus", 111, 111)
    assert audio.telephone_event is not None and audio.telephone_event.offerer_pt == 110
    assert audio.dtls_client == "answerer" and audio.dtls_is_client(is_offerer=False)
    local, remote = audio.local(is_offerer=False)
    assert remote.ice is not None and remote.ice.pwd == raw_attr("chromium_offer.sdp", "ice-pwd")[0]
    assert len(remote.candidates) == 2 and remote.fingerprints[0].algorithm == "sha-256"
    assert local.ice is not None and local.ice.ufrag == "abcd"
    assert audio.send_payload_type(is_offerer=False) == 111
    assert audio.sends(is_offerer=False) and audio.receives(is_offerer=False) and not audio.hold


def test_answer_chromium_offer_g711_only() -> None:
    offer = vector("jssip-wss-invite-chrome-offer.sip")
    answer = create_answer(offer, webrtc_caps(codecs=[PCMA, PCMU]))
    assert_valid_answer(offer, answer)
    assert answer.media[0].formats == ["8", "0", "126"]  # local preference; only te/8000 fits
    audio = negotiate(offer, answer).audio
    assert audio is not None and audio.codec is not None and audio.codec.encoding == "PCMA"
    assert audio.telephone_event is not None and audio.telephone_event.clock_rate == 8000


def test_answer_safari_audio_video_datachannel_rejects_all_but_audio() -> None:
    offer = vector("safari-audio-video-data-offer.sdp")
    answer = create_answer(offer, webrtc_caps())
    assert_valid_answer(offer, answer)
    assert [(m.kind, m.port, m.proto) for m in answer.media] == [
        ("audio", 40000, "UDP/TLS/RTP/SAVPF"), ("video", 0, "UDP/TLS/RTP/SAVPF"), ("application", 0, "DTLS/SCTP")]
    assert [m.mid for m in answer.media] == ["audio", "video", "data"]
    assert answer.media[2].formats == ["5000"]
    assert answer.bundle_mids == ("audio",)  # rejected m-lines leave the BUNDLE group (RFC 8843 §7.3.3)
    assert answer.media[0].setup is Setup.ACTIVE and answer.media[0].fingerprint == FP
    result = negotiate(offer, answer)
    assert [m.accepted for m in result.media] == [True, False, False]
    assert result.bundle == ("audio",)


def test_answer_chrome_and_firefox_offers_with_audio_video_and_datachannel() -> None:
    """Browser offers with audio + video + data channel under BUNDLE, assembled from real m-sections."""
    chrome = vector("chrome-audio-offer.sdp")
    chrome.media += [vector("chrome-video-offer.sdp").media[0], vector("safari-audio-video-data-offer.sdp").media[2]]
    chrome.set_attribute("group", "BUNDLE audio video data")
    firefox = vector("firefox58-audio-offer.sdp")
    ff_video = vector("firefox61-video-offer.sdp").media[0]
    ff_video.set_attribute("mid", "sdparta_1")
    ff_data = parse_sdp("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
                        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=sendrecv\r\n"
                        "a=mid:sdparta_2\r\na=setup:actpass\r\na=sctp-port:5000\r\n"
                        "a=max-message-size:1073741823\r\n").media[0]
    firefox.media += [ff_video, ff_data]
    firefox.set_attribute("group", "BUNDLE sdparta_0 sdparta_1 sdparta_2")
    for offer, audio_pt, mid in ((chrome, "111", "audio"), (firefox, "109", "sdparta_0")):
        offer = parse_sdp(offer.to_bytes())
        answer = create_answer(offer, webrtc_caps())
        assert_valid_answer(offer, answer)
        assert [m.kind for m in answer.media] == ["audio", "video", "application"]
        assert [m.port for m in answer.media] == [40000, 0, 0]
        assert answer.media[0].formats[0] == audio_pt
        assert answer.media[2].formats == offer.media[2].formats
        assert answer.bundle_mids == (mid,)
        assert answer.media[0].setup is Setup.ACTIVE and answer.media[0].fingerprint == FP
        result = negotiate(offer, answer)
        assert [m.accepted for m in result.media] == [True, False, False]
        assert result.audio is not None and result.audio.dtls_client == "answerer"


@pytest.mark.parametrize("name", ["chrome-video-offer.sdp", "firefox61-video-offer.sdp"])
def test_video_only_offer_is_not_acceptable(name: str) -> None:
    with pytest.raises(OfferAnswerError, match="no audio"):
        create_answer(vector(name), webrtc_caps())


def test_answer_firefox_session_level_fingerprint() -> None:
    offer = vector("firefox58-audio-offer.sdp")
    answer = create_answer(offer, webrtc_caps())
    assert_valid_answer(offer, answer)
    assert answer.media[0].formats == ["109", "0", "8", "101"]
    audio = negotiate(offer, answer).audio
    assert audio is not None and audio.offerer is not None
    assert audio.offerer.fingerprints[0].value == raw_attr("firefox58-audio-offer.sdp", "fingerprint")[0].split()[1]
    assert audio.offerer.rtcp_port == 45274  # rtcp-mux wins over a=rtcp:38612 (RFC 5761)


def test_answer_baresip_offers() -> None:
    plain = vector("baresip_offer_plain.sdp")
    answer = create_answer(plain, plain_caps(rtcp_rsize=True))
    assert_valid_answer(plain, answer)
    assert answer.media[0].formats == ["0", "8", "101"] and answer.media[0].rtcp_rsize
    sdes = vector("baresip_offer_sdes.sdp")
    answer = create_answer(sdes, sdes_caps())
    assert_valid_answer(sdes, answer)
    assert answer.media[0].crypto == [Crypto(1, KEY80.suite, KEY80.key_params)]
    assert answer.media[0].formats == ["96", "0", "101"]
    dtls = vector("baresip_offer_dtls_ice.sdp")
    answer = create_answer(dtls, webrtc_caps())
    assert_valid_answer(dtls, answer)
    audio = negotiate(dtls, answer).audio
    assert audio is not None and audio.offerer is not None and audio.offerer.ice is not None
    assert audio.offerer.ice.ufrag == raw_attr("baresip_offer_dtls_ice.sdp", "ice-ufrag")[0]  # session level
    assert audio.dtls_client == "answerer" and answer.media[0].setup is Setup.ACTIVE


def test_answer_sipjs_legacy_savpf_with_both_dtls_and_sdes() -> None:
    offer = vector("sipjs-wss-invite-chrome-sdp.sip")
    with_dtls = create_answer(offer, webrtc_caps())
    assert_valid_answer(offer, with_dtls)
    assert with_dtls.media[0].proto == "RTP/SAVPF" and with_dtls.media[0].setup is Setup.ACTIVE
    assert with_dtls.media[0].crypto == []
    assert negotiate(offer, with_dtls).media[0].dtls_client == "answerer"
    with_sdes = create_answer(offer, sdes_caps(crypto=[KEY80]))
    assert_valid_answer(offer, with_sdes)
    (c,) = with_sdes.media[0].crypto
    assert (c.tag, c.suite) == (1, "AES_CM_128_HMAC_SHA1_80")  # tag 0 (_32) is not supported locally
    audio = negotiate(offer, with_sdes).audio
    assert audio is not None and audio.offerer is not None and audio.answerer is not None
    assert audio.offerer.crypto is not None and audio.answerer.crypto is not None
    assert audio.offerer.crypto.key_salt != audio.answerer.crypto.key_salt
    assert audio.dtls_client is None


def test_answer_sipp_offer_plain() -> None:
    offer = vector("sipp_offer_pcma.sdp")
    answer = create_answer(offer, plain_caps())
    assert_valid_answer(offer, answer)
    assert answer.media[0].formats == ["0", "8", "101"] and not answer.media[0].rtcp_mux  # mux not offered


def test_answer_siprec_two_sendonly_streams() -> None:
    offer = vector("siprec-multipart-invite.sip")
    answer = create_answer(offer, plain_caps())
    assert_valid_answer(offer, answer)
    assert [m.port for m in answer.media] == [40000, 0]  # one audio stream only
    assert answer.media[0].direction is Direction.RECVONLY
    result = negotiate(offer, answer)
    audio = result.audio
    assert audio is not None and audio.offerer_sends and not audio.answerer_sends and audio.hold


def test_answer_rfc_torture_sdp() -> None:
    sdp01 = vector("rfc4475-sdp01.sip")  # video m-line has a malformed rtpmap, and is rejected untouched
    answer = create_answer(sdp01, plain_caps())
    assert [m.port for m in answer.media] == [40000, 0] and answer.media[0].formats == ["0"]
    v6 = vector("rfc5118-ipv6-in-sdp.sip")
    answer = create_answer(v6, plain_caps(codecs=[("G726-32", 8000, 1, None)], address="2001:db8::10"))
    assert_valid_answer(v6, answer)
    assert answer.media[0].attribute_values("rtpmap") == ["2 G726-32/8000"]
    assert answer.connection == Connection("2001:db8::10", "IP6")


# -- refusing offers ----------------------------------------------------------------------------


def test_no_common_codec_is_488() -> None:
    with pytest.raises(OfferAnswerError, match="no common codec") as info:
        create_answer(vector("sipp_offer_pcma.sdp"), plain_caps(codecs=[G722]))
    assert "488" in str(info.value) and "PCMA/8000" in str(info.value)
    assert isinstance(info.value, RemoteProtocolError)


def test_dtls_offer_to_plain_only_endpoint() -> None:
    with pytest.raises(OfferAnswerError, match="UDP/TLS/RTP/SAVPF"):
        create_answer(vector("chromium_offer.sdp"), plain_caps())


def test_plain_offer_to_secure_only_endpoint() -> None:
    with pytest.raises(OfferAnswerError, match="RTP/AVP"):
        create_answer(vector("baresip_offer_plain.sdp"), webrtc_caps())
    with pytest.raises(OfferAnswerError):
        create_answer(vector("baresip_offer_plain.sdp"), sdes_caps())


def test_unknown_proto_rejected() -> None:
    offer = vector("sipp_offer_pcma.sdp")
    offer.media[0].proto = "UDP/BFCP"
    with pytest.raises(OfferAnswerError, match="unsupported transport"):
        create_answer(offer, plain_caps())


def test_dtls_offer_without_fingerprint() -> None:
    offer = vector("chromium_offer.sdp")
    offer.media[0].remove_attribute("fingerprint")
    with pytest.raises(OfferAnswerError, match="fingerprint"):
        create_answer(offer, webrtc_caps())


@pytest.mark.parametrize("crypto_value", [
    "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA",  # key too short
    "1 F8_128_HMAC_SHA1_80 inline:" + Crypto.inline(1, "x", bytes(30)).key_params[0].key_salt,  # unknown suite
    "1 AES_CM_128_HMAC_SHA1_80 inline:" + KEY80.key_params[0].key_salt + " UNENCRYPTED_SRTP",  # session param
    "1 AES_CM_128_HMAC_SHA1_80 inline:@@@@",  # malformed
    "x AES_CM_128_HMAC_SHA1_80 inline:AAAA",  # malformed tag
])
def test_unusable_crypto_lines_are_skipped(crypto_value: str) -> None:
    offer = vector("baresip_offer_sdes.sdp")
    offer.media[0].set_attribute("crypto", crypto_value)
    with pytest.raises(OfferAnswerError, match="crypto"):
        create_answer(offer, sdes_caps())
    offer.media[0].add_attribute("crypto", str(Crypto(7, KEY80.suite, KEY80.key_params)))
    answer = create_answer(offer, sdes_caps())
    assert [c.tag for c in answer.media[0].crypto] == [7]


# -- negotiating real offer/answer pairs ---------------------------------------------------------


def test_negotiate_baresip_offer_chromium_answer() -> None:
    offer, answer = vector("baresip_offer_dtls_ice.sdp"), vector("chromium_answer.sdp")
    audio = negotiate(offer, answer).audio
    assert audio is not None and audio.offerer is not None and audio.answerer is not None
    assert [(c.encoding, c.offerer_pt, c.answerer_pt) for c in audio.codecs] == [("opus", 96, 96), ("PCMU", 0, 0)]
    assert audio.telephone_event is not None and audio.telephone_event.answerer_pt == 101
    assert audio.dtls_client == "answerer"  # Chromium setup:active
    assert audio.rtcp_mux and audio.rtcp_rsize
    assert audio.offerer.ice is not None and audio.answerer.ice is not None
    assert audio.answerer.ice.options == ("trickle",)
    assert audio.answerer.ice.pwd == raw_attr("chromium_answer.sdp", "ice-pwd")[0]
    assert (audio.answerer.address, audio.answerer.port) == ("10.77.0.1", 46629)
    assert audio.answerer.mid == "0" and audio.offerer.mid is None
    assert audio.offerer.cname == "sip:gina@lab.local"


def test_negotiate_chromium_offer_baresip_answer() -> None:
    offer, answer = vector("chromium_offer.sdp"), vector("baresip_answer_dtls_ice.sdp")
    result = negotiate(offer, answer)
    audio = result.audio
    assert audio is not None and audio.codec is not None
    assert audio.codec.encoding == "opus" and audio.codec.answerer_fmtp == "stereo=1;sprop-stereo=1;maxaveragebitrate=28000"
    assert audio.telephone_event is not None and audio.telephone_event.clock_rate == 8000  # no te/48000 answered
    assert audio.dtls_client == "answerer"
    assert result.bundle == ()  # baresip answered without BUNDLE


def test_negotiate_baresip_plain_and_sdes_pairs() -> None:
    audio = negotiate(vector("baresip_offer_plain.sdp"), vector("baresip_answer_plain.sdp")).audio
    assert audio is not None and audio.offerer is not None and audio.codec is not None
    assert audio.codec.encoding == "PCMU" and audio.rtcp_mux and not audio.rtcp_rsize
    assert (audio.offerer.port, audio.offerer.rtcp_port) == (20320, 20320)
    assert audio.dtls_client is None and audio.offerer_sends and audio.answerer_sends
    sdes = negotiate(vector("baresip_offer_sdes.sdp"), vector("baresip_answer_sdes.sdp")).audio
    assert sdes is not None and sdes.offerer is not None and sdes.answerer is not None
    assert sdes.offerer.crypto is not None and sdes.answerer.crypto is not None
    assert sdes.offerer.crypto.tag == sdes.answerer.crypto.tag == 1
    assert sdes.answerer.crypto.key_salt != sdes.offerer.crypto.key_salt


def test_negotiate_sipp_offer_baresip_answer_without_rtcp_mux() -> None:
    offer, answer = vector("sipp_offer_pcma.sdp"), vector("kamailio_200_invite_rr.udp.sip")
    audio = negotiate(offer, answer).audio
    assert audio is not None and audio.offerer is not None and audio.answerer is not None
    assert audio.codec is not None and audio.codec.encoding == "PCMA"
    assert not audio.rtcp_mux
    # RFC 3550 §11: RTCP on port+1 (the capture shows baresip RTCP 20049 -> 6001)
    assert (audio.offerer.port, audio.offerer.rtcp_port) == (6000, 6001)
    assert (audio.answerer.port, audio.answerer.rtcp_port) == (20048, 20049)
    assert audio.send_payload_type(is_offerer=True) == 8


def test_negotiate_sendonly_offer_linphone_recvonly_answer() -> None:
    offer = vector("sipp_offer_pcma.sdp")
    offer.media[0].set_direction(Direction.SENDONLY)  # what sipp's uac_sendonly.xml sent in run H
    answer = vector("linphone_200_invite_recvonly.udp.sip")
    audio = negotiate(offer, answer).audio
    assert audio is not None and audio.codec is not None
    assert audio.codec.encoding == "PCMA"  # static PT 8 without rtpmap in linphone's answer
    assert audio.offerer_sends and not audio.answerer_sends and audio.hold


def test_negotiate_jssip_chrome_calls_direct_and_via_rtpengine() -> None:
    direct = negotiate(vector("jssip-wss-invite-chrome-offer.sip"), vector("jssip-wss-200ok-chrome-answer.sip"))
    assert direct.audio is not None and direct.audio.dtls_client == "answerer"
    assert direct.audio.codec is not None and direct.audio.codec.offerer_pt == 111
    relayed = negotiate(vector("kamailio-relayed-invite-wss.sip"), vector("kamailio-relayed-200ok-wss.sip"))
    audio = relayed.audio
    assert audio is not None and audio.answerer is not None and audio.offerer is not None
    assert audio.dtls_client == "offerer"  # rtpengine answered setup:passive
    assert audio.answerer.end_of_candidates and audio.answerer.fingerprints[0].algorithm == "sha-1"
    assert len(audio.offerer.candidates) == 4  # RTP and RTCP components


# -- RFC 3264 rules ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("offered", "local", "expected"), [
    (Direction.SENDRECV, Direction.SENDRECV, Direction.SENDRECV),
    (Direction.SENDONLY, Direction.SENDRECV, Direction.RECVONLY),
    (Direction.RECVONLY, Direction.SENDRECV, Direction.SENDONLY),
    (Direction.INACTIVE, Direction.SENDRECV, Direction.INACTIVE),
    (Direction.SENDRECV, Direction.SENDONLY, Direction.SENDONLY),
    (Direction.SENDRECV, Direction.INACTIVE, Direction.INACTIVE),
    (Direction.SENDONLY, Direction.SENDONLY, Direction.INACTIVE),
    (Direction.RECVONLY, Direction.RECVONLY, Direction.INACTIVE),
])
def test_direction_intersection(offered: Direction, local: Direction, expected: Direction) -> None:
    offer = create_offer(plain_caps(direction=offered))
    answer = create_answer(offer, plain_caps(direction=local, port=50000))
    assert answer.media[0].direction is expected
    m = negotiate(offer, answer).media[0]
    assert m.offerer_sends == (offered.sends and expected.receives)
    assert m.answerer_sends == (expected.sends and offered.receives)
    assert m.hold == (not offered.receives)


def test_legacy_hold_with_null_connection() -> None:
    offer = vector("sipp_offer_pcma.sdp")
    offer.connection = Connection("0.0.0.0")  # RFC 2543 hold (RFC 3264 §8.4)
    answer = create_answer(offer, plain_caps())
    assert answer.media[0].direction is Direction.RECVONLY
    audio = negotiate(offer, answer).audio
    assert audio is not None and audio.hold and not audio.answerer_sends


def test_null_connection_with_ice_is_not_hold() -> None:
    offer = vector("chromium_offer.sdp")
    offer.media[0].connection = Connection("0.0.0.0")  # JSEP initial offer before gathering
    offer.media[0].port = 9
    answer = create_answer(offer, webrtc_caps())
    assert answer.media[0].direction is Direction.SENDRECV
    audio = negotiate(offer, answer).audio
    assert audio is not None and not audio.hold


@pytest.mark.parametrize(("offered", "expected"), [
    (Setup.ACTPASS, Setup.ACTIVE), (Setup.ACTIVE, Setup.PASSIVE), (Setup.PASSIVE, Setup.ACTIVE),
    (None, Setup.PASSIVE), (Setup.HOLDCONN, Setup.HOLDCONN),
])
def test_answer_setup(offered: Setup | None, expected: Setup) -> None:
    assert answer_setup(offered) is expected
    offer = create_offer(webrtc_caps())
    offer.media[0].remove_attribute("setup")
    if offered is not None:
        offer.media[0].add_attribute("setup", offered.value)
    answer = create_answer(offer, webrtc_caps(port=50000))
    assert answer.media[0].setup is expected
    dtls_client = negotiate(offer, answer).media[0].dtls_client
    assert dtls_client == {Setup.ACTIVE: "answerer", Setup.PASSIVE: "offerer", Setup.HOLDCONN: None}[expected]


def test_ice_only_when_offered() -> None:
    offer = create_offer(plain_caps())
    answer = create_answer(offer, plain_caps(ice=ICE, port=50000))
    assert answer.media[0].ice_ufrag is None and answer.media[0].candidates == []
    offer = create_offer(plain_caps(ice=ICE))
    answer = create_answer(offer, plain_caps(ice=LocalIce("wxyz", "z" * 22, (), options=()), port=50000))
    assert answer.media[0].ice_ufrag == "wxyz" and not answer.media[0].has_attribute("ice-options")


def test_reoffer_version_increments_only_on_change() -> None:
    caps = plain_caps()
    first = create_offer(caps)
    same = create_offer(caps, previous=first)
    assert same.origin == first.origin and str(same) == str(first)
    hold = create_offer(plain_caps(direction=Direction.SENDONLY), previous=same)
    assert hold.origin.sess_id == first.origin.sess_id
    assert hold.origin.sess_version == first.origin.sess_version + 1
    assert hold.media[0].direction is Direction.SENDONLY
    again = create_offer(plain_caps(direction=Direction.SENDONLY), previous=hold)
    assert again.origin.sess_version == hold.origin.sess_version


def test_reoffer_after_answering_browser_keeps_mlines_and_payload_types() -> None:
    offer = vector("safari-audio-video-data-offer.sdp")
    answer = create_answer(offer, webrtc_caps())
    reoffer = create_offer(webrtc_caps(direction=Direction.INACTIVE), previous=answer)
    assert [(m.kind, m.port, m.mid) for m in reoffer.media] == [
        ("audio", 40000, "audio"), ("video", 0, "video"), ("application", 0, "data")]
    assert reoffer.media[0].formats[:3] == ["111", "0", "8"]  # opus keeps PT 111 (RFC 3264 §8.3.2)
    assert reoffer.bundle_mids == ("audio",)
    assert reoffer.origin.sess_id == answer.origin.sess_id
    assert reoffer.origin.sess_version == answer.origin.sess_version + 1
    # the browser's answer to our re-offer negotiates
    browser_answer = create_answer(reoffer, webrtc_caps(port=50000))
    result = negotiate(reoffer, browser_answer)
    assert [m.accepted for m in result.media] == [True, False, False]
    assert result.audio is not None and not result.audio.offerer_sends


def test_reanswer_version() -> None:
    offer = vector("baresip_offer_plain.sdp")
    first = create_answer(offer, plain_caps())
    assert create_answer(offer, plain_caps(), previous=first).origin == first.origin
    changed = create_answer(offer, plain_caps(ptime=30), previous=first)
    assert changed.origin.sess_version == first.origin.sess_version + 1


# -- broken answers ----------------------------------------------------------------------------------


def _pair() -> tuple[SessionDescription, SessionDescription]:
    offer = create_offer(webrtc_caps())
    return offer, create_answer(offer, webrtc_caps(port=50000))


def test_answer_with_wrong_mline_count() -> None:
    offer, answer = _pair()
    answer.media.append(answer.media[0])
    with pytest.raises(OfferAnswerError, match="m-lines"):
        negotiate(offer, answer)


def test_answer_changed_proto_or_kind() -> None:
    offer, answer = _pair()
    answer.media[0].proto = "RTP/AVP"
    with pytest.raises(OfferAnswerError, match="proto"):
        negotiate(offer, answer)
    offer, answer = _pair()
    answer.media[0].kind = "video"
    with pytest.raises(OfferAnswerError, match="kind"):
        negotiate(offer, answer)


def test_answer_without_common_codec() -> None:
    offer, answer = _pair()
    answer.media[0].formats = ["99"]
    answer.media[0].remove_attribute("rtpmap")
    answer.media[0].add_attribute("rtpmap", "99 AMR/8000")
    with pytest.raises(OfferAnswerError, match="codec"):
        negotiate(offer, answer)


def test_answer_dtls_errors() -> None:
    offer, answer = _pair()
    answer.media[0].set_attribute("setup", "actpass")
    with pytest.raises(OfferAnswerError, match="actpass"):
        negotiate(offer, answer)
    offer, answer = _pair()
    answer.media[0].remove_attribute("fingerprint")
    with pytest.raises(OfferAnswerError, match="fingerprint"):
        negotiate(offer, answer)
    offer, answer = _pair()
    offer.media[0].set_attribute("setup", "active")
    answer.media[0].set_attribute("setup", "active")
    with pytest.raises(OfferAnswerError, match="roles"):
        negotiate(offer, answer)


def test_answer_sdes_errors() -> None:
    offer = create_offer(sdes_caps(crypto=[KEY80, KEY32]))
    answer = create_answer(offer, sdes_caps(port=50000))
    assert negotiate(offer, answer).media[0].accepted
    answer.media[0].set_attribute("crypto", str(Crypto(9, KEY80.suite, KEY80.key_params)))
    with pytest.raises(OfferAnswerError, match="tag 9"):
        negotiate(offer, answer)
    answer.media[0].remove_attribute("crypto")
    with pytest.raises(OfferAnswerError, match="exactly one"):
        negotiate(offer, answer)


def test_malformed_attribute_in_answer_is_a_parse_error() -> None:
    offer, answer = _pair()
    answer.media[0].add_attribute("candidate", "garbage")
    with pytest.raises(SdpParseError):
        negotiate(offer, answer)


def test_rejected_stream_in_answer() -> None:
    offer, answer = _pair()
    answer.media[0].port = 0
    result = negotiate(offer, answer)
    assert not result.media[0].accepted and result.audio is None
    with pytest.raises(LocalProtocolError):
        result.media[0].local(is_offerer=True)
    assert result.media[0].send_payload_type(is_offerer=True) is None


def test_proto_families() -> None:
    assert [proto_family(p) for p in ("RTP/AVP", "rtp/savpf", "UDP/TLS/RTP/SAVPF", "DTLS/SCTP")] == [
        "plain", "sdes", "dtls", None]


# -- property: any two capability sets either agree consistently or refuse with 488 --------------------

codec_pool = [PCMU, PCMA, G722, OPUS, CodecSpec("speex", 16000), CodecSpec("iLBC", 8000)]


@st.composite
def caps_pairs(draw: st.DrawFn) -> tuple[LocalMediaCapabilities, LocalMediaCapabilities]:
    def one(port: int) -> LocalMediaCapabilities:
        codecs = draw(st.lists(st.sampled_from(codec_pool), min_size=1, max_size=4, unique=True))
        return plain_caps(codecs=codecs, port=port, dtmf=draw(st.booleans()),
                          direction=draw(st.sampled_from(list(Direction))),
                          rtcp_mux=draw(st.booleans()), ptime=draw(st.sampled_from([None, 10, 20, 30])))
    return one(40000), one(50000)


@settings(max_examples=150, deadline=None)
@given(caps_pairs())
def test_property_offer_answer_consistency(pair: tuple[LocalMediaCapabilities, LocalMediaCapabilities]) -> None:
    a, b = pair
    offer = create_offer(a)
    assert parse_sdp(offer.to_bytes()) == offer
    common = [c for c in b.codec_specs if any(
        c.encoding == x.encoding and c.clock_rate == x.clock_rate for x in a.codec_specs)]
    if not common:
        with pytest.raises(OfferAnswerError):
            create_answer(offer, b)
        return
    answer = create_answer(offer, b)
    assert_valid_answer(offer, answer)
    audio = negotiate(offer, answer).audio
    assert audio is not None and audio.codec is not None
    assert (audio.codec.encoding, audio.codec.clock_rate) == (common[0].encoding, common[0].clock_rate)
    assert all(c.offerer_pt == c.answerer_pt for c in audio.codecs)
    assert audio.rtcp_mux == (a.rtcp_mux and b.rtcp_mux)
    assert (audio.telephone_event is not None) == (a.dtmf and b.dtmf)
    assert audio.offerer_sends == (a.direction.sends and b.direction.receives)
    assert audio.answerer_sends == (b.direction.sends and a.direction.receives)
