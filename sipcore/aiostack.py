"""asyncio driver for :class:`sipcore.stack.SipStack`: sockets in, one timer, futures out.

The whole driver is: feed received bytes to the stack, send what it queues, keep one
``loop.call_at(next_deadline)`` armed, and dispatch events. ``request()`` returns the final
response of a client transaction (provisional ones go to an optional callback), so a TU can
be written as plain coroutines::

    ep = AioSipEndpoint()
    await ep.listen("udp", "127.0.0.1", 5060)
    resp = await ep.request(req, Target("udp", "127.0.0.1", 5070))
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from .errors import SipError
from .ladder import LadderEntry, label_for
from .message import SipRequest, SipResponse
from .stack import (
    CancelReceived,
    MessageDropped,
    RequestReceived,
    ResponseReceived,
    SipStack,
    StrayResponse,
    Target,
)
from .timers import SipTimers
from .transaction import ClientTransaction, ServerTransaction
from .transport import Flow, TransportError, TransportManager

__all__ = ["AioSipEndpoint"]

log = logging.getLogger("sipcore.aio")
RequestHandler = Callable[[RequestReceived], Awaitable[None] | None]


class AioSipEndpoint:
    """One SIP endpoint (UA or server) on the running event loop."""

    def __init__(self, *, timers: SipTimers | None = None, rng: Callable[[int], bytes] = os.urandom,
                 user_agent: str | None = "pyvoice-stack", advertise: str | None = None) -> None:
        self.transport = TransportManager(self._on_bytes)
        self.transport.on_flow_closed = self._on_flow_closed
        self.stack = SipStack({}, timers=timers, rng=rng, user_agent=user_agent)
        self.advertise = advertise
        self.on_request: RequestHandler | None = None
        self.on_cancel: Callable[[CancelReceived], None] | None = None
        self.on_stray_response: Callable[[StrayResponse], None] | None = None
        self.on_flow_closed: Callable[[Flow], None] | None = None
        self.trace: list[LadderEntry] = []
        """Every SIP message sent/received (for ladder diagrams and JSONL traces); bounded."""
        self.trace_limit = 2000
        self.on_trace: Callable[[str, bytes, Target], None] | None = None
        self._pending: dict[int, tuple[asyncio.Future[SipResponse], Callable[[SipResponse], None] | None]] = {}
        self._client_txs: dict[int, ClientTransaction] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def listen(self, transport: str, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        if transport == "udp":
            addr = await self.transport.listen_udp(host, port)
        elif transport == "tcp":
            addr = await self.transport.listen_tcp(host, port)
        elif transport == "ws":
            addr = await self.transport.listen_ws(host, port)
        else:
            raise SipError(f"cannot listen on {transport!r}")
        self.stack.sent_by[transport] = (self.advertise or addr[0], addr[1])
        return addr

    # -- receiving ----------------------------------------------------------------------------
    def _on_bytes(self, data: bytes, flow: Flow) -> None:
        source = Target(flow.transport, flow.remote[0], flow.remote[1], flow)
        if flow.transport not in self.stack.sent_by and flow.transport not in ("ws", "wss"):
            self.stack.sent_by[flow.transport] = (self.advertise or flow.local[0], flow.local[1])
        self._record("in", data, source)
        self.stack.receive(data, source, self.now())
        self._drive()

    def _on_flow_closed(self, flow: Flow) -> None:
        if self.on_flow_closed is not None:
            self.on_flow_closed(flow)

    def _record(self, direction: str, data: bytes, peer: Target) -> None:
        if len(self.trace) < self.trace_limit:
            first = data.split(b"\r\n", 1)[0].decode("utf-8", "replace")
            method = None
            if first.startswith("SIP/"):
                for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
                    if line[:5].lower() == b"cseq:":
                        method = line.split()[-1].decode("ascii", "replace")
                        break
            local = self.stack.sent_by.get(peer.transport, ("local", 0))
            me = f"{local[0]}:{local[1]}" if local[1] else local[0]
            src, dst = (str(peer), me) if direction == "in" else (me, str(peer))
            self.trace.append(LadderEntry(time=self.now(), src=src, dst=dst, label=label_for(first, method)))
        if self.on_trace is not None:
            self.on_trace(direction, data, peer)

    # -- the pump -------------------------------------------------------------------------------
    def _drive(self) -> None:
        stack = self.stack
        for event in stack.events():
            self._dispatch(event)
        for data, target in stack.datagrams_to_send():
            self._spawn(self._send(data, target))
        self._arm()

    def _arm(self) -> None:
        if self._closed:
            return
        deadline = self.stack.next_deadline()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.stack.handle_timeout(self.now())
        self._drive()

    async def _send(self, data: bytes, target: Target) -> None:
        self._record("out", data, target)
        try:
            flow = target.flow if isinstance(target.flow, Flow) else None
            await self.transport.send(data, flow=flow, transport=target.transport, host=target.host,
                                      port=target.port)
        except TransportError as exc:
            log.warning("%s", exc)
            for tx in list(self._client_txs.values()):
                if tx.context == target:
                    self.stack.transport_error(tx, self.now())
            self._drive()

    def _dispatch(self, event: Any) -> None:
        if isinstance(event, ResponseReceived):
            entry = self._pending.get(id(event.transaction))
            if entry is None:
                # a 2xx after the final response (a retransmission because our ACK was lost, or
                # another fork's answer; RFC 6026 §7.2): the UAC core must ACK it again
                target = event.transaction.context
                if 200 <= event.response.status_code < 300 and self.on_stray_response is not None \
                        and isinstance(target, Target):
                    self.on_stray_response(StrayResponse(response=event.response, source=target))
                return
            fut, on_provisional = entry
            if event.response.status_code < 200:
                if on_provisional is not None:
                    on_provisional(event.response)
                return
            if not fut.done():
                fut.set_result(event.response)
            self._pending.pop(id(event.transaction), None)
            self._client_txs.pop(id(event.transaction), None)
        elif isinstance(event, RequestReceived):
            if self.on_request is None:
                if event.transaction is not None:
                    from .message import make_response

                    self.stack.send_response(event.transaction, make_response(event.request, 501), self.now())
                return
            result = self.on_request(event)
            if asyncio.iscoroutine(result):
                self._spawn(result)
        elif isinstance(event, CancelReceived):
            if self.on_cancel is not None:
                self.on_cancel(event)
        elif isinstance(event, StrayResponse):
            if self.on_stray_response is not None:
                self.on_stray_response(event)
        elif isinstance(event, MessageDropped):
            log.info("dropped a message from %s: %s", event.source, event.reason)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("SIP task failed", exc_info=task.exception())

    # -- the TU API -----------------------------------------------------------------------------
    def start_request(self, request: SipRequest, target: Target, *,
                      on_provisional: Callable[[SipResponse], None] | None = None
                      ) -> tuple[ClientTransaction, asyncio.Future[SipResponse]]:
        """Send ``request``; returns its transaction and a future of the final response."""
        if target.transport not in self.stack.sent_by:
            if target.transport in ("ws", "wss"):
                # RFC 7118 §5: a WebSocket client has no reachable address; Via carries a .invalid name
                self.stack.sent_by[target.transport] = (f"{self.stack.rng(6).hex()}.invalid", 0)
            else:
                self.stack.sent_by[target.transport] = self.transport.local_address(target.transport)
        tx = self.stack.send_request(request, target, self.now())
        fut: asyncio.Future[SipResponse] = self.loop.create_future()
        self._pending[id(tx)] = (fut, on_provisional)
        self._client_txs[id(tx)] = tx
        self._drive()
        return tx, fut

    async def request(self, request: SipRequest, target: Target, *,
                      on_provisional: Callable[[SipResponse], None] | None = None) -> SipResponse:
        _, fut = self.start_request(request, target, on_provisional=on_provisional)
        return await fut

    def cancel(self, invite_tx: ClientTransaction) -> asyncio.Future[SipResponse]:
        tx = self.stack.send_cancel(invite_tx, self.now())
        fut: asyncio.Future[SipResponse] = self.loop.create_future()
        self._pending[id(tx)] = (fut, None)
        self._client_txs[id(tx)] = tx
        self._drive()
        return fut

    def respond(self, transaction: ServerTransaction, response: SipResponse) -> None:
        self.stack.send_response(transaction, response, self.now())
        self._drive()

    def send_ack(self, ack: SipRequest, target: Target) -> None:
        self.stack.send_ack(ack, target)
        self._drive()

    def send_stateless(self, message: SipRequest | SipResponse, target: Target) -> None:
        self.stack.send_stateless(message, target)
        self._drive()

    async def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        for fut, _ in self._pending.values():
            if not fut.done():
                fut.cancel()
        for task in list(self._tasks):
            task.cancel()
        await self.transport.close()
