"""The synchronous facade (voice_sdk.sync) from plain threads, and the runtime pieces under it."""

from __future__ import annotations

import threading
import time

import pytest
from helpers import mint

from voice_sdk.audio import BufferSink, ToneSource
from voice_sdk.errors import ErrorCode, VoiceSDKError
from voice_sdk.options import DeviceOptions
from voice_sdk.runtime import LoopThread, VirtualClock
from voice_sdk.server import Platform, PlatformConfig
from voice_sdk.sync import SyncCall, SyncDevice


@pytest.fixture()
def platform() -> tuple[LoopThread, Platform]:
    rt = LoopThread("platform")
    plat = Platform(PlatformConfig())
    rt.run(plat.start(), 10)
    yield rt, plat
    rt.run(plat.close(), 10)
    rt.close()


def _until(cond: object, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_sync_devices_call_each_other_from_plain_threads(platform: tuple[LoopThread, Platform]) -> None:
    rt, plat = platform
    opts = DeviceOptions(credentials_url=plat.urls["credentials"], codecs=("PCMU",))
    provider_threads: list[str] = []

    def bob_token() -> str:  # a blocking provider: runs in a worker thread, not on the loop
        provider_threads.append(threading.current_thread().name)
        return rt.run(mint(plat, "bob"), 10)

    bob = SyncDevice(token_provider=bob_token, options=opts)
    bob.register()
    assert bob.is_registered and bob.identity == "bob" and provider_threads
    assert all(name != f"{bob.runtime.name}-loop" for name in provider_threads)
    callback_threads: list[str] = []
    accepted: list[SyncCall] = []

    def on_incoming(call: SyncCall) -> None:
        callback_threads.append(threading.current_thread().name)
        assert call.status == "pending" and call.direction == "incoming"
        call.set_output(BufferSink(8000))
        call.accept()  # a blocking call inside a callback: fine, callbacks are off the loop
        accepted.append(call)

    bob.on("incoming", on_incoming)
    outcome: dict[str, object] = {}

    def alice_script() -> None:  # the whole caller side in a plain worker thread
        with SyncDevice(rt.run(mint(plat, "alice"), 10), options=opts) as alice:
            alice.register()
            call = alice.connect("bob", params={"Order": "7"})
            call.set_input(ToneSource((700.0,), sample_rate=8000))
            call.wait_accepted(10)
            outcome["status"] = call.status
            call.send_digits("5#")
            time.sleep(1.2)
            outcome["quality"] = call.quality()
            call.mute(True)
            outcome["muted"] = call.is_muted
            call.hold(True)
            outcome["held"] = call.is_on_hold
            call.disconnect()
            outcome["end"] = call.status
        outcome["alice_state"] = alice.state

    worker = threading.Thread(target=alice_script)
    worker.start()
    worker.join(40)
    assert not worker.is_alive()
    assert outcome["status"] == "accepted" and outcome["end"] == "disconnected"
    assert outcome["muted"] is True and outcome["held"] is True and outcome["alice_state"] == "destroyed"
    q = outcome["quality"]
    assert q is not None and q.packets_received > 20  # type: ignore[attr-defined]
    assert callback_threads == [f"{bob.runtime.name}-callbacks"]
    inc = accepted[0]
    inc.wait_ended(10)
    assert inc.status == "disconnected" and inc.disconnect_reason == "remote hangup"
    assert inc.digits_received == ["5", "#"] and inc.custom_headers["X-PH-Order"] == "7"
    bob.destroy()
    assert bob.state == "destroyed"


def test_wait_for_events_and_errors_cross_threads(platform: tuple[LoopThread, Platform]) -> None:
    rt, plat = platform
    opts = DeviceOptions(credentials_url=plat.urls["credentials"], codecs=("PCMU",))
    with SyncDevice(rt.run(mint(plat, "carol"), 10), options=opts, timeout=10) as carol:
        registered: list[bool] = []
        carol.once("registered", lambda: registered.append(True))
        carol.register()
        _until(lambda: registered == [True])
        call = carol.connect("busy")
        with pytest.raises(VoiceSDKError) as info:
            call.wait_accepted(5)
        assert info.value.code is ErrorCode.CALL_REJECTED and info.value.status_code == 486
        call = carol.connect("echo")
        call.wait_accepted(10)
        sample = call.wait_for("quality", 3)
        assert sample.mos_estimate > 3 and sample.selected_codec == "PCMU"
        with pytest.raises(VoiceSDKError) as info:
            call.wait_for("hold", 0.2)
        assert info.value.code is ErrorCode.TIMEOUT
        with pytest.raises(VoiceSDKError) as info:
            call.send_digits("12x")
        assert info.value.code is ErrorCode.INVALID_ARGUMENT
        # a blocking call made on the SDK's own loop thread would deadlock: it is refused instead
        with pytest.raises(VoiceSDKError) as info:
            carol.runtime.call(lambda: carol.connect("echo"), 5)
        assert info.value.code is ErrorCode.INVALID_STATE
        call.disconnect()
        assert [c.status for c in carol.calls] == []


def test_loop_thread_runs_results_exceptions_and_closes() -> None:
    async def add(a: int, b: int) -> int:
        return a + b

    async def fail() -> None:
        raise VoiceSDKError(ErrorCode.INVALID_ARGUMENT, "nope")

    async def forever() -> None:
        import asyncio

        await asyncio.sleep(3600)

    rt = LoopThread("t")
    assert rt.run(add(2, 3)) == 5
    with pytest.raises(VoiceSDKError):
        rt.run(fail())
    with pytest.raises(VoiceSDKError) as info:
        rt.run(forever(), 0.1)
    assert info.value.code is ErrorCode.TIMEOUT
    seen: list[str] = []
    rt.dispatch(lambda: seen.append(threading.current_thread().name))
    _until(lambda: seen == ["t-callbacks"])
    rt.close()
    with pytest.raises(VoiceSDKError) as info:
        rt.run(add(1, 1))
    assert info.value.code is ErrorCode.INVALID_STATE


def test_virtual_clock_fires_timers_in_order_and_cancels() -> None:
    clock = VirtualClock(start=100.0)
    fired: list[tuple[str, float]] = []
    clock.call_later(10, lambda: fired.append(("b", clock.time())))
    clock.call_later(5, lambda: fired.append(("a", clock.time())))
    dropped = clock.call_later(7, lambda: fired.append(("x", clock.time())))
    dropped.cancel()
    assert clock.pending == 2
    clock.advance(6)
    assert fired == [("a", 105.0)] and clock.time() == 106.0
    clock.advance(100)
    assert fired == [("a", 105.0), ("b", 110.0)] and clock.time() == 206.0 and clock.pending == 0
    with pytest.raises(ValueError):
        clock.advance(-1)
