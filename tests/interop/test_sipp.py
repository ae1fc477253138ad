"""sipp (UAC) calls a sipcore UAS: correctness first, then a load of 100 calls/s for 20 s.

The UAS is an :class:`~sipcore.aiostack.AioSipEndpoint` + :class:`~sipcore.aioua.UserAgent` on
127.0.0.1 in the test's own event loop: it answers every INVITE at once with an SDP answer (2xx
retransmitted until the ACK, RFC 3261 §13.3.1.4) and accepts the BYE. sipp runs the scenario
``sipp/uac_call.xml`` (INVITE with an offer, 200 must carry ``m=audio``, ACK, pause, BYE, 200)
in its own process, bounded by ``-timeout``/``-timeout_error`` and ``timeout``; the test waits for
it in a worker thread, so the loop does nothing but serve SIP. sipp runs on one core, the UAS on
the other: this is the shape of a 2-core CI machine. Measured on one: the UAS sustains 300-400
calls/s before sipp sees retransmissions (benchmarks/bench_sip_uas.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from peers import Sipp, SippResult

from conftest import require
from sipcore.aiostack import AioSipEndpoint
from sipcore.aioua import IncomingInvite, InviteSession, UserAgent

pytestmark = pytest.mark.interop

ANSWER = (b"v=0\r\no=sipcore 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
          b"m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n")


@dataclass
class Uas:
    """The sipcore UAS and what it saw."""

    endpoint: AioSipEndpoint = field(default_factory=AioSipEndpoint)
    invites: int = 0
    offers_with_audio: int = 0
    byes: int = 0
    port: int = 0
    ua: UserAgent | None = None

    async def start(self) -> Uas:
        self.endpoint.trace_limit = 0  # no ladder bookkeeping under load
        _, self.port = await self.endpoint.listen("udp", "127.0.0.1", 0)
        self.ua = UserAgent(self.endpoint, aor="sip:uas@127.0.0.1", outbound=None)
        self.ua.on_invite = self.on_invite
        return self

    def on_invite(self, inc: IncomingInvite) -> None:
        self.invites += 1
        if b"m=audio" in inc.offer:
            self.offers_with_audio += 1
        session = inc.answer(ANSWER)
        session.on_bye = lambda request, s=session: self.on_bye(s, request)

    def on_bye(self, session: InviteSession, request: object) -> None:
        if request is not None:
            self.byes += 1

    @property
    def open_sessions(self) -> int:
        assert self.ua is not None
        return len(self.ua._sessions)

    async def close(self) -> None:
        if self.ua is not None:  # BYEs calls still open (a failed run): bounded, sipp may be gone
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.ua.close(), 3)
        await self.endpoint.close()


async def call_uas(tmp_path: Path, *, calls: int, rate: float, pause_ms: int, timeout: float,
                   trace_messages: bool) -> tuple[SippResult, Uas]:
    uas = await Uas().start()
    try:
        sipp = Sipp(tmp_path, "uac_call.xml", name="uac", remote=f"127.0.0.1:{uas.port}", service="uas",
                    calls=calls, rate=rate, pause_ms=pause_ms, limit=1000, timeout=timeout,
                    trace_messages=trace_messages)
        result = await asyncio.to_thread(sipp.run)
        for _ in range(100):  # the last BYEs' 200s are out; let the loop settle
            if uas.open_sessions == 0:
                break
            await asyncio.sleep(0.02)
        return result, uas
    finally:
        await uas.close()


def test_twenty_calls_answered_with_sdp(tmp_path: Path) -> None:
    require("sipp")
    result, uas = asyncio.run(call_uas(tmp_path, calls=20, rate=20, pause_ms=100, timeout=20, trace_messages=True))
    assert result.returncode == 0, result.log
    assert result.stats is not None and (result.stats.successful, result.stats.failed) == (20, 0), result.log
    assert (uas.invites, uas.offers_with_audio, uas.byes, uas.open_sessions) == (20, 20, 20, 0)
    messages = (tmp_path / "uac_messages.log").read_text("utf-8", "replace")
    assert messages.count("SIP/2.0 200 OK") >= 40 and "m=audio 40000 RTP/AVP 0" in messages


@pytest.mark.slow
def test_load_100_calls_per_second_for_20_seconds(tmp_path: Path) -> None:
    require("sipp")
    result, uas = asyncio.run(call_uas(tmp_path, calls=2000, rate=100, pause_ms=100, timeout=45,
                                       trace_messages=False))
    stats = result.stats
    assert stats is not None, result.log
    print(f"\nsipp: {stats.successful} ok, {stats.failed} failed, {stats.retransmissions} retransmissions, "
          f"{stats.call_rate:.1f} calls/s, INVITE->200 {stats.response_time_ms:.1f} ms avg")
    assert result.returncode == 0, result.log[-3000:]
    assert (stats.successful, stats.failed) == (2000, 0)
    assert stats.call_rate > 90  # 2000 calls in about 20 s, not stretched by a slow UAS
    assert (uas.invites, uas.byes, uas.open_sessions) == (2000, 2000, 0)
