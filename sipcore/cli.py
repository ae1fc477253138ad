"""``python -m sipcore``: a sipsak-like SIP command-line tool built on the stack's own pieces.

Subcommands::

    parse FILE|-                  show a message as the stack sees it: start line, every header with
                                  its typed view, the strict parser's and the UAS sanity check's verdict
    options URI                   OPTIONS (RFC 3261 §11); prints the final response: status, Allow,
                                  Supported, User-Agent/Server, round-trip time
    register URI --password P     REGISTER with digest authentication (§10.2, §22); prints the granted
                                  expiry and every binding the registrar lists; --unregister removes the
                                  --contact binding (``expires=0``), or every binding (``Contact: *``,
                                  §10.2.2): a new run has a new socket, so "ours" is gone
    send FILE --to TARGET         sends a raw message from a file (LF line ends become CRLF); a request
                                  without Via gets ours with a fresh branch (§8.1.1.7) and runs in a
                                  client transaction; prints every response

``--proxy``/``--to`` take ``[udp|tcp|tls|ws|wss:]HOST[:PORT]`` or a SIP URI. Without ``--proxy``
the request goes where its URI points (RFC 3263 reduced to A/AAAA: transport parameter, host,
port). ``--trace`` adds a message ladder (:mod:`sipcore.ladder`) of everything sent and received.

Exit status (one line on stderr explains every failure)::

    0  success (2xx)                       3  authentication failed (401/407, wrong password)
    1  parse: the message must be rejected 4  timeout, unreachable or unresolvable peer
    2  usage error or unusable input file  5  any other final error response

The network commands drive :class:`~sipcore.aiostack.AioSipEndpoint` (transactions,
retransmissions), :class:`~sipcore.aioua.UserAgent` (OPTIONS with digest retry) and the sans-IO
:class:`~sipcore.registration.RegistrationClient` (REGISTER, 401/407, 423, unregister).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import socket
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar

from .aiostack import AioSipEndpoint
from .aioua import UserAgent
from .auth import AuthenticationFailed
from .errors import LocalProtocolError, SipError, SipParseError
from .header_extra import parse_auth, parse_event, parse_rack, parse_reason, parse_session_expires
from .header_extra import parse_subscription_state as parse_sub_state
from .header_types import parse_content_type, parse_cseq, parse_name_addr, parse_via
from .ladder import render_ladder
from .message import REASON_PHRASES, SipRequest, SipResponse, parse_message
from .registration import (
    Registered,
    RegistrationClient,
    RegistrationEvent,
    Unregistered,
)
from .sanity import sanity_check
from .stack import StrayResponse, Target
from .uri import SipUri, parse_uri

__all__ = [
    "EXIT_AUTH",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_TIMEOUT",
    "EXIT_USAGE",
    "CliError",
    "amain",
    "describe",
    "main",
    "parse_target",
    "run_registration",
]

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_TIMEOUT = 4
EXIT_FAILED = 5

USER_AGENT = "pyvoice-stack sipcore-cli"
TRANSPORTS = ("udp", "tcp", "tls", "ws", "wss")
DEFAULT_PORTS = {"udp": 5060, "tcp": 5060, "tls": 5061, "ws": 80, "wss": 443}
_T = TypeVar("_T")


class CliError(Exception):
    """A failure to report in one line on stderr with exit status ``code``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


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


# -- the parse subcommand ----------------------------------------------------------------------------
def _read_input(name: str) -> bytes:
    try:
        return sys.stdin.buffer.read() if name == "-" else open(name, "rb").read()
    except OSError as exc:
        raise CliError(EXIT_USAGE, f"cannot read {name}: {exc.strerror or exc}") from None


def _cmd_parse(args: argparse.Namespace) -> int:
    text, status = describe(_read_input(args.file), role=args.role)
    sys.stdout.write(text)
    return status


