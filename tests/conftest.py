"""Shared fixtures: the Keras grid is built and predicted once per test session.

The tests are grouped by what they prove: core/ (IR, CLI, examples, packaging),
frontends/ (each extractor against its framework), differential/ (generated code against
the frameworks over many architectures), backends/ (each target's own guarantees; c/ for
compilers, quantization, microcontrollers), robustness/ (hostile input, names, fuzzing,
sanitizers). Helpers shared by all of them live here: support.py, grid.py, irmodels.py.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
for folder in [
    HERE,
    *sorted(
        p
        for p in HERE.rglob("*")
        if p.is_dir() and p.name not in ("fixtures", "__pycache__", "keras2")
    ),
]:
    sys.path.insert(0, str(folder))  # shared helpers and sibling test modules
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from grid import Spec, build_keras, default_grid  # noqa: E402
from support import require_module  # noqa: E402

ROOT = HERE.parent
SEQUENCES = 6


@dataclass
class Case:
    spec: Spec
    keras_model: object
    ir: object  # lstmgen.ir.Model
    x: np.ndarray  # [N, T, D] float32
    expected: np.ndarray  # Keras model.predict(x)


@pytest.fixture(scope="session")
def keras():
    return require_module("keras")


@pytest.fixture(scope="session")
def grid_cases(keras) -> list[Case]:
    import lstmgen

    cases = []
    for n, spec in enumerate(default_grid()):
        model = build_keras(spec, seed=100 + n)
        x = (
            np.random.default_rng(n)
            .standard_normal((SEQUENCES, spec.timesteps, spec.input_size))
            .astype(np.float32)
        )
        expected = model.predict(x, verbose=0)
        assert np.all(np.isfinite(expected)), f"grid case {spec.id} is ill-conditioned"
        cases.append(Case(spec, model, lstmgen.load(model), x, expected))
    return cases


@pytest.fixture(scope="session")
def example_model_path() -> Path:
    return ROOT / "examples" / "sine_lstm.keras"
