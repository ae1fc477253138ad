"""DTLS-SRTP with a real browser through a real proxy: JsSIP in Chromium ↔ Kamailio (WebSocket) ↔ voice_sdk.

Both user agents register with digest over SIP-over-WebSocket (RFC 7118) to one Kamailio
(``peers.Kamailio`` with ``WITH_INVITE_AUTH``: REGISTER and INVITE are challenged): the
voice_sdk Device as ``alice@lab.local`` (``SipCredentials(ws_url=...)``,
``media_security="dtls"``), JsSIP as ``bob@lab.local``. Kamailio record-routes the INVITE, so
ACK and BYE must follow the route set (RFC 3261 §12.1.1: the UAS copies Record-Route into its
2xx). Media is direct: ICE (RFC 8445) on 127.0.0.1, DTLS-SRTP (RFC 5763/5764), Opus.

* ``browser_calls_device``: bob calls alice, the Device answers (440 Hz tone out, a BufferSink in),
  the page talks for a few seconds and hangs up.
* ``device_calls_browser``: alice calls bob, JsSIP answers, the Device hangs up.

Each side proves media: the page from ``RTCPeerConnection.getStats()`` (DTLS transport
``connected``, SRTP cipher, inbound Opus packets growing, audible energy of our tone) and the
Device from what it decoded: Chromium's fake microphone beeps (a 400 Hz square wave, 20 ms every
500 ms), recognised by their rhythm and by a spectrum with odd harmonics of 400 Hz only.

Each scenario runs in a child process (``jssip_kamailio.py``) inside a fresh network namespace
holding only ``lo`` (``unshare --net``), so 127.0.0.1 is Chromium's only ICE candidate and
nothing leaves the machine. Kamailio and Chromium are bounded by their own lifetimes and killed
by process group id; the child is bounded by a subprocess timeout and killed the same way.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import pytest
from chromium import BUNDLE, chromium_binary, run_isolated_scenario
from jssip_kamailio import (
    BEEP_HZ,
    BEEP_INTERVAL,
    BROWSER_USER,
    DEVICE_USER,
    MIN_PACKETS,
    RESULT_PREFIX,
    SCENARIO_TIMEOUT,
    TONE_ENERGY,
)

pytestmark = pytest.mark.interop

SCENARIO = Path(__file__).resolve().parent / "jssip_kamailio.py"
ROOT = SCENARIO.parents[2]


def _require() -> None:
    from conftest import missing_peer, require, require_root

    require("chromium", "kamailio", "kamcmd", "unshare", "ip", "timeout")
    require_root()
    if chromium_binary() is None:
        missing_peer("chromium not installed")
    if not BUNDLE.is_file() or BUNDLE.stat().st_size == 0:
        missing_peer(f"JsSIP bundle {BUNDLE} missing (run tests/interop/install.sh)")


def run_scenario(name: str) -> dict[str, Any]:
    """Run one scenario in a private network namespace; its RESULT, or a failed test."""
    return run_isolated_scenario(SCENARIO, name, timeout=SCENARIO_TIMEOUT + 20, result_prefix=RESULT_PREFIX,
                                 cwd=ROOT)


def _explain(result: dict[str, Any]) -> str:
    """Everything a failure needs: page logs, Chromium, our log, Kamailio's log, both SDPs, the Device."""
    report = result.get("report") or {}
    parts: list[Any] = [f"timeline: {result.get('timeline')}"]
    for key, value in result.items():
        if key.startswith(("page_log:", "chromium:")):
            parts += [f"{key}:", *value]
    parts += ["scenario log (voice_sdk):", *result.get("stderr", [])]
    parts += ["kamailio log:", *result.get("kamailio_log", [])[-60:]]
    if report.get("localSdp"):
        parts += ["browser SDP:", report["localSdp"]]
    if report.get("remoteSdp"):
        parts += ["our SDP:", report["remoteSdp"]]
    if report.get("samples"):
        parts += ["last getStats sample:", json.dumps(report["samples"][-1])]
    if "device" in result:
        parts += ["device:", json.dumps({k: v for k, v in result["device"].items() if k != "remote_sdp"})]
    return "\n".join(str(p) for p in parts)


def _assert_registrations(result: dict[str, Any], why: str) -> None:
    """Both registered over WebSocket at Kamailio, and both bindings were removed at the end."""
    assert [c.endswith(";transport=ws") for c in result["contacts_alice"]] == [True], why
    assert [c.endswith(";transport=ws") for c in result["contacts_bob"]] == [True], why
    assert result["contacts_after"] == [], why


