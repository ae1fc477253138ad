"""Typed views of the extension headers the signalling layer uses.

* WWW-Authenticate / Proxy-Authenticate challenges and (Proxy-)Authorization credentials
  (RFC 3261 §22.4, §25.1; RFC 7616 §3.3-§3.4): ``scheme`` plus an ordered auth-param list
  (quoted values unquoted), comma-separated with quotes respected.
* Reason (RFC 3326): protocol, cause, text.
* Event (RFC 6665 §8.2.1) and Subscription-State (§8.2.3).
* Replaces (RFC 3891 §6.1): call-id, to-tag, from-tag, early-only.
* Session-Expires / Min-SE (RFC 4028 §4, §5): delta-seconds and refresher.
* RSeq / RAck (RFC 3262 §7.1, §7.2).

Each ``parse_x`` raises :class:`SipParseError` (400) on malformed input; ``str()`` formats back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import SipParseError
from .grammar import TOKEN_RE, split_list, unquote
from .header_types import Params, format_header_params, get_param, parse_bounded_int, parse_header_params

__all__ = [
    "AuthChallenge",
    "AuthCredentials",
    "Event",
    "RAck",
    "Reason",
    "Replaces",
    "SessionExpires",
    "SubscriptionState",
    "parse_auth",
    "parse_event",
    "parse_rack",
    "parse_reason",
    "parse_replaces",
    "parse_session_expires",
    "parse_subscription_state",
]


def _digits(text: str) -> bool:
    """ASCII digits only (str.isdigit also accepts superscripts and other scripts)."""
    return text.isascii() and text.isdigit()

_AUTH_PARAM_RE = re.compile(r'\s*([A-Za-z0-9\-.!%*_+`\'~]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,"]+)\s*(?:,|$)', re.DOTALL)
_UNQUOTED_AUTH = frozenset({"algorithm", "qop", "nc", "stale", "charset", "userhash"})


@dataclass(slots=True)
class AuthChallenge:
    """``Digest realm="x", nonce="y", ...``; also used for credentials (same syntax)."""

    scheme: str
    params: list[tuple[str, str]] = field(default_factory=list)

    def get(self, name: str, default: str | None = None) -> str | None:
        low = name.lower()
        for k, v in self.params:
            if k.lower() == low:
                return v
        return default

    def __str__(self) -> str:
        # RFC 7616 §3.3/§3.4: these are tokens; qop is a quoted list in a challenge, a token in credentials
        credentials = self.get("response") is not None
        parts = []
        for k, v in self.params:
            low = k.lower()
            bare = low in _UNQUOTED_AUTH and (low != "qop" or credentials) and TOKEN_RE.fullmatch(v) is not None
            parts.append(f"{k}={v}" if bare else f'{k}="' + v.replace("\\", "\\\\").replace('"', '\\"') + '"')
        return f"{self.scheme} " + ", ".join(parts)


AuthCredentials = AuthChallenge


def parse_auth(value: str, *, header: str = "www-authenticate") -> AuthChallenge:
    """Parse a challenge or credentials value (one scheme)."""
    value = value.strip()
    scheme, _, rest = value.partition(" ")
    if TOKEN_RE.fullmatch(scheme) is None:
        raise SipParseError(f"bad auth scheme in {value!r}", header=header)
    params: list[tuple[str, str]] = []
    pos = 0
    rest = rest.strip()
    while pos < len(rest):
        m = _AUTH_PARAM_RE.match(rest, pos)
        if m is None or m.end() == pos:
            raise SipParseError(f"malformed auth-param at {rest[pos:pos + 30]!r}", header=header)
        params.append((m.group(1), unquote(m.group(2))))
        pos = m.end()
    return AuthChallenge(scheme, params)


@dataclass(slots=True, frozen=True)
class Reason:
    protocol: str
    cause: int | None
    text: str | None

    def __str__(self) -> str:
        out = self.protocol
        if self.cause is not None:
            out += f";cause={self.cause}"
        if self.text is not None:
            out += ';text="' + self.text.replace('"', '\\"') + '"'
        return out


def parse_reason(value: str) -> list[Reason]:
    """``SIP ;cause=200 ;text="Call completed elsewhere"`` (list header)."""
    out = []
    for item in split_list(value):
        proto, semi, ptext = item.partition(";")
        proto = proto.strip()
        if TOKEN_RE.fullmatch(proto) is None:
            raise SipParseError(f"bad Reason protocol {item!r}", header="reason")
        params = parse_header_params(ptext, what="reason") if semi else []
        cause_s = get_param(params, "cause")
        text = get_param(params, "text")
        out.append(Reason(proto, parse_bounded_int(cause_s, "reason") if cause_s is not None else None,
                          unquote(text) if text is not None else None))
    return out


@dataclass(slots=True)
class Event:
    package: str
    params: Params = field(default_factory=list)

    @property
    def id(self) -> str | None:
        return get_param(self.params, "id")

    def __str__(self) -> str:
        return self.package + format_header_params(self.params)


def parse_event(value: str) -> Event:
    pkg, semi, ptext = value.partition(";")
    pkg = pkg.strip()
    if TOKEN_RE.fullmatch(pkg) is None:
        raise SipParseError(f"bad Event package {value!r}", header="event")
    return Event(pkg, parse_header_params(ptext, what="event") if semi else [])


@dataclass(slots=True)
class SubscriptionState:
    state: str
    params: Params = field(default_factory=list)

    @property
    def expires(self) -> int | None:
        v = get_param(self.params, "expires")
        return int(v) if v is not None and _digits(v) else None

    @property
    def reason(self) -> str | None:
        return get_param(self.params, "reason")

    @property
    def retry_after(self) -> int | None:
        v = get_param(self.params, "retry-after")
        return int(v) if v is not None and _digits(v) else None

    def __str__(self) -> str:
        return self.state + format_header_params(self.params)


def parse_subscription_state(value: str) -> SubscriptionState:
    state, semi, ptext = value.partition(";")
    state = state.strip()
    if TOKEN_RE.fullmatch(state) is None:
        raise SipParseError(f"bad Subscription-State {value!r}", header="subscription-state")
    params = parse_header_params(ptext, what="subscription-state") if semi else []
    for name in ("expires", "retry-after"):
        v = get_param(params, name)
        if v is not None:
            parse_bounded_int(v, "subscription-state")
    return SubscriptionState(state.lower(), params)


@dataclass(slots=True, frozen=True)
class Replaces:
    call_id: str
    to_tag: str
    from_tag: str
    early_only: bool = False

    def __str__(self) -> str:
        out = f"{self.call_id};to-tag={self.to_tag};from-tag={self.from_tag}"
        return out + (";early-only" if self.early_only else "")


def parse_replaces(value: str) -> Replaces:
    cid, semi, ptext = value.partition(";")
    cid = cid.strip()
    if not cid or not semi:
        raise SipParseError(f"malformed Replaces {value!r}", header="replaces")
    params = parse_header_params(ptext, what="replaces")
    to_tag = get_param(params, "to-tag")
    from_tag = get_param(params, "from-tag")
    if to_tag is None or from_tag is None:
        raise SipParseError("Replaces needs to-tag and from-tag (RFC 3891 §6.1)", header="replaces")
    early = any(k.lower() == "early-only" for k, _ in params)
    return Replaces(cid, to_tag, from_tag, early)


@dataclass(slots=True, frozen=True)
class SessionExpires:
    seconds: int
    refresher: str | None = None

    def __str__(self) -> str:
        return f"{self.seconds}" + (f";refresher={self.refresher}" if self.refresher else "")


def parse_session_expires(value: str) -> SessionExpires:
    secs, semi, ptext = value.partition(";")
    params = parse_header_params(ptext, what="session-expires") if semi else []
    refresher = get_param(params, "refresher")
    if refresher is not None and refresher.lower() not in ("uac", "uas"):
        raise SipParseError(f"bad refresher {refresher!r}", header="session-expires")
    return SessionExpires(parse_bounded_int(secs, "session-expires"), refresher.lower() if refresher else None)


@dataclass(slots=True, frozen=True)
class RAck:
    rseq: int
    cseq: int
    method: str

    def __str__(self) -> str:
        return f"{self.rseq} {self.cseq} {self.method}"


def parse_rack(value: str) -> RAck:
    parts = value.split()
    if len(parts) != 3 or TOKEN_RE.fullmatch(parts[2]) is None:
        raise SipParseError(f"malformed RAck {value!r}", header="rack")
    return RAck(parse_bounded_int(parts[0], "rack"), parse_bounded_int(parts[1], "rack"), parts[2])
