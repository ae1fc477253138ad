"""Typed views of SDP attribute values: parse one ``a=`` value, format it back.

The session description keeps every attribute as raw text (so unknown ones and their
order survive a round trip); these classes are what the accessors in
:mod:`rtpcore.sdp.model` hand out. Each ``parse`` raises only
:class:`~rtpcore.errors.SdpParseError`; each ``__str__`` gives the attribute value (the
text after ``a=<name>:``) in canonical spacing.

=====================  ==============================================================
attribute              specification
=====================  ==============================================================
rtpmap, fmtp, ptime    RFC 8866 §6.6, §6.15, §6.4; static payload types RFC 3551 §6
sendrecv/sendonly/...  RFC 8866 §6.7, RFC 3264 §5.1
candidate              RFC 8839 §5.1 (plus RFC 6544 tcptype, Chrome generation/network-*)
ice-ufrag/pwd/options  RFC 8839 §5.4, §5.6
fingerprint, setup     RFC 8122 §5, RFC 4145 §4, RFC 5763 §5
crypto                 RFC 4568 §9.1 (SDES)
rtcp                   RFC 3605 §2.1
ssrc, ssrc-group       RFC 5576 §4.1, §4.2; msid RFC 8830 §2
extmap                 RFC 8285 §8
group                  RFC 5888 §5 (BUNDLE: RFC 8843)
rtcp-fb                RFC 4585 §4.2
=====================  ==============================================================
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Self

from ..errors import SdpParseError
from .grammar import check_address, is_digits, is_token, parse_uint

_U32_MAX = 0xFFFFFFFF
_HEX_PAIRS_RE = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2})*")
_ICE_CHARS_RE = re.compile(r"[A-Za-z0-9+/]{1,256}")
_BASE64_RE = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_CANDIDATE_ADDR_RE = re.compile(r"[0-9A-Za-z.:%_\-]{1,255}")


def _bad(what: str, value: str) -> SdpParseError:
    return SdpParseError(f"bad a={what} value {value[:80]!r}")


class Direction(StrEnum):
    """Media direction attribute (RFC 8866 §6.7; RFC 3264 §5.1 semantics)."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @property
    def sends(self) -> bool:
        return self is Direction.SENDRECV or self is Direction.SENDONLY

    @property
    def receives(self) -> bool:
        return self is Direction.SENDRECV or self is Direction.RECVONLY

    @classmethod
    def from_flags(cls, *, send: bool, recv: bool) -> Direction:
        if send:
            return cls.SENDRECV if recv else cls.SENDONLY
        return cls.RECVONLY if recv else cls.INACTIVE

    def reverse(self) -> Direction:
        """The same stream seen from the peer: sendonly <-> recvonly."""
        return Direction.from_flags(send=self.receives, recv=self.sends)

    def intersect(self, other: Direction) -> Direction:
        """Keep only the flows both directions allow."""
        return Direction.from_flags(send=self.sends and other.sends, recv=self.receives and other.receives)


DIRECTION_NAMES = frozenset(d.value for d in Direction)


class Setup(StrEnum):
    """DTLS/TCP connection role (RFC 4145 §4, RFC 5763 §5)."""

    ACTIVE = "active"
    PASSIVE = "passive"
    ACTPASS = "actpass"
    HOLDCONN = "holdconn"

    @classmethod
    def parse(cls, value: str) -> Setup:
        try:
            return cls(value.strip().lower())
        except ValueError:
            raise _bad("setup", value) from None


@dataclass(frozen=True, slots=True)
class RtpMap:
    """``a=rtpmap:<pt> <encoding>/<clock rate>[/<channels>]`` (RFC 8866 §6.6).

    ``channels`` is 1 when the line leaves it out (RFC 3551 §6: audio default).
    """

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int = 1

    @classmethod
    def parse(cls, value: str) -> Self:
        pt_text, _, rest = value.strip().partition(" ")
        parts = rest.strip().split("/")
        if len(parts) < 2 or len(parts) > 3 or not is_token(parts[0]):
            raise _bad("rtpmap", value)
        pt = parse_uint(pt_text, "a=rtpmap payload type", maximum=127)
        clock = parse_uint(parts[1], "a=rtpmap clock rate")
        channels = parse_uint(parts[2], "a=rtpmap channels", maximum=255) if len(parts) == 3 else 1
        return cls(pt, parts[0], clock, channels)

    def __str__(self) -> str:
        tail = f"/{self.channels}" if self.channels != 1 else ""
        return f"{self.payload_type} {self.encoding}/{self.clock_rate}{tail}"


