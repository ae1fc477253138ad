"""Our side of the baresip ICE + DTLS-SRTP interop tests, run as a subprocess inside a private namespace.

    ip netns exec <ns> .venv/bin/python tests/interop/ice_peer.py --local 10.77.5.1 \\
        --mode call --target sip:bob@10.77.5.2:5800 --report out.json --recording rx.wav

Wiring (the same as voice_sdk.device, without the SDK around it): a
:class:`sipcore.aioua.UserAgent` on UDP ``--local``:``--sip-port``, a
:class:`rtpcore.media_session.MediaSession` with ``MediaConfig(security="dtls")`` (ICE +
DTLS-SRTP offers/answers) on a media socket bound to ``--local``, driven by
:class:`rtpcore.aio.AioMediaDriver`. We send a ``--tone`` Hz sine and record what we play out.

``--mode call`` INVITEs ``--target``, holds the call for ``--seconds`` once media flows, then
sends BYE. ``--mode answer`` prints ``READY <port>`` and answers the first INVITE; the call
ends on the peer's BYE (or our BYE after ``--seconds``). ``--restart-ice-after T`` sends a
re-INVITE with an ICE restart T seconds after media started (RFC 8445 §9, RFC 8839 §4.4).

Everything observed goes to ``--report`` (JSON): SIP outcome, every media event, the ICE state
and selected pair, the DTLS result (cipher suite, SRTP profile), packet counters, and the
restart outcome. The exit code is 0 when the call ran to its end, else 1. The whole run is
bounded by ``--timeout``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from rtpcore.aio import AioMediaDriver, bind_media_socket  # noqa: E402
from rtpcore.media_session import (  # noqa: E402
    MediaConfig,
    MediaEvent,
    MediaFailed,
    MediaFlowing,
    MediaSession,
    MediaState,
)
from sipcore.aiostack import AioSipEndpoint  # noqa: E402
from sipcore.aioua import CallFailed, IncomingInvite, InviteSession, UserAgent  # noqa: E402

log = logging.getLogger("ice_peer")


class Tone:
    """A continuous-phase sine source (mono int16)."""

    def __init__(self, freq: float, sample_rate: int = 48000, amplitude: float = 8000.0) -> None:
        self.freq = freq
        self.sample_rate = sample_rate
        self.amplitude = amplitude
        self._n = 0

    def read(self, samples: int) -> np.ndarray:
        t = (np.arange(samples) + self._n) / self.sample_rate
        self._n += samples
        return (self.amplitude * np.sin(2 * np.pi * self.freq * t)).astype(np.int16)


class Recorder:
    """Keeps what we play out (bounded), with the loop time of every frame."""

    def __init__(self, sample_rate: int = 48000, max_seconds: float = 60.0) -> None:
        self.sample_rate = sample_rate
        self.frames: list[np.ndarray] = []
        self._max = int(max_seconds * sample_rate)
        self._count = 0

    def write(self, pcm: np.ndarray) -> None:
        if self._count < self._max:
            self.frames.append(pcm.copy())
            self._count += len(pcm)

    def save(self, path: Path) -> None:
        pcm = np.concatenate(self.frames) if self.frames else np.zeros(0, dtype=np.int16)
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(self.sample_rate)
            w.writeframes(pcm.astype("<i2").tobytes())


def _pair(media: MediaSession) -> dict[str, Any] | None:
    if media.ice is None:
        return None
    sel = media.ice.selected_pair()
    if sel is None:
        return None
    local, remote = sel
    return {"local": list(local.addr), "local_type": local.type.value,
            "remote": list(remote.addr), "remote_type": remote.type.value}


def _snapshot(media: MediaSession) -> dict[str, Any]:
    dtls = media._dtls.handshake_result if media._dtls is not None else None
    return {
        "state": media.state.value,
        "security": media.security,
        "codec": media.negotiated.codec.encoding if media.negotiated and media.negotiated.codec else None,
        "ice_state": media.ice.state.value if media.ice is not None else None,
        "ice_ufrag": media.ice.local_ufrag if media.ice is not None else None,
        "selected_pair": _pair(media),
        "dtls_role": media._dtls.role if media._dtls is not None else None,
        "dtls_cipher_suite": dtls.cipher_suite.name if dtls is not None else None,
        "dtls_srtp_profile": dtls.srtp_profile.name if dtls is not None and dtls.srtp_profile else None,
        "dtls_extended_master_secret": dtls.extended_master_secret if dtls is not None else None,
        "packets_sent": media.packets_sent,
        "packets_received": media.packets_received,
        "discarded": media.discarded,
    }


class Peer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.report: dict[str, Any] = {"mode": args.mode, "events": [], "ok": False}
        self.media: MediaSession | None = None
        self.driver: AioMediaDriver | None = None
        self.session: InviteSession | None = None
        self.recorder = Recorder()
        self.flowing = asyncio.Event()
        self.failed = asyncio.Event()
        self.ended = asyncio.Event()
        self.t0 = time.monotonic()

    def note(self, what: str, **extra: Any) -> None:
        entry = {"t": round(time.monotonic() - self.t0, 3), "what": what, **extra}
        self.report["events"].append(entry)
        log.info("%s", entry)

    def on_media_event(self, ev: MediaEvent) -> None:
        fields = {k: getattr(ev, k) for k in ev.__slots__ if k != "error"}  # type: ignore[union-attr]
        self.note(type(ev).__name__, **{k: (list(v) if isinstance(v, tuple) else v) for k, v in fields.items()})
        if isinstance(ev, MediaFlowing):
            self.flowing.set()
        elif isinstance(ev, MediaFailed):
            self.failed.set()

    async def _on_reinvite(self, session: InviteSession, offer: bytes) -> bytes:
        """A re-offer from the peer (baresip re-INVITEs with its final default candidates)."""
        assert self.media is not None and self.driver is not None
        self.note("reinvite_received")
        answer = self.media.receive_offer(offer, asyncio.get_running_loop().time())
        self.driver.poke()
        return answer

    def _on_bye(self, request: object) -> None:
        if request is not None:  # None: we ended the dialog ourselves
            self.note("bye_received")
            self.ended.set()

    async def new_media(self) -> MediaSession:
        proto, addr = await bind_media_socket(self.args.local, 0)
        loop = asyncio.get_running_loop()
        config = MediaConfig(security="dtls", codecs=tuple(self.args.codecs.split(",")))
        media = MediaSession(addr, now=loop.time(), config=config, wallclock=time.time())
        self.media = media
        self.driver = AioMediaDriver(media, proto, source=Tone(self.args.tone), sink=self.recorder,
                                     on_event=self.on_media_event)
        # host candidates only: gathering ends at once, but never wait unbounded
        end = loop.time() + 2.0
        while not media.gathering_complete and loop.time() < end:
            await asyncio.sleep(0.01)
        self.note("media_socket", addr=list(addr), gathering_complete=media.gathering_complete)
        return media

    async def wait_media(self) -> bool:
        waiters = [asyncio.ensure_future(self.flowing.wait()), asyncio.ensure_future(self.failed.wait())]
        done, pending = await asyncio.wait(waiters, timeout=self.args.connect_timeout,
                                           return_when=asyncio.FIRST_COMPLETED)
        for w in pending:
            w.cancel()
        return self.flowing.is_set() and not self.failed.is_set()

    async def hold_call(self) -> None:
        """Keep the call up for --seconds after media flows (optionally restarting ICE midway)."""
        assert self.media is not None and self.session is not None
        start = asyncio.get_running_loop().time()
        if self.args.restart_ice_after is not None:
            await self._sleep_unless_ended(self.args.restart_ice_after)
            if not self.ended.is_set():
                await self.restart_ice()
        remaining = self.args.seconds - (asyncio.get_running_loop().time() - start)
        await self._sleep_unless_ended(max(0.0, remaining))

    async def _sleep_unless_ended(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ended.wait(), seconds)

    async def restart_ice(self) -> None:
        assert self.media is not None and self.session is not None and self.driver is not None
        media, loop = self.media, asyncio.get_running_loop()
        before = _snapshot(media)
        media.restart_ice(loop.time())
        end = loop.time() + 2.0
        while not media.gathering_complete and loop.time() < end:
            await asyncio.sleep(0.01)
        offer = media.create_offer(loop.time())
        self.driver.poke()
        self.note("reinvite_sent", ufrag=media.ice.local_ufrag if media.ice else None)
        resp = await asyncio.wait_for(self.session.reinvite(offer), 10)
        self.note("reinvite_answered", status=resp.status_code)
        restart: dict[str, Any] = {"before": before, "status": resp.status_code}
        if resp.status_code < 300:
            media.receive_answer(resp.body, loop.time())
            self.driver.poke()
            restart["remote_sdp"] = resp.body.decode(errors="replace")
            # the new generation must select a pair; media keeps flowing meanwhile
            end = loop.time() + 5.0
            while loop.time() < end:
                if media.ice is not None and media.ice.selected_pair() is not None \
                        and media.ice.state.value in ("connected", "completed") and media.ice.local_ufrag != before["ice_ufrag"]:
                    break
                await asyncio.sleep(0.05)
            restart["after_answer"] = _snapshot(media)
            restart["answer_time"] = round(time.monotonic() - self.t0, 3)
        self.report["restart"] = restart

    async def run_call(self, ua: UserAgent) -> bool:
        media = await self.new_media()
        loop = asyncio.get_running_loop()
        offer = media.create_offer(loop.time())
        self.report["local_sdp"] = offer.decode(errors="replace")
        out = ua.invite(self.args.target, offer)
        try:
            session = await asyncio.wait_for(out.result, self.args.connect_timeout)
        except CallFailed as exc:
            self.note("call_failed", status=exc.status, reason=exc.reason)
            return False
        self.session = session
        session.on_bye = self._on_bye
        session.on_reinvite = self._on_reinvite
        self.report["remote_sdp"] = session.remote_sdp.decode(errors="replace")
        self.note("answered")
        assert self.driver is not None
        media.receive_answer(session.remote_sdp, loop.time())
        self.driver.poke()
        self.driver.start_media_clock()
        if not await self.wait_media():
            self.note("no_media")
            await session.bye()
            return False
        self.report["connected"] = _snapshot(media)
        await self.hold_call()
        if not self.ended.is_set():
            self.report["before_bye"] = _snapshot(media)
            await asyncio.wait_for(session.bye(), 10)
            self.note("bye_sent")
        return True

    async def run_answer(self, ua: UserAgent) -> bool:
        incoming: asyncio.Future[IncomingInvite] = asyncio.get_running_loop().create_future()

        async def on_invite(inc: IncomingInvite) -> None:
            if incoming.done():
                inc.reject(486)
                return
            incoming.set_result(inc)

        ua.on_invite = on_invite
        print(f"READY {self.report['sip_port']}", flush=True)
        inc = await asyncio.wait_for(incoming, self.args.connect_timeout)
        self.note("invite_received")
        self.report["remote_sdp"] = inc.offer.decode(errors="replace")
        media = await self.new_media()
        loop = asyncio.get_running_loop()
        answer = media.receive_offer(inc.offer, loop.time())
        self.report["local_sdp"] = answer.decode(errors="replace")
        session = inc.answer(answer)
        self.session = session
        session.on_bye = self._on_bye
        session.on_reinvite = self._on_reinvite
        assert self.driver is not None
        self.driver.poke()
        self.driver.start_media_clock()
        if not await self.wait_media():
            self.note("no_media")
            await session.bye()
            return False
        self.report["connected"] = _snapshot(media)
        await self.hold_call()
        if not self.ended.is_set():
            self.report["before_bye"] = _snapshot(media)
            await asyncio.wait_for(session.bye(), 10)
            self.note("bye_sent")
        else:
            self.report["before_bye"] = _snapshot(media)
        return True

    async def run(self) -> bool:
        ep = AioSipEndpoint()
        host, port = await ep.listen("udp", self.args.local, self.args.sip_port)
        self.report["sip_port"] = port
        ua = UserAgent(ep, aor=f"sip:ours@{host}", outbound=None)  # requests go to the R-URI's host:port
        try:
            ok = await (self.run_call(ua) if self.args.mode == "call" else self.run_answer(ua))
            return ok
        finally:
            if self.media is not None:
                self.report["final"] = _snapshot(self.media)
                self.report["final"]["media_failed"] = self.media.state is MediaState.FAILED
            if self.driver is not None:
                self.driver.close()
            await ua.close()
            await ep.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--local", required=True, help="address to bind SIP and media to (the veth address)")
    p.add_argument("--mode", choices=("call", "answer"), required=True)
    p.add_argument("--target", help="request URI to call (call mode)")
    p.add_argument("--sip-port", type=int, default=0)
    p.add_argument("--seconds", type=float, default=3.0, help="call length once media flows")
    p.add_argument("--tone", type=float, default=1000.0, help="frequency we send (Hz)")
    p.add_argument("--codecs", default="opus,PCMU")
    p.add_argument("--restart-ice-after", type=float, default=None)
    p.add_argument("--connect-timeout", type=float, default=10.0)
    p.add_argument("--timeout", type=float, default=30.0, help="bound on the whole run")
    p.add_argument("--report", type=Path, required=True)
    p.add_argument("--recording", type=Path, help="WAV of what we played out")
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args()
    if args.mode == "call" and not args.target:
        p.error("--mode call needs --target")
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s.%(msecs)03d %(name)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    peer = Peer(args)
    ok = False
    try:
        ok = asyncio.run(asyncio.wait_for(peer.run(), args.timeout))
    except Exception as exc:  # report whatever went wrong, never hang
        peer.note("error", error=f"{type(exc).__name__}: {exc}")
        log.exception("peer failed")
    peer.report["ok"] = ok
    if args.recording is not None:
        peer.recorder.save(args.recording)
    args.report.write_text(json.dumps(peer.report, indent=1, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
