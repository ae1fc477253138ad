"""Two MediaSessions talk over a simulated link: plain RTP, SDES-SRTP and DTLS-SRTP."""

from __future__ import annotations

import random

import numpy as np
import pytest

from rtpcore.media_session import (
    DtmfReceived,
    MediaConfig,
    MediaConnected,
    MediaFlowing,
    MediaSession,
    MediaState,
)

A = ("10.0.0.1", 4000)
B = ("10.0.0.2", 5000)


def _rng(seed: int):  # deterministic injected randomness
    r = random.Random(seed)
    return lambda n: r.randbytes(n)


def _tone(n: int, start: int, rate: int) -> np.ndarray:
    t = (np.arange(n) + start) / rate
    return (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)


def run_call(security: str, *, loss: float = 0.0, seconds: float = 3.0, codecs=("PCMU",), nat_b=None, dtmf=None):
    cfg = MediaConfig(security=security, codecs=codecs)
    now = 0.0
    a = MediaSession(A, now=now, config=cfg, rng=_rng(1))
    b = MediaSession(B, now=now, config=cfg, rng=_rng(2))
    offer = a.create_offer(now)
    answer = b.receive_offer(offer, now)
    a.receive_answer(answer, now)
    lossy = random.Random(7)
    events: dict[str, list[object]] = {"a": [], "b": []}
    received = []
    sent_samples = 0
    step = 0.02
    while now < seconds:
        for src, dst, src_addr in ((a, b, nat_b and A or A), (b, a, nat_b or B)):
            for data, addr in src.datagrams_to_send():
                if loss and lossy.random() < loss:
                    continue
                dst.receive(data, src_addr, now)
        for s in (a, b):
            d = s.next_deadline()
            if d is not None and d <= now:
                s.handle_timeout(now)
        n = a.frame_samples
        a.send_audio(_tone(n, sent_samples, a.audio_sample_rate), now)
        b.send_audio(np.zeros(b.frame_samples, dtype=np.int16), now)
        if dtmf and abs(now - 1.0) < 1e-9:
            a.send_dtmf(dtmf, now)
        sent_samples += n
        received.append(b.pull_audio(now))
        a.pull_audio(now)
        events["a"].extend(a.events())
        events["b"].extend(b.events())
        now = round(now + step, 6)
    return a, b, events, np.concatenate(received)


@pytest.mark.parametrize("security", ["none", "sdes", "dtls"])
def test_audio_flows_both_ways(security: str) -> None:
    a, b, events, pcm = run_call(security)
    assert a.state is MediaState.FLOWING and b.state is MediaState.FLOWING
    assert any(isinstance(e, MediaConnected) and e.security == security for e in events["a"])
    assert any(isinstance(e, MediaFlowing) for e in events["b"])
    # the received signal is the 440 Hz tone: dominant FFT bin
    tail = pcm[-8000:].astype(float)
    spectrum = np.abs(np.fft.rfft(tail))
    peak_hz = np.argmax(spectrum) * 8000 / len(tail)
    assert abs(peak_hz - 440) < 5
    st = b.stats(3.0)
    assert st.packets_received > 100 and st.inbound_loss == 0.0 and st.mos > 4.0
    assert st.playout_delay_ms <= 60.0


def test_dtmf_is_received_once_per_digit() -> None:
    _, _, events, _ = run_call("dtls", dtmf="12#")
    digits = [e.digit for e in events["b"] if isinstance(e, DtmfReceived)]
    assert digits == ["1", "2", "#"]


def test_loss_is_concealed_and_measured() -> None:
    _, b, _, pcm = run_call("sdes", loss=0.1, seconds=4.0)
    st = b.stats(4.0)
    assert 0.03 < st.inbound_loss < 0.2
    assert st.jitter["concealed"] > 0
    assert np.abs(pcm[-4000:]).mean() > 1000  # still audio, not silence


def test_symmetric_rtp_latches_to_the_nat_address() -> None:
    nat = ("198.51.100.7", 61000)
    a, _, _, _ = run_call("none", nat_b=nat)
    assert a.remote_addr == nat


def test_wrong_fingerprint_fails_dtls_with_a_typed_cause() -> None:
    cfg = MediaConfig(security="dtls", codecs=("PCMU",), connect_timeout=5)
    a = MediaSession(A, now=0, config=cfg, rng=_rng(1))
    b = MediaSession(B, now=0, config=cfg, rng=_rng(2))
    offer = a.create_offer(0)
    forged = offer.replace(a.local_fingerprint.split(" ", 1)[1].encode(), b"AA:" * 31 + b"AA")
    answer = b.receive_offer(forged, 0)
    a.receive_answer(answer, 0)
    now = 0.0
    failed = []
    while now < 8 and not failed:
        for src, dst, addr in ((a, b, A), (b, a, B)):
            for data, _ in src.datagrams_to_send():
                dst.receive(data, addr, now)
            d = src.next_deadline()
            if d is not None and d <= now:
                src.handle_timeout(now)
        failed = [e for s in (a, b) for e in s.events() if type(e).__name__ == "MediaFailed"]
        now += 0.05
    assert failed and failed[0].cause == "dtls"