# -- targets -----------------------------------------------------------------------------------------
def parse_target(spec: str) -> Target:
    """``[udp|tcp|tls|ws|wss:]HOST[:PORT]`` (``[v6]`` in brackets) or a SIP URI, as a Target.

    The host is not resolved here; the port defaults per transport (5060, 5061, 80, 443).
    """
    text = spec.strip()
    if text.lower().startswith(("sip:", "sips:")):
        return target_for_uri(text)
    transport = "udp"
    head, sep, rest = text.partition(":")
    if sep and head.lower() in TRANSPORTS:
        transport, text = head.lower(), rest
    port_text = ""
    if text.startswith("["):
        host, bracket, tail = text[1:].partition("]")
        if not bracket or (tail and not tail.startswith(":")):
            raise CliError(EXIT_USAGE, f"bad target {spec!r}: expected [IPv6]:PORT")
        port_text = tail[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host = text  # a name, IPv4, or a bare IPv6 literal without port
    if not host or any(c in host for c in " /@;"):
        raise CliError(EXIT_USAGE, f"bad target {spec!r}: expected [transport:]host[:port]")
    port = DEFAULT_PORTS[transport]
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise CliError(EXIT_USAGE, f"bad target {spec!r}: port must be 1-65535")
        port = int(port_text)
    return Target(transport, host, port)


def target_for_uri(text: str) -> Target:
    """Where a request for ``text`` goes without a proxy (RFC 3263 §4 without NAPTR/SRV)."""
    uri = _sip_uri(text)
    transport = uri.transport or ("tls" if uri.secure else "udp")
    if transport not in TRANSPORTS:
        raise CliError(EXIT_USAGE, f"unsupported transport {transport!r} in {text!r}")
    host = (uri.param("maddr") or uri.host).strip("[]")
    return Target(transport, host, uri.port or DEFAULT_PORTS[transport])


def _sip_uri(text: str) -> SipUri:
    try:
        uri = parse_uri(text)
    except SipParseError as exc:
        raise CliError(EXIT_USAGE, f"bad URI {text!r}: {exc}") from None
    if not isinstance(uri, SipUri):
        raise CliError(EXIT_USAGE, f"{text!r} is not a sip: or sips: URI")
    return uri


def _host_literal(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def _resolve(target: Target) -> tuple[Target, str]:
    """The target with its host resolved (kept as a name for TLS, for certificate checks), and its IP."""
    try:
        return target, str(ipaddress.ip_address(target.host))
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise CliError(EXIT_TIMEOUT, f"cannot resolve {target.host!r}: {getattr(exc, 'strerror', None) or exc}") from None
    ip = str(infos[0][4][0])
    if target.transport in ("tls", "wss"):
        return target, ip
    return Target(target.transport, ip, target.port), ip


def _local_ip(remote_ip: str) -> str:
    """The address this host uses to reach ``remote_ip`` (loopback stays on loopback)."""
    ip = ipaddress.ip_address(remote_ip)
    if ip.is_loopback:
        return "::1" if ip.version == 6 else "127.0.0.1"
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.connect((remote_ip, 9))  # no packet is sent: this only asks the routing table
            return str(s.getsockname()[0])
        except OSError:
            return "::" if ip.version == 6 else "0.0.0.0"


# -- one network run --------------------------------------------------------------------------------
class _Capture(logging.Handler):
    """Keeps the stack's warnings (transport errors) for the one-line diagnosis instead of printing them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


class _Session:
    """An endpoint bound next to the target, what came off the wire, and the failure diagnosis."""

    def __init__(self, target: Target, timeout: float) -> None:
        self.target = target
        self.timeout = timeout
        self.endpoint = AioSipEndpoint(user_agent=USER_AGENT)
        self.endpoint.on_trace = self._on_trace
        self.local_host = "127.0.0.1"
        self.wire_statuses: set[int] = set()
        """Status codes of responses that really arrived (the stack synthesises 408/503 itself)."""
        self.capture = _Capture()

    def _on_trace(self, direction: str, data: bytes, peer: Target) -> None:
        if direction == "in" and data.startswith(b"SIP/2.0 ") and data[8:11].isdigit():
            self.wire_statuses.add(int(data[8:11]))

    async def open(self) -> None:
        self.target, ip = await _resolve(self.target)
        self.local_host = _local_ip(ip)
        t = self.target.transport
        if t in ("ws", "wss"):  # RFC 7118 §5: Via and Contact carry a random .invalid host
            self.endpoint.stack.sent_by[t] = (f"{self.endpoint.stack.rng(6).hex()}.invalid", 0)
        try:
            if t in ("udp", "tcp"):
                await self.endpoint.listen(t, self.local_host, 0)
        except OSError as exc:
            raise CliError(EXIT_TIMEOUT, f"cannot open a {self.target.transport} socket on {self.local_host}: "
                           f"{exc.strerror or exc}") from None

    async def close(self) -> None:
        await self.endpoint.close()

    async def run(self, op: Awaitable[_T]) -> _T:
        """``op`` bounded by --timeout."""
        try:
            return await asyncio.wait_for(op, self.timeout)
        except TimeoutError:
            raise CliError(EXIT_TIMEOUT, f"no final response from {self.target} within {self.timeout:g} s") from None

    def contact_uri(self, user: str) -> str:
        t = self.target.transport
        if t in ("ws", "wss"):  # RFC 7118 §5: a WebSocket client is not reachable at an address
            return f"sip:{user}@{self.endpoint.stack.sent_by[t][0]};transport={t}"
        host, port = self.endpoint.transport.local_address(t)
        params = "" if t == "udp" else f";transport={t}"
        return f"sip:{user}@{_host_literal(host)}:{port}{params}"

    def failure(self, status: int, reason: str, what: str) -> CliError:
        """Why a request ended with ``status``: timeout / unreachable (4), auth (3), other (5)."""
        if status == 408 and status not in self.wire_statuses:
            return CliError(EXIT_TIMEOUT, f"no response from {self.target} to {what} (timeout)")
        if status == 503 and status not in self.wire_statuses:
            cause = self.capture.messages[-1] if self.capture.messages else "transport error"
            return CliError(EXIT_TIMEOUT, f"{self.target} unreachable: {cause}")
        if status in (401, 407):
            return CliError(EXIT_AUTH, f"authentication required: {what} got {status} {reason} (give --password)")
        return CliError(EXIT_FAILED, f"{what} failed: {status} {reason}")


@contextlib.contextmanager
def _quiet_stack(capture: _Capture) -> Iterator[None]:
    logger = logging.getLogger("sipcore")
    old = logger.propagate
    logger.addHandler(capture)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(capture)
        logger.propagate = old


_AUTH_CAUSES = {
    "credentials rejected (wrong username or password)": "wrong password (or unknown user): credentials rejected",
    "the server rejected the same nonce twice": "wrong password (or unknown user): the same nonce was rejected twice",
}


def _auth_failed(exc: AuthenticationFailed, user: str) -> CliError:
    cause = _AUTH_CAUSES.get(exc.cause, exc.cause)
    realm = f" in realm {exc.realm!r}" if exc.realm else ""
    return CliError(EXIT_AUTH, f"authentication failed for user {user!r}{realm}: {cause} ({exc.status})")


def _print_response(resp: SipResponse, source: Target, rtt: float | None = None) -> None:
    took = f" in {rtt * 1000:.1f} ms" if rtt is not None else ""
    print(f"{resp.status_code} {resp.reason} from {source}{took}")


# -- options -----------------------------------------------------------------------------------------
async def _cmd_options(args: argparse.Namespace, session: _Session) -> int:
    uri = _sip_uri(args.uri)
    user = args.user or "sipcore"
    creds = (user, args.password) if args.password is not None else None
    domain = uri.host if args.user else _host_literal(session.local_host)
    ua = UserAgent(session.endpoint, aor=f"sip:{user}@{domain}", outbound=session.target, credentials=creds)
    req = ua.new_request("OPTIONS", args.uri, headers=[("Accept", "application/sdp")])
    t0 = session.endpoint.now()
    try:
        resp = await session.run(ua.request(req, session.target))
    except AuthenticationFailed as exc:
        raise _auth_failed(exc, user) from None
    _print_response(resp, session.target, session.endpoint.now() - t0)
    h = resp.headers
    print(f"  Allow: {h.get('allow') or '-'}")
    print(f"  Supported: {h.get('supported') or '-'}")
    for name in ("User-Agent", "Server"):
        value = h.get(name)
        if value is not None:
            print(f"  {name}: {value}")
    if resp.status_code >= 300:
        raise session.failure(resp.status_code, resp.reason, "OPTIONS")
    return EXIT_OK


# -- register ----------------------------------------------------------------------------------------
async def run_registration(endpoint: AioSipEndpoint, client: RegistrationClient,
                           target: Target) -> list[RegistrationEvent]:
    """Send what ``client`` queued (after ``register()``/``unregister()``/``handle_timeout()``), one
    REGISTER at a time, until it reports an event (challenges are answered on the way)."""
    events: list[RegistrationEvent] = []
    while not events:
        pending = client.requests_to_send()
        if not pending:
            break
        for request in pending:
            response = await endpoint.request(request, target)
            client.receive_response(response, endpoint.now())
        events.extend(client.events())
    return events


async def _cmd_register(args: argparse.Namespace, session: _Session) -> int:
    aor = _sip_uri(args.uri)
    user = args.user or aor.user
    if not user:
        raise CliError(EXIT_USAGE, f"{args.uri} has no user part: give --user")
    contact = args.contact or session.contact_uri(aor.user or user)
    if args.contact:
        _sip_uri(args.contact)
    client = RegistrationClient(aor.aor, f"{aor.scheme}:{aor.host_port}", contact, expires=args.expires,
                                credentials=(user, args.password), user_agent=USER_AGENT)
    now = session.endpoint.now()
    if args.unregister:
        # a new run has a new socket: without --contact, remove every binding (RFC 3261 §10.2.2)
        client.unregister(now, all_bindings=args.contact is None)
    else:
        client.register(now)
    events = await session.run(run_registration(session.endpoint, client, session.target))
    if not events:
        raise CliError(EXIT_FAILED, "the registration ended without an answer")
    ev = events[0]
    if isinstance(ev, Registered):
        print(f"registered {aor.aor} at {session.target}: expires {ev.expires} s")
        print(f"  contact {contact}")
        for binding in ev.contacts:
            print(f"  binding {binding}")
        return EXIT_OK
    if isinstance(ev, Unregistered) and 200 <= ev.status < 300:
        which = f"binding {args.contact}" if args.contact else "all bindings (Contact: *)"
        print(f"unregistered {aor.aor} at {session.target}, {which}: {ev.status} {ev.reason}")
        return EXIT_OK
    status, reason = ev.status, ev.reason
    if status in (401, 407):
        cause = _AUTH_CAUSES.get(reason, f"{status} {reason}")
        raise CliError(EXIT_AUTH, f"authentication failed for user {user!r} at {session.target}: {cause}")
    raise session.failure(status, reason, "REGISTER")


# -- send --------------------------------------------------------------------------------------------
def _load_message(name: str) -> SipRequest | SipResponse:
    data = _read_input(name).lstrip(b"\r\n\t ")
    if b"\r\n" not in data:
        data = data.replace(b"\n", b"\r\n")  # a file written with an editor
    if b"\r\n\r\n" not in data:
        data = data.rstrip(b"\r\n") + b"\r\n\r\n"
    try:
        msg = parse_message(data)
        msg.call_id  # noqa: B018  (a message we can match responses to)
        cseq = msg.cseq
        msg.from_  # noqa: B018
        msg.to  # noqa: B018
    except SipParseError as exc:
        raise CliError(EXIT_USAGE, f"{name}: not a usable SIP message: {exc}") from None
    if isinstance(msg, SipRequest) and cseq.method != msg.method:
        raise CliError(EXIT_USAGE, f"{name}: CSeq method {cseq.method} does not match {msg.method}")
    return msg


async def _cmd_send(args: argparse.Namespace, session: _Session, msg: SipRequest | SipResponse) -> int:
    endpoint = session.endpoint
    target = session.target

    def show(resp: SipResponse, source: Target) -> None:
        print(f"<<< {resp.status_code} {resp.reason} from {source}")
        print(bytes(resp).decode("utf-8", "replace").rstrip("\r\n"))
        print()

    if isinstance(msg, SipResponse) or msg.method == "ACK":
        if isinstance(msg, SipRequest) and "via" not in msg.headers:
            endpoint.send_ack(msg, target)
        else:
            endpoint.send_stateless(msg, target)
        await session.run(_flush(endpoint))
        first = bytes(msg).split(b"\r\n", 1)[0].decode("utf-8", "replace")
        print(f">>> {first} sent to {target} (no response expected)")
        return EXIT_OK
    if "via" not in msg.headers:
        _, fut = endpoint.start_request(msg, target, on_provisional=lambda r: show(r, target))
        final = await session.run(fut)
    else:
        top = msg.top_via
        print(f"note: the request keeps its own Via ({top.host}:{top.port or 5060}); responses follow it")
        loop = asyncio.get_running_loop()
        done: asyncio.Future[SipResponse] = loop.create_future()
        cseq = msg.cseq

        def on_stray(ev: StrayResponse) -> None:
            r = ev.response
            try:
                ours = r.call_id == msg.call_id and r.cseq.seq == cseq.seq and r.cseq.method == cseq.method
            except SipParseError:
                return
            if not ours:
                return
            if r.status_code < 200:
                show(r, ev.source)
            elif not done.done():
                done.set_result(r)

        endpoint.on_stray_response = on_stray
        endpoint.send_stateless(msg, target)
        final = await session.run(done)
    if final.status_code < 300 or final.status_code not in (408, 503) or final.status_code in session.wire_statuses:
        show(final, target)
    if final.status_code >= 300:
        raise session.failure(final.status_code, final.reason, msg.method)
    return EXIT_OK


async def _flush(endpoint: AioSipEndpoint) -> None:
    """Wait until the endpoint's queued sends went out."""
    while endpoint._tasks:
        await asyncio.gather(*list(endpoint._tasks), return_exceptions=True)


# -- argument parsing and dispatch ------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line instead of usage + message
        raise CliError(EXIT_USAGE, f"{message} (see {self.prog} --help)")


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < 86400:
        raise argparse.ArgumentTypeError(f"must be between 0 and 86400 s: {text!r}")
    return value


def _expires(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 2**31:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    return int(text)


def _build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="python -m sipcore", description="SIP message tools (sipsak-like)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("parse", help="parse a message and show its typed views and verdict")
    p.add_argument("file", help="file with one SIP message, or - for stdin")
    p.add_argument("--role", choices=["endpoint", "registrar", "proxy"], default="endpoint")

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--timeout", type=_positive, default=5.0, metavar="S",
                        help="give up after S seconds (default 5)")
        sp.add_argument("--trace", action="store_true", help="print a message ladder at the end")

    p = sub.add_parser("options", help="send OPTIONS and show the peer's capabilities")
    p.add_argument("uri", help="Request-URI, e.g. sip:example.com or sip:bob@example.com")
    p.add_argument("--proxy", type=str, metavar="[TRANSPORT:]HOST:PORT", help="send via this hop")
    p.add_argument("--user", help="From user (and digest username)")
    p.add_argument("--password", help="answer 401/407 challenges with this password")
    common(p)
    p = sub.add_parser("register", help="REGISTER (digest authentication) and show the bindings")
    p.add_argument("uri", help="address of record, e.g. sip:alice@example.com")
    p.add_argument("--password", required=True)
    p.add_argument("--user", help="digest username (default: the user part of the URI)")
    p.add_argument("--expires", type=_expires, default=600, metavar="N", help="requested lifetime (default 600)")
    p.add_argument("--proxy", type=str, metavar="[TRANSPORT:]HOST:PORT", help="send via this hop")
    p.add_argument("--contact", metavar="URI", help="the binding to register or remove (default: this run's socket)")
    p.add_argument("--unregister", action="store_true",
                   help="remove the --contact binding (expires=0), or without --contact every binding (Contact: *)")
    common(p)
    p = sub.add_parser("send", help="send a raw SIP message from a file and print every response")
    p.add_argument("file", help="file with one SIP message (LF or CRLF line ends), or - for stdin")
    p.add_argument("--to", required=True, metavar="TARGET", help="[TRANSPORT:]HOST:PORT or a SIP URI")
    common(p)
    return ap


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace | int:
    try:
        return _build_parser().parse_args(argv)
    except CliError as exc:
        print(f"python -m sipcore: {exc.message}", file=sys.stderr)
        return exc.code
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else EXIT_OK


async def _network(args: argparse.Namespace) -> int:
    session: _Session | None = None
    try:
        msg = _load_message(args.file) if args.cmd == "send" else None
        if args.cmd == "send":
            target = parse_target(args.to)
        elif args.proxy:
            target = parse_target(args.proxy)
        elif args.cmd == "register":
            aor = _sip_uri(args.uri)
            target = target_for_uri(f"{aor.scheme}:{aor.host_port}")
        else:
            target = target_for_uri(args.uri)
        session = _Session(target, args.timeout)
        with _quiet_stack(session.capture):
            try:
                await session.open()
                if args.cmd == "options":
                    return await _cmd_options(args, session)
                if args.cmd == "register":
                    return await _cmd_register(args, session)
                if msg is None:
                    raise LocalProtocolError("internal state: msg not set")
                return await _cmd_send(args, session, msg)
            finally:
                if args.trace:
                    print(render_ladder(session.endpoint.trace))
                await session.close()
    except CliError as exc:
        print(f"sipcore {args.cmd}: {exc.message}", file=sys.stderr)
        return exc.code
    except (SipError, LocalProtocolError) as exc:
        print(f"sipcore {args.cmd}: {exc}", file=sys.stderr)
        return EXIT_FAILED


def _run_parse(args: argparse.Namespace) -> int:
    try:
        return _cmd_parse(args)
    except CliError as exc:
        print(f"sipcore parse: {exc.message}", file=sys.stderr)
        return exc.code


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    if isinstance(args, int):
        return args
    if args.cmd == "parse":
        return _run_parse(args)
    return asyncio.run(_network(args))


async def amain(argv: Sequence[str] | None = None) -> int:
    """:func:`main` for callers already inside an event loop (tests, embedding)."""
    args = _parse_args(argv)
    if isinstance(args, int):
        return args
    if args.cmd == "parse":
        return _run_parse(args)
    return await _network(args)
