"""The Conv1D layer kind: weights (F, K, D), y[t, f] = act(bias[f] + sum_k,d W[f, k, d]
x[t*stride + k*dilation - pad, d]) with zero padding (see `windows`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..activations import ELEMENTWISE_ACTIVATIONS, activate
from ..base import Check, register
from ..checks import check_activation, check_array, check_optional_array
from .windows import WindowLayer, window_taps


@register
@dataclass
class Conv1D(WindowLayer):
    """A 1-D convolution over time (see the module docstring)."""

    name: str
    weights: np.ndarray  # (F, K, D)
    bias: np.ndarray | None
    stride: int = 1
    dilation: int = 1
    padding: str = "valid"
    activation: str = "linear"
    origin: str = ""

    kind = "conv1d"
    title = "Conv1D"

    @property
    def kernel_size(self) -> int:
        return int(self.weights.shape[1])

    @property
    def input_size(self) -> int:
        return int(self.weights.shape[2])

    @property
    def output_size(self) -> int:
        return int(self.weights.shape[0])

    @property
    def span(self) -> int:
        return self.dilation * (self.kernel_size - 1) + 1

    def arrays(self) -> dict[str, np.ndarray | None]:
        return {"weights": self.weights, "bias": self.bias}

    def validate_window(self, check: Check) -> None:
        if self.weights.ndim != 3 or min(self.weights.shape) < 1:
            raise check.fail("weights must be (filters, kernel, input)")
        check_array(self.weights, self.weights.shape, check.where, "weights")
        check_optional_array(self.bias, (self.output_size,), check.where, "bias")
        if self.stride < 1 or self.dilation < 1:
            raise check.fail("stride and dilation must be at least 1")
        check_activation(self.activation, ELEMENTWISE_ACTIVATIONS, check.where, "activation")

    def describe(self) -> str:
        return (
            f"{self.name}: Conv1D {self.input_size} -> {self.output_size} (kernel "
            f"{self.kernel_size}, stride {self.stride}, dilation {self.dilation}, "
            f"{self.padding}, {self.activation})"
        )

    def reference(self, x: np.ndarray, mask: Any) -> tuple[np.ndarray, Any]:
        t_len = x.shape[1]
        taps = window_taps(
            x,
            self.span,
            self.stride,
            self.dilation,
            self.padding_left(t_len),
            self.output_timesteps(t_len),
            0.0,
        )
        y = np.einsum("ntkd,fkd->ntf", taps, self.weights.astype(np.float64))
        if self.bias is not None:
            y = y + self.bias.astype(np.float64)
        return activate(self.activation, y), None
