"""The exact text of weight values for MATLAB literals: numbers only, no MATLAB syntax.

Every value is `lstmgen.literals.float_literal` text, which `single(...)` reads back to the
model's exact float32. The templates (`templates/matlab/macros.j2`) put these texts into
`single([...])` literals: a matrix one row per line (`VALUES_PER_LINE` values, then
continuation lines), a column vector `VALUES_PER_LINE` values to a line, either optionally
split into blocks of rows (e.g. an LSTM's gate blocks).
"""

from __future__ import annotations

import numpy as np

from ...literals import float_literal

VALUES_PER_LINE = 8


def _chunks(texts: list[str]) -> list[list[str]]:
    return [texts[k : k + VALUES_PER_LINE] for k in range(0, len(texts), VALUES_PER_LINE)]


def matrix_rows(values: np.ndarray) -> list[list[list[str]]]:
    """A 2-D array as rows, each row as chunks of at most VALUES_PER_LINE value texts."""
    matrix = np.asarray(values, np.float32)
    if matrix.ndim != 2:
        raise ValueError(f"a matrix literal needs a 2-D array, got shape {matrix.shape}")
    return [_chunks([float_literal(float(v)) for v in row]) for row in matrix]


def column_blocks(values: np.ndarray, size: int = 0) -> list[list[list[str]]]:
    """A vector as blocks of `size` values (0: one block), each block as chunks of at most
    VALUES_PER_LINE value texts."""
    texts = [float_literal(float(v)) for v in np.asarray(values, np.float32).ravel()]
    size = size or max(len(texts), 1)
    return [_chunks(texts[first : first + size]) for first in range(0, len(texts), size)]


def double_text(value: float) -> str:
    """The exact text of a Python float (a double) as a MATLAB literal, e.g. an epsilon."""
    text = repr(float(value))
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{int(exponent)}"
    return text if any(ch in text for ch in ".e") else text + ".0"
