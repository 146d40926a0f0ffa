"""The worker's decode stage alone: ``decode_entry`` with and without its msgspec fast path.

``python -m bench.decode`` times both paths in interleaved rounds (µs per
record, medians) on fixed sets of entries as a Recorder's writer thread makes
them: 2 KB chat completions and streamed ones of 100 chunks.
``python -m bench.decode --callgrind`` counts instructions per record instead,
under ``valgrind --tool=callgrind`` (deterministic, so a shared machine's load
does not blur it): only the decoding loop is counted (collection is toggled on
``functools.reduce``, which runs it), not the interpreter's start or the imports.

The pydantic path is ``decode_entry`` with the fast path switched off, which is
the release before it plus one call that answers None. Both run under the
worker's collector tuning (objects alive at the start frozen, a young
collection every 50,000 allocations), as in a worker's batch loop.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import reduce
from typing import Any

from bench._common import EntryFactory, Figure, interleave, time_figure

KINDS = ("2k", "streamed")
PATHS = ("pydantic", "fast")
STREAM_CHUNKS = 100


def entries(kind: str, n: int) -> list[dict[bytes, bytes]]:
    """``n`` distinct entries of one kind, as the writer thread serializes them."""
    if kind == "2k":
        return EntryFactory().make(n)
    from rawtap.producer._serialize import serialize

    pieces = [
        b'data: {"choices":[{"delta":{"content":"tok %d"}}]}\n\n' % i for i in range(STREAM_CHUNKS)
    ]
    details = {
        "status": 200,
        "method": "POST",
        "url": "https://api.openai.com/v1/chat/completions",
        "response_headers": [("content-type", "text/event-stream")],
        "chunks": pieces,
        "chunk_offsets_ns": [1_000_000 * (i + 1) for i in range(len(pieces))],
        "stream": True,
    }
    now = time.time_ns()
    return [
        serialize((seq, 0, (now, "openai", None, None, None, details)), "ab" * 8, "bench", 1 << 23)
        .entry
        for seq in range(n)
    ]  # fmt: skip


@contextmanager
def path(name: str) -> Iterator[Callable[[dict[bytes, bytes]], Any]]:
    """``decode_entry`` as shipped (``fast``) or with its fast path off (``pydantic``)."""
    import rawtap.shared._codec as codec  # noqa: TID251 - switched off to measure what it buys
    from rawtap.shared import decode_entry

    saved = codec._fast_record
    if name == "pydantic":
        codec._fast_record = lambda fields: None
    decode_entry(entries("2k", 1)[0])  # the fast path's first use imports msgspec
    threshold = gc.get_threshold()
    gc.freeze()  # as rawtap.consumer.worker tunes the collector for a run
    gc.set_threshold(50_000, *threshold[1:])
    try:
        yield decode_entry
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()
        codec._fast_record = saved


def _timed(
    decode: Callable[[dict[bytes, bytes]], Any], batch: Sequence[dict[bytes, bytes]]
) -> float:
    gc.collect()
    start = time.perf_counter()
    for fields in batch:
        decode(fields)
    return (time.perf_counter() - start) / len(batch) * 1e6


def timings(n: int, rounds: int) -> dict[str, dict[str, list[float]]]:
    """µs per record for each kind and path, one value per interleaved round."""
    out: dict[str, dict[str, list[float]]] = {}
    for kind in KINDS:
        batch = entries(kind, n)

        def variant(name: str, batch: list[dict[bytes, bytes]] = batch) -> Callable[[], float]:
            def run() -> float:
                with path(name) as decode:
                    return _timed(decode, batch)

            return run

        results = interleave([variant(p) for p in PATHS], rounds)
        out[kind] = dict(zip(PATHS, results, strict=True))
    return out


def run(quick: bool = False, **_: Any) -> list[Figure]:
    """The decode stage's figures: the fast path against the pydantic path, per kind."""
    n, rounds = (200, 3) if quick else (5_000, 9)
    figures = []
    for kind, got in timings(n, rounds).items():
        figures.append(
            time_figure(
                "decode",
                f"decode_entry, {kind} records",
                got["fast"],
                got["pydantic"],
                "pydantic path (fast path off)",
                unit="µs/record",
                note=f"{n} entries a round, {rounds} rounds",
            )
        )
    return figures


def _inner(name: str, kind: str, n: int) -> None:
    batch = entries(kind, n)
    with path(name) as decode:
        reduce(lambda _, fields: decode(fields), batch, None)  # counted: see the docstring


def instructions(n: int = 1_000) -> dict[tuple[str, str], int]:
    """Instructions per record of each (path, kind), counted by callgrind."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    out = {}
    for kind in KINDS:
        for name in PATHS:
            cmd = [
                valgrind, "--tool=callgrind", "--collect-atstart=no",
                "--toggle-collect=functools_reduce", "--callgrind-out-file=/dev/null",
                sys.executable, "-m", "bench.decode", "--inner", name, kind, str(n),
            ]  # fmt: skip
            done = subprocess.run(cmd, capture_output=True, text=True, check=True, env=os.environ)
            refs = next(line for line in done.stderr.splitlines() if "refs:" in line)
            out[name, kind] = int(refs.split()[-1].replace(",", "")) // n
    return out


def main(argv: list[str] | None = None) -> None:
    """Print the decode stage's cost per record (time, or instructions with ``--callgrind``)."""
    parser = argparse.ArgumentParser(prog="python -m bench.decode", description=__doc__)
    parser.add_argument("--callgrind", action="store_true", help="count instructions instead")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--inner", nargs=3, metavar=("PATH", "KIND", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.inner:
        name, kind, n = args.inner
        _inner(name, kind, int(n))
        return
    if args.callgrind:
        counts = instructions(200 if args.quick else 1_000)
        for kind in KINDS:
            slow, fast = counts["pydantic", kind], counts["fast", kind]
            print(f"{kind:9} pydantic {slow:8,} Ir/record  fast {fast:8,}  ({slow / fast:.2f}x)")
        return
    for figure in run(quick=args.quick):
        print(
            f"{figure.name:32} fast {figure.subject:6.2f} µs  pydantic {figure.baseline:6.2f} µs"
            f"  ({figure.ratio:.2f}x, {figure.ratio_min:.2f}-{figure.ratio_max:.2f})"
        )


if __name__ == "__main__":
    main()
