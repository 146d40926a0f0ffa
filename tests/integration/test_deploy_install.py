"""The images' install step, run here as the Dockerfiles run it.

``deploy/install.sh`` installs a distribution and exactly uv.lock's versions into a
fresh virtual environment, as built wheels; this runs it for the worker image (and the
demo image's package set) and then uses what it installed, outside the source tree.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _locked_versions() -> dict[str, str]:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    return {p["name"]: p["version"] for p in lock["package"] if "version" in p}


def _install(venv: Path, *args: str) -> None:
    # `uv run` names its own binary in $UV; else the one on PATH.
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        pytest.fail("uv is not on PATH: python3 -m pip install uv", pytrace=False)
    env = {**os.environ, "PATH": f"{Path(uv).parent}:{os.environ['PATH']}"}
    env.pop("VIRTUAL_ENV", None)
    result = subprocess.run(
        ["sh", str(ROOT / "deploy" / "install.sh"), str(venv), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def _installed(venv: Path) -> dict[str, str]:
    out = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import importlib.metadata as m; "
            "print('\\n'.join(f'{d.name}=={d.version}' for d in m.distributions()))",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    ).stdout
    pairs = (line.split("==") for line in out.split())
    return {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in pairs}


def _dockerfile_install_args(name: str) -> list[str]:
    text = (ROOT / "deploy" / name).read_text()
    (args,) = re.findall(r"deploy/install\.sh (/\S+ rawtap-[\w-]+(?: [\w-]+)*)", text)
    return str(args).split()[1:]


@pytest.mark.parametrize("dockerfile", ["worker.Dockerfile", "demo.Dockerfile"])
def test_the_images_install_step_installs_exactly_the_lock(dockerfile: str, tmp_path: Path) -> None:
    args = _dockerfile_install_args(dockerfile)
    venv = tmp_path / "venv"
    _install(venv, *args)
    installed = _installed(venv)
    locked = _locked_versions()
    assert installed, "nothing installed"
    for name, version in installed.items():
        if name in ("pip", "setuptools", "wheel"):
            continue
        assert locked.get(name) == version, f"{name} {version} is not uv.lock's {locked.get(name)}"
    for tool in ("pytest", "ruff", "mypy", "faststream"):
        assert tool not in installed, f"{tool} is a dev tool, not for the image"
    if dockerfile == "worker.Dockerfile":
        assert {"brotli", "zstandard"} <= set(installed)  # the compression extra
        # What a worker runs and nothing else: no producer, no tools, no provider SDK.
        for extra in ("rawtap-producer", "rawtap-tools", "openai", "anthropic", "google-genai"):
            assert extra not in installed, f"{extra} is in the worker image"
        # The worker's entry point runs from the venv alone, away from the source tree.
        result = subprocess.run(
            [str(venv / "bin" / "rawtap"), "worker", "--help"],
            capture_output=True,
            text=True,
            cwd="/",
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "--sink" in result.stdout
        demo = subprocess.run(
            [str(venv / "bin" / "rawtap"), "demo"],
            capture_output=True,
            text=True,
            cwd="/",
            check=False,
        )
        assert demo.returncode == 2
        assert demo.stderr.count("\n") == 1
        assert "rawtap-tools" in demo.stderr
    else:
        assert {"openai", "anthropic", "google-genai", "opentelemetry-sdk"} <= set(installed)
        assert {"rawtap-tools", "rawtap-producer", "rawtap-consumer"} <= set(installed)
        probe = (
            "import rawtap.producer, rawtap.tools.fake_provider, openai, anthropic, google.genai,"
            " opentelemetry.sdk"
        )
        subprocess.run([str(venv / "bin" / "python"), "-c", probe], check=True, cwd="/")
    site = next((venv / "lib").glob("python3*/site-packages"))
    assert not list(site.glob("*rawtap*.pth")), "installed editable, bound to the source tree"
