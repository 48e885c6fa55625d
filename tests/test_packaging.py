"""Configuration that must stay in agreement: conda environments, Binder, OSC scripts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _deps(path: Path) -> tuple[set[str], set[str]]:
    data = yaml.safe_load(path.read_text())
    conda, pip = set(), set()
    for dep in data["dependencies"]:
        if isinstance(dep, dict):
            pip |= {d for d in dep["pip"] if not d.startswith("-e")}
        else:
            conda.add(dep)
    return conda, pip


def test_binder_and_root_environments_agree():
    """The same dependencies, except that Binder (no GPU) asks for PyTorch's CPU build."""
    root, binder = _deps(ROOT / "environment.yml"), _deps(ROOT / "binder" / "environment.yml")
    assert root[1] == binder[1]
    assert {d.replace("pytorch>", "pytorch-cpu>") for d in root[0]} == binder[0]


def test_pyproject_dependencies_are_in_the_environment():
    import tomllib
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    conda, pip = _deps(ROOT / "environment.yml")
    names = {d.split(">")[0].split("=")[0].split("<")[0].split("[")[0] for d in conda | pip}
    aliases = {"duckdb": "python-duckdb", "torch": "pytorch", "matplotlib": "matplotlib-base",
               "huggingface-hub": "huggingface_hub"}
    for dep in project["dependencies"]:
        name = dep.split(">")[0].split("<")[0].split("=")[0].split("[")[0].strip()
        assert aliases.get(name, name) in names, f"{name} is in pyproject.toml but not environment.yml"


def test_binder_postbuild_installs_the_package():
    text = (ROOT / "binder" / "postBuild").read_text()
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert lines[0] == "set -e" and "pip install" in text and "bioclip-nb demo" in text
    assert (ROOT / "binder" / "postBuild").stat().st_mode & 0o111


def test_readme_badge_opens_the_dashboard_in_voila():
    readme = (ROOT / "README.md").read_text()
    assert "mybinder.org/v2/gh/" in readme and "urlpath=voila/render/notebooks/dashboard.ipynb" in readme


def test_osc_batch_script_is_valid_bash():
    script = ROOT / "docs" / "osc" / "bioclip-nb-dashboard.sbatch"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    text = script.read_text()
    assert "#SBATCH --account" in text and "bioclip-nb dashboard" in text and "BIOCLIP_NB_ATLAS" in text
