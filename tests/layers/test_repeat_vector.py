"""RepeatVector (IR kind repeat_vector: the LSTM autoencoder's bridge) against Keras
model.predict; through the float64 reference and every target that implements the kind (the
others must refuse it by name)."""

from __future__ import annotations

import numpy as np
import pytest
from support import backend_matches_or_refuses, keras_cases, reference_matches

from lstmgen.targets import TARGETS


def _normal(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


@pytest.fixture(scope="module")
def cases(keras):
    L = keras.layers
    specs = {
        "autoencoder": (
            (8, 3),
            [
                L.LSTM(5),
                L.RepeatVector(8),
                L.LSTM(4, return_sequences=True),
                L.TimeDistributed(L.Dense(3)),
            ],
            _normal,
        ),
        "free_input_length_stacked_decoder": (
            (None, 2),
            [
                L.GRU(4, return_sequences=True),
                L.GRU(3),
                L.Dense(3, activation="tanh"),
                L.RepeatVector(5),
                L.LSTM(3, return_sequences=True),
                L.LSTM(2),
            ],
            lambda rng, shape: rng.standard_normal((shape[0], 11, 2)).astype(np.float32),
        ),
    }
    return keras_cases(keras, specs, seed=33)


def test_reference_matches_keras(cases, tmp_path):
    reference_matches(cases, tmp_path)


def test_facts(cases):
    ir = cases["autoencoder"][0]
    assert ir.returns_sequences and not ir.streamable and ir.output_timesteps(3) == 8


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_target_matches_keras_or_refuses(target, cases, tmp_path):
    backend_matches_or_refuses(target, cases, tmp_path)
