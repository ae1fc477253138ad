"""ICE + DTLS-SRTP interop with baresip 1.0 (``medianat=ice``, ``mediaenc=dtls_srtp``), both call directions.

baresip's ICE module never uses 127.x candidates, so every test runs in its own private network
namespace (:mod:`netns`): ``lo`` plus a veth pair with both ends inside, 10.77.N.1 and 10.77.N.2,
no route out. baresip (a ``regint=0`` account, answering straight on its SIP port) binds
10.77.N.2; our side is :mod:`ice_peer` (sipcore UserAgent + rtpcore MediaSession with
``security="dtls"`` + AioMediaDriver) on 10.77.N.1, started with ``ip netns exec``.

What each call must show:

* ICE: our agent reaches connected/completed with a selected host pair on the veth addresses,
  and baresip logs ``connectivity check is complete``;
* DTLS: the handshake completes with an SRTP profile on our side (cipher suite, profile,
  extended master secret) and baresip logs ``verified sha-256 fingerprint OK`` and
  ``DTLS-SRTP complete`` with the same profile;
* audio both ways: we play out baresip's 440 Hz ``ausine`` (dominant frequency of our
  recording), baresip's sndfile recording of what it decoded is our 1000 Hz tone, and its
  packet counters match; with tshark present, a bounded capture in the namespace also shows
  STUN checks, the DTLS handshake and SRTP flowing in both directions;
* BYE ends the call on both sides.

The third test restarts ICE in mid-call (re-INVITE with new ufrag/pwd, RFC 8445 §9 and RFC 8839
§4.4.1.1.1): the new generation must select a pair again while the audio carries on without a
gap. baresip 1.0 answers such an offer with its old credentials (it does not restart its own
side) but answers our new-generation checks, which is all the restarting agent needs.

Every process is bounded (baresip ``-t`` plus ``timeout``, the peer's own ``--timeout`` plus a
subprocess timeout, tshark ``-a duration``) and stopped by its PID in the fixture teardown,
before the namespace is deleted.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import select
import shutil
import signal
import subprocess
import sys
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from netns import PrivateNetns, remove_stale

from conftest import require, require_root

pytestmark = pytest.mark.interop

HERE = Path(__file__).resolve().parent
PEER = HERE / "ice_peer.py"
TEMPLATES = HERE / "baresip_dtls"
OUR_TONE = 1000.0
BARESIP_TONE = 440.0
BARESIP_USER = "bob"

# baresip's names for the RFC 5764 profiles
PROFILE_NAMES = {
    "SRTP_AES128_CM_HMAC_SHA1_80": "AES_CM_128_HMAC_SHA1_80",
    "SRTP_AES128_CM_HMAC_SHA1_32": "AES_CM_128_HMAC_SHA1_32",
    "SRTP_AEAD_AES_128_GCM": "AEAD_AES_128_GCM",
    "SRTP_AEAD_AES_256_GCM": "AEAD_AES_256_GCM",
}


# -- processes ------------------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path


@dataclass
class Lab:
    """One namespace, the processes started in it, and their files."""

    ns: PrivateNetns
    tmp: Path
    procs: list[Proc] = field(default_factory=list)
    capture_file: Path | None = None
    baresip_sip_port: int = 0
    passed: bool = False
    """Set by a test that got to its end: the teardown then skips the (slow) diagnostics."""

    # baresip
    def baresip_profile(self) -> Path:
        """Config directory with the @PLACEHOLDERS@ filled; one per test."""
        d = self.tmp / "baresip"
        (d / "snd").mkdir(parents=True, exist_ok=True)
        self.baresip_sip_port = 5100 + secrets.randbelow(800)  # the namespace is fresh: every port is free
        subs = {"ADDR": self.ns.addr_b, "SIPPORT": str(self.baresip_sip_port), "RTPPORTS": "20000-20099",
                "SNDPATH": str(d / "snd"), "USER": BARESIP_USER, "CODECS": "opus/48000/2,pcmu"}
        for name in ("config", "accounts"):
            text = (TEMPLATES / f"{name}.template").read_text()
            for key, value in subs.items():
                text = text.replace(f"@{key}@", value)
            assert not re.search(r"^[^#]*@[A-Z]+@", text, re.M), f"unfilled placeholder in {name}"
            (d / name).write_text(text)
        (d / "contacts").write_text("")
        return d

    def start_baresip(self, seconds: int, commands: tuple[str, ...] = ()) -> Proc:
        profile = self.baresip_profile()
        argv = ["timeout", "-k", "2", str(seconds + 5), "baresip", "-f", str(profile), "-t", str(seconds)]
        for cmd in commands:
            argv += ["-e", cmd]
        proc = self._spawn("baresip", argv, stdout_pipe=False)
        if not commands:
            wait_for_line(proc.log, "baresip is ready", 5.0, proc)
        return proc

    # our side
    def peer_argv(self, mode: str, *extra: str) -> list[str]:
        return [sys.executable, str(PEER), "--local", self.ns.addr_a, "--mode", mode,
                "--report", str(self.tmp / "report.json"), "--recording", str(self.tmp / "ours.wav"),
                "--tone", str(OUR_TONE), *extra]

    def run_peer(self, *args: str, timeout: float) -> dict[str, Any]:
        proc = self._spawn("peer", self.peer_argv("call", *args), stdout_pipe=False)
        try:
            proc.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop(proc)
        return self.report()

    def start_answering_peer(self, *args: str, timeout: float) -> tuple[Proc, int]:
        proc = self._spawn("peer", self.peer_argv("answer", *args), stdout_pipe=True)
        line = read_line(proc, timeout)
        m = re.match(r"READY (\d+)", line)
        assert m, f"our answering peer did not start: {line!r}\n{tail(proc.log)}"
        return proc, int(m.group(1))

    def report(self) -> dict[str, Any]:
        path = self.tmp / "report.json"
        assert path.exists(), f"our peer wrote no report\n{self.diagnostics()}"
        return dict(json.loads(path.read_text()))

    # bounded capture for the wire-level checks and for diagnosis
    def start_capture(self, seconds: int) -> None:
        if shutil.which("tshark") is None:
            return
        self.capture_file = self.tmp / "capture.pcapng"
        proc = self._spawn("tshark", ["timeout", "-k", "2", str(seconds + 3), "tshark", "-i", "any", "-q",
                                      "-a", f"duration:{seconds}", "-w", str(self.capture_file)],
                           stdout_pipe=False)
        wait_for_line(proc.log, "Capturing on", 10.0, proc)

    def stop_capture(self) -> None:
        for proc in self.procs:
            if proc.name == "tshark":
                stop(proc)

    def _spawn(self, name: str, argv: list[str], *, stdout_pipe: bool) -> Proc:
        log = self.tmp / f"{name}-{len(self.procs)}.log"
        with open(log, "wb") as fh:
            popen = subprocess.Popen(self.ns.argv(argv), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE if stdout_pipe else fh,
                                     stderr=fh, start_new_session=True)
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            stop(proc)

    def diagnostics(self) -> str:
        parts = [f"--- {p.name} ({p.log.name}, rc={p.popen.poll()}) ---\n{tail(p.log)}" for p in self.procs]
        if self.capture_file is not None and self.capture_file.exists():
            out = subprocess.run(["tshark", "-r", str(self.capture_file), "-Y", "sip || stun || dtls"],
                                 capture_output=True, text=True, timeout=20).stdout
            parts.append("--- capture (sip, stun, dtls) ---\n" + "\n".join(out.splitlines()[:60]))
        return "\n".join(parts)


def stop(proc: Proc, grace: float = 3.0) -> None:
    """TERM then KILL, by the PID we started (its own session: the whole group goes)."""
    p = proc.popen
    if p.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=grace)
    if p.stdout is not None:
        p.stdout.close()


def tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return "(no log)"
    text = re.sub(r"\[\d+:\d\d:\d\d\] audio=\S+ \(bit/s\)\s*", "", path.read_text(errors="replace"))
    return "\n".join(line for line in text.splitlines() if line.strip())[-6000:]


def wait_for_line(path: Path, needle: str, timeout: float, proc: Proc) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists() and needle in path.read_text(errors="replace"):
            return
        if proc.popen.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"{proc.name}: no {needle!r} within {timeout} s\n{tail(path)}")


def read_line(proc: Proc, timeout: float) -> str:
    assert proc.popen.stdout is not None
    ready, _, _ = select.select([proc.popen.stdout], [], [], timeout)
    if not ready:
        return ""
    return proc.popen.stdout.readline().decode(errors="replace").strip()


@pytest.fixture
def lab(tmp_path: Path) -> Any:
    require("baresip", "ip")
    require_root()
    remove_stale()
    ns = PrivateNetns().create()
    the_lab = Lab(ns, tmp_path)
    try:
        yield the_lab
    finally:
        try:
            the_lab.stop_all()
            if not the_lab.passed:
                print(the_lab.diagnostics())  # shown by pytest with the failure
        finally:
            ns.destroy()


# -- audio checks ----------------------------------------------------------------------------------


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """First channel as float, and the sample rate."""
    with wave.open(str(path), "rb") as w:
        channels, rate = w.getnchannels(), w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    return pcm.reshape(-1, channels)[:, 0], rate


def active(pcm: np.ndarray, rate: int, threshold: float = 300.0) -> np.ndarray:
    """From the first to the last clearly audible sample, trimmed by 100 ms each side."""
    loud = np.nonzero(np.abs(pcm) > threshold)[0]
    if len(loud) == 0:
        return pcm[:0]
    return pcm[loud[0] + rate // 10: loud[-1] - rate // 10]


def tone_of(pcm: np.ndarray, rate: int) -> tuple[float, float]:
    """(dominant frequency in Hz, share of the energy within ±20 Hz of it)."""
    if len(pcm) < rate // 10:
        return 0.0, 0.0
    spec = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm)))) ** 2
    freqs = np.fft.rfftfreq(len(pcm), 1.0 / rate)
    k = int(spec.argmax())
    return float(freqs[k]), float(spec[np.abs(freqs - freqs[k]) <= 20].sum() / spec.sum())


def longest_gap_ms(pcm: np.ndarray, rate: int, frame_ms: int = 20, threshold: float = 300.0) -> float:
    """Longest run of near-silent frames (a media interruption) inside the active part."""
    n = rate * frame_ms // 1000
    frames = pcm[: len(pcm) // n * n].reshape(-1, n)
    quiet = np.sqrt((frames ** 2).mean(axis=1)) < threshold
    longest = run = 0
    for q in quiet:
        run = run + 1 if q else 0
        longest = max(longest, run)
    return float(longest * frame_ms)


def check_tone(path: Path, expected: float, min_seconds: float, who: str) -> np.ndarray:
    pcm, rate = read_wav(path)
    seg = active(pcm, rate)
    assert len(seg) >= min_seconds * rate, f"{who}: only {len(seg) / rate:.2f} s of audio in {path.name}"
    freq, purity = tone_of(seg, rate)
    assert abs(freq - expected) < 5.0 and purity > 0.9, \
        f"{who}: heard {freq:.1f} Hz (purity {purity:.3f}), expected {expected} Hz"
    return seg


# -- call checks -----------------------------------------------------------------------------------


def events(report: dict[str, Any], what: str) -> list[dict[str, Any]]:
    return [e for e in report["events"] if e["what"] == what]


def check_connected(lab: Lab, report: dict[str, Any]) -> dict[str, Any]:
    """ICE pair on the veth addresses and DTLS-SRTP keys on our side."""
    diag = json.dumps(report, indent=1)[:4000]
    assert report["ok"], f"our peer failed\n{diag}"
    assert not events(report, "MediaFailed"), diag
    snap = report["connected"]
    assert snap["security"] == "dtls" and snap["codec"] == "opus", diag
    assert snap["ice_state"] in ("connected", "completed"), diag
    pair = snap["selected_pair"]
    veth = {lab.ns.addr_a, lab.ns.addr_b}
    assert pair is not None and pair["local"][0] == lab.ns.addr_a and pair["remote"][0] in veth, diag
    assert pair["local_type"] == "host" and pair["remote_type"] in ("host", "prflx"), diag
    assert snap["dtls_srtp_profile"] in PROFILE_NAMES and snap["dtls_cipher_suite"].startswith("TLS_ECDHE_"), diag
    assert snap["dtls_extended_master_secret"] is True, diag
    assert "a=ice-ufrag:" in report["remote_sdp"] and "UDP/TLS/RTP/SAVPF" in report["remote_sdp"], diag
    return snap


def check_baresip_log(lab: Lab, proc: Proc, snap: dict[str, Any], *, min_packets: int) -> None:
    text = proc.log.read_text(errors="replace")
    diag = tail(proc.log)
    assert "connectivity check is complete" in text, f"baresip: ICE did not complete\n{diag}"
    m = re.search(r"mnat 'ice' connected: raddr (\S+):(\d+)", text)
    ours = snap["selected_pair"]["local"]
    assert m and (m.group(1), int(m.group(2))) == (ours[0], ours[1]), \
        f"baresip's ICE path ({m and m.groups()}) is not our selected pair's local side {ours}"
    assert "verified sha-256 fingerprint OK" in text, f"baresip did not verify our fingerprint\n{diag}"
    m = re.search(r"DTLS-SRTP complete \(audio/RTP\) Profile=(\S+)", text)
    assert m, f"baresip: no DTLS-SRTP\n{diag}"
    assert m.group(1) == PROFILE_NAMES[snap["dtls_srtp_profile"]], f"profiles differ: {m.group(1)} vs {snap}"
    assert re.search(r"Call with \S+ terminated", text), f"baresip: the call did not end\n{diag}"
    stats = re.search(r"packets:\s+(\d+)\s+(\d+)", text)
    assert stats, f"baresip printed no RTP summary\n{diag}"
    sent, received = int(stats.group(1)), int(stats.group(2))
    assert sent >= min_packets and received >= min_packets, f"baresip sent {sent}, received {received}"
    errors = re.search(r"errors:\s+(\d+)\s+(\d+)", text)
    assert errors and errors.group(2) == "0", f"baresip: receive errors\n{diag}"


def check_audio(lab: Lab, *, min_seconds: float) -> tuple[np.ndarray, np.ndarray]:
    ours = check_tone(lab.tmp / "ours.wav", BARESIP_TONE, min_seconds, "our side (baresip's ausine)")
    dumps = sorted((lab.tmp / "baresip" / "snd").glob("*-dec.wav"))
    assert len(dumps) == 1, f"expected one decoded-audio dump from baresip, found {dumps}"
    theirs = check_tone(dumps[0], OUR_TONE, min_seconds, "baresip (our tone)")
    return ours, theirs


def check_wire(lab: Lab, report: dict[str, Any], snap: dict[str, Any]) -> None:
    """From the capture: STUN checks with our ufrag, a DTLS handshake, SRTP both ways on the pair."""
    if lab.capture_file is None:
        return
    lab.stop_capture()
    out = subprocess.run(["tshark", "-r", str(lab.capture_file), "-T", "fields", "-E", "separator=|",
                          "-e", "ip.src", "-e", "udp.srcport", "-e", "ip.dst", "-e", "udp.dstport",
                          "-e", "stun.att.username", "-e", "dtls.handshake.type", "-e", "_ws.col.Protocol"],
                         capture_output=True, text=True, timeout=30).stdout
    ours = (snap["selected_pair"]["local"][0], str(snap["selected_pair"]["local"][1]))
    theirs = (snap["selected_pair"]["remote"][0], str(snap["selected_pair"]["remote"][1]))
    ufrag = snap["ice_ufrag"]
    stun_ours = to_them = to_us = 0
    handshake: set[int] = set()
    for line in out.splitlines():
        src, sport, dst, dport, user, hs, proto = (line.split("|") + [""] * 7)[:7]
        if user and ufrag in user:
            stun_ours += 1
        handshake.update(int(t) for t in hs.split(",") if t.isdigit())
        if proto in ("UDP", "RTP", "SRTP", "RTCP", "SRTCP") and not user and not hs:
            if (src, sport) == ours and (dst, dport) == theirs:
                to_them += 1
            elif (src, sport) == theirs and (dst, dport) == ours:
                to_us += 1
    assert stun_ours >= 2, f"capture: {stun_ours} STUN messages with our ufrag {ufrag}"
    # ClientHello, ServerHello, Certificate, ClientKeyExchange (RFC 5246 §7.4 types) in clear text
    assert {1, 2, 11, 16} <= handshake, f"capture: DTLS handshake types seen {sorted(handshake)}"
    assert to_them >= 50 and to_us >= 50, f"capture: media {to_them} packets to baresip, {to_us} to us"


# -- the tests ------------------------------------------------------------------------------------------


def test_we_call_baresip_ice_dtls_srtp(lab: Lab) -> None:
    """Our UA offers ICE + DTLS-SRTP (actpass); baresip answers setup:active (DTLS client), we serve."""
    lab.start_capture(15)
    baresip = lab.start_baresip(15)
    target = f"sip:{BARESIP_USER}@{lab.ns.addr_b}:{lab.baresip_sip_port}"
    report = lab.run_peer("--target", target, "--seconds", "3", "--timeout", "20", timeout=25)
    snap = check_connected(lab, report)
    assert snap["dtls_role"] == "server", "baresip answers a=setup:active, so we are the DTLS server"
    # baresip starts DTLS as soon as its own check succeeds, often before ours has: the answer to
    # its ClientHello must not wait for its retransmission one second later
    answered = events(report, "answered")[0]["t"]
    connected = events(report, "MediaConnected")[0]["t"]
    assert connected - answered < 0.8, f"DTLS-SRTP took {connected - answered:.2f} s after the answer"
    assert events(report, "bye_sent") and not events(report, "bye_received")
    wait_for_line(baresip.log, "terminated", 5.0, baresip)
    final = report["before_bye"]
    assert final["packets_received"] >= 100 and final["packets_sent"] >= 100, final
    check_audio(lab, min_seconds=2.0)
    check_wire(lab, report, snap)
    stop(baresip)  # prints its RTP summary on the way out
    check_baresip_log(lab, baresip, snap, min_packets=100)


def test_baresip_calls_us_ice_dtls_srtp(lab: Lab) -> None:
    """baresip offers (actpass, controlling); we answer setup:active (DTLS client) and ICE-controlled."""
    lab.start_capture(15)
    peer, port = lab.start_answering_peer("--seconds", "10", "--timeout", "20", timeout=10)
    baresip = lab.start_baresip(4, (f"/dial sip:ours@{lab.ns.addr_a}:{port}",))
    try:
        peer.popen.wait(timeout=20)
    except subprocess.TimeoutExpired:
        stop(peer)
    report = lab.report()
    snap = check_connected(lab, report)
    assert snap["dtls_role"] == "client", "we answer a=setup:active to baresip's actpass"
    assert events(report, "bye_received"), "baresip's BYE (sent when its -t time ran out) did not arrive"
    final = report["before_bye"]
    assert final["packets_received"] >= 100 and final["packets_sent"] >= 100, final
    baresip.popen.wait(timeout=10)
    check_audio(lab, min_seconds=2.0)
    check_wire(lab, report, snap)
    check_baresip_log(lab, baresip, snap, min_packets=100)


def test_ice_restart_by_reinvite_keeps_media(lab: Lab) -> None:
    """Mid-call ICE restart (new ufrag/pwd in a re-INVITE): a new pair is selected, audio never stops."""
    baresip = lab.start_baresip(15)
    target = f"sip:{BARESIP_USER}@{lab.ns.addr_b}:{lab.baresip_sip_port}"
    report = lab.run_peer("--target", target, "--seconds", "4", "--restart-ice-after", "1.5",
                          "--timeout", "20", timeout=25)
    check_connected(lab, report)
    restart = report.get("restart")
    diag = json.dumps(restart, indent=1)[:3000]
    assert restart is not None and restart["status"] == 200, diag
    before, after, final = restart["before"], restart["after_answer"], report["before_bye"]
    assert after["ice_ufrag"] != before["ice_ufrag"], diag
    assert final["ice_ufrag"] == after["ice_ufrag"] and final["ice_state"] == "completed", final
    assert final["selected_pair"] is not None and final["selected_pair"]["local"][0] == lab.ns.addr_a, final
    assert f"a=ice-ufrag:{after['ice_ufrag']}" not in restart["remote_sdp"]  # the answer is theirs
    # media on both sides after the restart: about 2.5 s at 50 packets/s, and no gap in the audio
    assert final["packets_received"] - before["packets_received"] >= 100, (before, final)
    assert final["packets_sent"] - before["packets_sent"] >= 100, (before, final)
    assert not events(report, "MediaFailed")
    wait_for_line(baresip.log, "terminated", 5.0, baresip)
    ours, theirs = check_audio(lab, min_seconds=3.0)
    assert longest_gap_ms(ours, 48000) <= 60, "our playout had a gap"
    assert longest_gap_ms(theirs, 48000) <= 60, "baresip's playout of our tone had a gap"
    stop(baresip)
    text = baresip.log.read_text(errors="replace")
    assert text.count("DTLS-SRTP complete") == 1, "the restart must keep the DTLS association"
    stats = re.search(r"packets:\s+(\d+)\s+(\d+)", text)
    assert stats and int(stats.group(2)) >= 180, f"baresip received too little\n{tail(baresip.log)}"
