"""asyncio driver for :class:`rtpcore.media_session.MediaSession`: one UDP socket and a media clock.

* One socket carries STUN, DTLS, RTP and RTCP (RFC 5761 mux, RFC 7983 demux), so the NAT
  binding the peer sees is the one we send from (symmetric RTP, RFC 4961).
* The media clock is the event loop's clock: frame *k* is due at ``t0 + k * ptime`` and is
  scheduled with ``loop.call_at``, never ``sleep``; if the loop stalls, late frames are sent
  at once and the schedule catches up without drifting.
* Every tick: read one frame from the source (resampled to the codec rate), encode and send;
  pull one frame from the jitter buffer and write it to the sink (resampled to its rate).
* Protocol timers (DTLS retransmission, RTCP, DTMF end, media timeout) share one
  ``call_at`` re-armed from ``next_deadline()``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from .errors import LocalProtocolError
from .media_session import MediaEvent, MediaSession
from .resample import Resampler

__all__ = ["AioMediaDriver", "bind_media_socket"]

log = logging.getLogger("rtpcore.aio")
Pcm = NDArray[np.int16]


class PcmSource(Protocol):
    sample_rate: int

    def read(self, samples: int) -> Pcm: ...


class PcmSink(Protocol):
    sample_rate: int

    def write(self, pcm: Pcm) -> None: ...


class _Proto(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.driver: AioMediaDriver | None = None
        self.transport: asyncio.DatagramTransport | None = None
        self.early: list[tuple[bytes, tuple[str, int]]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if self.driver is None:
            if len(self.early) < 64:
                self.early.append((data, (addr[0], addr[1])))
            return
        self.driver._on_datagram(data, (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        log.debug("media socket error: %s", exc)


async def bind_media_socket(host: str = "127.0.0.1", port: int = 0) -> tuple[_Proto, tuple[str, int]]:
    """Bind the UDP socket first (its port goes into the SDP), attach a driver later."""
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(_Proto, local_addr=(host, port))
    sock = transport.get_extra_info("sockname")
    return proto, (str(sock[0]), int(sock[1]))


class AioMediaDriver:
    """Runs one MediaSession on the loop; ``on_event`` gets every MediaEvent."""

    def __init__(self, session: MediaSession, proto: _Proto, *, source: PcmSource | None = None,
                 sink: PcmSink | None = None, on_event: Callable[[MediaEvent], None] | None = None,
                 on_packet: Callable[[str, bytes, tuple[str, int]], None] | None = None) -> None:
        self.session = session
        self.proto = proto
        self.source = source
        self.sink = sink
        self.on_event = on_event
        self.on_packet = on_packet
        """Called with ("in"|"out", datagram, peer) for pcap writing."""
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._tick_handle: asyncio.TimerHandle | None = None
        self._t0: float | None = None
        self._k = 0
        self._src_rs: Resampler | None = None
        self._src_buf: Pcm = np.zeros(0, dtype=np.int16)
        self._sink_rs: Resampler | None = None
        self._closed = False
        self.late_ticks = 0
        self.cpu_seconds = 0.0
        """Process CPU time spent inside media ticks (per-call CPU cost)."""
        proto.driver = self
        for data, addr in proto.early:
            self._on_datagram(data, addr)
        proto.early.clear()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    def now(self) -> float:
        return self.loop.time()

    def start_media_clock(self) -> None:
        """Start sending/receiving audio frames every ptime (after negotiation)."""
        if self._t0 is None:
            self._t0 = self.now()
            self._k = 0
            self._schedule_tick()

    def _schedule_tick(self) -> None:
        if self._closed or self._t0 is None:
            return
        due = self._t0 + self._k * self.session.config.ptime_ms / 1000.0
        self._tick_handle = self.loop.call_at(due, self._tick)

    def _tick(self) -> None:
        c0 = time.process_time()
        now = self.now()
        ptime = self.session.config.ptime_ms / 1000.0
        if self._t0 is None:
            raise LocalProtocolError("internal state: _t0 not set")
        # catch up without drifting: run every frame that is due (bounded to 5 per tick)
        for _ in range(5):
            due = self._t0 + self._k * ptime
            if due > now + 1e-4:
                break
            self._media_frame(now)
            self._k += 1
        else:
            self.late_ticks += 1
            behind = int((now - (self._t0 + self._k * ptime)) / ptime)
            if behind > 0:
                self._k += behind  # drop what we cannot send in time
        self._flush()
        self.cpu_seconds += time.process_time() - c0
        self._schedule_tick()

    def _media_frame(self, now: float) -> None:
        s = self.session
        rate = s.audio_sample_rate
        n = s.frame_samples
        if self.source is not None:
            if self.source.sample_rate == rate:
                pcm = self.source.read(n)
            else:
                if self._src_rs is None:
                    self._src_rs = Resampler(self.source.sample_rate, rate)
                while len(self._src_buf) < n:
                    need = max(1, n * self.source.sample_rate // rate)
                    self._src_buf = np.concatenate([self._src_buf, self._src_rs.process(self.source.read(need))])
                pcm, self._src_buf = self._src_buf[:n], self._src_buf[n:]
        else:
            pcm = np.zeros(n, dtype=np.int16)
        s.send_audio(pcm, now)
        out = s.pull_audio(now)
        if self.sink is not None:
            if self.sink.sample_rate != rate:
                if self._sink_rs is None:
                    self._sink_rs = Resampler(rate, self.sink.sample_rate)
                out = self._sink_rs.process(out)
            self.sink.write(out)

    def _on_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        if self._closed:
            return
        if self.on_packet is not None:
            self.on_packet("in", data, addr)
        self.session.receive(data, addr, self.now())
        self._flush()

    def _flush(self) -> None:
        s = self.session
        tr = self.proto.transport
        for data, addr in s.datagrams_to_send():
            if tr is not None:
                if self.on_packet is not None:
                    self.on_packet("out", data, addr)
                tr.sendto(data, addr)
        for ev in s.events():
            if self.on_event is not None:
                try:
                    self.on_event(ev)
                except Exception:
                    log.exception("media event handler failed")
        self._arm()

    def _arm(self) -> None:
        if self._closed:
            return
        d = self.session.next_deadline()
        if d == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = d
        if d is not None:
            self._timer = self.loop.call_at(d, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.session.handle_timeout(self.now())
        self._flush()

    def poke(self) -> None:
        """Send whatever the session queued after an API call (offer/answer, DTMF)."""
        self._flush()

    def close(self) -> None:
        if self._closed:
            return
        self.session.close(self.now())
        self._flush()
        self._closed = True
        for h in (self._timer, self._tick_handle):
            if h is not None:
                h.cancel()
        if self.proto.transport is not None:
            self.proto.transport.close()
