"""Constant folding: a node whose inputs are all constants is evaluated once, at load time,
by onnx's reference evaluator, and its outputs become constants of the walk (PyTorch's
gate reordering of W/R/B by Slice + Concat, shape constants, ...)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .values import Const, first_line

if TYPE_CHECKING:
    from .walk import Walk


def fold(walk: Walk, node: Any, where: str) -> None:
    """Evaluate a node whose inputs are all constants with onnx's reference evaluator."""
    from onnx.reference import ReferenceEvaluator

    feeds = {i: walk.values[i].value for i in node.input if i}  # type: ignore[union-attr]
    try:
        evaluator = ReferenceEvaluator(node, opsets={"": walk.opset})
        results = evaluator.run(None, feeds)
    except Exception as exc:
        raise walk.fail(
            where,
            f"could not evaluate this constant computation ({first_line(exc)})",
            supported=False,
        ) from None
    for name, value in zip(node.output, results):
        if name:
            walk.values[name] = Const(np.asarray(value))
