"""The high-level voice_sdk Device against real peers: baresip through Kamailio, and a sipp UAS.

ICE + DTLS-SRTP with baresip (issue 8, "Real peers in CI"). baresip's ICE module never uses
127.x candidates, so Kamailio, baresip and the Device all run inside one private network
namespace (:mod:`netns`: ``lo`` plus a veth pair with both ends inside, no route out):

* Kamailio (``kamailio/kamailio.cfg``: registrar with digest, record-routing proxy) listens on
  the namespace's 127.0.0.1, UDP and WebSocket (RFC 7118);
* baresip (``device_peers/*.template``) registers ``bob@lab.local`` over UDP with digest, offers
  and answers ``mediaenc=dtls_srtp;medianat=ice`` with media on veth address B, plays a 440 Hz
  ``ausine`` and dumps what it decodes (``sndfile``);
* the Device (:mod:`device_peer`, a subprocess started with ``ip netns exec``) registers
  ``alice@lab.local`` over WebSocket with ``SipCredentials(uri, password, ws_url=...)``,
  ``media_security="dtls"`` and ``local_address`` = veth address A, sends a 1000 Hz tone and
  records what it plays out.

``test_device_calls_baresip_over_ws``: ``device.connect("sip:bob@lab.local")`` → Kamailio → baresip;
the call becomes ``accepted`` (answered and media flowing) with an ICE pair on the veth
addresses and a DTLS-SRTP profile on both sides; each side hears the other's tone (dominant
frequency of the recordings); ``send_digits`` sends RFC 4733 events that baresip reports
(``received event: 'X'``), in order; ``disconnect()`` ends baresip's call too.

``test_baresip_calls_device_over_ws``: baresip dials ``sip:alice@lab.local``; Kamailio delivers
the INVITE over the Device's WebSocket; the Device's ``incoming`` call stays pending until
``accept()``, then media flows both ways; baresip's BYE ends it (``remote hangup``).

``test_device_udp_plain_rtp_to_sipp``: in the test's own namespace on 127.0.0.1, the Device
registers over UDP with ``SipCredentials(proxy="udp:127.0.0.1:<kamailio>")`` and
``media_security="none"`` and calls a sipp UAS (``uas_proxy.xml`` behind Kamailio) that
answers PCMA/PCMU and echoes RTP (``-rtp_echo``): the call is accepted with media flowing,
the Device hears its own tone back, and ``disconnect()`` ends it cleanly (sipp counts one
successful call: BYE answered 200).

Every process is bounded (its own limit where it has one, ``timeout`` around it) and stopped
by its own process-group id in the fixture teardown, before the namespace is deleted.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from netns import PrivateNetns, remove_stale
from peers import (
    DOMAIN,
    PASSWORD,
    Kamailio,
    PeerError,
    PeerProcess,
    Sipp,
    kamailio_fixture,  # noqa: F401  (the kamailio fixture)
    render_kamailio_cfg,
)

from conftest import require, require_root

pytestmark = pytest.mark.interop

HERE = Path(__file__).resolve().parent
DEVICE_PEER = HERE / "device_peer.py"
TEMPLATES = HERE / "device_peers"
DEVICE_TONE = 1000.0
BARESIP_TONE = 440.0
DIGITS = "159#*0"
CALL_SECONDS = 3.0
# fixed ports are fine in a namespace made for one test: nothing else lives there
KAM_SIP_PORT = 5060
KAM_WS_PORT = 8080
BARESIP_SIP_PORT = 5080
BARESIP_CTRL_PORT = 4444
PEER_LIFETIME = 40.0

# baresip's names for the RFC 5764 profiles
PROFILE_NAMES = {
    "SRTP_AES128_CM_HMAC_SHA1_80": "AES_CM_128_HMAC_SHA1_80",
    "SRTP_AES128_CM_HMAC_SHA1_32": "AES_CM_128_HMAC_SHA1_32",
    "SRTP_AEAD_AES_128_GCM": "AEAD_AES_128_GCM",
    "SRTP_AEAD_AES_256_GCM": "AEAD_AES_256_GCM",
}


# -- audio checks ---------------------------------------------------------------------------------------


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """First channel as float, and the sample rate."""
    with wave.open(str(path), "rb") as w:
        channels, rate = w.getnchannels(), w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    return pcm.reshape(-1, channels)[:, 0], rate


def tone_of(pcm: np.ndarray, rate: int) -> tuple[float, float]:
    """(dominant frequency in Hz, share of the energy within ±20 Hz of it)."""
    spec = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm)))) ** 2
    freqs = np.fft.rfftfreq(len(pcm), 1.0 / rate)
    k = int(spec.argmax())
    return float(freqs[k]), float(spec[np.abs(freqs - freqs[k]) <= 20].sum() / max(spec.sum(), 1e-9))


def check_tone(pcm: np.ndarray, rate: int, expected: float, min_seconds: float, who: str) -> None:
    """The audible part (trimmed by 100 ms each side) lasts ``min_seconds`` and is the ``expected`` tone."""
    loud = np.nonzero(np.abs(pcm) > 300)[0]
    seg = pcm[loud[0] + rate // 10: loud[-1] - rate // 10] if len(loud) else pcm[:0]
    assert len(seg) >= min_seconds * rate, f"{who}: only {len(seg) / rate:.2f} s of audio"
    freq, purity = tone_of(seg, rate)
    assert abs(freq - expected) < 5.0 and purity > 0.9, \
        f"{who}: heard {freq:.1f} Hz (purity {purity:.3f}), expected {expected} Hz"
    rms = float(np.sqrt(np.mean(seg ** 2)))
    assert rms > 500, f"{who}: tone too quiet (rms {rms:.0f})"


# -- the namespace lab ------------------------------------------------------------------------------------


class Lab:
    """One private namespace with Kamailio and baresip in it, and the Device runs."""

    def __init__(self, ns: PrivateNetns, tmp: Path) -> None:
        self.ns = ns
        self.tmp = tmp
        self.procs: list[PeerProcess] = []
        self.baresip: PeerProcess | None = None
        self.kamailio: PeerProcess | None = None
        self.passed = False

    def spawn(self, name: str, command: list[str], lifetime: float = PEER_LIFETIME) -> PeerProcess:
        proc = PeerProcess(name, self.ns.argv(command), lifetime=lifetime,
                           log_path=self.tmp / f"{name}-{len(self.procs)}.log", cwd=self.tmp)
        self.procs.append(proc)
        return proc.start()

    def start_kamailio(self) -> None:
        run = self.tmp / "kamailio"
        run.mkdir()
        ctl = run / "ctl"
        cfg = run / "kamailio.cfg"
        cfg.write_text(render_kamailio_cfg({"SIP_PORT": KAM_SIP_PORT, "WS_PORT": KAM_WS_PORT,
                                            "PASSWORD": PASSWORD, "CTL_SOCK": str(ctl)}))
        self.kamailio = self.spawn("kamailio", ["kamailio", "-f", str(cfg), "-DD", "-E", "-m", "64", "-M", "8",
                                                "-Y", str(run), "-w", str(run)])
        # listeners are bound before the workers fork; the ctl socket answers once they run
        end = time.monotonic() + 10
        while True:
            out = self.ns.run(["kamcmd", "-s", f"unix:{ctl}", "core.uptime"], timeout=5)
            if out.returncode == 0 and "uptime" in out.stdout:
                return
            if not self.kamailio.alive() or time.monotonic() > end:
                raise PeerError(f"kamailio not ready:\n{self.kamailio.log_tail()}\n{out.stderr}")
            time.sleep(0.05)

    def start_baresip(self, user: str = "bob") -> PeerProcess:
        d = self.tmp / "baresip"
        (d / "snd").mkdir(parents=True)
        subs = {"ADDR": self.ns.addr_b, "SIPPORT": str(BARESIP_SIP_PORT), "CTRLPORT": str(BARESIP_CTRL_PORT),
                "SNDPATH": str(d / "snd"), "USER": user, "PASSWORD": PASSWORD, "KAMPORT": str(KAM_SIP_PORT),
                "CODECS": "opus/48000/2,pcmu"}
        for name in ("config", "accounts"):
            text = (TEMPLATES / f"{name}.template").read_text()
            for key, value in subs.items():
                text = text.replace(f"@{key}@", value)
            assert not re.search(r"^[^#]*@[A-Z]+@", text, re.M), f"unfilled placeholder in {name}"
            (d / name).write_text(text)
        (d / "contacts").write_text("")
        seconds = int(PEER_LIFETIME) - 5
        self.baresip = self.spawn("baresip", ["baresip", "-f", str(d), "-t", str(seconds)])
        self.baresip.wait_for_log(rf"{user}@{DOMAIN}: \{{0/UDP/v4\}} 200 OK", 8.0)
        return self.baresip

    def run_device(self, *args: str, timeout: float = 30.0) -> dict[str, Any]:
        """device_peer.py in the namespace (our Device on veth address A); its JSON report."""
        report = self.tmp / "device.json"
        proc = self.spawn("device", [sys.executable, str(DEVICE_PEER), "--aor", f"sip:alice@{DOMAIN}",
                                     "--password", PASSWORD, "--ws-url", f"ws://127.0.0.1:{KAM_WS_PORT}",
                                     "--security", "dtls", "--local", self.ns.addr_a, "--tone", str(DEVICE_TONE),
                                     "--report", str(report), "--recording", str(self.tmp / "device.wav"),
                                     "--timeout", str(timeout - 5), *args], lifetime=timeout)
        try:
            proc.wait(timeout + 3)
        except PeerError:
            proc.stop()
        assert report.exists(), f"the Device wrote no report\n{self.diagnostics()}"
        return dict(json.loads(report.read_text()))

    def baresip_log(self) -> str:
        return self.baresip.log() if self.baresip is not None else ""

    def baresip_recording(self) -> tuple[np.ndarray, int]:
        dumps = sorted((self.tmp / "baresip" / "snd").glob("*-dec.wav"))
        assert len(dumps) == 1, f"expected one decoded-audio dump from baresip, found {dumps}"
        return read_wav(dumps[0])

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()

    def diagnostics(self) -> str:
        return "\n".join(f"--- {p.name} ({p.log_path.name}) ---\n{p.log_tail(40)}" for p in self.procs)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    require("baresip", "kamailio", "kamcmd", "ip", "timeout")
    require_root()
    remove_stale()
    ns = PrivateNetns().create()
    the_lab = Lab(ns, tmp_path)
    try:
        the_lab.start_kamailio()
        yield the_lab
    finally:
        try:
            the_lab.stop_all()
            if not the_lab.passed:
                print(the_lab.diagnostics())  # shown by pytest with the failure
        finally:
            ns.destroy()


# -- checks shared by the two baresip tests ------------------------------------------------------------------


def events(report: dict[str, Any], what: str) -> list[dict[str, Any]]:
    return [e for e in report["events"] if e["what"] == what]


def check_device_call(lab: Lab, report: dict[str, Any]) -> dict[str, Any]:
    """Registered over WS, accepted with ICE on the veth pair and DTLS-SRTP, quality samples, audio."""
    diag = json.dumps(report, indent=1)[:5000]
    assert report["ok"], f"the Device's scenario failed\n{diag}\n{lab.diagnostics()}"
    assert report["registered"] and events(report, "device.registered"), diag
    assert not events(report, "call.error") and not events(report, "device.error"), diag
    assert len(events(report, "call.accepted")) == 1, diag
    snap: dict[str, Any] = report["connected"]
    assert snap["security"] == "dtls" and snap["codec"] == "opus", diag
    assert snap["ice_state"] in ("connected", "completed"), diag
    pair = snap["selected_pair"]
    assert pair is not None and pair["local"][0] == lab.ns.addr_a, diag
    assert pair["remote"][0] in (lab.ns.addr_a, lab.ns.addr_b), diag
    assert snap["dtls_srtp_profile"] in PROFILE_NAMES, diag
    # quality every second while accepted: opus, host candidates, no loss on a veth pair
    assert len(report["quality"]) >= 2, diag
    last = report["quality"][-1]
    assert last["codec"] == "opus" and last["local_candidate_type"] == "host", last
    assert last["inbound_loss"] <= 0.02, last
    final = report["before_hangup"]
    assert final["packets_sent"] >= 100 and final["packets_received"] >= 100, final
    assert report["final_status"] == "disconnected" and report["unregistered"], diag
    return snap


def check_baresip(lab: Lab, snap: dict[str, Any], *, min_seconds: float = 2.0) -> str:
    """baresip's side of ICE and DTLS-SRTP, the audio each side heard."""
    text = lab.baresip_log()
    assert "connectivity check is complete" in text, f"baresip: ICE did not complete\n{lab.diagnostics()}"
    assert "verified sha-256 fingerprint OK" in text, f"baresip did not verify our fingerprint\n{text[-3000:]}"
    m = re.search(r"DTLS-SRTP complete \(audio/RTP\) Profile=(\S+)", text)
    assert m and m.group(1) == PROFILE_NAMES[snap["dtls_srtp_profile"]], f"profiles: {m and m.group(1)} vs {snap}"
    pcm, rate = read_wav(lab.tmp / "device.wav")
    check_tone(pcm, rate, BARESIP_TONE, 2.0, "the Device (baresip's ausine)")
    pcm, rate = lab.baresip_recording()
    check_tone(pcm, rate, DEVICE_TONE, min_seconds, "baresip (the Device's tone)")
    return text


