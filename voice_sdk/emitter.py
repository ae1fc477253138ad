"""Event emitter: ``on/off/once`` callbacks plus ``async for event in obj.events()``.

Callbacks run on the SDK's event loop in registration order; an exception in one is logged
and does not stop the others. ``events()`` yields ``(name, payload)`` tuples from a bounded
queue (oldest dropped when a consumer stops reading, with a warning).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

__all__ = ["EventEmitter"]

log = logging.getLogger("voice_sdk")
Handler = Callable[..., Any]


class EventEmitter:
    def __init__(self) -> None:
        self._handlers: dict[str, list[tuple[Handler, bool]]] = {}
        self._queues: list[asyncio.Queue[tuple[str, Any]]] = []
        self._tasks: set[asyncio.Future[Any]] = set()

    def _spawn(self, coro: Any) -> asyncio.Future[Any]:
        """Run ``coro`` in the background, keeping a reference until it finishes."""
        task: asyncio.Future[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def on(self, event: str, handler: Handler) -> Handler:
        self._handlers.setdefault(event, []).append((handler, False))
        return handler

    def once(self, event: str, handler: Handler) -> Handler:
        self._handlers.setdefault(event, []).append((handler, True))
        return handler

    def off(self, event: str, handler: Handler | None = None) -> None:
        if handler is None:
            self._handlers.pop(event, None)
            return
        self._handlers[event] = [(h, o) for h, o in self._handlers.get(event, []) if h is not handler]

    def emit(self, event: str, payload: Any = None) -> None:
        handlers = self._handlers.get(event, [])
        if any(o for _, o in handlers):
            self._handlers[event] = [(h, o) for h, o in handlers if not o]
        for handler, _ in handlers:
            try:
                result = handler(payload) if payload is not None else handler()
                if asyncio.iscoroutine(result):
                    task = asyncio.ensure_future(result)
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            except Exception:
                log.exception("handler for %r failed", event)
        for q in self._queues:
            if q.full():
                q.get_nowait()
                log.warning("event consumer is not keeping up; dropped the oldest event")
            q.put_nowait((event, payload))

    async def events(self, maxsize: int = 1000) -> AsyncIterator[tuple[str, Any]]:
        """Async iterator over every event emitted from now on."""
        q: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(maxsize)
        self._queues.append(q)
        try:
            while True:
                yield await q.get()
        finally:
            self._queues.remove(q)
