"""A synchronous facade for scripts and threaded programs: SyncDevice and SyncCall.

The asynchronous SDK runs on an event loop in a background thread
(:class:`voice_sdk.runtime.LoopThread`); every method here submits a coroutine to it with
``run_coroutine_threadsafe`` and blocks until the result (or raises the SDK's error)::

    from voice_sdk.sync import SyncDevice
    with SyncDevice(token, options=DeviceOptions(credentials_url=URL)) as device:
        device.register()
        call = device.connect("echo")
        call.wait_accepted(10)
        call.send_digits("123#")
        call.disconnect()

Callbacks (``on``/``once``) run on the runtime's callback thread, never on the loop, so a
callback may call blocking methods (``call.accept()`` inside an ``incoming`` handler). Event
payloads that are calls arrive as :class:`SyncCall`. ``wait_for(event)`` blocks until the
next such event and returns its payload. Any thread may use the objects.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from .audio import AudioSink, AudioSource
from .call import Call, QualitySample
from .device import Device
from .emitter import EventEmitter
from .errors import ErrorCode, VoiceSDKError
from .options import DeviceOptions
from .runtime import Clock, LoopThread

__all__ = ["SyncCall", "SyncDevice"]

T = TypeVar("T")
Handler = Callable[..., Any]


class _SyncEmitter:
    """on/off/once and wait_for over an EventEmitter that lives on the loop thread."""

    def __init__(self, emitter: EventEmitter, runtime: LoopThread, timeout: float) -> None:
        self._emitter = emitter
        self.runtime = runtime
        self.timeout = timeout
        self._wrappers: dict[tuple[str, int], list[Handler]] = {}

    def _translate(self, payload: Any) -> Any:
        return payload

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return self.runtime.run(coro, self.timeout if timeout is None else timeout)

    def _wrap(self, event: str, handler: Handler) -> Handler:
        def wrapper(payload: Any = None) -> None:
            args = () if payload is None else (self._translate(payload),)
            self.runtime.dispatch(lambda: handler(*args))

        self._wrappers.setdefault((event, id(handler)), []).append(wrapper)
        return wrapper

    def on(self, event: str, handler: Handler) -> Handler:
        """Call ``handler(payload)`` (or ``handler()``) on the callback thread for every ``event``."""
        wrapper = self._wrap(event, handler)
        self.runtime.call(lambda: self._emitter.on(event, wrapper))
        return handler

    def once(self, event: str, handler: Handler) -> Handler:
        wrapper = self._wrap(event, handler)
        self.runtime.call(lambda: self._emitter.once(event, wrapper))
        return handler

    def off(self, event: str, handler: Handler | None = None) -> None:
        if handler is None:
            for key in [k for k in self._wrappers if k[0] == event]:
                del self._wrappers[key]
            self.runtime.call(lambda: self._emitter.off(event))
            return
        for wrapper in self._wrappers.pop((event, id(handler)), []):
            self.runtime.call(lambda w=wrapper: self._emitter.off(event, w))  # type: ignore[misc]

    def wait_for(self, event: str, timeout: float | None = None) -> Any:
        """Block until the next ``event`` and return its payload (TIMEOUT error when none comes)."""
        result: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def handler(payload: Any = None) -> None:
            if not result.done():
                result.set_result(self._translate(payload) if payload is not None else None)

        self.runtime.call(lambda: self._emitter.once(event, handler))
        try:
            return result.result(self.timeout if timeout is None else timeout)
        except concurrent.futures.TimeoutError as exc:
            raise VoiceSDKError(ErrorCode.TIMEOUT, f"no {event!r} event within {timeout} s", exc) from exc
        finally:
            self.runtime.call(lambda: self._emitter.off(event, handler))


class SyncCall(_SyncEmitter):
    """A :class:`voice_sdk.call.Call` driven from any thread."""

    def __init__(self, call: Call, runtime: LoopThread, timeout: float) -> None:
        super().__init__(call, runtime, timeout)
        self.call = call
        """The asynchronous Call (escape hatch: use it only on the loop thread)."""

    def __repr__(self) -> str:
        return f"<SyncCall {self.call.direction} {self.call.remote_identity} {self.call.status}>"

    # -- state (plain attribute reads, safe from any thread) -------------------------------------------
    @property
    def status(self) -> str:
        return self.call.status

    @property
    def direction(self) -> str:
        return self.call.direction

    @property
    def is_muted(self) -> bool:
        return self.call.is_muted

    @property
    def is_on_hold(self) -> bool:
        return self.call.is_on_hold

    @property
    def remote_identity(self) -> str:
        return self.call.remote_identity

    @property
    def custom_headers(self) -> dict[str, str]:
        return dict(self.call.custom_headers)

    @property
    def duration(self) -> float:
        return self.call.duration

    @property
    def digits_received(self) -> list[str]:
        return list(self.call.digits_received)

    @property
    def error(self) -> VoiceSDKError | None:
        return self.call.error

    @property
    def disconnect_reason(self) -> str | None:
        return self.call.disconnect_reason

    @property
    def setup_time(self) -> float | None:
        return self.call.setup_time

    # -- actions ----------------------------------------------------------------------------------------
    def accept(self, timeout: float | None = None) -> None:
        self._run(self.call.accept(), timeout)

    def reject(self, status_code: int = 486) -> None:
        self.runtime.call(lambda: self.call.reject(status_code), self.timeout)

    def disconnect(self, timeout: float | None = None) -> None:
        self._run(self.call.disconnect(), timeout)

    def mute(self, muted: bool = True) -> None:
        self.runtime.call(lambda: self.call.mute(muted), self.timeout)

    def hold(self, on_hold: bool = True, timeout: float | None = None) -> None:
        self._run(self.call.hold(on_hold), timeout)

    def send_digits(self, digits: str, *, duration_ms: int = 100, timeout: float | None = None) -> None:
        self._run(self.call.send_digits(digits, duration_ms=duration_ms), timeout)

    def quality(self) -> QualitySample | None:
        return self.runtime.call(self.call.quality, self.timeout)

    def wait_accepted(self, timeout: float | None = None) -> None:
        """Block until media flows; raises the call's error (or TIMEOUT)."""
        self._run(self.call.wait_accepted(timeout), None if timeout is None else timeout + 5)

    def wait_ended(self, timeout: float | None = None) -> None:
        async def wait() -> None:
            try:
                await self.call.wait_ended(timeout)
            except TimeoutError as exc:
                raise VoiceSDKError(ErrorCode.TIMEOUT, f"the call did not end within {timeout} s", exc) from exc

        self._run(wait(), None if timeout is None else timeout + 5)

    def set_input(self, source: AudioSource) -> None:
        self.runtime.call(lambda: self.call.set_input(source), self.timeout)

    def set_output(self, sink: AudioSink) -> None:
        self.runtime.call(lambda: self.call.set_output(sink), self.timeout)

    def set_input_device(self, device: int | str | None) -> None:
        self.runtime.call(lambda: self.call.set_input_device(device), self.timeout)

    def set_output_device(self, device: int | str | None) -> None:
        self.runtime.call(lambda: self.call.set_output_device(device), self.timeout)


