"""The production recipe of docs/production.md, run as written: Kamailio + coturn + our token service.

The three config files under ``docs/production/`` are used as shipped, with only the values a
test must change (addresses, ports, secrets, the domain) substituted:

* ``kamailio.cfg`` through its ``-A`` defines (listen sockets, domain, auth_ephemeral secret,
  control socket);
* ``turnserver.conf`` with its ``key=value`` lines rewritten for 127.0.0.1 and free ports
  (plus ``allow-loopback-peers``, which only a loopback test needs);
* ``voice-sdk.env`` as the environment of ``voice-sdk serve`` (token service only).

What is proven: a Device with an access token from our token service gets ephemeral SIP
credentials that Kamailio's ``auth_ephemeral`` accepts (REGISTER over WebSocket; Kamailio
refuses a wrong secret and an expired name), and TURN credentials that coturn's
``use-auth-secret`` accepts: two Devices call each other through Kamailio while the caller's
media socket may only talk to coturn (a firewall in front of it), so every media packet is
relayed by coturn (ICE selects the caller's relay candidate).

The last test does the same against baresip (ICE + DTLS-SRTP, registered to Kamailio with
ephemeral credentials over UDP). baresip's ICE never uses 127.x candidates, so that test runs
the whole recipe in a private network namespace (:mod:`netns`: ``lo`` and a veth pair, no
route out) with our Device in a child process inside it.

Every process binds 127.0.0.1 (or the private namespace's addresses) on free ports, is bounded
(``timeout`` around it, ``--duration`` for the token service, ``-t`` for baresip) and is stopped
by its own process id in the teardown.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import glob
import hashlib
import hmac
import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from peers import PeerError, PeerProcess, free_port, wait_for_port

from conftest import ROOT, missing_peer, require

pytestmark = pytest.mark.interop

DOCS = ROOT / "docs" / "production"
DOMAIN = "voice.test"
API_KEY = "recipe-test-key"
LIFETIME = 120.0
"""Upper bound of every process the fixture starts (seconds)."""


@dataclass
class Recipe:
    kamailio: PeerProcess
    turn: PeerProcess
    tokens: PeerProcess
    http: str
    sip_secret: str
    turn_port: int
    ws_port: int
    ctl: str
    workdir: Path

    def kamcmd(self, *args: str) -> str:
        out = subprocess.run(["kamcmd", "-s", self.ctl, *args], capture_output=True, text=True, timeout=5)
        return out.stdout + out.stderr


def _rewrite_conf(text: str, values: dict[str, str | None]) -> str:
    """``key=value`` / bare ``key`` lines of a coturn config replaced (None: line dropped), others kept."""
    out, done = [], set()
    for line in text.splitlines():
        key = line.split("=", 1)[0].strip()
        if not line.startswith("#") and key in values:
            if key not in done and values[key] is not None:
                out.append(f"{key}={values[key]}" if values[key] else key)
            done.add(key)
        else:
            out.append(line)
    out += [f"{k}={v}" if v else k for k, v in values.items() if k not in done and v is not None]
    return "\n".join(out) + "\n"


def _env_file(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in path.read_text("utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, _, v = line.partition("=")
            env[k.strip()] = v.strip()
    return env


def _require_recipe() -> None:
    require("kamailio", "kamcmd", "turnserver", "timeout")
    if not glob.glob("/usr/lib/*/kamailio/modules/auth_ephemeral.so") + glob.glob("/usr/lib/kamailio/modules/auth_ephemeral.so"):
        missing_peer("Kamailio's auth_ephemeral module (package kamailio-autheph-modules)")


def _kamailio_argv(addr: str, sip_port: int, ws_port: int, secret: str, ctl: str, rundir: Path) -> list[Any]:
    return ["kamailio", "-f", DOCS / "kamailio.cfg", "-DD", "-E", "-m", "64", "-M", "8", "-Y", rundir,
            "-A", f'SIP_DOMAIN="{DOMAIN}"', "-A", f'AUTH_SECRET="{secret}"',
            "-A", f"LISTEN_UDP=udp:{addr}:{sip_port}", "-A", f"LISTEN_TCP=tcp:{addr}:{sip_port}",
            "-A", f"LISTEN_WS=tcp:{addr}:{ws_port}", "-A", f"WS_PORT={ws_port}", "-A", f'CTL_SOCK="{ctl}"']


def _token_service_env(wd: Path, addr: str, sip_port: int, ws_port: int, turn_port: int, sip_secret: str,
                       turn_secret: str) -> dict[str, str]:
    (wd / "api-keys").write_text(f"# test key\n{API_KEY}\n")
    env = {**os.environ, **_env_file(DOCS / "voice-sdk.env")}
    env.update({
        "VOICE_DOMAIN": DOMAIN, "VOICE_PUBLIC_WS_URL": f"ws://{addr}:{ws_port}",
        "VOICE_PUBLIC_UDP": f"{addr}:{sip_port}", "VOICE_PUBLIC_TCP": f"{addr}:{sip_port}",
        "VOICE_TURN_URLS": f"turn:{addr}:{turn_port}?transport=udp", "VOICE_STUN_URLS": "",
        "VOICE_JWT_SECRET": secrets.token_hex(32), "VOICE_SIP_SECRET": sip_secret, "VOICE_TURN_SECRET": turn_secret,
        "VOICE_API_KEYS_FILE": str(wd / "api-keys"),
    })
    return env


@pytest.fixture(scope="module")
def recipe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recipe]:
    _require_recipe()
    wd = tmp_path_factory.mktemp("recipe")
    sip_secret, turn_secret = secrets.token_hex(32), secrets.token_hex(32)
    sip_port, ws_port, turn_port, http_port = free_port("both"), free_port("tcp"), free_port("both"), free_port("tcp")
    relay_lo = 40000 + secrets.randbelow(20000)
    ctl = f"unix:{wd}/kamailio_ctl"
    kamailio = PeerProcess("kamailio", _kamailio_argv("127.0.0.1", sip_port, ws_port, sip_secret, ctl, wd),
                           lifetime=LIFETIME, log_path=wd / "kamailio.log")
    conf = _rewrite_conf((DOCS / "turnserver.conf").read_text("utf-8"), {
        "listening-ip": "127.0.0.1", "relay-ip": "127.0.0.1", "listening-port": str(turn_port),
        "min-port": str(relay_lo), "max-port": str(relay_lo + 40), "static-auth-secret": turn_secret,
        "realm": DOMAIN, "allow-loopback-peers": "", "pidfile": str(wd / "turnserver.pid"),
        "userdb": str(wd / "turndb"), "log-file": "stdout",
    })
    (wd / "turnserver.conf").write_text(conf)
    turn = PeerProcess("turnserver", ["turnserver", "-c", wd / "turnserver.conf"], lifetime=LIFETIME,
                       log_path=wd / "turnserver.log")
    env = _token_service_env(wd, "127.0.0.1", sip_port, ws_port, turn_port, sip_secret, turn_secret)
    tokens = PeerProcess("voice-sdk serve", [
        Path(sys.executable).parent / "voice-sdk", "serve", "--host", "127.0.0.1", "--http-port", str(http_port),
        "--duration", str(LIFETIME - 10)], lifetime=LIFETIME, log_path=wd / "voice-sdk.log", env=env)
    started: list[PeerProcess] = []
    try:
        for proc in (kamailio, turn, tokens):
            proc.start()
            started.append(proc)
        wait_for_port(ws_port, "tcp", timeout=10, process=kamailio)
        wait_for_port(sip_port, "udp", timeout=10, process=kamailio)
        wait_for_port(turn_port, "udp", timeout=10, process=turn)
        wait_for_port(http_port, "tcp", timeout=20, process=tokens)
        tokens.wait_for_log(r"SIP\s+not served here", 5)
        yield Recipe(kamailio, turn, tokens, f"http://127.0.0.1:{http_port}", sip_secret, turn_port, ws_port,
                     ctl, wd)
    except PeerError as exc:
        pytest.fail(str(exc))
    finally:
        for proc in reversed(started):
            proc.stop()


# -- helpers ----------------------------------------------------------------------------------------------
async def _token(recipe: Recipe, user: str) -> str:
    async with aiohttp.ClientSession() as http, http.post(
            f"{recipe.http}/open/sdk/access-token", headers={"X-User-API-Key": API_KEY},
            json={"user_uuid": user, "label": "recipe"}) as r:
        assert r.status == 200, await r.text()
        token: str = (await r.json())["access_token"]
        return token


def _device(recipe: Recipe, token: str, **opts: Any) -> Any:
    from voice_sdk.device import Device
    from voice_sdk.options import DeviceOptions

    return Device(token, options=DeviceOptions(credentials_url=f"{recipe.http}/sdk/voip/sip-credentials",
                                               transport="ws", codecs=("PCMU",), **opts))


def _ephemeral(secret: str, user: str, expiry: int) -> tuple[str, str]:
    username = f"{expiry}:{user}"
    return username, base64.b64encode(hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()).decode()


def _run(coro: Any, timeout: float = 60) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


# -- tests ----------------------------------------------------------------------------------------------------
def test_device_registers_to_kamailio_with_ephemeral_credentials(recipe: Recipe) -> None:
    async def body() -> dict[str, Any]:
        async with aiohttp.ClientSession() as http, http.get(
                f"{recipe.http}/sdk/voip/sip-credentials",
                headers={"Authorization": f"Bearer {await _token(recipe, 'alice')}"}) as r:
            creds = await r.json()
        dev = _device(recipe, await _token(recipe, "alice"))
        await dev.register()
        try:
            state = {"registered": dev.is_registered, "target": str(dev.creds.target),
                     "ul": recipe.kamcmd("ul.lookup", "location", f"alice@{DOMAIN}")}
        finally:
            await dev.unregister()
        state["ul_after"] = recipe.kamcmd("ul.lookup", "location", f"alice@{DOMAIN}")
        state["creds"] = creds
        await dev.destroy()
        return state

    state = _run(body())
    creds = state["creds"]
    assert creds["ws_url"] == f"ws://127.0.0.1:{recipe.ws_port}" and creds["realm"] == DOMAIN
    assert re.fullmatch(r"\d+:alice", creds["username"]) and int(creds["username"].split(":")[0]) > time.time()
    turn = creds["ice_servers"][0]
    assert turn["urls"] == [f"turn:127.0.0.1:{recipe.turn_port}?transport=udp"] and turn["username"].endswith(":alice")
    assert state["registered"] and state["target"] == f"ws:127.0.0.1:{recipe.ws_port}"
    assert "transport=ws" in state["ul"] and "alice@" in state["ul"], state["ul"]
    assert "Not found" in state["ul_after"] or "transport=ws" not in state["ul_after"]


def test_kamailio_refuses_a_wrong_secret_and_an_expired_name(recipe: Recipe) -> None:
    from voice_sdk.device import Device
    from voice_sdk.errors import ErrorCode, VoiceSDKError
    from voice_sdk.options import DeviceOptions, SipCredentials

    async def attempt(username: str, password: str) -> ErrorCode | None:
        creds = SipCredentials(uri=f"sip:mallory@{DOMAIN}", password=password, username=username,
                               ws_url=f"ws://127.0.0.1:{recipe.ws_port}")
        dev = Device(options=DeviceOptions(sip_credentials=creds, codecs=("PCMU",)))
        try:
            await dev.register()
        except VoiceSDKError as exc:
            return exc.code
        finally:
            await dev.destroy()
        return None

    future = int(time.time()) + 600
    assert _run(attempt(*_ephemeral(recipe.sip_secret, "mallory", future))) is None, "the right secret works"
    assert _run(attempt(*_ephemeral("not-the-secret", "mallory", future))) is ErrorCode.AUTH_ERROR
    assert _run(attempt(*_ephemeral(recipe.sip_secret, "mallory", int(time.time()) - 5))) is ErrorCode.AUTH_ERROR
    assert _run(attempt(*_ephemeral(recipe.sip_secret, "trudy", future))) is ErrorCode.AUTH_ERROR, \
        "credentials of another user do not match From"


class _OnlyTurn:
    """A firewall in front of a media socket: datagrams may only go to the TURN server."""

    def __init__(self, inner: Any, turn: tuple[str, int]) -> None:
        self.inner, self.turn = inner, turn
        self.blocked = self.passed = 0

    def sendto(self, data: bytes, addr: Any = None) -> None:
        if addr is not None and (addr[0], addr[1]) != self.turn:
            self.blocked += 1
            return
        self.passed += 1
        self.inner.sendto(data, addr)

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_call_through_kamailio_with_media_relayed_by_coturn(recipe: Recipe) -> None:
    from voice_sdk.audio import BufferSink, ToneSource

    async def body() -> dict[str, Any]:
        alice = _device(recipe, await _token(recipe, "alice"))
        bob = _device(recipe, await _token(recipe, "bob"))
        await alice.register()
        await bob.register()
        incoming: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        bob.once("incoming", incoming.set_result)
        out = await alice.connect("bob")
        assert out.driver is not None and out.outgoing is not None
        firewall = _OnlyTurn(out.driver.proto.transport, ("127.0.0.1", recipe.turn_port))
        out.driver.proto.transport = firewall
        inc = await asyncio.wait_for(incoming, 10)
        remote_offer = inc.incoming.request.body.decode()
        b_sink, a_sink = BufferSink(8000), BufferSink(8000)
        inc.set_output(b_sink)
        inc.set_input(ToneSource((1000.0,), sample_rate=8000))
        out.set_input(ToneSource((600.0,), sample_rate=8000))
        out.set_output(a_sink)
        await inc.accept()
        await out.wait_accepted(20)
        await inc.wait_accepted(20)
        await out.send_digits("42")
        await asyncio.sleep(2.0)
        qa = out.quality()
        result = {"offer": remote_offer, "qa": qa, "qb": inc.quality(), "digits": list(inc.digits_received),
                  "firewall": (firewall.blocked, firewall.passed), "b_pcm": b_sink.pcm(), "a_pcm": a_sink.pcm()}
        ended: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        inc.once("disconnect", ended.set_result)
        await out.disconnect()
        result["bye"] = await asyncio.wait_for(ended, 10)
        await alice.destroy()
        await bob.destroy()
        return result

    import numpy as np

    r = _run(body())
    assert re.search(r"a=candidate:\S+ 1 udp \d+ 127\.0\.0\.1 \d+ typ relay", r["offer"]), \
        "coturn accepted the TURN credentials from our token service (relay candidate)"
    qa, qb = r["qa"], r["qb"]
    assert qa.local_candidate_type == "relay", qa
    assert qb.remote_candidate_type == "relay", qb
    assert qa.packets_received > 50 and qb.packets_received > 50
    assert r["firewall"][1] > 50, "media went to coturn"
    assert r["digits"] == ["4", "2"] and r["bye"] == "remote hangup"

    def peak(pcm: Any) -> float:
        x = pcm[-4000:].astype(float)
        return float(np.argmax(np.abs(np.fft.rfft(x))) * 8000 / len(x))

    assert abs(peak(r["b_pcm"]) - 600) < 15 and abs(peak(r["a_pcm"]) - 1000) < 15


# -- the same recipe against baresip, in a private network namespace ----------------------------------------
BARESIP_CONFIG = """\
poll_method		epoll
call_local_timeout	30
call_max_calls		2
sip_listen		@ADDR@:@SIPPORT@
net_interface		@ADDR@
audio_source		ausine,440
ausrc_srate		48000
ausrc_channels		2
audio_player		alsa,null
audio_alert		alsa,null
audio_level		no
audio_buffer		20-160
rtp_ports		@RTPPORTS@
rtcp_mux		yes
jitter_buffer_delay	5-10
rtp_stats		yes
rtp_timeout		0
module_path		/usr/lib/baresip/modules
module			g711.so
module			alsa.so
module			ausine.so
module			stun.so
module			ice.so
module			dtls_srtp.so
module_tmp		uuid.so
module_tmp		account.so
module_app		contact.so
module_app		menu.so
ice_debug		yes
"""
BARESIP_ACCOUNT = ('<sip:carol@{domain}>;auth_user={user};auth_pass={password};outbound="sip:{proxy}";regint=600;'
                   "answermode=auto;audio_codecs=pcmu;mediaenc=dtls_srtp;medianat=ice\n")
CHILD_PREFIX = "RESULT "


async def _call_baresip(cfg: dict[str, Any]) -> dict[str, Any]:
    """Runs inside the namespace: token -> credentials -> REGISTER at Kamailio -> call carol (baresip)."""
    import numpy as np

    from voice_sdk.audio import BufferSink, ToneSource
    from voice_sdk.device import Device
    from voice_sdk.options import DeviceOptions

    async with aiohttp.ClientSession() as http, http.post(
            f"{cfg['http']}/open/sdk/access-token", headers={"X-User-API-Key": API_KEY},
            json={"user_uuid": "alice", "label": "recipe"}) as r:
        token = (await r.json())["access_token"]
    dev = Device(token, options=DeviceOptions(credentials_url=f"{cfg['http']}/sdk/voip/sip-credentials",
                                              transport="ws", codecs=("PCMU",), local_address=cfg["addr"]))
    result: dict[str, Any] = {}
    try:
        await dev.register()
        call = await dev.connect("carol")
        assert call.driver is not None
        firewall = _OnlyTurn(call.driver.proto.transport, (cfg["addr"], cfg["turn_port"]))
        call.driver.proto.transport = firewall
        sink = BufferSink(8000)
        call.set_output(sink)
        call.set_input(ToneSource((1000.0,), sample_rate=8000))
        await call.wait_accepted(20)
        await asyncio.sleep(3.0)
        q = call.quality()
        pcm = sink.pcm()[-8000:].astype(float)
        result.update(quality=dataclasses.asdict(q) if q else None, firewall=[firewall.blocked, firewall.passed],
                      peak=float(np.argmax(np.abs(np.fft.rfft(pcm))) * 8000 / len(pcm)) if len(pcm) else 0.0)
        await call.disconnect()
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        await dev.destroy()
    return result


def child_main(argv: list[str]) -> None:
    """Entry point of the child process (``python -c``) that runs the Device inside the namespace."""
    cfg = json.loads(argv[0])
    result = asyncio.run(asyncio.wait_for(_call_baresip(cfg), 40))
    print(CHILD_PREFIX + json.dumps(result), flush=True)


def _listening(ns: Any, kind: str, addr: str, port: int) -> bool:
    out = ns.run(["ss", "-Hln" + ("u" if kind == "udp" else "t")], timeout=5).stdout
    return f"{addr}:{port} " in out


def _wait_in_ns(ns: Any, kind: str, addr: str, port: int, proc: PeerProcess, timeout: float = 10) -> None:
    end = time.monotonic() + timeout
    while not _listening(ns, kind, addr, port):
        if not proc.alive() or time.monotonic() > end:
            raise PeerError(f"{proc.name} not listening on {kind} {addr}:{port}:\n{proc.log_tail()}")
        time.sleep(0.05)


def test_call_to_baresip_through_kamailio_with_turn_relayed_media(tmp_path: Path) -> None:
    from netns import PrivateNetns, remove_stale

    from conftest import require_root
    from voice_sdk.server.credentials import ephemeral_credentials

    _require_recipe()
    require("baresip", "ip", "ss")
    require_root()
    remove_stale()
    sip_secret, turn_secret = secrets.token_hex(32), secrets.token_hex(32)
    # a fresh namespace has nothing listening: these ports are free in it by construction
    sip_port, ws_port, turn_port, http_port, carol_port = 5060, 8080, 3478, 8088, 5062
    procs: list[PeerProcess] = []
    with PrivateNetns() as ns:
        a, b = ns.addr_a, ns.addr_b
        try:
            kam = PeerProcess("kamailio", ns.argv(_kamailio_argv(a, sip_port, ws_port, sip_secret,
                                                                 f"unix:{tmp_path}/kamailio_ctl", tmp_path)),
                              lifetime=60, log_path=tmp_path / "kamailio.log").start()
            procs.append(kam)
            subnet = a.rsplit(".", 1)[0]
            conf = _rewrite_conf((DOCS / "turnserver.conf").read_text("utf-8"), {
                "listening-ip": a, "relay-ip": a, "listening-port": str(turn_port), "min-port": "49160",
                "max-port": "49200", "static-auth-secret": turn_secret, "realm": DOMAIN,
                # the namespace's own private subnet is where the peers are: allow it explicitly
                "allowed-peer-ip": f"{subnet}.0-{subnet}.255", "pidfile": str(tmp_path / "turnserver.pid"),
                "userdb": str(tmp_path / "turndb"), "log-file": "stdout"})
            (tmp_path / "turnserver.conf").write_text(conf)
            turn = PeerProcess("turnserver", ns.argv(["turnserver", "-c", tmp_path / "turnserver.conf"]),
                               lifetime=60, log_path=tmp_path / "turnserver.log").start()
            procs.append(turn)
            env = _token_service_env(tmp_path, a, sip_port, ws_port, turn_port, sip_secret, turn_secret)
            tokens = PeerProcess("voice-sdk serve", ns.argv([
                Path(sys.executable).parent / "voice-sdk", "serve", "--host", a, "--http-port", str(http_port),
                "--duration", "50"]), lifetime=60, log_path=tmp_path / "voice-sdk.log", env=env).start()
            procs.append(tokens)
            _wait_in_ns(ns, "tcp", a, ws_port, kam)
            _wait_in_ns(ns, "udp", a, turn_port, turn)
            _wait_in_ns(ns, "tcp", a, http_port, tokens, 20)
            # baresip, a standard SIP client, registers with credentials of the same scheme
            creds = ephemeral_credentials(sip_secret, "carol", now=time.time(), ttl=600)
            profile = tmp_path / "baresip"
            profile.mkdir()
            (profile / "config").write_text(BARESIP_CONFIG.replace("@ADDR@", b).replace("@SIPPORT@", str(carol_port))
                                            .replace("@RTPPORTS@", "20000-20099"))
            (profile / "accounts").write_text(BARESIP_ACCOUNT.format(domain=DOMAIN, user=creds.username,
                                                                     password=creds.password, proxy=f"{a}:{sip_port}"))
            (profile / "contacts").write_text("")
            baresip = PeerProcess("baresip", ns.argv(["baresip", "-f", profile, "-t", "40"]), lifetime=45,
                                  log_path=tmp_path / "baresip.log").start()
            procs.append(baresip)
            baresip.wait_for_log(r"carol@\S+: \{0/UDP/v4\} 200 OK", 10)
            cfg = {"http": f"http://{a}:{http_port}", "addr": a, "turn_port": turn_port}
            here = Path(__file__).resolve().parent
            script = (f"import sys; sys.path[:0] = [{str(here)!r}, {str(here.parent)!r}]; "
                      "import test_production_recipe as t; t.child_main(sys.argv[1:])")
            child = PeerProcess("device", ns.argv([sys.executable, "-c", script, json.dumps(cfg)]), lifetime=50,
                                log_path=tmp_path / "device.log").start()
            procs.append(child)
            child.wait(55)
            line = next((ln for ln in child.log().splitlines() if ln.startswith(CHILD_PREFIX)), None)
            assert line is not None, child.log_tail(40)
            r = json.loads(line[len(CHILD_PREFIX):])
            blog = baresip.log()
            diag = f"\nresult: {r}\nbaresip:\n{baresip.log_tail(40)}\ndevice:\n{child.log_tail(20)}"
            assert "error" not in r, diag
            q = r["quality"]
            assert q["local_candidate_type"] == "relay", diag
            assert q["packets_received"] > 50 and q["packets_sent"] > 50, diag
            assert r["firewall"][1] > 50, "the media went to coturn"
            assert abs(r["peak"] - 440) < 15, f"we hear baresip's 440 Hz ausine{diag}"
            assert "connectivity check is complete" in blog, diag
            assert "DTLS-SRTP complete" in blog or "dtls_srtp: verified" in blog, diag
        except PeerError as exc:
            pytest.fail(str(exc))
        finally:
            for proc in reversed(procs):
                proc.stop()
