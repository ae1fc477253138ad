"""sipp plays recorded RTP at our UAS: PCMA speech and RFC 4733 (RFC 2833) DTMF events.

sipp (package ``sip-tester``) ships real captures in /usr/share/sip-tester/: ``g711a.pcap``
(7 s of A-law speech, 30 ms packets) and ``dtmf_2833_<digit>.pcap`` (one telephone-event each:
marker, growing duration, three E=1 end packets). A UAC scenario (written by this test) sends
INVITE with ``PCMA/8000`` + ``telephone-event/8000``, plays 3 s of the speech with
``play_pcap_audio`` and then a few digits, and hangs up. Our side is a sipcore UserAgent that
answers with a MediaSession (plain RTP/AVP) driven by AioMediaDriver.

What must hold:

* what our jitter buffer plays is the speech in the capture: decoded independently from the
  pcap, the reference and our output correlate (window by window, after alignment) and have
  the same energy;
* the digits we report are exactly the ones in the DTMF captures, in order, once each.

sipp is bounded by its own ``-timeout`` plus a subprocess timeout and is killed by its own
process-group id; everything runs on 127.0.0.1 with free ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import struct
from pathlib import Path

import numpy as np
import pytest

from conftest import missing_peer, require
from rtpcore.aio import AioMediaDriver, bind_media_socket
from rtpcore.codecs.g711 import alaw_decode
from rtpcore.dtmf import event_to_digit, parse_event
from rtpcore.media_session import DtmfReceived, MediaConfig, MediaEvent, MediaSession
from sipcore.aiostack import AioSipEndpoint
from sipcore.aioua import IncomingInvite, UserAgent

pytestmark = pytest.mark.interop

PCAPS = Path("/usr/share/sip-tester")
SPEECH = (1.2, 4.2)
"""Seconds of g711a.pcap we replay (the capture starts with 1.5 s of near silence)."""
DIGIT_PCAPS = ("1", "5", "9", "star", "pound")
"""In the order of their RTP timestamps (the captures come from one call; a receiver rightly
ignores an event older than the last one, RFC 4733 §2.5.2.2)."""
SIPP_TIMEOUT = 25
RUN_TIMEOUT = 35.0

SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="PCMA speech and RFC 2833 digits to a UAS">
  <send retrans="500">
    <![CDATA[

      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag09[call_number]
      To: [service] <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 8 101
      a=rtpmap:8 PCMA/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-11,16
      a=ptime:30

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true"/>
  <send>
    <![CDATA[

      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag09[call_number]
      To: [service] <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
@MEDIA@
  <send retrans="500">
    <![CDATA[

      BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag09[call_number]
      To: [service] <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
</scenario>
"""


# -- pcap reading (libpcap format, Ethernet / IPv4 / UDP / RTP) ------------------------------------------------


