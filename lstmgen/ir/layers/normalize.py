"""The Normalize layer kind: y = (x - mean) / std per feature (Keras Normalization with
std = max(sqrt(variance), 1e-7); MATLAB zscore/center)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..base import Check, PerStepLayer, register
from ..checks import check_array


@register
@dataclass
class Normalize(PerStepLayer):
    """y = (x - mean) / std, per feature."""

    name: str
    mean: np.ndarray
    std: np.ndarray
    origin: str = ""

    kind = "normalize"
    title = "Normalize"

    @property
    def input_size(self) -> int:
        return int(self.mean.shape[0])

    @property
    def output_size(self) -> int:
        return self.input_size

    def arrays(self) -> dict[str, np.ndarray | None]:
        return {"mean": self.mean, "std": self.std}

    def validate(self, check: Check) -> None:
        check_array(self.mean, (self.input_size,), check.where, "mean")
        check_array(self.std, (self.input_size,), check.where, "std")
        if np.any(self.std <= 0):
            raise check.fail("std must be positive")

    def describe(self) -> str:
        return f"{self.name}: Normalize (x - mean) / std over {self.input_size}"

    def apply(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean.astype(np.float64)) / self.std.astype(np.float64)
