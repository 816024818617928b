"""Hand-built IR models that reach every branch of the backends' templates.

They need no framework, so tests that only check compilation or structure use them.
"""

from __future__ import annotations

import numpy as np

from lstmgen.ir import (
    ELEMENTWISE_ACTIVATIONS,
    LSTM,
    VECTOR_ACTIVATIONS,
    Activation,
    Dense,
    Model,
)


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


#: Values where activations overflow, saturate or meet a sign of zero.
EXTREMES = np.array(
    [-1000.0, -100.0, -88.8, -30.0, -3.0, -0.5, -0.0, 0.0, 0.5, 3.0, 30.0, 88.8, 100.0, 1000.0],
    dtype=np.float32,
)
_ELEMENTWISE = list(ELEMENTWISE_ACTIVATIONS)
_VECTOR = list(VECTOR_ACTIVATIONS)


def _draw_small(rng, *shape):
    return rng.uniform(-0.6, 0.6, shape).astype(np.float32)


def mixed_activation_model(k: int) -> Model:
    """Activation k (of ELEMENTWISE_ACTIVATIONS) as LSTM cell, Dense and gate of a second
    LSTM; its neighbours in the list as gate and output; a vector activation as the head
    (softmax, log_softmax) or a linear head, over a sequence or after the last step."""
    rng = np.random.default_rng(5 + k)
    act = _ELEMENTWISE[k]
    gate = _ELEMENTWISE[(k + 3) % len(_ELEMENTWISE)]
    out = _ELEMENTWISE[(k + 5) % len(_ELEMENTWISE)]
    head = _VECTOR[k % len(_VECTOR)] if k % 3 else "linear"
    layers = [
        LSTM(
            "lstm",
            _draw_small(rng, 16, 3),
            _draw_small(rng, 16, 4),
            _draw_small(rng, 16) if k % 2 else None,
            gate_activation=gate,
            cell_activation=act,
            output_activation=out,
            return_sequences=True,
            go_backwards=k % 3 == 1,
        ),
        Dense("dense", _draw_small(rng, 5, 4), _draw_small(rng, 5), activation=act),
        Activation("act", 5, _ELEMENTWISE[(k + 1) % len(_ELEMENTWISE)]),
        LSTM(
            "lstm2",
            _draw_small(rng, 8, 5),
            _draw_small(rng, 8, 2),
            _draw_small(rng, 8),
            gate_activation=act,
            cell_activation=gate,
            return_sequences=k % 2 == 0,
        ),
        Dense("head", _draw_small(rng, 4, 2), None, activation=head),
    ]
    return Model(3, layers, name=f"act_{k}", source="random weights").validate()
