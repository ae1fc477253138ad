"""Device <-> Device calls through the embedded platform's proxy on 127.0.0.1.

Covers the call surface between two SDK devices: outgoing and incoming calls, busy (486),
reject (486/603), cancel while ringing, hold/unhold (re-INVITE sendonly, media direction),
mute (silence measured at the peer), digits both ways, custom headers, quality events, and
routing errors (unknown user 404, offline user 480).
"""

from __future__ import annotations

import asyncio

import pytest
from helpers import connect_pair, device, expect, peak_hz, rms, run, wait_until

from voice_sdk.audio import BufferSink, ToneSource
from voice_sdk.call import Call, QualitySample
from voice_sdk.errors import ErrorCode, VoiceSDKError
from voice_sdk.server import Platform


def _audio(call: Call, hz: float) -> BufferSink:
    sink = BufferSink(8000)
    call.set_input(ToneSource((hz,), sample_rate=8000))
    call.set_output(sink)
    return sink


@pytest.mark.parametrize(("caller_transport", "callee_transport"), [("ws", "ws"), ("ws", "udp"), ("tcp", "ws")])
def test_call_between_devices_audio_digits_headers_quality(caller_transport: str, callee_transport: str) -> None:
    async def body(platform: Platform) -> None:
        alice = await device(platform, "alice", transport=caller_transport)
        bob = await device(platform, "bob", transport=callee_transport)
        incoming = expect(bob, "incoming")
        out = await alice.connect("bob", params={"Ticket": "42"}, extra_headers={"X-Trace": "t1"})
        ringing = expect(out, "ringing")
        inc: Call = await incoming
        await ringing
        assert out.status == "ringing" and inc.status == "pending" and inc.direction == "incoming"
        assert inc.custom_headers.get("X-PH-Ticket") == "42" and inc.custom_headers.get("X-Trace") == "t1"
        assert inc.remote_identity.startswith("sip:alice@")
        a_sink, b_sink = _audio(out, 600.0), _audio(inc, 1000.0)
        samples: list[QualitySample] = []
        inc.on("quality", samples.append)
        await inc.accept()
        await out.wait_accepted(10)
        await inc.wait_accepted(10)
        assert out.status == inc.status == "accepted"
        await asyncio.sleep(2.3)
        assert abs(peak_hz(b_sink.pcm()[-4000:]) - 600) < 10, "bob hears alice's tone"
        assert abs(peak_hz(a_sink.pcm()[-4000:]) - 1000) < 10, "alice hears bob's tone"
        assert len(samples) >= 2 and 0.7 < samples[1].timestamp - samples[0].timestamp < 1.3, "one per second"
        q = samples[-1]
        assert q.packets_received > 50 and q.inbound_loss == 0 and q.mos_estimate > 3.5
        assert q.selected_codec == "PCMU" and q.local_candidate_type and q.remote_candidate_type
        assert q.jitter_ms >= 0 and q.outbound_loss >= 0
        await out.send_digits("12#")
        await inc.send_digits("9*")
        await wait_until(lambda: inc.digits_received == ["1", "2", "#"] and out.digits_received == ["9", "*"],
                         5, "digits both ways")
        ended = expect(inc, "disconnect")
        await out.disconnect()
        assert await ended == "remote hangup"
        assert out.status == inc.status == "disconnected"
        assert platform.router is not None and platform.router.active == 0
        assert platform.router.forwarded >= 3, "INVITE, ACK and BYE went through the proxy"
        await alice.destroy()
        await bob.destroy()

    run(body)


def test_call_forks_to_every_binding_and_the_first_answer_wins() -> None:
    async def body(platform: Platform) -> None:
        alice = await device(platform, "alice")
        bob_phone = await device(platform, "bob", transport="ws")
        bob_desk = await device(platform, "bob", transport="udp")
        assert len(platform.live_bindings("bob")) == 2
        ring_phone, ring_desk = expect(bob_phone, "incoming"), expect(bob_desk, "incoming")
        out = await alice.connect("bob")
        on_phone: Call = await ring_phone
        on_desk: Call = await ring_desk
        phone_ended = expect(on_phone, "disconnect")
        await on_desk.accept()
        await out.wait_accepted(10)
        assert await phone_ended == "cancelled" and on_phone.status == "disconnected"
        assert out.sip_session is not None and on_desk.sip_session is not None
        assert out.sip_session.call_id == on_desk.sip_session.call_id
        await out.send_digits("7")
        await wait_until(lambda: on_desk.digits_received == ["7"], 5, "digit at the answering device")
        desk_ended = expect(on_desk, "disconnect")
        await out.disconnect()
        assert await desk_ended == "remote hangup"
        for d in (alice, bob_phone, bob_desk):
            await d.destroy()

    run(body)


def test_busy_486_unless_incoming_allowed_while_busy() -> None:
    async def body(platform: Platform) -> None:
        alice = await device(platform, "alice")
        bob = await device(platform, "bob")
        carol = await device(platform, "carol")
        await connect_pair(alice, bob, "bob")
        second = await carol.connect("bob")
        with pytest.raises(VoiceSDKError) as info:
            await second.wait_accepted(5)
        assert info.value.code is ErrorCode.CALL_REJECTED and info.value.status_code == 486
        assert second.status == "failed"
        # the same with a device that takes a second call while busy
        dave = await device(platform, "dave", allow_incoming_while_busy=True)
        await connect_pair(alice, dave, "dave")
        incoming = expect(dave, "incoming")
        waiting = await carol.connect("dave")
        inc: Call = await incoming
        assert inc.status == "pending" and len(dave.calls) == 2
        await waiting.disconnect()
        for d in (alice, bob, carol, dave):
            await d.destroy()

    run(body)


