"""environment.yml (conda) and pyproject.toml (pip) list the same dependencies;
.ci/run calls exactly the README's test command."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def normalize(requirement: str) -> tuple[str, str]:
    name, spec = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", requirement.strip()).groups()
    return name.lower().replace("_", "-"), spec.replace(" ", "")


def test_environment_yml_matches_pyproject():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pip_deps = dict(normalize(d) for d in pyproject["project"]["dependencies"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda_deps = {}
    for entry in env["dependencies"]:
        if isinstance(entry, dict):
            entries = [e for e in entry["pip"] if not e.startswith("-e")]
        else:
            entries = [entry]
        for item in entries:
            name, spec = normalize(item.replace("=", "==", 1) if re.match(
                r"^[\w.-]+=[^=<>]", item) else item)
            if name not in ("python", "pip"):
                conda_deps[name] = spec
    assert conda_deps == pip_deps


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    commands = [line.strip() for line in ci.splitlines()
                if line.strip() and not line.startswith(("#", "set ", "cd "))]
    assert commands == ["make test"]
    assert "make test" in readme
