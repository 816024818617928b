"""The Activation layer kind: a standalone activation over the last axis (size unchanged)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..activations import ALL_ACTIVATIONS, activate
from ..base import Check, KeepsSize, PerStepLayer, register
from ..checks import check_activation


@register
@dataclass
class Activation(KeepsSize, PerStepLayer):
    """A standalone activation over the last axis (size unchanged)."""

    name: str
    size: int
    activation: str
    origin: str = ""

    kind = "activation"
    title = "Activation"

    def validate(self, check: Check) -> None:
        if self.size <= 0:
            raise check.fail("size must be positive")
        check_activation(self.activation, ALL_ACTIVATIONS, check.where, "activation")

    def describe(self) -> str:
        return f"{self.name}: Activation {self.activation} over {self.size}"

    def apply(self, x: np.ndarray) -> np.ndarray:
        return activate(self.activation, x)
