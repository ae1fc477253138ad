"""RFC 3264 offer/answer for a voice endpoint: one audio stream, everything else rejected.

A media session describes what it can do once, as :class:`LocalMediaCapabilities`, and
never touches SDP:

* :func:`create_offer` builds an offer (RFC 3264 §5) or a re-offer (§8) from it;
* :func:`create_answer` answers a remote offer (§6): the first acceptable audio m-line is
  accepted, every other m-line (video, data channel, a second audio) is rejected with
  port 0, keeping m-line count and order (§6, RFC 8843 §7.3.3 for BUNDLE);
* :func:`negotiate` checks an offer/answer pair (§6-§7) and returns what was agreed per
  m-line: codecs with both sides' payload types, telephone-event, who sends, ICE and
  DTLS parameters, the SDES keys. Both the offerer (on receiving the answer) and the
  answerer (on sending it) call it; :meth:`NegotiatedMedia.local` picks a side.

Problems the peer caused raise :class:`~rtpcore.errors.OfferAnswerError` (SIP maps it to
488 Not Acceptable Here) or :class:`~rtpcore.errors.SdpParseError`; a bad
:class:`LocalMediaCapabilities` raises :class:`~rtpcore.errors.LocalProtocolError`.

One session, as the SIP layer drives it (the state lives in the caller)::

    idle --create_offer--> offer sent --answer received: negotiate(offer, answer)--> active
    idle --offer received: create_answer + negotiate--> active
    active --create_offer(previous=last sent)--> re-offer (o= version +1 only if changed)

Rules applied, with their source:

* the answer keeps the offered proto (§6.1) and the offerer's payload type numbers for
  dynamic codecs (§6.1); telephone-event (RFC 4733 §7.1.1) only at an accepted clock rate;
* direction: the answer intersects local wishes with the reverse of the offer (§6.1):
  sendonly <-> recvonly, inactive -> inactive; a legacy ``c=0.0.0.0`` without ICE means
  the offerer does not want to receive (RFC 2543 hold, §8.4);
* DTLS: offerer ``setup:actpass``; answerer ``active`` to actpass/passive, ``passive`` to
  active (RFC 5763 §5, RFC 4145 §4.1); fingerprints per RFC 8122;
* SDES: the answerer picks the first offered ``a=crypto`` whose suite it supports and
  whose key has the right length, and answers with the same tag and its own key
  (RFC 4568 §7.1.2);
* ICE credentials and candidates are only sent when the offer used ICE (RFC 8839 §4.4);
* ``a=rtcp-mux`` (RFC 5761 §5.1.1) and ``a=rtcp-rsize`` (RFC 5506) only when offered.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import replace

from ..errors import LocalProtocolError, OfferAnswerError, SdpParseError
from .attributes import SRTP_SUITE_KEY_SALT_LENGTH, Crypto, Direction, RtpMap, Setup
from .capabilities import (
    DEFAULT_DTMF_EVENTS,
    DTLS,
    G722,
    OPUS,
    PCMA,
    PCMU,
    SDES,
    TELEPHONE_EVENT,
    CodecSpec,
    LocalDtls,
    LocalIce,
    LocalMediaCapabilities,
    ProtoFamily,
    proto_family,
)
from .grammar import address_type_of
from .model import (
    STATIC_PAYLOAD_TYPES,
    Attribute,
    Connection,
    MediaDescription,
    Origin,
    PayloadFormat,
    SessionDescription,
    Timing,
)
from .negotiated import MediaEndpoint, NegotiatedCodec, NegotiatedMedia, NegotiationResult, Side

__all__ = [
    "DEFAULT_DTMF_EVENTS", "G722", "OPUS", "PCMA", "PCMU", "TELEPHONE_EVENT", "CodecSpec", "LocalDtls", "LocalIce",
    "LocalMediaCapabilities", "MediaEndpoint", "NegotiatedCodec", "NegotiatedMedia", "NegotiationResult",
    "ProtoFamily", "Side", "answer_setup", "create_answer", "create_offer", "negotiate", "proto_family",
]

# -- offers ---------------------------------------------------------------------------------


def create_offer(
    caps: LocalMediaCapabilities,
    *,
    previous: SessionDescription | None = None,
    rng: Callable[[int], bytes] = os.urandom,
) -> SessionDescription:
    """Build an offer (RFC 3264 §5), or a re-offer when ``previous`` (our last SDP) is given.

    A re-offer keeps o= username and sess-id, keeps every earlier m-line in place
    (rejected ones stay at port 0, §8), and increments sess-version only when something
    other than the version changed (§8).
    """
    slot = _audio_slot(previous) if previous is not None else None
    mid = caps.mid
    if mid is None and slot is not None and previous is not None:
        mid = previous.media[slot].mid
    audio = _offer_media(caps, mid, previous.media[slot] if previous is not None and slot is not None else None)
    media: list[MediaDescription] = []
    if previous is not None:
        media = [audio if i == slot else _rejected_copy(m) for i, m in enumerate(previous.media)]
    if slot is None:
        media.append(audio)
    sdp = _session(caps, media, rng)
    if mid is not None and (caps.bundle or (previous is not None and previous.bundle_mids)):
        sdp.attributes.append(("group", f"BUNDLE {mid}"))
    return _with_version(sdp, previous)


def _offer_media(caps: LocalMediaCapabilities, mid: str | None, before: MediaDescription | None) -> MediaDescription:
    """The audio m-line of an offer. ``before`` is this m-line in our previous SDP: a codec
    keeps its dynamic payload type for the whole session (RFC 3264 §8.3.2)."""
    earlier = before.codecs if before is not None and before.port != 0 else []
    specs = caps.codec_specs
    pts: list[int | None] = []
    used: set[int] = set()
    for c in specs:  # pinned, earlier and static payload types first; dynamic ones avoid them
        pt = c.payload_type if c.payload_type is not None else _earlier_pt(earlier, c.encoding, c.clock_rate,
                                                                           c.channels)
        if pt is None:
            pt = _static_pt(c)
        if pt is not None and pt in used:
            pt = None
        if pt is not None:
            used.add(pt)
        pts.append(pt)
    assigned: list[tuple[int, CodecSpec]] = []
    for pt, c in zip(pts, specs, strict=True):
        if pt is None:
            pt = _free_dynamic(used)
            used.add(pt)
        assigned.append((pt, c))
    events: list[tuple[int, int]] = []
    if caps.dtmf:
        for rate in dict.fromkeys(c.clock_rate for _, c in assigned):
            pt = _earlier_pt(earlier, TELEPHONE_EVENT, rate, 1)
            if pt is None or pt in used:
                pt = 101 if rate == 8000 and 101 not in used else _free_dynamic(used)
            used.add(pt)
            events.append((pt, rate))
    m = MediaDescription("audio", caps.port, caps.proto, [str(pt) for pt, _ in assigned] +
                         [str(pt) for pt, _ in events])
    rtpmaps: list[Attribute] = []
    for pt, c in assigned:
        rtpmaps.append(("rtpmap", str(RtpMap(pt, c.encoding, c.clock_rate, c.channels))))
        if c.fmtp:
            rtpmaps.append(("fmtp", f"{pt} {c.fmtp}"))
    for pt, rate in events:
        rtpmaps.append(("rtpmap", f"{pt} {TELEPHONE_EVENT}/{rate}"))
        rtpmaps.append(("fmtp", f"{pt} {DEFAULT_DTMF_EVENTS}"))
    setup = caps.dtls.setup if caps.dtls is not None else None
    _fill_media(m, caps, ice=caps.ice is not None, setup=setup, mid=mid, direction=caps.direction,
                rtcp_mux=caps.rtcp_mux, rtcp_rsize=caps.rtcp_rsize, rtpmaps=rtpmaps, crypto=caps.crypto)
    return m


def _fill_media(m: MediaDescription, caps: LocalMediaCapabilities, *, ice: bool, setup: Setup | None,
                mid: str | None, direction: Direction, rtcp_mux: bool, rtcp_rsize: bool,
                rtpmaps: list[Attribute], crypto: Sequence[Crypto]) -> None:
    """Media-level attributes in the order browsers write them."""
    a = m.attributes
    if ice and caps.ice is not None:
        a.extend(("candidate", str(c)) for c in caps.ice.candidates)
        a.append(("ice-ufrag", caps.ice.ufrag))
        a.append(("ice-pwd", caps.ice.pwd))
        if caps.ice.options:
            a.append(("ice-options", " ".join(caps.ice.options)))
    if setup is not None and caps.dtls is not None:
        a.extend(("fingerprint", str(f)) for f in caps.dtls.fingerprints)
        a.append(("setup", setup.value))
    if mid is not None:
        a.append(("mid", mid))
    a.append((direction.value, None))
    if rtcp_mux:
        a.append(("rtcp-mux", None))
    if rtcp_rsize:
        a.append(("rtcp-rsize", None))
    a.extend(rtpmaps)
    if caps.ptime is not None:
        a.append(("ptime", str(caps.ptime)))
    if caps.maxptime is not None:
        a.append(("maxptime", str(caps.maxptime)))
    a.extend(("crypto", str(c)) for c in crypto)
    if caps.ssrc is not None and caps.cname is not None:
        a.append(("ssrc", f"{caps.ssrc} cname:{caps.cname}"))
    a.extend(caps.extra_attributes)
    if ice and caps.ice is not None and caps.ice.end_of_candidates:
        a.append(("end-of-candidates", None))


def _earlier_pt(earlier: list[PayloadFormat], encoding: str, clock_rate: int, channels: int) -> int | None:
    for pf in earlier:
        if pf.same_codec(encoding, clock_rate, channels):
            return pf.payload_type
    return None


def _static_pt(c: CodecSpec) -> int | None:
    for pt, m in STATIC_PAYLOAD_TYPES.items():
        if m.encoding.lower() == c.encoding.lower() and m.clock_rate == c.clock_rate and m.channels == c.channels:
            return pt
    return None


def _free_dynamic(used: set[int]) -> int:
    for pt in range(96, 128):
        if pt not in used:
            return pt
    raise LocalProtocolError("more than 32 dynamic payload types")


def _audio_slot(previous: SessionDescription) -> int | None:
    """Index of our audio m-line in the previous SDP: first active audio, else first audio."""
    first: int | None = None
    for i, m in previous.iter_media("audio"):
        if m.port != 0:
            return i
        if first is None:
            first = i
    return first


def _rejected_copy(m: MediaDescription) -> MediaDescription:
    """An m-line with port 0 (RFC 3264 §6, §8.2): same kind, proto, formats; mid kept."""
    out = MediaDescription(m.kind, 0, m.proto, list(m.formats) or ["0"])
    mid = m.mid
    if mid is not None:
        out.attributes.append(("mid", mid))
    return out


def _session(caps: LocalMediaCapabilities, media: list[MediaDescription],
             rng: Callable[[int], bytes]) -> SessionDescription:
    addrtype = address_type_of(caps.address)
    sess_id = str(int.from_bytes(rng(8), "big") >> 2)
    sdp = SessionDescription(
        origin=Origin(caps.username, sess_id, 1, "IN", addrtype, caps.address),
        session_name=caps.session_name,
        connection=Connection(caps.address, addrtype),
        timing=[Timing()],
        media=media,
    )
    if caps.ice is not None and caps.ice.lite:
        sdp.attributes.append(("ice-lite", None))
    return sdp


def _with_version(sdp: SessionDescription, previous: SessionDescription | None) -> SessionDescription:
    """RFC 3264 §8: same username/sess-id; version +1 only if the SDP changed."""
    if previous is None:
        return sdp
    prev = previous.origin
    sdp.origin = Origin(prev.username, prev.sess_id, prev.sess_version, prev.nettype,
                        sdp.origin.addrtype, sdp.origin.address)
    if str(sdp) != str(previous):
        sdp.origin = Origin(prev.username, prev.sess_id, prev.sess_version + 1, prev.nettype,
                            sdp.origin.addrtype, sdp.origin.address)
    return sdp


# -- answers --------------------------------------------------------------------------------


def create_answer(
    offer: SessionDescription,
    caps: LocalMediaCapabilities,
    *,
    previous: SessionDescription | None = None,
    rng: Callable[[int], bytes] = os.urandom,
) -> SessionDescription:
    """Answer ``offer`` (RFC 3264 §6): accept the first acceptable audio m-line.

    Every other m-line is answered with port 0 so count and order match the offer.
    Raises :class:`OfferAnswerError` when no audio m-line can be accepted (488).
    """
    media: list[MediaDescription] = []
    accepted: MediaDescription | None = None
    reasons: list[str] = []
    for i, om in enumerate(offer.media):
        answer_m: MediaDescription | None = None
        if accepted is None and om.kind == "audio" and om.port != 0:
            try:
                answer_m = _answer_audio(offer, om, caps)
            except OfferAnswerError as exc:
                reasons.append(f"m-line {i}: {exc}")
        if answer_m is None:
            media.append(_rejected_copy(om))
        else:
            accepted = answer_m
            media.append(answer_m)
    if accepted is None:
        detail = "; ".join(reasons) if reasons else "the offer has no audio stream"
        raise OfferAnswerError(f"no acceptable media (488): {detail}")
    sdp = _session(caps, media, rng)
    bundle = offer.bundle_mids
    mid = accepted.mid
    if bundle is not None and mid is not None and mid in bundle:
        sdp.attributes.append(("group", f"BUNDLE {mid}"))
    return _with_version(sdp, previous)


def _answer_audio(offer: SessionDescription, om: MediaDescription, caps: LocalMediaCapabilities) -> MediaDescription:
    family = proto_family(om.proto)
    if family is None:
        raise OfferAnswerError(f"unsupported transport {om.proto}")
    fingerprints = offer.effective_fingerprints(om)
    if family == SDES and fingerprints and (caps.dtls is not None or not om.attribute_values("crypto")):
        family = DTLS  # pre-RFC 5764 browsers offered DTLS-SRTP (and SDES) as RTP/SAVPF
    if not caps.accepts_family(family):
        raise OfferAnswerError(f"{om.proto} offered but local media is configured for {caps.proto}")

    crypto: list[Crypto] = []
    setup: Setup | None = None
    if family == SDES:
        crypto = [_select_crypto(om, caps)]
    elif family == DTLS:
        if not fingerprints:
            raise OfferAnswerError(f"{om.proto} offered without a=fingerprint (RFC 5763 §5)")
        setup = answer_setup(offer.effective_setup(om))

    offered = om.codecs
    chosen: list[tuple[PayloadFormat, CodecSpec]] = []
    for spec in caps.codec_specs:
        for pf in offered:
            if pf.encoding.lower() != TELEPHONE_EVENT and pf.same_codec(spec.encoding, spec.clock_rate, spec.channels):
                if all(pf is not c for c, _ in chosen):
                    chosen.append((pf, spec))
                break
    if not chosen:
        names = ", ".join(f"{p.encoding}/{p.clock_rate}" for p in offered) or "none"
        local = ", ".join(f"{c.encoding}/{c.clock_rate}" for c in caps.codec_specs)
        raise OfferAnswerError(f"no common codec: offered {names}; supported {local}")
    events: list[PayloadFormat] = []
    if caps.dtmf:
        rates = {pf.clock_rate for pf, _ in chosen}
        events = [pf for pf in offered if pf.encoding.lower() == TELEPHONE_EVENT and pf.clock_rate in rates]

    m = MediaDescription("audio", caps.port, om.proto,
                         [str(pf.payload_type) for pf, _ in chosen] + [str(pf.payload_type) for pf in events])
    rtpmaps: list[Attribute] = []
    for pf, spec in chosen:
        rtpmaps.append(("rtpmap", str(RtpMap(pf.payload_type, pf.encoding, pf.clock_rate, pf.channels))))
        if spec.fmtp:
            rtpmaps.append(("fmtp", f"{pf.payload_type} {spec.fmtp}"))
    for pf in events:
        rtpmaps.append(("rtpmap", str(RtpMap(pf.payload_type, pf.encoding, pf.clock_rate, pf.channels))))
        rtpmaps.append(("fmtp", f"{pf.payload_type} {pf.fmtp or DEFAULT_DTMF_EVENTS}"))

    offer_dir = _effective_direction(offer, om)
    direction = caps.direction.intersect(offer_dir.reverse())
    use_ice = offer.effective_ice(om) is not None
    _fill_media(m, caps, ice=use_ice, setup=setup, mid=om.mid, direction=direction,
                rtcp_mux=caps.rtcp_mux and om.rtcp_mux, rtcp_rsize=caps.rtcp_rsize and om.rtcp_rsize,
                rtpmaps=rtpmaps, crypto=crypto)
    return m


def answer_setup(offered: Setup | None) -> Setup:
    """Answerer's DTLS role (RFC 5763 §5, RFC 4145 §4.1: a missing offer setup means active)."""
    if offered is None or offered is Setup.ACTIVE:
        return Setup.PASSIVE
    if offered is Setup.HOLDCONN:
        return Setup.HOLDCONN
    return Setup.ACTIVE


