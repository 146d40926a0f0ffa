"""The screenshots in docs/console.md: ``python -m tests.support.console_screenshots SINK DIR``.

Serves ``SINK`` with ``rawtap console`` and saves the calls page, a streamed
call and the overview as PNGs in ``DIR``, through the same Chromium the browser
tests drive.
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

from rawtap.consumer import open_sink
from rawtap.consumer.store import RecordQuery
from tests.support.console import CHROMIUM_ARGS, chromium_path, running_console


def shoot(sink_url: str, out: Path) -> list[Path]:
    """Save calls.png, call.png and overview.png of ``sink_url`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    with open_sink(sink_url, migrate=False, read_only=True) as store:
        anthropic = RecordQuery(stream=True, provider="anthropic", status_min=200, status_max=300)
        streamed = store.summaries(anthropic, limit=1)
    saved = []
    with running_console(sink_url) as console, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1360, "height": 900})
        for name, path, full in (
            ("calls", "calls", False),
            ("call", f"call?id={streamed[0].record_id}", False),
            ("overview", "overview?since=7d", True),
        ):
            page.goto(console.url + path)
            target = out / f"{name}.png"
            page.screenshot(path=str(target), full_page=full)
            saved.append(target)
        browser.close()
    return saved


if __name__ == "__main__":
    for saved_path in shoot(sys.argv[1], Path(sys.argv[2])):
        print(saved_path)
