"""Audio sources and sinks: tone, WAV file, built-in speech-like clip, null, and sound cards.

A source produces 16-bit mono PCM frames on demand (``read(samples) -> ndarray[int16]``), a
sink consumes them (``write(pcm)``). Both work at one sample rate each, given at creation;
the media path resamples. The media clock pulls from sources and pushes to sinks; nothing
here sleeps or keeps time, so files and tones run at whatever speed the caller drives them
(real time in a call, faster in tests).

Sound cards use ``sounddevice`` (PortAudio). Without PortAudio (Debian package
``libportaudio2``) or without a device, :func:`open_input` / :func:`open_output` raise
``VoiceSDKError(DEVICE_UNAVAILABLE)`` naming what to install; everything else keeps working.
"""

from __future__ import annotations

import math
import threading
import wave
from collections import deque
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from .errors import ErrorCode, VoiceSDKError

__all__ = [
    "AudioSink",
    "AudioSource",
    "BufferSink",
    "NullSink",
    "NullSource",
    "SpeechLikeSource",
    "ToneSource",
    "WavFileSink",
    "WavFileSource",
    "enumerate_devices",
    "open_input",
    "open_output",
]

Pcm = NDArray[np.int16]


class AudioSource(Protocol):
    sample_rate: int

    def read(self, samples: int) -> Pcm: ...

    def close(self) -> None: ...


class AudioSink(Protocol):
    sample_rate: int

    def write(self, pcm: Pcm) -> None: ...

    def close(self) -> None: ...


class NullSource:
    """Silence."""

    def __init__(self, sample_rate: int = 8000) -> None:
        self.sample_rate = sample_rate

    def read(self, samples: int) -> Pcm:
        return np.zeros(samples, dtype=np.int16)

    def close(self) -> None:
        pass


class ToneSource:
    """A sine tone (or a sum of tones), phase-continuous across reads."""

    def __init__(self, frequencies: tuple[float, ...] = (440.0,), *, sample_rate: int = 8000,
                 amplitude: float = 0.3) -> None:
        self.sample_rate = sample_rate
        self.frequencies = frequencies
        self.amplitude = amplitude
        self._n = 0

    def read(self, samples: int) -> Pcm:
        t = (np.arange(samples) + self._n) / self.sample_rate
        self._n += samples
        sig = sum(np.sin(2 * math.pi * f * t) for f in self.frequencies) / max(1, len(self.frequencies))
        return (np.asarray(sig) * self.amplitude * 32767).astype(np.int16)

    def close(self) -> None:
        pass


class SpeechLikeSource:
    """A built-in speech-like clip: voiced syllables (pitch glide, two formants) and pauses.

    Deterministic, so received audio can be compared with what was sent. Loops forever.
    """

    def __init__(self, *, sample_rate: int = 8000, seconds: float = 3.0) -> None:
        self.sample_rate = sample_rate
        n = int(seconds * sample_rate)
        t = np.arange(n) / sample_rate
        syllable = 0.25
        env = np.clip(np.sin(np.pi * (t % syllable) / syllable), 0, None) ** 1.5
        env *= (np.floor(t / syllable) % 4 != 3)  # every fourth slot is a pause
        f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * t)
        phase = 2 * np.pi * np.cumsum(f0) / sample_rate
        voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
        formant = 1 + 0.6 * np.sin(2 * np.pi * 700 * t) + 0.3 * np.sin(2 * np.pi * 1200 * t)
        sig = voiced * formant * env
        sig = sig / (np.max(np.abs(sig)) or 1.0) * 0.5
        self._clip = (sig * 32767).astype(np.int16)
        self._pos = 0

    def read(self, samples: int) -> Pcm:
        out = np.empty(samples, dtype=np.int16)
        filled = 0
        while filled < samples:
            take = min(samples - filled, len(self._clip) - self._pos)
            out[filled : filled + take] = self._clip[self._pos : self._pos + take]
            filled += take
            self._pos = (self._pos + take) % len(self._clip)
        return out

    def close(self) -> None:
        pass


class WavFileSource:
    """16-bit PCM WAV (mono, or the first channel), optionally looping; silence after the end."""

    def __init__(self, path: str | Path, *, loop: bool = False) -> None:
        try:
            with wave.open(str(path), "rb") as w:
                if w.getsampwidth() != 2:
                    raise VoiceSDKError(ErrorCode.INVALID_ARGUMENT, f"{path}: only 16-bit PCM WAV is supported")
                self.sample_rate = w.getframerate()
                channels = w.getnchannels()
                data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        except (OSError, wave.Error, EOFError) as exc:
            raise VoiceSDKError(ErrorCode.INVALID_ARGUMENT, f"cannot read WAV file {path}: {exc}", exc) from exc
        self._pcm = data[::channels].astype(np.int16) if channels > 1 else data.astype(np.int16)
        self._pos = 0
        self.loop = loop

    @property
    def finished(self) -> bool:
        return not self.loop and self._pos >= len(self._pcm)

    def read(self, samples: int) -> Pcm:
        out = np.zeros(samples, dtype=np.int16)
        filled = 0
        while filled < samples and len(self._pcm):
            if self._pos >= len(self._pcm):
                if not self.loop:
                    break
                self._pos = 0
            take = min(samples - filled, len(self._pcm) - self._pos)
            out[filled : filled + take] = self._pcm[self._pos : self._pos + take]
            filled += take
            self._pos += take
        return out

    def close(self) -> None:
        pass


