"""The LSTM layer kind (H units, input size D).

* ``input_weights``      float32, shape (4H, D), row-major
* ``recurrent_weights``  float32, shape (4H, H) (4H x P with a projection)
* ``bias``               float32, shape (4H,), or ``None`` for a layer without bias
* rows are four blocks of H in gate order **i, f, g, o** (input, forget, cell candidate,
  output) -- the PyTorch / MATLAB order, the transpose of Keras's columns.

One step, with z = input_weights @ x + recurrent_weights @ h + bias split into i, f, g, o::

    c' = gate(f) * c + gate(i) * cell(g)
    h' = gate(o) * output(c')

with ``gate = gate_activation``, ``cell = cell_activation``,
``output = output_activation``.

Optional features (ONNX and PyTorch have them; each target declares which it supports, see
``Model.features``), all absent by default:

* ``peephole`` (3, H), rows p_i, p_f, p_o: z_i += p_i * c, z_f += p_f * c (the previous c),
  and z_o += p_o * c' (the new c);
* ``clip``: every gate pre-activation (after bias and peephole) is clipped to
  [-clip, clip] before its activation; c itself is not clipped;
* ``input_forget``: f = 1 - gate(i) instead of gate(z_f);
* ``initial_h``, ``initial_c`` (H,): the state every sequence starts from, instead of 0;
* ``projection`` (P, H) (PyTorch ``proj_size``): h' = projection @ (gate(o) * output(c')),
  so h has P values and ``recurrent_weights`` is (4H, P).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..activations import ELEMENTWISE_ACTIVATIONS, activate
from ..base import register
from ..checks import check_activation, check_array, check_optional_array
from .recurrent import RecurrentLayer, StepFunction, as_float64, check_unit_error

GATES = ("i", "f", "g", "o")
#: The optional LSTM features, with the title the support table gives them.
FEATURE_TITLES = {
    "peephole": "LSTM peepholes",
    "clip": "LSTM clip",
    "input_forget": "LSTM coupled input/forget",
    "initial_state": "constant initial state",
    "projection": "LSTM projection",
}


@register
@dataclass
class LSTM(RecurrentLayer):
    """A unidirectional LSTM layer in the canonical layout (see the module docstring)."""

    name: str
    input_weights: np.ndarray
    recurrent_weights: np.ndarray
    bias: np.ndarray | None
    gate_activation: str = "sigmoid"
    cell_activation: str = "tanh"
    output_activation: str = "tanh"
    return_sequences: bool = False
    go_backwards: bool = False
    origin: str = ""
    peephole: np.ndarray | None = None
    clip: float | None = None
    input_forget: bool = False
    initial_h: np.ndarray | None = None
    initial_c: np.ndarray | None = None
    projection: np.ndarray | None = None

    kind = "lstm"
    title = "LSTM"
    gates = 4
    blocks = "ifgo"

    @property
    def output_size(self) -> int:
        """The size of h: P with a projection, else H."""
        return self.units if self.projection is None else int(self.projection.shape[0])

    def arrays(self) -> dict[str, np.ndarray | None]:
        return {
            "input_weights": self.input_weights,
            "recurrent_weights": self.recurrent_weights,
            "bias": self.bias,
            "peephole": self.peephole,
            "initial_h": self.initial_h,
            "initial_c": self.initial_c,
            "projection": self.projection,
        }

    def features(self) -> set[str]:
        """The optional features this layer uses (see the module docstring)."""
        used = set()
        if self.peephole is not None:
            used.add("peephole")
        if self.clip is not None:
            used.add("clip")
        if self.input_forget:
            used.add("input_forget")
        if self.initial_h is not None or self.initial_c is not None:
            used.add("initial_state")
        if self.projection is not None:
            used.add("projection")
        return used

    def gate_rows(self, gate: str) -> slice:
        """Rows of the weight matrices that belong to `gate` (one of i, f, g, o)."""
        k = GATES.index(gate)
        return slice(k * self.units, (k + 1) * self.units)

    def activations(self) -> tuple[str, ...]:
        return (self.gate_activation, self.cell_activation, self.output_activation)

    def activation_fields(self) -> tuple[str, ...]:
        return ("gate_activation", "cell_activation", "output_activation")

    def validate_arrays(self, where: str) -> None:
        h = self.input_weights.shape[0] // 4 if getattr(self.input_weights, "ndim", 0) == 2 else 0
        if h <= 0:
            raise check_unit_error(where, self.input_weights)
        p = h
        if self.projection is not None:
            if getattr(self.projection, "ndim", 0) != 2 or self.projection.shape[0] < 1:
                from ...errors import ModelError

                raise ModelError(f"{where}: projection must be a (P, {h}) matrix")
            p = int(self.projection.shape[0])
            check_array(self.projection, (p, h), where, "projection")
        check_array(self.input_weights, (4 * h, self.input_size), where, "input_weights")
        check_array(self.recurrent_weights, (4 * h, p), where, "recurrent_weights")
        check_optional_array(self.bias, (4 * h,), where, "bias")
        check_optional_array(self.peephole, (3, h), where, "peephole")
        check_optional_array(self.initial_h, (p,), where, "initial_h")
        check_optional_array(self.initial_c, (h,), where, "initial_c")
        if self.clip is not None and not (
            isinstance(self.clip, (int, float)) and 0.0 < float(self.clip) < float("inf")
        ):
            from ...errors import ModelError

            raise ModelError(f"{where}: clip must be a positive finite number, got {self.clip!r}")
        for field, value in zip(self.activation_fields(), self.activations()):
            check_activation(value, ELEMENTWISE_ACTIVATIONS, where, field)

    def describe_flags(self) -> list[str]:
        flags = [f"gate={self.gate_activation}", f"cell={self.cell_activation}"]
        if self.output_activation != self.cell_activation:
            flags.append(f"output={self.output_activation}")
        return flags

    def step_function(self) -> tuple[StepFunction, Any]:
        w = self.input_weights.astype(np.float64)
        u = self.recurrent_weights.astype(np.float64)
        b = np.zeros(4 * self.units) if self.bias is None else self.bias.astype(np.float64)
        p = np.zeros((3, self.units))
        if self.peephole is not None:
            p = self.peephole.astype(np.float64)
        proj = as_float64(self.projection)
        h_units = self.units
        clip_bound = self.clip

        def clip(v: np.ndarray) -> np.ndarray:
            return v if clip_bound is None else np.clip(v, -clip_bound, clip_bound)

        def gate(v: np.ndarray) -> np.ndarray:
            return activate(self.gate_activation, clip(v))

        def step(xt: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
            h, c = state
            z = xt @ w.T + h @ u.T + b
            zi, zf, zg, zo = (z[:, k * h_units : (k + 1) * h_units] for k in range(4))
            i = gate(zi + p[0] * c)
            f = 1.0 - i if self.input_forget else gate(zf + p[1] * c)
            c = f * c + i * activate(self.cell_activation, clip(zg))
            h = gate(zo + p[2] * c) * activate(self.output_activation, c)
            if proj is not None:
                h = h @ proj.T
            return h, (h, c)

        def start(n: int) -> tuple[np.ndarray, np.ndarray]:
            return (
                _initial(self.initial_h, n, self.output_size),
                _initial(self.initial_c, n, self.units),
            )

        return step, start


def _initial(values: np.ndarray | None, n: int, size: int) -> np.ndarray:
    if values is None:
        return np.zeros((n, size))
    return np.tile(np.asarray(values, np.float64), (n, 1))
