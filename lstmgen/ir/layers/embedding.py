"""The Embedding layer kind (first layer only): the model's input is one token id per
timestep (an integer in [0, vocabulary)), and the layer's output at that timestep is row
`id` of ``weights`` (vocabulary x E). With ``mask_zero`` the id 0 masks its timestep as
the Masking layer does (every recurrent layer skips it).

In the IR a token id travels as a float in a sequence of width 1 (the model's
input_size is 1); the targets' APIs take integer ids. An id that is not an integer in
[0, vocabulary) is an error."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..base import Check, Layer, register
from ..checks import check_array


@register
@dataclass
class Embedding(Layer):
    """Token ids -> rows of `weights` (see the module docstring)."""

    name: str
    weights: np.ndarray  # (vocabulary, E)
    mask_zero: bool = False
    origin: str = ""

    kind = "embedding"
    title = "Embedding"
    #: the model's input is token ids, not features
    consumes_ids: ClassVar[bool] = True

    @property
    def vocabulary_size(self) -> int:
        return int(self.weights.shape[0])

    @property
    def input_size(self) -> int:
        return 1

    @property
    def output_size(self) -> int:
        return int(self.weights.shape[1])

    def arrays(self) -> dict[str, np.ndarray | None]:
        return {"weights": self.weights}

    def validate(self, check: Check) -> None:
        if check.index != 0:
            raise check.fail("Embedding is supported as the first layer only")
        if getattr(self.weights, "ndim", 0) != 2 or min(self.weights.shape) < 1:
            raise check.fail(
                "weights must be a (vocabulary, output size) matrix with at least one row "
                "and one column"
            )
        check_array(self.weights, self.weights.shape, check.where, "weights")
        if not isinstance(self.mask_zero, bool):
            raise check.fail(f"mask_zero must be true or false, got {self.mask_zero!r}")

    def describe(self) -> str:
        mask = ", id 0 masks its timestep" if self.mask_zero else ""
        return (
            f"{self.name}: Embedding of {self.vocabulary_size} token ids -> {self.output_size}"
            f"{mask}"
        )

    def token_ids(self, x: np.ndarray) -> np.ndarray:
        """The int64 ids in x [N, T, 1]; ValueError for anything not an id."""
        ids = np.asarray(x)[..., 0]
        bad = ~np.isfinite(ids) | (ids != np.round(ids)) | (ids < 0) | (ids >= self.vocabulary_size)
        if np.any(bad):
            raise ValueError(
                f"layer '{self.name}' (embedding): input {ids[bad].ravel()[0]!r} is not a "
                f"token id in [0, {self.vocabulary_size})"
            )
        return ids.astype(np.int64)

    def reference(self, x: np.ndarray, mask: Any) -> tuple[np.ndarray, Any]:
        ids = self.token_ids(x)
        y = self.weights.astype(np.float64)[ids]
        return y, ((ids != 0) if self.mask_zero else mask)
