"""pyproject.toml, environment.yml and binder/ describe the same environment, and it installs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CONDA_TO_PYPI = {"pytorch": "torch"}
NOT_PACKAGES = {"python", "pip"}


def _split(requirement: str) -> tuple[str, str]:
    """'nbgrader>=0.9.6,<0.10' -> ('nbgrader', '>=0.9.6,<0.10'), markers dropped."""
    requirement = requirement.split(";")[0].split("#")[0].strip()
    match = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", requirement)
    name, spec = match.group(1).lower().replace("_", "-"), match.group(2).replace(" ", "")
    return CONDA_TO_PYPI.get(name, name), spec


def pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["triton"]
    reqs += project["optional-dependencies"]["models"]
    return dict(_split(r) for r in reqs)


def conda_requirements(path: Path) -> tuple[dict[str, str], str]:
    env = yaml.safe_load(path.read_text())
    assert env["channels"] == ["conda-forge"], f"{path}: use the conda-forge channel only"
    reqs, python = {}, None
    for dep in env["dependencies"]:
        entries = dep["pip"] if isinstance(dep, dict) else [dep]
        for entry in entries:
            name, spec = _split(entry)
            if name == "python":
                python = spec
            elif name not in NOT_PACKAGES:
                reqs[name] = spec
    return reqs, python


def test_pyproject_environment_and_binder_name_the_same_dependencies():
    want = pyproject_requirements()
    root_env, root_python = conda_requirements(ROOT / "environment.yml")
    binder_env, binder_python = conda_requirements(ROOT / "binder" / "environment.yml")
    assert root_env == want
    assert binder_env == want
    assert binder_python == "=3.12", "repo2docker defaults to Python 3.10: pin 3.12 in binder/"
    assert root_python == binder_python


def test_binder_layout():
    post_build = ROOT / "binder" / "postBuild"
    assert os.access(post_build, os.X_OK), "binder/postBuild must be executable"
    assert "pip install" in post_build.read_text()
    # a binder/ folder makes repo2docker ignore root-level config: nothing else may be needed
    assert sorted(p.name for p in (ROOT / "binder").iterdir()) == ["environment.yml", "postBuild"]


def test_repo2docker_picks_conda_with_python_312(tmp_path):
    exe = shutil.which("repo2docker", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("jupyter-repo2docker is not installed (it is part of the dev extra)")
    out = subprocess.run(
        [exe, "--no-build", "--debug", str(ROOT)], capture_output=True, text=True, timeout=300
    )
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert "Building conda environment for python=3.12" in text
    assert "binder/environment.yml" in text and "binder/postBuild" in text
    assert "RUN ./binder/postBuild" in text
    post_build = (ROOT / "binder" / "postBuild").read_text()
    assert 'default_url = "/lab/tree/course"' in post_build, "JupyterLab must be the default UI"


def test_everything_binder_asks_for_resolves_and_installs_here(tmp_path):
    """pip resolves every package binder/ names, for this platform, from the package index."""
    reqs = [
        f"{name}{spec}"
        for name, spec in conda_requirements(ROOT / "binder" / "environment.yml")[0].items()
    ]
    reqs = ["torch==2.13.0" if r.startswith("torch") else r for r in reqs]  # the local CPU build
    report = tmp_path / "report.json"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--report",
            str(report),
            *reqs,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    resolved = {
        item["metadata"]["name"].lower().replace("_", "-")
        for item in json.loads(report.read_text())["install"]
    }
    missing = {_split(r)[0] for r in reqs} - resolved
    assert not missing, f"not installable here: {missing}"


def test_attnlab_imports_and_works_without_triton():
    code = (
        "import sys; sys.modules['triton'] = None\n"
        "import attnlab, numpy as np\n"
        "out, w = attnlab.scaled_dot_product_attention(np.eye(3), np.eye(3), np.eye(3))\n"
        "assert np.allclose(w.sum(-1), 1)\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "ok", out.stderr
