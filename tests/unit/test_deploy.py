"""docker-compose.yml, the Dockerfiles, the collector/Prometheus configs and the Kubernetes
manifests, checked without a Docker engine or a cluster.

Every file parses; every image is pinned; every file, port and service a
manifest names exists; every environment variable given to a rawtap process
is a setting the code reads (``RAWTAP_*`` fields, the SDK's ``OTEL_*`` names,
the demo's own) and its value passes the code's own validation; URLs point at
services and ports that the other side listens on.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import opentelemetry.sdk.environment_variables as otel_env
import pytest
import yaml
from pydantic import BaseModel

from rawtap.consumer.telemetry import TelemetrySettings, otel_configured
from rawtap.shared import ProducerSettings, StreamNames, WorkerSettings, load_settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"

RAWTAP_SERVICES = ("worker-1", "worker-2", "demo", "fake-provider")
DEMO_VARIABLES = {"FAKE_PROVIDER_URL", "DEMO_INTERVAL_S", "DEMO_ITERATIONS"}


def _settings_names(*classes: type[BaseModel]) -> set[str]:
    return {f"RAWTAP_{name.upper()}" for cls in classes for name in cls.model_fields}


WORKER_NAMES = _settings_names(WorkerSettings, TelemetrySettings)
PRODUCER_NAMES = _settings_names(ProducerSettings)
OTEL_NAMES = {v for k, v in vars(otel_env).items() if k.startswith("OTEL_") and isinstance(v, str)}


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return cast(dict[str, Any], _load(ROOT / "docker-compose.yml"))


def _services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return cast(dict[str, dict[str, Any]], compose["services"])


def _settings_from(cls: type, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """Build ``cls`` exactly as the process would, from these variables only."""
    import os

    for name in list(os.environ):
        if name.startswith(("RAWTAP_", "OTEL_")):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, str(value))
    return load_settings(cls)


def _image_pinned(image: str) -> bool:
    name, _, tag = image.rpartition(":")
    return bool(name) and bool(tag) and tag != "latest" and "/" not in tag


# -- every file ------------------------------------------------------------------------


def _yaml_files() -> Iterator[Path]:
    yield ROOT / "docker-compose.yml"
    yield from sorted(DEPLOY.rglob("*.yaml"))
    yield from sorted(DEPLOY.rglob("*.yml"))


@pytest.mark.parametrize("path", list(_yaml_files()), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_yaml_file_parses(path: Path) -> None:
    assert _docs(path)


# -- docker compose ----------------------------------------------------------------------


def test_compose_has_the_whole_stack_with_pinned_images(compose: dict[str, Any]) -> None:
    services = _services(compose)
    assert set(services) >= {
        "redis",
        "postgres",
        "worker-1",
        "worker-2",
        "otel-collector",
        "jaeger",
        "prometheus",
        "demo",
        "fake-provider",
    }
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        if "image" in service and "build" not in service:
            assert _image_pinned(service["image"]), f"{name}: pin {service['image']}"
    assert services["otel-collector"]["image"].startswith("otel/opentelemetry-collector-contrib:")
    redis_command = services["redis"]["command"]
    assert redis_command[redis_command.index("--appendonly") + 1] == "yes"
    workers = [s for n, s in services.items() if n.startswith("worker-")]
    assert len(workers) == 2
    assert len({w["environment"]["RAWTAP_CONSUMER"] for w in workers}) == 2


def test_compose_builds_mounts_and_dependencies_exist(compose: dict[str, Any]) -> None:
    services = _services(compose)
    for name, service in services.items():
        build = service.get("build")
        if build:
            context = ROOT / build["context"]
            assert context.is_dir(), name
            assert (context / build["dockerfile"]).is_file(), name
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith("."):
                assert (ROOT / source).is_file(), f"{name}: {source} missing"
            else:
                assert source in compose["volumes"], f"{name}: volume {source} undeclared"
            assert target.startswith("/")
        depends = service.get("depends_on", {})
        for dep in depends:
            assert dep in services, f"{name} depends on unknown {dep}"
            if isinstance(depends, dict) and depends[dep].get("condition") == "service_healthy":
                assert "healthcheck" in services[dep], f"{dep} has no healthcheck"
    collector = services["otel-collector"]
    mounted = {v.split(":")[1]: v.split(":")[0] for v in collector["volumes"]}
    config = collector["command"][0].removeprefix("--config=")
    assert mounted[config] == "./deploy/otel-collector.yaml"
    prometheus = services["prometheus"]
    mounted = {v.split(":")[1]: v.split(":")[0] for v in prometheus["volumes"]}
    config = prometheus["command"][0].removeprefix("--config.file=")
    assert mounted[config] == "./deploy/prometheus.yml"


def test_compose_environment_is_what_the_code_reads(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    services = _services(compose)
    demo_source = (DEPLOY / "demo" / "service.py").read_text()
    for name in RAWTAP_SERVICES:
        env = services[name].get("environment", {})
        known = OTEL_NAMES | (PRODUCER_NAMES | DEMO_VARIABLES if name == "demo" else WORKER_NAMES)
        unknown = set(env) - known
        assert not unknown, f"{name}: variables no code reads: {sorted(unknown)}"
        if name == "demo":
            for variable in DEMO_VARIABLES & set(env):
                assert f'"{variable}"' in demo_source
    for name in ("worker-1", "worker-2"):
        env = services[name]["environment"]
        settings = _settings_from(WorkerSettings, env, monkeypatch)
        telemetry = _settings_from(TelemetrySettings, env, monkeypatch)
        assert settings.consumer == name
        assert telemetry.telemetry == "auto"
        assert otel_configured(env)  # telemetry is on in the stack
        stop = int(services[name]["stop_grace_period"].removesuffix("s"))
        assert stop >= settings.block_ms / 1000 + telemetry.telemetry_flush_timeout_s + 10
    demo = services["demo"]["environment"]
    _settings_from(ProducerSettings, demo, monkeypatch)
    assert demo["OTEL_SERVICE_NAME"] == "demo-service"


def test_compose_urls_reach_listening_services(compose: dict[str, Any]) -> None:
    services = _services(compose)
    postgres = services["postgres"]["environment"]
    collector = _load(DEPLOY / "otel-collector.yaml")
    http_receiver = collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    for name in ("worker-1", "worker-2", "demo"):
        env = services[name]["environment"]
        redis = urlsplit(env["RAWTAP_REDIS_URL"])
        assert redis.hostname == "redis"
        assert redis.port == 6379
        otlp = urlsplit(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
        assert otlp.hostname == "otel-collector"
        assert otlp.port == int(http_receiver.rsplit(":", 1)[1])  # http/protobuf receiver
    for name in ("worker-1", "worker-2"):
        sink = urlsplit(services[name]["environment"]["RAWTAP_SINK_URL"])
        assert sink.hostname == "postgres"
        assert (sink.username, sink.password) == (
            postgres["POSTGRES_USER"],
            postgres["POSTGRES_PASSWORD"],
        )
        assert sink.path.lstrip("/") == postgres["POSTGRES_DB"]
    fake = services["fake-provider"]
    port = fake["command"][fake["command"].index("--port") + 1]
    assert fake["entrypoint"][-1] == "rawtap.tools.fake_provider"
    url = urlsplit(services["demo"]["environment"]["FAKE_PROVIDER_URL"])
    assert (url.hostname, str(url.port)) == ("fake-provider", port)
    assert port in fake["expose"]


def test_collector_and_prometheus_configs_agree(compose: dict[str, Any]) -> None:
    services = _services(compose)
    for config in (
        _load(DEPLOY / "otel-collector.yaml"),
        yaml.safe_load(_k8s_kind("ConfigMap", "otel-collector")["data"]["config.yaml"]),
    ):
        _check_collector(config)
    config = _load(DEPLOY / "otel-collector.yaml")
    jaeger = urlsplit("//" + config["exporters"]["otlp_grpc/jaeger"]["endpoint"])
    assert jaeger.hostname in services
    # Jaeger v2: OTLP on by default (the v1 line's COLLECTOR_OTLP_ENABLED is gone).
    assert services["jaeger"]["image"].startswith("jaegertracing/jaeger:2.")
    assert "environment" not in services["jaeger"]
    exporter_port = config["exporters"]["prometheus"]["endpoint"].rsplit(":", 1)[1]
    prometheus = _load(DEPLOY / "prometheus.yml")
    targets = [
        t
        for job in prometheus["scrape_configs"]
        for s in job["static_configs"]
        for t in s["targets"]
    ]
    assert f"otel-collector:{exporter_port}" in targets
    published = {p.split(":")[0] for p in services["otel-collector"]["ports"]}
    assert {"4317", "4318", exporter_port} <= published


def _check_collector(config: dict[str, Any]) -> None:
    for pipeline in config["service"]["pipelines"].values():
        for kind in ("receivers", "processors", "exporters"):
            for name in pipeline.get(kind, []):
                assert name in config[kind], f"{kind} {name} is used but not defined"
    assert set(config["service"]["pipelines"]) == {"traces", "metrics"}
    # collector 0.144+ names: `otlp`/`otlphttp` exporters are deprecated aliases.
    for exporter in config["exporters"]:
        assert exporter.split("/")[0] not in ("otlp", "otlphttp"), exporter
    for extension in config["service"].get("extensions", []):
        assert extension in config["extensions"]


# -- Dockerfiles -------------------------------------------------------------------------


def _instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


@pytest.mark.parametrize("name", ["worker.Dockerfile", "demo.Dockerfile"])
def test_dockerfiles_copy_what_exists_and_install_real_extras(name: str) -> None:
    steps = _instructions(DEPLOY / name)
    base = next(rest for kw, rest in steps if kw == "FROM")
    assert re.fullmatch(r"python:3\.1[1-9]-slim", base)
    for kw, rest in steps:
        if kw == "COPY":
            source = rest.split()[0]
            assert (ROOT / source).exists(), f"{name}: COPY {source}"
    # Installed from uv.lock by deploy/install.sh (tests/integration/test_deploy_install.py
    # runs it), with a pinned uv, and nothing else pip-installed.
    copied = [rest.split()[0] for kw, rest in steps if kw == "COPY"]
    assert "uv.lock" in " ".join(c for kw, c in steps if kw == "COPY")
    assert "deploy/install.sh" in copied
    # uv reads the whole workspace to install one member from the lock.
    members = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]
    assert {f"{m}/" for m in members["members"]} <= set(copied), name
    (run,) = [rest for kw, rest in steps if kw == "RUN"]
    assert re.search(r"pip install uv==\d+\.\d+\.\d+ ", run), run
    (install,) = re.findall(r"deploy/install\.sh (\S+) (rawtap-\w+)((?: [\w-]+)*)", run)
    member = install[1].removeprefix("rawtap-")
    meta = tomllib.loads((ROOT / member / "pyproject.toml").read_text())
    for extra in install[2].split():
        assert extra in meta["project"]["optional-dependencies"], (member, extra)
    assert f"ENV PATH={install[0]}/bin:$PATH" in {f"{kw} {rest}" for kw, rest in steps}
    assert any(kw == "STOPSIGNAL" and rest == "SIGTERM" for kw, rest in steps)


def test_docker_build_context_leaves_out_local_environments_and_data() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for pattern in ("**/.venv/", ".git/", "**/*.db", "**/__pycache__/"):
        assert pattern in ignored


def test_worker_image_runs_the_rawtap_console_script() -> None:
    steps = dict(_instructions(DEPLOY / "worker.Dockerfile"))
    consumer = tomllib.loads((ROOT / "consumer" / "pyproject.toml").read_text())
    assert steps["ENTRYPOINT"] == '["rawtap"]'
    assert "rawtap" in consumer["project"]["scripts"]
    assert steps["CMD"] == '["worker"]'


# -- Kubernetes ---------------------------------------------------------------------------


def _k8s_docs() -> list[dict[str, Any]]:
    kustomization = _load(K8S / "kustomization.yaml")
    docs = []
    for resource in kustomization["resources"]:
        assert (K8S / resource).is_file(), resource
        docs.extend(_docs(K8S / resource))
    return docs


def _k8s_kind(kind: str, name: str) -> dict[str, Any]:
    found = [d for d in _k8s_docs() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)}"
    return found[0]


def _secret_example(name: str = "rawtap-worker-secrets") -> dict[str, Any]:
    (secret,) = [d for d in _docs(K8S / "secret.example.yaml") if d["metadata"]["name"] == name]
    return secret


def test_k8s_documents_are_well_formed_and_images_pinned() -> None:
    docs = _k8s_docs()
    assert {d["kind"] for d in docs} >= {
        "ConfigMap",
        "StatefulSet",
        "Service",
        "ScaledObject",
        "TriggerAuthentication",
        "Deployment",
    }
    for doc in docs:
        assert doc["apiVersion"]
        assert doc["metadata"]["name"]
        for container in _containers(doc):
            assert _image_pinned(container["image"]), container["image"]
        if doc["kind"] in ("StatefulSet", "Deployment"):
            selector = doc["spec"]["selector"]["matchLabels"]
            labels = doc["spec"]["template"]["metadata"]["labels"]
            assert selector.items() <= labels.items()


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    if doc["kind"] not in ("StatefulSet", "Deployment"):
        return []
    return cast(list[dict[str, Any]], doc["spec"]["template"]["spec"]["containers"])


def test_k8s_worker_statefulset(monkeypatch: pytest.MonkeyPatch) -> None:
    workers = _k8s_kind("StatefulSet", "rawtap-worker")
    service = _k8s_kind("Service", workers["spec"]["serviceName"])
    assert service["spec"]["clusterIP"] == "None"
    pod = workers["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    consumer = tomllib.loads((ROOT / "consumer" / "pyproject.toml").read_text())
    assert container["image"] == f"rawtap-worker:{consumer['project']['version']}"
    assert container["args"] == ["worker"]
    refs = {next(iter(ref)): ref[next(iter(ref))]["name"] for ref in container["envFrom"]}
    config = _k8s_kind("ConfigMap", refs["configMapRef"])
    secret = _secret_example()
    assert secret["metadata"]["name"] == refs["secretRef"]
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["RAWTAP_CONSUMER"]["value"] == "$(POD_NAME)"
    # Every key the pod gets is a variable the worker reads, and its value is valid.
    keys = set(config["data"]) | set(secret["stringData"]) | set(env)
    extra = {"POD_NAME", "POD_NAMESPACE"}
    assert not keys - WORKER_NAMES - OTEL_NAMES - extra, keys - WORKER_NAMES - OTEL_NAMES - extra
    values = {**config["data"], **secret["stringData"], "RAWTAP_CONSUMER": "rawtap-worker-0"}
    settings = _settings_from(WorkerSettings, values, monkeypatch)
    telemetry = _settings_from(TelemetrySettings, values, monkeypatch)
    assert otel_configured(values)
    grace = pod["terminationGracePeriodSeconds"]
    assert grace >= settings.block_ms / 1000 + telemetry.telemetry_flush_timeout_s + 10
    # The OTLP endpoint is the collector Service, whose port leads to the http receiver.
    otlp = urlsplit(config["data"]["OTEL_EXPORTER_OTLP_ENDPOINT"])
    collector_service = _k8s_kind("Service", str(otlp.hostname))
    (port,) = [p for p in collector_service["spec"]["ports"] if p["port"] == otlp.port]
    collector = _k8s_kind("Deployment", "otel-collector")
    (ctr,) = _containers(collector)
    (container_port,) = [p for p in ctr["ports"] if p["name"] == port["targetPort"]]
    collector_config = yaml.safe_load(
        _k8s_kind("ConfigMap", "otel-collector")["data"]["config.yaml"]
    )
    http = collector_config["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    assert int(http.rsplit(":", 1)[1]) == container_port["containerPort"] == otlp.port


def test_k8s_keda_scales_the_workers_on_lag_and_pending_of_their_stream() -> None:
    scaled = _k8s_kind("ScaledObject", "rawtap-worker")
    target = scaled["spec"]["scaleTargetRef"]
    _k8s_kind(target["kind"], target["name"])
    config = _k8s_kind("ConfigMap", "rawtap-worker")["data"]
    stream = StreamNames(config["RAWTAP_STREAM_PREFIX"]).shard(0)
    kinds = set()
    keda_secret = _secret_example("rawtap-keda-secrets")
    for trigger in scaled["spec"]["triggers"]:
        assert trigger["type"] == "redis-streams"
        meta = trigger["metadata"]
        assert meta["stream"] == stream
        assert meta["consumerGroup"] == config["RAWTAP_GROUP"]
        if "lagCount" in meta:
            kinds.add("lag")
            assert "activationLagCount" in meta
        if "pendingEntriesCount" in meta:
            kinds.add("pending")
        auth = _k8s_kind("TriggerAuthentication", trigger["authenticationRef"]["name"])
        for ref in auth["spec"]["secretTargetRef"]:
            assert ref["name"] == keda_secret["metadata"]["name"]
            assert ref["key"] in keda_secret["stringData"]
    assert kinds == {"lag", "pending"}


def test_redis_acl_lines_name_the_streams_the_code_uses() -> None:
    lines = [
        line.split()
        for line in (K8S / "redis-acl.conf").read_text().splitlines()
        if line.startswith("user ")
    ]
    assert {words[1] for words in lines} == {
        "default",
        "rawtap-worker",
        "rawtap-producer",
        "rawtap-keda",
    }
    assert ["user", "default", "off"] in lines
    lines = [words for words in lines if words[1] != "default"]
    config = _k8s_kind("ConfigMap", "rawtap-worker")["data"]
    names = StreamNames(config["RAWTAP_STREAM_PREFIX"])
    for words in lines:
        patterns = [w[1:] for w in words if w.startswith("~")]
        assert patterns == [f"{config['RAWTAP_STREAM_PREFIX']}:*"]
        assert "-@all" in words
        for key in (names.shard(0), names.dead_letters):
            assert re.fullmatch(patterns[0].replace("*", ".*"), key)
