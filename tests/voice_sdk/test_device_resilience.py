"""Device resilience through the embedded platform on 127.0.0.1.

* token refresh during a call, on virtual time (a VirtualClock drives the token schedule:
  ``token_will_expire`` fires ``token_expiry_lead`` before ``exp``, the provider is asked, the
  device re-registers and the call is untouched);
* the signalling connection cut and restored (a TCP relay between the device and the
  platform's WebSocket port): ``reconnecting`` → ``reconnected``, the call's media and dialog
  survive, and a token that expires while offline is refreshed (or, without a provider,
  ends reconnecting with TOKEN_EXPIRED);
* 10 % packet loss on the media path both ways (netem is not available: a seeded lossy
  wrapper around each media socket): the call stays up, loss is measured at each side,
  concealment keeps the tone recognisable.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from helpers import TcpRelay, connect_pair, device, expect, make_lossy, peak_hz, run, wait_until

from voice_sdk.audio import BufferSink, ToneSource
from voice_sdk.device import Device
from voice_sdk.errors import ErrorCode, VoiceSDKError
from voice_sdk.options import DeviceOptions
from voice_sdk.runtime import VirtualClock
from voice_sdk.server import Platform, PlatformConfig


def run_with_relay(body: Callable[[Platform, TcpRelay], Awaitable[None]], timeout: float = 60) -> None:
    """The platform advertises a WebSocket URL that goes through a relay the test controls."""

    async def main() -> None:
        relay = TcpRelay()
        await relay.start()
        platform = Platform(PlatformConfig(public_ws_url=f"ws://127.0.0.1:{relay.port}"))
        await platform.start()
        relay.target_port = int(platform.urls["ws_local"].rsplit(":", 1)[1])
        try:
            await asyncio.wait_for(body(platform, relay), timeout)
        finally:
            await relay.kill()
            await platform.close()

    asyncio.run(main())


def _provider(platform: Platform, user: str, clock: VirtualClock, ttl: int, minted: list[str]
              ) -> Callable[[], Awaitable[str]]:
    async def provide() -> str:
        # issued now (the service checks iat on the real clock), expiring ``ttl`` after the virtual now
        token, _ = platform.issuer.mint(user, label=None, now=time.time(), ttl=round(clock.time() + ttl - time.time()))
        minted.append(token)
        return token

    return provide


def _registers(dev: Device) -> list[int]:
    """Watch the device's signalling: the status of every REGISTER response it receives."""
    seen: list[int] = []

    def trace(direction: str, data: bytes, peer: Any) -> None:
        if direction == "in" and data.startswith(b"SIP/2.0 ") and b"REGISTER\r\n" in data.split(b"\r\n\r\n")[0]:
            seen.append(int(data[8:11]))

    dev.sip_trace = trace
    return seen


def test_token_refresh_during_a_call_on_virtual_time() -> None:
    async def body(platform: Platform) -> None:
        clock = VirtualClock()
        minted: list[str] = []
        alice = Device(token_provider=_provider(platform, "alice", clock, 120, minted), clock=clock,
                       options=DeviceOptions(credentials_url=platform.urls["credentials"], codecs=("PCMU",),
                                             token_expiry_lead=60))
        registers = _registers(alice)
        await alice.register()
        assert registers == [401, 200] and len(minted) == 1
        bob = await device(platform, "bob")
        out, inc = await connect_pair(alice, bob, "bob")
        session, first = out.sip_session, alice.token
        assert first is not None and alice.token_expires_at == first.expires_at
        warned = expect(alice, "token_will_expire")
        clock.advance(59.0)
        await asyncio.sleep(0)
        assert not warned.done(), "not before exp - token_expiry_lead"
        clock.advance(2.0)
        assert (await warned)["expires_at"] == first.expires_at
        await wait_until(lambda: len(registers) >= 4 and registers[-1] == 200, 10, "re-REGISTER with the new token")
        assert len(minted) == 2 and alice.token is not None and alice.token.raw == minted[-1]
        assert alice.token_expires_at is not None and abs(alice.token_expires_at - (first.expires_at + 61)) <= 1
        assert alice.is_registered and out.status == "accepted" and out.sip_session is session
        received = out.media.packets_received if out.media else 0
        await asyncio.sleep(0.3)
        assert out.media is not None and out.media.packets_received > received + 5, "media untouched"
        # the next token is on the same schedule
        warned = expect(alice, "token_will_expire")
        clock.advance(61.0)
        await warned
        await wait_until(lambda: len(minted) == 3 and alice.token is not None and alice.token.raw == minted[-1], 10,
                         "second refresh")
        ended = expect(out, "disconnect")
        await inc.disconnect()
        assert await ended == "remote hangup"
        await alice.destroy()
        await bob.destroy()

    run(body)


