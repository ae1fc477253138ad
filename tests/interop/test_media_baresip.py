"""Media against a real softphone: our UserAgent + MediaSession ↔ baresip 1.0 on 127.0.0.1.

baresip runs one account without registration (``regint=0``, auto-answer) on free ports; we
INVITE it directly (or it dials us through its ctrl_tcp socket). During each call:

* baresip's ``ausine`` source plays a 440 Hz sine: what we decode must peak at 440 Hz;
* we send a 1000 Hz tone: baresip's ``sndfile`` dump of what *it* decoded must peak at 1000 Hz;
* ``tshark`` (capture filter on our media port only, bounded by ``-a duration``) must see RTP in
  both directions with the negotiated payload type (RFC 3551 PT 0/8, Opus's dynamic PT, RFC 7587);
* with ``mediaenc=srtp-mand`` (RTP/SAVP, RFC 4568 SDES) the packets carry the 80-bit SRTP tag
  (RFC 3711 §4.2) and still decode on both sides;
* through Kamailio (the ``kamailio`` fixture of peers.py): baresip registers with digest, we call
  its address of record with digest credentials, ACK/BYE follow the record-routed route set.

Every process is bounded (baresip ``-t`` plus ``timeout``; tshark ``-a duration`` plus a
subprocess timeout) and killed by its own process-group id in the fixture teardown.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from baresip.peer import Baresip, free_port
from peers import DOMAIN, PASSWORD, Kamailio, kamailio_fixture  # noqa: F401  (the kamailio fixture)

from conftest import missing_peer, require
from rtpcore.aio import AioMediaDriver, bind_media_socket
from rtpcore.media_session import MediaConfig, MediaEvent, MediaSession, MediaState
from sipcore.aiostack import AioSipEndpoint
from sipcore.aioua import IncomingInvite, InviteSession, UserAgent
from sipcore.stack import Target

pytestmark = pytest.mark.interop

CALL_SECONDS = 2.0
OUR_HZ = 1000.0
BARESIP_HZ = 440.0
CALL_TIMEOUT = 20.0
"""Upper bound for one whole call (setup, media, BYE) inside the test's event loop."""
CAPTURE_SECONDS = 15
"""tshark's own bound (``-a duration``); we stop it earlier with SIGINT once the call is over."""


# -- tones in and out -------------------------------------------------------------------------------------


class ToneSource:
    def __init__(self, sample_rate: int, hz: float, amplitude: int = 8000) -> None:
        self.sample_rate = sample_rate
        self.hz = hz
        self.amplitude = amplitude
        self._k = 0

    def read(self, samples: int) -> np.ndarray:
        t = (np.arange(samples) + self._k) / self.sample_rate
        self._k += samples
        return (np.sin(2 * np.pi * self.hz * t) * self.amplitude).astype(np.int16)


class RecordingSink:
    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.parts: list[np.ndarray] = []

    def write(self, pcm: np.ndarray) -> None:
        self.parts.append(pcm.copy())

    def pcm(self) -> np.ndarray:
        return np.concatenate(self.parts) if self.parts else np.zeros(0, dtype=np.int16)


def peak_hz(pcm: np.ndarray, rate: int) -> float:
    """Dominant frequency (Hann window, 4x zero-padded FFT)."""
    x = pcm.astype(np.float64) * np.hanning(len(pcm))
    spectrum = np.abs(np.fft.rfft(x, 4 * len(x)))
    return float(np.argmax(spectrum) * rate / (4 * len(x)))


def tone_share(pcm: np.ndarray, rate: int, hz: float, width: float = 20.0) -> float:
    """Fraction of the signal's energy within ``width`` Hz of ``hz``."""
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(len(pcm)))) ** 2
    freqs = np.fft.rfftfreq(len(pcm), 1 / rate)
    return float(spectrum[np.abs(freqs - hz) <= width].sum() / max(spectrum.sum(), 1e-9))


def assert_tone(pcm: np.ndarray, rate: int, hz: float, *, skip_s: float = 0.3) -> None:
    """Steady part of the signal is the tone: right peak, most of the energy, audible level."""
    body = pcm[int(skip_s * rate):]
    assert len(body) >= rate // 2, f"only {len(pcm)} samples"
    assert abs(peak_hz(body, rate) - hz) < 3.0, peak_hz(body, rate)
    assert tone_share(body, rate, hz) > 0.9
    assert np.sqrt(np.mean(body.astype(np.float64) ** 2)) > 500


