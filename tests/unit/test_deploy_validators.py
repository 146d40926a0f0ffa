"""Every file under deploy/ (and docker-compose.yml) passes the real validators of its kind.

- Kubernetes objects: the API server's own OpenAPI schemas (``kubernetes-validate``,
  strict: an unknown field fails) for the built-in kinds; KEDA's CRDs, as the typed models
  of ``cloudcoil-models-keda``, for ScaledObject and TriggerAuthentication (a field the
  CRD does not know fails, by round trip); every object a manifest refers to (ConfigMap,
  Secret and its keys, TriggerAuthentication, scale target) exists, in the set of files
  that is applied together, and no object is defined twice.
- docker-compose.yml: the Compose Specification's JSON schema (``check-jsonschema``).
- The Redis ACL file: loaded by a real ``redis-server --aclfile`` in
  tests/integration/test_deploy_acl.py; the images' install step is run by
  tests/integration/test_deploy_install.py.

``.ci/validate-deploy`` adds the validators that come from Debian's packages rather than
PyPI: ``docker-compose config`` and ``promtool check config``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from cloudcoil.models.keda.v1alpha1 import ScaledObject, TriggerAuthentication

from rawtap.shared import StreamNames

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
KUBERNETES_VERSION = "1.33.0"

# The files kubectl applies together: the kustomization (the StatefulSet variant) and
# the shard variant of keda-shards.yaml's header; both with the Secrets of
# secret.example.yaml, which are created out of band.
SHARDS_VARIANT = ["configmap.yaml", "keda-auth.yaml", "keda-shards.yaml", "otel-collector.yaml"]
SECRETS = "secret.example.yaml"

# What each file under deploy/ is checked by; a new file must be added here, with its check.
CHECKED_BY = {
    "deploy/install.sh": "tests/integration/test_deploy_install.py",
    "deploy/worker.Dockerfile": "test_deploy.py + test_deploy_install.py",
    "deploy/demo.Dockerfile": "test_deploy.py + test_deploy_install.py",
    "deploy/demo/service.py": "tests/integration/test_demo_stack.py",
    "deploy/otel-collector.yaml": "test_deploy.py (pipelines, ports)",
    "deploy/prometheus.yml": "test_deploy.py + promtool in .ci/validate-deploy",
    "deploy/kubernetes/README.md": "test_k8s_readme_names_what_exists",
    "deploy/kubernetes/redis-acl.conf": "tests/integration/test_deploy_acl.py",
    "deploy/kubernetes/kustomization.yaml": "test_kustomization_resources_exist",
    "deploy/kubernetes/configmap.yaml": "kubernetes-validate",
    "deploy/kubernetes/worker-statefulset.yaml": "kubernetes-validate",
    "deploy/kubernetes/otel-collector.yaml": "kubernetes-validate",
    "deploy/kubernetes/secret.example.yaml": "kubernetes-validate",
    "deploy/kubernetes/keda-auth.yaml": "KEDA CRD models",
    "deploy/kubernetes/keda-scaledobject.yaml": "KEDA CRD models",
    "deploy/kubernetes/keda-shards.yaml": "kubernetes-validate + KEDA CRD models",
}

# The trigger parameters KEDA's redis-streams and redis-cluster-streams scalers read
# (keda.sh docs, scalers/redis-streams); a misspelt one is ignored by KEDA, silently.
KEDA_REDIS_STREAMS_PARAMETERS = {
    "address",
    "addresses",
    "host",
    "hosts",
    "port",
    "ports",
    "addressFromEnv",
    "hostFromEnv",
    "portFromEnv",
    "usernameFromEnv",
    "passwordFromEnv",
    "stream",
    "consumerGroup",
    "pendingEntriesCount",
    "streamLength",
    "lagCount",
    "activationLagCount",
    "databaseIndex",
    "enableTLS",
    "unsafeSsl",
}
KEDA_MODELS: dict[str, Any] = {
    "ScaledObject": ScaledObject,
    "TriggerAuthentication": TriggerAuthentication,
}


def _docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def _manifests() -> list[str]:
    return sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def _kustomized() -> list[str]:
    resources: list[str] = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    return resources


def test_every_file_under_deploy_has_a_check() -> None:
    files = {
        str(p.relative_to(ROOT))
        for p in DEPLOY.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert files == set(CHECKED_BY), (
        f"unchecked: {sorted(files - set(CHECKED_BY))}, gone: {sorted(set(CHECKED_BY) - files)}"
    )


@pytest.mark.parametrize("name", _manifests())
def test_k8s_objects_pass_the_api_servers_schemas_strictly(name: str) -> None:
    for doc in _docs(name):
        if doc["apiVersion"].startswith("keda.sh/"):
            continue  # CRDs: below
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("name", _manifests())
def test_keda_objects_pass_keda_crds(name: str) -> None:
    for doc in _docs(name):
        if not doc["apiVersion"].startswith("keda.sh/"):
            continue
        model = KEDA_MODELS[doc["kind"]].model_validate(doc)
        # The models ignore unknown fields; a round trip that loses one shows it.
        assert model.model_dump(by_alias=True, exclude_unset=True, mode="json") == doc
        for trigger in doc.get("spec", {}).get("triggers", []):
            assert trigger["type"] in ("redis-streams", "redis-cluster-streams")
            unknown = set(trigger["metadata"]) - KEDA_REDIS_STREAMS_PARAMETERS
            assert not unknown, f"{name}: KEDA ignores {sorted(unknown)}"


def test_the_validators_refuse_what_they_should() -> None:
    """The two checks above would catch a misspelt field (they are not vacuous)."""
    (statefulset,) = [d for d in _docs("worker-statefulset.yaml") if d["kind"] == "StatefulSet"]
    statefulset["spec"]["replica"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(statefulset, KUBERNETES_VERSION, strict=True)
    (scaled,) = _docs("keda-scaledobject.yaml")
    scaled["spec"]["minReplicas"] = 1
    model = ScaledObject.model_validate(scaled)
    assert model.model_dump(by_alias=True, exclude_unset=True, mode="json") != scaled


def test_no_object_is_defined_twice() -> None:
    seen: dict[tuple[str, str], str] = {}
    for name in [*_manifests()]:
        for doc in _docs(name):
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in seen, f"{key} in {seen.get(key)} and {name}"
            seen[key] = name


def test_kustomization_resources_exist() -> None:
    for resource in _kustomized():
        assert (K8S / resource).is_file(), resource
    assert SECRETS not in _kustomized()  # Secrets are created out of band
    assert "keda-shards.yaml" not in _kustomized()  # the other variant


def _check_references(files: list[str]) -> None:
    objects = {
        (d["kind"], d["metadata"]["name"]): d for name in [*files, SECRETS] for d in _docs(name)
    }

    def secret_key(secret: str, key: str) -> None:
        assert ("Secret", secret) in objects, f"Secret {secret} missing"
        assert key in objects["Secret", secret]["stringData"], f"Secret {secret} has no {key}"

    for (kind, _name), doc in objects.items():
        if kind in ("Deployment", "StatefulSet"):
            for container in doc["spec"]["template"]["spec"]["containers"]:
                image = container["image"]
                assert ":" in image, image
                assert not image.endswith(":latest"), image
                for ref in container.get("envFrom", []):
                    if "configMapRef" in ref:
                        assert ("ConfigMap", ref["configMapRef"]["name"]) in objects, ref
                    if "secretRef" in ref:
                        assert ("Secret", ref["secretRef"]["name"]) in objects, ref
                for env in container.get("env", []):
                    key_ref = env.get("valueFrom", {}).get("secretKeyRef")
                    if key_ref:
                        secret_key(key_ref["name"], key_ref["key"])
        if kind == "ScaledObject":
            target = doc["spec"]["scaleTargetRef"]
            assert (target.get("kind", "Deployment"), target["name"]) in objects, target
            for trigger in doc["spec"]["triggers"]:
                auth = trigger["authenticationRef"]["name"]
                assert ("TriggerAuthentication", auth) in objects, auth
        if kind == "TriggerAuthentication":
            for ref in doc["spec"]["secretTargetRef"]:
                secret_key(ref["name"], ref["key"])


def test_the_kustomization_refers_only_to_what_it_or_the_secrets_define() -> None:
    _check_references(_kustomized())


def test_the_shard_variant_refers_only_to_what_it_or_the_secrets_define() -> None:
    header = (K8S / "keda-shards.yaml").read_text()
    assert " ".join(f"-f {name}" for name in SHARDS_VARIANT) in header
    _check_references(SHARDS_VARIANT)


def test_the_shard_variant_reads_and_scales_each_shard_on_its_own_stream() -> None:
    docs = _docs("keda-shards.yaml")
    (config,) = [d for d in docs if d["kind"] == "ConfigMap"]
    shards = int(config["data"]["RAWTAP_SHARDS"])
    (base,) = _docs("configmap.yaml")
    names = StreamNames(base["data"]["RAWTAP_STREAM_PREFIX"])
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    scaled = [d for d in docs if d["kind"] == "ScaledObject"]
    assert len(deployments) == len(scaled) == shards
    for k, obj in enumerate(sorted(scaled, key=lambda d: str(d["metadata"]["name"]))):
        target = deployments[obj["spec"]["scaleTargetRef"]["name"]]
        (container,) = target["spec"]["template"]["spec"]["containers"]
        assert container["args"] == ["worker", "--shards", str(k)]
        triggers = obj["spec"]["triggers"]
        assert {t["metadata"]["stream"] for t in triggers} == {names.shard(k)}
        assert {t["metadata"]["consumerGroup"] for t in triggers} == {base["data"]["RAWTAP_GROUP"]}
        assert any("lagCount" in t["metadata"] for t in triggers)
        assert any("pendingEntriesCount" in t["metadata"] for t in triggers)


def test_k8s_readme_names_what_exists() -> None:
    readme = (K8S / "README.md").read_text()
    for name in [*_manifests(), "redis-acl.conf", "kustomization.yaml"]:
        assert f"`{name}`" in readme, f"README.md does not describe {name}"
    for kind, name in [("Secret", d["metadata"]["name"]) for d in _docs(SECRETS)]:
        assert name in readme, f"README.md does not say how to create {kind} {name}"


def test_compose_file_passes_the_compose_specification() -> None:
    checker = Path(sys.executable).parent / "check-jsonschema"
    result = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(ROOT / "docker-compose.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
