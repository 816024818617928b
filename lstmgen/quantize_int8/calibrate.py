"""Calibration: the range of every tensor the integer scheme quantizes, observed on inputs.

A float64 forward pass of the IR (the layers int8-full implements: LSTM without optional
features, Bidirectional LSTM, Dense) over the calibration sequences, recording what
TensorFlow Lite's converter records with a representative dataset: the model input's
min/max, every LSTM's hidden output over all timesteps, the largest |c| of its cell state,
and every Dense output (after its activation).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ModelError
from ..ir import LSTM, Bidirectional, Dense, Model, activate


@dataclass
class Ranges:
    """min/max of the tensors of one model, keyed by layer name (a Bidirectional's
    directions by their own names)."""

    input: tuple[float, float]
    outputs: dict[str, tuple[float, float]] = field(default_factory=dict)
    cell_peak: dict[str, float] = field(default_factory=dict)


def _span(a: np.ndarray) -> tuple[float, float]:
    return float(np.min(a)), float(np.max(a))


def lstm_run(layer: LSTM, x: np.ndarray) -> tuple[np.ndarray, float]:
    """x [N, T, D] -> (h [N, T, H] in processing order, max |c| over all steps)."""
    n, t_len, _ = x.shape
    w = layer.input_weights.astype(np.float64)
    u = layer.recurrent_weights.astype(np.float64)
    b = np.zeros(4 * layer.units) if layer.bias is None else layer.bias.astype(np.float64)
    units = layer.units
    h = np.zeros((n, units))
    c = np.zeros((n, units))
    peak = 0.0
    outputs = []
    steps = range(t_len - 1, -1, -1) if layer.go_backwards else range(t_len)
    for t in steps:
        z = x[:, t, :] @ w.T + h @ u.T + b
        i, f, g, o = (z[:, k * units : (k + 1) * units] for k in range(4))
        c = activate("sigmoid", f) * c + activate("sigmoid", i) * np.tanh(g)
        h = activate("sigmoid", o) * np.tanh(c)
        peak = max(peak, float(np.max(np.abs(c))))
        outputs.append(h)
    return np.stack(outputs, axis=1), peak


def observe(model: Model, x: np.ndarray) -> Ranges:
    """Run `model` (float) over calibration inputs x [N, T, D] and record the ranges."""
    data = np.asarray(x, np.float64)
    ranges = Ranges(input=_span(data))
    for layer in model.layers:
        if isinstance(layer, LSTM):
            seq, peak = lstm_run(layer, data)
            ranges.outputs[layer.name] = _span(seq)
            ranges.cell_peak[layer.name] = peak
            data = seq if layer.return_sequences else seq[:, -1, :]
        elif isinstance(layer, Bidirectional):
            fw, fw_peak = lstm_run(layer.forward, data)  # type: ignore[arg-type]
            bw, bw_peak = lstm_run(layer.backward, data)  # type: ignore[arg-type]
            ranges.outputs[layer.forward.name] = _span(fw)
            ranges.outputs[layer.backward.name] = _span(bw)
            ranges.cell_peak[layer.forward.name] = fw_peak
            ranges.cell_peak[layer.backward.name] = bw_peak
            if layer.return_sequences:
                data = np.concatenate([fw, bw[:, ::-1, :]], axis=-1)
            else:
                data = np.concatenate([fw[:, -1, :], bw[:, -1, :]], axis=-1)
        elif isinstance(layer, Dense):
            y = data @ layer.weights.astype(np.float64).T
            if layer.bias is not None:
                y = y + layer.bias.astype(np.float64)
            data = activate(layer.activation, y)
            ranges.outputs[layer.name] = _span(data)
        else:
            raise ModelError(f"layer '{layer.name}' ({layer.kind}): no calibration for it")
    return ranges
