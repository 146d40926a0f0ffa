"""Throughput versus shards and workers, on a local 3-primary Redis Cluster.

    python bench/cluster_scaling.py [--records 20000] [--shards 1,4,8] [--workers 1,2,4]
        [--postgres postgresql://postgres@127.0.0.1:5432/test]
        [--out bench/results/cluster_scaling.md]

Run from the repository root (it starts its cluster with tests/support/cluster.py).
Everything shares this machine's cores: the figures are per-core costs and
ratios within one run, which docs/scaling.md turns into a capacity model.

1. **Producer**: one Recorder sends N ~2 KB records to S shards; its
   records/s and its CPU per record (writer thread included), and the Redis
   primaries' CPU per ``XADD`` (``INFO cpu``), to the cluster and to one
   plain redis-server.
2. **Workers**: N records preloaded over S shards, then W ``rawtap worker``
   processes drain them into PostgreSQL (a schema per case); records/s from
   the first row to the last, the workers' CPU per record (``/proc``), the
   Redis primaries' (reads, acks, claims) and the whole machine's CPU per
   record (``/proc/stat``: workers + Redis + PostgreSQL).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis
from psycopg import sql

from rawtap.consumer import open_sink
from rawtap.producer import Recorder

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.cluster import LocalCluster, local_cluster
from tests.support.services import private_redis

BODY = (
    b'{"id":"chatcmpl-x","object":"chat.completion","choices":[{"message":{"content":"'
    + (b"x" * 1900)
    + b'"}}]}'
)
TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class ProducerRun:
    target: str
    shards: int
    records_per_s: float
    producer_cpu_us: float
    redis_cpu_us: float


@dataclass
class WorkerRun:
    shards: int
    workers: int
    records_per_s: float
    worker_cpu_us: float
    redis_cpu_us: float
    machine_cpu_us: float


def _redis_cpu(ports: list[int]) -> float:
    total = 0.0
    for port in ports:
        with redis.Redis(port=port) as c:
            info = c.info("cpu")
            total += float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    return total


def _machine_busy() -> float:
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / TICK


def _proc_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / TICK


def produce(url: str, prefix: str, shards: int, records: int, spill: str) -> Recorder:
    recorder = Recorder(
        redis_url=url, stream_prefix=prefix, shards=shards, spill_dir=spill, close_timeout_s=60
    )
    for i in range(records):
        recorder.record("openai", BODY, {"i": i}, f"session-{i % 997}")
    return recorder


def bench_producer(
    url: str, ports: list[int], target: str, shards: int, records: int, spill: str
) -> ProducerRun:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    warm = produce(url, prefix + "w", shards, 2000, spill)
    warm.close()
    cpu0, redis0, t0 = time.process_time(), _redis_cpu(ports), time.perf_counter()
    recorder = produce(url, prefix, shards, records, spill)
    assert recorder.flush(120), "the producer did not flush"
    elapsed = time.perf_counter() - t0
    cpu, redis_cpu = time.process_time() - cpu0, _redis_cpu(ports) - redis0
    recorder.close()
    assert recorder.stats().sent == records, recorder.stats()
    return ProducerRun(
        target, shards, records / elapsed, cpu / records * 1e6, redis_cpu / records * 1e6
    )


@contextlib.contextmanager
def pg_schema(base: str) -> Iterator[str]:
    name = f"rawtap_bench_{uuid.uuid4().hex[:10]}"
    url = base + ("&" if "?" in base else "?") + f"schema={name}"
    try:
        yield url
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def bench_workers(
    cluster: LocalCluster, postgres: str, shards: int, workers: int, records: int, spill: str
) -> WorkerRun:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    ports = [n.port for n in cluster.primaries()]
    recorder = produce(cluster.url, prefix, shards, records, spill)
    assert recorder.flush(120)
    recorder.close()
    with pg_schema(postgres) as sink_url:
        open_sink(sink_url, migrate=True).close()
        env = {
            **os.environ,
            "RAWTAP_REDIS_URL": cluster.url,
            "RAWTAP_STREAM_PREFIX": prefix,
            "RAWTAP_SHARDS": str(shards),
            "RAWTAP_SINK_URL": sink_url,
            "RAWTAP_BLOCK_MS": "200",
        }
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "from rawtap.consumer.cli import main; main()",
                    "worker",
                    "--consumer",
                    f"b{n}",
                    "--log-level",
                    "WARNING",
                ],
                env=env,
            )
            for n in range(workers)
        ]
        try:
            with open_sink(sink_url) as sink:
                while sink.count() == 0:
                    time.sleep(0.005)
                start_count, t0, busy0 = sink.count(), time.perf_counter(), _machine_busy()
                cpu0 = sum(_proc_cpu(p.pid) for p in procs)
                redis0 = _redis_cpu(ports)
                while sink.count() < records + 1:  # + the producer's report is not a row
                    if sink.count() >= records:
                        break
                    time.sleep(0.01)
                elapsed = time.perf_counter() - t0
                busy = _machine_busy() - busy0
                cpu = sum(_proc_cpu(p.pid) for p in procs) - cpu0
                redis_cpu = _redis_cpu(ports) - redis0
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(30)
    done = records - start_count
    return WorkerRun(
        shards, workers, done / elapsed, cpu / done * 1e6, redis_cpu / done * 1e6, busy / done * 1e6
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--shards", default="1,4,8")
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--out", default="bench/results/cluster_scaling.md")
    args = parser.parse_args()
    shard_counts = [int(s) for s in args.shards.split(",")]
    worker_counts = [int(w) for w in args.workers.split(",")]
    producers: list[ProducerRun] = []
    runs: list[WorkerRun] = []
    with tempfile.TemporaryDirectory() as spill:
        with private_redis() as single:
            for shards in shard_counts:
                producers.append(
                    bench_producer(
                        single.url, [single.port], "1 redis-server", shards, args.records, spill
                    )
                )
                print(producers[-1], flush=True)
        with local_cluster() as cluster:
            ports = [n.port for n in cluster.primaries()]
            for shards in shard_counts:
                producers.append(
                    bench_producer(
                        cluster.url, ports, "cluster, 3 primaries", shards, args.records, spill
                    )
                )
                print(producers[-1], flush=True)
            for shards in shard_counts:
                for workers in worker_counts:
                    runs.append(
                        bench_workers(cluster, args.postgres, shards, workers, args.records, spill)
                    )
                    print(runs[-1], flush=True)
    report = render(args.records, producers, runs)
    Path(args.out).write_text(report)
    print(report)


def render(records: int, producers: list[ProducerRun], runs: list[WorkerRun]) -> str:
    lines = [
        "# Throughput versus shards and workers (bench/cluster_scaling.py)",
        "",
        f"{records:,} records of ~2 KB (2,011-byte body) per case, measured on "
        f"{time.strftime('%Y-%m-%d')} on this machine: {os.cpu_count()} cores shared by "
        f"everything (producer, 3 Redis primaries + 3 replicas, workers, PostgreSQL), "
        f"Python {platform.python_version()}. Noisy shared machine: compare within the run.",
        "",
        "## Producer → Redis (one Recorder, one writer thread)",
        "",
        "| target | shards | records/s | producer CPU µs/record | Redis CPU µs/XADD |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {p.target} | {p.shards} | {p.records_per_s:,.0f} | {p.producer_cpu_us:.1f} | "
        f"{p.redis_cpu_us:.1f} |"
        for p in producers
    ]
    lines += [
        "",
        "Redis CPU includes replicating to the replicas (primaries only are counted).",
        "",
        "## Redis Cluster → workers → PostgreSQL (COPY), preloaded streams",
        "",
        "| shards | workers | records/s | worker CPU µs/record | Redis CPU µs/record "
        "| machine CPU µs/record |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r.shards} | {r.workers} | {r.records_per_s:,.0f} | {r.worker_cpu_us:.1f} | "
        f"{r.redis_cpu_us:.1f} | {r.machine_cpu_us:.1f} |"
        for r in runs
    ]
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
