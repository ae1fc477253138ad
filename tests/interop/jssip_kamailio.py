"""JsSIP in headless Chromium and a voice_sdk Device, both registered through Kamailio's WebSocket.

This is the scenario side of ``test_jssip_kamailio.py``: it runs inside a private network
namespace (``unshare --net``, only ``lo``) and prints one ``RESULT {json}`` line.

Inside the namespace:

* Kamailio (``peers.Kamailio`` with ``WITH_INVITE_AUTH``: registrar, digest challenges for REGISTER
  and INVITE, record-routing stateful proxy, domain ``lab.local``, password ``secret``) on free
  UDP/TCP/WS ports of 127.0.0.1.
* A voice_sdk Device registered as ``alice`` over SIP-over-WebSocket (RFC 7118) to Kamailio,
  with ``media_security="dtls"``: ICE (RFC 8445) + DTLS-SRTP (RFC 5763/5764), Opus.
* JsSIP (``jssip/www/ua.html``) registered as ``bob`` through the same WebSocket listener.
  The namespace has no address but 127.0.0.1, so that is Chromium's only ICE candidate.

Scenarios:

* ``browser_calls_device``: bob calls ``sip:alice@lab.local``; the Device answers with a 440 Hz
  tone and records what it decodes; the page proves media from ``getStats()`` and hangs up.
* ``device_calls_browser``: the Device calls ``sip:bob@lab.local``; JsSIP answers; the Device
  hangs up once both sides have proven media.

Either way the call stays up for ``TALK_SECONDS`` once both sides have proven media, and what the
Device decoded is analysed here (:func:`analyse_pcm`) against Chromium's fake microphone, a 400 Hz
square wave for 20 ms every 500 ms: level, beep onsets and intervals, and the share of the beeps'
power at odd and at even multiples of 400 Hz.

Every process is bounded twice and ended by its own id: Kamailio and tshark by ``timeout`` (and
their own limits), Chromium by ``timeout`` and a watchdog in this loop; each runs in its own
session and is stopped by process group id. Diagnostics for a run by hand: ``--pcap FILE``
captures ``lo`` with tshark, ``--keylog FILE`` appends the Device's DTLS keys (NSS format, so
tshark can decrypt the SRTP keying handshake) and ``--wav FILE`` keeps what the Device heard::

    unshare --net -- sh -c 'ip link set lo up && exec .venv/bin/python tests/interop/jssip_kamailio.py \\
        browser_calls_device --pcap /tmp/k.pcap --keylog /tmp/k.keys --wav /tmp/k.wav'
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
for _path in (str(HERE.parent.parent), str(HERE.parent), str(HERE)):  # packages, conftest, interop helpers
    if _path not in sys.path:
        sys.path.insert(0, _path)

from chromium import CHROMIUM_FLAGS, Chromium, PageHost  # noqa: E402
from peers import DOMAIN, PASSWORD, Kamailio  # noqa: E402

SCENARIO_TIMEOUT = 30.0
"""Upper bound for one scenario inside the namespace (Chromium's and Kamailio's lifetimes follow it)."""
RESULT_PREFIX = "RESULT "
TONE_HZ = 440.0
TONE_ENERGY = 0.01
"""Inbound totalAudioEnergy that proves the Device's tone reached the browser (silence stays near 1e-9)."""
MIN_PACKETS = 50
TALK_SECONDS = 2.5
"""How long a call stays up once both sides have proven media: about five of Chromium's beeps."""
DEVICE_USER = "alice"
BROWSER_USER = "bob"


# -- what the Device heard ---------------------------------------------------------------------------------

BEEP_HZ = 400.0
"""Chromium's fake microphone (``--use-fake-device-for-media-stream``, media's ``BeepingSource``): a
400 Hz square wave (so odd harmonics only: 400, 1200, 2000, ... Hz) for 20 ms every 500 ms."""
BEEP_INTERVAL = 0.5


