"""Full-integer (int8) post-training quantization with TensorFlow Lite's scheme.

`quantize(model, calibration)` turns a float IR model (from any front end: Keras, PyTorch,
ONNX, MATLAB) into an `lstmgen.ir.int8.Int8Model`, the same integer model a full-integer
`.tflite` file becomes, so one kernel runs both. The choices are the converter's:

* activations (the input, every LSTM output, every Dense output): int8, asymmetric, from
  the min/max seen on the calibration inputs (extended to hold 0): scale = (max - min) /
  255, zero point = round(-128 - min / scale);
* the two directions of a Bidirectional share one quantization (TensorFlow Lite Micro
  concatenates int8 tensors only when they are quantized alike);
* LSTM weights: int8, symmetric, one scale per gate matrix (max |w| / 127; TensorFlow Lite
  Micro's integer LSTM takes one scale per matrix); Dense weights: int8, symmetric, one
  scale per output channel;
* biases: int32 with scale = input scale x weight scale;
* the cell state: int16 with the power-of-two scale 2^(ceil(log2 max|c|) - 15).

`reference.forward_int8` runs the result in numpy bit for bit as the C kernel does.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .. import limits
from ..errors import LstmgenError, ModelError
from ..ir import LSTM, Bidirectional, Dense, Model
from ..ir.int8 import BidirectionalInt8, DenseInt8, Int8Model, LayerInt8, LSTMInt8, Quant
from ..safe_read import NpyHeader, read_npy
from .calibrate import Ranges, observe

__all__ = ["quantize", "read_calibration", "activation_quant"]

DENSE_ACTIVATIONS = ("linear", "relu")


def read_calibration(calibration: Any, input_size: int) -> np.ndarray:
    """Calibration inputs [N, T, D] from an array or a `.npy` path, checked."""
    if isinstance(calibration, (str, Path)):
        where = f"--calibration {calibration}"

        def check(header: NpyHeader) -> None:  # before the data is read
            if len(header.shape) == 3:
                limits.check_inputs(where, *header.shape)
            else:
                limits.check_array(where, header.shape)

        calibration = read_npy(Path(calibration), where, check)
    x = np.asarray(calibration)
    if x.ndim != 3 or x.shape[2] != input_size or min(x.shape) < 1:
        raise LstmgenError(
            f"calibration inputs have shape {x.shape}, expected [N, T, {input_size}]"
        )
    if not np.issubdtype(x.dtype, np.number) or not np.all(np.isfinite(x)):
        raise LstmgenError("calibration inputs must be finite numbers")
    return x.astype(np.float32)


def activation_quant(low: float, high: float) -> Quant:
    """Asymmetric int8 quantization of the range [low, high] (extended to hold 0)."""
    low, high = min(low, 0.0), max(high, 0.0)
    if high - low < 1e-8:
        high = low + 1e-8
    scale = float(np.float32((high - low) / 255.0))
    zero = -128.0 - low / scale
    return Quant(scale, int(np.clip(round(zero), -128, 127)))


def symmetric_int8(w: np.ndarray, axis: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(int8 values, float32 scales): one scale, or one per slice along `axis`."""
    w = np.asarray(w, np.float64)
    peak = np.max(np.abs(w)) if axis is None else np.max(np.abs(w), axis=1 - axis)
    scale = np.where(np.asarray(peak) > 0, np.asarray(peak) / 127.0, 1.0).astype(np.float32)
    shaped = scale if axis is None else scale.reshape((-1, 1) if axis == 0 else (1, -1))
    q = np.clip(np.rint(w / shaped.astype(np.float64)), -127, 127).astype(np.int8)
    return q, np.atleast_1d(scale)


def bias_int32(b: np.ndarray | None, scale: np.ndarray, size: int) -> np.ndarray:
    if b is None:
        return np.zeros(size, np.int32)
    q = np.rint(np.asarray(b, np.float64) / np.asarray(scale, np.float64))
    return np.clip(q, -(2**31), 2**31 - 1).astype(np.int32)


def cell_scale(peak: float) -> float:
    """2^(ceil(log2 peak) - 15): int16 holds |c| up to peak (kept within 2^-12 .. 2^15)."""
    bits = math.ceil(math.log2(peak)) if peak > 0 else -12
    return 2.0 ** (min(max(bits, -12), 15) - 15)


