"""The TimeSlice layer kind: keeps the timesteps ``[start:stop]`` of a sequence (Python
slice semantics: a negative index counts from the end, `stop` None means to the end, a
slice longer than the sequence keeps what there is). With ``squeeze`` the slice is one
timestep and the output is that one vector.

Keras Cropping1D((a, b)) is start=a, stop=-b (None for b = 0); PyTorch's `out[:, -1]` is
start=-1, stop=None, squeeze; ONNX's Slice of the last k steps is start=-k."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..base import Check, KeepsSize, Layer, register
from ..checks import check_positive_int


@register
@dataclass
class TimeSlice(KeepsSize, Layer):
    """Timesteps [start:stop] of a sequence; with `squeeze`, one timestep as a vector."""

    name: str
    size: int
    start: int = 0
    stop: int | None = None
    squeeze: bool = False
    origin: str = ""

    kind = "time_slice"
    title = "TimeSlice"

    @property
    def is_last_step(self) -> bool:
        return self.start == -1 and self.stop is None

    def returns_sequence(self, sequence_in: bool) -> bool:
        return not self.squeeze

    def output_timesteps(self, t_len: int) -> int:
        return len(range(t_len)[self.start : self.stop])

    @property
    def streamable(self) -> bool:
        """The last step of the sequence so far is what one step gives."""
        return self.is_last_step

    def validate(self, check: Check) -> None:
        if not check.sequence:
            raise check.fail("a time slice needs a sequence")
        check_positive_int(self.size, check.where, "size")
        for field in ("start", "stop"):
            value = getattr(self, field)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise check.fail(f"{field} must be an integer, got {value!r}")
        same_sign = self.stop is None or (self.start < 0) == (self.stop < 0)
        if self.stop is not None and same_sign and self.stop <= self.start:
            raise check.fail(f"[{self.start}:{self.stop}] keeps no timestep")
        if self.squeeze and not self.single_step():
            raise check.fail(
                f"squeeze needs a slice of one timestep, got [{self.start}:{self.stop}]"
            )

    def single_step(self) -> bool:
        """True when the slice keeps at most one timestep of any sequence."""
        if self.stop is None:
            return self.start == -1
        return (self.start < 0) == (self.stop < 0) and self.stop == self.start + 1

    def describe(self) -> str:
        stop = "" if self.stop is None else str(self.stop)
        what = "one timestep" if self.squeeze else "timesteps"
        return f"{self.name}: TimeSlice [{self.start}:{stop}] ({what}) of {self.size}"

    def reference(self, x: np.ndarray, mask: Any) -> tuple[np.ndarray, Any]:
        y = x[:, self.start : self.stop]
        m = None if mask is None else mask[:, self.start : self.stop]
        if self.squeeze:
            return y[:, 0], None
        return y, m
