"""Stacked bar and line charts as geometry for inline SVG (no script, no chart library)."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rawtap.consumer.console._scale import Scale, fmt_count, nice_ticks

WIDTH, HEIGHT = 960, 200
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 12, 28
PALETTE = ("#2f6fb3", "#d9822b", "#3c9d5d", "#b54a4a", "#7b5ea7", "#8c6d46", "#c2559e", "#5f6b73")
"""Series colours, in order (the rest reuse them)."""


@dataclass(frozen=True, slots=True)
class Bar:
    """One rectangle of a stacked bar and its tooltip."""

    x: float
    y: float
    width: float
    height: float
    colour: str
    title: str


@dataclass(frozen=True, slots=True)
class Line:
    """One series of a line chart: its SVG ``points`` and legend."""

    points: str
    colour: str
    name: str
    dots: list[tuple[float, float, str]]
    """Each point as (x, y, tooltip): a lone point of a series is drawn too."""


@dataclass(frozen=True, slots=True)
class Axis:
    """Tick coordinates and labels of one axis."""

    ticks: list[tuple[float, str]]


@dataclass(frozen=True, slots=True)
class Chart:
    """What the template draws: bars or lines, both axes and a legend."""

    title: str
    bars: list[Bar]
    lines: list[Line]
    x_axis: Axis
    y_axis: Axis
    legend: list[tuple[str, str]]
    empty: bool
    width: int = WIDTH
    height: int = HEIGHT
    plot_left: int = LEFT
    plot_right: int = WIDTH - RIGHT
    plot_top: int = TOP
    plot_bottom: int = HEIGHT - BOTTOM


def _x_axis(labels: Sequence[str], slot: float) -> Axis:
    every = max(1, -(-len(labels) // 7))
    return Axis(
        [(round(LEFT + slot * (i + 0.5), 1), s) for i, s in enumerate(labels) if i % every == 0]
    )


def stacked_bars(
    title: str,
    labels: Sequence[str],
    series: dict[str, list[float]],
    unit: str = "",
) -> Chart:
    """Bars per label, stacked by series (``series[name][i]`` is label ``i``'s value)."""
    totals = [sum(values[i] for values in series.values()) for i in range(len(labels))]
    ticks = nice_ticks(max(totals, default=0))
    y = Scale(ticks[-1], TOP, HEIGHT - TOP - BOTTOM, flip=True)
    slot = (WIDTH - LEFT - RIGHT) / max(1, len(labels))
    bars = []
    legend = [(name, PALETTE[n % len(PALETTE)]) for n, name in enumerate(series)]
    below = [0.0] * len(labels)
    for n, (name, values) in enumerate(series.items()):
        colour = PALETTE[n % len(PALETTE)]
        for i, value in enumerate(values):
            if not value:
                continue
            top, bottom = y(below[i] + value), y(below[i])
            below[i] += value
            bars.append(
                Bar(
                    round(LEFT + slot * i + slot * 0.1, 1),
                    top,
                    round(max(slot * 0.8, 1.0), 1),
                    round(max(bottom - top, 0.5), 1),
                    colour,
                    f"{labels[i]} · {name}: {value:,.0f}{unit}",
                )
            )
    return Chart(
        title=title,
        bars=bars,
        lines=[],
        x_axis=_x_axis(labels, slot),
        y_axis=Axis([(y(t), fmt_count(t)) for t in ticks]),
        legend=legend,
        empty=not any(totals),
    )


def lines(
    title: str,
    labels: Sequence[str],
    series: dict[str, list[float | None]],
    label_of: Callable[[float], str] = fmt_count,
) -> Chart:
    """One polyline per series; a None value breaks nothing, the point is skipped."""
    values = [v for vs in series.values() for v in vs if v is not None]
    ticks = nice_ticks(max(values, default=0))
    y = Scale(ticks[-1], TOP, HEIGHT - TOP - BOTTOM, flip=True)
    slot = (WIDTH - LEFT - RIGHT) / max(1, len(labels))
    drawn = []
    legend = []
    for n, (name, points) in enumerate(series.items()):
        colour = PALETTE[n % len(PALETTE)]
        legend.append((name, colour))
        dots = [
            (round(LEFT + slot * (i + 0.5), 1), y(v), f"{labels[i]} · {name}: {label_of(v)}")
            for i, v in enumerate(points)
            if v is not None
        ]
        coords = " ".join(f"{x},{y_}" for x, y_, _ in dots)
        drawn.append(Line(coords, colour, name, dots))
    return Chart(
        title=title,
        bars=[],
        lines=drawn,
        x_axis=_x_axis(labels, slot),
        y_axis=Axis([(y(t), label_of(t)) for t in ticks]),
        legend=legend,
        empty=not values,
    )
