"""A float64 numpy forward pass of the IR: the backend-independent second oracle.

It implements the canonical semantics documented in `lstmgen.ir` directly, with no code
shared with any backend, so that a backend bug cannot hide behind a reference bug.
"""
from __future__ import annotations

import numpy as np

from .ir import LSTM, Activation, Dense, Model


def activate(name: str, x: np.ndarray) -> np.ndarray:
    """Apply the activation called `name` (an IR name) over the last axis of `x`."""
    if name == "linear":
        return x
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "sigmoid":
        return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free logistic
    if name == "tanh":
        return np.tanh(x)
    if name == "softsign":
        return x / (1.0 + np.abs(x))
    if name == "softplus":
        return np.logaddexp(0.0, x)
    if name == "elu":
        return np.where(x > 0, x, np.expm1(np.minimum(x, 0.0)))
    if name == "hard_sigmoid_keras3":
        return np.clip(x + 3.0, 0.0, 6.0) / 6.0
    if name == "hard_sigmoid_0.2":
        return np.clip(0.2 * x + 0.5, 0.0, 1.0)
    if name == "softmax":
        e = np.exp(x - np.max(x, axis=-1, keepdims=True))
        return e / np.sum(e, axis=-1, keepdims=True)
    raise ValueError(f"unknown activation {name!r}")


def _lstm(layer: LSTM, x: np.ndarray) -> np.ndarray:
    """x: [N, T, D] -> [N, T, H] (return_sequences) or [N, H]."""
    n, t_len, _ = x.shape
    h_units = layer.units
    w = layer.input_weights.astype(np.float64)
    u = layer.recurrent_weights.astype(np.float64)
    b = np.zeros(4 * h_units) if layer.bias is None else layer.bias.astype(np.float64)
    p = np.zeros((3, h_units)) if layer.peephole is None else layer.peephole.astype(np.float64)
    h = np.zeros((n, h_units)) if layer.initial_h is None else \
        np.tile(layer.initial_h.astype(np.float64), (n, 1))
    c = np.zeros((n, h_units)) if layer.initial_c is None else \
        np.tile(layer.initial_c.astype(np.float64), (n, 1))

    def clip(v: np.ndarray) -> np.ndarray:
        return v if layer.clip is None else np.clip(v, -layer.clip, layer.clip)

    def gate(v: np.ndarray) -> np.ndarray:
        return activate(layer.gate_activation, clip(v))

    order = range(t_len - 1, -1, -1) if layer.go_backwards else range(t_len)
    outputs = []
    for t in order:
        z = x[:, t, :] @ w.T + h @ u.T + b
        zi, zf, zg, zo = (z[:, k * h_units:(k + 1) * h_units] for k in range(4))
        i = gate(zi + p[0] * c)
        f = 1.0 - i if layer.input_forget else gate(zf + p[1] * c)
        c = f * c + i * activate(layer.cell_activation, clip(zg))
        h = gate(zo + p[2] * c) * activate(layer.output_activation, c)
        outputs.append(h)
    # go_backwards emits its outputs in processing order (as Keras does).
    return np.stack(outputs, axis=1) if layer.return_sequences else h


def forward(model: Model, x: np.ndarray) -> np.ndarray:
    """Run `model` on x of shape [N, T, D] (or [T, D]); float64 result.

    The result is [N, T, O] when the model returns sequences, else [N, O] (without the
    leading N when x had no batch axis).
    """
    x = np.asarray(x, dtype=np.float64)
    single = x.ndim == 2
    if single:
        x = x[None]
    if x.ndim != 3 or x.shape[2] != model.input_size or x.shape[1] < 1:
        raise ValueError(f"input must be [N, T>=1, {model.input_size}], got {x.shape}")
    y = x
    for layer in model.layers:
        if isinstance(layer, LSTM):
            y = _lstm(layer, y)
        elif isinstance(layer, Dense):
            y = y @ layer.weights.astype(np.float64).T
            if layer.bias is not None:
                y = y + layer.bias.astype(np.float64)
            y = activate(layer.activation, y)
        elif isinstance(layer, Activation):
            y = activate(layer.activation, y)
        else:
            raise TypeError(f"unknown layer {layer!r}")
    return y[0] if single else y
