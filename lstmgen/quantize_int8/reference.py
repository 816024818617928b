"""A numpy forward pass of an `Int8Model`, integer for integer what the int8-full kernel
(and TensorFlow Lite Micro's) computes: the reference the C kernel is debugged against.

It follows the scheme documented in `lstmgen.ir.int8` step by step, on a batch of
sequences at once: every intermediate is an int64 array holding the int32/int16/int8 value
the kernel holds, saturated where the kernel saturates.
"""

from __future__ import annotations

import numpy as np

from ..errors import ModelError
from ..ir.int8 import (
    INT8_RANGE,
    INT16_RANGE,
    ActivationInt8,
    BidirectionalInt8,
    DenseInt8,
    Int8Model,
    LSTMInt8,
)
from .fixedpoint import rescale, saturate, sigmoid16, tanh16


def forward_int8(model: Int8Model, x: np.ndarray) -> np.ndarray:
    """int8 inputs [N, T, D] -> int8 outputs [N, O], or [N, T, O] for a sequence model."""
    data = np.asarray(x, np.int64)
    if data.ndim != 3 or data.shape[2] != model.input_size:
        raise ModelError(f"inputs of shape {data.shape}, expected [N, T, {model.input_size}]")
    sequence = True
    for layer in model.layers:
        if isinstance(layer, LSTMInt8):
            data = lstm_forward(layer, data)
            sequence = layer.return_sequences
        elif isinstance(layer, BidirectionalInt8):
            data = bidirectional_forward(layer, data)
            sequence = layer.return_sequences
        elif isinstance(layer, DenseInt8):
            data = dense_forward(layer, data)
        elif isinstance(layer, ActivationInt8):
            raise ModelError(f"layer '{layer.name}': no integer reference for {layer.activation}")
        else:
            raise ModelError(f"unknown integer layer {layer!r}")
    del sequence
    return data.astype(np.int8)


def lstm_forward(layer: LSTMInt8, x: np.ndarray) -> np.ndarray:
    """x [N, T, D] -> h [N, T, H] in processing order, or the last h [N, H]."""
    n, t_len, _ = x.shape
    h_units = layer.units
    w = layer.input_weights.astype(np.int64)
    u = layer.recurrent_weights.astype(np.int64)
    bx, bh = layer.folded_input_bias(), layer.folded_recurrent_bias()
    mx, mh = layer.gate_input_multipliers(), layer.gate_recurrent_multipliers()
    m_forget, m_input, m_hidden = (
        layer.forget_multiplier(),
        layer.input_multiplier(),
        layer.hidden_multiplier(),
    )
    tanh_cell = layer.tanh_input_rescale(layer.cell_power)
    clip = layer.quantized_cell_clip()
    h = np.full((n, h_units), layer.hidden.zero_point, np.int64)
    c = np.zeros((n, h_units), np.int64)
    outputs = []
    steps = range(t_len - 1, -1, -1) if layer.go_backwards else range(t_len)
    for t in steps:
        xt = x[:, t, :]
        z = []
        for k in range(4):
            from_x = saturate(rescale(xt @ w[k].T + bx[k], mx[k]), *INT16_RANGE)
            from_h = saturate(rescale(h @ u[k].T + bh[k], mh[k]), *INT16_RANGE)
            z.append(saturate(from_x + from_h, *INT16_RANGE))
        gate_i, gate_f, gate_o = sigmoid16(z[0]), sigmoid16(z[1]), sigmoid16(z[3])
        gate_g = tanh16(z[2])
        c = saturate(rescale(gate_f * c, m_forget), *INT16_RANGE)
        c = saturate(c + saturate(rescale(gate_i * gate_g, m_input), *INT16_RANGE), *INT16_RANGE)
        if clip:
            c = np.clip(c, -clip, clip)
        squashed = tanh16(c, *tanh_cell)
        h = saturate(layer.hidden.zero_point + rescale(squashed * gate_o, m_hidden), *INT8_RANGE)
        outputs.append(h)
    if not layer.return_sequences:
        return h
    return np.stack(outputs, axis=1)


def bidirectional_forward(layer: BidirectionalInt8, x: np.ndarray) -> np.ndarray:
    forward = lstm_forward(layer.forward, x)
    backward = lstm_forward(layer.backward, x)
    if layer.return_sequences:
        backward = backward[:, ::-1, :]  # back in input time order
    return np.concatenate([forward, backward], axis=-1)


def dense_forward(layer: DenseInt8, x: np.ndarray) -> np.ndarray:
    acc = x @ layer.weights.astype(np.int64).T + layer.folded_bias()
    multipliers = layer.multipliers()
    out = np.empty_like(acc)
    for j, m in enumerate(multipliers):
        out[..., j] = rescale(acc[..., j], m)
    low, high = layer.clamp()
    return saturate(layer.output.zero_point + out, low, high)
