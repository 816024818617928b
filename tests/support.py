"""Test helpers: optional tools skip on a user's machine but fail in CI (CI=true)."""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent  # the repository
FIXTURES = Path(__file__).resolve().parent / "fixtures"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
EXHAUSTIVE = os.environ.get("LSTMGEN_EXHAUSTIVE", "") not in ("", "0")


def missing(what: str) -> None:
    """Skip, or fail in CI where every tool must be present."""
    if IN_CI:
        pytest.fail(f"{what} is required in CI but missing")
    pytest.skip(f"{what} not installed")


def require_module(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        missing(f"Python package '{name}'")


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        missing(f"tool '{name}'")
    return path


def backend_matches_or_refuses(target: str, cases: dict, tmp_path, tolerance: float = 1e-5):
    """For each case (ir, x, expected): the target's generated code matches `expected`
    when the backend declares every layer kind the IR uses; otherwise rendering refuses
    the model with an error naming what is missing."""
    from lstmgen.backends import BASIC_LAYERS, get_backend, render
    from lstmgen.errors import LstmgenError
    from lstmgen.runners import get_runner
    from lstmgen.verify import error_metrics

    kinds = set(getattr(get_backend(target), "LAYERS", BASIC_LAYERS))
    for key, (ir, x, expected) in cases.items():
        if not ir.kinds() <= kinds:
            with pytest.raises(LstmgenError, match="does not implement"):
                render(target, ir, "net")
            continue
        workdir = tmp_path / key
        workdir.mkdir()
        got = get_runner(target).run(ir, render(target, ir, "net"), "net", x, workdir)
        _, rel = error_metrics(got, expected)
        assert rel.max() <= tolerance, (target, key, float(rel.max()))
