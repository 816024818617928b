"""The checks every IR layer kind's validation uses: arrays, activations, sizes.

Each raises `ModelError` with a message that names the layer (`where`) and the field.
"""

from __future__ import annotations

import numpy as np

from ..errors import ModelError


def check_array(a: object, shape: tuple[int, ...], where: str, what: str) -> None:
    """`a` is a finite float32 array of exactly `shape`."""
    if not isinstance(a, np.ndarray) or a.dtype != np.float32:
        raise ModelError(
            f"{where}: {what} must be a float32 numpy array, got "
            f"{getattr(a, 'dtype', type(a).__name__)}"
        )
    if a.shape != shape:
        raise ModelError(f"{where}: {what} has shape {a.shape}, expected {shape}")
    if not np.all(np.isfinite(a)):
        bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
        raise ModelError(
            f"{where}: {what} holds {bad} NaN/Inf value(s); only finite weights can be compiled"
        )


def check_optional_array(a: object, shape: tuple[int, ...], where: str, what: str) -> None:
    """`a` is None or a finite float32 array of exactly `shape`."""
    if a is not None:
        check_array(a, shape, where, what)


def check_activation(name: str, allowed: dict[str, str], where: str, what: str) -> None:
    if name not in allowed:
        raise ModelError(
            f"{where}: {what} '{name}' is not supported; supported: {', '.join(allowed)}"
        )


def check_positive_int(value: object, where: str, what: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ModelError(f"{where}: {what} must be a positive integer, got {value!r}")


def float32(a: object) -> np.ndarray:
    """A C-contiguous float32 copy of `a` (what every IR array must be)."""
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32))
