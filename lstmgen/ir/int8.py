"""The integer-only (full-int8) model description: what an integer kernel needs, nothing more.

This is the IR of `--quantize int8-full`, framework-neutral like `lstmgen.ir`: a TFLite file
quantized by its converter and a float model quantized by `lstmgen.quantize_int8` both
become an `Int8Model`, and one kernel (the C renderer, the numpy reference) runs it.

The scheme (TensorFlow Lite's integer LSTM, "8x8->16")
------------------------------------------------------
A real value v is stored as an integer q with ``v = scale * (q - zero_point)`` (`Quant`).

* Activations between layers (the input x, every LSTM hidden state h, every Dense output)
  are int8 with their own scale and zero point (asymmetric).
* Weights are int8, symmetric (zero point 0): one scale per gate matrix for an LSTM (each of
  the 4 input and 4 recurrent matrices), one per output channel (or one) for a Dense layer.
* Biases are int32 with scale = input scale x weight scale, zero point 0.
* Inside an LSTM, every gate pre-activation is int16 with scale 2^-12 (Q3.12), every gate
  output int16 with scale 2^-15 (Q0.15), and the cell state c is int16 with a power-of-two
  scale 2^cell_power (for example 2^-11: |c| < 16).
* A real factor M (a ratio of scales) is applied to an integer as a `Multiplier`: a Q31
  significand m in [2^30, 2^31) and a power of two, ``M ~= m * 2^(shift - 31)``, evaluated
  with rounding as gemmlowp does (a rounding doubling high multiply, then a rounding right
  shift).

One LSTM step (gates i, f, g, o, each a vector of H int16):

    z_k   = sat16(rescale(W_k (x - zx) + b_k, Mx_k)) +sat sat16(rescale(U_k (h - zh), Mh_k))
    i,f,o = sigmoid16(z), g = tanh16(z)      (Q3.12 -> Q0.15, table interpolation)
    c     = sat16(rescale(f * c, Mfc)) +sat sat16(rescale(i * g, Mig)), then clipped to
            +-cell_clip when it is set
    h     = clamp8(zh + rescale(tanh16(c, 2^cell_power) * o, Mh))

with Mx_k = sx sW_k / 2^-12, Mh_k = sh sU_k / 2^-12, Mfc = 2^-15, Mig = 2^-30 / sc,
Mh = 2^-30 / sh. A Dense layer computes clamp8(zo + rescale(W (x - zx) + b, sx sW / so))
clamped to its activation's range. The derived quantities (multipliers, zero-point-folded
biases) are computed here from the scales, so every consumer uses the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Union

import numpy as np

from ..errors import ModelError
from .base import KeepsSize

GATE_PRE_SCALE_POWER = -12  # gate pre-activations: Q3.12
GATE_OUT_SCALE_POWER = -15  # gate outputs: Q0.15
INT8_RANGE = (-128, 127)
INT16_RANGE = (-32768, 32767)


@dataclass(frozen=True)
class Quant:
    """Affine quantization of one tensor: real = scale * (q - zero_point)."""

    scale: float  # a float32 value
    zero_point: int

    def check(self, where: str, bits: int = 8) -> None:
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ModelError(f"{where}: quantization scale {self.scale!r} must be positive")
        low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        if not low <= self.zero_point <= high:
            raise ModelError(
                f"{where}: zero point {self.zero_point} is outside the int{bits} range"
            )


@dataclass(frozen=True)
class Multiplier:
    """A positive real factor as significand * 2^(shift - 31) (significand < 2^31)."""

    significand: int
    shift: int

    @staticmethod
    def of(real: float) -> Multiplier:
        """Decompose `real` (>= 0) as TFLite's QuantizeMultiplier does: frexp, the
        significand rounded half away from zero to 31 bits, a factor under 2^-31 is 0."""
        if real == 0.0:
            return Multiplier(0, 0)
        if not (math.isfinite(real) and real > 0):
            raise ModelError(f"a rescaling factor {real!r} must be positive and finite")
        fraction, shift = math.frexp(real)
        q = _round_half_away(fraction * float(1 << 31))
        if q == 1 << 31:
            q //= 2
            shift += 1
        if shift < -31:
            return Multiplier(0, 0)
        if shift > 30:
            raise ModelError(f"a rescaling factor {real!r} is too large (over 2^30)")
        return Multiplier(int(q), int(shift))

    @property
    def real(self) -> float:
        return self.significand * 2.0 ** (self.shift - 31)


def _round_half_away(x: float) -> int:
    return int(math.floor(x + 0.5)) if x >= 0 else -int(math.floor(-x + 0.5))


def scale_ratio(a: float, b: float, c: float) -> float:
    """a * b / c for three float32 scales, in double precision: the factor TensorFlow Lite
    Micro computes for a product of scales (checked bit for bit against it: rounding the
    product a * b to float32 first gives multipliers that differ in the last bits)."""
    return float(a) * float(b) / float(c)


@dataclass
class LSTMInt8:
    """An LSTM of the integer scheme (module docstring); gate blocks i, f, g, o."""

    name: str
    input_weights: np.ndarray  # int8 (4, H, D)
    recurrent_weights: np.ndarray  # int8 (4, H, H)
    bias: np.ndarray  # int32 (4, H)
    input_weight_scales: np.ndarray  # float32 (4,): one per gate matrix
    recurrent_weight_scales: np.ndarray  # float32 (4,)
    input: Quant  # x (int8)
    hidden: Quant  # h (int8): the state and the output
    cell_scale: float  # c (int16, zero point 0): a power of two
    cell_activation: str = "tanh"  # of g and of c before the output gate (tanh only)
    cell_clip: float = 0.0  # |c| clipped to this real value when > 0
    return_sequences: bool = False
    go_backwards: bool = False

    kind = "lstm"

    @property
    def units(self) -> int:
        return int(self.input_weights.shape[1])

    @property
    def input_size(self) -> int:
        return int(self.input_weights.shape[2])

    @property
    def output_size(self) -> int:
        return self.units

    @property
    def cell_power(self) -> int:
        """The exponent p of the cell scale 2^p (rounded like TFLite's CheckedLog2)."""
        return int(round(math.log2(self.cell_scale)))

    def gate_input_multipliers(self) -> list[Multiplier]:
        """W_k (x - zx) + b_k -> gate pre-activation (Q3.12), per gate."""
        return [
            Multiplier.of(scale_ratio(self.input.scale, s, 2.0**GATE_PRE_SCALE_POWER))
            for s in self.input_weight_scales
        ]

    def gate_recurrent_multipliers(self) -> list[Multiplier]:
        """U_k (h - zh) -> gate pre-activation (Q3.12), per gate."""
        return [
            Multiplier.of(scale_ratio(self.hidden.scale, s, 2.0**GATE_PRE_SCALE_POWER))
            for s in self.recurrent_weight_scales
        ]

    def forget_multiplier(self) -> Multiplier:
        """f (Q0.15) * c -> c."""
        return Multiplier.of(2.0**GATE_OUT_SCALE_POWER * float(self.cell_scale) / self.cell_scale)

    def input_multiplier(self) -> Multiplier:
        """i (Q0.15) * g (Q0.15) -> c."""
        return Multiplier.of(2.0 ** (2 * GATE_OUT_SCALE_POWER) / float(self.cell_scale))

    def hidden_multiplier(self) -> Multiplier:
        """squash(c) (Q0.15) * o (Q0.15) -> h (int8, before adding its zero point)."""
        return Multiplier.of(2.0 ** (2 * GATE_OUT_SCALE_POWER) / float(self.hidden.scale))

    def quantized_cell_clip(self) -> int:
        """The clip as an int16 of the cell scale (0: no clip)."""
        if self.cell_clip <= 0:
            return 0
        return int(min(max(float(self.cell_clip) / float(self.cell_scale), -32768.0), 32767.0))

    def folded_input_bias(self) -> np.ndarray:
        """int32 (4, H): b_k - zx * rowsum(W_k), so the kernel sums W_k x on raw int8."""
        folded = self.bias.astype(np.int64) - self.input.zero_point * self.input_weights.astype(
            np.int64
        ).sum(axis=2)
        return _int32(folded, f"layer '{self.name}': input bias")

    def folded_recurrent_bias(self) -> np.ndarray:
        """int32 (4, H): -zh * rowsum(U_k)."""
        folded = -self.hidden.zero_point * self.recurrent_weights.astype(np.int64).sum(axis=2)
        return _int32(folded, f"layer '{self.name}': recurrent bias")

    def tanh_input_rescale(self, power: int) -> tuple[int, int]:
        """(multiplier, right shift) taking an int16 of scale 2^power to the units the
        tanh table reads: 3 x Q3.12 (so 2^8 units are one table step of 1/24)."""
        shift = 15 + power - 3
        if shift >= 0:
            return 3 << shift, 0
        return 3, -shift

    def validate(self) -> None:
        where = f"layer '{self.name}' (int8 lstm)"
        h, d = self.units, self.input_size
        _expect(self.input_weights, np.int8, (4, h, d), where, "input_weights")
        _expect(self.recurrent_weights, np.int8, (4, h, h), where, "recurrent_weights")
        _expect(self.bias, np.int32, (4, h), where, "bias")
        for what in ("input_weight_scales", "recurrent_weight_scales"):
            scales = np.asarray(getattr(self, what), np.float64)
            if scales.shape != (4,) or not np.all(np.isfinite(scales)) or np.any(scales <= 0):
                raise ModelError(f"{where}: {what} must be 4 positive finite scales")
        self.input.check(f"{where} input")
        self.hidden.check(f"{where} hidden state")
        if not (math.isfinite(self.cell_scale) and self.cell_scale > 0):
            raise ModelError(f"{where}: cell state scale {self.cell_scale!r} must be positive")
        if not -30 <= self.cell_power <= 0 or self.tanh_input_rescale(self.cell_power)[1] > 15:
            raise ModelError(
                f"{where}: cell state scale {self.cell_scale!r} is outside the range the "
                "integer kernel supports (2^-30 .. 1)"
            )
        if self.cell_activation != "tanh":
            raise ModelError(
                f"{where}: cell activation '{self.cell_activation}' is not supported by the "
                "integer kernel; it implements tanh"
            )
        if not (math.isfinite(self.cell_clip) and self.cell_clip >= 0):
            raise ModelError(f"{where}: cell_clip must be a finite value >= 0")
        self.folded_input_bias()
        self.folded_recurrent_bias()
        for m in (
            *self.gate_input_multipliers(),
            *self.gate_recurrent_multipliers(),
            self.forget_multiplier(),
            self.input_multiplier(),
            self.hidden_multiplier(),
        ):
            _check_multiplier(m, where)


@dataclass
class DenseInt8:
    """y = clamp(zo + rescale(W (x - zx) + b, sx sW / so)) to the activation's range."""

    name: str
    weights: np.ndarray  # int8 (O, I)
    bias: np.ndarray | None  # int32 (O,)
    weight_scales: np.ndarray  # float32 (O,) per channel, or (1,) for one scale
    input: Quant
    output: Quant
    activation: str = "linear"  # linear, relu, relu6, relu_n1_to_1: a clamp

    kind = "dense"

    @property
    def input_size(self) -> int:
        return int(self.weights.shape[1])

    @property
    def output_size(self) -> int:
        return int(self.weights.shape[0])

    @property
    def per_channel(self) -> bool:
        return len(self.weight_scales) > 1

    def multipliers(self) -> list[Multiplier]:
        """One per output channel (repeated when the weights have one scale)."""
        scales = np.broadcast_to(self.weight_scales, (self.output_size,))
        return [Multiplier.of(scale_ratio(self.input.scale, s, self.output.scale)) for s in scales]

    def folded_bias(self) -> np.ndarray:
        b = np.zeros(self.output_size, np.int64) if self.bias is None else self.bias
        folded = b.astype(np.int64) - self.input.zero_point * self.weights.astype(np.int64).sum(
            axis=1
        )
        return _int32(folded, f"layer '{self.name}': bias")

    def clamp(self) -> tuple[int, int]:
        """The output range of the fused activation, in the output's integers."""
        low, high = INT8_RANGE
        bounds = {"relu": (0.0, None), "relu6": (0.0, 6.0), "relu_n1_to_1": (-1.0, 1.0)}
        if self.activation in bounds:
            lo, hi = bounds[self.activation]
            low = max(low, self.output.zero_point + _quantize_real(lo, self.output.scale))
            if hi is not None:
                high = min(high, self.output.zero_point + _quantize_real(hi, self.output.scale))
        return low, high

    def validate(self) -> None:
        where = f"layer '{self.name}' (int8 dense)"
        o, i = self.weights.shape if self.weights.ndim == 2 else (0, 0)
        _expect(self.weights, np.int8, (o, i), where, "weights")
        if self.bias is not None:
            _expect(self.bias, np.int32, (o,), where, "bias")
        scales = np.asarray(self.weight_scales, np.float64)
        if scales.shape not in ((1,), (o,)) or not np.all(np.isfinite(scales)):
            raise ModelError(f"{where}: weight_scales must be 1 or {o} finite scales")
        if np.any(scales <= 0):
            raise ModelError(f"{where}: weight scales must be positive")
        if self.activation not in ("linear", "relu", "relu6", "relu_n1_to_1"):
            raise ModelError(f"{where}: fused activation '{self.activation}' is not supported")
        self.input.check(f"{where} input")
        self.output.check(f"{where} output")
        self.folded_bias()
        for m in self.multipliers():
            _check_multiplier(m, where)


#: Standalone integer activations and the output quantization each one requires.
ACTIVATION_OUTPUTS = {
    "sigmoid": Quant(1.0 / 256.0, -128),
    "softmax": Quant(1.0 / 256.0, -128),
    "tanh": Quant(1.0 / 128.0, 0),
}


@dataclass
class ActivationInt8(KeepsSize):
    """A standalone activation on int8 values: sigmoid, tanh, softmax (over the vector) or
    relu (a requantization clamped at zero)."""

    name: str
    size: int
    activation: str
    input: Quant
    output: Quant
    beta: float = 1.0  # softmax only

    kind = "activation"

    def validate(self) -> None:
        where = f"layer '{self.name}' (int8 {self.activation})"
        if self.activation not in ("sigmoid", "tanh", "softmax", "relu"):
            raise ModelError(
                f"{where}: not supported; integer activations: sigmoid, tanh, softmax, relu"
            )
        self.input.check(f"{where} input")
        self.output.check(f"{where} output")
        required = ACTIVATION_OUTPUTS.get(self.activation)
        if required is not None and (
            abs(self.output.scale - required.scale) > 1e-8 * required.scale
            or self.output.zero_point != required.zero_point
        ):
            raise ModelError(
                f"{where}: output must be quantized with scale {required.scale} and zero "
                f"point {required.zero_point} (got {self.output.scale}, "
                f"{self.output.zero_point})"
            )
        if not (math.isfinite(self.beta) and self.beta > 0):
            raise ModelError(f"{where}: softmax beta must be positive")


@dataclass
class BidirectionalInt8:
    """Two LSTMs over one int8 sequence; their int8 outputs concatenated (forward first),
    the backward one put back in input time order when it returns sequences."""

    name: str
    forward: LSTMInt8
    backward: LSTMInt8

    kind = "bidirectional"

    @property
    def return_sequences(self) -> bool:
        return self.forward.return_sequences

    @property
    def input_size(self) -> int:
        return self.forward.input_size

    @property
    def output_size(self) -> int:
        return self.forward.output_size + self.backward.output_size

    def validate(self) -> None:
        where = f"layer '{self.name}' (int8 bidirectional)"
        if self.forward.go_backwards or not self.backward.go_backwards:
            raise ModelError(f"{where}: the backward LSTM must read backward, the forward one not")
        if self.forward.return_sequences != self.backward.return_sequences:
            raise ModelError(f"{where}: the two directions disagree on return_sequences")
        if self.forward.input_size != self.backward.input_size:
            raise ModelError(f"{where}: the two directions differ in input size")
        self.forward.validate()
        self.backward.validate()


LayerInt8 = Union[LSTMInt8, DenseInt8, ActivationInt8, BidirectionalInt8]  # noqa: UP007


@dataclass
class Int8Model:
    """A chain of integer layers from an int8 input sequence [T][D] to an int8 output."""

    input_size: int
    layers: list[LayerInt8]
    input: Quant  # how the caller's float input is quantized
    output: Quant  # how the int8 output is read back as float
    name: str = "model"
    source: str = ""
    timesteps: int | None = None  # the fixed T of the source model, if any
    notes: list[str] = field(default_factory=list)

    @property
    def output_size(self) -> int:
        return self.layers[-1].output_size

    @property
    def returns_sequences(self) -> bool:
        return all(
            l.return_sequences for l in self.layers if isinstance(l, (LSTMInt8, BidirectionalInt8))
        )

    @property
    def streamable(self) -> bool:
        """One step at a time means something: no layer reads time backwards."""
        return not any(
            isinstance(l, BidirectionalInt8) or (isinstance(l, LSTMInt8) and l.go_backwards)
            for l in self.layers
        )

    def validate(self) -> Int8Model:
        if not self.layers:
            raise ModelError("the integer model has no layer")
        if not any(isinstance(l, (LSTMInt8, BidirectionalInt8)) for l in self.layers):
            raise ModelError("the integer model has no LSTM layer")
        self.input.check("model input")
        self.output.check("model output")
        width, sequence = self.input_size, True
        for layer in self.layers:
            where = f"layer '{layer.name}'"
            if layer.input_size != width:
                raise ModelError(
                    f"{where}: expects input size {layer.input_size}, the previous layer "
                    f"gives {width}"
                )
            if isinstance(layer, (LSTMInt8, BidirectionalInt8)):
                if not sequence:
                    raise ModelError(f"{where}: an LSTM needs a sequence")
                sequence = layer.return_sequences
            layer.validate()
            width = layer.output_size
        return self


#: The attribute a front end sets on a float IR model read from a full-integer file: the
#: integer model it was dequantized from (what `--quantize int8-full` renders as it is).
INT8_SOURCE_ATTRIBUTE = "int8_source"


def int8_source(model: object) -> Int8Model | None:
    source = getattr(model, INT8_SOURCE_ATTRIBUTE, None)
    return source if isinstance(source, Int8Model) else None


def quantize_values(x: np.ndarray, q: Quant) -> np.ndarray:
    """float -> int8 as TensorFlow Lite's QUANTIZE: round(x / scale) in float32, halves away
    from zero, plus the zero point, saturated (NaN gives -128)."""
    scaled = np.asarray(x, np.float32) / np.float32(q.scale)
    rounded = np.where(scaled >= 0, np.floor(scaled + 0.5), -np.floor(-scaled + 0.5))
    rounded = np.where(np.isnan(rounded), -1e9, rounded)
    return np.clip(rounded + q.zero_point, -128, 127).astype(np.int8)


def dequantize_values(y: np.ndarray, q: Quant) -> np.ndarray:
    """int8 -> float32 as TensorFlow Lite's DEQUANTIZE: scale * (q - zero_point), rounded
    once."""
    return (float(q.scale) * (np.asarray(y, np.float64) - q.zero_point)).astype(np.float32)


def _expect(a: object, dtype: type, shape: tuple[int, ...], where: str, what: str) -> None:
    if not isinstance(a, np.ndarray) or a.dtype != dtype or a.shape != shape:
        raise ModelError(
            f"{where}: {what} must be {np.dtype(dtype).name} of shape {shape}, got "
            f"{getattr(a, 'dtype', type(a).__name__)} {getattr(a, 'shape', '')}"
        )


def _int32(values: np.ndarray, where: str) -> np.ndarray:
    if values.size and (values.min() < -(2**31) or values.max() > 2**31 - 1):
        raise ModelError(f"{where} does not fit in int32")
    return values.astype(np.int32)


def _check_multiplier(m: Multiplier, where: str) -> None:
    if not (0 <= m.significand < 2**31 and -31 <= m.shift <= 30):
        raise ModelError(f"{where}: rescaling factor {m.real!r} is out of range")


def _quantize_real(value: float, scale: float) -> int:
    """round(value / scale) in float32, half away from zero (TFLite's activation bounds)."""
    q = float(np.float32(value) / np.float32(scale))
    return _round_half_away(q)
