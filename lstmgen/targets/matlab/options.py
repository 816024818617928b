"""The MATLAB target's one option, `precision`: which class the generated code computes in.

`single` (the default) computes in single precision, as the frameworks and a
microcontroller FPU do; `double` computes in double precision with the same float32
weights (for desktop analysis). The weight literals read back to the model's exact
float32 values either way: `single([...])`, or `double(single([...]))` in double.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...errors import LstmgenError

OPTIONS: tuple[str, ...] = ("precision",)


@dataclass(frozen=True)
class Precision:
    """The class the generated code computes in, and how it writes its constants."""

    name: str  # "single" or "double": the MATLAB class
    bytes: int  # bytes per value

    @property
    def weight_open(self) -> str:
        """What opens a weight literal: the float32 text always goes through single()."""
        return "single([" if self.name == "single" else "double(single(["

    @property
    def weight_close(self) -> str:
        return "])" if self.name == "single" else "]))"

    @property
    def scalar_open(self) -> str:
        """What opens a float32 scalar constant (e.g. a mask value)."""
        return "single(" if self.name == "single" else "double(single("

    @property
    def scalar_close(self) -> str:
        return ")" if self.name == "single" else "))"


PRECISIONS: dict[str, Precision] = {
    "single": Precision("single", 4),
    "double": Precision("double", 8),
}


def precision_from(precision: str, options: dict[str, Any]) -> Precision:
    """The Precision called `precision`; an LstmgenError for any other value or option."""
    if precision not in PRECISIONS:
        raise LstmgenError(
            f"precision {precision!r} is not supported by target 'matlab'; "
            f"choose one of: {', '.join(PRECISIONS)}"
        )
    if options:
        raise LstmgenError(
            f"option '{sorted(options)[0]}' does not apply to target 'matlab'; "
            f"it takes: {', '.join(OPTIONS)}"
        )
    return PRECISIONS[precision]
