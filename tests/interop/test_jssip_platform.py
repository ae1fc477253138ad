"""A real browser client against the embedded platform: JsSIP 3.13 in headless Chromium.

The page (``jssip/www/ua.html``) is a plain JsSIP user agent: it registers over the platform's
WebSocket URL with the ephemeral digest credentials the platform's HTTP API issued for an
access token (``username = "<expiry>:<user>"``, realm = the platform's domain), calls a test
number, proves media from ``RTCPeerConnection.getStats()`` (inbound audio ``packetsReceived``
grows, the DTLS transport is ``connected``), hangs up and unregisters.

What that covers on our side: SIP over WebSocket (RFC 7118), digest for REGISTER and INVITE
(RFC 7616), the SDP answer to a browser offer (BUNDLE/mid, rtcp-mux, Opus), ICE towards a full
ICE browser agent, DTLS-SRTP (RFC 5763/5764) with the browser in either role, symmetric RTP, and
BYE/un-REGISTER.

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
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from chromium import BUNDLE, Chromium, PageHost, chromium_binary, in_private_netns

pytestmark = pytest.mark.interop

HERE = Path(__file__).resolve()
SCENARIO_TIMEOUT = 40.0
"""Upper bound for one scenario inside the namespace (Chromium's lifetime is the same)."""
RESULT_PREFIX = "RESULT "
ECHO_ENERGY = 0.01
"""Inbound totalAudioEnergy that proves the echo: Chromium's fake microphone beeps, the platform
decodes and re-encodes it, the page hears it back (silence stays near 1e-9)."""


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


async def scenario_echo() -> dict[str, Any]:
    """JsSIP registers with platform-issued credentials, calls ``echo``, proves media, hangs up."""
    from voice_sdk.server import Platform, PlatformConfig

    platform = Platform(PlatformConfig(host="127.0.0.1"))
    urls = await platform.start()
    host = PageHost()
    await host.start()
    result: dict[str, Any] = {"urls": urls}
    chrome: Chromium | None = None
    try:
        async with aiohttp.ClientSession() as http:
            creds = await _credentials(http, urls, "browser1")
        result["credentials"] = {k: creds[k] for k in ("sip_uri", "username", "realm", "ws_url")}
        url = host.add_page("caller", _page_config(creds, mode="call", target=f"sip:echo@{creds['realm']}",
                                                    min_audio_energy=ECHO_ENERGY))
        chrome = Chromium(url, lifetime=SCENARIO_TIMEOUT)
        async with chrome:
            await host.wait_ready("caller", 15)
            result["bindings_registered"] = _bindings(platform, "browser1")
            result["report"] = await host.wait_report("caller", SCENARIO_TIMEOUT - 10)
        result["calls_after"] = len(platform.calls)
        result["bindings_after"] = _bindings(platform, "browser1")
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        result["page_log"] = host.logs.get("caller", [])
        if chrome is not None:
            result["chromium"] = chrome.stderr_lines[-60:]
        await host.close()
        await platform.close()
    return result


SCENARIOS = {"echo": scenario_echo}


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
    argv = in_private_netns([sys.executable, str(HERE), name])
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, cwd=HERE.parent.parent.parent)
    try:
        out, err = proc.communicate(timeout=SCENARIO_TIMEOUT + 20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"scenario {name} did not finish in time\n{err[-4000:]}")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # anything left in the scenario's session
    lines = [ln for ln in out.splitlines() if ln.startswith(RESULT_PREFIX)]
    if not lines:
        pytest.fail(f"scenario {name} exited {proc.returncode} without a result\n{out[-2000:]}\n{err[-4000:]}")
    result: dict[str, Any] = json.loads(lines[-1][len(RESULT_PREFIX):])
    result["elapsed"] = time.monotonic() - started
    result["stderr"] = err.splitlines()[-80:]
    return result


def _explain(result: dict[str, Any]) -> str:
    report = result.get("report") or {}
    parts = ["page log:", *result.get("page_log", []), "platform log:", *result.get("stderr", []),
             "chromium:", *result.get("chromium", [])]
    if report.get("remoteSdp"):
        parts += ["answer SDP:", report["remoteSdp"]]
    if report.get("samples"):
        parts += ["last getStats sample:", json.dumps(report["samples"][-1])]
    return "\n".join(str(p) for p in parts)


def test_jssip_registers_and_calls_echo() -> None:
    _require_browser()
    result = run_scenario("echo")
    why = _explain(result)
    assert "error" not in result, f"{result.get('error')}\n{why}"
    report = result["report"]
    assert report["registered"], why
    assert result["credentials"]["username"].endswith(":browser1"), why
    assert result["credentials"]["realm"] == "voice.localhost", why
    assert any("via ws" in b for b in result["bindings_registered"]), why
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
    assert media["inbound"]["totalAudioEnergy"] >= ECHO_ENERGY, why  # our own beeps came back

    # clean hang-up: BYE answered, the platform forgot the call, un-REGISTER answered
    assert (report["endCause"], report["endOriginator"]) == ("Terminated", "local"), why
    assert result["calls_after"] == 0, why
    assert report["unregistered"], why
    assert result["bindings_after"] == [], why


if __name__ == "__main__":
    main()
