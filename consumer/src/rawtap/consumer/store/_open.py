"""open_sink: the store a URL names.

It lives apart from the protocols in ``_sink`` so that the protocol module does
not import the implementations (``sqlite/``, ``postgres/``, which import the protocols).
"""

from rawtap.consumer.store._sink import Store
from rawtap.consumer.store.postgres import PostgresSink
from rawtap.consumer.store.sqlite import SqliteSink
from rawtap.shared import ConfigError, display_url


def open_sink(url: str, *, migrate: bool = True, read_only: bool = False) -> Store:
    """Open the store a URL names.

    ``sqlite:///relative.db``, ``sqlite:////abs/path.db``, or
    ``postgresql://user@host/db?schema=rawtap&partition=day``. With
    ``migrate=False`` the schema is not created or upgraded: a store that is
    missing or out of date raises :class:`SinkError` saying to run ``rawtap migrate``.
    ``read_only=True`` implies that and opens the store read-only as well
    (SQLite ``mode=ro``, PostgreSQL read-only transactions): what the read commands use.
    """
    if url.startswith("sqlite://"):
        return SqliteSink.from_url(url, migrate=migrate, read_only=read_only)
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresSink.from_url(url, migrate=migrate, read_only=read_only)
    raise ConfigError(
        f"unknown sink URL {display_url(url)!r}; expected sqlite:///path.db or postgresql://host/db"
    )