# -- the tests ---------------------------------------------------------------------------------------------------


def test_device_calls_baresip_over_ws(lab: Lab) -> None:
    """Device (WS) → Kamailio → baresip (UDP): ICE + DTLS-SRTP, tones both ways, RFC 4733 digits, BYE."""
    lab.start_baresip()
    report = lab.run_device("--mode", "call", "--target", f"sip:bob@{DOMAIN}", "--digits", DIGITS,
                            "--seconds", str(CALL_SECONDS), "--baresip-ctrl", str(BARESIP_CTRL_PORT))
    snap = check_device_call(lab, report)
    assert snap["dtls_role"] == "server", "baresip answers a=setup:active: the Device is the DTLS server"
    assert report["disconnect_reason"] == "local hangup"
    assert lab.baresip is not None
    lab.baresip.wait_for_log(r"Call with sip:alice@lab\.local terminated", 5.0)
    # RFC 4733 §2.5.1.5: no audio while an event is sent (6 digits x 190 ms), and baresip's dump
    # holds decoded audio frames only
    text = check_baresip(lab, snap, min_seconds=1.2)
    # baresip logs every telephone-event it receives, once at its start (end=0) and once at its end
    # (E bit, RFC 4733 §2.5.1.3: the three end packets count as one)
    heard = re.findall(r"received event: '(.)' \(end=([01])\)", text)
    expected = [(d, e) for d in DIGITS for e in "01"]
    assert heard == expected, f"baresip reported {heard}, we sent {DIGITS!r}"
    dtmf = [e["param"] for e in report["baresip_events"] if e["type"] == "CALL_DTMF_START"]
    assert "".join(dtmf) == DIGITS, report["baresip_events"]
    lab.passed = True