# -- tshark -------------------------------------------------------------------------------------------------


class Capture:
    """tshark on ``lo`` with a capture filter for one UDP port, bounded by ``-a duration``."""

    def __init__(self, path: Path, port: int) -> None:
        self.path = path
        self.port = port
        self.err = path.with_suffix(".log")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Capture:
        with self.err.open("wb") as err:
            self.proc = subprocess.Popen(
                ["timeout", "-k", "2", str(CAPTURE_SECONDS + 5), "tshark", "-i", "lo", "-f", f"udp port {self.port}",
                 "-a", f"duration:{CAPTURE_SECONDS}", "-w", str(self.path), "-q"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        end = time.monotonic() + 10
        while time.monotonic() < end:
            if "Capturing on" in self.err.read_text(errors="replace"):
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"tshark did not start: {self.err.read_text(errors='replace')}")

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        self.proc = None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)  # tshark finishes the file on SIGINT
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)

    def rtp(self) -> list[tuple[int, int, int, int]]:
        """(src port, dst port, payload type, UDP payload length) of every RTP packet (RTCP excluded)."""
        out = subprocess.run(
            ["tshark", "-r", str(self.path), "-d", f"udp.port=={self.port},rtp", "-Y", "rtp", "-T", "fields",
             "-E", "separator=,", "-e", "udp.srcport", "-e", "udp.dstport", "-e", "rtp.p_type", "-e", "udp.length"],
            capture_output=True, timeout=30, check=True)
        rows = []
        for line in out.stdout.decode().splitlines():
            src, dst, pt, length = (int(v) for v in line.split(","))
            if not 72 <= pt <= 76:  # RTCP (PT 200-204) muxed on the same port, seen through the RTP dissector
                rows.append((src, dst, pt, length - 8))
        return rows


# -- one call --------------------------------------------------------------------------------------------------


@dataclass
class CallResult:
    media: MediaSession
    received: np.ndarray
    events: list[MediaEvent] = field(default_factory=list)
    ended_by_peer: bool = False
    sip_session: InviteSession | None = None

    def payload_type(self) -> int:
        assert self.media.negotiated is not None
        pt = self.media.negotiated.send_payload_type(is_offerer=self.media.is_offerer)
        assert pt is not None
        return pt


async def _media(port: int, security: str, codec: str) -> tuple[MediaSession, AioMediaDriver, RecordingSink,
                                                               list[MediaEvent]]:
    proto, addr = await bind_media_socket("127.0.0.1", port)
    loop = asyncio.get_running_loop()
    media = MediaSession(addr, now=loop.time(), config=MediaConfig(security=security, codecs=(codec,), ice=False))
    events: list[MediaEvent] = []
    sink = RecordingSink(8000)
    driver = AioMediaDriver(media, proto, on_event=events.append, sink=sink)
    return media, driver, sink, events


def _start_audio(media: MediaSession, driver: AioMediaDriver, sink: RecordingSink) -> None:
    rate = media.audio_sample_rate
    sink.sample_rate = rate
    driver.source = ToneSource(rate, OUR_HZ)
    driver.poke()
    driver.start_media_clock()


async def call_baresip(bs: Baresip, media_port: int, *, codec: str, security: str = "none",
                       proxy: int | None = None) -> CallResult:
    """We INVITE baresip (directly, or through the proxy on 127.0.0.1:``proxy``), talk for CALL_SECONDS, BYE."""
    endpoint = AioSipEndpoint()
    await endpoint.listen("udp", "127.0.0.1", 0)
    if proxy is None:
        ua = UserAgent(endpoint, aor="sip:alice@127.0.0.1", outbound=Target("udp", "127.0.0.1", bs.sip_port))
    else:
        ua = UserAgent(endpoint, aor=f"sip:alice@{DOMAIN}", outbound=Target("udp", "127.0.0.1", proxy),
                       credentials=("alice", PASSWORD))
    media, driver, sink, events = await _media(media_port, security, codec)
    loop = asyncio.get_running_loop()
    try:
        out = ua.invite(bs.uri, media.create_offer(loop.time()))
        session = await asyncio.wait_for(out.result, 5)
        media.receive_answer(session.remote_sdp, loop.time())
        _start_audio(media, driver, sink)
        await asyncio.sleep(CALL_SECONDS)
        assert not session.terminated.is_set(), session.end_reason
        await session.bye()
        return CallResult(media, sink.pcm(), events, sip_session=session)
    finally:
        driver.close()
        await ua.close()
        await endpoint.close()


