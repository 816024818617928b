"""TensorFlow Lite's recurrent and dense operators as IR layers (float and integer).

What each operator stores, and where it goes:

* `UNIDIRECTIONAL_SEQUENCE_LSTM`, 24 inputs: 0 the input; 1-4 input-to-{input, forget,
  cell, output} weights [H, D]; 5-8 recurrent-to-{...} weights [H, P]; 9-11 peepholes
  cell-to-{input, forget, output} [H]; 12-15 gate biases [H]; 16 projection weights [P, H];
  17 projection bias [P]; 18 the hidden state and 19 the cell state (variables that start at
  zero); 20-23 layer-normalization coefficients. Gate order i, f, c, o is the IR's i, f, g,
  o, one [H, D] block per gate: the IR stacks them into 4H rows as they are. The fused
  activation is the IR's cell and output activation; the gate activation is the sigmoid.
* `BIDIRECTIONAL_SEQUENCE_LSTM`, 48 inputs: the forward cell in 1-17, the backward cell in
  18-34 (each laid out as 1-17 above), the four states in 35-38, an auxiliary input in
  39-47 (refused).
* `UNIDIRECTIONAL_SEQUENCE_RNN`: 0 the input, 1 weights [H, D], 2 recurrent weights [H, H],
  3 bias [H], 4 the hidden state; h' = act(W x + U h + b), the IR's SimpleRNN.
* `FULLY_CONNECTED`: weights [O, I] (the IR's Dense layout as is), optional bias [O], a fused
  activation.

A full-integer model (int8 activations) also gets its integer layers (`lstmgen.ir.int8`):
the int8 weights, int32 biases and the scales of the tensors each operator reads and writes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ...errors import ModelError, UnsupportedLayerError
from ...ir import LSTM, Dense, SimpleRNN, float32
from ...ir.int8 import DenseInt8, LSTMInt8, Quant
from .schema import FUSED_ACTIVATIONS, Operator, Tensor

GATES = ("input", "forget", "cell", "output")
LSTM_ORIGIN = (
    "TFLite UNIDIRECTIONAL_SEQUENCE_LSTM: input-to-{input,forget,cell,output} weights "
    "(inputs 1-4, [H, D] each) -> input_weights rows i,f,g,o; recurrent-to-* (5-8) -> "
    "recurrent_weights; gate biases (12-15) -> bias; fused activation -> cell and output "
    "activation; gates sigmoid"
)
RNN_ORIGIN = (
    "TFLite UNIDIRECTIONAL_SEQUENCE_RNN: weights (input 1, [H, D]) -> input_weights, "
    "recurrent weights (2) -> recurrent_weights, bias (3) -> bias, fused activation"
)
DENSE_ORIGIN = "TFLite FULLY_CONNECTED: weights [O, I] -> weights as is; bias; fused activation"
#: fused activations the float IR has
FLOAT_ACTIVATIONS = {"NONE": "linear", "RELU": "relu", "TANH": "tanh"}
#: fused activations of a FULLY_CONNECTED the integer kernel implements (a clamp)
INT8_CLAMPS = {"NONE": "linear", "RELU": "relu", "RELU6": "relu6", "RELU_N1_TO_1": "relu_n1_to_1"}


class Operands:
    """How layer builders see an operator's inputs: constants, absent inputs, tensors."""

    def __init__(
        self,
        op: Operator,
        tensors: list[Tensor],
        constant: Callable[[int], np.ndarray | None],
    ) -> None:
        self.op, self.tensors, self._constant = op, tensors, constant

    def refuse(self, why: str) -> UnsupportedLayerError:
        return UnsupportedLayerError(f"{self.op.label}: {why}")

    def present(self, k: int) -> bool:
        return k < len(self.op.inputs) and self.op.inputs[k] >= 0

    def tensor(self, k: int) -> Tensor:
        if not self.present(k):
            raise self.refuse(f"input {k} is missing")
        return self.tensors[self.op.inputs[k]]

    def raw(self, k: int, shape: tuple[int, ...], what: str) -> np.ndarray:
        """The stored constant of input k (any dtype), checked against `shape`."""
        t = self.tensor(k)
        value = self._constant(t.index)
        if value is None:
            raise self.refuse(f"{what} (input {k}, {t.label}) must be a constant")
        if tuple(value.shape) != shape:
            raise ModelError(
                f"{self.op.label}: {what} ({t.label}) has shape {list(value.shape)}, "
                f"expected {list(shape)}"
            )
        return value

    def real(self, k: int, shape: tuple[int, ...], what: str) -> np.ndarray:
        """Input k as float32 values: a float constant, or an int8/int32 one dequantized."""
        value = self.raw(k, shape, what)
        if value.dtype == np.float32:
            out = value
        elif value.dtype in (np.int8, np.int32):
            t = self.tensor(k)
            scale = _scales(t, self.op, what, allow_per_channel=True)
            axis_shape = [1] * value.ndim
            if len(scale) > 1:
                axis_shape[t.quantized_dimension] = len(scale)
            zero = np.asarray(t.zero_point, np.float64).reshape(axis_shape)
            out = (value.astype(np.float64) - zero) * scale.astype(np.float64).reshape(axis_shape)
        else:
            raise self.refuse(f"{what} ({self.tensor(k).label}) has type {value.dtype}")
        if not np.all(np.isfinite(out)):
            raise ModelError(f"{self.op.label}: {what} holds NaN or Inf values")
        return float32(out)

    def option_activation(self, slot: int) -> str:
        code = int(self.op.option(slot, "int8", 0))
        return FUSED_ACTIVATIONS.get(code, f"#{code}")


