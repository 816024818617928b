"""Shared fixtures: the Keras grid is built and predicted once per test session."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from grid import Spec, build_keras, default_grid  # noqa: E402
from support import require_module  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SEQUENCES = 6


@dataclass
class Case:
    spec: Spec
    keras_model: object
    ir: object        # lstmgen.ir.Model
    x: np.ndarray     # [N, T, D] float32
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
        x = np.random.default_rng(n).standard_normal(
            (SEQUENCES, spec.timesteps, spec.input_size)).astype(np.float32)
        expected = model.predict(x, verbose=0)
        assert np.all(np.isfinite(expected)), f"grid case {spec.id} is ill-conditioned"
        cases.append(Case(spec, model, lstmgen.load(model), x, expected))
    return cases


@pytest.fixture(scope="session")
def example_model_path() -> Path:
    return ROOT / "examples" / "sine_lstm.keras"