async def answer_baresip(bs: Baresip, media_port: int, *, codec: str) -> CallResult:
    """baresip dials us (ctrl_tcp ``dial``); we answer, talk, and baresip hangs up (``hangup``)."""
    endpoint = AioSipEndpoint()
    _, sip_port = await endpoint.listen("udp", "127.0.0.1", 0)
    ua = UserAgent(endpoint, aor=f"sip:alice@127.0.0.1:{sip_port}", outbound=None)
    media, driver, sink, events = await _media(media_port, "none", codec)
    loop = asyncio.get_running_loop()
    answered: asyncio.Future[InviteSession] = loop.create_future()
    bye = asyncio.Event()

    def on_invite(inc: IncomingInvite) -> None:
        answer = media.receive_offer(inc.offer, loop.time())
        inc.ring()
        session = inc.answer(answer)
        session.on_bye = lambda req: bye.set()
        _start_audio(media, driver, sink)
        answered.set_result(session)

    ua.on_invite = on_invite
    assert bs.ctl is not None
    try:
        resp = await asyncio.to_thread(bs.ctl.command, "dial", f"sip:alice@127.0.0.1:{sip_port}")
        assert resp.get("ok"), resp
        session = await asyncio.wait_for(answered, 5)
        await asyncio.sleep(CALL_SECONDS)
        resp = await asyncio.to_thread(bs.ctl.command, "hangup")
        assert resp.get("ok"), resp
        await asyncio.wait_for(bye.wait(), 5)
        return CallResult(media, sink.pcm(), events, ended_by_peer=True, sip_session=session)
    finally:
        driver.close()
        await ua.close()
        await endpoint.close()


# -- fixtures ----------------------------------------------------------------------------------------------------


@pytest.fixture
def media_peers(tmp_path: Path) -> Iterator[dict[str, object]]:
    require("baresip", "tshark", "timeout")
    started: list[Baresip | Capture] = []

    def baresip(**kwargs: object) -> Baresip:
        bs = Baresip(tmp_path / f"baresip{len(started)}", **kwargs)  # type: ignore[arg-type]
        started.append(bs)
        return bs.start()

    def capture(port: int) -> Capture:
        cap = Capture(tmp_path / f"media{port}.pcap", port)
        started.append(cap)
        return cap.start()

    try:
        yield {"baresip": baresip, "capture": capture}
    finally:
        for item in reversed(started):
            item.stop()


def run_bounded(coro: object) -> CallResult:
    return asyncio.run(asyncio.wait_for(coro, CALL_TIMEOUT))  # type: ignore[arg-type]


def check_rtp_both_ways(cap: Capture, result: CallResult, *, payload_len: int | None = None) -> None:
    port = result.media.local_address[1]
    pt = result.payload_type()
    rows = cap.rtp()
    sent = [r for r in rows if r[0] == port and r[2] == pt]
    received = [r for r in rows if r[1] == port and r[2] == pt]
    expected = CALL_SECONDS * 50
    assert len(sent) >= 0.8 * expected, (len(sent), rows[:5])
    assert len(received) >= 0.8 * expected, (len(received), rows[:5])
    assert result.media.packets_received >= 0.8 * expected
    if payload_len is not None:
        assert {r[3] for r in sent} == {payload_len} and {r[3] for r in received} == {payload_len}


# -- tests -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("codec", "baresip_codecs"), [("PCMA", "pcma"), ("PCMU", "pcmu")])
def test_g711_call_to_baresip(media_peers: dict, codec: str, baresip_codecs: str) -> None:
    bs = media_peers["baresip"](codecs=baresip_codecs)
    port = free_port()
    cap = media_peers["capture"](port)
    result = run_bounded(call_baresip(bs, port, codec=codec))
    cap.stop()
    assert result.media.negotiated is not None and result.media.negotiated.codec is not None
    assert result.media.negotiated.codec.encoding.upper() == codec
    check_rtp_both_ways(cap, result, payload_len=12 + 160)  # plain RTP header + 20 ms of G.711
    assert_tone(result.received, 8000, BARESIP_HZ)
    theirs, rate = bs.recording("dec")
    assert rate == 8000
    assert_tone(theirs, rate, OUR_HZ)
    st = result.media.stats(0.0)
    # no RTP lost on loopback; the MOS is not checked here: under CI load the loop's scheduling
    # jitter alone can push the playout delay past 200 ms (tests/rtpcore cover the estimate)
    assert st.inbound_loss == 0.0 and st.packets_received >= 0.8 * CALL_SECONDS * 50


