"""Embedding (IR kind embedding: the model's input becomes token ids) against Keras
model.predict, with and without mask_zero; through the float64 reference and every target
that implements the kind (the others must refuse it by name)."""

from __future__ import annotations

import numpy as np
import pytest
from support import backend_matches_or_refuses, keras_cases, reference_matches

from lstmgen.reference import forward
from lstmgen.targets import TARGETS


def _ids(vocabulary):
    def make(rng, shape):
        ids = rng.integers(0, vocabulary, shape)
        ids[0, :3] = 0  # leading padding (masked with mask_zero)
        ids[1, -2:] = 0  # trailing padding
        return ids.astype(np.float32)

    return make


@pytest.fixture(scope="module")
def cases(keras):
    L = keras.layers
    specs = {
        "simple_rnn_head": (
            (9,),
            [L.Embedding(20, 5), L.SimpleRNN(4), L.Dense(1, activation="sigmoid")],
            _ids(20),
        ),
        "mask_zero_sequences": (
            (8,),
            [L.Embedding(7, 3, mask_zero=True), L.LSTM(4, return_sequences=True), L.Dense(2)],
            _ids(7),
        ),
        "mask_zero_last": ((8,), [L.Embedding(7, 3, mask_zero=True), L.GRU(3)], _ids(7)),
    }
    return keras_cases(keras, specs, seed=32)


def test_reference_matches_keras(cases, tmp_path):
    reference_matches(cases, tmp_path)


def test_input_is_token_ids(cases):
    ir, x, _ = cases["simple_rnn_head"]
    assert ir.input_size == 1 and ir.token_vocabulary == 20 and ir.streamable
    with pytest.raises(ValueError, match=r"not a token id in \[0, 20\)"):
        forward(ir, np.full((1, 3, 1), 20.0, np.float32))
    with pytest.raises(ValueError, match="not a token id"):
        forward(ir, np.full((1, 3, 1), 1.5, np.float32))


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_target_matches_keras_or_refuses(target, cases, tmp_path):
    backend_matches_or_refuses(target, cases, tmp_path)
