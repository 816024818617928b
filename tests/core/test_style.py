"""The habits of the field, checked by the default run (so CI runs them): ruff's lint and
format check over the code base, mypy over the package, and the packaging list that a wheel
is built from (every package of `lstmgen/` listed, or the wheel lacks it)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import tomllib
from support import ROOT, require_module

CHECKED = ["lstmgen", "tests", "bench"]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "--output-format", "concise", *CHECKED],
        ["ruff", "format", "--check", *CHECKED],
    ],
    ids=["ruff-check", "ruff-format"],
)
def test_ruff(command):
    require_module("ruff")
    result = _run(*command)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_mypy():
    require_module("mypy")
    result = _run("mypy", "lstmgen")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_every_package_ships_in_the_wheel():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {
        ".".join(path.parent.relative_to(ROOT).parts)
        for path in (ROOT / "lstmgen").rglob("__init__.py")
    }
    assert on_disk <= listed, f"packages missing from pyproject.toml: {sorted(on_disk - listed)}"
