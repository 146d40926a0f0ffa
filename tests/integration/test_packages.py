"""The distributions a user installs: built wheels and a clone, in fresh virtualenvs.

The commands are the ones README.md and docs/producer.md give, run with ``uv pip``
(same arguments as ``pip``, much faster); third-party dependencies come from the index.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# `uv run` names its own binary in $UV; otherwise the one on PATH.
_UV = os.environ.get("UV") or shutil.which("uv")
UV = [_UV] if _UV else ["uv"]
NAMES = ("rawtap-shared", "rawtap-producer", "rawtap-consumer", "rawtap-tools")
SDKS = ("openai", "anthropic", "google.genai")

pytestmark = [pytest.mark.timeout(600)]


def _run(*argv: str, cwd: Path = ROOT) -> str:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=500, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _venv(path: Path) -> Path:
    _run(*UV, "venv", "-q", "--python", sys.executable, str(path))
    return path / "bin" / "python"


def _pip(python: Path, *args: str, cwd: Path = ROOT) -> None:
    _run(*UV, "pip", "install", "-q", "--python", str(python), *args, cwd=cwd)


def _can_import(python: Path, module: str) -> bool:
    code = f"import importlib.util as u; print(u.find_spec({module!r}) is not None)"
    return _run(str(python), "-c", code).strip() == "True"


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if _UV is None:
        pytest.fail("uv is not on PATH: python3 -m pip install uv", pytrace=False)
    out = tmp_path_factory.mktemp("dist")
    _run(*UV, "build", "--all-packages", "-q", "--out-dir", str(out))
    return out


def test_each_wheel_carries_its_metadata_and_py_typed(dist: Path) -> None:
    for name in NAMES:
        module = name.replace("-", ".").replace("rawtap.", "rawtap/")
        (wheel,) = dist.glob(f"{name.replace('-', '_')}-0.1.0-py3-none-any.whl")
        with zipfile.ZipFile(wheel) as zf:
            files = set(zf.namelist())
            meta = zf.read(f"{name.replace('-', '_')}-0.1.0.dist-info/METADATA").decode()
        assert f"{module}/py.typed" in files
        assert f"{name.replace('-', '_')}-0.1.0.dist-info/licenses/LICENSE" in files
        assert "rawtap/__init__.py" not in files  # the namespace package stays shared
        assert "License-Expression: Apache-2.0" in meta
        assert "Project-URL: Source, https://github.com/rawtap/rawtap" in meta
        assert "Classifier: Typing :: Typed" in meta
        assert "Classifier: Programming Language :: Python :: 3.11" in meta
        if name != "rawtap-shared":
            assert "Requires-Dist: rawtap-shared==0.1.0" in meta  # one build goes together
    assert any(dist.glob("*.tar.gz"))


def test_producer_wheel_alone_then_the_consumer(dist: Path, tmp_path: Path) -> None:
    python = _venv(tmp_path / "venv")
    _pip(python, "--find-links", str(dist), "rawtap-producer")
    out = _run(
        str(python),
        "-c",
        "import importlib.metadata as m, rawtap.producer as p; "
        "print(p.ResponseRecorder.__name__, m.version('rawtap-producer'), "
        "m.metadata('rawtap-producer')['License-Expression'])",
    )
    assert out.split() == ["Recorder", "0.1.0", "Apache-2.0"]
    assert not _can_import(python, "rawtap.consumer")
    assert not _can_import(python, "psycopg")  # nothing of the consumer's came along
    _pip(python, "--find-links", str(dist), "rawtap-consumer")
    assert "Usage: rawtap" in _run(str(tmp_path / "venv" / "bin" / "rawtap"), "--help")


def test_producer_from_a_clone(tmp_path: Path) -> None:
    python = _venv(tmp_path / "venv")
    _pip(python, "./shared", "./producer")
    assert _can_import(python, "rawtap.producer")
    assert not _can_import(python, "rawtap.consumer")


def _rawtap(venv: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / "rawtap"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd="/",
    )


def test_consumer_wheel_alone_runs_a_worker_without_producer_sdks_or_tools(
    dist: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    python = _venv(venv)
    _pip(python, "--find-links", str(dist), "rawtap-consumer")
    for absent in ("rawtap.producer", "rawtap.tools", *SDKS):
        assert not _can_import(python, absent), f"{absent} came with rawtap-consumer"
    assert _can_import(python, "rawtap.consumer.worker")
    worker = _rawtap(venv, "worker", "--help")
    assert worker.returncode == 0, worker.stderr
    assert "--sink" in worker.stdout
    demo = _rawtap(venv, "demo", "--count", "5")
    assert demo.returncode == 2
    assert demo.stderr.count("\n") == 1, demo.stderr  # one line, no traceback
    assert "rawtap-tools" in demo.stderr
    assert _rawtap(venv, "replay").returncode == 2


def test_tools_wheel_installs_on_its_own_and_adds_demo_and_replay(
    dist: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    python = _venv(venv)
    _pip(python, "--find-links", str(dist), "rawtap-tools")
    probe = "from rawtap.tools import FakeProvider, ReplayServer, run_demo; print('ok')"
    assert _run(str(python), "-c", probe).strip() == "ok"
    for command in ("demo", "replay"):
        shown = _rawtap(venv, command, "--help")
        assert shown.returncode == 0, shown.stderr
        assert "rawtap-tools" not in shown.stdout  # the real command, not the hint
    assert "--count" in _rawtap(venv, "demo", "--help").stdout


def test_worker_and_cli_from_a_clone(tmp_path: Path) -> None:
    if _UV is None:
        pytest.fail("uv is not on PATH: python3 -m pip install uv", pytrace=False)
    venv = tmp_path / "venv"
    python = _venv(venv)
    _pip(python, "./shared", "./consumer")
    assert not _can_import(python, "rawtap.producer")
    assert _rawtap(venv, "stats", "--help").returncode == 0