def analyse_pcm(pcm: Any, rate: int) -> dict[str, Any]:
    """What the Device decoded, measured against Chromium's beeps.

    * level: peak and rms over everything;
    * beeps: runs of 10 ms windows louder than a tenth of the loudest one; their onsets and the
      intervals between them (the source beeps every 500 ms);
    * spectrum of the beep windows (Hann, zero-padded FFT): the dominant frequency and the share of
      power within 50 Hz of the odd and of the even multiples of 400 Hz (a square wave has no even
      harmonics, so sound that is not the beep, or mangled decoding, shows up as a low odd share).
    """
    import numpy as np

    x = np.asarray(pcm, dtype=np.float64)
    out: dict[str, Any] = {"samples": int(len(x)), "seconds": round(len(x) / rate, 3), "peak": 0.0, "rms": 0.0,
                           "beeps": 0, "onsets": [], "intervals": [], "dominant_hz": None,
                           "odd_share": 0.0, "even_share": 0.0}
    if len(x) == 0:
        return out
    out["peak"] = float(np.abs(x).max())
    out["rms"] = round(float(np.sqrt(np.mean(x * x))), 1)
    win = rate // 100
    n = len(x) // win
    if n == 0:
        return out
    frames = x[: n * win].reshape(n, win)
    level = np.sqrt(np.mean(frames * frames, axis=1))
    loud = level > max(300.0, 0.1 * float(level.max()))  # 300: about -40 dBFS
    starts = [i for i in range(n) if loud[i] and (i == 0 or not loud[i - 1])]
    out["beeps"] = len(starts)
    out["onsets"] = [round(i * win / rate, 2) for i in starts]
    out["intervals"] = [round((b - a) * win / rate, 2) for a, b in zip(starts, starts[1:], strict=False)]
    if not loud.any():
        return out
    beep = frames[loud]
    size = 16 * win
    power = (np.abs(np.fft.rfft(beep * np.hanning(win), n=size, axis=1)) ** 2).sum(axis=0)
    freqs = np.fft.rfftfreq(size, 1.0 / rate)
    audible = freqs > 50.0
    total = float(power[audible].sum()) or 1.0
    out["dominant_hz"] = round(float(freqs[audible][power[audible].argmax()]), 1)

    def share(multiples: range) -> float:
        near = np.zeros_like(freqs, dtype=bool)
        for m in multiples:
            near |= np.abs(freqs - m * BEEP_HZ) < 50.0
        return round(float(power[near & audible].sum()) / total, 3)

    top = int(min(rate / 2, 8000) // BEEP_HZ)
    out["odd_share"] = share(range(1, top + 1, 2))
    out["even_share"] = share(range(2, top + 1, 2))
    return out


def device_side(call: Any, session: Any, sink: Any) -> dict[str, Any]:
    """The Device's view of a call: status, route set, media counters, DTLS profile, decoded audio."""
    media = call.media
    stats = media.stats(asyncio.get_running_loop().time()) if media is not None else None
    info: dict[str, Any] = {
        "status": str(call.status), "reason": call.disconnect_reason,
        "error": str(call.error) if call.error is not None else None,
        "codec": stats.codec if stats else None,
        "packets_received": stats.packets_received if stats else 0,
        "packets_sent": stats.packets_sent if stats else 0,
        "discarded": stats.discarded if stats else 0,
        "inbound_loss": stats.inbound_loss if stats else None,
        "candidates": [stats.local_candidate_type, stats.remote_candidate_type] if stats else None,
        "remote_sdp": session.remote_sdp.decode("utf-8", "replace") if session is not None else None,
        "route_set": [str(r) for r in session.dialog.route_set] if session is not None else None,
        "audio": analyse_pcm(sink.pcm(), sink.sample_rate),
    }
    info["security"] = media.security if media is not None else None
    dtls = getattr(media, "_dtls", None)  # diagnostics only: the negotiated suite and SRTP profile
    done = dtls.handshake_result if dtls is not None else None
    info["dtls"] = {"role": "client" if dtls.is_client else "server", "cipher": str(done.cipher_suite),
                    "srtp_profile": str(done.srtp_profile)} if dtls is not None and done is not None else None
    return info


# -- the lab ----------------------------------------------------------------------------------------------

class BoundedChromium(Chromium):
    """:class:`chromium.Chromium` run under ``timeout -k 2 LIFETIME+5`` as well, so that it ends even
    when this process (and with it the watchdog) is killed first."""

    async def start(self) -> None:
        self._profile = tempfile.TemporaryDirectory(prefix="chromium-interop-")
        self._stderr_path = Path(self._profile.name) / "chromium.stderr"
        argv = ["timeout", "-k", "2", f"{self.lifetime + 5:g}", self.binary, *CHROMIUM_FLAGS, *self.extra_flags,
                f"--user-data-dir={self._profile.name}/profile", self.url]
        with open(self._stderr_path, "wb") as err:
            self.proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=err,
                start_new_session=True)
        self._watchdog = asyncio.get_running_loop().call_later(self.lifetime, self._kill, signal.SIGKILL)