def _lstm(layer: LSTM, x: Quant, hidden: Quant, peak: float) -> LSTMInt8:
    where = f"layer '{layer.name}'"
    if layer.features():
        raise ModelError(
            f"{where}: --quantize int8-full does not implement LSTM "
            f"{sorted(layer.features())[0]}; it implements the standard LSTM"
        )
    if (layer.gate_activation, layer.cell_activation, layer.output_activation) != (
        "sigmoid",
        "tanh",
        "tanh",
    ):
        raise ModelError(
            f"{where}: --quantize int8-full implements LSTMs with sigmoid gates and tanh cell "
            f"and output activations, not {layer.gate_activation}/{layer.cell_activation}/"
            f"{layer.output_activation}"
        )
    h, d = layer.units, layer.input_size
    w_parts, u_parts, w_scales, u_scales, biases = [], [], [], [], []
    for k in range(4):
        rows = slice(k * h, (k + 1) * h)
        qw, sw = symmetric_int8(layer.input_weights[rows])
        qu, su = symmetric_int8(layer.recurrent_weights[rows])
        w_parts.append(qw)
        u_parts.append(qu)
        w_scales.append(sw[0])
        u_scales.append(su[0])
        b = None if layer.bias is None else layer.bias[rows]
        biases.append(bias_int32(b, np.float64(x.scale) * np.float64(sw[0]), h))
    return LSTMInt8(
        name=layer.name,
        input_weights=np.ascontiguousarray(np.stack(w_parts).reshape(4, h, d)),
        recurrent_weights=np.ascontiguousarray(np.stack(u_parts).reshape(4, h, h)),
        bias=np.ascontiguousarray(np.stack(biases)),
        input_weight_scales=np.array(w_scales, np.float32),
        recurrent_weight_scales=np.array(u_scales, np.float32),
        input=x,
        hidden=hidden,
        cell_scale=cell_scale(peak),
        return_sequences=layer.return_sequences,
        go_backwards=layer.go_backwards,
    )


def _dense(layer: Dense, x: Quant, out: Quant) -> DenseInt8:
    if layer.activation not in DENSE_ACTIVATIONS:
        raise ModelError(
            f"layer '{layer.name}': --quantize int8-full implements Dense layers with "
            f"{' or '.join(DENSE_ACTIVATIONS)} activation, not {layer.activation}"
        )
    q, scales = symmetric_int8(layer.weights, axis=0)
    return DenseInt8(
        name=layer.name,
        weights=np.ascontiguousarray(q),
        bias=bias_int32(
            layer.bias, np.float64(x.scale) * scales.astype(np.float64), layer.output_size
        ),
        weight_scales=scales,
        input=x,
        output=out,
        activation=layer.activation,
    )


def quantize(model: Model, calibration: Any) -> Int8Model:
    """The integer model of `model` under TensorFlow Lite's scheme (module docstring)."""
    model.validate()
    x = read_calibration(calibration, model.input_size)
    for layer in model.layers:
        if not isinstance(layer, (LSTM, Bidirectional, Dense)) or (
            isinstance(layer, Bidirectional)
            and (not isinstance(layer.forward, LSTM) or layer.merge_mode != "concat")
        ):
            inner = f" of {layer.forward.kind}" if isinstance(layer, Bidirectional) else ""
            raise ModelError(
                f"--quantize int8-full does not implement {layer.kind}{inner} layers (layer "
                f"'{layer.name}'); it implements LSTM, Bidirectional LSTM (concat) and Dense "
                "(linear or relu)"
            )
    ranges = observe(model, x)
    current = activation_quant(*ranges.input)
    layers: list[LayerInt8] = []
    for layer in model.layers:
        if isinstance(layer, LSTM):
            hidden = activation_quant(*ranges.outputs[layer.name])
            layers.append(_lstm(layer, current, hidden, ranges.cell_peak[layer.name]))
            current = hidden
        elif isinstance(layer, Bidirectional):
            hidden = _shared(ranges, layer)
            fw, bw = layer.forward, layer.backward
            assert isinstance(fw, LSTM) and isinstance(bw, LSTM)
            layers.append(
                BidirectionalInt8(
                    layer.name,
                    _lstm(fw, current, hidden, ranges.cell_peak[fw.name]),
                    _lstm(bw, current, hidden, ranges.cell_peak[bw.name]),
                )
            )
            current = hidden
        else:
            assert isinstance(layer, Dense)
            out = activation_quant(*ranges.outputs[layer.name])
            layers.append(_dense(layer, current, out))
            current = out
    return Int8Model(
        input_size=model.input_size,
        layers=layers,
        input=activation_quant(*ranges.input),
        output=current,
        name=model.name,
        source=f"{model.source or 'lstmgen IR'}, quantized to int8 on {x.shape[0]} "
        f"calibration sequence(s)",
        timesteps=model.timesteps,
    ).validate()


def _shared(ranges: Ranges, layer: Bidirectional) -> Quant:
    lows, highs = zip(ranges.outputs[layer.forward.name], ranges.outputs[layer.backward.name])
    return activation_quant(min(lows), max(highs))