def quant_of(t: Tensor, op: Operator, what: str, bits: int = 8) -> Quant:
    """The per-tensor quantization of an int8/int16 activation tensor."""
    if t.scale is None or t.zero_point is None:
        raise ModelError(f"{op.label}: {what} ({t.label}) has no quantization parameters")
    if len(t.scale) != 1:
        raise ModelError(f"{op.label}: {what} ({t.label}) must have one scale, has {len(t.scale)}")
    q = Quant(float(t.scale[0]), int(t.zero_point[0]))
    q.check(f"{op.label}: {what} ({t.label})", bits)
    return q


def _scales(t: Tensor, op: Operator, what: str, allow_per_channel: bool) -> np.ndarray:
    if t.scale is None or t.zero_point is None:
        raise ModelError(f"{op.label}: {what} ({t.label}) is an integer constant without scales")
    scale = np.asarray(t.scale, np.float32)
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise ModelError(f"{op.label}: {what} ({t.label}) has a zero, negative or NaN scale")
    if len(scale) > 1 and not allow_per_channel:
        raise UnsupportedLayerError(
            f"{op.label}: {what} ({t.label}) has {len(scale)} per-channel scales; the integer "
            "LSTM kernel (TFLite Micro's) takes one scale per gate matrix"
        )
    return scale


def _symmetric_int8(ops: Operands, k: int, shape: tuple[int, ...], what: str) -> np.ndarray:
    value = ops.raw(k, shape, what)
    t = ops.tensor(k)
    if value.dtype != np.int8:
        raise ops.refuse(f"{what} ({t.label}) is {value.dtype}; full-integer weights are int8")
    if t.zero_point is None or np.any(t.zero_point != 0):
        raise ModelError(f"{ops.op.label}: {what} ({t.label}) must have zero point 0")
    return value


# ------------------------------------------------------------------------- LSTM --


