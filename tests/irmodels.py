"""Hand-built IR models that reach every branch of the backends' templates.

They need no framework, so tests that only check compilation or structure use them.
"""

from __future__ import annotations

import numpy as np

from lstmgen.ir import LSTM, Activation, Dense, Model


def _lstm(rng, name, d, h, **kw) -> LSTM:
    bias = kw.pop("bias", True)
    s = 1.0 / np.sqrt(max(d, h))
    return LSTM(
        name=name,
        input_weights=rng.uniform(-s, s, (4 * h, d)).astype(np.float32),
        recurrent_weights=rng.uniform(-s, s, (4 * h, h)).astype(np.float32),
        bias=rng.uniform(-0.5, 0.5, 4 * h).astype(np.float32) if bias else None,
        **kw,
    )


def _dense(rng, name, i, o, activation="linear", bias=True) -> Dense:
    return Dense(
        name=name,
        weights=rng.uniform(-0.5, 0.5, (o, i)).astype(np.float32),
        bias=rng.uniform(-0.5, 0.5, o).astype(np.float32) if bias else None,
        activation=activation,
    )


def branch_models() -> dict[str, Model]:
    rng = np.random.default_rng(5)
    return {
        # every activation, standalone Activation layers (incl. linear), tail of 3 layers
        "all_activations": Model(
            3,
            [
                _lstm(
                    rng,
                    "L0",
                    3,
                    6,
                    gate_activation="hard_sigmoid_keras3",
                    cell_activation="softsign",
                    output_activation="elu",
                    return_sequences=True,
                ),
                _lstm(
                    rng,
                    "L1",
                    6,
                    5,
                    gate_activation="hard_sigmoid_0.2",
                    cell_activation="softplus",
                    output_activation="relu",
                    bias=False,
                ),
                Activation("act lin", 5, "linear"),
                _dense(rng, "d0", 5, 4, "sigmoid", bias=False),
                Activation("act-soft", 4, "softmax"),
                _dense(rng, "d1", 4, 3, "tanh"),
            ],
            name="branches",
        ),
        # sequence output with per-timestep head, go_backwards first layer (reversed read)
        "sequence_reversed": Model(
            2,
            [
                _lstm(rng, "class", 2, 4, go_backwards=True, return_sequences=True),
                _dense(rng, "1st dense", 4, 3, "linear"),
                Activation("relu", 3, "relu"),
                _lstm(rng, "lstm", 3, 2, return_sequences=True),
            ],
            name="seqrev",
        ),
        # three stages: two buffered go_backwards layers after recurrent ones
        "three_stages": Model(
            4,
            [
                _lstm(rng, "a", 4, 3, return_sequences=True),
                _lstm(rng, "b", 3, 5, go_backwards=True, return_sequences=True),
                _dense(rng, "mid", 5, 2, "linear"),
                _lstm(rng, "c", 2, 3, go_backwards=True, return_sequences=False),
                _dense(rng, "out", 3, 2, "softmax"),
            ],
            name="stages",
            timesteps=7,
        ),
        # the smallest: one LSTM unit, no head
        "tiny": Model(1, [_lstm(rng, "only", 1, 1)], name="tiny"),
    }


def large_model() -> Model:
    """9 -> LSTM(256) -> Dense(1), random weights (seed 7): the size keras2c's issue tracker
    talks about; the microcontroller tests and `bench/bench_mcu.py` run it."""
    rng = np.random.default_rng(7)
    s = 1.0 / np.sqrt(256)
    return Model(
        9,
        [
            LSTM(
                "lstm",
                rng.uniform(-s, s, (1024, 9)).astype(np.float32),
                rng.uniform(-s, s, (1024, 256)).astype(np.float32),
                rng.uniform(-0.5, 0.5, 1024).astype(np.float32),
            ),
            Dense(
                "out",
                rng.uniform(-s, s, (1, 256)).astype(np.float32),
                rng.uniform(-0.5, 0.5, 1).astype(np.float32),
            ),
        ],
        name="large",
    )
