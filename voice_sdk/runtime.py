"""Where the SDK's time and event loop come from.

Clocks (wall-clock time for token expiry, and timers on that clock)::

    SystemClock    time.time() and loop.call_later: what a Device uses by default
    VirtualClock   moves only when advance() is called; due timers fire inside advance(),
                   so an hour of token lifetime is tested in milliseconds

The loop thread (for synchronous callers, see :mod:`voice_sdk.sync`)::

    caller thread ──run(coro)──▶ run_coroutine_threadsafe ──▶ SDK loop thread (asyncio)
    caller thread ◀──result / exception── concurrent.futures.Future ◀──┘
    SDK loop ──dispatch(fn)──▶ callback thread (user callbacks; they may call run() again)

User callbacks never run on the loop thread, so a callback can call a blocking method of
the synchronous facade (``call.accept()`` from an ``incoming`` handler) without deadlock;
calling :meth:`LoopThread.run` from the loop thread itself is refused with INVALID_STATE.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import heapq
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

from .errors import ErrorCode, VoiceSDKError

__all__ = ["Clock", "LoopThread", "SystemClock", "TimerHandle", "VirtualClock"]

log = logging.getLogger("voice_sdk.runtime")
T = TypeVar("T")


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """Wall-clock seconds (POSIX) and one-shot timers on that clock."""

    def time(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle: ...


class SystemClock:
    """The real clock; timers run on the running event loop."""

    def time(self) -> float:
        return time.time()

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        return asyncio.get_running_loop().call_later(max(0.0, delay), callback)


class _VirtualTimer:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class VirtualClock:
    """A clock that moves only when told to; timers fire, in order, inside :meth:`advance`."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start
        self._timers: list[tuple[float, int, _VirtualTimer]] = []
        self._seq = itertools.count()

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        timer = _VirtualTimer(self.now + max(0.0, delay), callback)
        heapq.heappush(self._timers, (timer.when, next(self._seq), timer))
        return timer

    def advance(self, seconds: float) -> float:
        """Move time forward, firing every timer that falls due on the way."""
        if seconds < 0:
            raise ValueError("time does not go backwards")
        end = self.now + seconds
        while self._timers and self._timers[0][0] <= end:
            when, _, timer = heapq.heappop(self._timers)
            self.now = max(self.now, when)
            if not timer.cancelled:
                timer.callback()
        self.now = end
        return self.now

    @property
    def pending(self) -> int:
        return sum(1 for _, _, t in self._timers if not t.cancelled)


class LoopThread:
    """An asyncio event loop in a daemon thread, plus a thread for user callbacks."""

    def __init__(self, name: str = "voice-sdk") -> None:
        self.name = name
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run_loop, name=f"{name}-loop", daemon=True)
        self._callbacks: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._cb_thread = threading.Thread(target=self._run_callbacks, name=f"{name}-callbacks", daemon=True)
        self._closed = False
        self._thread.start()
        self._cb_thread.start()
        self._ready.wait()

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        self.loop.run_forever()
        try:
            pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
            for t in pending:
                t.cancel()
            if pending:
                self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        finally:
            self.loop.close()

    def _run_callbacks(self) -> None:
        while True:
            fn = self._callbacks.get()
            if fn is None:
                return
            try:
                fn()
            except Exception:
                log.exception("a callback failed")

    @property
    def in_loop_thread(self) -> bool:
        return threading.current_thread() is self._thread

    @property
    def in_callback_thread(self) -> bool:
        return threading.current_thread() is self._cb_thread

    def _check(self) -> None:
        if self._closed:
            raise VoiceSDKError(ErrorCode.INVALID_STATE, "the SDK runtime was closed")
        if self.in_loop_thread:
            raise VoiceSDKError(ErrorCode.INVALID_STATE,
                                "blocking SDK call from the SDK's own loop thread (it would deadlock)")

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and wait for its result (its exception is raised here)."""
        try:
            self._check()
        except VoiceSDKError:
            coro.close()
            raise
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError as exc:
            fut.cancel()
            raise VoiceSDKError(ErrorCode.TIMEOUT, f"no result within {timeout} s", exc) from exc

    def call(self, fn: Callable[[], T], timeout: float | None = None) -> T:
        """Run the plain function ``fn`` on the loop thread and return its result."""

        async def wrapper() -> T:
            return fn()

        return self.run(wrapper(), timeout)

    def dispatch(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the callback thread (from any thread)."""
        if not self._closed:
            self._callbacks.put(fn)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the loop (cancelling what still runs on it) and both threads."""
        if self._closed:
            return
        self._closed = True
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._callbacks.put(None)
        if not self.in_loop_thread:
            self._thread.join(timeout)
        if not self.in_callback_thread:
            self._cb_thread.join(timeout)

    def __enter__(self) -> LoopThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
