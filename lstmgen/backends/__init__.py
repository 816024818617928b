"""Backends: each target language renders an IR model to source files.

A backend module exposes `render(model, name, **options) -> dict[filename, text]` and
`OPTIONS` (the option names it accepts). Backends read only the IR (and the plan derived
from it); templates under `templates/<target>/` hold the text.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import LstmgenError

TARGETS: dict[str, str] = {
    "c": "lstmgen.backends.c",
    "python": "lstmgen.backends.python",
    "matlab": "lstmgen.backends.matlab",
}


def get_backend(target: str) -> ModuleType:
    if target not in TARGETS:
        raise LstmgenError(f"unknown target '{target}'; targets: {', '.join(TARGETS)}")
    try:
        return importlib.import_module(TARGETS[target])
    except ModuleNotFoundError as exc:
        if exc.name == TARGETS[target]:
            raise LstmgenError(f"target '{target}' is not available in this version") from None
        raise