def test_baresip_calls_device_over_ws(lab: Lab) -> None:
    """baresip → Kamailio → Device (WS): incoming stays pending until accept(), audio both ways, remote BYE."""
    lab.start_baresip()
    report = lab.run_device("--mode", "answer", "--baresip-ctrl", str(BARESIP_CTRL_PORT),
                            "--dial-uri", f"sip:alice@{DOMAIN}", "--seconds", str(CALL_SECONDS))
    (incoming,) = events(report, "device.incoming")
    assert incoming["direction"] == "incoming" and incoming["remote_identity"].startswith(f"sip:bob@{DOMAIN}")
    assert report["status_before_accept"] == "pending"
    snap = check_device_call(lab, report)
    assert snap["dtls_role"] == "client", "the Device answers baresip's actpass with a=setup:active"
    assert report["disconnect_reason"] == "remote hangup"
    text = check_baresip(lab, snap)
    assert "Call with sip:alice@lab.local terminated" in text or "terminated" in text
    types = [e["type"] for e in report["baresip_events"]]
    assert "CALL_ESTABLISHED" in types and "CALL_CLOSED" in types, types
    lab.passed = True


def test_device_udp_plain_rtp_to_sipp(kamailio: Kamailio, tmp_path: Path) -> None:
    """Device (UDP, plain RTP) → Kamailio → sipp UAS echoing RTP: accepted with media, clean BYE."""
    require("sipp")
    from device_peer import main as device_main

    sipp = Sipp(tmp_path, "uas_proxy.xml", name="uas_echo", calls=1, timeout=20, extra=["-rtp_echo"]).start()
    report_path = tmp_path / "device.json"
    recording = tmp_path / "device.wav"

    async def register_sipp() -> None:
        from sipcore.cli import EXIT_OK, amain

        rc = await amain(["register", f"sip:echo@{DOMAIN}", "--password", PASSWORD, "--expires", "60",
                          "--contact", f"sip:echo@127.0.0.1:{sipp.local_port}", "--proxy", kamailio.udp])
        assert rc == EXIT_OK

    try:
        asyncio.run(asyncio.wait_for(register_sipp(), 10))
        rc = device_main(["--mode", "call", "--aor", f"sip:alice@{DOMAIN}", "--password", PASSWORD,
                          "--proxy", kamailio.udp, "--security", "none", "--local", "127.0.0.1",
                          "--target", f"sip:echo@{DOMAIN}", "--seconds", "2", "--tone", str(DEVICE_TONE),
                          "--report", str(report_path), "--recording", str(recording), "--timeout", "20",
                          "--log-level", "WARNING"])
        result = sipp.result(10)
    finally:
        sipp.stop()
    report = json.loads(report_path.read_text())
    diag = json.dumps(report, indent=1)[:5000]
    assert rc == 0 and report["ok"], diag
    assert not events(report, "call.error"), diag
    assert len(events(report, "call.ringing")) == 1, diag  # sipp's 180 through Kamailio
    snap: dict[str, Any] = report["connected"]
    assert snap["security"] == "none" and snap["codec"] == "PCMA" and snap["ice_state"] is None, diag
    final = report["before_hangup"]
    assert final["packets_sent"] >= 80 and final["packets_received"] >= 80, final
    assert report["final_status"] == "disconnected" and report["disconnect_reason"] == "local hangup", diag
    pcm, rate = read_wav(recording)
    check_tone(pcm, rate, DEVICE_TONE, 1.5, "the Device (its own tone echoed by sipp)")
    assert result.ok and result.stats is not None and result.stats.successful == 1, result.log
    assert "BYE sip:" in sipp.messages()