class SyncDevice(_SyncEmitter):
    """A :class:`voice_sdk.device.Device` driven from any thread.

    ``token_provider`` is a plain function here (it runs in a worker thread). Pass
    ``runtime`` to share one loop thread between several devices; otherwise the device owns
    one and :meth:`destroy` stops it.
    """

    def __init__(self, token: str | None = None, *, token_provider: Callable[[], str] | None = None,
                 options: DeviceOptions | None = None, clock: Clock | None = None,
                 runtime: LoopThread | None = None, timeout: float = 30.0) -> None:
        self._owns_runtime = runtime is None
        rt = runtime or LoopThread()
        provider = None
        if token_provider is not None:
            fetch = token_provider

            async def provider_async() -> str:
                return await asyncio.get_running_loop().run_in_executor(None, fetch)

            provider = provider_async
        device = rt.call(lambda: Device(token, token_provider=provider, options=options, clock=clock), timeout)
        super().__init__(device, rt, timeout)
        self.device = device
        """The asynchronous Device (escape hatch: use it only on the loop thread)."""
        self._calls: dict[int, SyncCall] = {}

    def _translate(self, payload: Any) -> Any:
        return self._sync_call(payload) if isinstance(payload, Call) else payload

    def _sync_call(self, call: Call) -> SyncCall:
        wrapped = self._calls.get(id(call))
        if wrapped is None or wrapped.call is not call:
            for key in [k for k, c in self._calls.items() if c.status in ("disconnected", "failed")]:
                del self._calls[key]
            wrapped = SyncCall(call, self.runtime, self.timeout)
            self._calls[id(call)] = wrapped
        return wrapped

    def __enter__(self) -> SyncDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    # -- state ------------------------------------------------------------------------------------------
    @property
    def state(self) -> str:
        return self.device.state

    @property
    def is_registered(self) -> bool:
        return self.device.is_registered

    @property
    def identity(self) -> str | None:
        return self.device.identity

    @property
    def label(self) -> str | None:
        return self.device.label

    @property
    def token_expires_at(self) -> float | None:
        return self.device.token_expires_at

    @property
    def calls(self) -> list[SyncCall]:
        return [self._sync_call(c) for c in self.runtime.call(lambda: list(self.device.calls), self.timeout)]

    # -- actions ----------------------------------------------------------------------------------------
    def register(self, timeout: float | None = None) -> None:
        self._run(self.device.register(), timeout)

    def connect(self, to: str, *, caller_id: str | None = None, params: dict[str, str] | None = None,
                extra_headers: dict[str, str] | None = None, timeout: float | None = None) -> SyncCall:
        call = self._run(self.device.connect(to, caller_id=caller_id, params=params, extra_headers=extra_headers),
                         timeout)
        return self._sync_call(call)

    def update_token(self, token: str, timeout: float | None = None) -> None:
        self._run(self.device.update_token(token), timeout)

    def unregister(self, timeout: float | None = None) -> None:
        self._run(self.device.unregister(), timeout)

    def destroy(self, timeout: float | None = None) -> None:
        """Hang up, unregister and release everything; stops the loop thread if this device owns it."""
        try:
            if self.device.state != "destroyed":
                self._run(self.device.destroy(), timeout)
        finally:
            if self._owns_runtime:
                self.runtime.close()

    def enumerate_devices(self) -> list[dict[str, Any]]:
        return self.device.enumerate_devices()

    def set_input_device(self, device: int | str | None) -> None:
        self.runtime.call(lambda: self.device.set_input_device(device), self.timeout)

    def set_output_device(self, device: int | str | None) -> None:
        self.runtime.call(lambda: self.device.set_output_device(device), self.timeout)
