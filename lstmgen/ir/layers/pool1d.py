"""The Pool1D layer kind: ``max`` or ``avg`` over windows of ``pool_size`` steps every
``stride`` steps, ``valid`` or ``same`` padding (padding never counts: max ignores it, avg
divides by the number of real steps in the window)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..base import Check, KeepsSize, register
from .windows import WindowLayer, window_taps


@register
@dataclass
class Pool1D(KeepsSize, WindowLayer):
    """Max or average pooling over time."""

    name: str
    size: int  # features (unchanged)
    pool_type: str = "max"
    pool_size: int = 2
    stride: int = 2
    padding: str = "valid"
    origin: str = ""

    kind = "pool1d"
    title = "Pool1D (max/avg)"

    @property
    def span(self) -> int:
        return self.pool_size

    def paddings(self) -> tuple[str, ...]:
        return ("valid", "same")

    def validate_window(self, check: Check) -> None:
        if self.pool_type not in ("max", "avg") or self.pool_size < 1 or self.stride < 1:
            raise check.fail("pool_type max/avg, pool_size and stride >= 1")

    def describe(self) -> str:
        return (
            f"{self.name}: {self.pool_type.capitalize()}Pool1D size {self.pool_size}, "
            f"stride {self.stride}, {self.padding}, over {self.size}"
        )

    def reference(self, x: np.ndarray, mask: Any) -> tuple[np.ndarray, Any]:
        t_len = x.shape[1]
        fill = -np.inf if self.pool_type == "max" else np.nan
        taps = window_taps(
            x,
            self.pool_size,
            self.stride,
            1,
            self.padding_left(t_len),
            self.output_timesteps(t_len),
            fill,
        )
        y = np.max(taps, axis=2) if self.pool_type == "max" else np.nanmean(taps, axis=2)
        return y, None
