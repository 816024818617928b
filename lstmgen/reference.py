"""A float64 numpy forward pass of the IR: the backend-independent second oracle.

It implements the canonical semantics documented in `lstmgen.ir` directly, with no code
shared with any backend, so that a backend bug cannot hide behind a reference bug.
"""

from __future__ import annotations

import numpy as np

from .ir import (
    GRU,
    LSTM,
    Activation,
    Bidirectional,
    Conv1D,
    Dense,
    Flatten,
    LayerNorm,
    Masking,
    Model,
    Normalize,
    Pool1D,
    SimpleRNN,
)


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


def _initial(values, n: int, size: int) -> np.ndarray:
    if values is None:
        return np.zeros((n, size))
    return np.tile(np.asarray(values, np.float64), (n, 1))


def _lstm_step(layer: LSTM, w, u, b, p, proj):
    """A function (x_t, (h, c)) -> (h, c) for one LSTM step."""
    h_units = layer.units

    def clip(v: np.ndarray) -> np.ndarray:
        return v if layer.clip is None else np.clip(v, -layer.clip, layer.clip)

    def gate(v: np.ndarray) -> np.ndarray:
        return activate(layer.gate_activation, clip(v))

    def step(xt, state):
        h, c = state
        z = xt @ w.T + h @ u.T + b
        zi, zf, zg, zo = (z[:, k * h_units : (k + 1) * h_units] for k in range(4))
        i = gate(zi + p[0] * c)
        f = 1.0 - i if layer.input_forget else gate(zf + p[1] * c)
        c = f * c + i * activate(layer.cell_activation, clip(zg))
        h = gate(zo + p[2] * c) * activate(layer.output_activation, c)
        if proj is not None:
            h = h @ proj.T
        return h, (h, c)

    return step


def _recurrent(layer, x: np.ndarray, mask=None) -> np.ndarray:
    """One unidirectional recurrent layer. x: [N, T, D] -> [N, T, O] or [N, O].
    `mask` [N, T] (True = real step): masked steps keep the state and repeat the output."""
    n, t_len, _ = x.shape
    f64 = lambda a: None if a is None else a.astype(np.float64)
    w, u = f64(layer.input_weights), f64(layer.recurrent_weights)
    rows = layer.input_weights.shape[0]
    b = np.zeros(rows) if layer.bias is None else f64(layer.bias)
    if isinstance(layer, LSTM):
        p = np.zeros((3, layer.units)) if layer.peephole is None else f64(layer.peephole)
        step = _lstm_step(layer, w, u, b, p, f64(layer.projection))
        state = (
            _initial(layer.initial_h, n, layer.output_size),
            _initial(layer.initial_c, n, layer.units),
        )
    elif isinstance(layer, GRU):
        hu = layer.units
        rb = np.zeros(rows) if layer.recurrent_bias is None else f64(layer.recurrent_bias)

        def step(xt, h):
            zx = xt @ w.T + b
            zz = activate(layer.gate_activation, zx[:, :hu] + h @ u[:hu].T + rb[:hu])
            zr = activate(
                layer.gate_activation, zx[:, hu : 2 * hu] + h @ u[hu : 2 * hu].T + rb[hu : 2 * hu]
            )
            if layer.reset_after:
                cand = zx[:, 2 * hu :] + zr * (h @ u[2 * hu :].T + rb[2 * hu :])
            else:
                cand = zx[:, 2 * hu :] + (zr * h) @ u[2 * hu :].T
            h = zz * h + (1.0 - zz) * activate(layer.cell_activation, cand)
            return h, h

        state = np.zeros((n, hu))
    elif isinstance(layer, SimpleRNN):

        def step(xt, h):
            h = activate(layer.activation, xt @ w.T + h @ u.T + b)
            return h, h

        state = np.zeros((n, layer.units))
    else:
        raise TypeError(f"not a unidirectional recurrent layer: {layer!r}")
    order = range(t_len - 1, -1, -1) if layer.go_backwards else range(t_len)
    outputs = []
    out = np.zeros((n, layer.output_size))
    for t in order:
        new_out, new_state = step(x[:, t, :], state)
        if mask is None:
            out, state = new_out, new_state
        else:
            keep = mask[:, t][:, None]
            out = np.where(keep, new_out, out)
            state = (
                tuple(np.where(keep, a, b) for a, b in zip(new_state, state))
                if isinstance(state, tuple)
                else np.where(keep, new_state, state)
            )
        outputs.append(out)
    # go_backwards emits its outputs in processing order (as Keras does).
    return np.stack(outputs, axis=1) if layer.return_sequences else out


