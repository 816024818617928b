"""The GlobalPool layer kind: a sequence becomes one vector, the mean (``avg``) or the
maximum (``max``) of every feature over the timesteps (Keras GlobalAveragePooling1D /
GlobalMaxPooling1D). With a mask, ``avg`` is the mean over the real timesteps (a sequence
with none gives NaN, as Keras computes 0 / 0); ``max`` ignores the mask, as Keras does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..base import Check, KeepsSize, Layer, register
from ..checks import check_positive_int

POOL_TYPES = ("avg", "max")


@register
@dataclass
class GlobalPool(KeepsSize, Layer):
    """Mean or maximum over all timesteps (see the module docstring)."""

    name: str
    size: int
    pool_type: str = "avg"
    origin: str = ""

    kind = "global_pool"
    title = "GlobalPool1D (avg/max)"

    def returns_sequence(self, sequence_in: bool) -> bool:
        return False

    @property
    def streamable(self) -> bool:
        return False

    def validate(self, check: Check) -> None:
        if not check.sequence:
            raise check.fail("global pooling needs a sequence")
        check_positive_int(self.size, check.where, "size")
        if self.pool_type not in POOL_TYPES:
            raise check.fail(f"pool_type {self.pool_type!r} is not supported; supported: avg, max")

    def describe(self) -> str:
        what = "mean" if self.pool_type == "avg" else "maximum"
        return f"{self.name}: GlobalPool1D {what} over time of {self.size}"

    def reference(self, x: np.ndarray, mask: Any) -> tuple[np.ndarray, Any]:
        if self.pool_type == "max":
            return np.max(x, axis=1), None
        if mask is None:
            return np.mean(x, axis=1), None
        real = mask[..., None].astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.sum(x * real, axis=1) / np.sum(real, axis=1), None