def read_pcap(path: Path) -> tuple[bytes, list[tuple[float, bytes, bytes]]]:
    """The global header and every record as (time, record header + frame, RTP datagram)."""
    data = path.read_bytes()
    magic = struct.unpack_from("<I", data)[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    nano = magic in (0xA1B23C4D, 0x4D3CB2A1)
    (linktype,) = struct.unpack_from(endian + "I", data, 20)
    assert linktype == 1, "Ethernet captures only"
    records = []
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack_from(endian + "IIII", data, off)
        frame = data[off + 16:off + 16 + incl]
        ihl = (frame[14] & 0x0F) * 4
        rtp = frame[14 + ihl + 8:]
        records.append((sec + frac / (1e9 if nano else 1e6), data[off:off + 16 + incl], rtp))
        off += 16 + incl
    return data[:24], records


def rtp_payload(rtp: bytes) -> tuple[int, int, bytes]:
    """(payload type, timestamp, payload) of a plain RTP packet without CSRC/extension (as here)."""
    b0, b1, _, ts = struct.unpack_from("!BBHI", rtp)
    assert b0 >> 6 == 2 and not b0 & 0x3F
    return b1 & 0x7F, ts, rtp[12:]


def cut_speech(dst: Path) -> np.ndarray:
    """Write the SPEECH window of g711a.pcap to ``dst``; return its A-law payloads decoded independently."""
    header, records = read_pcap(PCAPS / "g711a.pcap")
    t0 = records[0][0]
    keep = [r for r in records if SPEECH[0] <= r[0] - t0 < SPEECH[1]]
    dst.write_bytes(header + b"".join(r[1] for r in keep))
    payloads = sorted((rtp_payload(r[2]) for r in keep), key=lambda p: p[1])
    assert {p[0] for p in payloads} == {8}
    return np.concatenate([alaw_decode(p[2]) for p in payloads])


def digit_in(path: Path) -> str:
    """The one DTMF digit a dtmf_2833_*.pcap carries (RFC 4733 §3.2 event code)."""
    events = {parse_event(rtp_payload(r[2])[2]).event for r in read_pcap(path)[1]}
    assert len(events) == 1
    digit = event_to_digit(events.pop())
    assert digit is not None
    return digit


# -- signal comparison ---------------------------------------------------------------------------------------------


def best_lag(ref: np.ndarray, out: np.ndarray) -> int:
    """Lag of ``out`` behind ``ref`` that maximises their cross-correlation (FFT)."""
    n = len(ref) + len(out)
    size = 1 << (n - 1).bit_length()
    xc = np.fft.irfft(np.fft.rfft(out.astype(np.float64), size) * np.conj(np.fft.rfft(ref.astype(np.float64), size)),
                      size)
    lag = int(np.argmax(xc))
    return lag if lag < size - len(ref) else lag - size


def window_correlations(ref: np.ndarray, out: np.ndarray, window: int = 2000, search: int = 480) -> list[float]:
    """Pearson correlation of ``out`` with ``ref`` per voiced window, each window aligned on its own
    within ``search`` samples of the global alignment (the jitter buffer shifts time by a frame or
    two when it adapts its delay; a window straddling such a step correlates less)."""
    lag = best_lag(ref, out)
    x = out.astype(np.float64)
    result = []
    for start in range(0, len(ref) - window + 1, window):
        seg = ref[start:start + window].astype(np.float64)
        if np.sqrt(np.mean(seg**2)) < 300:  # pauses between words carry no shape to compare
            continue
        lo = max(0, start + lag - search)
        hi = min(len(x), start + lag + search + window)
        if hi - lo < window:
            result.append(-1.0)
            continue
        cands = np.lib.stride_tricks.sliding_window_view(x[lo:hi], window)
        cands = cands - cands.mean(axis=1, keepdims=True)
        seg = seg - seg.mean()
        norms = np.linalg.norm(cands, axis=1) * np.linalg.norm(seg)
        result.append(float(np.max((cands @ seg) / np.maximum(norms, 1e-9))))
    return result


# -- the run ---------------------------------------------------------------------------------------------------------


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Sink:
    sample_rate = 8000

    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []

    def write(self, pcm: np.ndarray) -> None:
        self.parts.append(pcm.copy())


async def run_sipp_call(scenario: Path, log: Path) -> tuple[list[MediaEvent], np.ndarray, int, str]:
    endpoint = AioSipEndpoint()
    _, sip_port = await endpoint.listen("udp", "127.0.0.1", 0)
    ua = UserAgent(endpoint, aor=f"sip:media@127.0.0.1:{sip_port}", outbound=None)
    proto, addr = await bind_media_socket("127.0.0.1", 0)
    loop = asyncio.get_running_loop()
    media = MediaSession(addr, now=loop.time(), config=MediaConfig(security="none", codecs=("PCMA", "PCMU"), ice=False))
    events: list[MediaEvent] = []
    sink = Sink()
    driver = AioMediaDriver(media, proto, sink=sink, on_event=events.append)
    bye = asyncio.Event()

    def on_invite(inc: IncomingInvite) -> None:
        answer = media.receive_offer(inc.offer, loop.time())
        session = inc.answer(answer)
        session.on_bye = lambda req: bye.set()
        driver.poke()
        driver.start_media_clock()

    ua.on_invite = on_invite
    cmd = ["sipp", f"127.0.0.1:{sip_port}", "-sf", str(scenario), "-s", "media", "-i", "127.0.0.1",
           "-p", str(free_udp_port()), "-mp", str(free_udp_port()), "-m", "1", "-nostdin",
           "-timeout", f"{SIPP_TIMEOUT}s", "-timeout_error", "-trace_err", "-error_file", str(log)]
    proc = await asyncio.create_subprocess_exec(*cmd, stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                                                start_new_session=True, cwd=str(scenario.parent))
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), SIPP_TIMEOUT + 5)
        await asyncio.wait_for(bye.wait(), 5)
        rc = proc.returncode
        assert rc is not None
        return events, np.concatenate(sink.parts), rc, out.decode(errors="replace")
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
        driver.close()
        await ua.close()
        await endpoint.close()


