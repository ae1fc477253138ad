"""SDP serializer (RFC 8866 §5): :class:`SessionDescription` -> text with CRLF line ends.

Lines are written in the order RFC 8866 §5 requires; attributes in the order they are
stored. For an SDP that already used that order, CRLF and single spaces, the output is
byte-identical to what was parsed (tests/rtpcore/test_sdp_parse.py checks every real
vector). A session without ``t=`` gets ``t=0 0``, which is mandatory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .model import Attribute, MediaDescription, SessionDescription

CRLF = "\r\n"


def _attribute_lines(out: list[str], attributes: list[Attribute]) -> None:
    for name, value in attributes:
        out.append(f"a={name}" if value is None else f"a={name}:{value}")


def _media_lines(out: list[str], m: MediaDescription) -> None:
    port = str(m.port) if m.port_count is None else f"{m.port}/{m.port_count}"
    out.append(" ".join(["m=" + m.kind, port, m.proto, *m.formats]))
    if m.info is not None:
        out.append(f"i={m.info}")
    for c in m.connections:
        out.append(f"c={c}")
    for b in m.bandwidths:
        out.append(f"b={b}")
    if m.key is not None:
        out.append(f"k={m.key}")
    _attribute_lines(out, m.attributes)


def serialize_sdp(sdp: SessionDescription) -> str:
    """The wire text of ``sdp`` (``str(sdp)`` calls this)."""
    out = [f"v={sdp.version}", f"o={sdp.origin}", f"s={sdp.session_name}"]
    if sdp.info is not None:
        out.append(f"i={sdp.info}")
    if sdp.uri is not None:
        out.append(f"u={sdp.uri}")
    out.extend(f"e={e}" for e in sdp.emails)
    out.extend(f"p={p}" for p in sdp.phones)
    if sdp.connection is not None:
        out.append(f"c={sdp.connection}")
    out.extend(f"b={b}" for b in sdp.bandwidths)
    if sdp.timing:
        for t in sdp.timing:
            out.append(f"t={t}")
            out.extend(f"r={r}" for r in t.repeats)
    else:
        out.append("t=0 0")
    if sdp.zone is not None:
        out.append(f"z={sdp.zone}")
    if sdp.key is not None:
        out.append(f"k={sdp.key}")
    _attribute_lines(out, sdp.attributes)
    for m in sdp.media:
        _media_lines(out, m)
    out.append("")
    return CRLF.join(out)


def serialize_sdp_bytes(sdp: SessionDescription) -> bytes:
    """UTF-8 bytes; characters that arrived as undecodable bytes are restored."""
    return serialize_sdp(sdp).encode("utf-8", "surrogateescape")
