"""Run the benchmark suite: ``python -m bench [--quick] [--only hot_path,worker] [--out DIR]``.

Every benchmark measures rawtap against a baseline in the same run and writes
``results.json`` and ``results.md`` (``quick.json``/``quick.md`` with ``--quick``)
into ``bench/results/`` (or ``--out``). A benchmark that fails is reported in
the files and makes the exit status 1; the others still run.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench import BENCHMARKS
from bench._common import (
    POSTGRES_URL,
    Figure,
    postgres_reachable,
    private_redis,
    redis_version,
)
from bench._report import machine, table, write


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run the selected benchmarks, write the results."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (the smoke test's mode)")
    parser.add_argument("--only", default="", help=f"comma-separated subset of {list(BENCHMARKS)}")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--postgres", default=POSTGRES_URL, help="PostgreSQL base URL")
    args = parser.parse_args(argv)

    selected = [b for b in args.only.split(",") if b] or list(BENCHMARKS)
    unknown = set(selected) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}; choose from {list(BENCHMARKS)}")
    info = machine()
    info["mode"] = "quick" if args.quick else "full"
    pg = args.postgres if postgres_reachable(args.postgres) else None
    if pg is not None:
        import psycopg

        with psycopg.connect(pg) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            info["postgres"] = row[0] if row else "?"
    figures: list[Figure] = []
    errors: dict[str, str] = {}
    started = time.monotonic()
    with private_redis() as redis_url:
        info["redis"] = redis_version(redis_url)
        for name in selected:
            run: Callable[..., list[Figure]] = BENCHMARKS[name]
            print(f"== {name}", flush=True)
            t = time.monotonic()
            try:
                got = run(redis_url=redis_url, quick=args.quick, postgres_url=pg)
            except Exception as e:
                traceback.print_exc()
                errors[name] = f"{type(e).__name__}: {e}"
                continue
            figures += got
            print(table(got), flush=True)
            print(f"   ({time.monotonic() - t:.0f} s)", flush=True)
    info["seconds"] = time.monotonic() - started
    # A partial full run (--only) is written apart from the committed full results.
    stem = "quick" if args.quick else ("partial" if args.only else "results")
    json_path, md_path = write(args.out, stem, figures, info, errors)
    print(f"\nwrote {json_path} and {md_path}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
