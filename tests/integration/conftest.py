"""Stores for the integration tests: SQLite files and PostgreSQL schemas of their own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

STORE_KINDS = ["sqlite", "postgresql", "postgresql-day"]


def with_params(url: str, **params: str) -> str:
    """``url`` with query parameters added."""
    extra = "&".join(f"{k}={v}" for k, v in params.items())
    return url + ("&" if "?" in url else "?") + extra


@pytest.fixture
def pg_schema(postgres_url: str) -> Iterator[str]:
    """A PostgreSQL schema no other test uses, dropped afterwards."""
    name = f"rawtap_test_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def _store_url(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path}/store.db"
    base: str = request.getfixturevalue("postgres_url")
    schema: str = request.getfixturevalue("pg_schema")
    if kind == "postgresql-day":
        return with_params(base, schema=schema, partition="day")
    return with_params(base, schema=schema)


@pytest.fixture(params=STORE_KINDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store URL: SQLite, PostgreSQL, PostgreSQL partitioned by day."""
    return _store_url(request.param, request, tmp_path)


@pytest.fixture(params=["sqlite", "postgresql"])
def sink_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store URL for end-to-end tests: SQLite and (unpartitioned) PostgreSQL."""
    return _store_url(request.param, request, tmp_path)