def lstm_cell(
    ops: Operands, base: int, d: int, name: str, integer: bool, options: dict
) -> tuple[LSTM, LSTMInt8 | None]:
    """One LSTM cell whose weights start at input `base` (1 for the unidirectional op, 1
    and 18 for the two cells of the bidirectional one); `options` from the op."""
    if not ops.present(base + 0):
        raise ops.refuse(
            "coupled input and forget gates (CIFG: no input-to-input weights) are not in the "
            "IR; lstmgen reads LSTMs with all four gates"
        )
    h = int(ops.tensor(base + 1).shape[0]) if ops.tensor(base + 1).shape else 0
    if h <= 0:
        raise ModelError(f"{ops.op.label}: input-to-forget weights have no units")
    p = h
    if ops.present(base + 15):
        shape = ops.tensor(base + 15).shape
        if len(shape) != 2:
            raise ModelError(f"{ops.op.label}: projection weights must be [P, H]")
        p = int(shape[0])
    if ops.present(base + 16):
        raise ops.refuse("a projection bias (input 17) is not in the IR")
    activation = options["activation"]
    if activation not in FLOAT_ACTIVATIONS and not integer:
        raise ops.refuse(
            f"fused activation {activation} is not supported; supported: TANH, RELU, NONE"
        )
    if options["proj_clip"] > 0:
        raise ops.refuse("proj_clip (clipping of the projection) is not in the IR")
    if options.get("diagonal_recurrent"):
        raise ops.refuse("diagonal recurrent weights are not in the IR")
    w = [ops.real(base + k, (h, d), f"input-to-{g} weights") for k, g in enumerate(GATES)]
    u = [ops.real(base + 4 + k, (h, p), f"recurrent-to-{g} weights") for k, g in enumerate(GATES)]
    b = [
        ops.real(base + 11 + k, (h,), f"{g} gate bias")
        if ops.present(base + 11 + k)
        else np.zeros(h, np.float32)
        for k, g in enumerate(GATES)
    ]
    peephole = _peephole(ops, base, h)
    projection = None
    if ops.present(base + 15):
        projection = ops.real(base + 15, (p, h), "projection weights")
    layer = LSTM(
        name=name,
        input_weights=float32(np.concatenate(w)),
        recurrent_weights=float32(np.concatenate(u)),
        bias=float32(np.concatenate(b)),
        cell_activation=FLOAT_ACTIVATIONS.get(activation, "tanh"),
        output_activation=FLOAT_ACTIVATIONS.get(activation, "tanh"),
        return_sequences=True,
        peephole=peephole,
        projection=projection,
        origin=LSTM_ORIGIN,
    )
    if not integer:
        return layer, None
    if peephole is not None or projection is not None:
        raise ops.refuse(
            "peepholes and projection are not in the integer kernel (TFLite Micro's "
            "integer LSTM has neither)"
        )
    if activation not in ("TANH",):
        raise ops.refuse(f"fused activation {activation}: the integer LSTM implements TANH")
    return layer, _lstm_int8(ops, base, h, d, name, options)


def _peephole(ops: Operands, base: int, h: int) -> np.ndarray | None:
    slots = (base + 8, base + 9, base + 10)  # cell-to-input, -forget, -output
    if not any(ops.present(s) for s in slots):
        return None
    rows = [
        ops.real(s, (h,), f"cell-to-{g} (peephole) weights")
        if ops.present(s)
        else np.zeros(h, np.float32)
        for s, g in zip(slots, ("input", "forget", "output"))
    ]
    return float32(np.stack(rows))


def _lstm_int8(ops: Operands, base: int, h: int, d: int, name: str, options: dict) -> LSTMInt8:
    w = np.stack(
        [
            _symmetric_int8(ops, base + k, (h, d), f"input-to-{g} weights")
            for k, g in enumerate(GATES)
        ]
    )
    u = np.stack(
        [
            _symmetric_int8(ops, base + 4 + k, (h, h), f"recurrent-to-{g} weights")
            for k, g in enumerate(GATES)
        ]
    )
    biases = []
    for k, g in enumerate(GATES):
        if not ops.present(base + 11 + k):
            biases.append(np.zeros(h, np.int32))
            continue
        value = ops.raw(base + 11 + k, (h,), f"{g} gate bias")
        if value.dtype != np.int32:
            raise ops.refuse(f"{g} gate bias is {value.dtype}; full-integer biases are int32")
        biases.append(value)
    scale_w = np.array(
        [
            _scales(ops.tensor(base + k), ops.op, f"input-to-{g} weights", False)[0]
            for k, g in enumerate(GATES)
        ],
        np.float32,
    )
    scale_u = np.array(
        [
            _scales(ops.tensor(base + 4 + k), ops.op, f"recurrent-to-{g} weights", False)[0]
            for k, g in enumerate(GATES)
        ],
        np.float32,
    )
    states = options["states"]  # (hidden state tensor, cell state tensor)
    hidden = quant_of(states[0], ops.op, "hidden state")
    cell = states[1]
    if cell.dtype != "int16":
        raise ops.refuse(
            f"the cell state ({cell.label}) is {cell.dtype}; the integer LSTM keeps it in int16"
        )
    cell_q = quant_of(cell, ops.op, "cell state", bits=16)
    if cell_q.zero_point != 0:
        raise ModelError(f"{ops.op.label}: the cell state ({cell.label}) must have zero point 0")
    return LSTMInt8(
        name=name,
        input_weights=np.ascontiguousarray(w),
        recurrent_weights=np.ascontiguousarray(u),
        bias=np.ascontiguousarray(np.stack(biases).astype(np.int32)),
        input_weight_scales=scale_w,
        recurrent_weight_scales=scale_u,
        input=options["input_quant"],
        hidden=hidden,
        cell_scale=cell_q.scale,
        cell_activation="tanh",
        cell_clip=float(options["cell_clip"]),
        return_sequences=True,
    )