def _select_crypto(om: MediaDescription, caps: LocalMediaCapabilities) -> Crypto:
    """First offered a=crypto we can use, answered with the same tag and our key (RFC 4568 §7.1.2)."""
    ours = {c.suite.upper(): c for c in caps.crypto}
    for value in om.attribute_values("crypto"):
        try:
            offered = Crypto.parse(value)
            mine = ours.get(offered.suite.upper())
            expected = SRTP_SUITE_KEY_SALT_LENGTH.get(offered.suite.upper())
            if mine is None or expected is None or offered.session_params:
                continue
            if any(len(k.key_salt_bytes()) != expected for k in offered.key_params):
                continue
        except SdpParseError:
            continue  # an unusable crypto line is skipped, not fatal (RFC 4568 §7.1.2)
        return Crypto(offered.tag, offered.suite, mine.key_params, ())
    suites = ", ".join(c.suite for c in caps.crypto)
    raise OfferAnswerError(f"no acceptable a=crypto offered (we support {suites})")


def _effective_direction(sdp: SessionDescription, m: MediaDescription) -> Direction:
    """Direction with RFC 2543 hold applied: c=0.0.0.0 without ICE means "do not send to me"."""
    d = sdp.effective_direction(m)
    conn = sdp.effective_connection(m)
    if conn is not None and conn.is_null and sdp.effective_ice(m) is None:
        return Direction.from_flags(send=d.sends, recv=False)
    return d


