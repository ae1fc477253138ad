"""Which codecs the stack speaks, in what order it offers them, and how to build one.

SDP offer/answer (RFC 3264 §5.1) lists formats in preference order; the answerer keeps
the offerer's order where it can. Ours: Opus (wideband, FEC), then the two G.711 laws,
then RFC 4733 telephone-event at each audio clock rate (telephone-event must use the same
clock as the audio codec it goes with, RFC 4733 §2.1). Matching is on
``(encoding name case-insensitively, clock rate, channels)`` (RFC 4855 §3); the payload
type number is whatever the offer said.

Opus is offered only when libopus can be loaded (:func:`~rtpcore.codecs.opus.opus_available`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..errors import CodecError
from .base import Codec, CodecSpec
from .g711 import PT_PCMA, PT_PCMU, PcmaCodec, PcmuCodec
from .opus import OpusCodec, opus_available

CodecFactory = Callable[[CodecSpec], Codec]

PT_OPUS = 111
"""Dynamic payload type for Opus (what browsers use)."""
PT_TELEPHONE_EVENT_8K = 101
PT_TELEPHONE_EVENT_48K = 110

TELEPHONE_EVENT = "telephone-event"

OPUS_OFFER = CodecSpec("opus", 48000, 2, {"minptime": "10", "useinbandfec": "1"}, PT_OPUS)
PCMU_OFFER = CodecSpec("PCMU", 8000, 1, {}, PT_PCMU)
PCMA_OFFER = CodecSpec("PCMA", 8000, 1, {}, PT_PCMA)
TELEPHONE_EVENT_48K_OFFER = CodecSpec(TELEPHONE_EVENT, 48000, 1, {"0-16": ""}, PT_TELEPHONE_EVENT_48K)
TELEPHONE_EVENT_8K_OFFER = CodecSpec(TELEPHONE_EVENT, 8000, 1, {"0-16": ""}, PT_TELEPHONE_EVENT_8K)


def _pcmu(spec: CodecSpec) -> Codec:
    return PcmuCodec(payload_type=spec.payload_type)


def _pcma(spec: CodecSpec) -> Codec:
    return PcmaCodec(payload_type=spec.payload_type)


OPUS_CALL_COMPLEXITY = 5
"""Encoder complexity for calls: what WebRTC uses on mobile. For speech at 32 kbit/s it sounds
the same as 9-10 and costs about half the CPU (0.36 vs 0.64 ms per 20 ms frame measured here),
which keeps one Opus call under 5 % of a core."""


def _opus(spec: CodecSpec) -> Codec:
    return OpusCodec(dict(spec.fmtp), payload_type=spec.payload_type, complexity=OPUS_CALL_COMPLEXITY)


@dataclass(frozen=True, slots=True)
class _Entry:
    offer: CodecSpec
    factory: CodecFactory | None
    """None for formats that are not audio codecs (telephone-event: see rtpcore.dtmf)."""
    available: Callable[[], bool]


def _always() -> bool:
    return True


class CodecRegistry:
    """Maps ``(name, clock rate, channels)`` to a codec factory, in preference order."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, int, int], _Entry] = {}

    @classmethod
    def default(cls) -> CodecRegistry:
        """Opus, PCMU, PCMA, telephone-event/48000, telephone-event/8000."""
        reg = cls()
        reg.register(OPUS_OFFER, _opus, available=opus_available)
        reg.register(PCMU_OFFER, _pcmu)
        reg.register(PCMA_OFFER, _pcma)
        reg.register(TELEPHONE_EVENT_48K_OFFER, None, available=opus_available)
        reg.register(TELEPHONE_EVENT_8K_OFFER, None)
        return reg

    def register(
        self, offer: CodecSpec, factory: CodecFactory | None, *, available: Callable[[], bool] = _always
    ) -> None:
        """Add (or replace) a format; new ones go last in the preference order."""
        self._entries[offer.key] = _Entry(offer, factory, available)

    def _find(self, spec: CodecSpec) -> _Entry | None:
        return self._entries.get(spec.key)

    def supports(self, spec: CodecSpec) -> bool:
        """True when ``spec`` is a format we can use (audio codec or telephone-event)."""
        entry = self._find(spec)
        return entry is not None and entry.available()

    def is_audio(self, spec: CodecSpec) -> bool:
        """True when ``spec`` is an audio codec we can build (not telephone-event)."""
        entry = self._find(spec)
        return entry is not None and entry.factory is not None and entry.available()

    def offer(self) -> list[CodecSpec]:
        """Formats to put in an SDP offer, best first, each with its payload type."""
        return [e.offer for e in self._entries.values() if e.available()]

    def preference(self, spec: CodecSpec) -> int:
        """Rank of ``spec`` in our order (0 is best); a large number when unknown."""
        for rank, key in enumerate(self._entries):
            if key == spec.key:
                return rank
        return len(self._entries) + 1000

    def select(self, remote: Iterable[CodecSpec]) -> list[CodecSpec]:
        """The remote formats we support, in the remote's order (RFC 3264 §6.1)."""
        return [s for s in remote if self.supports(s)]

    def create(self, spec: CodecSpec) -> Codec:
        """Build the codec for ``spec`` (its payload type and fmtp are passed on)."""
        entry = self._find(spec)
        if entry is None:
            raise CodecError(f"unsupported codec {spec.rtpmap}")
        if entry.factory is None:
            raise CodecError(f"{spec.rtpmap} is not an audio codec (RFC 4733 events go to rtpcore.dtmf)")
        # An unavailable codec's factory raises CodecUnavailableError with the install hint.
        return entry.factory(spec)


def create(spec: CodecSpec, registry: CodecRegistry | None = None) -> Codec:
    """Build a codec from an SDP description with the default (or a given) registry."""
    return (registry or CodecRegistry.default()).create(spec)
