"""The Flatten layer kind: a sequence of the model's fixed T timesteps becomes one vector of
T*F values, timestep-major (Keras Flatten / Reshape((T*F,)))."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..base import Check, Layer, register


@register
@dataclass
class Flatten(Layer):
    """A sequence of `timesteps` rows of `size` features -> one vector, timestep-major."""

    name: str
    timesteps: int
    size: int
    origin: str = ""

    kind = "flatten"
    title = "Flatten"
    needs_fixed_timesteps = True

    @property
    def input_size(self) -> int:
        return self.size

    @property
    def output_size(self) -> int:
        return self.timesteps * self.size

    def returns_sequence(self, sequence_in: bool) -> bool:
        return False

    @property
    def streamable(self) -> bool:
        return False

    def validate(self, check: Check) -> None:
        if not check.sequence:
            raise check.fail("Flatten needs a sequence")
        model = check.model
        if (
            model.timesteps is None
            or model.timesteps_before(check.index, model.timesteps) != self.timesteps
        ):
            raise check.fail(
                f"Flatten needs the model's fixed number of timesteps "
                f"({self.timesteps}); the model has T = {model.timesteps}"
            )

    def describe(self) -> str:
        return f"{self.name}: Flatten [{self.timesteps}][{self.size}] -> {self.output_size}"

    def reference(self, x: np.ndarray, mask: Any) -> tuple[np.ndarray, Any]:
        return x.reshape(x.shape[0], -1), None