@dataclass(frozen=True, slots=True)
class Fmtp:
    """``a=fmtp:<pt> <params>`` (RFC 8866 §6.15) with ``;``-separated ``key=value`` pairs.

    ``raw`` is the parameter text exactly as sent; ``params`` its parsed pairs in order.
    A bare item (``0-15`` for telephone-event, ``111/111`` for RED) is a key with value "".
    """

    payload_type: int
    raw: str
    params: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, value: str) -> Self:
        pt_text, _, raw = value.strip().partition(" ")
        pt = parse_uint(pt_text, "a=fmtp payload type", maximum=127)
        raw = raw.strip()
        return cls(pt, raw, cls.split_params(raw))

    @staticmethod
    def split_params(raw: str) -> tuple[tuple[str, str], ...]:
        out: list[tuple[str, str]] = []
        for item in raw.split(";"):
            item = item.strip()
            if item:
                key, _, val = item.partition("=")
                out.append((key.strip(), val.strip()))
        return tuple(out)

    def get(self, key: str, default: str | None = None) -> str | None:
        """Value of parameter ``key`` (case-insensitive, RFC 7587 §7 style)."""
        lower = key.lower()
        for k, v in self.params:
            if k.lower() == lower:
                return v
        return default

    def as_dict(self) -> dict[str, str]:
        return dict(self.params)

    def __str__(self) -> str:
        return f"{self.payload_type} {self.raw}"


