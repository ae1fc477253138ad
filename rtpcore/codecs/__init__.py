"""Audio codecs: the :class:`Codec` interface, G.711 (PCMU/PCMA), Opus and the registry.

Importing this package never needs libopus; only constructing an Opus codec does (it then
raises :class:`~rtpcore.errors.CodecUnavailableError` naming ``libopus0`` and ``opuslib``).
"""

from __future__ import annotations

from .base import Codec, CodecBase, CodecSpec, Pcm, WaveformPlc, format_fmtp, parse_fmtp
from .g711 import PT_PCMA, PT_PCMU, PcmaCodec, PcmuCodec, alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from .opus import OpusCodec, OpusParams, opus_available
from .registry import (
    OPUS_OFFER,
    PCMA_OFFER,
    PCMU_OFFER,
    PT_OPUS,
    PT_TELEPHONE_EVENT_8K,
    PT_TELEPHONE_EVENT_48K,
    TELEPHONE_EVENT,
    CodecRegistry,
    create,
)

__all__ = [
    "OPUS_OFFER",
    "PCMA_OFFER",
    "PCMU_OFFER",
    "PT_OPUS",
    "PT_PCMA",
    "PT_PCMU",
    "PT_TELEPHONE_EVENT_48K",
    "PT_TELEPHONE_EVENT_8K",
    "TELEPHONE_EVENT",
    "Codec",
    "CodecBase",
    "CodecRegistry",
    "CodecSpec",
    "OpusCodec",
    "OpusParams",
    "Pcm",
    "PcmaCodec",
    "PcmuCodec",
    "WaveformPlc",
    "alaw_decode",
    "alaw_encode",
    "create",
    "format_fmtp",
    "opus_available",
    "parse_fmtp",
    "ulaw_decode",
    "ulaw_encode",
]