class NullSink:
    def __init__(self, sample_rate: int = 8000) -> None:
        self.sample_rate = sample_rate

    def write(self, pcm: Pcm) -> None:
        pass

    def close(self) -> None:
        pass


class BufferSink:
    """Keeps everything written (bounded to ``max_seconds``) for analysis and tests."""

    def __init__(self, sample_rate: int = 8000, *, max_seconds: float = 600.0) -> None:
        self.sample_rate = sample_rate
        self._chunks: deque[Pcm] = deque()
        self._len = 0
        self._max = int(max_seconds * sample_rate)

    def write(self, pcm: Pcm) -> None:
        self._chunks.append(pcm.copy())
        self._len += len(pcm)
        while self._len > self._max and self._chunks:
            self._len -= len(self._chunks.popleft())

    def pcm(self) -> Pcm:
        return np.concatenate(list(self._chunks)) if self._chunks else np.zeros(0, dtype=np.int16)

    def close(self) -> None:
        pass


class WavFileSink:
    """Writes 16-bit mono WAV as audio arrives."""

    def __init__(self, path: str | Path, sample_rate: int = 8000) -> None:
        self.sample_rate = sample_rate
        self.path = Path(path)
        self._w = wave.open(str(path), "wb")
        self._w.setnchannels(1)
        self._w.setsampwidth(2)
        self._w.setframerate(sample_rate)
        self.samples = 0

    def write(self, pcm: Pcm) -> None:
        self._w.writeframes(pcm.astype("<i2").tobytes())
        self.samples += len(pcm)

    def close(self) -> None:
        self._w.close()


# -- sound cards (optional) -----------------------------------------------------------------
def _sounddevice() -> Any:
    try:
        import sounddevice
    except (ImportError, OSError) as exc:
        raise VoiceSDKError(
            ErrorCode.DEVICE_UNAVAILABLE,
            "sound devices need PortAudio: install the Debian package libportaudio2 "
            "(and the Python package sounddevice)", exc) from exc
    return sounddevice


def enumerate_devices() -> list[dict[str, Any]]:
    """Input and output devices as ``{index, name, inputs, outputs, default_samplerate}``."""
    sd = _sounddevice()
    try:
        devices = sd.query_devices()
    except Exception as exc:
        raise VoiceSDKError(ErrorCode.DEVICE_UNAVAILABLE, f"cannot list sound devices: {exc}", exc) from exc
    return [{"index": i, "name": d["name"], "inputs": d["max_input_channels"], "outputs": d["max_output_channels"],
             "default_samplerate": d["default_samplerate"]} for i, d in enumerate(devices)]


class _DeviceStream:
    """A PortAudio stream with a bounded FIFO between its callback thread and the media path."""

    def __init__(self, kind: str, device: int | str | None, sample_rate: int, frame: int) -> None:
        sd = _sounddevice()
        self.sample_rate = sample_rate
        self._fifo: deque[Pcm] = deque(maxlen=50)
        self._lock = threading.Lock()
        self._pending = np.zeros(0, dtype=np.int16)
        try:
            if kind == "input":
                self._stream = sd.InputStream(device=device, channels=1, samplerate=sample_rate, dtype="int16",
                                              blocksize=frame, callback=self._in_cb)
            else:
                self._stream = sd.OutputStream(device=device, channels=1, samplerate=sample_rate, dtype="int16",
                                               blocksize=frame, callback=self._out_cb)
            self._stream.start()
        except Exception as exc:
            raise VoiceSDKError(ErrorCode.DEVICE_UNAVAILABLE, f"cannot open sound {kind} {device!r}: {exc}",
                                exc) from exc

    def _in_cb(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        with self._lock:
            self._fifo.append(indata[:, 0].copy())

    def _out_cb(self, outdata: Any, frames: int, time_info: Any, status: Any) -> None:
        with self._lock:
            buf = self._pending
            while len(buf) < frames and self._fifo:
                buf = np.concatenate([buf, self._fifo.popleft()])
            out = np.zeros(frames, dtype=np.int16)
            take = min(frames, len(buf))
            out[:take] = buf[:take]
            self._pending = buf[take:]
        outdata[:, 0] = out

    def read(self, samples: int) -> Pcm:
        with self._lock:
            buf = self._pending
            while len(buf) < samples and self._fifo:
                buf = np.concatenate([buf, self._fifo.popleft()])
            out = np.zeros(samples, dtype=np.int16)
            take = min(samples, len(buf))
            out[:take] = buf[:take]
            self._pending = buf[take:]
        return out

    def write(self, pcm: Pcm) -> None:
        with self._lock:
            self._fifo.append(pcm.copy())

    def close(self) -> None:
        self._stream.stop()
        self._stream.close()


def open_input(device: int | str | None = None, *, sample_rate: int = 48000) -> AudioSource:
    return _DeviceStream("input", device, sample_rate, sample_rate // 50)


def open_output(device: int | str | None = None, *, sample_rate: int = 48000) -> AudioSink:
    return _DeviceStream("output", device, sample_rate, sample_rate // 50)
