"""BatchNormalization (IR kind batch_norm) against Keras model.predict: after sequences
and after vectors, with and without center/scale; through the float64 reference and every
target that implements the kind (the others must refuse it by name)."""

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
        "sequence_and_vector": (
            (7, 3),
            [
                L.BatchNormalization(),
                L.LSTM(4, return_sequences=True),
                L.BatchNormalization(epsilon=0.01),
                L.LSTM(3),
                L.BatchNormalization(center=False),
                L.Dense(2, activation="softmax"),
            ],
            _normal,
        ),
        "no_scale_per_step_head": (
            (6, 2),
            [L.GRU(4, return_sequences=True), L.BatchNormalization(scale=False), L.Dense(3)],
            _normal,
        ),
    }
    return keras_cases(keras, specs, seed=31)


def test_reference_matches_keras(cases, tmp_path):
    reference_matches(cases, tmp_path)


def test_streams_like_any_per_step_layer(cases):
    assert cases["no_scale_per_step_head"][0].streamable


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_target_matches_keras_or_refuses(target, cases, tmp_path):
    backend_matches_or_refuses(target, cases, tmp_path)