class Lab:
    """Kamailio, the page host and (per page) a Chromium in this namespace; a tshark capture on demand."""

    def __init__(self, pcap: str | None = None, keylog: str | None = None, wav: str | None = None) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="jssip-kamailio-")
        self.kamailio = Kamailio(Path(self._tmp.name), lifetime=SCENARIO_TIMEOUT + 10, defines=["WITH_INVITE_AUTH"])
        self.host = PageHost()
        self.chromes: dict[str, BoundedChromium] = {}
        self.result: dict[str, Any] = {}
        self.pcap = pcap
        self.keylog = keylog
        self.wav = wav
        self._tshark: subprocess.Popen[bytes] | None = None
        self._t0 = 0.0

    def step(self, name: str) -> None:
        """Note when a phase ended (``result["timeline"]``: seconds since the lab started)."""
        now = asyncio.get_running_loop().time()
        self.result.setdefault("timeline", []).append([name, round(now - self._t0, 2)])

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.kamailio.ws_port}"

    async def __aenter__(self) -> Lab:
        self._t0 = asyncio.get_running_loop().time()
        try:
            await self._start()
        except BaseException as exc:
            await self.__aexit__(type(exc), exc, None)
            raise
        return self

    async def _start(self) -> None:
        if self.pcap and shutil.which("tshark"):
            self._tshark = subprocess.Popen(
                ["timeout", "-k", "2", f"{SCENARIO_TIMEOUT + 5:g}", "tshark", "-q", "-i", "lo",
                 "-a", f"duration:{SCENARIO_TIMEOUT:g}", "-w", self.pcap],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True)
            await asyncio.sleep(1.0)  # tshark needs about a second before it captures
        await asyncio.to_thread(self.kamailio.start)
        await self.host.start()
        self.step("kamailio up")
        self.result["kamailio"] = {"udp": self.kamailio.sip_port, "ws": self.kamailio.ws_port}

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is not None:
            self.result["error"] = f"{type(exc).__name__}: {exc}"
        for chrome in self.chromes.values():
            await chrome.stop()
        for page_id, chrome in self.chromes.items():
            self.result[f"page_log:{page_id}"] = self.host.logs.get(page_id, [])
            self.result[f"chromium:{page_id}"] = chrome.stderr_lines[-60:]
        await self.host.close()
        await asyncio.to_thread(self.kamailio.stop)
        self.result["kamailio_log"] = self.kamailio.log().splitlines()[-150:]
        if self._tshark is not None:
            with contextlib.suppress(ProcessLookupError):
                self._tshark.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(self._tshark.wait, 5)
            if self._tshark.returncode is None:
                self._tshark.kill()
                await asyncio.to_thread(self._tshark.wait)
        self._tmp.cleanup()
        self.step("lab closed")
        return isinstance(exc, Exception)  # reported in the result instead of crashing the child

    def page_config(self, **extra: Any) -> dict[str, Any]:
        return {"ws_url": self.ws_url, "sip_uri": f"sip:{BROWSER_USER}@{DOMAIN}", "username": BROWSER_USER,
                "password": PASSWORD, "realm": DOMAIN, "min_packets": MIN_PACKETS, "media_timeout": 10,
                "min_audio_energy": TONE_ENERGY, **extra}

    async def open_page(self, page_id: str, config: dict[str, Any]) -> None:
        chrome = BoundedChromium(self.host.add_page(page_id, config), lifetime=SCENARIO_TIMEOUT)
        self.chromes[page_id] = chrome
        await chrome.start()

    async def contacts(self, user: str) -> list[str]:
        return await asyncio.to_thread(self.kamailio.contacts, user)

    def device(self) -> Any:
        from voice_sdk.device import Device
        from voice_sdk.options import DeviceOptions, SipCredentials

        creds = SipCredentials(uri=f"sip:{DEVICE_USER}@{DOMAIN}", password=PASSWORD, ws_url=self.ws_url)
        device = Device(options=DeviceOptions(sip_credentials=creds, media_security="dtls"))
        if self.keylog:
            path = Path(self.keylog)

            def write_key(line: str) -> None:
                with path.open("a", encoding="ascii") as f:
                    f.write(line + "\n")

            device.keylog = write_key
        return device

    def device_side(self, call: Any, session: Any, sink: Any) -> None:
        """Record the Device's view in the result (and what it heard in ``--wav``)."""
        self.result["device"] = device_side(call, session, sink)
        if self.wav:
            import wave

            with wave.open(self.wav, "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(sink.sample_rate)
                w.writeframes(sink.pcm().astype("<i2").tobytes())


def _tone() -> Any:
    from voice_sdk.audio import ToneSource

    return ToneSource((TONE_HZ,), sample_rate=48000, amplitude=0.25)


async def _wait_packets(call: Any, count: int, timeout: float) -> None:
    """Until the Device has received ``count`` media packets (bounded)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        if call.media is not None and call.media.packets_received >= count:
            return
        await asyncio.sleep(0.1)


async def scenario_browser_calls_device(lab: Lab) -> None:
    """bob (JsSIP) calls alice (Device) through Kamailio; the Device answers; the page hangs up."""
    from voice_sdk.audio import BufferSink

    device = lab.device()
    calls: list[Any] = []
    sessions: list[Any] = []
    sink = BufferSink(48000)

    async def answer(call: Any) -> None:
        calls.append(call)
        call.set_input(_tone())
        call.set_output(sink)
        await call.accept()
        sessions.append(call.sip_session)

    device.on("incoming", answer)
    try:
        await device.register()
        lab.step("device registered")
        lab.result["contacts_alice"] = await lab.contacts(DEVICE_USER)
        await lab.open_page("caller", lab.page_config(mode="call", target=f"sip:{DEVICE_USER}@{DOMAIN}",
                                                      talk_seconds=TALK_SECONDS))
        await lab.host.wait_mark("caller", "registered", 10)
        lab.step("browser registered")
        lab.result["contacts_bob"] = await lab.contacts(BROWSER_USER)
        await lab.host.wait_mark("caller", "media", 12)
        lab.step("browser heard media")
        lab.result["report"] = await lab.host.wait_report("caller", SCENARIO_TIMEOUT - 8)
        lab.step("browser reported")
        if calls:
            with contextlib.suppress(TimeoutError):
                await calls[0].wait_ended(5)
            lab.device_side(calls[0], sessions[0] if sessions else None, sink)
    finally:
        await device.destroy()
        lab.step("device destroyed")
    lab.result["contacts_after"] = await lab.contacts(DEVICE_USER) + await lab.contacts(BROWSER_USER)


async def scenario_device_calls_browser(lab: Lab) -> None:
    """alice (Device) calls bob (JsSIP) through Kamailio; JsSIP answers; the Device hangs up."""
    from voice_sdk.audio import BufferSink

    await lab.open_page("callee", lab.page_config(mode="answer", hangup="remote", remote_hangup_timeout=10))
    device = lab.device()
    try:
        await device.register()
        lab.step("device registered")
        lab.result["contacts_alice"] = await lab.contacts(DEVICE_USER)
        await lab.host.wait_mark("callee", "registered", 10)
        lab.step("browser registered")
        lab.result["contacts_bob"] = await lab.contacts(BROWSER_USER)
        call = await device.connect(f"sip:{BROWSER_USER}@{DOMAIN}")
        sink = BufferSink(48000)
        call.set_input(_tone())
        call.set_output(sink)
        await call.wait_accepted(10)
        lab.step("call accepted")
        session = call.sip_session
        await lab.host.wait_mark("callee", "media", 12)
        lab.step("browser heard media")
        await _wait_packets(call, MIN_PACKETS, 5)
        await asyncio.sleep(TALK_SECONDS)
        await call.disconnect()
        lab.result["report"] = await lab.host.wait_report("callee", 10)
        lab.step("browser reported")
        lab.device_side(call, session, sink)
    finally:
        await device.destroy()
        lab.step("device destroyed")
    lab.result["contacts_after"] = await lab.contacts(DEVICE_USER) + await lab.contacts(BROWSER_USER)


SCENARIOS = {"browser_calls_device": scenario_browser_calls_device,
             "device_calls_browser": scenario_device_calls_browser}


async def run(name: str, pcap: str | None = None, keylog: str | None = None,
              wav: str | None = None) -> dict[str, Any]:
    lab = Lab(pcap, keylog, wav)
    try:
        async with lab:
            await SCENARIOS[name](lab)
    except Exception as exc:  # the lab did not start: still one RESULT line that says why
        lab.result.setdefault("error", f"{type(exc).__name__}: {exc}")
    return lab.result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--pcap", help="capture lo with tshark into this file")
    parser.add_argument("--keylog", help="append the Device's DTLS key log (NSS format) to this file")
    parser.add_argument("--wav", help="write the audio the Device decoded to this WAV file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(relativeCreated)7.0f %(name)s %(levelname)s %(message)s")
    result = asyncio.run(asyncio.wait_for(run(args.scenario, args.pcap, args.keylog, args.wav), SCENARIO_TIMEOUT + 5))
    print(RESULT_PREFIX + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