# -------------------------------------------------------------------------- RNN --


def simple_rnn(ops: Operands, d: int, name: str, activation: str) -> SimpleRNN:
    if activation not in FLOAT_ACTIVATIONS:
        raise ops.refuse(
            f"fused activation {activation} is not supported; supported: TANH, RELU, NONE"
        )
    shape = ops.tensor(1).shape
    h = int(shape[0]) if len(shape) == 2 else 0
    if h <= 0:
        raise ModelError(f"{ops.op.label}: weights must be [H, D]")
    return SimpleRNN(
        name=name,
        input_weights=ops.real(1, (h, d), "weights"),
        recurrent_weights=ops.real(2, (h, h), "recurrent weights"),
        bias=ops.real(3, (h,), "bias") if ops.present(3) else None,
        activation=FLOAT_ACTIVATIONS[activation],
        return_sequences=True,
        origin=RNN_ORIGIN,
    )


# ------------------------------------------------------------------------ Dense --


def dense(
    ops: Operands, width: int, name: str, integer: bool, quants: tuple[Quant, Quant] | None
) -> tuple[Dense, DenseInt8 | None]:
    shape = ops.tensor(1).shape
    if len(shape) != 2 or shape[1] != width:
        raise ModelError(
            f"{ops.op.label}: weights have shape {list(shape)}, expected [units, {width}]"
        )
    if int(ops.op.option(1, "int8", 0)) != 0:
        raise ops.refuse("shuffled (non-default) weights formats are not supported")
    o = int(shape[0])
    activation = ops.option_activation(0)
    weights = ops.real(1, (o, width), "weights")
    bias = ops.real(2, (o,), "bias") if ops.present(2) else None
    float_act = FLOAT_ACTIVATIONS.get(activation)
    if float_act is None:
        raise ops.refuse(
            f"fused activation {activation} is not supported; supported: "
            + ", ".join(FLOAT_ACTIVATIONS)
        )
    layer = Dense(name, weights, bias, float_act, origin=DENSE_ORIGIN)
    if not integer:
        return layer, None
    assert quants is not None
    if activation not in INT8_CLAMPS:
        raise ops.refuse(
            f"fused activation {activation} is not in the integer kernel; supported: "
            + ", ".join(INT8_CLAMPS)
        )
    q = _symmetric_int8(ops, 1, (o, width), "weights")
    scales = _scales(ops.tensor(1), ops.op, "weights", allow_per_channel=True)
    if len(scales) > 1 and ops.tensor(1).quantized_dimension != 0:
        raise ModelError(f"{ops.op.label}: per-channel weight scales must be along the units")
    b = None
    if ops.present(2):
        b = ops.raw(2, (o,), "bias")
        if b.dtype != np.int32:
            raise ops.refuse(f"bias is {b.dtype}; full-integer biases are int32")
    return layer, DenseInt8(
        name=name,
        weights=np.ascontiguousarray(q),
        bias=None if b is None else np.ascontiguousarray(b.astype(np.int32)),
        weight_scales=scales,
        input=quants[0],
        output=quants[1],
        activation=INT8_CLAMPS[activation],
    )