def test_dtls_calls_use_ice_and_report_candidate_types() -> None:
    a, b, _, _ = run_call("dtls", seconds=2.0)
    assert a.ice is not None and b.ice is not None
    assert a.ice.controlling and not b.ice.controlling
    assert a.ice.selected_pair() is not None
    st = a.stats(2.0)
    assert (st.local_candidate_type, st.remote_candidate_type) == ("host", "host")
    assert b"a=ice-ufrag" in a.create_offer(2.0)


def test_ice_restart_by_reoffer_keeps_media_flowing() -> None:
    cfg = MediaConfig(security="dtls", codecs=("PCMU",))
    a = MediaSession(A, now=0, config=cfg, rng=_rng(1))
    b = MediaSession(B, now=0, config=cfg, rng=_rng(2))
    a.receive_answer(b.receive_offer(a.create_offer(0), 0), 0)
    now = 0.0

    def pump(until: float) -> None:
        nonlocal now
        while now < until:
            for src, dst, addr in ((a, b, A), (b, a, B)):
                for data, _ in src.datagrams_to_send():
                    dst.receive(data, addr, now)
                d = src.next_deadline()
                if d is not None and d <= now:
                    src.handle_timeout(now)
            a.send_audio(np.zeros(a.frame_samples, dtype=np.int16), now)
            b.send_audio(np.zeros(b.frame_samples, dtype=np.int16), now)
            a.pull_audio(now)
            b.pull_audio(now)
            now = round(now + 0.02, 6)

    pump(1.5)
    assert a.state is MediaState.FLOWING
    old_ufrag = a.ice.local_ufrag  # type: ignore[union-attr]
    a.restart_ice(now)
    offer = a.create_offer(now)
    answer = b.receive_offer(offer, now)
    a.receive_answer(answer, now)
    assert a.ice.local_ufrag != old_ufrag  # type: ignore[union-attr]
    received = b.packets_received
    pump(now + 1.5)
    assert b.packets_received > received + 50
    assert a.state is MediaState.FLOWING and b.state is MediaState.FLOWING


def test_dtls_done_before_our_pair_is_selected_still_connects() -> None:
    """A browser (controlled ICE, DTLS client) sends its ClientHello as soon as a pair works for it,
    so the handshake can finish before our controlling agent has the answer to its nominating check
    (here every STUN message from B after its selection is held back 0.5 s). Once our pair is
    selected the session must become connected, then flowing (seen with Chromium answering a call)."""
    cfg = MediaConfig(security="dtls", codecs=("PCMU",))
    a = MediaSession(A, now=0, config=cfg, rng=_rng(1))
    b = MediaSession(B, now=0, config=cfg, rng=_rng(2))
    a.receive_answer(b.receive_offer(a.create_offer(0), 0), 0)
    held: list[tuple[float, bytes]] = []
    seen: dict[str, float] = {}
    now = 0.0
    while now < 3.0:
        for data, _ in a.datagrams_to_send():
            b.receive(data, A, now)
        for data, _ in b.datagrams_to_send():
            if data[0] < 4 and b.ice is not None and b.ice.selected_pair() is not None:  # STUN (RFC 7983)
                held.append((now + 0.5, data))
            else:
                a.receive(data, B, now)
        for item in [h for h in held if h[0] <= now]:
            held.remove(item)
            a.receive(item[1], B, now)
        for s in (a, b):
            d = s.next_deadline()
            if d is not None and d <= now:
                s.handle_timeout(now)
        a.send_audio(np.zeros(a.frame_samples, dtype=np.int16), now)
        b.send_audio(np.zeros(b.frame_samples, dtype=np.int16), now)
        if a.ice is not None and a.ice.selected_pair() is not None:
            seen.setdefault("a selected", now)
        for who, s in (("a", a), ("b", b)):
            for ev in s.events():
                seen.setdefault(f"{who} {type(ev).__name__}", now)
        now = round(now + 0.02, 6)
    assert seen["b MediaConnected"] < seen["a selected"]  # A's DTLS finished before its selection
    assert "a MediaConnected" in seen and "a MediaFlowing" in seen
    assert a.state is MediaState.FLOWING
