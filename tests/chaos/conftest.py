"""Fixtures for the chaos suite: every scenario gets its own redis-server."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.chaos import Chaos
from tests.support.services import RedisServer, free_port


@pytest.fixture
def chaos(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Chaos]:
    """A private Redis (``@pytest.mark.redis_args(...)`` adds server flags) and a pipeline."""
    marker = request.node.get_closest_marker("redis_args")
    args = list(marker.args) if marker else []
    with tempfile.TemporaryDirectory(prefix="rawtap-chaos-redis-") as workdir:
        server = RedisServer(free_port(), workdir, args).start()
        pipeline = Chaos(server, f"chaos-{uuid.uuid4().hex[:8]}", tmp_path)
        try:
            yield pipeline
        finally:
            pipeline.close()
            server.kill()
