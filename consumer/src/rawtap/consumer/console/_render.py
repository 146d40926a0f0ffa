"""The console's Jinja environment: autoescaping on, and the filters its pages use."""

from pathlib import Path
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.templating import Jinja2Templates

from rawtap.consumer.console._scale import fmt_ms
from rawtap.consumer.read import format_time

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


def _ms(ns: int | None) -> str:
    return "-" if ns is None else fmt_ms(ns / 1e6)


def _dur(ms: float | None) -> str:
    return "-" if ms is None else fmt_ms(ms)


def _num(value: int | float | None) -> str:
    return "-" if value is None else f"{value:,}"


def _time(ns: int | None) -> str:
    return "-" if ns is None else format_time(ns)


def templates() -> Jinja2Templates:
    """Templates with every ``{{ }}`` escaped (bodies are attacker-controlled)."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(ms=_ms, dur=_dur, num=_num, time=_time, q=lambda v: quote(str(v), safe=""))
    return Jinja2Templates(env=env)
