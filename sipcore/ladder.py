"""Message ladder diagrams: the picture every SIP textbook draws, from a trace.

A trace is a list of :class:`LadderEntry` (time, sender, receiver, label). The renderer
places one column per party in order of first appearance and draws one arrow per
message, so a call reads top to bottom::

      0.000  127.0.0.1:5060         127.0.0.1:5070
             |--- INVITE ------------->|
      0.002  |<-- 100 Trying ----------|
      0.010  |<-- 180 Ringing ---------|

Pure formatting: no I/O, no clock. Used by ``python -m sipcore ... --trace`` and by the
``voice-sdk`` demo summary.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["LadderEntry", "label_for", "render_ladder"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LadderEntry:
    time: float
    """Seconds (any origin; the first entry is shown as 0.000)."""
    src: str
    """Sending party, e.g. ``"127.0.0.1:5060"`` or ``"alice"``."""
    dst: str
    """Receiving party."""
    label: str
    """What travelled, e.g. ``"INVITE"`` or ``"200 OK (INVITE)"``."""


def label_for(first_line: str, cseq_method: str | None = None) -> str:
    """A short arrow label from a start line: ``INVITE sip:x SIP/2.0`` -> ``INVITE``,
    ``SIP/2.0 200 OK`` -> ``200 OK (INVITE)`` when the CSeq method is known."""
    parts = first_line.strip().split(" ", 2)
    if parts and parts[0].upper().startswith("SIP/"):
        status = " ".join(parts[1:3]).strip()
        return f"{status} ({cseq_method})" if cseq_method else status
    return parts[0] if parts else "?"


def render_ladder(entries: Iterable[LadderEntry], *, column_width: int = 26, max_parties: int = 6) -> str:
    """Render entries as an ASCII ladder; parties beyond ``max_parties`` share the last column."""
    items: Sequence[LadderEntry] = list(entries)
    if not items:
        return "(no messages)"
    parties: list[str] = []
    for e in items:
        for p in (e.src, e.dst):
            if p not in parties and len(parties) < max_parties:
                parties.append(p)

    def col(p: str) -> int:
        return parties.index(p) if p in parties else len(parties) - 1

    width = max(column_width, max(len(e.label) for e in items) + 8)
    t0 = items[0].time
    margin = " " * 10
    header = margin + "".join(p[: width - 1].ljust(width) for p in parties)
    lines = [header.rstrip()]
    for e in items:
        a, b = col(e.src), col(e.dst)
        cells = [" "] * (width * (len(parties) - 1) + 1)
        for i in range(len(parties)):
            cells[i * width] = "|"
        if a != b:
            lo, hi = sorted((a, b))
            start, end = lo * width + 1, hi * width
            span = end - start
            body = f" {e.label} "
            if a < b:
                arrow = ("--" + body).ljust(span - 1, "-") + ">"
            else:
                arrow = "<" + ("--" + body).ljust(span - 1, "-")
            arrow = arrow[:span]
            cells[start:end] = list(arrow)
        else:
            note = f"| {e.label}"
            pos = a * width
            cells[pos : pos + len(note)] = list(note)
        lines.append(f"{e.time - t0:9.3f} " + "".join(cells).rstrip())
    return "\n".join(lines)
