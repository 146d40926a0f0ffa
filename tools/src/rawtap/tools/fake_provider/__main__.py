"""``python -m rawtap.tools.fake_provider``: the fake provider as a process, for benchmarks.

Prints one line with its URL once it accepts connections, serves until
SIGINT or SIGTERM, then exits 0. It keeps no exchange log unless ``--keep``
says how many to keep (nothing else can read it from outside the process).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType

from rawtap.tools.fake_provider._scenario import options_help
from rawtap.tools.fake_provider._server import FakeProvider


def main(argv: list[str] | None = None) -> int:
    """Run the server until a signal stops it; the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m rawtap.tools.fake_provider",
        description="A local HTTP server that answers like OpenAI, Anthropic, Gemini and "
        "OpenRouter, byte for byte. The model name of a request picks its scenario.",
        epilog=options_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind (default: a free one)")
    parser.add_argument("--slow-ms", type=int, default=50, help="chunk delay of `slow` (ms)")
    parser.add_argument("--keep", type=int, default=0, help="exchanges to keep in memory")
    parser.add_argument("--debug", action="store_true", help="log every request on stderr")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    provider = FakeProvider(
        args.host, args.port, slow_ms=args.slow_ms, max_exchanges=args.keep
    ).start()

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    print(f"fake provider listening on {provider.url}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        provider.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