# -- checking a pair ------------------------------------------------------------------------


def negotiate(offer: SessionDescription, answer: SessionDescription) -> NegotiationResult:
    """What ``offer`` and ``answer`` agreed, m-line by m-line (RFC 3264 §6, §7).

    Raises :class:`OfferAnswerError` when the answer breaks RFC 3264 (m-line count, kind
    or proto changed, no common codec on an accepted stream, DTLS or SDES answer missing
    or invalid) and :class:`SdpParseError` for a malformed attribute it needs.
    """
    if len(answer.media) != len(offer.media):
        raise OfferAnswerError(f"answer has {len(answer.media)} m-lines, offer had {len(offer.media)} "
                               "(RFC 3264 §6)")
    out: list[NegotiatedMedia] = []
    for i, (om, am) in enumerate(zip(offer.media, answer.media, strict=True)):
        if am.kind != om.kind:
            raise OfferAnswerError(f"m-line {i}: answer kind {am.kind} != offered {om.kind}")
        if om.port == 0 or am.port == 0:
            out.append(NegotiatedMedia(i, om.kind, om.proto, False))
            continue
        if am.proto.upper() != om.proto.upper():
            raise OfferAnswerError(f"m-line {i}: answer proto {am.proto} != offered {om.proto} (RFC 3264 §6.1)")
        out.append(_negotiate_media(i, offer, om, answer, am))
    mids = answer.bundle_mids or ()
    return NegotiationResult(tuple(out), tuple(mids))


