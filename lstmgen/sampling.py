"""Test inputs for a model: seeded random sequences, their default length, and the
self-test vectors a target can embed.

Low in the layering (it knows only the IR), so targets, verification and the API all take
their inputs and timestep defaults from here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .ir import Model

#: Timesteps of a test sequence when the model does not fix its own T.
DEFAULT_TIMESTEPS = 20


@dataclass
class SelftestData:
    """What `--selftest` embeds: inputs [N, T, D] and the expected outputs."""

    x: np.ndarray
    y: np.ndarray
    oracle: str


def default_timesteps(model: Model) -> int:
    """The model's own T, else DEFAULT_TIMESTEPS; at least the fewest timesteps its layers
    need (Conv1D/pooling windows, time slices)."""
    return max(model.timesteps or DEFAULT_TIMESTEPS, model.min_timesteps())


def make_inputs(input_size: int, sequences: int, timesteps: int, seed: int) -> np.ndarray:
    """Standard-normal float32 features [sequences, timesteps, input_size]."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((sequences, timesteps, input_size)).astype(np.float32)


def sample_inputs(model: Model, sequences: int, timesteps: int, seed: int) -> np.ndarray:
    """Inputs the model takes: features, or token ids (as float32 values [N, T, 1], drawn
    uniformly from the vocabulary, id 0 included) when its first layer is an Embedding."""
    vocabulary = model.token_vocabulary
    if vocabulary is None:
        return make_inputs(model.input_size, sequences, timesteps, seed)
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocabulary, size=(sequences, timesteps, 1))
    return ids.astype(np.float32)


def reference_selftest(model: Model, sequences: int = 3) -> SelftestData:
    """Seeded inputs with the float64 reference's outputs (when no framework is at hand)."""
    from .reference import forward

    x = sample_inputs(model, sequences, default_timesteps(model), seed=1)
    return SelftestData(
        x=x, y=forward(model, x).astype(np.float32), oracle="the lstmgen float64 reference"
    )
