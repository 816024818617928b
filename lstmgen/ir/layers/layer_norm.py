"""The LayerNorm layer kind: y = (x - mean(x)) / sqrt(var(x) + epsilon) * gamma + beta over
the features of each timestep (var the biased variance; gamma/beta optional)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..base import Check, KeepsSize, PerStepLayer, register
from ..checks import check_optional_array


@register
@dataclass
class LayerNorm(KeepsSize, PerStepLayer):
    """Normalization over the features of each timestep, then gamma * y + beta."""

    name: str
    size: int
    gamma: np.ndarray | None = None
    beta: np.ndarray | None = None
    epsilon: float = 1e-3
    origin: str = ""

    kind = "layer_norm"
    title = "LayerNorm"

    def arrays(self) -> dict[str, np.ndarray | None]:
        return {"gamma": self.gamma, "beta": self.beta}

    def validate(self, check: Check) -> None:
        check_optional_array(self.gamma, (self.size,), check.where, "gamma")
        check_optional_array(self.beta, (self.size,), check.where, "beta")
        if not self.epsilon > 0:
            raise check.fail("epsilon must be positive")

    def describe(self) -> str:
        return f"{self.name}: LayerNorm over {self.size} (epsilon {self.epsilon!r})"

    def apply(self, x: np.ndarray) -> np.ndarray:
        mean = x.mean(axis=-1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        y = (x - mean) / np.sqrt(var + self.epsilon)
        if self.gamma is not None:
            y = y * self.gamma.astype(np.float64)
        if self.beta is not None:
            y = y + self.beta.astype(np.float64)
        return y
