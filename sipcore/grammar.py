"""RFC 3261 §25 grammar pieces as compiled regular expressions.

Only what the parsers need; each pattern quotes the ABNF it implements.
"""

from __future__ import annotations

import re

__all__ = [
    "COMPACT_FORMS",
    "LIST_HEADERS",
    "SINGLETON_HEADERS",
    "TOKEN_RE",
    "canonical_name",
    "is_token",
    "split_list",
    "unquote",
]

# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
TOKEN_CHARS = r"A-Za-z0-9\-.!%*_+`'~"
TOKEN_RE = re.compile(rf"[{TOKEN_CHARS}]+")
# Method = token; Status-Code = 3DIGIT
METHOD_RE = re.compile(rf"[{TOKEN_CHARS}]+")
STATUS_RE = re.compile(r"[1-9][0-9]{2}")
# SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT
VERSION_RE = re.compile(r"SIP/[0-9]+\.[0-9]+", re.IGNORECASE)
# hostname / IPv4address / "[" IPv6address "]" (the IPv6 part is checked liberally: RFC 5118 §4.10)
HOST_RE = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-.]+)")
PORT_RE = re.compile(r"[0-9]{1,5}")
# scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")

# RFC 3261 §7.3.3 and IANA: compact form -> full (lower-case) name
COMPACT_FORMS: dict[str, str] = {
    "a": "accept-contact",
    "b": "referred-by",
    "c": "content-type",
    "d": "request-disposition",
    "e": "content-encoding",
    "f": "from",
    "i": "call-id",
    "j": "reject-contact",
    "k": "supported",
    "l": "content-length",
    "m": "contact",
    "n": "identity-info",
    "o": "event",
    "r": "refer-to",
    "s": "subject",
    "t": "to",
    "u": "allow-events",
    "v": "via",
    "x": "session-expires",
    "y": "identity",
}

# Headers whose values may be comma-separated lists (RFC 3261 §7.3.1): one field may hold
# several values. Authentication headers and Date are NOT lists even though they contain commas.
LIST_HEADERS = frozenset(
    {
        "via", "contact", "route", "record-route", "path", "service-route", "allow", "supported",
        "require", "proxy-require", "unsupported", "accept", "accept-encoding", "accept-language",
        "content-encoding", "allow-events", "in-reply-to", "reason", "p-asserted-identity",
        "p-preferred-identity", "alert-info", "call-info", "error-info", "security-client",
        "security-server", "security-verify", "history-info", "accept-contact", "reject-contact",
    }
)

# Headers that must appear at most once in a request (RFC 3261 §20; RFC 4475 §3.1.2.19).
SINGLETON_HEADERS = ("call-id", "from", "to", "cseq", "max-forwards", "content-length", "content-type")

_canonical_cache: dict[str, str | None] = {}


def is_token(text: str) -> bool:
    return TOKEN_RE.fullmatch(text) is not None


def canonical_name(name: str) -> str | None:
    """Lower-case full header name for ``name`` (compact forms expanded), or None if not a token."""
    hit = _canonical_cache.get(name)
    if hit is not None or name in _canonical_cache:
        return hit
    if TOKEN_RE.fullmatch(name) is None:
        result: str | None = None
    else:
        low = name.lower()
        result = COMPACT_FORMS.get(low, low)
    if len(_canonical_cache) < 4096:
        _canonical_cache[name] = result
    return result


def split_list(value: str) -> list[str]:
    """Split a header value at top-level commas (not inside quotes or <...>), stripping LWS.

    Empty elements are kept as "" so that callers can reject ``a,,b`` (RFC 4475 §3.1.2.1).
    """
    if "," not in value:
        return [value.strip()]
    out: list[str] = []
    depth = 0
    in_quote = False
    start = 0
    i = 0
    n = len(value)
    while i < n:
        ch = value[i]
        if in_quote:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_quote = False
        elif ch == '"':
            in_quote = True
        elif ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            out.append(value[start:i].strip())
            start = i + 1
        i += 1
    out.append(value[start:].strip())
    return out


def unquote(text: str) -> str:
    """Strip the quotes of a quoted-string and resolve quoted-pairs (RFC 3261 §25.1)."""
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        inner = text[1:-1]
        if "\\" not in inner:
            return inner
        out = []
        i = 0
        while i < len(inner):
            if inner[i] == "\\" and i + 1 < len(inner):
                i += 1
            out.append(inner[i])
            i += 1
        return "".join(out)
    return text