def test_transport_killed_and_restored_call_survives() -> None:
    async def body(platform: Platform, relay: TcpRelay) -> None:
        alice = await device(platform, "alice", transport="ws", reconnect_schedule=(0.2,))
        bob = await device(platform, "bob", transport="udp")
        out, inc = await connect_pair(alice, bob, "bob")
        a_sink = BufferSink(8000)
        out.set_output(a_sink)
        inc.set_input(ToneSource((1000.0,), sample_rate=8000))
        events: list[str] = []
        alice.on("reconnecting", lambda info: events.append(f"reconnecting {info['attempt']}"))
        alice.on("reconnected", lambda: events.append("reconnected"))
        reconnected = expect(alice, "reconnected", 20)
        await relay.kill()
        await wait_until(lambda: alice.state == "reconnecting", 5, "reconnecting")
        await wait_until(lambda: not platform.live_bindings("alice"), 5, "the platform to drop the dead flow")
        received = out.media.packets_received if out.media else 0
        await asyncio.sleep(1.0)  # a few failed attempts while the network is down
        assert out.status == "accepted" and out.media is not None
        assert out.media.packets_received > received + 30, "media flows while signalling is down"
        assert len([e for e in events if e.startswith("reconnecting")]) >= 2
        await relay.restore()
        await reconnected
        assert events[0] == "reconnecting 1" and events[-1] == "reconnected"
        assert alice.is_registered and platform.live_bindings("alice")
        mark = len(a_sink.pcm())
        await asyncio.sleep(0.5)
        assert abs(peak_hz(a_sink.pcm()[mark:]) - 1000) < 15, "the call's audio survived"
        # the dialog survived too: an in-dialog request from the peer reaches alice's new connection
        await inc.hold(True)
        assert inc.is_on_hold and out.media.sending is False
        await inc.hold(False)
        ended = expect(inc, "disconnect")
        await out.disconnect()
        assert await ended == "remote hangup"
        await alice.destroy()
        await bob.destroy()

    run_with_relay(body)


def test_token_refreshed_while_offline_is_used_on_reconnect() -> None:
    async def body(platform: Platform, relay: TcpRelay) -> None:
        clock = VirtualClock()
        minted: list[str] = []
        alice = Device(token_provider=_provider(platform, "alice", clock, 120, minted), clock=clock,
                       options=DeviceOptions(credentials_url=platform.urls["credentials"], transport="ws",
                                             token_expiry_lead=60, reconnect_schedule=(0.2,)))
        await alice.register()
        errors: list[VoiceSDKError] = []
        alice.on("error", errors.append)
        reconnected = expect(alice, "reconnected", 20)
        await relay.kill()
        await wait_until(lambda: alice.state == "reconnecting", 5, "reconnecting")
        clock.advance(61.0)  # token_will_expire while offline: a new token, no REGISTER attempted for it
        await wait_until(lambda: len(minted) == 2, 5, "the provider to be asked")
        clock.advance(70.0)  # past the first token's exp: only the new one is usable
        await wait_until(lambda: len(minted) == 3, 5, "the next refresh")
        assert alice.state == "reconnecting" and not errors
        await relay.restore()
        await reconnected
        assert alice.token is not None and alice.token.raw == minted[-1] and not alice.token.expired(clock.time())
        assert platform.live_bindings("alice") and not errors
        await alice.destroy()

    run_with_relay(body)


def test_token_expired_while_offline_without_provider_is_typed() -> None:
    async def body(platform: Platform, relay: TcpRelay) -> None:
        clock = VirtualClock()
        token, _ = platform.issuer.mint("alice", label=None, now=time.time(), ttl=300)
        alice = Device(token, clock=clock,
                       options=DeviceOptions(credentials_url=platform.urls["credentials"], transport="ws",
                                             token_expiry_lead=60, reconnect_schedule=(0.2,)))
        await alice.register()
        warned = expect(alice, "token_will_expire")
        gone = expect(alice, "unregistered", 20)
        failed = expect(alice, "error", 20)
        await relay.kill()
        await wait_until(lambda: alice.state == "reconnecting", 5, "reconnecting")
        clock.advance(301.0)
        await warned
        await relay.restore()
        err = await failed
        assert isinstance(err, VoiceSDKError) and err.code is ErrorCode.TOKEN_EXPIRED
        assert "expired" in (await gone)["reason"] and alice.state == "unregistered"
        with_expired = None
        try:
            await alice.connect("echo")
        except VoiceSDKError as exc:
            with_expired = exc.code
        assert with_expired is ErrorCode.INVALID_STATE
        await alice.destroy()

    run_with_relay(body)


def test_ten_percent_loss_both_ways() -> None:
    async def body(platform: Platform) -> None:
        alice = await device(platform, "alice")
        bob = await device(platform, "bob")
        incoming = expect(bob, "incoming")
        out = await alice.connect("bob")
        a_loss = make_lossy(out, 0.10, seed=1)
        inc = await incoming
        await inc.accept()
        b_loss = make_lossy(inc, 0.10, seed=2)
        await out.wait_accepted(15)
        await inc.wait_accepted(15)
        b_sink = BufferSink(8000)
        out.set_input(ToneSource((600.0,), sample_rate=8000))
        inc.set_output(b_sink)
        await asyncio.sleep(4.0)
        qa, qb = out.quality(), inc.quality()
        assert qa is not None and qb is not None
        assert 0.05 < qb.inbound_loss < 0.16, qb
        assert 0.05 < qa.inbound_loss < 0.16, qa
        assert a_loss.dropped > 10 and b_loss.dropped > 10
        assert out.status == inc.status == "accepted"
        assert 1.0 < qb.mos_estimate < 4.0, "loss shows in the MOS estimate"
        assert abs(peak_hz(b_sink.pcm()[-8000:]) - 600) < 15, "concealment keeps the tone"
        await out.disconnect()
        await alice.destroy()
        await bob.destroy()

    run(body)
