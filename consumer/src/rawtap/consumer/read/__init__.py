"""The read side: find, show, export and re-derive stored records; pipeline figures.

Everything here reads through a ``Store`` (never creates or migrates one) and,
for ``gather``, Redis: what ``rawtap list/show/export/rederive/stats`` print.
"""

from rawtap.consumer.read._read import (
    ExportReport,
    export_jsonl,
    export_parquet,
    format_time,
    iter_matching,
    jsonl_line,
    parse_time,
    rederive,
    render_show,
    resolve_record,
)
from rawtap.consumer.read._stats import PipelineFigures, gather
from rawtap.consumer.read._stats_report import (
    STATUS,
    StatsExit,
    document,
    error_document,
    totals,
    verdict,
)

__all__ = [
    "STATUS",
    "ExportReport",
    "PipelineFigures",
    "StatsExit",
    "document",
    "error_document",
    "export_jsonl",
    "export_parquet",
    "format_time",
    "gather",
    "iter_matching",
    "jsonl_line",
    "parse_time",
    "rederive",
    "render_show",
    "resolve_record",
    "totals",
    "verdict",
]
