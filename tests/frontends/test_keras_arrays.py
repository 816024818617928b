"""Arrays in hand (a `get_weights()` dump, no file): `lstmgen.extractors.keras.from_arrays`
builds the model from Keras-layout arrays and Keras config keys, and the mapping to the IR
stays lstmgen's. Oracles: the tf_keras / Keras 3 model the arrays came from."""

from __future__ import annotations

import numpy as np
import pytest
from support import require_module

from lstmgen.errors import LstmgenError
from lstmgen.extractors.keras import from_arrays
from lstmgen.reference import forward
from lstmgen.verify import error_metrics

TOLERANCE = 1e-5


def _random(model, seed):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        values = layer.get_weights()
        if values:
            layer.set_weights([rng.uniform(-0.7, 0.7, w.shape).astype(np.float32) for w in values])


def test_keras2_arrays_with_keras2_defaults():
    """Keras 2's defaults apply where the config is silent: hard_sigmoid = 0.2x + 0.5."""
    tf_keras = require_module("tf_keras")
    L = tf_keras.layers
    model = tf_keras.Sequential(
        [
            tf_keras.Input((None, 3)),
            L.LSTM(5, recurrent_activation="hard_sigmoid", return_sequences=True),
            L.Bidirectional(L.GRU(2, recurrent_activation="hard_sigmoid", reset_after=False)),
            L.Dense(2, activation="softmax"),
        ]
    )
    _random(model, 1)
    lstm, bidirectional, dense = model.layers
    ir = from_arrays(
        [
            (
                "LSTM",
                {"units": 5, "recurrent_activation": "hard_sigmoid", "return_sequences": True},
                lstm.get_weights(),
            ),
            (
                "Bidirectional",
                {
                    "layer": {
                        "class_name": "GRU",
                        "config": {
                            "units": 2,
                            "recurrent_activation": "hard_sigmoid",
                            "reset_after": False,
                        },
                    }
                },
                bidirectional.get_weights(),
            ),
            ("Dense", {"units": 2, "activation": "softmax"}, dense.get_weights()),
        ],
        input_shape=(None, 3),
        keras_version=2,
        name="pasted",
    )
    assert ir.name == "pasted" and ir.layers[0].gate_activation == "hard_sigmoid_0.2"
    x = np.random.default_rng(2).standard_normal((4, 20, 3)).astype(np.float32)
    assert error_metrics(forward(ir, x), model.predict(x, verbose=0))[1].max() <= TOLERANCE


def test_keras1_per_gate_arrays():
    """The seed users' Keras 1 dumps: twelve arrays per LSTM, stored i, c, f, o."""
    tf_keras = require_module("tf_keras")
    model = tf_keras.Sequential(
        [tf_keras.Input((None, 2)), tf_keras.layers.LSTM(4, recurrent_activation="hard_sigmoid")]
    )
    _random(model, 3)
    kernel, recurrent, bias = model.layers[0].get_weights()
    gates = {g: slice(k * 4, (k + 1) * 4) for k, g in enumerate("ifco")}  # Keras 2's columns
    dump = [a[..., gates[g]] for g in "icfo" for a in (kernel, recurrent, bias)]
    ir = from_arrays([("LSTM", {"output_dim": 4}, dump)], input_shape=(None, 2), keras_version=1)
    x = np.random.default_rng(4).standard_normal((3, 25, 2)).astype(np.float32)
    assert error_metrics(forward(ir, x), model.predict(x, verbose=0))[1].max() <= TOLERANCE


def test_keras3_arrays(keras):
    L = keras.layers
    model = keras.Sequential(
        [keras.Input((7,), dtype="int32"), L.Embedding(9, 3, mask_zero=True), L.GRU(4), L.Dense(1)]
    )
    _random(model, 5)
    embedding, gru, dense = model.layers
    ir = from_arrays(
        [
            (
                "Embedding",
                {"input_dim": 9, "output_dim": 3, "mask_zero": True},
                embedding.get_weights(),
            ),
            ("GRU", {"units": 4}, gru.get_weights()),
            ("Dense", {"units": 1}, dense.get_weights()),
        ],
        input_shape=(7,),
        keras_version=3,
    )
    ids = np.random.default_rng(6).integers(0, 9, (4, 7, 1))
    ids[0, :3] = 0
    expected = model.predict(ids[..., 0].astype(np.int32), verbose=0)
    assert error_metrics(forward(ir, ids.astype(np.float32)), expected)[1].max() <= TOLERANCE


def test_wrong_arrays_are_one_clear_error():
    kernel = np.zeros((3, 8), np.float32)
    with pytest.raises(LstmgenError, match="'lstm_0' \\(LSTM\\): the weights hold 1 arrays"):
        from_arrays([("LSTM", {"units": 2}, [kernel])], input_shape=(None, 3), keras_version=3)
    with pytest.raises(LstmgenError, match="kernel has shape \\(3, 8\\).*needs \\(3, 12\\)"):
        from_arrays(
            [("LSTM", {"units": 3}, [kernel, np.zeros((3, 12)), np.zeros(12)])],
            input_shape=(None, 3),
            keras_version=3,
        )
    with pytest.raises(LstmgenError, match="expected \\(class_name, config, arrays\\)"):
        from_arrays([("LSTM", [kernel])], input_shape=(None, 3), keras_version=3)
