"""Exact text for float32 values, shared by every backend.

A float32 written by `float_literal` reads back to the very same float32 whether the
reader parses it directly as float (a C `f` literal) or as a double that is then rounded
to float (Python `array('f')`, MATLAB `single(...)`): the shortest decimal is used when it
survives both paths, otherwise 9 significant digits, which always do.
"""

from __future__ import annotations

import numpy as np


def float_literal(value: float | np.floating) -> str:
    """Shortest decimal text of float32(value) that round-trips exactly (finite only)."""
    v = np.float32(value)
    if not np.isfinite(v):
        raise ValueError(f"cannot write non-finite value {value!r} as a literal")
    text = np.format_float_positional(v, unique=True, trim="0")
    if len(text) > 12 or "e" in text:
        text = np.format_float_scientific(v, unique=True, trim="0", exp_digits=1)
    if np.float32(float(text)) != v or np.float64(np.float32(text)) != np.float64(v):
        text = f"{float(v):.9g}"
    if text in ("-0", "-0.0"):
        text = "-0.0"
    if not any(ch in text for ch in ".e"):
        text += ".0"
    return text.replace("e+", "e")


def c_float(value: float) -> str:
    """A C float literal such as `0.5f`, `-1.25e-05f`."""
    return float_literal(value) + "f"


def wrap_values(texts: list[str], per_line: int, indent: str) -> str:
    """Join literal texts with commas, `per_line` to a line, each line indented."""
    lines = []
    for start in range(0, len(texts), per_line):
        lines.append(indent + ", ".join(texts[start : start + per_line]))
    return ",\n".join(lines)