@dataclass(frozen=True, slots=True)
class Candidate:
    """One ICE candidate (RFC 8839 §5.1)::

        candidate-attribute = "candidate" ":" foundation SP component-id SP transport SP
                              priority SP connection-address SP port SP "typ" SP cand-type
                              [SP rel-addr] [SP rel-port] *(SP cand-extension)

    ``extensions`` keeps every trailing name/value pair in order (``tcptype`` from
    RFC 6544, Chrome's ``generation``, ``ufrag``, ``network-id``, ``network-cost``...).
    """

    foundation: str
    component: int
    transport: str
    priority: int
    ip: str
    port: int
    type: str
    related_address: str | None = None
    related_port: int | None = None
    extensions: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, value: str) -> Self:
        """Parse an ``a=candidate`` value; a leading ``candidate:`` (trickle form) is allowed."""
        text = value.strip()
        if text[:10].lower() == "candidate:":
            text = text[10:]
        f = text.split()
        if len(f) < 8 or f[6] != "typ" or len(f) % 2 != 0:
            raise _bad("candidate", value)
        if _ICE_CHARS_RE.fullmatch(f[0]) is None or len(f[0]) > 32:
            raise _bad("candidate", value)
        if not is_token(f[2]) or not is_token(f[7]) or _CANDIDATE_ADDR_RE.fullmatch(f[4]) is None:
            raise _bad("candidate", value)
        component = parse_uint(f[1], "a=candidate component", maximum=256)
        priority = parse_uint(f[3], "a=candidate priority", maximum=_U32_MAX)
        port = parse_uint(f[5], "a=candidate port", maximum=65535)
        raddr: str | None = None
        rport: int | None = None
        ext: list[tuple[str, str]] = []
        for i in range(8, len(f), 2):
            name, val = f[i], f[i + 1]
            if name == "raddr" and raddr is None:
                if _CANDIDATE_ADDR_RE.fullmatch(val) is None:
                    raise _bad("candidate", value)
                raddr = val
            elif name == "rport" and rport is None:
                rport = parse_uint(val, "a=candidate rport", maximum=65535)
            else:
                if not is_token(name):
                    raise _bad("candidate", value)
                ext.append((name, val))
        return cls(f[0], component, f[2], priority, f[4], port, f[7], raddr, rport, tuple(ext))

    def extension(self, name: str) -> str | None:
        for k, v in self.extensions:
            if k == name:
                return v
        return None

    @property
    def tcptype(self) -> str | None:
        """RFC 6544 ``tcptype`` (active/passive/so) of a TCP candidate."""
        return self.extension("tcptype")

    @property
    def generation(self) -> int | None:
        gen = self.extension("generation")
        return int(gen) if gen is not None and is_digits(gen) and len(gen) < 10 else None

    @property
    def ufrag(self) -> str | None:
        return self.extension("ufrag")

    @property
    def network_cost(self) -> int | None:
        cost = self.extension("network-cost")
        return int(cost) if cost is not None and is_digits(cost) and len(cost) < 10 else None

    def __str__(self) -> str:
        out = [self.foundation, str(self.component), self.transport, str(self.priority), self.ip,
               str(self.port), "typ", self.type]
        if self.related_address is not None:
            out += ["raddr", self.related_address]
        if self.related_port is not None:
            out += ["rport", str(self.related_port)]
        for k, v in self.extensions:
            out += [k, v]
        return " ".join(out)


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """``a=fingerprint:<hash-func> <XX:XX:...>`` (RFC 8122 §5).

    ``hash_function`` is kept as sent (baresip writes ``SHA-256``); compare with
    :attr:`algorithm`, which is lower case, and with :meth:`matches` (constant time).
    """

    hash_function: str
    value: str

    @classmethod
    def parse(cls, value: str) -> Self:
        f = value.split()
        if len(f) != 2 or not is_token(f[0]) or _HEX_PAIRS_RE.fullmatch(f[1]) is None:
            raise _bad("fingerprint", value)
        return cls(f[0], f[1])

    @classmethod
    def from_digest(cls, hash_function: str, digest: bytes) -> Self:
        return cls(hash_function, ":".join(f"{b:02X}" for b in digest))

    @property
    def algorithm(self) -> str:
        return self.hash_function.lower()

    @property
    def digest(self) -> bytes:
        return bytes.fromhex(self.value.replace(":", ""))

    def matches(self, digest: bytes) -> bool:
        """Constant-time comparison with a certificate digest computed locally."""
        return hmac.compare_digest(self.digest, digest)

    def __str__(self) -> str:
        return f"{self.hash_function} {self.value}"


#: Master key + salt length in bytes for the SDES suites we know (RFC 4568 §6.2,
#: RFC 6188 §7, RFC 7714 §12). Unknown suites are kept but never selected.
SRTP_SUITE_KEY_SALT_LENGTH: dict[str, int] = {
    "AES_CM_128_HMAC_SHA1_80": 30,
    "AES_CM_128_HMAC_SHA1_32": 30,
    "AES_192_CM_HMAC_SHA1_80": 38,
    "AES_192_CM_HMAC_SHA1_32": 38,
    "AES_256_CM_HMAC_SHA1_80": 46,
    "AES_256_CM_HMAC_SHA1_32": 46,
    "AEAD_AES_128_GCM": 28,
    "AEAD_AES_256_GCM": 44,
}


