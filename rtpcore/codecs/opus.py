"""Opus (RFC 6716) over RTP (RFC 7587) through ``opuslib`` and the native libopus.

The RTP clock is always 48 kHz and rtpmap always says ``opus/48000/2`` (RFC 7587 §7);
the PCM handed to :class:`OpusCodec` is 48 kHz, mono unless asked otherwise, in 20 ms
frames by default. The remote's ``a=fmtp`` parameters (RFC 7587 §6.1) shape our encoder:

==================  =========================================================
``maxplaybackrate``  caps the encoded audio bandwidth (NB/MB/WB/SWB/FB)
``maxaveragebitrate`` caps the encoder bitrate
``useinbandfec=1``   the peer decodes in-band FEC (LBRR): we send it
``usedtx=1``         the peer prefers discontinuous transmission: we enable DTX
``cbr=1``            constant bitrate
``stereo=1``         the peer would like stereo; honoured when ``channels=2``
==================  =========================================================

Loss handling: :meth:`OpusCodec.conceal` runs the decoder's own PLC (decode with no data),
:meth:`OpusCodec.decode_fec` rebuilds a lost frame from the LBRR data in the next packet.

libopus is optional. Importing this module never loads it; constructing a codec without it
raises :class:`~rtpcore.errors.CodecUnavailableError` naming the packages to install.
"""

from __future__ import annotations

import ctypes
import weakref
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any

import numpy as np

from ..errors import CodecDecodeError, CodecError, CodecUnavailableError
from .base import CodecBase, CodecSpec, Pcm, as_pcm, empty_pcm, format_fmtp, parse_fmtp

SAMPLE_RATE = 48000
CLOCK_RATE = 48000
SDP_CHANNELS = 2
"""RFC 7587 §7: the rtpmap channel count is always 2."""
MAX_FRAME_SAMPLES = 5760
"""120 ms at 48 kHz: the longest Opus packet (RFC 6716 §3.2.5)."""
PLC_GRANULE = 120
"""Decoder PLC and FEC work in multiples of 2.5 ms."""
VALID_FRAME_MS = (10, 20, 40, 60)
"""Frame sizes accepted for ``frame_ms`` (2.5 and 5 ms cannot use SILK, so no FEC)."""
_FRAME_SIZES = frozenset((120, 240, 480, 960, 1920, 2880))
"""Samples per channel in an Opus frame at 48 kHz: 2.5, 5, 10, 20, 40, 60 ms."""
INSTALL_HINT = (
    "Opus needs the native library and its Python binding: install the Debian package "
    "'libopus0' (apt-get install libopus0) and the pip package 'opuslib'"
)

# opus_defines.h
_APPLICATION_VOIP = 2048
_APPLICATION_AUDIO = 2049
_SET_BITRATE = 4002
_SET_MAX_BANDWIDTH = 4004
_SET_VBR = 4006
_SET_COMPLEXITY = 4010
_SET_INBAND_FEC = 4012
_SET_PACKET_LOSS_PERC = 4014
_SET_DTX = 4016
_SET_SIGNAL = 4024
_SIGNAL_VOICE = 3001
_BANDWIDTHS = ((8000, 1101), (12000, 1102), (16000, 1103), (24000, 1104))
_BANDWIDTH_FULLBAND = 1105


@cache
def _load_opuslib() -> ModuleType:
    """Import opuslib (which loads libopus), or raise CodecUnavailableError."""
    try:
        import opuslib
        import opuslib.api.decoder
        import opuslib.api.encoder
    except Exception as exc:  # opuslib raises a bare Exception when libopus is missing
        raise CodecUnavailableError(f"{INSTALL_HINT} ({exc})") from exc
    module: ModuleType = opuslib
    return module


def opus_available() -> bool:
    """True when opuslib and libopus can be loaded."""
    try:
        _load_opuslib()
    except CodecUnavailableError:
        return False
    return True


def _flag(params: dict[str, str], key: str) -> bool | None:
    v = params.get(key)
    if v is None:
        return None
    return v.strip() == "1"


def _int(params: dict[str, str], key: str) -> int | None:
    v = params.get(key)
    if v is None:
        return None
    try:
        n = int(v.strip())
    except ValueError:
        return None  # RFC 7587 §6.1: ignore a parameter we cannot understand
    return n if n > 0 else None


