"""The Dense layer kind: ``weights`` (O, I), ``bias`` (O,) or ``None``,
y = activation(weights @ x + bias), applied to every timestep when it sees a sequence."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..activations import ALL_ACTIVATIONS, activate
from ..base import Check, PerStepLayer, register
from ..checks import check_activation, check_array, check_optional_array


@register
@dataclass
class Dense(PerStepLayer):
    """A fully connected layer: y = activation(weights @ x + bias)."""

    name: str
    weights: np.ndarray
    bias: np.ndarray | None
    activation: str = "linear"
    origin: str = ""

    kind = "dense"
    title = "Dense"

    @property
    def input_size(self) -> int:
        return int(self.weights.shape[1])

    @property
    def output_size(self) -> int:
        return int(self.weights.shape[0])

    def arrays(self) -> dict[str, np.ndarray | None]:
        return {"weights": self.weights, "bias": self.bias}

    def validate(self, check: Check) -> None:
        where = check.where
        check_array(self.weights, (self.output_size, self.input_size), where, "weights")
        if self.output_size <= 0:
            raise check.fail("needs at least one unit")
        check_optional_array(self.bias, (self.output_size,), where, "bias")
        check_activation(self.activation, ALL_ACTIVATIONS, where, "activation")

    def describe(self) -> str:
        bias = "" if self.bias is not None else ", no bias"
        return (
            f"{self.name}: Dense {self.input_size} -> {self.output_size} ({self.activation}{bias})"
        )

    def apply(self, x: np.ndarray) -> np.ndarray:
        y = x @ self.weights.astype(np.float64).T
        if self.bias is not None:
            y = y + self.bias.astype(np.float64)
        return activate(self.activation, y)