def _assert_routed_by_kamailio(result: dict[str, Any], callee: str, why: str) -> None:
    """Kamailio found the callee by location lookup and stayed in the dialog (Record-Route)."""
    ws_port = result["kamailio"]["ws"]
    log = "\n".join(result["kamailio_log"])
    assert f"REQ INVITE sip:{callee}@lab.local" in log and "LOOKUP INVITE -> ru=" in log, why
    route_set = result["device"]["route_set"]
    assert route_set and f"127.0.0.1:{ws_port};transport=ws" in route_set[0], why


def _assert_browser_media(report: dict[str, Any], why: str) -> None:
    """getStats: DTLS connected with an SRTP cipher, inbound Opus growing, our tone audible."""
    assert report["registered"] and report["unregistered"], why
    assert report["error"] is None, f"{report['error']}\n{why}"
    media = report["media"]
    assert media is not None, why
    assert media["transport"]["dtlsState"] == "connected", why
    assert media["transport"]["srtpCipher"], why
    assert media["codec"]["mimeType"].lower() == "audio/opus", why
    assert media["pair"]["remote"].startswith("127.0.0.1:"), why
    assert media["inbound"]["packetsReceived"] >= MIN_PACKETS, why
    assert media["outbound"]["packetsSent"] > 0, why
    grew = [s["inbound"]["packetsReceived"] for s in report["samples"] if s.get("inbound")]
    assert len(grew) >= 2 and grew[-1] > grew[0], why
    assert media["inbound"]["totalAudioEnergy"] >= TONE_ENERGY, why


def _odd_multiple_of_beep(freq: float | None) -> bool:
    if freq is None:
        return False
    k = round(freq / BEEP_HZ)
    return k % 2 == 1 and abs(freq - k * BEEP_HZ) <= 25.0


def _assert_device_heard_beeps(device: dict[str, Any], why: str) -> None:
    """The Device decoded Chromium's SRTP-protected Opus, and it is the fake microphone's beeping."""
    assert device["security"] == "dtls" and device["dtls"] is not None, why
    assert device["codec"] == "opus", why
    assert device["packets_received"] >= 2 * MIN_PACKETS and device["packets_sent"] >= 2 * MIN_PACKETS, why
    audio = device["audio"]
    assert audio["seconds"] >= 2.0 and audio["peak"] > 1000, why
    # the rhythm: 20 ms beeps every 500 ms
    assert audio["beeps"] >= 3, why
    assert abs(statistics.median(audio["intervals"]) - BEEP_INTERVAL) <= 0.05, why
    # the spectrum: a 400 Hz square wave has odd harmonics only
    assert _odd_multiple_of_beep(audio["dominant_hz"]), why
    assert audio["odd_share"] >= 0.3 and audio["even_share"] <= 0.05, why


def test_jssip_calls_device_through_kamailio() -> None:
    _require()
    result = run_scenario("browser_calls_device")
    why = _explain(result)
    assert "error" not in result, f"{result.get('error')}\n{why}"
    _assert_registrations(result, why)
    report = result["report"]
    _assert_browser_media(report, why)
    final = report["final"]  # sampled after talking for a while: still connected, still growing
    assert final["transport"]["dtlsState"] == "connected", why
    assert final["inbound"]["packetsReceived"] >= report["media"]["inbound"]["packetsReceived"] + MIN_PACKETS, why
    assert (report["endCause"], report["endOriginator"]) == ("Terminated", "local"), why
    assert "device" in result, why
    device = result["device"]
    assert (device["status"], device["reason"]) == ("disconnected", "remote hangup"), why
    assert device["dtls"]["role"] == "client", why  # the browser offered actpass, we answered active
    _assert_routed_by_kamailio(result, DEVICE_USER, why)
    _assert_device_heard_beeps(device, why)
    assert result["elapsed"] < SCENARIO_TIMEOUT, why


def test_device_calls_jssip_through_kamailio() -> None:
    _require()
    result = run_scenario("device_calls_browser")
    why = _explain(result)
    assert "error" not in result, f"{result.get('error')}\n{why}"
    _assert_registrations(result, why)
    report = result["report"]
    _assert_browser_media(report, why)
    assert report["media"]["transport"]["dtlsRole"] == "client", why  # we offered actpass, Chromium is active
    assert (report["endCause"], report["endOriginator"]) == ("Terminated", "remote"), why
    device = result["device"]
    assert (device["status"], device["reason"]) == ("disconnected", "local hangup"), why
    assert device["dtls"]["role"] == "server", why
    _assert_routed_by_kamailio(result, BROWSER_USER, why)
    _assert_device_heard_beeps(device, why)
    assert result["elapsed"] < SCENARIO_TIMEOUT, why