@dataclass(frozen=True, slots=True, kw_only=True)
class OpusParams:
    """The RFC 7587 §6.1 fmtp parameters. ``None`` means absent (use the default)."""

    max_playback_rate: int | None = None
    """``maxplaybackrate``: highest audio rate the receiver will render, Hz."""
    sprop_max_capture_rate: int | None = None
    """``sprop-maxcapturerate``: highest rate the sender captures, Hz."""
    max_average_bitrate: int | None = None
    """``maxaveragebitrate``: bit/s, 6000..510000."""
    stereo: bool | None = None
    """``stereo``: the receiver prefers stereo."""
    sprop_stereo: bool | None = None
    """``sprop-stereo``: the sender is likely to send stereo."""
    cbr: bool | None = None
    """``cbr``: the receiver prefers constant bitrate."""
    use_inband_fec: bool | None = None
    """``useinbandfec``: the receiver can use in-band FEC."""
    use_dtx: bool | None = None
    """``usedtx``: the receiver prefers DTX."""
    min_ptime: int | None = None
    """``minptime`` (WebRTC): the smallest packet duration, ms."""

    @classmethod
    def from_fmtp(cls, fmtp: dict[str, str] | str) -> OpusParams:
        p = parse_fmtp(fmtp) if isinstance(fmtp, str) else {k.lower(): v for k, v in fmtp.items()}
        rate = _int(p, "maxaveragebitrate")
        return cls(
            max_playback_rate=_int(p, "maxplaybackrate"),
            sprop_max_capture_rate=_int(p, "sprop-maxcapturerate"),
            max_average_bitrate=None if rate is None else min(510000, max(6000, rate)),
            stereo=_flag(p, "stereo"),
            sprop_stereo=_flag(p, "sprop-stereo"),
            cbr=_flag(p, "cbr"),
            use_inband_fec=_flag(p, "useinbandfec"),
            use_dtx=_flag(p, "usedtx"),
            min_ptime=_int(p, "minptime"),
        )

    def to_fmtp(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.min_ptime is not None:
            out["minptime"] = str(self.min_ptime)
        for key, flag in (("useinbandfec", self.use_inband_fec), ("usedtx", self.use_dtx),
                          ("stereo", self.stereo), ("sprop-stereo", self.sprop_stereo), ("cbr", self.cbr)):
            if flag is not None:
                out[key] = "1" if flag else "0"
        for key, val in (("maxplaybackrate", self.max_playback_rate),
                         ("sprop-maxcapturerate", self.sprop_max_capture_rate),
                         ("maxaveragebitrate", self.max_average_bitrate)):
            if val is not None:
                out[key] = str(val)
        return out

    def format(self) -> str:
        return format_fmtp(self.to_fmtp())


def max_bandwidth_for(rate: int | None) -> int:
    """OPUS_BANDWIDTH_* constant for a ``maxplaybackrate`` (RFC 7587 §6.1)."""
    if rate is None:
        return _BANDWIDTH_FULLBAND
    for limit, bw in _BANDWIDTHS:
        if rate <= limit:
            return bw
    return _BANDWIDTH_FULLBAND


class OpusCodec(CodecBase):
    """A stateful Opus encoder + decoder pair for one stream direction each.

    ``fmtp`` is the *remote* description's fmtp for this payload type (it constrains what
    we send). ``bitrate`` is our target, capped by ``maxaveragebitrate``.
    """

    name = "opus"
    clock_rate = CLOCK_RATE
    sample_rate = SAMPLE_RATE

    def __init__(
        self,
        fmtp: dict[str, str] | str | None = None,
        *,
        channels: int = 1,
        frame_ms: int = 20,
        bitrate: int = 32000,
        complexity: int = 9,
        expected_loss_percent: int = 10,
        application: str = "voip",
        payload_type: int | None = None,
    ) -> None:
        if channels not in (1, 2):
            raise CodecError("Opus supports 1 or 2 channels")
        if frame_ms not in VALID_FRAME_MS:
            raise CodecError(f"frame_ms must be one of {VALID_FRAME_MS}")
        if application not in ("voip", "audio"):
            raise CodecError("application must be 'voip' or 'audio'")
        self._opus = _load_opuslib()
        self.params = OpusParams.from_fmtp(fmtp or {})
        self._fmtp = parse_fmtp(fmtp) if isinstance(fmtp, str) else dict(fmtp or {})
        self.channels = channels
        self.frame_ms = frame_ms
        self.payload_type = payload_type
        cap = self.params.max_average_bitrate
        self.bitrate = min(bitrate, cap) if cap is not None else bitrate
        self.fec = bool(self.params.use_inband_fec)
        self.dtx = bool(self.params.use_dtx)
        self.cbr = bool(self.params.cbr)
        self.max_bandwidth = max_bandwidth_for(self.params.max_playback_rate)
        app = _APPLICATION_VOIP if application == "voip" else _APPLICATION_AUDIO
        enc_api = self._opus.api.encoder
        dec_api = self._opus.api.decoder
        err = ctypes.c_int()
        self._enc = enc_api.libopus_create(SAMPLE_RATE, channels, app, ctypes.byref(err))
        if err.value != 0:
            raise CodecError(f"opus_encoder_create failed ({err.value})")
        weakref.finalize(self, enc_api.destroy, self._enc)
        self._dec = dec_api.libopus_create(SAMPLE_RATE, channels, ctypes.byref(err))
        if err.value != 0:
            raise CodecError(f"opus_decoder_create failed ({err.value})")
        weakref.finalize(self, dec_api.destroy, self._dec)
        self._encode_fn = enc_api.libopus_encode
        self._decode_fn = dec_api.libopus_decode
        self._i16p = self._opus.api.c_int16_pointer
        self._out = ctypes.create_string_buffer(4000)
        self._plc_left = empty_pcm()
        self._apply_encoder_settings(complexity, expected_loss_percent)

    def _ctl(self, request: int, value: int) -> None:
        rc = self._opus.api.encoder.libopus_ctl(self._enc, request, ctypes.c_int(value))
        if rc != 0:
            raise CodecError(f"opus_encoder_ctl({request}, {value}) failed ({rc})")

    def _apply_encoder_settings(self, complexity: int, loss: int) -> None:
        self._ctl(_SET_BITRATE, self.bitrate)
        self._ctl(_SET_COMPLEXITY, complexity)
        self._ctl(_SET_SIGNAL, _SIGNAL_VOICE)
        self._ctl(_SET_MAX_BANDWIDTH, self.max_bandwidth)
        self._ctl(_SET_VBR, 0 if self.cbr else 1)
        self._ctl(_SET_INBAND_FEC, 1 if self.fec else 0)
        self._ctl(_SET_PACKET_LOSS_PERC, loss if self.fec else 0)
        self._ctl(_SET_DTX, 1 if self.dtx else 0)

    @property
    def spec(self) -> CodecSpec:
        return CodecSpec(self.name, CLOCK_RATE, SDP_CHANNELS, dict(self._fmtp), self.payload_type)

    @property
    def supports_fec(self) -> bool:
        return True

    def encode(self, pcm: Pcm) -> bytes:
        pcm = np.ascontiguousarray(as_pcm(pcm, self.channels))
        n = pcm.shape[0] // self.channels
        if n not in _FRAME_SIZES:
            raise CodecError(f"{n} samples per channel is not an Opus frame size")
        rc = self._encode_fn(self._enc, pcm.ctypes.data_as(self._i16p), n, self._out, len(self._out))
        if rc < 0:
            raise CodecError(f"opus_encode failed ({rc})")
        return self._out.raw[:rc]

    def _decode(self, data: bytes | None, frame_size: int, fec: bool) -> Pcm:
        buf = np.empty(frame_size * self.channels, dtype=np.int16)
        rc = self._decode_fn(self._dec, data, 0 if data is None else len(data),
                             buf.ctypes.data_as(self._i16p), frame_size, 1 if fec else 0)
        if rc < 0:
            raise CodecDecodeError(f"opus_decode failed ({rc}): invalid or truncated Opus packet")
        return buf[: rc * self.channels]

    def decode(self, payload: bytes) -> Pcm:
        if not payload:
            raise CodecDecodeError("empty Opus payload")
        self._plc_left = empty_pcm()
        return self._decode(bytes(payload), MAX_FRAME_SAMPLES, False)

    def conceal(self, samples: int) -> Pcm:
        """Decoder PLC (or comfort noise in DTX), in 2.5 ms steps; surplus kept for next time."""
        if samples <= 0:
            return empty_pcm()
        ch = self.channels
        have = self._plc_left
        need = samples - have.shape[0] // ch
        if need > 0:
            frames = -(-need // PLC_GRANULE) * PLC_GRANULE
            parts = [have]
            while frames > 0:
                step = min(frames, MAX_FRAME_SAMPLES)
                parts.append(self._decode(None, step, False))
                frames -= step
            have = np.concatenate(parts)
        self._plc_left = have[samples * ch:]
        return have[: samples * ch]

    def decode_fec(self, next_payload: bytes, samples: int) -> Pcm:
        """Rebuild the ``samples`` lost just before ``next_payload`` from its LBRR data."""
        if not next_payload:
            return self.conceal(samples)
        if samples % PLC_GRANULE:
            return self.conceal(samples)
        self._plc_left = empty_pcm()
        return self._decode(bytes(next_payload), samples, True)

    def reset(self) -> None:
        api: Any = self._opus.api.decoder
        api.libopus_ctl(self._dec, 4028)  # OPUS_RESET_STATE
        self._plc_left = empty_pcm()