@pytest.mark.parametrize("code", [486, 603])
def test_reject_gives_the_caller_a_typed_error(code: int) -> None:
    async def body(platform: Platform) -> None:
        alice = await device(platform, "alice")
        bob = await device(platform, "bob")
        incoming = expect(bob, "incoming")
        out = await alice.connect("bob")
        inc: Call = await incoming
        inc.reject(code)
        assert inc.status == "disconnected" and inc.disconnect_reason == "rejected"
        with pytest.raises(VoiceSDKError) as info:
            await out.wait_accepted(5)
        assert info.value.code is ErrorCode.CALL_REJECTED and info.value.status_code == code
        with pytest.raises(VoiceSDKError) as info:
            inc.reject(486)
        assert info.value.code is ErrorCode.INVALID_STATE
        await alice.destroy()
        await bob.destroy()

    run(body)


def test_cancel_while_ringing_ends_the_callee_call_cancelled() -> None:
    async def body(platform: Platform) -> None:
        alice = await device(platform, "alice")
        bob = await device(platform, "bob", transport="udp")
        incoming = expect(bob, "incoming")
        out = await alice.connect("bob")
        inc: Call = await incoming
        await wait_until(lambda: out.status == "ringing", 5, "180 at the caller")
        ended = expect(inc, "disconnect")
        await out.disconnect()
        assert await ended == "cancelled"
        assert inc.status == "disconnected" and out.status == "disconnected"
        with pytest.raises(VoiceSDKError) as info:
            await inc.accept()
        assert info.value.code is ErrorCode.INVALID_STATE
        assert platform.router is not None
        await wait_until(lambda: platform.router is not None and platform.router.active == 0, 5, "487 relayed")
        await alice.destroy()
        await bob.destroy()

    run(body)


def test_hold_unhold_changes_media_direction() -> None:
    async def body(platform: Platform) -> None:
        alice = await device(platform, "alice")
        bob = await device(platform, "bob")
        out, inc = await connect_pair(alice, bob, "bob")
        a_sink, b_sink = _audio(out, 600.0), _audio(inc, 1000.0)
        held = expect(out, "hold")
        await out.hold(True)
        assert await held is True and out.is_on_hold
        assert out.media is not None and inc.media is not None and inc.sip_session is not None
        assert b"a=sendonly" in inc.sip_session.remote_sdp
        assert out.media.sending and not out.media.receiving
        assert inc.media.receiving and not inc.media.sending
        await asyncio.sleep(0.8)
        a_before, b_before = len(a_sink.pcm()), len(b_sink.pcm())
        await asyncio.sleep(0.6)
        assert rms(a_sink.pcm()[a_before:]) < 50, "the held peer sends nothing"
        assert abs(peak_hz(b_sink.pcm()[b_before:]) - 600) < 15, "the held peer still hears the holder"
        await out.hold(False)
        assert not out.is_on_hold and out.media.receiving and inc.media.sending
        await asyncio.sleep(0.8)
        a_after = len(a_sink.pcm())
        await asyncio.sleep(0.6)
        assert abs(peak_hz(a_sink.pcm()[a_after:]) - 1000) < 15, "audio flows both ways again"
        assert out.status == inc.status == "accepted"
        await out.disconnect()
        await alice.destroy()
        await bob.destroy()

    run(body)


def test_mute_sends_silence_to_the_peer() -> None:
    async def body(platform: Platform) -> None:
        alice = await device(platform, "alice")
        bob = await device(platform, "bob")
        out, inc = await connect_pair(alice, bob, "bob")
        _audio(out, 600.0)
        b_sink = _audio(inc, 1000.0)
        await asyncio.sleep(0.6)
        mark = len(b_sink.pcm())
        await asyncio.sleep(0.4)
        assert rms(b_sink.pcm()[mark:]) > 1000
        muted = expect(out, "mute")
        out.mute(True)
        assert await muted is True and out.is_muted
        await asyncio.sleep(0.3)
        mark = len(b_sink.pcm())
        sent = out.media.packets_sent if out.media else 0
        await asyncio.sleep(0.5)
        assert rms(b_sink.pcm()[mark:]) < 50, "muted: the peer hears silence"
        assert out.media is not None and out.media.packets_sent > sent + 10, "RTP keeps flowing while muted"
        out.mute(False)
        await asyncio.sleep(0.3)
        mark = len(b_sink.pcm())
        await asyncio.sleep(0.4)
        assert abs(peak_hz(b_sink.pcm()[mark:]) - 600) < 15
        await out.disconnect()
        await alice.destroy()
        await bob.destroy()

    run(body)


def test_unknown_user_404_and_offline_user_480() -> None:
    async def body(platform: Platform) -> None:
        alice = await device(platform, "alice")
        call = await alice.connect("nobody")
        with pytest.raises(VoiceSDKError) as info:
            await call.wait_accepted(5)
        assert info.value.code is ErrorCode.CALL_REJECTED and info.value.status_code == 404
        bob = await device(platform, "bob")
        await bob.unregister()
        call = await alice.connect("bob")
        with pytest.raises(VoiceSDKError) as info:
            await call.wait_accepted(5)
        assert info.value.status_code == 480
        carol = await device(platform, "carol")  # over WebSocket: the binding dies with the connection
        assert platform.live_bindings("carol")
        await carol.destroy()
        await wait_until(lambda: not platform.live_bindings("carol"), 5, "carol's binding to go")
        call = await alice.connect("carol")
        with pytest.raises(VoiceSDKError) as info:
            await call.wait_accepted(5)
        assert info.value.status_code == 480
        await alice.destroy()

    run(body)