def test_opus_call_to_baresip(media_peers: dict) -> None:
    from rtpcore.codecs import opus_available

    if not opus_available():
        missing_peer("libopus not installed (Debian package libopus0)")
    bs = media_peers["baresip"](codecs="opus/48000/2")
    port = free_port()
    cap = media_peers["capture"](port)
    result = run_bounded(call_baresip(bs, port, codec="opus"))
    cap.stop()
    assert result.media.negotiated is not None and result.media.negotiated.codec is not None
    assert result.media.negotiated.codec.encoding.lower() == "opus"
    assert result.payload_type() >= 96  # dynamic (RFC 7587 §7)
    check_rtp_both_ways(cap, result)
    assert_tone(result.received, 48000, BARESIP_HZ)
    theirs, rate = bs.recording("dec")
    assert rate == 48000
    assert_tone(theirs, rate, OUR_HZ)


def test_sdes_srtp_call_to_baresip(media_peers: dict) -> None:
    bs = media_peers["baresip"](codecs="pcmu", mediaenc="srtp-mand")
    port = free_port()
    cap = media_peers["capture"](port)
    result = run_bounded(call_baresip(bs, port, codec="PCMU", security="sdes"))
    cap.stop()
    assert result.media.security == "sdes"
    assert "SRTP is Enabled" in bs.log()
    # RTP header + 160 octets of PCMU + the 10-octet HMAC-SHA1-80 tag (AES_CM_128_HMAC_SHA1_80)
    check_rtp_both_ways(cap, result, payload_len=12 + 160 + 10)
    # every SRTP packet authenticated; what we drop is baresip's plain RTCP APP "PING" and, when
    # timing lets it answer ours, "PONG" hole-punch packets, sent before SRTCP starts (RFC 3711
    # §3.4 requires SRTCP)
    assert result.media.discarded <= 2
    assert_tone(result.received, 8000, BARESIP_HZ)
    theirs, rate = bs.recording("dec")
    assert_tone(theirs, rate, OUR_HZ)


def test_call_to_baresip_through_kamailio(media_peers: dict, kamailio: Kamailio) -> None:
    """baresip registers with Kamailio (digest); we call its AOR through the proxy (Record-Route:
    ACK and BYE follow the route set); the media flows directly between the two ends."""
    bs = media_peers["baresip"](codecs="pcma", registrar=(kamailio.sip_port, PASSWORD))
    bs.wait_registered()
    assert kamailio.contacts("bob"), kamailio.kamcmd("ul.dump")
    port = free_port()
    cap = media_peers["capture"](port)
    result = run_bounded(call_baresip(bs, port, codec="PCMA", proxy=kamailio.sip_port))
    cap.stop()
    assert result.sip_session is not None and result.sip_session.dialog.route_set  # Kamailio record-routed
    check_rtp_both_ways(cap, result, payload_len=12 + 160)
    assert_tone(result.received, 8000, BARESIP_HZ)
    theirs, rate = bs.recording("dec")
    assert_tone(theirs, rate, OUR_HZ)
    bs.wait_log(f"Call with sip:alice@{DOMAIN} terminated", 2.0)  # our BYE reached it through the proxy


def test_baresip_calls_us_and_hangs_up(media_peers: dict) -> None:
    bs = media_peers["baresip"](codecs="pcma")
    port = free_port()
    cap = media_peers["capture"](port)
    result = run_bounded(answer_baresip(bs, port, codec="PCMA"))
    cap.stop()
    assert result.ended_by_peer
    assert bs.ctl is not None
    bs.ctl.poll()
    assert "CALL_ESTABLISHED" in bs.ctl.event_types()
    check_rtp_both_ways(cap, result, payload_len=12 + 160)
    assert result.media.state in (MediaState.FLOWING, MediaState.CLOSED)
    assert_tone(result.received, 8000, BARESIP_HZ)
    theirs, rate = bs.recording("dec")
    assert_tone(theirs, rate, OUR_HZ)
