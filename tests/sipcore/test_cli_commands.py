"""``python -m sipcore options|register|send`` against an in-process SIP server on 127.0.0.1.

The server is an :class:`AioSipEndpoint` in the test's own event loop: OPTIONS answered with
Allow/Supported, a digest-protected registrar (realm ``test.local``, user ``alice``, password
``secret``), and a callee that rings and then answers busy. Each exit status is exercised:
0 ok, 2 usage, 3 authentication failed, 4 timeout/unreachable, 5 other final error.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path

import pytest

from sipcore.aiostack import AioSipEndpoint
from sipcore.auth import DigestServer
from sipcore.cli import (
    EXIT_AUTH,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    CliError,
    amain,
    main,
    parse_target,
)
from sipcore.message import make_response, random_tag
from sipcore.stack import RequestReceived, Target
from sipcore.uri import SipUri

ROOT = Path(__file__).resolve().parents[2]
PASSWORDS = {"alice": "secret"}
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER"


class Server:
    """OPTIONS, a digest registrar and a busy callee, on one endpoint."""

    def __init__(self) -> None:
        self.endpoint = AioSipEndpoint(user_agent="test-server/1.0")
        self.endpoint.on_request = self.on_request
        self.digest = DigestServer("test.local")
        self.bindings: dict[str, dict[str, int]] = {}
        self.methods: list[str] = []
        self.addr: dict[str, tuple[str, int]] = {}

    async def start(self, *transports: str) -> Server:
        for t in transports or ("udp",):
            self.addr[t] = await self.endpoint.listen(t, "127.0.0.1", 0)
        return self

    def proxy(self, transport: str = "udp") -> str:
        host, port = self.addr[transport]
        return f"{transport}:{host}:{port}"

    async def close(self) -> None:
        await self.endpoint.close()

    def on_request(self, ev: RequestReceived) -> None:
        req, tx = ev.request, ev.transaction
        self.methods.append(req.method)
        if tx is None:
            return
        respond = lambda resp: self.endpoint.respond(tx, resp)  # noqa: E731
        user = req.uri.user if isinstance(req.uri, SipUri) else None
        if req.method == "OPTIONS":
            if user == "forbidden":
                respond(make_response(req, 403, to_tag=random_tag()))
            else:
                respond(make_response(req, 200, to_tag=random_tag(),
                                      headers=[("Allow", ALLOW), ("Supported", "path, outbound")]))
        elif req.method == "REGISTER":
            self.register(req, respond)
        elif req.method == "INVITE":
            tag = random_tag()
            respond(make_response(req, 180, to_tag=tag))
            respond(make_response(req, 486, to_tag=tag))
        elif req.method == "MESSAGE":
            respond(make_response(req, 200 if user == "bob" else 404, to_tag=random_tag()))
        else:
            respond(make_response(req, 405, to_tag=random_tag(), headers=[("Allow", ALLOW)]))

    def register(self, req, respond) -> None:
        now = self.endpoint.now()
        result = self.digest.verify(req, now, PASSWORDS.get)
        if not result.ok:
            respond(make_response(req, 401, to_tag=random_tag(), headers=self.digest.challenge(now, result.stale)))
            return
        aor = req.to.uri.aor
        table = self.bindings.setdefault(aor, {})
        for c in req.contacts:
            if c.star:
                table.clear()
                continue
            exp = c.expires if c.expires is not None else (req.expires or 3600)
            table.pop(str(c.uri), None)
            if exp > 0:
                table[str(c.uri)] = min(exp, 1200)
        contacts = [("Contact", f"<{uri}>;expires={exp}") for uri, exp in table.items()]
        respond(make_response(req, 200, to_tag=random_tag(), headers=contacts))


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def silent_udp() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    return s


def closed_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


# -- targets ---------------------------------------------------------------------------------------
def test_parse_target_forms() -> None:
    assert parse_target("127.0.0.1:5070") == Target("udp", "127.0.0.1", 5070)
    assert parse_target("tcp:example.com") == Target("tcp", "example.com", 5060)
    assert parse_target("ws:127.0.0.1:8080") == Target("ws", "127.0.0.1", 8080)
    assert parse_target("wss:[::1]:7443") == Target("wss", "::1", 7443)
    assert parse_target("tls:proxy.example") == Target("tls", "proxy.example", 5061)
    assert parse_target("sip:bob@10.0.0.1:5080;transport=tcp") == Target("tcp", "10.0.0.1", 5080)
    assert parse_target("sips:example.com") == Target("tls", "example.com", 5061)
    for bad in ("udp:host:0", "udp:host:99999", "tcp:[::1", "a b:5060", "", "sip:"):
        with pytest.raises(CliError) as err:
            parse_target(bad)
        assert err.value.code == EXIT_USAGE


# -- options ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("transport", ["udp", "tcp", "ws"])
def test_options_prints_capabilities(transport: str, capsys) -> None:
    async def scenario() -> int:
        server = await Server().start(transport)
        try:
            return await amain(["options", "sip:test.local", "--proxy", server.proxy(transport), "--trace"])
        finally:
            await server.close()

    assert run(scenario()) == EXIT_OK
    out = capsys.readouterr().out
    assert "200 OK from " in out
    assert f"Allow: {ALLOW}" in out and "Supported: path, outbound" in out and "Server: test-server/1.0" in out
    assert "-- OPTIONS --" in out and "200 OK (OPTIONS)" in out  # the ladder


def test_options_error_status_exits_5(capsys) -> None:
    async def scenario() -> int:
        server = await Server().start()
        try:
            return await amain(["options", "sip:forbidden@test.local", "--proxy", server.proxy()])
        finally:
            await server.close()

    assert run(scenario()) == EXIT_FAILED
    captured = capsys.readouterr()
    assert "403 Forbidden" in captured.out
    assert one_line(captured.err) == "sipcore options: OPTIONS failed: 403 Forbidden"


def test_options_timeout_exits_4(capsys) -> None:
    with silent_udp() as sock:
        port = sock.getsockname()[1]
        code = main(["options", f"sip:127.0.0.1:{port}", "--timeout", "0.3"])
        data, _ = sock.recvfrom(4096)
    assert code == EXIT_TIMEOUT
    assert data.startswith(b"OPTIONS sip:127.0.0.1:")
    assert "within 0.3 s" in one_line(capsys.readouterr().err)


def test_options_unreachable_tcp_exits_4(capsys) -> None:
    port = closed_tcp_port()
    code = main(["options", "sip:test.local", "--proxy", f"tcp:127.0.0.1:{port}", "--timeout", "3"])
    assert code == EXIT_TIMEOUT
    line = one_line(capsys.readouterr().err)
    assert f"tcp:127.0.0.1:{port} unreachable" in line and "cannot connect" in line


# -- register ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("transport", ["udp", "tcp", "ws"])
def test_register_then_unregister(transport: str, capsys) -> None:
    async def scenario() -> tuple[int, int, dict[str, int], dict[str, int]]:
        server = await Server().start(transport)
        try:
            proxy = server.proxy(transport)
            rc1 = await amain(["register", "sip:alice@test.local", "--password", "secret", "--expires", "60",
                               "--proxy", proxy, "--trace"])
            during = dict(server.bindings["sip:alice@test.local"])
            rc2 = await amain(["register", "sip:alice@test.local", "--password", "secret", "--unregister",
                               "--proxy", proxy])
            return rc1, rc2, during, dict(server.bindings["sip:alice@test.local"])
        finally:
            await server.close()

    rc1, rc2, during, after = run(scenario())
    assert (rc1, rc2) == (EXIT_OK, EXIT_OK)
    assert len(during) == 1 and list(during.values()) == [60] and after == {}
    out = capsys.readouterr().out
    assert "registered sip:alice@test.local" in out and "expires 60 s" in out
    assert f";transport={transport}>;expires=60" in out or (transport == "udp" and ">;expires=60" in out)
    assert "401 Unauthorized (REGISTER)" in out and "200 OK (REGISTER)" in out  # ladder: challenge, then 200
    assert "unregistered sip:alice@test.local" in out and "all bindings (Contact: *)" in out


def test_register_and_unregister_one_contact(capsys) -> None:
    mine, other = "sip:alice@127.0.0.1:5999", "sip:alice@127.0.0.1:6999"

    async def scenario() -> tuple[list[int], list[str]]:
        server = await Server().start()
        try:
            base = ["register", "sip:alice@test.local", "--password", "secret", "--proxy", server.proxy()]
            codes = [await amain([*base, "--contact", other]), await amain([*base, "--contact", mine]),
                     await amain([*base, "--contact", mine, "--unregister"])]
            return codes, list(server.bindings["sip:alice@test.local"])
        finally:
            await server.close()

    codes, left = run(scenario())
    assert codes == [EXIT_OK] * 3 and left == [other]
    out = capsys.readouterr().out
    assert f"binding <{other}>;expires=600" in out and f"binding <{mine}>;expires=600" in out
    assert "unregistered sip:alice@test.local at udp:127.0.0.1:" in out and f"binding {mine}: 200 OK" in out


def test_register_granted_expiry_is_the_registrars(capsys) -> None:
    async def scenario() -> int:
        server = await Server().start()
        try:
            return await amain(["register", "sip:alice@test.local", "--password", "secret", "--expires", "7200",
                                "--proxy", server.proxy()])
        finally:
            await server.close()

    assert run(scenario()) == EXIT_OK
    assert "expires 1200 s" in capsys.readouterr().out


def test_register_wrong_password_exits_3(capsys) -> None:
    async def scenario() -> tuple[int, list[str]]:
        server = await Server().start()
        try:
            rc = await amain(["register", "sip:alice@test.local", "--password", "wrong", "--proxy", server.proxy()])
            return rc, server.methods
        finally:
            await server.close()

    rc, methods = run(scenario())
    assert rc == EXIT_AUTH
    assert methods == ["REGISTER", "REGISTER"]  # one challenge answered, no retry loop
    line = one_line(capsys.readouterr().err)
    assert line.startswith("sipcore register: authentication failed for user 'alice'") and "wrong password" in line


def test_register_timeout_exits_4(capsys) -> None:
    with silent_udp() as sock:
        port = sock.getsockname()[1]
        code = main(["register", "sip:alice@test.local", "--password", "x", "--proxy", f"127.0.0.1:{port}",
                     "--timeout", "0.3"])
    assert code == EXIT_TIMEOUT
    assert "no final response" in one_line(capsys.readouterr().err)


# -- send --------------------------------------------------------------------------------------------
MESSAGE = """MESSAGE sip:{user}@test.local SIP/2.0
From: <sip:carol@test.local>;tag=1928301774
To: <sip:{user}@test.local>
Call-ID: a84b4c76e66710@cli.test
CSeq: 7 MESSAGE
Content-Type: text/plain
Content-Length: 5

