"""Linear scales and round tick values for the console's SVG charts."""

import math
from dataclasses import dataclass


def nice_ticks(high: float, count: int = 5) -> list[float]:
    """About ``count`` round values from 0 to at least ``high`` (1, 2 or 5 times 10^n apart)."""
    if high <= 0:
        return [0.0, 1.0]
    raw = high / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    ticks = [0.0]
    while ticks[-1] < high:
        ticks.append(round(ticks[-1] + step, 12))
    return ticks


@dataclass(frozen=True, slots=True)
class Scale:
    """Maps ``[0, high]`` onto ``[start, start + length]`` (``flip``: high at the start)."""

    high: float
    start: float
    length: float
    flip: bool = False

    def __call__(self, value: float) -> float:
        """The coordinate of ``value`` (rounded to 0.1 px)."""
        share = value / self.high if self.high > 0 else 0.0
        offset = self.length * (1 - share if self.flip else share)
        return round(self.start + offset, 1)


def fmt_ms(value_ms: float) -> str:
    """``0.4 ms``, ``12 ms``, ``1.25 s`` — a duration label."""
    if value_ms >= 1000:
        return f"{value_ms / 1000:.3g} s"
    if value_ms >= 10:
        return f"{value_ms:.0f} ms"
    return f"{value_ms:.2g} ms"


def fmt_count(value: float) -> str:
    """``950``, ``1.2k``, ``3.4M`` — an axis label for counts."""
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:.3g}"
