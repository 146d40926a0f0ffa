"""How the ``rawtap`` CLI logs: text lines or one JSON object per line (``log_format``).

Both formats pass every line (tracebacks included) through
:func:`rawtap.shared.scrub_text`, so a URL's password never reaches the log.
"""

import json
import logging
import sys
from datetime import UTC, datetime

from rawtap.shared import scrub_text

LOG_LEVELS = ("debug", "info", "warning", "error")
"""The levels ``--log-level`` accepts (any case)."""

LOG_FORMATS = ("text", "json")
"""The formats ``--log-format`` / ``RAWTAP_LOG_FORMAT`` accept."""


class ScrubbingFormatter(logging.Formatter):
    """Text log lines with every URL's password hidden."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as text, scrubbed."""
        return scrub_text(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``message`` (+ ``exception``).

    The message and traceback are scrubbed before encoding; newlines in them are
    JSON-escaped, so one record is always one line.
    """

    def format(self, record: logging.LogRecord) -> str:
        """The record as a one-line JSON object, scrubbed."""
        doc: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": scrub_text(record.getMessage()),
        }
        if record.exc_info:
            doc["exception"] = scrub_text(self.formatException(record.exc_info))
        return json.dumps(doc, ensure_ascii=False)


def setup_logging(level: str, fmt: str = "text") -> None:
    """Log ``level`` and above to stderr as ``fmt`` (``text`` or ``json``), once per process."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if fmt == "json"
        else ScrubbingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    logging.basicConfig(level=level.upper(), handlers=[handler])