@dataclass(frozen=True, slots=True)
class KeyParams:
    """One SDES ``key-params`` (RFC 4568 §9.1): ``inline:<key||salt>[|lifetime][|MKI:length]``."""

    key_salt: str
    lifetime: str | None = None
    mki: str | None = None
    method: str = "inline"

    @classmethod
    def parse(cls, text: str) -> Self:
        method, sep, info = text.partition(":")
        if not sep or not is_token(method):
            raise _bad("crypto", text)
        parts = info.split("|")
        if len(parts) > 3 or _BASE64_RE.fullmatch(parts[0]) is None:
            raise _bad("crypto", text)
        lifetime: str | None = None
        mki: str | None = None
        for part in parts[1:]:
            if ":" in part:
                mki_val, _, mki_len = part.partition(":")
                if mki is not None or not is_digits(mki_val) or not is_digits(mki_len):
                    raise _bad("crypto", text)
                mki = part
            else:
                base, caret, exp = part.partition("^")
                ok = is_digits(exp) if caret else is_digits(base)
                if lifetime is not None or not ok or (caret and base != "2"):
                    raise _bad("crypto", text)
                lifetime = part
        return cls(parts[0], lifetime, mki, method)

    def key_salt_bytes(self) -> bytes:
        """The decoded master key || master salt."""
        try:
            return base64.b64decode(self.key_salt, validate=True)
        except (binascii.Error, ValueError):
            raise _bad("crypto", self.key_salt) from None

    @property
    def lifetime_packets(self) -> int | None:
        """Lifetime as a packet count (``2^31`` -> 2147483648)."""
        if self.lifetime is None:
            return None
        base, caret, exp = self.lifetime.partition("^")
        if caret:
            return 1 << min(int(exp[:4]), 64)
        return int(base[:20])

    @property
    def mki_value_length(self) -> tuple[int, int] | None:
        if self.mki is None:
            return None
        val, _, length = self.mki.partition(":")
        return int(val[:20]), int(length[:4])

    def __str__(self) -> str:
        out = f"{self.method}:{self.key_salt}"
        if self.lifetime is not None:
            out += f"|{self.lifetime}"
        if self.mki is not None:
            out += f"|{self.mki}"
        return out


@dataclass(frozen=True, slots=True)
class Crypto:
    """``a=crypto:<tag> <crypto-suite> <key-params>[;<key-params>...] [<session-param>...]``
    (RFC 4568 §9.1)."""

    tag: int
    suite: str
    key_params: tuple[KeyParams, ...]
    session_params: tuple[str, ...] = ()

    @classmethod
    def parse(cls, value: str) -> Self:
        f = value.split()
        if len(f) < 3 or not is_token(f[1]):
            raise _bad("crypto", value)
        tag = parse_uint(f[0], "a=crypto tag", maximum=999_999_999)
        keys = tuple(KeyParams.parse(k) for k in f[2].split(";"))
        return cls(tag, f[1], keys, tuple(f[3:]))

    @classmethod
    def inline(cls, tag: int, suite: str, key_salt: bytes) -> Self:
        """Build a single-key crypto line from raw key || salt bytes."""
        return cls(tag, suite, (KeyParams(base64.b64encode(key_salt).decode("ascii")),))

    @property
    def key_salt(self) -> bytes:
        """Key || salt of the first key-params."""
        return self.key_params[0].key_salt_bytes()

    def __str__(self) -> str:
        out = f"{self.tag} {self.suite} {';'.join(str(k) for k in self.key_params)}"
        return out + "".join(f" {p}" for p in self.session_params)


@dataclass(frozen=True, slots=True)
class RtcpAddress:
    """``a=rtcp:<port> [<nettype> <addrtype> <address>]`` (RFC 3605 §2.1)."""

    port: int
    nettype: str | None = None
    addrtype: str | None = None
    address: str | None = None

    @classmethod
    def parse(cls, value: str) -> Self:
        f = value.split()
        if len(f) not in (1, 4):
            raise _bad("rtcp", value)
        port = parse_uint(f[0], "a=rtcp port", maximum=65535)
        if len(f) == 1:
            return cls(port)
        if not is_token(f[1]) or not is_token(f[2]):
            raise _bad("rtcp", value)
        check_address(f[2], f[3], "a=rtcp address")
        return cls(port, f[1], f[2], f[3])

    def __str__(self) -> str:
        if self.address is None:
            return str(self.port)
        return f"{self.port} {self.nettype} {self.addrtype} {self.address}"


@dataclass(frozen=True, slots=True)
class SsrcAttribute:
    """``a=ssrc:<ssrc-id> <attribute>[:<value>]`` (RFC 5576 §4.1), e.g. ``cname``, ``msid``."""

    ssrc: int
    name: str
    value: str | None = None

    @classmethod
    def parse(cls, value: str) -> Self:
        ssrc_text, _, rest = value.strip().partition(" ")
        ssrc = parse_uint(ssrc_text, "a=ssrc id", maximum=_U32_MAX)
        name, sep, val = rest.strip().partition(":")
        if not is_token(name):
            raise _bad("ssrc", value)
        return cls(ssrc, name, val if sep else None)

    def __str__(self) -> str:
        return f"{self.ssrc} {self.name}" + (f":{self.value}" if self.value is not None else "")