def _bidirectional(layer: Bidirectional, x: np.ndarray, mask=None) -> np.ndarray:
    y_forward = _recurrent(layer.forward, x, mask)
    y_backward = _recurrent(layer.backward, x, mask)
    if layer.return_sequences:  # back to input time order before merging
        y_backward = y_backward[:, ::-1]
    if layer.merge_mode == "concat":
        return np.concatenate([y_forward, y_backward], axis=-1)
    if layer.merge_mode == "sum":
        return y_forward + y_backward
    if layer.merge_mode == "mul":
        return y_forward * y_backward
    return (y_forward + y_backward) / 2.0


def _windows(
    x: np.ndarray, span: int, stride: int, dilation: int, pad_left: int, t_out: int, fill: float
) -> np.ndarray:
    """[N, T, F] -> [N, T_out, K, F]: the K taps of each output step (padding = fill)."""
    n, t_len, f = x.shape
    k = (span - 1) // dilation + 1
    padded = np.full((n, t_len + 2 * span + t_out * stride, f), fill)
    padded[:, pad_left : pad_left + t_len] = x
    index = np.arange(t_out)[:, None] * stride + np.arange(k)[None, :] * dilation
    return padded[:, index]


def _conv1d(layer: Conv1D, x: np.ndarray) -> np.ndarray:
    t_len = x.shape[1]
    span = layer.dilation * (layer.kernel_size - 1) + 1
    taps = _windows(
        x,
        span,
        layer.stride,
        layer.dilation,
        layer.padding_left(t_len),
        layer.output_timesteps(t_len),
        0.0,
    )
    y = np.einsum("ntkd,fkd->ntf", taps, layer.weights.astype(np.float64))
    if layer.bias is not None:
        y = y + layer.bias.astype(np.float64)
    return activate(layer.activation, y)


def _pool1d(layer: Pool1D, x: np.ndarray) -> np.ndarray:
    t_len = x.shape[1]
    fill = -np.inf if layer.pool_type == "max" else np.nan
    taps = _windows(
        x,
        layer.pool_size,
        layer.stride,
        1,
        layer.padding_left(t_len),
        layer.output_timesteps(t_len),
        fill,
    )
    return np.max(taps, axis=2) if layer.pool_type == "max" else np.nanmean(taps, axis=2)


def _layer_norm(layer: LayerNorm, x: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    y = (x - mean) / np.sqrt(var + layer.epsilon)
    if layer.gamma is not None:
        y = y * layer.gamma.astype(np.float64)
    if layer.beta is not None:
        y = y + layer.beta.astype(np.float64)
    return y


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
    mask = None
    for layer in model.layers:
        if isinstance(layer, Masking):
            mask = np.any(y != layer.mask_value, axis=-1)
            y = np.where(mask[..., None], y, 0.0)
        elif isinstance(layer, Bidirectional):
            y = _bidirectional(layer, y, mask)
        elif isinstance(layer, (LSTM, GRU, SimpleRNN)):
            y = _recurrent(layer, y, mask)
        elif isinstance(layer, Normalize):
            y = (y - layer.mean.astype(np.float64)) / layer.std.astype(np.float64)
        elif isinstance(layer, LayerNorm):
            y = _layer_norm(layer, y)
        elif isinstance(layer, Flatten):
            y = y.reshape(y.shape[0], -1)
        elif isinstance(layer, Conv1D):
            y = _conv1d(layer, y)
        elif isinstance(layer, Pool1D):
            y = _pool1d(layer, y)
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
