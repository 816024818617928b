"""Weight quantization and fixed-point formats for the C target (`--quantize`).

Three modes, all derived from the float32 IR alone (no calibration data):

``int8`` / ``int16`` -- weights stored as integers, math in float.
    Symmetric, one scale per output unit: for an LSTM, per gate unit (one scale per column
    of the transposed [D][4H] / [H][4H] matrices the row-pass kernel reads, one set for W
    and one for U); for a Dense layer, per output row. ``q = round(w / s)`` with
    ``s = max|w of that unit| / QMAX`` (127 or 32767), so ``|w - q s| <= s / 2``. Biases stay
    float32. The kernel accumulates ``sum_k x_k q_kj`` in float and scales once per unit.

``fixed16`` -- everything integer, for cores without an FPU (Cortex-M0/M3).
    Every vector between layers is int16 in a Q format chosen per vector (see
    `FixedPlan`); weights are int16 with one power-of-two scale per output unit; products
    are summed in int64 and brought to the Q16.16 working format (int32) by a rounding
    right shift; activations are integer functions from Q16.16 to Q16.16; results are
    rounded and saturated to int16 when stored.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import LstmgenError
from ...ir import LSTM, Dense, Model
from .kinds import Stored, kind_of

QMAX = {"int8": 127, "int16": 32767}
#: Activations a quantized build has no code for (fixed16 has no integer log).
UNSUPPORTED_ACTIVATIONS: dict[str | None, set[str]] = {"fixed16": {"log_softmax"}}
CTYPE = {"int8": "int8_t", "int16": "int16_t"}
MODES = ("int8", "int16", "fixed16")

# ------------------------------------------------------------------ int8 / int16 weights --


def quantize_columns(w: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Quantize `w` [rows][cols] with one scale per column: (q same shape, scale [cols]).

    A column of zeros gets scale 1 (its q are all 0)."""
    qmax = QMAX[mode]
    w = np.asarray(w, np.float32)
    peak = np.max(np.abs(w), axis=0) if w.shape[0] else np.zeros(w.shape[1], np.float32)
    scale = np.where(peak > 0, peak / np.float32(qmax), np.float32(1.0)).astype(np.float32)
    q = np.clip(np.rint(w / scale), -qmax, qmax)
    return q.astype(np.int8 if mode == "int8" else np.int16), scale


@dataclass
class QuantLSTM:
    """An LSTM's weights for the int8/int16 kernel (transposed, per-gate-unit scales)."""

    Wt: np.ndarray  # [D][4H] integers
    Ut: np.ndarray  # [H][4H] integers
    ratio: np.ndarray  # [4H] float32: scale_W / scale_U (z is scaled to U's units first)
    scale: np.ndarray  # [4H] float32: scale_U


def quantize_lstm(layer: LSTM, mode: str) -> QuantLSTM:
    Wt, sw = quantize_columns(layer.input_weights.T, mode)
    Ut, su = quantize_columns(layer.recurrent_weights.T, mode)
    ratio = (sw / su).astype(np.float32)
    return QuantLSTM(np.ascontiguousarray(Wt), np.ascontiguousarray(Ut), ratio, su)


