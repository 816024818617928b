"""The operator registries of the ONNX walk: op_type -> the handler that follows it.

* `DATA_OPS`: operators with an input computed from the graph input (the data path);
  a handler `(walk, index, node, where, attrs, inputs)` turns them into IR layers or
  tracks how they move the data's axes. `DIRECTION_AXIS_OPS` are the ones that may see
  the separate directions axis of a bidirectional operator (to concatenate the two
  directions along the features; the walk refuses it for any other).
* `SHAPE_OPS`: operators computing with the input's shape (symbolic vectors of axis sizes,
  tensors filled with one value); a handler `(walk, node, where, attrs, inputs)`.

Each operator family module (`ops/`, `shapes`) registers its handlers with the decorators
below when it is imported; the walk imports them all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .walk import Walk

DataHandler = Callable[["Walk", int, Any, str, dict, list], None]
ShapeHandler = Callable[["Walk", Any, str, dict, list], None]

DATA_OPS: dict[str, DataHandler] = {}
SHAPE_OPS: dict[str, ShapeHandler] = {}
DIRECTION_AXIS_OPS: set[str] = set()


def data_op(*op_types: str, sees_directions: bool = False) -> Callable[[DataHandler], DataHandler]:
    """Register a data-path handler for `op_types`; `sees_directions`: it may receive the
    separate directions axis of a bidirectional operator."""

    def register(handler: DataHandler) -> DataHandler:
        for op_type in op_types:
            DATA_OPS[op_type] = handler
            if sees_directions:
                DIRECTION_AXIS_OPS.add(op_type)
        return handler

    return register


def shape_op(*op_types: str) -> Callable[[ShapeHandler], ShapeHandler]:
    """Register a handler of shape arithmetic for `op_types`."""

    def register(handler: ShapeHandler) -> ShapeHandler:
        for op_type in op_types:
            SHAPE_OPS[op_type] = handler
        return handler

    return register
