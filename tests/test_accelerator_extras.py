"""The accelerator extras of pyproject.toml (`lazyrich[cuda12]`, ...) name extras that jax has.

Asked of the package index without installing anything (`pip install --dry-run --report`): the
newest jax the requirement allows and the oldest one (its lower bound) must both provide the
extra, so a renamed or dropped jax extra fails here instead of on a user's GPU machine. Skipped
only when the index cannot be reached. The full resolution of each extra (tens of seconds each,
CUDA wheels' metadata) is a slow test.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
ACCELERATOR_EXTRAS = ("cuda12", "cuda13", "tpu")


def _extras() -> dict[str, list[str]]:
    with open(ROOT / "pyproject.toml", "rb") as handle:
        return tomllib.load(handle)["project"]["optional-dependencies"]


def _dry_run(requirement: str, tmp_path: Path, no_deps: bool = True) -> list[dict]:
    report = tmp_path / "report.json"
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
               "--quiet", "--report", str(report), requirement]
    if no_deps:
        command.insert(5, "--no-deps")
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        if any(word in result.stderr for word in ("NewConnectionError", "Network is unreachable",
                                                   "Temporary failure in name resolution")):
            pytest.skip(f"package index unreachable: {result.stderr.strip()[-200:]}")
        raise AssertionError(f"pip could not resolve {requirement!r}: {result.stderr[-2000:]}")
    return json.loads(report.read_text())["install"]


def test_every_accelerator_extra_is_declared():
    extras = _extras()
    for name in ACCELERATOR_EXTRAS:
        (requirement,) = extras[name]
        parsed = Requirement(requirement)
        assert parsed.name == "jax" and parsed.extras == {name}, requirement
        assert any(spec.operator == ">=" for spec in parsed.specifier), requirement


@pytest.mark.parametrize("bound", ["newest", "oldest"])
def test_jax_provides_each_extra(tmp_path, bound):
    for name in ACCELERATOR_EXTRAS:
        parsed = Requirement(_extras()[name][0])
        if bound == "newest":
            pin = f"jax{parsed.specifier}"
        else:
            (lower,) = [s.version for s in parsed.specifier if s.operator == ">="]
            pin = f"jax=={lower}"
        (jax_wheel,) = _dry_run(pin, tmp_path)
        provided = jax_wheel["metadata"].get("provides_extra", [])
        assert name in provided, (f"jax {jax_wheel['metadata']['version']} ({bound} allowed by "
                                  f"{parsed}) has no extra {name!r}; it has {provided}")


@pytest.mark.slow
@pytest.mark.parametrize("name", ACCELERATOR_EXTRAS)
def test_extra_resolves_with_its_dependencies(tmp_path, name):
    installs = _dry_run(_extras()[name][0], tmp_path, no_deps=False)
    names = {item["metadata"]["name"].lower().replace("_", "-") for item in installs}
    expected = {"cuda12": "jax-cuda12-plugin", "cuda13": "jax-cuda13-plugin", "tpu": "libtpu"}
    assert expected[name] in names, sorted(names)
