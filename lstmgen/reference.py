"""A float64 numpy forward pass of the IR: the target-independent second oracle.

Each layer kind's `reference` (in its `lstmgen.ir.layers` module) implements the canonical
semantics documented there directly, with no code shared with any target, so that a target
bug cannot hide behind a reference bug. This module runs them in order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .ir import Model, activate

__all__ = ["activate", "forward"]


def forward(model: Model, x: np.ndarray) -> np.ndarray:
    """Run `model` on x of shape [N, T, D] (or [T, D]); float64 result.

    The result is [N, T, O] when the model returns sequences, else [N, O] (without the
    leading N when x had no batch axis).
    """
    x = np.asarray(x, dtype=np.float64)
    single = x.ndim == 2
    if single:
        x = x[None]
    if x.ndim != 3 or x.shape[2] != model.input_size or x.shape[1] < 1:
        raise ValueError(f"input must be [N, T>=1, {model.input_size}], got {x.shape}")
    y = x
    mask: Any = None
    for layer in model.layers:
        y, mask = layer.reference(y, mask)
    return y[0] if single else y
