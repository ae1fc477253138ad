"""``python -m sipcore parse FILE|-``: show a SIP message as the stack sees it.

Prints the start line, every header with its typed view (Via branch/received/rport,
name-addr display name/URI/tag, CSeq, ...), the body, and the verdict of the strict
parser and of the UAS sanity check with the status a server would answer. A teaching and
debugging tool: paste a message from a trace and see what is wrong with it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from .errors import SipParseError
from .header_extra import parse_auth, parse_event, parse_rack, parse_reason, parse_session_expires
from .header_extra import parse_subscription_state as parse_sub_state
from .header_types import parse_content_type, parse_cseq, parse_name_addr, parse_via
from .message import REASON_PHRASES, SipRequest, parse_message
from .sanity import sanity_check

_VIEWS: dict[str, Callable[[str], Any]] = {
    "via": parse_via,
    "from": lambda v: parse_name_addr(v, header="from"),
    "to": lambda v: parse_name_addr(v, header="to"),
    "contact": lambda v: parse_name_addr(v, header="contact"),
    "route": lambda v: parse_name_addr(v, header="route"),
    "record-route": lambda v: parse_name_addr(v, header="record-route"),
    "refer-to": lambda v: parse_name_addr(v, header="refer-to"),
    "cseq": parse_cseq,
    "content-type": parse_content_type,
    "www-authenticate": parse_auth,
    "proxy-authenticate": parse_auth,
    "authorization": parse_auth,
    "proxy-authorization": parse_auth,
    "reason": parse_reason,
    "event": parse_event,
    "subscription-state": parse_sub_state,
    "session-expires": parse_session_expires,
    "rack": parse_rack,
}


def describe(data: bytes, *, role: str = "endpoint") -> tuple[str, int]:
    """Text report and exit status (0 ok, 1 must be rejected, 2 unparseable)."""
    out: list[str] = []
    try:
        msg = parse_message(data)
    except SipParseError as exc:
        return f"parse error: {exc}\nstatus hint: {exc.status_hint} {REASON_PHRASES.get(exc.status_hint, '')}\n", 2
    if isinstance(msg, SipRequest):
        out.append(f"request  {msg.method} {msg.uri_text} {msg.version}")
    else:
        out.append(f"response {msg.version} {msg.status_code} {msg.reason}")
    for (name, value), key in zip(msg.headers, msg.headers.keys(), strict=True):
        out.append(f"  {name}: {value}")
        view = _VIEWS.get(key)
        if view is None:
            continue
        items = msg.headers.values(key) if key in ("via", "contact", "route", "record-route") else [value]
        for item in items:
            try:
                out.append(f"      -> {view(item)!r}")
            except SipParseError as exc:
                out.append(f"      !! {exc}")
    out.append(f"body: {len(msg.body)} bytes")
    for part in msg.parts() if msg.content_type is not None else []:
        out.append(f"  part {part.content_type}: {len(part.body)} bytes")
    status = 0
    try:
        msg.validate()
        out.append("strict parse: ok")
    except SipParseError as exc:
        out.append(f"strict parse: {exc} (status hint {exc.status_hint})")
        status = 1
    if isinstance(msg, SipRequest) and status == 0:
        try:
            sanity_check(msg, role=role)  # type: ignore[arg-type]
            out.append(f"sanity check ({role}): ok")
        except SipParseError as exc:
            out.append(f"sanity check ({role}): answer {exc.status_hint} "
                       f"{REASON_PHRASES.get(exc.status_hint, '')}: {exc}")
            status = 1
    return "\n".join(out) + "\n", status


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sipcore", description="SIP message tools")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("parse", help="parse a message and show its typed views and verdict")
    p.add_argument("file", help="file with one SIP message, or - for stdin")
    p.add_argument("--role", choices=["endpoint", "registrar", "proxy"], default="endpoint")
    args = ap.parse_args(argv)
    data = sys.stdin.buffer.read() if args.file == "-" else open(args.file, "rb").read()
    text, status = describe(data, role=args.role)
    sys.stdout.write(text)
    return status
