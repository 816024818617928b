"""Test helpers: optional tools skip on a user's machine but fail in CI (CI=true)."""
from __future__ import annotations

import importlib
import os
import shutil

import pytest

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