def test_sipp_pcma_speech_and_rfc2833_digits(tmp_path: Path) -> None:
    require("sipp")
    if not (PCAPS / "g711a.pcap").exists():
        missing_peer("sipp's sample captures are missing")  # part of the sip-tester package
    reference = cut_speech(tmp_path / "speech.pcap")
    digits = [digit_in(PCAPS / f"dtmf_2833_{name}.pcap") for name in DIGIT_PCAPS]
    steps = [f'  <nop><action><exec play_pcap_audio="{tmp_path / "speech.pcap"}"/></action></nop>',
             f'  <pause milliseconds="{int((SPEECH[1] - SPEECH[0]) * 1000) + 300}"/>']
    for name in DIGIT_PCAPS:
        steps += [f'  <nop><action><exec play_pcap_audio="{PCAPS / f"dtmf_2833_{name}.pcap"}"/></action></nop>',
                  '  <pause milliseconds="300"/>']
    scenario = tmp_path / "uac_pcap.xml"
    scenario.write_text(SCENARIO.replace("@MEDIA@", "\n".join(steps)))

    events, received, rc, output = asyncio.run(asyncio.wait_for(run_sipp_call(scenario, tmp_path / "errors.log"),
                                                                RUN_TIMEOUT))
    assert rc == 0, output[-2000:]
    got = [e.digit for e in events if isinstance(e, DtmfReceived)]
    assert got == digits == ["1", "5", "9", "*", "#"]
    for e in events:
        if isinstance(e, DtmfReceived):
            assert 100 <= e.duration_ms <= 400  # 2240 ticks of 8 kHz = 280 ms in the captures

    # the speech: our decoded play-out against an independent decode of the capture
    lag = best_lag(reference, received)
    assert 0 < lag < 8000 * 3  # the audio starts after the call is set up, not before
    played = received[lag:lag + len(reference)]
    ref_rms = np.sqrt(np.mean(reference.astype(np.float64) ** 2))
    out_rms = np.sqrt(np.mean(played.astype(np.float64) ** 2))
    assert 0.9 < out_rms / ref_rms < 1.1, (out_rms, ref_rms)
    corr = window_correlations(reference, received)
    assert len(corr) >= 8, corr
    assert np.median(corr) > 0.98 and sum(c > 0.9 for c in corr) >= 0.8 * len(corr), corr
    # spectrum: same dominant band (voiced speech, 100-500 Hz) and the same spectral centroid
    def centroid(x: np.ndarray) -> float:
        spectrum = np.abs(np.fft.rfft(x.astype(np.float64)))
        freqs = np.fft.rfftfreq(len(x), 1 / 8000)
        return float((spectrum * freqs).sum() / spectrum.sum())

    assert abs(centroid(played) - centroid(reference)) < 0.05 * centroid(reference)
