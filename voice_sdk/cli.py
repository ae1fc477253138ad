"""``voice-sdk``: demo | serve | call | token.

``voice-sdk demo`` is the whole product in one process: the embedded platform starts on free
localhost ports, a token is minted over HTTP, a Device registers over WebSocket, calls
``echo`` with DTLS-SRTP (Opus when libopus is present, else G.711), plays a speech-like
clip, dials digits into ``ivr`` and checks they come back, then prints a ladder diagram and
a summary and writes a pcap, a JSONL trace, a DTLS key log and the received audio as WAV.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["main"]


class _Step(Exception):
    """A demo step failed: ``step`` names it for the one-line error."""

    def __init__(self, step: str, cause: BaseException) -> None:
        super().__init__(f"{step}: {cause}")
        self.step = step
        self.cause = cause


def _opus_available() -> bool:
    try:
        from rtpcore.codecs.base import CodecSpec
        from rtpcore.codecs.registry import CodecRegistry

        CodecRegistry.default().create(CodecSpec("opus", 48000, 2))
        return True
    except Exception:
        return False


class _Recorder:
    """Writes the pcap, the JSONL trace and the key log as the call runs."""

    def __init__(self, out: Path) -> None:
        from .pcap import PcapWriter

        out.mkdir(parents=True, exist_ok=True)
        self.pcap = PcapWriter(out / "demo.pcap")
        self.trace = open(out / "trace.jsonl", "w", encoding="utf-8")
        self.keylog = open(out / "dtls-keylog.txt", "w", encoding="utf-8")
        self.sip_count = 0
        self.media_count = 0

    def sip(self, direction: str, data: bytes, peer: Any, local: tuple[str, int]) -> None:
        self.sip_count += 1
        remote = (peer.host, peer.port)
        src, dst = (remote, local) if direction == "in" else (local, remote)
        # SIP over WebSocket is written as UDP datagrams on the same ports so tshark decodes SIP
        self.pcap.write_udp(time.time(), src, dst, data)
        first = data.split(b"\r\n", 1)[0].decode("utf-8", "replace")
        self.trace.write(json.dumps({"t": round(time.time(), 6), "kind": "sip", "dir": direction,
                                     "transport": peer.transport, "peer": f"{peer.host}:{peer.port}",
                                     "first_line": first, "bytes": len(data)}) + "\n")

    def media(self, direction: str, data: bytes, local: tuple[str, int], peer: tuple[str, int]) -> None:
        self.media_count += 1
        src, dst = (peer, local) if direction == "in" else (local, peer)
        self.pcap.write_udp(time.time(), src, dst, data)
        if self.media_count % 50 == 1 or (data[:1] and 20 <= data[0] <= 63):
            kind = "dtls" if 20 <= data[0] <= 63 else ("stun" if data[0] < 4 else "srtp")
            self.trace.write(json.dumps({"t": round(time.time(), 6), "kind": kind, "dir": direction,
                                         "peer": f"{peer[0]}:{peer[1]}", "bytes": len(data)}) + "\n")

    def key(self, line: str) -> None:
        self.keylog.write(line + "\n")
        self.keylog.flush()

    def close(self) -> None:
        self.pcap.close()
        self.trace.close()
        self.keylog.close()


async def _demo(args: argparse.Namespace) -> int:
    import aiohttp
    import numpy as np

    from sipcore.ladder import render_ladder

    from .audio import BufferSink, SpeechLikeSource, WavFileSink
    from .device import Device
    from .options import DeviceOptions
    from .server import Platform, PlatformConfig

    out = Path(args.out)
    opus = _opus_available() and not args.g711
    codecs = ("opus", "PCMU", "PCMA") if opus else ("PCMU", "PCMA")
    say = print
    platform = Platform(PlatformConfig(api_keys={"demo-api-key"}))
    rec: _Recorder | None = None
    device: Device | None = None
    summary: dict[str, Any] = {}
    step = f"create the output folder {out}"
    try:
        rec = _Recorder(out)
        step = "start the platform"
        t_start = time.monotonic()
        await platform.start()
        say(platform.banner())
        say("")
        step = "mint an access token over HTTP"
        async with aiohttp.ClientSession() as http, http.post(
                platform.urls["token"], headers={"X-User-API-Key": "demo-api-key"},
                json={"user_uuid": "demo-user", "label": "voice-sdk demo"}) as resp:
            body = await resp.json()
            if resp.status != 200:
                raise RuntimeError(f"token API answered {resp.status}: {body}")
        token = body["access_token"]
        say(f"[1/5] token minted for demo-user, expires in {int(body['expires_at'] - time.time())} s")

        step = "register over WebSocket"
        device = Device(token, options=DeviceOptions(credentials_url=platform.urls["credentials"], transport="ws",
                                                      codecs=codecs, media_security="dtls"))
        recorder = rec
        device.sip_trace = lambda d, data, peer: recorder.sip(d, data, peer, _local(device))
        device.media_trace = recorder.media
        device.keylog = recorder.key
        t0 = time.monotonic()
        await device.register()
        summary["register_ms"] = (time.monotonic() - t0) * 1000
        say(f"[2/5] registered {device.creds.aor if device.creds else ''} over "
            f"{device.creds.target if device.creds else ''} in {summary['register_ms']:.0f} ms")

        step = "call echo (DTLS-SRTP)"
        call = await device.connect("echo")
        clip = SpeechLikeSource(sample_rate=48000 if opus else 8000)
        received = BufferSink(clip.sample_rate)
        wav = WavFileSink(out / "received.wav", clip.sample_rate)
        sent = BufferSink(clip.sample_rate)

        class _Tee:
            sample_rate = clip.sample_rate

            def read(self, n: int) -> Any:
                pcm = clip.read(n)
                sent.write(pcm)
                return pcm

            def close(self) -> None:
                pass

        class _Both:
            sample_rate = clip.sample_rate

            def write(self, pcm: Any) -> None:
                received.write(pcm)
                wav.write(pcm)

            def close(self) -> None:
                wav.close()

        call.set_input(_Tee())
        call.set_output(_Both())
        await call.wait_accepted(15)
        summary["setup_ms"] = (call.setup_time or 0) * 1000
        q = call.quality()
        ice = (f"ICE {q.local_candidate_type}<->{q.remote_candidate_type}"
               if q is not None and call.media is not None and call.media.ice is not None else "no ICE")
        say(f"[3/5] echo answered, media flowing after {summary['setup_ms']:.0f} ms "
            f"({q.selected_codec if q else '?'}, {call.media.security if call.media else '?'}-SRTP, {ice})")
        last = None
        for second in range(int(args.seconds)):
            await asyncio.sleep(1.0)
            last = call.quality()
            if last is not None:
                line = (f"      t={second + 1:2d}s  codec {last.selected_codec}  sent {last.packets_sent}  "
                        f"recv {last.packets_received}  loss {last.inbound_loss * 100:.1f}%  "
                        f"jitter {last.jitter_ms:.1f} ms  playout {last.playout_delay_ms:.0f} ms  "
                        f"MOS {last.mos_estimate:.2f}")
                say(line)
        await call.disconnect()
        summary["echo_quality"] = last
        pcm_in = received.pcm().astype(float)
        level = float(np.sqrt(np.mean(pcm_in ** 2))) if len(pcm_in) else 0.0
        summary["echo_rms"] = level
        summary["latency_ms"] = _echo_latency_ms(sent.pcm(), received.pcm(), clip.sample_rate)
        if level < 100:
            raise RuntimeError("the echo came back silent")

        step = "send digits to ivr"
        ivr = await device.connect("ivr")
        await ivr.wait_accepted(15)
        digits = "1234#"
        await ivr.send_digits(digits)
        await asyncio.sleep(0.6)
        got = "".join(ivr.digits_received)
        heard = "".join(d for _, d in platform.ivr_log)
        summary["digits"] = (digits, heard, got)
        say(f"[4/5] ivr heard {heard!r}, echoed back {got!r}")
        await ivr.disconnect()
        if heard != digits or got != digits:
            raise RuntimeError(f"digits sent {digits!r}, ivr heard {heard!r}, confirmed {got!r}")

        step = "unregister"
        trace = list(device.endpoint.trace) if device.endpoint else []
        await device.destroy()
        say("[5/5] unregistered and closed")
        say("")
        say("SIP ladder (client side):")
        say(render_ladder(trace))
        say("")
        qf = summary["echo_quality"]
        say("Summary")
        say(f"  registration          {summary['register_ms']:.0f} ms")
        say(f"  call setup to media   {summary['setup_ms']:.0f} ms")
        if qf is not None:
            say(f"  codec / security      {qf.selected_codec} / DTLS-SRTP")
            say(f"  MOS estimate          {qf.mos_estimate:.2f}")
            say(f"  loss in / out         {qf.inbound_loss * 100:.1f}% / {qf.outbound_loss * 100:.1f}%")
            say(f"  jitter                {qf.jitter_ms:.1f} ms")
            rtt = f"{qf.rtt_ms:.1f} ms" if qf.rtt_ms is not None else "n/a (first RTCP report after 5 s)"
            say(f"  RTT                   {rtt}")
        lat = summary.get("latency_ms")
        say(f"  echo round trip       {lat:.0f} ms (mouth-to-ear through both stacks)" if lat else
            "  echo round trip       not measurable")
        d = summary["digits"]
        say(f"  digits                sent {d[0]}  confirmed {d[2]}")
        say(f"  files                 {out / 'demo.pcap'} ({recorder.sip_count} SIP, "
            f"{recorder.media_count} media packets)")
        say(f"                        {out / 'trace.jsonl'}, {out / 'dtls-keylog.txt'}, {out / 'received.wav'}")
        say(f"  total                 {time.monotonic() - t_start:.1f} s")
        say("demo OK")
        return 0
    except Exception as exc:
        print(f"demo FAILED at '{step}': {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        if device is not None and device.state != "destroyed":
            with contextlib.suppress(Exception):
                await asyncio.wait_for(device.destroy(), 5)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(platform.close(), 5)
        if rec is not None:
            rec.close()


def _local(device: Any) -> tuple[str, int]:
    ep = device.endpoint
    if ep is None:
        return ("127.0.0.1", 0)
    for t in ("ws", "udp", "tcp"):
        if t in ep.stack.sent_by:
            h, p = ep.stack.sent_by[t]
            return (h if not h.endswith(".invalid") else "127.0.0.1", p)
    return ("127.0.0.1", 0)


def _echo_latency_ms(sent: Any, received: Any, rate: int) -> float | None:
    """Round-trip audio delay from the cross-correlation of what we sent and what came back."""
    import numpy as np

    n = min(len(sent), len(received), rate * 4)
    if n < rate:
        return None
    a = sent[:n].astype(float)
    b = received[:n].astype(float)
    if not a.any() or not b.any():
        return None
    size = 1 << (2 * n - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(b, size) * np.conj(np.fft.rfft(a, size)), size)
    max_lag = rate  # up to 1 s
    lag = int(np.argmax(corr[:max_lag]))
    return lag * 1000.0 / rate


async def _serve(args: argparse.Namespace) -> int:
    from .server import Platform, PlatformConfig

    overrides: dict[str, Any] = {"host": args.host}
    if args.http_port:
        overrides["http_port"] = args.http_port
    if args.ws_port:
        overrides["ws_port"] = args.ws_port
    if args.udp_port:
        overrides["udp_port"] = args.udp_port
        overrides["tcp_port"] = args.udp_port
    if args.api_key:
        overrides["api_keys"] = set(args.api_key)
    platform = Platform(PlatformConfig.from_env(**overrides))
    await platform.start()
    print(platform.banner(), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        if args.duration:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), args.duration)
        else:
            await stop.wait()
    finally:
        await platform.close()
        print("platform stopped", flush=True)
    return 0


async def _token(args: argparse.Namespace) -> int:
    import aiohttp

    async with aiohttp.ClientSession() as http, http.post(
            f"{args.server.rstrip('/')}/open/sdk/access-token", headers={"X-User-API-Key": args.api_key},
            json={"user_uuid": args.user, "label": args.label}) as resp:
        body = await resp.json(content_type=None)
        if resp.status != 200:
            print(f"token request failed: {resp.status} {body}", file=sys.stderr)
            return 1
    print(body["access_token"])
    return 0


async def _call(args: argparse.Namespace) -> int:
    from .audio import NullSink, NullSource, ToneSource, WavFileSink, WavFileSource
    from .device import Device
    from .errors import VoiceSDKError
    from .options import DeviceOptions, SipCredentials

    if args.token:
        opts = DeviceOptions(credentials_url=f"{args.server.rstrip('/')}/sdk/voip/sip-credentials",
                             transport=args.transport, media_security=args.security)
        device = Device(args.token, options=opts)
    elif args.uri and args.password:
        creds = SipCredentials(uri=args.uri, password=args.password, username=args.username, proxy=args.proxy,
                               ws_url=args.ws_url)
        device = Device(options=DeviceOptions(sip_credentials=creds, media_security=args.security))
    else:
        print("call: give --server and --token, or --uri and --password", file=sys.stderr)
        return 2
    if args.pcap:
        from .pcap import PcapWriter

        writer = PcapWriter(args.pcap)
        device.media_trace = lambda d, data, local, peer: writer.write_udp(
            time.time(), peer if d == "in" else local, local if d == "in" else peer, data)
    try:
        await device.register()
        call = await device.connect(args.target)
        call.on("ringing", lambda c: print("ringing"))
        rate = 8000
        call.set_input(WavFileSource(args.play) if args.play else (ToneSource(sample_rate=rate) if args.tone
                                                                   else NullSource(rate)))
        call.set_output(WavFileSink(args.record, rate) if args.record else NullSink(rate))
        await call.wait_accepted(30)
        print("accepted")
        if args.dtmf:
            await call.send_digits(args.dtmf)
        for _ in range(int(args.duration)):
            await asyncio.sleep(1)
            q = call.quality()
            if call.status != "accepted":
                break
            if q is not None:
                print(f"mos {q.mos_estimate:.2f} loss {q.inbound_loss * 100:.1f}% jitter {q.jitter_ms:.1f} ms "
                      f"rtt {q.rtt_ms if q.rtt_ms is not None else '-'}", flush=True)
        await call.disconnect()
        return 0
    except VoiceSDKError as exc:
        print(f"call failed: {exc}", file=sys.stderr)
        return 1
    finally:
        await device.destroy()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="voice-sdk", description="Pure-Python SIP/RTP voice SDK")
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="run the platform and a full call in one process")
    d.add_argument("--seconds", type=float, default=8.0, help="length of the echo call (default 8)")
    d.add_argument("--out", default="demo-output", help="folder for pcap, trace, key log and WAV")
    d.add_argument("--g711", action="store_true", help="use G.711 even when Opus is available")
    d.add_argument("-v", "--verbose", action="store_true")
    s = sub.add_parser("serve", help="run the embedded platform (token API + SIP + test numbers)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--http-port", type=int, default=8088)
    s.add_argument("--ws-port", type=int, default=8089)
    s.add_argument("--udp-port", type=int, default=5060)
    s.add_argument("--api-key", action="append", help="accepted X-User-API-Key (repeatable)")
    s.add_argument("--duration", type=float, default=0, help="stop after N seconds (0 = until Ctrl-C)")
    t = sub.add_parser("token", help="mint an access token from a platform")
    t.add_argument("--server", default="http://127.0.0.1:8088")
    t.add_argument("--api-key", default="demo-api-key")
    t.add_argument("--user", default="demo-user")
    t.add_argument("--label", default="cli")
    c = sub.add_parser("call", help="place a call and print quality every second")
    c.add_argument("target", help="number or SIP URI (echo, tone, ivr, busy, noanswer on the platform)")
    c.add_argument("--server", default="http://127.0.0.1:8088", help="platform HTTP base URL (with --token)")
    c.add_argument("--token")
    c.add_argument("--uri", help="direct SIP credentials: address of record")
    c.add_argument("--username")
    c.add_argument("--password")
    c.add_argument("--proxy", help="udp:host:port / tcp:host:port outbound proxy")
    c.add_argument("--ws-url")
    c.add_argument("--transport", default="ws", choices=["ws", "udp", "tcp"])
    c.add_argument("--security", default="dtls", choices=["dtls", "sdes", "none"])
    c.add_argument("--duration", type=float, default=10)
    c.add_argument("--dtmf")
    c.add_argument("--play", help="WAV file to send")
    c.add_argument("--tone", action="store_true", help="send a 440 Hz tone")
    c.add_argument("--record", help="write received audio to this WAV file")
    c.add_argument("--pcap", help="write media packets to this pcap")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    runner = {"demo": _demo, "serve": _serve, "token": _token, "call": _call}[args.cmd]
    try:
        return asyncio.run(runner(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

