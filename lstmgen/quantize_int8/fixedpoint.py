"""Fixed-point primitives of the integer scheme, vectorized in numpy (int64 arrays holding
int32/int16 values), exactly as the integer kernel computes them.

* `doubling_high_mul(a, b)`: the high 32 bits of 2ab, rounded to nearest (ties away from
  zero), saturating the one overflowing case (a = b = -2^31): gemmlowp's rounding doubling
  high multiply.
* `rounding_shift(x, n)`: x / 2^n rounded to nearest, ties away from zero.
* `rescale(x, m)`: x * m.real with the two roundings above (TFLite's default "double
  rounding" MultiplyByQuantizedMultiplier).
* `sigmoid16`, `tanh16`: the int16 activations of the LSTM gates and cell, Q3.12 (or the
  cell's 2^p) in, Q0.15 out, by linear interpolation in a 256-entry table of the sigmoid at
  steps of 1/24 (tanh x = 2 sigmoid(2x) - 1 shares it).
"""

from __future__ import annotations

import numpy as np

from ..ir.int8 import Multiplier

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
TABLE_STEPS_PER_UNIT = 24  # the sigmoid table's step is 1/24


def sigmoid_table() -> np.ndarray:
    """sigmoid(k / 24) for k = 0..255 in unsigned Q0.16, each entry raised by half the
    largest error of linear interpolation over its neighbourhood (h^2/16 |sigmoid''|, h =
    1/24), so interpolating between entries errs equally above and below; the last entry is
    pinned to 65535, where the kernel saturates."""
    x = np.arange(256) / TABLE_STEPS_PER_UNIT
    s = 1.0 / (1.0 + np.exp(-x))
    curvature = np.abs(s * (1.0 - s) * (1.0 - 2.0 * s))
    h2 = (1.0 / TABLE_STEPS_PER_UNIT) ** 2
    table = np.floor(65536.0 * (s + curvature * h2 / 16.0) + 0.5)
    table = np.minimum(table, 65535.0)
    table[-1] = 65535.0
    return table.astype(np.int64)


SIGMOID_TABLE = sigmoid_table()


def doubling_high_mul(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    overflow = (a == b) & (a == INT32_MIN)
    ab = a * b
    nudged = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    high = np.where(nudged >= 0, nudged >> 31, -((-nudged) >> 31))  # truncating division
    return np.where(overflow, INT32_MAX, high)


def rounding_shift(x: np.ndarray, exponent: int) -> np.ndarray:
    x = np.asarray(x, np.int64)
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def rescale(x: np.ndarray, m: Multiplier) -> np.ndarray:
    """x * m.real: an int32 times a Q31 significand, then a power of two, both rounded."""
    x = np.asarray(x, np.int64)
    left, right = max(m.shift, 0), max(-m.shift, 0)
    return rounding_shift(doubling_high_mul(x * (1 << left), m.significand), right)


def saturate(x: np.ndarray, low: int, high: int) -> np.ndarray:
    return np.clip(np.asarray(x, np.int64), low, high)


def sigmoid16(z: np.ndarray) -> np.ndarray:
    """int16 Q3.12 -> int16 Q0.15: the table is indexed by 3z / 2^9 (= 24 x z's value)."""
    v = 3 * np.asarray(z, np.int64)
    a = np.abs(v)
    index = np.minimum(a >> 9, 254)
    low, high = SIGMOID_TABLE[index], SIGMOID_TABLE[index + 1]
    r = (low << 9) + (a & 0x1FF) * (high - low)
    r = np.where((a >> 9) >= 255, 0x7FFF << 10, r)
    r = np.where(v >= 0, r + (1 << 9), (1 << 25) - r + (1 << 9) - 1)
    return r >> 10


def tanh16(z: np.ndarray, multiplier: int = 3, shift: int = 0) -> np.ndarray:
    """int16 -> int16 Q0.15, tanh x = 2 sigmoid(2x) - 1. (multiplier, shift) take z to
    3 x Q3.12 units (3, 0 for a Q3.12 gate; `LSTMInt8.tanh_input_rescale` for the cell)."""
    rounding = (1 << (shift - 1)) if shift > 0 else 0
    v = (np.asarray(z, np.int64) * multiplier + rounding) >> shift
    a = np.abs(v)
    index = np.minimum(a >> 8, 254)
    low, high = SIGMOID_TABLE[index], SIGMOID_TABLE[index + 1]
    r = (low << 8) + (a & 0xFF) * (high - low)
    r = np.where((a >> 8) >= 255, 0xFFFF << 8, r)
    r = np.where(v >= 0, r - (1 << 23) + (1 << 7), -r + (1 << 23) + (1 << 7) - 1)
    return r >> 8
