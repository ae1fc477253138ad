"""A real browser client against the embedded platform: JsSIP 3.13 in headless Chromium.

The page (``jssip/www/ua.html``) is a plain JsSIP user agent: it registers over the platform's
WebSocket URL with the ephemeral digest credentials the platform's HTTP API issued for an
access token (``username = "<expiry>:<user>"``, realm = the platform's domain), places or
answers one call, proves media from ``RTCPeerConnection.getStats()`` (inbound audio
``packetsReceived`` grows, the DTLS transport is ``connected``, the received audio has energy),
hangs up (or is hung up on) and unregisters. Scenarios:

* ``echo``: JsSIP calls the platform's echo number and hears its own (fake microphone) beeps.
* ``browser_calls_device``: JsSIP calls a registered voice_sdk Device through the platform's
  proxy; the Device answers with a 440 Hz tone and records what it hears; JsSIP hangs up.
* ``device_calls_browser``: the Device calls the registered JsSIP, which answers; the Device
  hangs up once both sides have proven media.

What that covers on our side: SIP over WebSocket (RFC 7118), digest for REGISTER and INVITE
(RFC 7616), routing between registered users, SDP offers and answers a browser accepts
(BUNDLE/mid, rtcp-mux, Opus), ICE with a full ICE browser agent in both roles (RFC 8445),
DTLS-SRTP (RFC 5763/5764) with the browser as DTLS server and as client, BYE and un-REGISTER.

Isolation: each scenario runs in a child process inside a fresh network namespace that holds
only ``lo`` (``unshare --net``), so Chromium's only ICE candidate is 127.0.0.1 and nothing can
leave the machine. Inside it the platform runs in the child's event loop, the pages are served by
:class:`chromium.PageHost`, and Chromium is bounded (``lifetime``) and killed by its process
group id. The child prints one ``RESULT {json}`` line; the test asserts on it. The child itself
is bounded by a subprocess timeout and killed by its process group id as well.

Run one scenario by hand (as root)::

    unshare --net -- sh -c 'ip link set lo up && exec .venv/bin/python tests/interop/test_jssip_platform.py echo'
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from chromium import BUNDLE, Chromium, PageHost, chromium_binary, run_isolated_scenario

pytestmark = pytest.mark.interop

HERE = Path(__file__).resolve()
SCENARIO_TIMEOUT = 40.0
"""Upper bound for one scenario inside the namespace (Chromium's lifetime is the same)."""
RESULT_PREFIX = "RESULT "
ECHO_ENERGY = 0.01
"""Inbound totalAudioEnergy that proves the echo: Chromium's fake microphone beeps, the platform
decodes and re-encodes it, the page hears it back (silence stays near 1e-9)."""
TONE_ENERGY = 0.01
"""Inbound totalAudioEnergy that proves the Device's 440 Hz tone reached the browser."""


# -- the scenarios (run inside the private namespace) ---------------------------------------------------

async def _credentials(http: aiohttp.ClientSession, urls: dict[str, str], user: str) -> dict[str, Any]:
    """Token from the token API (API key), then SIP credentials for it (Bearer token)."""
    async with http.post(urls["token"], headers={"X-User-API-Key": "demo-api-key"},
                         json={"user_uuid": user, "label": "jssip interop"}) as r:
        r.raise_for_status()
        token = (await r.json())["access_token"]
    async with http.get(urls["credentials"], headers={"Authorization": f"Bearer {token}"}) as r:
        r.raise_for_status()
        creds: dict[str, Any] = await r.json()
    return creds


def _page_config(creds: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"ws_url": creds["ws_url"], "sip_uri": creds["sip_uri"], "username": creds["username"],
            "password": creds["password"], "realm": creds["realm"], "min_packets": 50,
            "media_timeout": 10, **extra}


def _bindings(platform: Any, user: str) -> list[str]:
    return [f"{b.contact} via {b.target.transport}" for b in platform.bindings.get(user, [])]


class _Lab:
    """The platform and the page host in this process's loop; one Chromium per page."""

    def __init__(self) -> None:
        from voice_sdk.server import Platform, PlatformConfig

        self.platform = Platform(PlatformConfig(host="127.0.0.1"))
        self.host = PageHost()
        self.urls: dict[str, str] = {}
        self.chromes: dict[str, Chromium] = {}
        self.result: dict[str, Any] = {}

    async def __aenter__(self) -> _Lab:
        self.urls = await self.platform.start()
        await self.host.start()
        self.result["urls"] = self.urls
        return self

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is not None:
            self.result["error"] = f"{type(exc).__name__}: {exc}"
        for chrome in self.chromes.values():
            await chrome.stop()
        for page_id, chrome in self.chromes.items():
            self.result[f"page_log:{page_id}"] = self.host.logs.get(page_id, [])
            self.result[f"chromium:{page_id}"] = chrome.stderr_lines[-60:]
        await self.host.close()
        await self.platform.close()
        return isinstance(exc, Exception)  # report it in the result instead of crashing the child

    async def credentials(self, user: str) -> dict[str, Any]:
        async with aiohttp.ClientSession() as http:
            return await _credentials(http, self.urls, user)

    async def token(self, user: str) -> str:
        async with aiohttp.ClientSession() as http, http.post(
                self.urls["token"], headers={"X-User-API-Key": "demo-api-key"},
                json={"user_uuid": user, "label": "voice_sdk interop"}) as r:
            r.raise_for_status()
            return str((await r.json())["access_token"])

    async def open_page(self, page_id: str, config: dict[str, Any]) -> None:
        chrome = Chromium(self.host.add_page(page_id, config), lifetime=SCENARIO_TIMEOUT)
        self.chromes[page_id] = chrome
        await chrome.start()


async def scenario_echo() -> dict[str, Any]:
    """JsSIP registers with platform-issued credentials, calls ``echo``, proves media, hangs up."""
    async with _Lab() as lab:
        creds = await lab.credentials("browser1")
        lab.result["credentials"] = {k: creds[k] for k in ("sip_uri", "username", "realm", "ws_url")}
        await lab.open_page("caller", _page_config(creds, mode="call", target=f"sip:echo@{creds['realm']}",
                                                   min_audio_energy=ECHO_ENERGY))
        await lab.host.wait_mark("caller", "registered", 15)
        lab.result["bindings_registered"] = _bindings(lab.platform, "browser1")
        lab.result["report"] = await lab.host.wait_report("caller", SCENARIO_TIMEOUT - 10)
        lab.result["calls_after"] = len(lab.platform.calls)
        lab.result["bindings_after"] = _bindings(lab.platform, "browser1")
    return lab.result


def _device_side(call: Any, sink: Any, now: float) -> dict[str, Any]:
    """What the voice_sdk Device saw of the call: status, media counters, level of received audio."""
    import numpy as np

    stats = call.media.stats(now) if call.media is not None else None
    pcm = sink.pcm().astype(np.float64)
    return {"status": str(call.status), "reason": call.disconnect_reason,
            "codec": stats.codec if stats else None,
            "packets_received": stats.packets_received if stats else 0,
            "packets_sent": stats.packets_sent if stats else 0,
            "peak": float(np.abs(pcm).max()) if len(pcm) else 0.0,
            "rms": float(np.sqrt(np.mean(pcm * pcm))) if len(pcm) else 0.0}


async def scenario_browser_calls_device() -> dict[str, Any]:
    """JsSIP calls a registered voice_sdk Device through the platform; the Device answers with a tone."""
    from voice_sdk.audio import BufferSink, ToneSource
    from voice_sdk.device import Device
    from voice_sdk.options import DeviceOptions

    async with _Lab() as lab:
        device = Device(await lab.token("phone1"), options=DeviceOptions(credentials_url=lab.urls["credentials"]))
        calls: list[Any] = []
        sink = BufferSink(48000)

        async def answer(call: Any) -> None:
            calls.append(call)
            call.set_input(ToneSource((440.0,), sample_rate=48000, amplitude=0.25))
            call.set_output(sink)
            await call.accept()

        device.on("incoming", answer)
        try:
            await device.register()
            creds = await lab.credentials("browser2")
            await lab.open_page("caller", _page_config(creds, mode="call", target=f"sip:phone1@{creds['realm']}",
                                                       min_audio_energy=TONE_ENERGY))
            lab.result["report"] = await lab.host.wait_report("caller", SCENARIO_TIMEOUT - 10)
            if calls:
                await calls[0].wait_ended(5)
                lab.result["device"] = _device_side(calls[0], sink, asyncio.get_running_loop().time())
        finally:
            await device.destroy()
    return lab.result


async def scenario_device_calls_browser() -> dict[str, Any]:
    """A voice_sdk Device calls a registered JsSIP through the platform, plays a tone, hangs up."""
    from voice_sdk.audio import BufferSink, ToneSource
    from voice_sdk.device import Device
    from voice_sdk.options import DeviceOptions

    async with _Lab() as lab:
        creds = await lab.credentials("browser3")
        await lab.open_page("callee", _page_config(creds, mode="answer", hangup="remote",
                                                   remote_hangup_timeout=10, min_audio_energy=TONE_ENERGY))
        device = Device(await lab.token("phone2"), options=DeviceOptions(credentials_url=lab.urls["credentials"]))
        try:
            await device.register()
            await lab.host.wait_mark("callee", "registered", 15)
            call = await device.connect("browser3")
            sink = BufferSink(48000)
            call.set_input(ToneSource((440.0,), sample_rate=48000, amplitude=0.25))
            call.set_output(sink)
            await call.wait_accepted(10)
            await lab.host.wait_mark("callee", "media", 12)
            for _ in range(50):  # and the Device has heard as much (bounded: 5 s)
                if call.media is not None and call.media.packets_received >= 50:
                    break
                await asyncio.sleep(0.1)
            await call.disconnect()
            lab.result["report"] = await lab.host.wait_report("callee", 10)
            lab.result["device"] = _device_side(call, sink, asyncio.get_running_loop().time())
        finally:
            await device.destroy()
    return lab.result


SCENARIOS = {"echo": scenario_echo, "browser_calls_device": scenario_browser_calls_device,
             "device_calls_browser": scenario_device_calls_browser}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(relativeCreated)7.0f %(name)s %(levelname)s %(message)s")
    result = asyncio.run(asyncio.wait_for(SCENARIOS[args.scenario](), SCENARIO_TIMEOUT + 5))
    print(RESULT_PREFIX + json.dumps(result), flush=True)


# -- the pytest side ---------------------------------------------------------------------------------------

def _require_browser() -> None:
    from conftest import missing_peer, require, require_root

    require("chromium", "unshare", "ip")
    require_root()
    if chromium_binary() is None:
        missing_peer("chromium not installed")
    if not BUNDLE.is_file() or BUNDLE.stat().st_size == 0:
        missing_peer(f"JsSIP bundle {BUNDLE} missing (run tests/interop/install.sh)")


def run_scenario(name: str) -> dict[str, Any]:
    """Run one scenario in a private network namespace; its RESULT line, or a failed test."""
    return run_isolated_scenario(HERE, name, timeout=SCENARIO_TIMEOUT + 20, result_prefix=RESULT_PREFIX,
                                 cwd=HERE.parent.parent.parent)


def _explain(result: dict[str, Any]) -> str:
    report = result.get("report") or {}
    parts: list[Any] = []
    for key, value in result.items():
        if key.startswith(("page_log:", "chromium:")):
            parts += [f"{key}:", *value]
    parts += ["scenario log (platform, device):", *result.get("stderr", [])]
    if report.get("localSdp"):
        parts += ["browser SDP:", report["localSdp"]]
    if report.get("remoteSdp"):
        parts += ["our SDP:", report["remoteSdp"]]
    if report.get("samples"):
        parts += ["last getStats sample:", json.dumps(report["samples"][-1])]
    if "device" in result:
        parts += ["device:", json.dumps(result["device"])]
    return "\n".join(str(p) for p in parts)


def _assert_browser_media(report: dict[str, Any], why: str, *, energy: float) -> None:
    """The page proved DTLS-SRTP Opus media from getStats: packets growing, sound above ``energy``."""
    assert report["registered"], why
    assert report["error"] is None, f"{report['error']}\n{why}"
    media = report["media"]
    assert media is not None, why
    assert media["transport"]["dtlsState"] == "connected", why
    assert media["transport"]["srtpCipher"], why
    assert media["inbound"]["packetsReceived"] >= 50, why
    assert media["outbound"]["packetsSent"] > 0, why
    assert media["codec"]["mimeType"].lower() == "audio/opus", why
    assert media["pair"]["remote"].startswith("127.0.0.1:"), why
    grew = [s["inbound"]["packetsReceived"] for s in report["samples"] if s.get("inbound")]
    assert len(grew) >= 2 and grew[-1] > grew[0], why
    assert media["inbound"]["totalAudioEnergy"] >= energy, why
    assert report["unregistered"], why


def test_jssip_registers_and_calls_echo() -> None:
    _require_browser()
    result = run_scenario("echo")
    why = _explain(result)
    assert "error" not in result, f"{result.get('error')}\n{why}"
    report = result["report"]
    assert result["credentials"]["username"].endswith(":browser1"), why
    assert result["credentials"]["realm"] == "voice.localhost", why
    assert any("via ws" in b for b in result["bindings_registered"]), why
    _assert_browser_media(report, why, energy=ECHO_ENERGY)  # energy: our own beeps came back
    # clean hang-up: BYE answered, the platform forgot the call, un-REGISTER answered
    assert (report["endCause"], report["endOriginator"]) == ("Terminated", "local"), why
    assert result["calls_after"] == 0, why
    assert result["bindings_after"] == [], why


def _assert_device_media(device: dict[str, Any], why: str) -> None:
    """The Device decoded Opus from the browser, and it was sound (Chromium's fake microphone beeps)."""
    assert device["codec"] == "opus", why
    assert device["packets_received"] >= 50 and device["packets_sent"] >= 50, why
    assert device["peak"] > 200, why  # silence decodes to 0; the fake microphone beeps 20 ms every 500 ms


def test_jssip_calls_voice_sdk_device_through_platform() -> None:
    _require_browser()
    result = run_scenario("browser_calls_device")
    why = _explain(result)
    assert "error" not in result, f"{result.get('error')}\n{why}"
    report = result["report"]
    _assert_browser_media(report, why, energy=TONE_ENERGY)  # the Device's tone
    assert (report["endCause"], report["endOriginator"]) == ("Terminated", "local"), why
    assert "device" in result, why
    _assert_device_media(result["device"], why)
    assert result["device"]["status"].endswith("disconnected"), why


def test_voice_sdk_device_calls_jssip_through_platform() -> None:
    _require_browser()
    result = run_scenario("device_calls_browser")
    why = _explain(result)
    assert "error" not in result, f"{result.get('error')}\n{why}"
    report = result["report"]
    _assert_browser_media(report, why, energy=TONE_ENERGY)
    assert (report["endCause"], report["endOriginator"]) == ("Terminated", "remote"), why
    _assert_device_media(result["device"], why)


if __name__ == "__main__":
    main()
