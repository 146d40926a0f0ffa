"""Fixtures for the Redis Cluster scenarios: a fresh local cluster per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.chaos import Chaos
from tests.support.cluster import LocalCluster, local_cluster

SHARDS = 8


@pytest.fixture
def cluster() -> Iterator[LocalCluster]:
    """3 primaries + 3 replicas on free ports, state ok, killed afterwards."""
    with local_cluster() as c:
        yield c


@pytest.fixture
def cluster_chaos(cluster: LocalCluster, tmp_path: Path) -> Iterator[Chaos]:
    """A pipeline of 8 shards on the cluster: recorders and worker processes."""
    pipeline = Chaos(cluster, f"scale-{uuid.uuid4().hex[:8]}", tmp_path, shards=SHARDS)
    try:
        yield pipeline
    finally:
        pipeline.close()
