"""Interop with Kamailio 5.6 as registrar (digest) and record-routing proxy, and sipp behind it.

One Kamailio per module (fixture ``kamailio`` from :mod:`peers`: 127.0.0.1, free UDP/TCP/WS ports, domain
``lab.local``, password ``secret``). What is checked:

* :class:`~sipcore.registration.RegistrationClient` over UDP, TCP and WebSocket (RFC 7118):
  401 challenge answered, a 2 s binding refreshed at half-life reusing the nonce (nc=2, RFC 3261
  §22.1, no second challenge), unregistered; usrloc (``kamcmd ul.lookup``) agrees at each step.
* ``python -m sipcore register`` over the three transports, and a wrong password exiting 3 with
  a one-line explanation and no binding left behind.
* A call sipcore UAC → Kamailio → sipp UAS: INVITE/180/200 with Record-Route, ACK and BYE along
  the route set (Route: Kamailio;lr), sipp counting one successful call.
* CANCEL of a ringing call through Kamailio: sipp rings, gets CANCEL, answers 487, gets its ACK.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from peers import DOMAIN, PASSWORD, Kamailio, Sipp, kamailio_fixture  # noqa: F401  (the kamailio fixture)

from conftest import require
from sipcore.aiostack import AioSipEndpoint
from sipcore.aioua import CallFailed, UserAgent
from sipcore.cli import EXIT_AUTH, EXIT_OK, amain, run_registration
from sipcore.registration import Registered, RegistrationClient, Unregistered
from sipcore.stack import Target

pytestmark = pytest.mark.interop

ROOT = Path(__file__).resolve().parents[2]
SDP = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       b"m=audio 40000 RTP/AVP 8 0\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n")


def run(coro, timeout: float = 40.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def target(kam: Kamailio, transport: str) -> Target:
    return Target(transport, "127.0.0.1", kam.ws_port if transport == "ws" else kam.sip_port)


def labels(endpoint: AioSipEndpoint) -> list[str]:
    return [e.label for e in endpoint.trace]


@pytest.mark.parametrize("transport", ["udp", "tcp", "ws"])
def test_registration_client_registers_refreshes_and_unregisters(kamailio: Kamailio, transport: str) -> None:
    user = f"reg-{transport}"

    async def scenario() -> None:
        ep = AioSipEndpoint()
        try:
            if transport == "ws":
                contact = f"sip:{user}@{ep.stack.rng(5).hex()}.invalid;transport=ws"
            else:
                host, port = await ep.listen(transport, "127.0.0.1", 0)
                contact = f"sip:{user}@{host}:{port};transport={transport}"
            dest = target(kamailio, transport)
            client = RegistrationClient(f"sip:{user}@{DOMAIN}", f"sip:{DOMAIN}", contact, expires=2,
                                        credentials=(user, PASSWORD))
            client.register(ep.now())
            (first,) = await run_registration(ep, client, dest)
            assert isinstance(first, Registered) and first.expires == 2, first
            assert await asyncio.to_thread(kamailio.contacts, user) == [contact]
            assert labels(ep).count("401 Unauthorized (REGISTER)") == 1

            due = client.next_deadline()
            assert due is not None and 0.9 <= due - ep.now() <= 1.1  # half of 2 s
            await asyncio.sleep(max(0.0, due - ep.now()))
            assert client.handle_timeout(ep.now())
            (second,) = await run_registration(ep, client, dest)
            assert isinstance(second, Registered) and second.expires == 2, second
            assert labels(ep).count("401 Unauthorized (REGISTER)") == 1  # the refresh reused the nonce
            assert labels(ep).count("200 OK (REGISTER)") == 2

            client.unregister(ep.now())
            (third,) = await run_registration(ep, client, dest)
            assert isinstance(third, Unregistered) and third.status == 200, third
            assert await asyncio.to_thread(kamailio.contacts, user) == []
        finally:
            await ep.close()

    run(scenario())


@pytest.mark.parametrize("transport", ["udp", "tcp", "ws"])
def test_cli_register_and_unregister(kamailio: Kamailio, transport: str, capsys) -> None:
    user = f"cli-{transport}"
    contact = f"sip:{user}@127.0.0.1:5999;transport={transport}"
    base = ["register", f"sip:{user}@{DOMAIN}", "--password", PASSWORD, "--proxy", kamailio.proxy(transport)]

    async def scenario() -> tuple[int, list[str], int, list[str]]:
        rc1 = await amain([*base, "--expires", "30", "--contact", contact])
        during = await asyncio.to_thread(kamailio.contacts, user)
        rc2 = await amain([*base, "--unregister", "--contact", contact])
        return rc1, during, rc2, await asyncio.to_thread(kamailio.contacts, user)

    rc1, during, rc2, after = run(scenario())
    out = capsys.readouterr().out
    assert (rc1, rc2) == (EXIT_OK, EXIT_OK), out
    assert during == [contact] and after == []
    assert "expires 30 s" in out and f"binding <{contact}>;expires=30" in out


def test_cli_wrong_password_exits_3(kamailio: Kamailio) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sipcore", "register", f"sip:mallory@{DOMAIN}", "--password", "wrong",
         "--proxy", kamailio.udp, "--timeout", "10"],
        cwd=ROOT, capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == EXIT_AUTH, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "authentication failed for user 'mallory'" in lines[0] and "wrong password" in lines[0]
    assert kamailio.contacts("mallory") == []


async def _register_sipp(kam: Kamailio, user: str, sipp: Sipp) -> None:
    rc = await amain(["register", f"sip:{user}@{DOMAIN}", "--password", PASSWORD, "--expires", "60",
                      "--contact", f"sip:{user}@127.0.0.1:{sipp.local_port}", "--proxy", kam.udp])
    assert rc == EXIT_OK


async def _caller(kam: Kamailio) -> UserAgent:
    ep = AioSipEndpoint()
    await ep.listen("udp", "127.0.0.1", 0)
    return UserAgent(ep, aor=f"sip:alice@{DOMAIN}", outbound=target(kam, "udp"), credentials=("alice", PASSWORD))


def test_call_sipcore_to_sipp_through_kamailio(kamailio: Kamailio, tmp_path: Path) -> None:
    require("sipp")
    sipp = Sipp(tmp_path, "uas_proxy.xml", name="uas", calls=1, timeout=15).start()

    async def scenario() -> list[str]:
        await _register_sipp(kamailio, "bob", sipp)
        ua = await _caller(kamailio)
        try:
            provisional: list[int] = []
            out = ua.invite(f"sip:bob@{DOMAIN}", SDP, on_provisional=lambda r: provisional.append(r.status_code))
            session = await asyncio.wait_for(out.result, 10)
            assert 180 in provisional
            assert b"m=audio" in session.remote_sdp and b"PCMA/8000" in session.remote_sdp
            # Kamailio record-routed: ACK and BYE carry Route: <sip:127.0.0.1:PORT;lr...>
            assert session.dialog.route_set and f"127.0.0.1:{kamailio.sip_port}" in str(session.dialog.route_set[0])
            await asyncio.sleep(0.2)
            await session.bye()
            return labels(ua.endpoint)
        finally:
            await ua.close()
            await ua.endpoint.close()

    try:
        seen = run(scenario())
        result = sipp.result(10)
    finally:
        sipp.stop()
    assert result.ok and result.stats is not None and result.stats.successful == 1, result.log
    assert seen.index("INVITE") < seen.index("200 OK (INVITE)") < seen.index("ACK") < seen.index("BYE")
    assert "200 OK (BYE)" in seen
    messages = sipp.messages()
    assert "ACK sip:" in messages and "BYE sip:" in messages


def test_cancel_ringing_call_through_kamailio(kamailio: Kamailio, tmp_path: Path) -> None:
    require("sipp")
    sipp = Sipp(tmp_path, "uas_ring_cancel.xml", name="ring", calls=1, timeout=15).start()

    async def scenario() -> tuple[int, list[str]]:
        await _register_sipp(kamailio, "carol", sipp)
        ua = await _caller(kamailio)
        try:
            ringing = asyncio.Event()
            out = ua.invite(f"sip:carol@{DOMAIN}", SDP,
                            on_provisional=lambda r: ringing.set() if r.status_code == 180 else None)
            await asyncio.wait_for(ringing.wait(), 10)
            ua.cancel(out)
            with pytest.raises(CallFailed) as failed:
                await asyncio.wait_for(out.result, 10)
            await asyncio.sleep(0.1)  # our ACK for the 487 leaves
            return failed.value.status, labels(ua.endpoint)
        finally:
            await ua.close()
            await ua.endpoint.close()

    try:
        status, seen = run(scenario())
        result = sipp.result(10)
    finally:
        sipp.stop()
    assert status == 487
    assert "CANCEL" in seen and "487 Request Terminated (INVITE)" in seen
    assert any(x.startswith("200 ") and x.endswith("(CANCEL)") for x in seen)  # Kamailio: "200 canceling"
    assert "ACK" in seen[seen.index("487 Request Terminated (INVITE)"):]  # the ICT ACKs the 487 (§17.1.1.3)
    assert result.ok and result.stats is not None and result.stats.successful == 1, result.log