@dataclass(frozen=True, slots=True)
class SsrcGroup:
    """``a=ssrc-group:<semantics> <ssrc-id>...`` (RFC 5576 §4.2), e.g. ``FID``."""

    semantics: str
    ssrcs: tuple[int, ...]

    @classmethod
    def parse(cls, value: str) -> Self:
        f = value.split()
        if not f or not is_token(f[0]):
            raise _bad("ssrc-group", value)
        return cls(f[0], tuple(parse_uint(s, "a=ssrc-group id", maximum=_U32_MAX) for s in f[1:]))

    def __str__(self) -> str:
        return " ".join([self.semantics, *map(str, self.ssrcs)])


@dataclass(frozen=True, slots=True)
class Msid:
    """``a=msid:<stream id> [<track id>]`` (RFC 8830 §2)."""

    stream_id: str
    track_id: str | None = None

    @classmethod
    def parse(cls, value: str) -> Self:
        f = value.split()
        if not 1 <= len(f) <= 2:
            raise _bad("msid", value)
        return cls(f[0], f[1] if len(f) == 2 else None)

    def __str__(self) -> str:
        return self.stream_id if self.track_id is None else f"{self.stream_id} {self.track_id}"


@dataclass(frozen=True, slots=True)
class ExtMap:
    """``a=extmap:<id>[/<direction>] <URI> [<extension attributes>]`` (RFC 8285 §8)."""

    id: int
    uri: str
    direction: Direction | None = None
    attributes: str | None = None

    @classmethod
    def parse(cls, value: str) -> Self:
        f = value.split(None, 2)
        if len(f) < 2:
            raise _bad("extmap", value)
        id_text, slash, dir_text = f[0].partition("/")
        ext_id = parse_uint(id_text, "a=extmap id", maximum=4095)
        direction: Direction | None = None
        if slash:
            if dir_text not in DIRECTION_NAMES:
                raise _bad("extmap", value)
            direction = Direction(dir_text)
        return cls(ext_id, f[1], direction, f[2] if len(f) == 3 else None)

    def __str__(self) -> str:
        head = str(self.id) if self.direction is None else f"{self.id}/{self.direction.value}"
        return f"{head} {self.uri}" + (f" {self.attributes}" if self.attributes is not None else "")


@dataclass(frozen=True, slots=True)
class Group:
    """``a=group:<semantics> <mid>...`` (RFC 5888 §5); ``BUNDLE`` per RFC 8843."""

    semantics: str
    mids: tuple[str, ...]

    @classmethod
    def parse(cls, value: str) -> Self:
        f = value.split()
        if not f or not is_token(f[0]):
            raise _bad("group", value)
        return cls(f[0], tuple(f[1:]))

    def __str__(self) -> str:
        return " ".join([self.semantics, *self.mids])


@dataclass(frozen=True, slots=True)
class RtcpFeedback:
    """``a=rtcp-fb:<pt|*> <type> [<parameter>]`` (RFC 4585 §4.2), e.g. ``nack pli``."""

    payload_type: int | None
    type: str
    parameter: str | None = None

    @classmethod
    def parse(cls, value: str) -> Self:
        f = value.split(None, 2)
        if len(f) < 2 or not is_token(f[1]):
            raise _bad("rtcp-fb", value)
        pt = None if f[0] == "*" else parse_uint(f[0], "a=rtcp-fb payload type", maximum=127)
        return cls(pt, f[1], f[2] if len(f) == 3 else None)

    def __str__(self) -> str:
        head = "*" if self.payload_type is None else str(self.payload_type)
        return f"{head} {self.type}" + (f" {self.parameter}" if self.parameter is not None else "")


def parse_ptime(value: str, what: str = "ptime") -> float:
    """``a=ptime`` / ``a=maxptime`` in milliseconds; decimals allowed (RFC 8866 §6.4)."""
    text = value.strip()
    whole, dot, frac = text.partition(".")
    if not is_digits(whole) or (dot and not is_digits(frac)) or len(text) > 12:
        raise _bad(what, value)
    return float(text)
