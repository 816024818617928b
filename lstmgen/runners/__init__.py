"""Runners execute generated code on input sequences, for the verification harness.

A runner module exposes `run(model, files, name, x, workdir) -> y`: it builds or loads
the files a backend rendered (in `workdir`), feeds every sequence of x [N, T, D] through
the generated `predict` entry point and returns y as [N, T, O] or [N, O]. Runners may
also expose `run_steps(...)`, which feeds each sequence one `step` at a time and returns
the output of every step, [N, T, O].
"""

from __future__ import annotations

from types import ModuleType

from ..backends import import_target

RUNNERS: dict[str, str] = {
    "c": "lstmgen.runners.c",
    "python": "lstmgen.runners.python",
    "matlab": "lstmgen.runners.matlab",
}


def get_runner(target: str) -> ModuleType:
    return import_target(RUNNERS, target, "runner (it cannot be verified)")
