"""The Masking layer kind (first layer only): timestep t is masked when every feature equals
``mask_value``; its features become 0, and every recurrent layer skips it: the state is
unchanged and the output repeats the previous step's (zeros before any step). Backward
reading and Bidirectional use the same mask, in their reading order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..base import Check, KeepsSize, Layer, register


@register
@dataclass
class Masking(KeepsSize, Layer):
    """Skip timesteps whose features all equal `mask_value` (see the module docstring)."""

    name: str
    size: int
    mask_value: float = 0.0
    origin: str = ""

    kind = "masking"
    title = "Masking"

    def validate(self, check: Check) -> None:
        if check.index != 0:
            raise check.fail("Masking is supported as the first layer only")
        if not np.isfinite(self.mask_value):
            raise check.fail("mask_value must be finite")
        if any(getattr(l, "windowed", False) for l in check.model.layers):
            raise check.fail("Masking cannot be combined with Conv1D/pooling")

    def describe(self) -> str:
        return f"{self.name}: Masking (mask_value {self.mask_value!r}) over {self.size}"

    def reference(self, x: np.ndarray, mask: Any) -> tuple[np.ndarray, Any]:
        real = np.any(x != self.mask_value, axis=-1)
        return np.where(real[..., None], x, 0.0), real
