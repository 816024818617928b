"""The GRU layer kind (H units).

``input_weights`` (3H, D) and ``recurrent_weights`` (3H, H) with row blocks **z, r, n**
(update, reset, candidate: the Keras / ONNX order), ``bias`` (3H,) and, with
``reset_after``, a separate ``recurrent_bias`` (3H,)::

    z = gate(Wz x + Uz h + bz [+ rbz]);   r = gate(Wr x + Ur h + br [+ rbr])
    n = cell(Wn x + bn + r * (Un h + rbn))      reset_after=True  (Keras 2/3, PyTorch)
    n = cell(Wn x + bn + Un (r * h))            reset_after=False (ONNX default, Keras 1)
    h' = z * h + (1 - z) * n
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import ModelError
from ..activations import activate
from ..base import register
from ..checks import check_array
from .recurrent import RecurrentLayer, StepFunction


@register
@dataclass
class GRU(RecurrentLayer):
    """A unidirectional GRU layer (row blocks z, r, n; see the module docstring)."""

    name: str
    input_weights: np.ndarray
    recurrent_weights: np.ndarray
    bias: np.ndarray | None
    recurrent_bias: np.ndarray | None = None
    reset_after: bool = True
    gate_activation: str = "sigmoid"
    cell_activation: str = "tanh"
    return_sequences: bool = False
    go_backwards: bool = False
    origin: str = ""

    kind = "gru"
    title = "GRU"
    gates = 3
    blocks = "zrn"

    def arrays(self) -> dict[str, np.ndarray | None]:
        return {
            "input_weights": self.input_weights,
            "recurrent_weights": self.recurrent_weights,
            "bias": self.bias,
            "recurrent_bias": self.recurrent_bias,
        }

    def activations(self) -> tuple[str, ...]:
        return (self.gate_activation, self.cell_activation)

    def activation_fields(self) -> tuple[str, ...]:
        return ("gate_activation", "cell_activation")

    def validate_extra(self, where: str, units: int) -> None:
        if self.recurrent_bias is not None:
            if not self.reset_after:
                raise ModelError(
                    f"{where}: recurrent_bias only exists with reset_after=True "
                    "(fold it into bias otherwise)"
                )
            check_array(self.recurrent_bias, (3 * units,), where, "recurrent_bias")
        super().validate_extra(where, units)

    def describe_flags(self) -> list[str]:
        return [
            f"gate={self.gate_activation}",
            f"cell={self.cell_activation}",
            "reset_after" if self.reset_after else "reset_before",
        ]

    def step_function(self) -> tuple[StepFunction, Any]:
        w = self.input_weights.astype(np.float64)
        u = self.recurrent_weights.astype(np.float64)
        rows = 3 * self.units
        b = np.zeros(rows) if self.bias is None else self.bias.astype(np.float64)
        rb = (
            np.zeros(rows)
            if self.recurrent_bias is None
            else self.recurrent_bias.astype(np.float64)
        )
        hu = self.units

        def step(xt: np.ndarray, h: Any) -> tuple[np.ndarray, Any]:
            zx = xt @ w.T + b
            zz = activate(self.gate_activation, zx[:, :hu] + h @ u[:hu].T + rb[:hu])
            zr = activate(
                self.gate_activation, zx[:, hu : 2 * hu] + h @ u[hu : 2 * hu].T + rb[hu : 2 * hu]
            )
            if self.reset_after:
                cand = zx[:, 2 * hu :] + zr * (h @ u[2 * hu :].T + rb[2 * hu :])
            else:
                cand = zx[:, 2 * hu :] + (zr * h) @ u[2 * hu :].T
            h = zz * h + (1.0 - zz) * activate(self.cell_activation, cand)
            return h, h

        return step, lambda n: np.zeros((n, hu))
