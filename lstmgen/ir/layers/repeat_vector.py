"""The RepeatVector layer kind: one vector becomes a sequence of ``times`` timesteps, each a
copy of it (the bridge of an LSTM autoencoder: encoder -> RepeatVector(T) -> decoder with
return_sequences)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ...limits import check_timesteps
from ..base import Check, KeepsSize, Layer, register
from ..checks import check_positive_int


@register
@dataclass
class RepeatVector(KeepsSize, Layer):
    """A vector -> a sequence of `times` copies of it."""

    name: str
    size: int
    times: int
    origin: str = ""

    kind = "repeat_vector"
    title = "RepeatVector"

    def returns_sequence(self, sequence_in: bool) -> bool:
        return True

    def output_timesteps(self, t_len: int) -> int:
        return self.times

    @property
    def streamable(self) -> bool:
        return False

    def validate(self, check: Check) -> None:
        if check.sequence:
            raise check.fail(
                "RepeatVector needs one vector (after a layer that returns its last step), "
                "not a sequence"
            )
        check_positive_int(self.times, check.where, "times")
        check_timesteps(check.where, self.times)
        check_positive_int(self.size, check.where, "size")

    def describe(self) -> str:
        return f"{self.name}: RepeatVector {self.size} x {self.times} timesteps"

    def reference(self, x: np.ndarray, mask: Any) -> tuple[np.ndarray, Any]:
        return np.repeat(x[:, None, :], self.times, axis=1), None
