"""The Bidirectional layer kind: a ``forward`` and a ``backward`` recurrent layer of one kind
over the same input; the backward one reads the sequence from the last step to the first.

With ``return_sequences`` the backward outputs are put back in input time order before the
two are merged (``merge_mode`` concat, sum, mul or ave), otherwise the two final states are
merged. It needs the whole sequence, so a model with one has no streaming step. (PyTorch's
`output[:, -1]` of a bidirectional layer -- the forward direction after T steps and the
backward one after a single step -- is this layer with sequences, then a TimeSlice of the
last step.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..base import Check, Layer, register
from .gru import GRU
from .lstm import LSTM
from .simple_rnn import SimpleRNN

Recurrent = LSTM | GRU | SimpleRNN
MERGE_MODES = ("concat", "sum", "mul", "ave")


@register
@dataclass
class Bidirectional(Layer):
    """Two recurrent layers over one sequence, the backward one reading it reversed."""

    name: str
    forward: Recurrent
    backward: Recurrent
    merge_mode: str = "concat"
    origin: str = ""

    kind = "bidirectional"
    title = "Bidirectional"
    recurrent = True

    @property
    def return_sequences(self) -> bool:
        return self.forward.return_sequences

    @property
    def go_backwards(self) -> bool:
        return False

    @property
    def input_size(self) -> int:
        return self.forward.input_size

    @property
    def output_size(self) -> int:
        size = self.forward.output_size
        return 2 * size if self.merge_mode == "concat" else size

    def returns_sequence(self, sequence_in: bool) -> bool:
        return self.return_sequences

    @property
    def streamable(self) -> bool:
        return False

    def parameter_count(self) -> int:
        return self.forward.parameter_count() + self.backward.parameter_count()

    def features(self) -> set[str]:
        return self.forward.features() | self.backward.features()

    def parts(self) -> list[Layer]:
        return [self, self.forward, self.backward]

    def validate(self, check: Check) -> None:
        if not check.sequence:
            raise check.fail(
                "a recurrent layer needs a sequence, but an earlier one has return_sequences=False"
            )
        inner = (self.forward, self.backward)
        if type(inner[0]) is not type(inner[1]) or not isinstance(inner[0], LSTM | GRU | SimpleRNN):
            raise check.fail("forward and backward must be recurrent layers of one kind")
        if inner[0].go_backwards or not inner[1].go_backwards:
            raise check.fail(
                "the forward layer must read forward and the backward layer backward (go_backwards)"
            )
        if inner[0].return_sequences != inner[1].return_sequences:
            raise check.fail("forward and backward disagree on return_sequences")
        if (
            inner[0].output_size != inner[1].output_size
            or inner[0].input_size != inner[1].input_size
        ):
            raise check.fail("forward and backward differ in size")
        if self.merge_mode not in MERGE_MODES:
            raise check.fail(
                f"merge_mode {self.merge_mode!r} is not supported; "
                f"supported: {', '.join(MERGE_MODES)}"
            )
        for part in inner:
            part.validate_arrays(f"{check.where} {part.name!r}")

    def describe(self) -> str:
        inner = self.forward.describe().split(": ", 1)[1]
        return f"{self.name}: Bidirectional({inner}), merge {self.merge_mode}"

    def reference(self, x: np.ndarray, mask: Any) -> tuple[np.ndarray, Any]:
        y_forward = self.forward.run(x, mask)
        y_backward = self.backward.run(x, mask)
        if self.return_sequences:  # back to input time order before merging
            y_backward = y_backward[:, ::-1]
        if self.merge_mode == "concat":
            y = np.concatenate([y_forward, y_backward], axis=-1)
        elif self.merge_mode == "sum":
            y = y_forward + y_backward
        elif self.merge_mode == "mul":
            y = y_forward * y_backward
        else:
            y = (y_forward + y_backward) / 2.0
        return y, (mask if self.return_sequences else None)