def _negotiate_media(i: int, offer: SessionDescription, om: MediaDescription,
                     answer: SessionDescription, am: MediaDescription) -> NegotiatedMedia:
    codecs: list[NegotiatedCodec] = []
    events: list[NegotiatedCodec] = []
    if om.is_rtp:
        offered = om.codecs
        for apf in am.codecs:
            for opf in offered:
                if opf.same_codec(apf.encoding, apf.clock_rate, apf.channels):
                    nc = NegotiatedCodec(opf.encoding, opf.clock_rate, opf.channels, opf.payload_type,
                                         apf.payload_type, opf.fmtp, apf.fmtp)
                    (events if opf.encoding.lower() == TELEPHONE_EVENT else codecs).append(nc)
                    break
        if not codecs:
            raise OfferAnswerError(f"m-line {i}: accepted without a codec from the offer (RFC 3264 §6.1)")
    telephone_event: NegotiatedCodec | None = None
    if events:
        primary_rate = codecs[0].clock_rate
        telephone_event = next((e for e in events if e.clock_rate == primary_rate), events[0])

    family = proto_family(om.proto)
    if family == SDES and not am.attribute_values("crypto") and answer.effective_fingerprints(am):
        family = DTLS  # legacy RTP/SAVPF answered with DTLS-SRTP
    off_ep = _endpoint(offer, om)
    ans_ep = _endpoint(answer, am)
    dtls_client: Side | None = None
    if family == DTLS:
        if not off_ep.fingerprints or not ans_ep.fingerprints:
            raise OfferAnswerError(f"m-line {i}: DTLS-SRTP without a=fingerprint on both sides (RFC 5763 §5)")
        a_setup = ans_ep.setup if ans_ep.setup is not None else Setup.PASSIVE
        o_setup = off_ep.setup if off_ep.setup is not None else Setup.ACTIVE
        if a_setup is Setup.ACTPASS:
            raise OfferAnswerError(f"m-line {i}: answer used setup:actpass (RFC 5763 §5)")
        if a_setup is Setup.ACTIVE and o_setup in (Setup.ACTPASS, Setup.PASSIVE):
            dtls_client = Side.ANSWERER
        elif a_setup is Setup.PASSIVE and o_setup in (Setup.ACTPASS, Setup.ACTIVE):
            dtls_client = Side.OFFERER
        elif a_setup is not Setup.HOLDCONN and o_setup is not Setup.HOLDCONN:
            raise OfferAnswerError(f"m-line {i}: incompatible DTLS roles {o_setup} / {a_setup}")
    elif family == SDES:
        a_crypto = am.crypto
        if len(a_crypto) != 1:
            raise OfferAnswerError(f"m-line {i}: SDES answer must carry exactly one a=crypto (RFC 4568 §7.1.2)")
        chosen = a_crypto[0]
        match = next((c for c in _parse_crypto_lenient(om) if c.tag == chosen.tag), None)
        if match is None or match.suite.upper() != chosen.suite.upper():
            raise OfferAnswerError(f"m-line {i}: answer a=crypto tag {chosen.tag} does not match the offer")
        off_ep = replace(off_ep, crypto=match)
        ans_ep = replace(ans_ep, crypto=chosen)

    return NegotiatedMedia(
        index=i, kind=om.kind, proto=om.proto, accepted=True,
        codecs=tuple(codecs), telephone_event=telephone_event,
        offerer=off_ep, answerer=ans_ep,
        offerer_sends=off_ep.direction.sends and ans_ep.direction.receives,
        answerer_sends=ans_ep.direction.sends and off_ep.direction.receives,
        rtcp_mux=om.rtcp_mux and am.rtcp_mux,
        rtcp_rsize=om.rtcp_rsize and am.rtcp_rsize,
        dtls_client=dtls_client,
        hold=not off_ep.direction.receives,
    )


