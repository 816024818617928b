"""GRU, SimpleRNN and Bidirectional (issue 6) against Keras model.predict: through the
float64 reference, and through every backend that declares the layer kinds (a backend
that does not must refuse the model by name)."""

from __future__ import annotations

import numpy as np
import pytest
from support import backend_matches_or_refuses

from lstmgen.reference import forward
from lstmgen.targets import TARGETS
from lstmgen.verify import error_metrics

TOLERANCE = 1e-5
SEQUENCES = 4


def _models(keras):
    L = keras.layers
    return {
        "gru_reset_after": (9, 4, [L.GRU(12, return_sequences=True), L.GRU(5), L.Dense(3)]),
        "gru_reset_before": (
            6,
            3,
            [
                L.GRU(7, reset_after=False, go_backwards=True, return_sequences=True),
                L.GRU(4, reset_after=False, use_bias=False),
            ],
        ),
        "gru_activations": (
            11,
            2,
            [
                L.GRU(6, activation="softsign", recurrent_activation="hard_sigmoid"),
                L.Dense(2, activation="softmax"),
            ],
        ),
        "simple_rnn": (
            10,
            5,
            [
                L.SimpleRNN(8, return_sequences=True, activation="relu"),
                L.SimpleRNN(3, use_bias=False, go_backwards=True),
            ],
        ),
        "bi_lstm_concat_seq": (
            8,
            3,
            [L.Bidirectional(L.LSTM(5, return_sequences=True)), L.TimeDistributed(L.Dense(2))],
        ),
        "bi_gru_sum_last": (7, 4, [L.Bidirectional(L.GRU(6), merge_mode="sum")]),
        "bi_rnn_mul": (
            5,
            2,
            [L.Bidirectional(L.SimpleRNN(4, return_sequences=True), merge_mode="mul")],
        ),
        "bi_stacked_ave": (
            12,
            3,
            [
                L.Bidirectional(L.LSTM(6, return_sequences=True)),
                L.Bidirectional(L.LSTM(3), merge_mode="ave"),
                L.Dense(1, activation="sigmoid"),
            ],
        ),
        "mixed": (
            9,
            4,
            [
                L.LSTM(5, return_sequences=True),
                L.Bidirectional(L.GRU(3, return_sequences=True)),
                L.SimpleRNN(4),
                L.Dense(2),
            ],
        ),
        "one_step": (1, 2, [L.Bidirectional(L.GRU(3, return_sequences=True)), L.GRU(2)]),
    }


@pytest.fixture(scope="module")
def cases(keras):
    import lstmgen

    built = {}
    for n, (key, (t_len, d, layers)) in enumerate(sorted(_models(keras).items())):
        model = keras.Sequential([keras.Input((t_len, d)), *layers], name=key)
        rng = np.random.default_rng(n)
        for layer in model.layers:
            weights = layer.get_weights()
            if weights:
                layer.set_weights(
                    [rng.uniform(-0.6, 0.6, w.shape).astype(np.float32) for w in weights]
                )
        x = rng.standard_normal((SEQUENCES, t_len, d)).astype(np.float32)
        built[key] = (lstmgen.load(model), x, model.predict(x, verbose=0))
    return built


def test_reference_matches_keras(cases):
    for key, (ir, x, expected) in cases.items():
        _, rel = error_metrics(forward(ir, x), expected)
        assert rel.max() <= TOLERANCE, key


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_backend_matches_keras_or_refuses(target, cases, tmp_path):
    backend_matches_or_refuses(target, cases, tmp_path, TOLERANCE)
