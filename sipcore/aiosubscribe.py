"""The asyncio side of SIP events: subscriptions (RFC 6665) and publications (RFC 3903) of a UserAgent.

The protocol decisions live in the sans-IO :mod:`sipcore.subscription` (:class:`Subscriber`,
:class:`Notifier`, :class:`Publisher`); the classes here feed them requests and responses,
arm their deadlines on the event loop and send what they produce through the owning
:class:`~sipcore.aioua.UserAgent`. They are created by the UA, never directly:

* :meth:`UserAgent.subscribe <sipcore.aioua.UserAgent.subscribe>` -> :class:`ClientSubscription`
  (NOTIFYs queued and passed to ``on_notify``, refresh before expiry, unsubscribe);
* ``UserAgent.on_subscribe`` receives a :class:`ServerSubscription` (accept -> first NOTIFY at
  once, refreshes, expiry, terminate);
* :meth:`UserAgent.publish <sipcore.aioua.UserAgent.publish>` -> :class:`ClientPublication`
  (refresh, modify, remove, 412 -> full state again, 423 -> Min-Expires).

The state machines (SUBSCRIBING -> ACTIVE / PENDING -> TERMINATED, the Notifier's expiry,
the Publisher's entity-tag) are drawn and implemented in :mod:`sipcore.subscription`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from .errors import LocalProtocolError
from .message import SipResponse, make_response
from .stack import RequestReceived, Target
from .subscription import (
    Notifier,
    NotifyReceived,
    Publisher,
    RefreshDue,
    Subscriber,
    SubscriberEvent,
    SubscriptionEnded,
    SubState,
)

if TYPE_CHECKING:
    from .aioua import UserAgent

__all__ = ["ClientPublication", "ClientSubscription", "ServerSubscription"]



class ClientSubscription:
    """A subscription we hold (RFC 6665): NOTIFYs are queued and passed to ``on_notify``; it is
    refreshed before it expires; ``ended`` resolves when it is over."""

    def __init__(self, ua: UserAgent, core: Subscriber, target: Target) -> None:
        self.ua = ua
        self.core = core
        self.target = target
        self.on_notify: Callable[[NotifyReceived], None] | None = None
        self.notifications: asyncio.Queue[NotifyReceived] = asyncio.Queue()
        self.ended: asyncio.Future[SubscriptionEnded] = asyncio.get_running_loop().create_future()
        self._handle: asyncio.TimerHandle | None = None

    @property
    def state(self) -> SubState:
        return self.core.state

    def _events(self, events: list[SubscriberEvent]) -> None:
        for ev in events:
            if isinstance(ev, NotifyReceived):
                self.notifications.put_nowait(ev)
                if self.on_notify is not None:
                    self.on_notify(ev)
            elif isinstance(ev, RefreshDue):
                self.ua._spawn(self.refresh())
            elif isinstance(ev, SubscriptionEnded):
                self._finish(ev)
        self._arm()

    def _finish(self, ended: SubscriptionEnded) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        with contextlib.suppress(ValueError):
            self.ua._subscriptions.remove(self)
        if not self.ended.done():
            self.ended.set_result(ended)

    def _arm(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        deadline = self.core.next_deadline()
        if deadline is not None and not self.ended.done():
            self._handle = asyncio.get_running_loop().call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._handle = None
        self._events(self.core.handle_timeout(max(self.ua.endpoint.now(), self.core.next_deadline() or 0.0)))

    def _on_notify(self, ev: RequestReceived) -> None:
        if ev.transaction is None:
            return
        code, events = self.core.receive_notify(ev.request, self.ua.endpoint.now())
        self.ua.endpoint.respond(ev.transaction, make_response(ev.request, code))
        self._events(events)

    async def refresh(self, expires: int | None = None) -> SipResponse | None:
        """Re-SUBSCRIBE in the dialog (``expires=0``: unsubscribe, RFC 6665 §4.1.2.3)."""
        if self.core.state is SubState.TERMINATED or self.core.dialog is None:
            return None
        dialog = self.core.dialog
        _, resp = await self.ua._send_in_dialog(dialog, self.core.refresh_request(expires), self.target)
        self._events(self.core.receive_response(resp, self.ua.endpoint.now()))
        return resp

    async def unsubscribe(self, timeout: float = 5.0) -> SubscriptionEnded | None:
        """End the subscription; returns how it ended (the notifier's final NOTIFY), or None on timeout."""
        await self.refresh(0)
        try:
            return await asyncio.wait_for(asyncio.shield(self.ended), timeout)
        except TimeoutError:
            self._finish(SubscriptionEnded(reason="timeout", retry_after=None))
            return None


class ServerSubscription:
    """A SUBSCRIBE we received: ``accept()`` (sends the first NOTIFY at once) or ``reject()``, then
    ``notify()`` on every state change; refreshes, unsubscribes and expiry are handled here."""

    def __init__(self, ua: UserAgent, ev: RequestReceived, *, max_expires: int = 3600) -> None:
        if ev.transaction is None:
            raise LocalProtocolError("a SUBSCRIBE always has a server transaction")
        self.ua = ua
        self.request = ev.request
        self.transaction = ev.transaction
        self.source = ev.source
        self.core = Notifier(ev.request, max_expires=max_expires, rng=ua.rng)
        self.event = self.core.event
        self.body = b""
        self.content_type: str | None = None
        self.ended = asyncio.Event()
        self._handle: asyncio.TimerHandle | None = None

    def accept(self, body: bytes = b"", content_type: str | None = None, *, pending: bool = False) -> None:
        resp = self.core.accept(self.ua.endpoint.now(), contact=self.ua.contact, pending=pending)
        self.ua.endpoint.respond(self.transaction, resp)
        if resp.status_code >= 300 or self.core.dialog is None:
            self.ended.set()
            return
        self.ua._dialog_users[self.core.dialog.id] = self
        self.body, self.content_type = body, content_type
        self.ua._spawn(self.notify(body, content_type))

    def reject(self, status: int = 403, reason: str | None = None) -> None:
        self.ua.endpoint.respond(self.transaction, make_response(self.request, status, reason, rng=self.ua.rng))
        self.ended.set()

    async def notify(self, body: bytes | None = None, content_type: str | None = None, *,
                     terminate: str | None = None) -> SipResponse | None:
        """Send the state (the last one when ``body`` is None); ``terminate=reason`` ends it."""
        dialog = self.core.dialog
        if dialog is None or (self.ended.is_set() and terminate is None):
            return None
        if body is not None:
            self.body, self.content_type = body, content_type
        now = self.ua.endpoint.now()
        req = self.core.notify(now, self.body, self.content_type if self.body else None, terminate=terminate)
        if self.core.state is SubState.TERMINATED:
            self._done()
        else:
            self._arm()
        _, resp = await self.ua._send_in_dialog(dialog, req, self.source)
        if self.core.receive_notify_response(resp):
            self._done()
        return resp

    async def terminate(self, reason: str = "noresource") -> None:
        await self.notify(terminate=reason)

    def _done(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self.core.dialog is not None:
            self.ua._dialog_users.pop(self.core.dialog.id, None)
        self.ended.set()

    def _arm(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        deadline = self.core.next_deadline()
        self._handle = asyncio.get_running_loop().call_at(deadline, self._on_timer) if deadline is not None else None

    def _on_timer(self) -> None:
        self._handle = None
        if self.core.handle_timeout(max(self.ua.endpoint.now(), self.core.next_deadline() or 0.0)):
            self.ua._spawn(self.notify(terminate="timeout"))

    async def _on_request(self, ev: RequestReceived) -> None:
        tx = ev.transaction
        if tx is None:
            return
        if ev.request.method != "SUBSCRIBE":
            self.ua.endpoint.respond(tx, make_response(ev.request, 405, headers=[("Allow", "SUBSCRIBE, NOTIFY")]))
            return
        resp = self.core.receive_subscribe(ev.request, self.ua.endpoint.now())
        self.ua.endpoint.respond(tx, resp)
        if 200 <= resp.status_code < 300:
            await self.notify()  # §4.2.1.2: a NOTIFY follows every accepted SUBSCRIBE


class ClientPublication:
    """Event state we publish (RFC 3903): refreshed before it expires, ``modify()``, ``remove()``."""

    def __init__(self, ua: UserAgent, uri: str, core: Publisher, target: Target) -> None:
        self.ua = ua
        self.uri = uri
        self.core = core
        self.target = target
        self._handle: asyncio.TimerHandle | None = None

    @property
    def etag(self) -> str | None:
        return self.core.etag

    async def _send(self, parts: tuple[list[tuple[str, str]], bytes, str | None]) -> SipResponse:
        for _ in range(3):
            headers, body, ct = parts
            req = self.ua.new_request("PUBLISH", self.uri, headers=headers, body=body, content_type=ct)
            resp = await self.ua.request(req, self.target)
            outcome = self.core.receive_response(resp, self.ua.endpoint.now())
            if outcome == "republish":  # 412: the ESC lost our state; publish it in full again
                parts = self.core.publish(self.core.body, self.core.content_type or "application/octet-stream")
                continue
            if outcome == "retry":  # 423: Expires raised to Min-Expires; the same content again
                parts = self.core.publish(body, ct or "application/octet-stream") if body else self.core.refresh()
                continue
            break
        self._arm()
        return resp

    def _arm(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        deadline = self.core.next_deadline()
        self._handle = asyncio.get_running_loop().call_at(deadline, self._on_timer) if deadline is not None else None

    def _on_timer(self) -> None:
        self._handle = None
        if self.core.handle_timeout(max(self.ua.endpoint.now(), self.core.next_deadline() or 0.0)):
            self.ua._spawn(self.refresh())

    async def refresh(self) -> SipResponse:
        return await self._send(self.core.refresh())

    async def modify(self, body: bytes, content_type: str) -> SipResponse:
        return await self._send(self.core.publish(body, content_type))

    async def remove(self) -> SipResponse:
        resp = await self._send(self.core.remove())
        self._stop()
        return resp

    def _stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        with contextlib.suppress(ValueError):
            self.ua._publications.remove(self)
