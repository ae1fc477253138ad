"""Call transfer pieces, sans-IO: REFER (RFC 3515), message/sipfrag (RFC 3420), Replaces (RFC 3891).

* :func:`refer_to_value` / :func:`parse_refer_to`: the Refer-To header, with a Replaces
  embedded as a URI header (``<sip:bob@b?Replaces=call%3Bto-tag%3D1%3Bfrom-tag%3D2>``) for an
  attended transfer, and the other way round.
* :func:`sipfrag` / :func:`parse_sipfrag`: the NOTIFY bodies of the implicit subscription
  (``SIP/2.0 180 Ringing``).
* :class:`ReferNotifier`: the transferee's side of the implicit ``refer`` subscription (RFC 3515
  §2.4.4): one NOTIFY per progress report, ``Event: refer;id=<REFER CSeq>``, active until a final
  status, then ``terminated;reason=noresource``.
* :class:`ReferWatcher`: the transferor's side: which NOTIFYs belong to its REFER, the status
  each reports, and when the transfer is over.
* :func:`check_replaces`: what a UAS does with an INVITE whose Replaces names one of its
  dialogs (RFC 3891 §3): accept, or 481 / 486 / 603.

Implicit subscription of one REFER (transferor view)::

      REFER ── 202 ──▶ WAITING ── NOTIFY 100/1xx (active) ──▶ PROGRESS ── NOTIFY 2xx-6xx ──▶ DONE
                  └── 3xx-6xx to the REFER ─────────────────────────────────────────────────▶ DONE
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote

from .dialog import DialogState
from .errors import LocalProtocolError, SipParseError
from .header_extra import (
    Event,
    Replaces,
    SubscriptionState,
    parse_event,
    parse_replaces,
    parse_subscription_state,
)
from .header_types import NameAddr, parse_name_addr
from .message import REASON_PHRASES, SipRequest
from .uri import SipUri

__all__ = [
    "ReferNotifier",
    "ReferProgress",
    "ReferTarget",
    "ReferWatcher",
    "check_replaces",
    "parse_refer_to",
    "parse_sipfrag",
    "refer_to_value",
    "referred_by",
    "sipfrag",
]

_SIPFRAG_RE = re.compile(r"SIP/2\.0 ([1-6][0-9]{2})(?: (.*))?")


def sipfrag(status: int, reason: str | None = None) -> bytes:
    """The status-line sipfrag a REFER NOTIFY carries (RFC 3515 §2.4.5)."""
    if not 100 <= status <= 699:
        raise LocalProtocolError(f"bad status {status}")
    text = reason if reason is not None else REASON_PHRASES.get(status, "")
    if "\r" in text or "\n" in text:
        raise LocalProtocolError("reason phrase with a line break")
    return f"SIP/2.0 {status} {text}\r\n".encode()


def parse_sipfrag(body: bytes) -> tuple[int, str]:
    """Status code and reason of a message/sipfrag body that starts with a status line."""
    first = body.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", "replace")
    m = _SIPFRAG_RE.fullmatch(first)
    if m is None:
        raise SipParseError(f"not a status-line sipfrag: {first[:60]!r}")
    return int(m.group(1)), m.group(2) or ""


def refer_to_value(target: str, replaces: Replaces | None = None) -> str:
    """Refer-To for ``target`` (a SIP URI), with an embedded Replaces for attended transfer."""
    if replaces is None:
        return f"<{target}>"
    sep = "&" if "?" in target else "?"
    return f"<{target}{sep}Replaces={quote(str(replaces), safe='')}>"


@dataclass(frozen=True, slots=True)
class ReferTarget:
    """A parsed Refer-To: where to send the INVITE and what to put in it."""

    uri: str
    """The target without URI headers (the INVITE's Request-URI)."""
    replaces: Replaces | None
    headers: tuple[tuple[str, str], ...]
    """Other embedded headers, to copy into the INVITE (RFC 3515 §2.1)."""


_ALLOWED_EMBEDDED = frozenset({"replaces", "accept-contact", "require", "subject", "priority", "referred-by"})


def parse_refer_to(value: str) -> ReferTarget:
    """Parse a Refer-To value; raises SipParseError (400) when malformed."""
    na = parse_name_addr(value, header="refer-to")
    uri = na.uri
    if not isinstance(uri, SipUri):
        raise SipParseError("Refer-To is not a SIP URI", header="refer-to")
    text = str(uri)
    base, _, query = text.partition("?")
    replaces: Replaces | None = None
    headers: list[tuple[str, str]] = []
    if query:
        for item in query.split("&"):
            name, eq, raw = item.partition("=")
            if not eq:
                continue
            hname, hvalue = unquote(name), unquote(raw)
            if hname.lower() == "replaces":
                replaces = parse_replaces(hvalue)
            elif hname.lower() in _ALLOWED_EMBEDDED:
                headers.append((hname, hvalue))
    return ReferTarget(base, replaces, tuple(headers))


def check_replaces(state: DialogState | None, *, early_only: bool, initiated_by_us: bool) -> int | None:
    """RFC 3891 §3: None to accept the replacing INVITE, else the status to reject it with.

    ``state`` is the matched dialog's (None: no dialog matched). An early dialog can be replaced
    only when we initiated it (our outgoing call still ringing); ``early-only`` refuses a
    confirmed dialog with 486.
    """
    if state is None:
        return 481
    if state is DialogState.TERMINATED:
        return 603
    if state is DialogState.EARLY:
        return None if initiated_by_us else 481
    return 486 if early_only else None


class ReferNotifier:
    """The transferee's implicit subscription for one REFER (RFC 3515 §2.4.4)."""

    def __init__(self, refer: SipRequest) -> None:
        if refer.method != "REFER":
            raise LocalProtocolError("a ReferNotifier answers a REFER")
        self.refer = refer
        self.event = Event("refer", [("id", str(refer.cseq.seq))])
        self.last_status: int | None = None
        self.done = False

    def progress(self, status: int, reason: str | None = None) -> tuple[list[tuple[str, str]], bytes]:
        """Headers and sipfrag body of the NOTIFY reporting ``status``; a final status ends it."""
        if self.done:
            raise LocalProtocolError("the refer subscription is already terminated")
        self.last_status = status
        if status >= 200:
            self.done = True
            ss = SubscriptionState("terminated", [("reason", "noresource")])
        else:
            ss = SubscriptionState("active", [("expires", "60")])
        return [("Event", str(self.event)), ("Subscription-State", str(ss))], sipfrag(status, reason)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReferProgress:
    status: int
    reason: str
    final: bool


class ReferWatcher:
    """The transferor's view of one REFER's implicit subscription."""

    def __init__(self, refer: SipRequest) -> None:
        self.refer = refer
        self.event = Event("refer", [("id", str(refer.cseq.seq))])
        self.statuses: list[int] = []
        self.done = False
        self.accepted: bool | None = None
        """True after a 2xx to the REFER, False after a failure, None before."""

    def receive_response(self, status: int) -> None:
        if status < 200:
            return
        self.accepted = status < 300
        if status >= 300:
            self.done = True

    def matches(self, notify: SipRequest) -> bool:
        try:
            value = notify.headers.get("event")
            event = parse_event(value) if value is not None else None
        except SipParseError:
            return False
        if event is None or event.package.lower() != "refer":
            return False
        # RFC 3515 §2.4.6: the id may be missing when only one REFER is outstanding
        return event.id is None or event.id == str(self.refer.cseq.seq)

    def receive_notify(self, notify: SipRequest) -> tuple[int, ReferProgress | None]:
        """Status to answer the NOTIFY with, and the progress it reports."""
        try:
            raw = notify.headers.get("subscription-state")
            state = parse_subscription_state(raw) if raw is not None else None
            ct = notify.content_type
        except SipParseError:
            return 400, None
        if state is None:
            return 400, None
        if ct is None or ct.mime != "message/sipfrag":
            return 415, None
        try:
            status, reason = parse_sipfrag(notify.body)
        except SipParseError:
            return 400, None
        self.statuses.append(status)
        final = status >= 200 or state.state == "terminated"
        if final:
            self.done = True
        return 200, ReferProgress(status=status, reason=reason, final=final)


def referred_by(identity: NameAddr | str) -> tuple[str, str]:
    """A Referred-By header (RFC 3892) naming the transferor."""
    return ("Referred-By", str(identity))
