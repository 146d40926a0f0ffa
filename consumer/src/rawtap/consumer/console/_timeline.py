"""The stream timeline: every chunk's arrival time and size, TTFT and the long gaps.

Geometry only (numbers and labels); the template draws it as inline SVG, so no
script is needed and every label is escaped like the rest of the page.
"""

import statistics
from dataclasses import dataclass, field
from itertools import pairwise

from rawtap.consumer.console._scale import Scale, fmt_ms, nice_ticks
from rawtap.shared import Record

WIDTH, HEIGHT = 960, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 36
MARK_LIMIT = 10_000
"""Chunks drawn one mark each; a longer stream is drawn in :data:`MARK_LIMIT` bins."""
GAP_MARKS = 5
"""The longest gaps marked (each at least :data:`GAP_FLOOR_MS` and 5 times the median gap)."""
GAP_FLOOR_MS = 50.0


@dataclass(frozen=True, slots=True)
class Mark:
    """One chunk (or bin of chunks): where it is drawn and what its tooltip says."""

    x: float
    y: float
    height: float
    title: str


@dataclass(frozen=True, slots=True)
class Gap:
    """A long pause between two chunks, drawn as a band with its length."""

    x: float
    width: float
    label: str


@dataclass(frozen=True, slots=True)
class Tick:
    """An axis tick: its coordinate and label."""

    at: float
    label: str


@dataclass(frozen=True, slots=True)
class Timeline:
    """What the template draws for one streamed record."""

    marks: list[Mark]
    gaps: list[Gap]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    chunks: int
    binned: bool
    ttft_x: float | None = None
    ttft_label: str = ""
    first_byte_x: float | None = None
    end_x: float | None = None
    summary: list[tuple[str, str]] = field(default_factory=list)
    width: int = WIDTH
    height: int = HEIGHT
    plot_top: int = TOP
    plot_bottom: int = HEIGHT - BOTTOM
    plot_left: int = LEFT
    plot_right: int = WIDTH - RIGHT


def _bins(times: list[float], sizes: list[int]) -> tuple[list[float], list[int], list[int]]:
    """Chunks summed into MARK_LIMIT time bins: (start, bytes, chunks) of each non-empty bin."""
    end = times[-1] or 1.0
    width = end / MARK_LIMIT
    totals: dict[int, tuple[int, int]] = {}
    for t, s in zip(times, sizes, strict=True):
        i = min(int(t / width), MARK_LIMIT - 1)
        b, n = totals.get(i, (0, 0))
        totals[i] = (b + s, n + 1)
    keys = sorted(totals)
    return [k * width for k in keys], [totals[k][0] for k in keys], [totals[k][1] for k in keys]


def timeline(record: Record, ttft_ns: int | None) -> Timeline | None:
    """The timeline of ``record``'s chunks, or None when it has none."""
    if not record.chunks:
        return None
    times = [c.offset_ns / 1e6 for c in record.chunks]
    sizes = [c.size for c in record.chunks]
    ends = [t for t in (times[-1], (record.ended_ns or 0) / 1e6) if t]
    high = max([*ends, 1e-3])
    ticks = nice_ticks(high)
    x = Scale(ticks[-1], LEFT, WIDTH - LEFT - RIGHT)
    binned = len(times) > MARK_LIMIT
    counts = [1] * len(times)
    if binned:
        times, sizes, counts = _bins(times, sizes)
    size_ticks = nice_ticks(max(sizes))
    y = Scale(size_ticks[-1], TOP, HEIGHT - TOP - BOTTOM, flip=True)
    base = HEIGHT - BOTTOM
    marks = []
    for i, (t, s, n) in enumerate(zip(times, sizes, counts, strict=True)):
        top = min(y(s), base - 1)
        what = f"{n:,} chunks" if binned else f"chunk {i + 1}"
        marks.append(Mark(x(t), top, round(base - top, 1), f"{what}: +{fmt_ms(t)}, {s:,} bytes"))
    gaps = _gaps(times if not binned else [c.offset_ns / 1e6 for c in record.chunks], x)
    summary = [
        ("chunks", f"{len(record.chunks):,}"),
        ("bytes", f"{sum(c.size for c in record.chunks):,}"),
        ("first chunk", fmt_ms(record.chunks[0].offset_ns / 1e6)),
        ("last chunk", fmt_ms(record.chunks[-1].offset_ns / 1e6)),
    ]
    if ttft_ns is not None:
        summary.insert(2, ("TTFT", fmt_ms(ttft_ns / 1e6)))
    if gaps:
        summary.append(("longest gap", gaps[0].label))
    return Timeline(
        marks=marks,
        gaps=gaps,
        x_ticks=[Tick(x(t), fmt_ms(t)) for t in ticks],
        y_ticks=[Tick(y(s), f"{s:,.0f} B") for s in size_ticks],
        chunks=len(record.chunks),
        binned=binned,
        ttft_x=x(ttft_ns / 1e6) if ttft_ns is not None else None,
        ttft_label=f"TTFT {fmt_ms(ttft_ns / 1e6)}" if ttft_ns is not None else "",
        first_byte_x=x(record.first_byte_ns / 1e6) if record.first_byte_ns is not None else None,
        end_x=x(record.ended_ns / 1e6) if record.ended_ns else None,
        summary=summary,
    )


def _gaps(times: list[float], x: Scale) -> list[Gap]:
    """The longest pauses between chunks, longest first."""
    if len(times) < 2:
        return []
    pauses = [(b - a, a, b) for a, b in pairwise(times)]
    median = statistics.median(p for p, _, _ in pauses)
    floor = max(GAP_FLOOR_MS, 5 * median)
    longest = sorted((g for g in pauses if g[0] >= floor), reverse=True)[:GAP_MARKS]
    return [Gap(x(a), round(x(b) - x(a), 1), f"{fmt_ms(p)} gap") for p, a, b in longest]
