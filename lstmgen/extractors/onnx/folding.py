"""Constant folding: a node whose inputs are all constants is evaluated once, at load time,
by onnx's reference evaluator, and its outputs become constants of the walk (PyTorch's
gate reordering of W/R/B by Slice + Concat, shape constants, ...). The outputs' sizes are
checked against the limits before the node runs (`sizes.check_fold`).

The node is evaluated inside a one-node model that imports the graph's own opsets, so an
old operator version runs with its own semantics and attribute forms (opset 7-9
Unsqueeze/Squeeze `axes`, Slice `starts`/`ends` as attributes, ...): onnx's evaluator
ignores the opset of a bare node and would run the newest version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .sizes import check_fold
from .values import Const, first_line

if TYPE_CHECKING:
    from .walk import Walk


def fold(walk: Walk, node: Any, where: str) -> None:
    """Evaluate a node whose inputs are all constants with onnx's reference evaluator."""
    from onnx.reference import ReferenceEvaluator

    feeds = {i: np.asarray(walk.values[i].value) for i in node.input if i}  # type: ignore[union-attr]
    check_fold(walk, node, feeds, where)  # the outputs' sizes, before the node runs
    try:
        evaluator = ReferenceEvaluator(_one_node_model(walk, node, feeds))
        results = evaluator.run(None, feeds)
    except Exception as exc:
        raise walk.fail(
            where,
            f"could not evaluate this constant computation ({first_line(exc)})",
            supported=False,
        ) from None
    for name, value in zip([o for o in node.output if o], results):
        walk.values[name] = Const(np.asarray(value))


def _one_node_model(walk: Walk, node: Any, feeds: dict[str, np.ndarray]) -> Any:
    """A model of `node` alone, with the graph's opset imports and IR version."""
    from onnx import helper

    inputs = [
        helper.make_tensor_value_info(
            name, helper.np_dtype_to_tensor_dtype(value.dtype), list(value.shape)
        )
        for name, value in feeds.items()
    ]
    outputs = [helper.make_empty_tensor_value_info(o) for o in node.output if o]
    graph = helper.make_graph([node], "lstmgen_fold", inputs, outputs)
    return helper.make_model(
        graph, opset_imports=list(walk.proto.opset_import), ir_version=walk.proto.ir_version
    )