def _parse_crypto_lenient(m: MediaDescription) -> list[Crypto]:
    out: list[Crypto] = []
    for v in m.attribute_values("crypto"):
        try:
            out.append(Crypto.parse(v))
        except SdpParseError:
            continue
    return out


def _endpoint(sdp: SessionDescription, m: MediaDescription) -> MediaEndpoint:
    conn = sdp.effective_connection(m)
    address = conn.address if conn is not None else None
    rtcp = m.rtcp
    if m.rtcp_mux:
        rtcp_port, rtcp_address = m.port, address
    elif rtcp is not None:
        rtcp_port, rtcp_address = rtcp.port, rtcp.address or address
    else:
        rtcp_port, rtcp_address = m.port + 1, address  # RFC 3550 §11
    ssrcs = tuple(dict.fromkeys(s.ssrc for s in m.ssrcs))
    return MediaEndpoint(
        address=address, port=m.port, rtcp_port=rtcp_port, rtcp_address=rtcp_address,
        direction=_effective_direction(sdp, m), ptime=m.ptime, maxptime=m.maxptime, mid=m.mid,
        ice=sdp.effective_ice(m), candidates=tuple(m.candidates), end_of_candidates=m.end_of_candidates,
        fingerprints=tuple(sdp.effective_fingerprints(m)), setup=sdp.effective_setup(m),
        ssrcs=ssrcs, cname=m.cname,
    )