hello"""

INVITE = """INVITE sip:bob@test.local SIP/2.0
From: <sip:carol@test.local>;tag=77
To: <sip:bob@test.local>
Call-ID: inv-1@cli.test
CSeq: 1 INVITE
Contact: <sip:carol@127.0.0.1:9>
Content-Length: 0

"""


def test_send_file_adds_via_and_prints_responses(tmp_path, capsys) -> None:
    ok = tmp_path / "message.sip"
    ok.write_text(MESSAGE.format(user="bob"))  # LF line ends, as an editor writes them
    missing = tmp_path / "message404.sip"
    missing.write_text(MESSAGE.format(user="nobody"))
    invite = tmp_path / "invite.sip"
    invite.write_bytes(INVITE.replace("\n", "\r\n").encode())

    async def scenario() -> tuple[int, int, int]:
        server = await Server().start("udp", "tcp")
        try:
            rc1 = await amain(["send", str(ok), "--to", server.proxy("tcp")])
            rc2 = await amain(["send", str(missing), "--to", server.proxy("udp")])
            rc3 = await amain(["send", str(invite), "--to", server.proxy("udp"), "--trace"])
            return rc1, rc2, rc3
        finally:
            await server.close()

    assert run(scenario()) == (EXIT_OK, EXIT_FAILED, EXIT_FAILED)
    captured = capsys.readouterr()
    out = captured.out
    assert "<<< 200 OK from tcp:" in out and "CSeq: 7 MESSAGE" in out and "Via: SIP/2.0/TCP 127.0.0.1:" in out
    assert "<<< 404 Not Found" in out
    assert "<<< 180 Ringing" in out and "<<< 486 Busy Here" in out
    assert "-- ACK --" in out  # the INVITE client transaction ACKs the 486 (RFC 3261 §17.1.1.3)
    errs = captured.err.strip().splitlines()
    assert errs == ["sipcore send: MESSAGE failed: 404 Not Found", "sipcore send: INVITE failed: 486 Busy Here"]


def test_send_keeps_an_existing_via(tmp_path, capsys) -> None:
    async def scenario() -> int:
        server = await Server().start()
        try:
            # our endpoint binds an ephemeral port; point the file's Via at it with rport (RFC 3581)
            text = MESSAGE.format(user="bob").replace(
                "From:", "Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKfixed1;rport\nFrom:", 1)
            path = tmp_path / "via.sip"
            path.write_text(text)
            return await amain(["send", str(path), "--to", server.proxy()])
        finally:
            await server.close()

    assert run(scenario()) == EXIT_OK
    out = capsys.readouterr().out
    assert "keeps its own Via" in out and "branch=z9hG4bKfixed1" in out and "<<< 200 OK" in out


def test_send_usage_errors(tmp_path, capsys) -> None:
    assert main(["send", str(tmp_path / "nope.sip"), "--to", "127.0.0.1:5060"]) == EXIT_USAGE
    assert "cannot read" in one_line(capsys.readouterr().err)
    bad = tmp_path / "bad.sip"
    bad.write_text("OPTIONS sip:x SIP/2.0\nFrom: <sip:a@b>;tag=1\nTo: <sip:x>\n\n")
    assert main(["send", str(bad), "--to", "127.0.0.1:5060"]) == EXIT_USAGE
    assert "not a usable SIP message" in one_line(capsys.readouterr().err)


def test_usage_errors_exit_2(capsys) -> None:
    for argv in ([], ["register", "sip:alice@test.local"], ["options", "sip:x", "--proxy", "udp:h:0"],
                 ["options", "sip:x", "--timeout", "-1"], ["register", "tel:+123", "--password", "x"],
                 ["frobnicate"]):
        assert main(argv) == EXIT_USAGE, argv
        one_line(capsys.readouterr().err)


def test_entry_point_register_in_a_subprocess() -> None:
    async def scenario() -> tuple[int | None, bytes, bytes]:
        server = await Server().start()
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "sipcore", "register", "sip:alice@test.local", "--password", "wrong",
                "--proxy", server.proxy(), "--timeout", "5", cwd=ROOT,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            try:
                out, err = await asyncio.wait_for(proc.communicate(), 20)
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
            return proc.returncode, out, err
        finally:
            await server.close()

    rc, _out, err = run(scenario())
    assert rc == EXIT_AUTH
    assert b"wrong password" in err and len(err.strip().splitlines()) == 1
