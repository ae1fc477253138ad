"""A voice_sdk Device in its own process, for the real-peer tests of test_device_peers.py.

    ip netns exec <ns> .venv/bin/python tests/interop/device_peer.py --mode call \\
        --aor sip:alice@lab.local --password secret --ws-url ws://127.0.0.1:8080 \\
        --security dtls --local 10.77.5.1 --target sip:bob@lab.local --report out.json

Only the public SDK surface is used: ``Device(options=DeviceOptions(sip_credentials=
SipCredentials(uri, password, ws_url= | proxy=), media_security=..., local_address=...))``,
``register()``, ``connect()`` or the ``incoming`` event with ``Call.accept()``,
``Call.set_input()`` / ``set_output()``, ``send_digits()``, ``disconnect()``, ``destroy()``,
and the device and call events. The escape hatch ``call.media`` is read only for the report.

``--mode call`` registers, calls ``--target``, waits for ``accepted`` (answered and media
flowing), sends ``--digits`` (RFC 4733), keeps the call ``--seconds`` and hangs up.
``--mode answer`` registers, then (with ``--baresip-ctrl``) asks baresip over its ctrl_tcp
socket to ``dial --dial-uri``; the ``incoming`` call is accepted, held ``--seconds`` once
media flows, then baresip is told to ``hangup`` (its BYE must reach us) unless
``--local-hangup`` is given.

The Device sends a ``--tone`` Hz sine and records what it plays out (``--recording``, WAV).
Everything observed (device and call events with times, statuses, quality samples, ICE/DTLS
facts of the media session, baresip's ctrl_tcp events) goes to ``--report`` as JSON. The exit
code is 0 when the scenario ran to its end. The whole run is bounded by ``--timeout``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for entry in (str(ROOT), str(HERE)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

from voice_sdk import Device, DeviceOptions, SipCredentials  # noqa: E402
from voice_sdk.audio import BufferSink, ToneSource  # noqa: E402
from voice_sdk.call import Call, QualitySample  # noqa: E402
from voice_sdk.errors import VoiceSDKError  # noqa: E402

log = logging.getLogger("device_peer")
RECORD_RATE = 48000


def media_snapshot(call: Call) -> dict[str, Any]:
    """What the call's MediaSession negotiated and established (ICE pair, DTLS result, counters)."""
    media = call.media
    if media is None:
        return {}
    snap: dict[str, Any] = {
        "state": media.state.value,
        "security": media.security,
        "codec": media.negotiated.codec.encoding if media.negotiated and media.negotiated.codec else None,
        "local_address": list(media.local_address),
        "packets_sent": media.packets_sent,
        "packets_received": media.packets_received,
        "discarded": media.discarded,
        "ice_state": None,
        "selected_pair": None,
        "dtls_role": None,
        "dtls_srtp_profile": None,
    }
    if media.ice is not None:
        snap["ice_state"] = media.ice.state.value
        sel = media.ice.selected_pair()
        if sel is not None:
            local, remote = sel
            snap["selected_pair"] = {"local": list(local.addr), "local_type": local.type.value,
                                     "remote": list(remote.addr), "remote_type": remote.type.value}
    dtls = media._dtls
    if dtls is not None:
        snap["dtls_role"] = dtls.role
        result = dtls.handshake_result
        if result is not None and result.srtp_profile is not None:
            snap["dtls_srtp_profile"] = result.srtp_profile.name
    return snap


