"""What LSTM, GRU and SimpleRNN share: row blocks of H units, reading direction, returned
sequence or last state, and the float64 loop over timesteps (with masking).

A recurrent layer keeps a state across timesteps, which starts from zero for every sequence
(as the frameworks' `predict` does) unless the kind has an initial state. `go_backwards`
reads the input from the last step to the first; with `return_sequences` its outputs are
emitted in that processing order (Keras semantics). Masked timesteps (see Masking) are
skipped: the state stays, and the output repeats the previous step's (zeros before any
real step).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from ..activations import ELEMENTWISE_ACTIVATIONS
from ..base import Check, Layer
from ..checks import check_activation, check_array, check_optional_array

#: One step: (x_t [N, D], state) -> (output [N, O], new state).
StepFunction = Callable[[np.ndarray, Any], tuple[np.ndarray, Any]]


def as_float64(a: np.ndarray | None) -> np.ndarray | None:
    return None if a is None else a.astype(np.float64)


class RecurrentLayer(Layer):
    """LSTM, GRU and SimpleRNN: `gates` row blocks of H rows in input_weights (D columns)."""

    recurrent = True
    gates: ClassVar[int] = 1
    #: the row blocks' names, in order (e.g. "ifgo")
    blocks: ClassVar[str] = ""

    input_weights: np.ndarray
    recurrent_weights: np.ndarray
    bias: np.ndarray | None
    return_sequences: bool
    go_backwards: bool

    @property
    def units(self) -> int:
        """H, the size of the state (the cell state c of an LSTM)."""
        return int(self.input_weights.shape[0]) // self.gates

    @property
    def input_size(self) -> int:
        return int(self.input_weights.shape[1])

    @property
    def output_size(self) -> int:
        return self.units

    def returns_sequence(self, sequence_in: bool) -> bool:
        return self.return_sequences

    @property
    def streamable(self) -> bool:
        return not self.go_backwards

    def activations(self) -> tuple[str, ...]:
        """The activations the step applies, e.g. (gate, cell, output) for an LSTM."""
        raise NotImplementedError

    # ---- validation ------------------------------------------------------------------
    def validate(self, check: Check) -> None:
        if not check.sequence:
            raise check.fail(
                "a recurrent layer needs a sequence, but an earlier one has return_sequences=False"
            )
        self.validate_arrays(check.where)

    def validate_arrays(self, where: str) -> None:
        """Shapes, values and activations (also for a Bidirectional's directions)."""
        gates = self.gates
        h = self.input_weights.shape[0] // gates if _ndim(self.input_weights) == 2 else 0
        if h <= 0:
            raise check_unit_error(where, self.input_weights)
        check_array(self.input_weights, (gates * h, self.input_size), where, "input_weights")
        check_array(self.recurrent_weights, (gates * h, h), where, "recurrent_weights")
        check_optional_array(self.bias, (gates * h,), where, "bias")
        self.validate_extra(where, h)

    def validate_extra(self, where: str, units: int) -> None:
        """Kind-specific checks after the shared ones (activations included)."""
        for field, value in zip(self.activation_fields(), self.activations()):
            check_activation(value, ELEMENTWISE_ACTIVATIONS, where, field)

    def activation_fields(self) -> tuple[str, ...]:
        raise NotImplementedError

    # ---- description -----------------------------------------------------------------
    def describe_flags(self) -> list[str]:
        """Kind-specific flags of the description, before the shared ones."""
        raise NotImplementedError

    def describe(self) -> str:
        flags = self.describe_flags()
        flags.append("sequences" if self.return_sequences else "last step")
        if self.go_backwards:
            flags.append("go_backwards")
        if self.bias is None:
            flags.append("no bias")
        flags.extend(sorted(self.features()))
        size = (
            f"{self.units} (projected to {self.output_size})"
            if self.output_size != self.units
            else f"{self.units}"
        )
        return f"{self.name}: {self.title} {self.input_size} -> {size} ({', '.join(flags)})"

    # ---- reference -------------------------------------------------------------------
    def step_function(self) -> tuple[StepFunction, Any]:
        """(one float64 step, a function n -> the start state for n sequences)."""
        raise NotImplementedError

    def run(self, x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """x: [N, T, D] -> [N, T, O] or [N, O]. `mask` [N, T] (True = real step): masked
        steps keep the state and repeat the output."""
        n, t_len, _ = x.shape
        step, start = self.step_function()
        state = start(n)
        order = range(t_len - 1, -1, -1) if self.go_backwards else range(t_len)
        outputs = []
        out = np.zeros((n, self.output_size))
        for t in order:
            new_out, new_state = step(x[:, t, :], state)
            if mask is None:
                out, state = new_out, new_state
            else:
                keep = mask[:, t][:, None]
                out = np.where(keep, new_out, out)
                state = (
                    tuple(np.where(keep, a, b) for a, b in zip(new_state, state))
                    if isinstance(state, tuple)
                    else np.where(keep, new_state, state)
                )
            outputs.append(out)
        # go_backwards emits its outputs in processing order (as Keras does).
        return np.stack(outputs, axis=1) if self.return_sequences else out

    def reference(self, x: np.ndarray, mask: Any) -> tuple[np.ndarray, Any]:
        y = self.run(x, mask)
        return y, (mask if self.return_sequences else None)


def _ndim(a: object) -> int:
    return int(getattr(a, "ndim", 0))


def check_unit_error(where: str, input_weights: object) -> Exception:
    from ...errors import ModelError

    return ModelError(
        f"{where}: needs at least one unit, got input_weights of shape "
        f"{getattr(input_weights, 'shape', None)}"
    )
