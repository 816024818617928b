"""The SimpleRNN layer kind (H units): h' = activation(input_weights @ x +
recurrent_weights @ h + bias), input_weights (H, D), recurrent_weights (H, H), bias (H,)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..activations import activate
from ..base import register
from .recurrent import RecurrentLayer, StepFunction


@register
@dataclass
class SimpleRNN(RecurrentLayer):
    """A fully recurrent layer: h' = activation(W x + U h + b)."""

    name: str
    input_weights: np.ndarray
    recurrent_weights: np.ndarray
    bias: np.ndarray | None
    activation: str = "tanh"
    return_sequences: bool = False
    go_backwards: bool = False
    origin: str = ""

    kind = "simple_rnn"
    title = "SimpleRNN"

    def arrays(self) -> dict[str, np.ndarray | None]:
        return {
            "input_weights": self.input_weights,
            "recurrent_weights": self.recurrent_weights,
            "bias": self.bias,
        }

    def activations(self) -> tuple[str, ...]:
        return (self.activation,)

    def activation_fields(self) -> tuple[str, ...]:
        return ("activation",)

    def describe_flags(self) -> list[str]:
        return [f"activation={self.activation}"]

    def step_function(self) -> tuple[StepFunction, Any]:
        w = self.input_weights.astype(np.float64)
        u = self.recurrent_weights.astype(np.float64)
        b = np.zeros(self.units) if self.bias is None else self.bias.astype(np.float64)

        def step(xt: np.ndarray, h: Any) -> tuple[np.ndarray, Any]:
            h = activate(self.activation, xt @ w.T + h @ u.T + b)
            return h, h

        return step, lambda n: np.zeros((n, self.units))