class Scenario:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.t0 = time.monotonic()
        self.report: dict[str, Any] = {"mode": args.mode, "events": [], "ok": False, "quality": [],
                                       "baresip_events": []}
        self.sink = BufferSink(RECORD_RATE, max_seconds=60.0)
        self.call: Call | None = None
        self.incoming: asyncio.Future[Call] | None = None
        self.ctl: Any = None

    def note(self, what: str, **extra: Any) -> None:
        entry = {"t": round(time.monotonic() - self.t0, 3), "what": what, **extra}
        self.report["events"].append(entry)
        log.info("%s", entry)

    def device(self) -> Device:
        a = self.args
        creds = SipCredentials(a.aor, a.password, ws_url=a.ws_url, proxy=a.proxy)
        options = DeviceOptions(sip_credentials=creds, media_security=a.security, local_address=a.local,
                                codecs=tuple(a.codecs.split(",")), log_level=a.log_level)
        device = Device(options=options)
        device.on("registered", lambda: self.note("device.registered"))
        device.on("unregistered", lambda info: self.note("device.unregistered", **info))
        device.on("error", lambda err: self.note("device.error", code=str(err.code), message=err.message))
        device.on("incoming", self.on_incoming)
        return device

    def watch(self, call: Call) -> None:
        call.set_input(ToneSource((self.args.tone,), sample_rate=RECORD_RATE))
        call.set_output(self.sink)
        call.on("ringing", lambda _c: self.note("call.ringing", status=call.status))
        call.on("accepted", lambda _c: self.note("call.accepted", status=call.status,
                                                  setup_time=call.setup_time))
        call.on("disconnect", lambda reason: self.note("call.disconnect", reason=reason, status=call.status))
        call.on("error", lambda err: self.note("call.error", code=str(err.code), message=err.message))
        call.on("digit", lambda digit: self.note("call.digit", digit=digit))
        call.on("quality", self.on_quality)

    def on_quality(self, sample: QualitySample) -> None:
        self.report["quality"].append({"rtt_ms": sample.rtt_ms, "jitter_ms": sample.jitter_ms,
                                       "inbound_loss": sample.inbound_loss, "mos": sample.mos_estimate,
                                       "codec": sample.selected_codec,
                                       "local_candidate_type": sample.local_candidate_type,
                                       "remote_candidate_type": sample.remote_candidate_type,
                                       "packets_sent": sample.packets_sent,
                                       "packets_received": sample.packets_received})

    def on_incoming(self, call: Call) -> None:
        self.note("device.incoming", remote_identity=call.remote_identity, status=call.status,
                  direction=call.direction)
        if self.incoming is not None and not self.incoming.done():
            self.incoming.set_result(call)
        else:
            call.reject(486)

    # -- baresip's ctrl_tcp (it listens on 127.0.0.1 of this namespace) ---------------------------------
    async def open_baresip_ctrl(self) -> None:
        from baresip.peer import Control

        self.ctl = await asyncio.to_thread(Control, self.args.baresip_ctrl)

    async def baresip(self, command: str, params: str | None = None) -> dict[str, Any]:
        if self.ctl is None:
            await self.open_baresip_ctrl()
        resp: dict[str, Any] = await asyncio.to_thread(self.ctl.command, command, params)
        self.note("baresip." + command, ok=bool(resp.get("ok")))
        return resp

    async def hold(self, call: Call) -> None:
        """Keep the call up for --seconds (unless it ends), sending the digits after a short while."""
        end = time.monotonic() + self.args.seconds
        if self.args.digits:
            await asyncio.sleep(0.5)
            self.note("digits.sent", digits=self.args.digits)
            await call.send_digits(self.args.digits)
        remaining = max(0.0, end - time.monotonic())
        try:
            await call.wait_ended(remaining)
        except TimeoutError:
            pass

    async def run_call(self, device: Device) -> bool:
        call = await device.connect(self.args.target)
        self.call = call
        self.note("call.created", status=call.status, direction=call.direction)
        self.watch(call)
        await call.wait_accepted(self.args.connect_timeout)
        self.report["connected"] = media_snapshot(call)
        await self.hold(call)
        if call.status != "accepted":
            return False
        self.report["before_hangup"] = media_snapshot(call)
        await call.disconnect()
        await call.wait_ended(5)
        return True

    async def run_answer(self, device: Device) -> bool:
        self.incoming = asyncio.get_running_loop().create_future()
        if self.args.baresip_ctrl:
            resp = await self.baresip("dial", self.args.dial_uri)
            if not resp.get("ok"):
                self.note("baresip.dial_failed", response=resp)
                return False
        call = await asyncio.wait_for(self.incoming, self.args.connect_timeout)
        self.call = call
        self.watch(call)
        self.report["status_before_accept"] = call.status
        await call.accept()
        await call.wait_accepted(self.args.connect_timeout)
        self.report["connected"] = media_snapshot(call)
        await self.hold(call)
        if call.status != "accepted":
            return False
        self.report["before_hangup"] = media_snapshot(call)
        if self.args.local_hangup or not self.args.baresip_ctrl:
            await call.disconnect()
        else:
            await self.baresip("hangup")
        await call.wait_ended(5)
        return True

    async def run(self) -> bool:
        device = self.device()
        try:
            if self.args.baresip_ctrl:  # its events (CALL_DTMF_START ...) from now on
                await self.open_baresip_ctrl()
            await device.register()
            self.report["registered"] = device.is_registered
            ok = await (self.run_call(device) if self.args.mode == "call" else self.run_answer(device))
            if self.call is not None:
                self.report["final_status"] = self.call.status
                self.report["disconnect_reason"] = self.call.disconnect_reason
                self.report["duration"] = round(self.call.duration, 3)
                self.report["digits_received"] = list(self.call.digits_received)
            await device.unregister()
            self.report["unregistered"] = not device.is_registered
            return ok
        finally:
            await device.destroy()
            if self.ctl is not None:
                await asyncio.to_thread(self.ctl.poll)
                self.report["baresip_events"] = [{"type": e.get("type"), "param": e.get("param")}
                                                 for e in self.ctl.events]
                self.ctl.close()

    def save_recording(self, path: Path) -> None:
        pcm = self.sink.pcm()
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RECORD_RATE)
            w.writeframes(np.asarray(pcm, dtype="<i2").tobytes())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--mode", choices=("call", "answer"), required=True)
    p.add_argument("--aor", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--ws-url", help="SIP over WebSocket server (ws://host:port)")
    p.add_argument("--proxy", help="outbound proxy, udp:host:port")
    p.add_argument("--security", default="dtls", choices=("dtls", "sdes", "none"))
    p.add_argument("--local", default=None, help="local address for SIP/UDP and media")
    p.add_argument("--codecs", default="opus,PCMU,PCMA")
    p.add_argument("--target", help="who to call (call mode)")
    p.add_argument("--digits", default="", help="DTMF digits sent once the call is accepted")
    p.add_argument("--seconds", type=float, default=3.0, help="call length once media flows")
    p.add_argument("--tone", type=float, default=1000.0)
    p.add_argument("--baresip-ctrl", type=int, default=0, help="baresip ctrl_tcp port on 127.0.0.1")
    p.add_argument("--dial-uri", help="answer mode: the URI baresip is told to dial")
    p.add_argument("--local-hangup", action="store_true")
    p.add_argument("--connect-timeout", type=float, default=10.0)
    p.add_argument("--timeout", type=float, default=30.0, help="bound on the whole run")
    p.add_argument("--report", type=Path, required=True)
    p.add_argument("--recording", type=Path)
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)
    if args.mode == "call" and not args.target:
        p.error("--mode call needs --target")
    if args.mode == "answer" and args.baresip_ctrl and not args.dial_uri:
        p.error("--baresip-ctrl needs --dial-uri")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s.%(msecs)03d %(name)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    scenario = Scenario(args)
    ok = False
    try:
        ok = asyncio.run(asyncio.wait_for(scenario.run(), args.timeout))
    except (VoiceSDKError, Exception) as exc:  # report whatever went wrong, never hang
        scenario.note("error", error=f"{type(exc).__name__}: {exc}")
        log.exception("scenario failed")
    scenario.report["ok"] = ok
    if args.recording is not None:
        scenario.save_recording(args.recording)
    args.report.write_text(json.dumps(scenario.report, indent=1, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
