"""Durations as people write them: ``30d``, ``12h``, ``90m``, ``45s``, ``2w``."""

import math
import re

from rawtap.shared._errors import ConfigError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)


def parse_duration(text: str) -> float:
    """Seconds in ``text`` (``30d``, ``12h``, ``90m``, ``45s``, ``2w``; a number and one unit).

    Raises :class:`~rawtap.shared.ConfigError` for anything else.
    """
    match = _PATTERN.match(text)
    if match is None:
        raise ConfigError(
            f"bad duration {text!r}: use a number and a unit, e.g. 30d, 12h, 90m, 45s, 2w"
        )
    seconds = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if seconds <= 0:
        raise ConfigError(f"bad duration {text!r}: must be greater than zero")
    if not math.isfinite(seconds):
        raise ConfigError(f"bad duration {text!r}: too long to count")
    return seconds
