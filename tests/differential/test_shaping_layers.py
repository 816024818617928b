"""Masking, Normalization, LayerNormalization, Flatten/Reshape, Conv1D and pooling (issue
6) against Keras model.predict: through the float64 reference, and through every backend
that declares the layer kinds (a backend that does not must refuse the model by name)."""

from __future__ import annotations

import numpy as np
import pytest
from support import backend_matches_or_refuses

from lstmgen.ir_io import load_ir, save_ir
from lstmgen.reference import forward
from lstmgen.targets import TARGETS
from lstmgen.verify import error_metrics

TOLERANCE = 1e-5


def _models(keras, rng):
    L = keras.layers
    norm = L.Normalization()
    norm.adapt(rng.normal(3, 2, (50, 9, 4)).astype(np.float32))
    return {
        "normalize_layernorm": (
            9,
            4,
            [norm, L.LSTM(5, return_sequences=True), L.LayerNormalization(), L.Dense(2)],
        ),
        "flatten": (6, 3, [L.LSTM(4, return_sequences=True), L.Flatten(), L.Dense(2)]),
        "reshape": (6, 3, [L.GRU(3, return_sequences=True), L.Reshape((18,)), L.Dense(1)]),
        "conv_valid_max": (
            20,
            3,
            [L.Conv1D(5, 3, activation="relu"), L.MaxPooling1D(2), L.LSTM(4)],
        ),
        "conv_same_avg": (
            17,
            2,
            [
                L.Conv1D(4, 4, strides=2, padding="same"),
                L.AveragePooling1D(3, strides=2, padding="same"),
                L.LSTM(3, return_sequences=True),
            ],
        ),
        "conv_causal": (
            15,
            2,
            [
                L.Conv1D(3, 3, dilation_rate=2, padding="causal", activation="tanh"),
                L.MaxPooling1D(2, padding="same"),
                L.GRU(2),
            ],
        ),
        "masking": (
            8,
            3,
            [
                L.Masking(0.0),
                L.LSTM(4, return_sequences=True),
                L.Dense(3),
                L.Bidirectional(L.GRU(2, return_sequences=True)),
                L.SimpleRNN(2, go_backwards=True),
            ],
        ),
        "masking_sequence": (8, 3, [L.Masking(-1.0), L.LSTM(4, return_sequences=True)]),
    }


def _inputs(key, rng, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    if key.startswith("masking"):  # padded and fully masked sequences, a hole in the middle
        value = -1.0 if key == "masking_sequence" else 0.0
        x[0, 5:] = value
        x[1, :3] = value
        x[2, 2] = value
        x[3, :] = value
    return x


@pytest.fixture(scope="module")
def cases(keras):
    import lstmgen

    rng = np.random.default_rng(6)
    built = {}
    for key, (t_len, d, layers) in sorted(_models(keras, rng).items()):
        model = keras.Sequential([keras.Input((t_len, d)), *layers], name=key)
        for layer in model.layers:
            weights = layer.get_weights()
            if weights and type(layer).__name__ != "Normalization":
                layer.set_weights(
                    [rng.uniform(-0.6, 0.6, w.shape).astype(np.float32) for w in weights]
                )
        x = _inputs(key, rng, (5, t_len, d))
        built[key] = (lstmgen.load(model), x, model.predict(x, verbose=0))
    return built


def test_reference_matches_keras(cases, tmp_path):
    for key, (ir, x, expected) in cases.items():
        _, rel = error_metrics(forward(ir, x), expected)
        assert rel.max() <= TOLERANCE, key
        again = load_ir(save_ir(ir, tmp_path / f"{key}.npz"))
        assert np.array_equal(forward(again, x), forward(ir, x)), key


def test_streamability(cases):
    assert not cases["conv_valid_max"][0].streamable and not cases["flatten"][0].streamable
    assert cases["normalize_layernorm"][0].streamable
    assert cases["conv_same_avg"][0].output_timesteps(17) == 5


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_backend_matches_keras_or_refuses(target, cases, tmp_path):
    backend_matches_or_refuses(target, cases, tmp_path, TOLERANCE)
