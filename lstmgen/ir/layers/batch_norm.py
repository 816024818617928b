"""The BatchNorm layer kind (batch normalization at inference): y = (x - mean) /
sqrt(variance + epsilon) * gamma + beta per feature, with the moving mean and variance
(gamma and beta optional: Keras center/scale), over the last axis of a sequence's
timesteps or of one vector."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..base import Check, PerStepLayer, register
from ..checks import check_array, check_optional_array


@register
@dataclass
class BatchNorm(PerStepLayer):
    """Batch normalization with fixed (moving) statistics."""

    name: str
    mean: np.ndarray
    variance: np.ndarray
    gamma: np.ndarray | None = None
    beta: np.ndarray | None = None
    epsilon: float = 1e-3
    origin: str = ""

    kind = "batch_norm"
    title = "BatchNorm"

    @property
    def input_size(self) -> int:
        return int(self.mean.shape[0]) if getattr(self.mean, "ndim", 0) == 1 else -1

    @property
    def output_size(self) -> int:
        return self.input_size

    def arrays(self) -> dict[str, np.ndarray | None]:
        return {
            "mean": self.mean,
            "variance": self.variance,
            "gamma": self.gamma,
            "beta": self.beta,
        }

    def validate(self, check: Check) -> None:
        n = self.input_size
        if n < 1:
            raise check.fail("mean must be a vector with at least one value")
        for field in ("mean", "variance"):
            check_array(getattr(self, field), (n,), check.where, field)
        check_optional_array(self.gamma, (n,), check.where, "gamma")
        check_optional_array(self.beta, (n,), check.where, "beta")
        if not (isinstance(self.epsilon, (int, float)) and self.epsilon >= 0):
            raise check.fail(f"epsilon must be a number >= 0, got {self.epsilon!r}")
        if np.any(self.variance.astype(np.float64) + self.epsilon <= 0):
            raise check.fail("variance + epsilon must be positive")

    def scale_and_shift(self) -> tuple[np.ndarray, np.ndarray]:
        """float64 (scale, shift) with y = x * scale + shift: the folded form targets may
        use (scale = gamma / sqrt(variance + epsilon), shift = beta - mean * scale)."""
        scale = 1.0 / np.sqrt(self.variance.astype(np.float64) + self.epsilon)
        if self.gamma is not None:
            scale = scale * self.gamma.astype(np.float64)
        shift = -self.mean.astype(np.float64) * scale
        if self.beta is not None:
            shift = shift + self.beta.astype(np.float64)
        return scale, shift

    def describe(self) -> str:
        parts = [f"epsilon {self.epsilon!r}"]
        if self.gamma is None:
            parts.append("no gamma")
        if self.beta is None:
            parts.append("no beta")
        return f"{self.name}: BatchNorm over {self.input_size} ({', '.join(parts)})"

    def apply(self, x: np.ndarray) -> np.ndarray:
        y = (x - self.mean.astype(np.float64)) / np.sqrt(
            self.variance.astype(np.float64) + self.epsilon
        )
        if self.gamma is not None:
            y = y * self.gamma.astype(np.float64)
        if self.beta is not None:
            y = y + self.beta.astype(np.float64)
        return y