def quantize_dense(layer: Dense, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Dense weights [O][I] with one scale per output row: (q [O][I], scale [O])."""
    q, s = quantize_columns(layer.weights.T, mode)
    return np.ascontiguousarray(q.T), s


def dequantized_model(model: Model, mode: str) -> Model:
    """The IR with every weight replaced by the value the int8/int16 C code multiplies by
    (q * scale): the float64 reference of it is what the quantized kernels compute, up to
    float rounding. Lets tests separate kernel bugs from quantization error."""
    import copy

    out = copy.deepcopy(model)
    for part in (part for layer in out.layers for part in layer.parts()):
        dequantize = DEQUANTIZE.get(part.kind)
        if dequantize is not None:
            dequantize(part, mode)
    return out


def _dequantize_lstm(layer: LSTM, mode: str) -> None:
    q = quantize_lstm(layer, mode)
    su = q.scale.astype(np.float64)
    sw = q.ratio.astype(np.float64) * su
    layer.input_weights = (q.Wt.astype(np.float64) * sw).T.astype(np.float32)
    layer.recurrent_weights = (q.Ut.astype(np.float64) * su).T.astype(np.float32)


def _dequantize_dense(layer: Dense, mode: str) -> None:
    q, s = quantize_dense(layer, mode)
    layer.weights = (q.astype(np.float64) * s[:, None]).astype(np.float32)


def _dequantize_embedding(layer: Any, mode: str) -> None:
    q, s = quantize_columns(layer.weights.T, mode)
    layer.weights = (q.T.astype(np.float64) * s[:, None]).astype(np.float32)


DEQUANTIZE: dict[str, Callable[[Any, str], None]] = {
    "lstm": _dequantize_lstm,
    "dense": _dequantize_dense,
    "embedding": _dequantize_embedding,
}


# ------------------------------------------------------ the arrays each mode stores --


def layer_arrays(layer: Any, mode: str | None, fixed: FixedLayer | None) -> dict[str, Stored]:
    """The arrays of `layer` as the build in `mode` stores them (float32 where the mode
    has no integer form for the kind), by the suffix of their C identifier."""
    prepare = QUANTIZED_ARRAYS.get((layer.kind, mode or ""))
    if prepare is None:
        return kind_of(layer.kind).arrays(layer)
    return prepare(layer, mode, fixed)


def _lstm_integer(layer: LSTM, mode: str, fixed: FixedLayer | None) -> dict[str, Stored]:
    q = quantize_lstm(layer, mode)
    return {
        "Wt": Stored(q.Wt, CTYPE[mode]),
        "Ut": Stored(q.Ut, CTYPE[mode]),
        "ratio": Stored(q.ratio),
        "scale": Stored(q.scale),
        **({"b": Stored(layer.bias)} if layer.bias is not None else {}),
    }


def _embedding_integer(layer: Any, mode: str, fixed: FixedLayer | None) -> dict[str, Stored]:
    """The table with one scale per row (per token id)."""
    q, s = quantize_columns(layer.weights.T, mode)
    return {"W": Stored(np.ascontiguousarray(q.T), CTYPE[mode]), "scale": Stored(s)}


def _embedding_fixed(layer: Any, mode: str, fixed: FixedLayer | None) -> dict[str, Stored]:
    assert fixed is not None and fixed.table is not None
    return {"W": Stored(fixed.table, "int16_t")}


def _dense_integer(layer: Dense, mode: str, fixed: FixedLayer | None) -> dict[str, Stored]:
    q, s = quantize_dense(layer, mode)
    return {
        "W": Stored(q, CTYPE[mode]),
        "scale": Stored(s),
        **({"b": Stored(layer.bias)} if layer.bias is not None else {}),
    }


def _fixed_arrays(layer: Any, mode: str, fixed: FixedLayer | None) -> dict[str, Stored]:
    """W, Wshift (U, Ushift) and b of an LSTM or Dense layer in fixed16."""
    assert fixed is not None and fixed.W is not None
    out = {"W": Stored(fixed.W.q, "int16_t"), "Wshift": Stored(fixed.W.shift, "int8_t")}
    if fixed.U is not None:
        out.update(U=Stored(fixed.U.q, "int16_t"), Ushift=Stored(fixed.U.shift, "int8_t"))
    if fixed.bias is not None:
        out["b"] = Stored(fixed.bias, "int32_t")
    return out


QUANTIZED_ARRAYS: dict[tuple[str, str], Callable[..., dict[str, Stored]]] = {
    ("lstm", "int8"): _lstm_integer,
    ("lstm", "int16"): _lstm_integer,
    ("dense", "int8"): _dense_integer,
    ("dense", "int16"): _dense_integer,
    ("lstm", "fixed16"): _fixed_arrays,
    ("dense", "fixed16"): _fixed_arrays,
    ("embedding", "int8"): _embedding_integer,
    ("embedding", "int16"): _embedding_integer,
    ("embedding", "fixed16"): _embedding_fixed,
}


# ------------------------------------------------------------------------- fixed16 --


WORK_FRAC = 16  # the working format of pre-activations and activations: Q16.16 int32
INPUT_FRAC = 12  # model input x: Q3.12, |x| < 8
STATE_C_FRAC = 11  # LSTM cell state c: Q4.11, |c| < 16
UNBOUNDED_FRAC = 11  # a vector with no known bound (relu/linear/elu/softplus): Q4.11
MIN_FRAC, MAX_FRAC = 2, 14
# |f(x)| <= 1 for every x: such a layer's output fits Q1.14
BOUNDED = {"sigmoid", "tanh", "softsign", "hard_sigmoid_keras3", "hard_sigmoid_0.2", "softmax"}
SIGMOID_STEP_BITS = 4  # sigmoid table: step 1/16 over [0, 16)
SOFTPLUS_STEP_BITS = 5  # log(1 + e^-a) table: step 1/32 over [0, 16)
TABLE_RANGE = 16


def frac_for_bound(bound: float) -> int:
    """Largest Q fraction bits (<= 14) whose int16 range holds |v| <= bound."""
    if not math.isfinite(bound):
        return UNBOUNDED_FRAC
    if bound <= 1.0:
        return MAX_FRAC
    return int(min(MAX_FRAC, max(MIN_FRAC, 14 - math.floor(math.log2(bound)))))


def _act_bound(name: str, bound_in: float) -> float:
    if name in BOUNDED:
        return 1.0
    if name == "elu":
        return max(bound_in, 1.0)
    if name == "softplus":
        return bound_in + math.log(2.0)
    return bound_in  # linear, relu


@dataclass
class FixedMatrix:
    """int16 weights [rows][cols] with a per-row right shift to Q16.16."""

    q: np.ndarray  # int16 [rows][cols]
    shift: np.ndarray  # int8 [rows]: (input frac + weight frac) - 16
    frac: np.ndarray  # int [rows]: weight fraction bits (q = round(w * 2^frac))


@dataclass
class FixedLayer:
    in_frac: int
    out_frac: int
    W: FixedMatrix | None = None  # LSTM input weights [4H][D] / Dense weights [O][I]
    U: FixedMatrix | None = None  # LSTM recurrent weights [4H][H]
    bias: np.ndarray | None = None  # int32, Q16.16
    c_frac: int = STATE_C_FRAC
    logits_frac: int = 0  # Dense + softmax: the logits' format before it
    table: np.ndarray | None = None  # Embedding: the rows in the output format


@dataclass
class FixedPlan:
    input_frac: int
    output_frac: int
    layers: list[FixedLayer] = field(default_factory=list)


def fixed_matrix(w: np.ndarray, in_frac: int, where: str) -> FixedMatrix:
    w = np.asarray(w, np.float64)
    peak = np.max(np.abs(w), axis=1)
    lowest = WORK_FRAC - in_frac  # the shift to Q16.16 must not be negative
    frac = np.empty(w.shape[0], dtype=np.int64)
    for r, m in enumerate(peak):
        f = 40 if m == 0 else int(math.floor(math.log2(32767.0 / m)))
        frac[r] = min(f, 40)
        if frac[r] < lowest:
            raise LstmgenError(
                f"{where}: weight {m:g} is too large for --quantize fixed16 "
                f"(at most {32767.0 / 2**lowest:g} with this input format)"
            )
    q = np.clip(np.rint(w * np.exp2(frac)[:, None]), -32767, 32767).astype(np.int16)
    shift = (frac + in_frac - WORK_FRAC).astype(np.int8)
    return FixedMatrix(q=q, shift=shift, frac=frac)


def fixed_bias(b: np.ndarray | None, where: str) -> np.ndarray | None:
    if b is None:
        return None
    v = np.rint(np.asarray(b, np.float64) * 2.0**WORK_FRAC)
    if np.any(np.abs(v) > 2**31 - 1):
        raise LstmgenError(f"{where}: a bias is too large for --quantize fixed16 (|b| < 32768)")
    return v.astype(np.int32)


def fixed_plan(model: Model) -> FixedPlan:
    """Q formats of every vector and the integer weights of every layer.

    The format of each vector follows from a bound on its values: the input is taken as
    |x| < 8 (Q3.12, documented; larger values saturate), a bounded activation (sigmoid,
    tanh, softsign, hard sigmoids, softmax) gives |v| <= 1 (Q1.14), a Dense layer's
    output is bounded by sum|w| * bound(x) + |b| (interval arithmetic), an LSTM with
    bounded gate and output activations has |h| <= 1; anything else is Q4.11."""
    plan = FixedPlan(input_frac=INPUT_FRAC, output_frac=0)
    frac, bound = INPUT_FRAC, 8.0
    for layer in model.layers:
        fl, bound = FIXED_FORMATS[layer.kind](layer, frac, bound, f"layer '{layer.name}'")
        frac = fl.out_frac
        plan.layers.append(fl)
    plan.output_frac = frac
    return plan


def _fixed_lstm(layer: LSTM, frac: int, bound: float, where: str) -> tuple[FixedLayer, float]:
    gate = 1.0 if layer.gate_activation in BOUNDED else math.inf
    out = 1.0 if layer.output_activation in BOUNDED else math.inf
    bound_h = gate * out
    h_frac = frac_for_bound(bound_h)
    fl = FixedLayer(
        in_frac=frac,
        out_frac=h_frac,
        W=fixed_matrix(layer.input_weights, frac, where),
        U=fixed_matrix(layer.recurrent_weights, h_frac, where),
        bias=fixed_bias(layer.bias, where),
    )
    return fl, bound_h


def _fixed_dense(layer: Dense, frac: int, bound: float, where: str) -> tuple[FixedLayer, float]:
    w = np.abs(layer.weights.astype(np.float64))
    b = 0.0 if layer.bias is None else np.abs(layer.bias.astype(np.float64))
    pre = float(np.max(w.sum(axis=1) * bound + b))
    out_bound = _act_bound(layer.activation, pre)
    fl = FixedLayer(
        in_frac=frac,
        out_frac=frac_for_bound(out_bound),
        W=fixed_matrix(layer.weights, frac, where),
        bias=fixed_bias(layer.bias, where),
    )
    if layer.activation == "softmax":
        fl.logits_frac = frac_for_bound(pre)
    return fl, out_bound


def _fixed_activation(layer: Any, frac: int, bound: float, where: str) -> tuple[FixedLayer, float]:
    out_bound = _act_bound(layer.activation, bound)
    return FixedLayer(in_frac=frac, out_frac=frac_for_bound(out_bound)), out_bound


def _fixed_same(layer: Any, frac: int, bound: float, where: str) -> tuple[FixedLayer, float]:
    """A layer that only moves vectors: the same format out as in."""
    return FixedLayer(in_frac=frac, out_frac=frac), bound


def _fixed_embedding(layer: Any, frac: int, bound: float, where: str) -> tuple[FixedLayer, float]:
    """The table in the largest format that holds its largest value."""
    table = np.asarray(layer.weights, np.float64)
    peak = float(np.max(np.abs(table)))
    out = frac_for_bound(peak)
    if peak >= 2.0 ** (15 - out):
        raise LstmgenError(f"{where}: an embedding value is too large for --quantize fixed16")
    return FixedLayer(in_frac=0, out_frac=out, table=to_fixed(table, out)), peak


FixedFormat = Callable[[Any, int, float, str], tuple[FixedLayer, float]]
#: How each kind fixed16 implements maps its input's format and bound to its output's.
FIXED_FORMATS: dict[str, FixedFormat] = {
    "lstm": _fixed_lstm,
    "dense": _fixed_dense,
    "activation": _fixed_activation,
    "embedding": _fixed_embedding,
    "repeat_vector": _fixed_same,
    "time_slice": _fixed_same,
}


def sigmoid_table() -> np.ndarray:
    """(sigmoid(a) - 1/2) in Q16.16 at a = k / 16, k = 0..256 (uint16, <= 32768)."""
    a = np.arange(TABLE_RANGE * 2**SIGMOID_STEP_BITS + 1) / 2.0**SIGMOID_STEP_BITS
    return np.rint((0.5 * np.tanh(0.5 * a)) * 65536).astype(np.uint16)


def softplus_table() -> np.ndarray:
    """log(1 + e^-a) in Q16.16 at a = k / 32, k = 0..512 (uint16)."""
    a = np.arange(TABLE_RANGE * 2**SOFTPLUS_STEP_BITS + 1) / 2.0**SOFTPLUS_STEP_BITS
    return np.rint(np.log1p(np.exp(-a)) * 65536).astype(np.uint16)


def exp2_poly() -> list[int]:
    """Coefficients (Q30, highest degree first) of a degree-5 polynomial for 2^f on [0, 1),
    a least-squares fit on Chebyshev nodes (max relative error ~2e-7 before rounding)."""
    n = 64
    f = 0.5 + 0.5 * np.cos((2 * np.arange(n) + 1) * np.pi / (2 * n))
    coef = np.polyfit(f, np.exp2(f), 5)
    coef[-1] = 1.0  # exact at f = 0, so e^0 is exactly 1
    return [int(round(c * 2**30)) for c in coef]


def to_fixed(x: np.ndarray, frac: int) -> np.ndarray:
    """float -> int16 Q(frac), rounded to nearest, saturated (what a caller does)."""
    v = np.rint(np.asarray(x, np.float64) * 2.0**frac)
    v = np.where(np.isnan(v), 0.0, v)
    return np.clip(v, -32768, 32767).astype(np.int16)


def from_fixed(q: np.ndarray, frac: int) -> np.ndarray:
    return (np.asarray(q, np.float64) / 2.0**frac).astype(np.float32)
