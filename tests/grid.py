"""The seeded grid of random Keras architectures every backend is tested on.

Each spec is built as a real Keras model with random weights (biases included, so a
wrong bias mapping shows), then `model.predict` on random inputs is the oracle. The
default grid covers every activation, 1-3 stacked LSTMs, sizes 1-128, T 1-60, bias on
and off, return_sequences and go_backwards; LSTMGEN_EXHAUSTIVE=1 draws many more.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
from support import EXHAUSTIVE

# Gates must stay bounded: an unbounded gate (linear, relu) makes the state explode, and
# then Keras's own float32 result is noise (it differs from float64 by orders of magnitude).
GATE_ACTIVATIONS = ["sigmoid", "hard_sigmoid", "tanh", "softsign"]
CELL_ACTIVATIONS = [
    "tanh",
    "softsign",
    "relu",
    "linear",
    "elu",
    "softplus",
    "sigmoid",
    "hard_sigmoid",
]
HEAD_ACTIVATIONS = [
    "linear",
    "relu",
    "sigmoid",
    "tanh",
    "softmax",
    "softsign",
    "elu",
    "softplus",
    "hard_sigmoid",
]


@dataclass
class LSTMSpec:
    units: int
    activation: str = "tanh"
    recurrent_activation: str = "sigmoid"
    use_bias: bool = True
    return_sequences: bool = False
    go_backwards: bool = False


@dataclass
class Spec:
    id: str
    input_size: int
    timesteps: int
    lstms: list[LSTMSpec]
    dense: list[tuple[int, str]] = field(default_factory=list)  # (units, activation)
    dropout: bool = False
    time_distributed: bool = False


def make_grid(count: int, seed: int) -> list[Spec]:
    rng = np.random.default_rng(seed)
    specs = []
    for n in range(count):
        depth = 1 + n % 3
        lstms = []
        for k in range(depth):
            last = k == depth - 1
            lstms.append(
                LSTMSpec(
                    units=int(rng.choice([1, 2, 3, 5, 8, 16, 32, 64, 128])),
                    activation=CELL_ACTIVATIONS[(n + k) % len(CELL_ACTIVATIONS)],
                    recurrent_activation=GATE_ACTIVATIONS[(n + 3 * k) % len(GATE_ACTIVATIONS)],
                    use_bias=bool((n + k) % 4 != 3),
                    return_sequences=(not last) or bool(n % 5 == 1),
                    go_backwards=bool(rng.random() < 0.25),
                )
            )
        dense = []
        if n % 4 != 0:
            dense.append((int(rng.integers(1, 12)), HEAD_ACTIVATIONS[n % len(HEAD_ACTIVATIONS)]))
        if n % 7 == 3:
            dense.insert(0, (int(rng.integers(2, 20)), "relu"))
        specs.append(
            Spec(
                id=f"g{n:02d}",
                input_size=int(rng.integers(1, 21)),
                timesteps=int(rng.choice([1, 2, 5, 13, 30, 60])),
                lstms=lstms,
                dense=dense,
                dropout=bool(n % 3 == 2),
                time_distributed=bool(n % 5 == 1 and n % 2 == 1),
            )
        )
    # Two hand-picked shapes the random draw may miss: the widest layer, and a
    # go_backwards layer after another recurrent layer (the buffered plan).
    specs.append(
        Spec("wide", 20, 60, [LSTMSpec(128, return_sequences=True), LSTMSpec(64)], [(5, "softmax")])
    )
    specs.append(
        Spec(
            "buffered",
            4,
            9,
            [
                LSTMSpec(6, return_sequences=True),
                LSTMSpec(5, go_backwards=True, return_sequences=True),
                LSTMSpec(3, go_backwards=True),
            ],
            [(2, "linear")],
        )
    )
    return specs


def default_grid() -> list[Spec]:
    count = int(os.environ.get("LSTMGEN_GRID", "200" if EXHAUSTIVE else "24"))
    return make_grid(count, seed=2024)


def build_keras(spec: Spec, seed: int):
    """A Keras model for `spec` with random weights, biases included.

    Weights are uniform in [-a, a] with a = min(0.6, 1.5 / sqrt(fan_in)), so that the
    recurrence stays well conditioned (as trained models are) even for wide layers and
    unbounded cell activations.
    """
    import keras

    layers = [keras.Input((spec.timesteps, spec.input_size))]
    for k, s in enumerate(spec.lstms):
        layers.append(
            keras.layers.LSTM(
                s.units,
                activation=s.activation,
                recurrent_activation=s.recurrent_activation,
                use_bias=s.use_bias,
                return_sequences=s.return_sequences,
                go_backwards=s.go_backwards,
                name=f"lstm_{k}",
            )
        )
        if spec.dropout and k == 0:
            layers.append(keras.layers.Dropout(0.3, name="drop"))
    for k, (units, act) in enumerate(spec.dense):
        dense = keras.layers.Dense(units, activation=act, name=f"dense_{k}")
        if spec.time_distributed:
            dense = keras.layers.TimeDistributed(dense, name=f"td_{k}")
        layers.append(dense)
    model = keras.Sequential(layers, name=f"grid_{spec.id}")
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = layer.get_weights()
        if weights:
            layer.set_weights([_draw(rng, w.shape) for w in weights])
    return model


def _draw(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    scale = 0.6 if len(shape) == 1 else min(0.6, 1.5 / np.sqrt(shape[0]))
    return rng.uniform(-scale, scale, shape).astype(np.float32)
