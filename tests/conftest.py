"""Fixtures shared by every test: real Redis and PostgreSQL, never fakes.

Where a service comes from, in order:
1. ``RAWTAP_TEST_REDIS_URL`` / ``RAWTAP_TEST_POSTGRES_URL`` if set;
2. a testcontainers container when a Docker engine answers;
3. the local servers every development and CI machine runs
   (redis://127.0.0.1:6379/0, postgresql://postgres@127.0.0.1:5432/test).

A service that cannot be reached fails the test with a message saying how to
start it; nothing is ever skipped for a missing service. Each test gets its
own stream prefix and deletes its keys afterwards; the shared servers are
never flushed.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import redis

from tests.support.services import (
    DEFAULT_POSTGRES_URL,
    DEFAULT_REDIS_URL,
    docker_engine_answers,
    require_postgres,
    require_redis,
)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a reachable Redis (see the module docstring for where it comes from)."""
    url = os.environ.get("RAWTAP_TEST_REDIS_URL")
    if url is None and docker_engine_answers():
        from testcontainers.community.redis import RedisContainer

        with RedisContainer("redis:7.4-alpine") as container:
            host = container.get_container_host_ip()
            port = container.get_exposed_port(6379)
            yield require_redis(f"redis://{host}:{port}/0")
        return
    yield require_redis(url or DEFAULT_REDIS_URL)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a reachable PostgreSQL database."""
    url = os.environ.get("RAWTAP_TEST_POSTGRES_URL")
    if url is None and docker_engine_answers():
        from testcontainers.community.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver=None) as container:
            yield require_postgres(container.get_connection_url())
        return
    yield require_postgres(url or DEFAULT_POSTGRES_URL)


@pytest.fixture(autouse=True)
def _private_spill_dir(tmp_path: os.PathLike[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test's recorders spill into the test's own directory (``RAWTAP_SPILL_DIR``)."""
    monkeypatch.setenv("RAWTAP_SPILL_DIR", os.path.join(os.fspath(tmp_path), "spill"))


@pytest.fixture
def stream_prefix(redis_url: str) -> Iterator[str]:
    """A stream prefix no other test uses; its keys are deleted afterwards."""
    prefix = f"rawtaptest-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A plain redis-py client on the test Redis."""
    client = redis.Redis.from_url(redis_url, socket_timeout=10)
    yield client
    client.close()


@pytest.fixture
def sqlite_url(tmp_path: os.PathLike[str]) -> str:
    """A sink URL for a fresh SQLite file in the test's temporary directory."""
    return f"sqlite:///{os.fspath(tmp_path)}/rawtap.db"
