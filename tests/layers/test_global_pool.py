"""GlobalAveragePooling1D / GlobalMaxPooling1D (IR kind global_pool) against Keras
model.predict, honouring a mask as Keras does (the mean over real timesteps; max ignores
it); through the float64 reference and every target that implements the kind."""

from __future__ import annotations

import numpy as np
import pytest
from support import backend_matches_or_refuses, keras_cases, reference_matches

from lstmgen.targets import TARGETS


def _normal(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


def _padded(rng, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    x[0, 5:] = 0.0
    x[1, :3] = 0.0
    x[2, 4] = 0.0
    return x


@pytest.fixture(scope="module")
def cases(keras):
    L = keras.layers
    specs = {
        "avg": ((9, 3), [L.LSTM(4, return_sequences=True), L.GlobalAveragePooling1D()], _normal),
        "max_head": (
            (9, 3),
            [
                L.GRU(4, return_sequences=True),
                L.GlobalMaxPooling1D(),
                L.Dense(2, activation="softmax"),
            ],
            _normal,
        ),
        "avg_masked": (
            (9, 3),
            [L.Masking(0.0), L.LSTM(4, return_sequences=True), L.GlobalAveragePooling1D()],
            _padded,
        ),
        "max_masked": (
            (9, 3),
            [L.Masking(0.0), L.SimpleRNN(4, return_sequences=True), L.GlobalMaxPooling1D()],
            _padded,
        ),
    }
    return keras_cases(keras, specs, seed=34)


def test_reference_matches_keras(cases, tmp_path):
    reference_matches(cases, tmp_path)


def test_not_streamable(cases):
    assert not cases["avg"][0].streamable and not cases["avg"][0].returns_sequences


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_target_matches_keras_or_refuses(target, cases, tmp_path):
    backend_matches_or_refuses(target, cases, tmp_path)
