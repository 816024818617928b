"""Shape arithmetic: values that depend on the graph input's shape, not on its data.

Exporters build zero initial states and reshape targets from the input's shape:
`Shape` of a data tensor gives a `SymVec` of its axis sizes (an `Axis` object where the
size is only known at run time), which Gather, Slice, Concat, Squeeze, Unsqueeze, Reshape
and Cast carry along; ConstantOfShape, Expand and Tile give a `Fill` (one value
everywhere). A recurrent operator accepts a zero `Fill` as its initial state, a Reshape a
`SymVec` as its target shape, ReverseSequence/LSTM a `Fill`/`SymVec` equal to the time
axis as sequence_lens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .registry import data_op, shape_op
from .values import Axis, Const, Data, Fill, SymVec

if TYPE_CHECKING:
    from .walk import Walk


def _items(walk: Walk, value: Any, where: str) -> tuple:
    if isinstance(value, SymVec):
        return value.items
    if isinstance(value, Const):
        return tuple(int(v) for v in np.asarray(value.value).ravel())
    raise walk.fail(
        where, "a shape computation mixes in a value lstmgen does not follow", supported=False
    )


@shape_op("Shape")
def shape(walk: Walk, node: Any, where: str, attrs: dict, inputs: list) -> None:
    d = inputs[0]
    if not isinstance(d, Data):
        raise walk.fail(where, "Shape of a shape-dependent value", supported=False)
    items: list = []
    for axis in d.axes:
        if axis.role in ("F", "1", "D", "S") and axis.size is not None:
            items.append(int(axis.size))
        elif axis.role == "?" and axis.size == 1:
            items.append(1)
        else:
            items.append(axis)
    start = int(attrs.get("start", 0))
    end = attrs.get("end")
    items = items[start : None if end is None else int(end)]
    walk.values[node.output[0]] = SymVec(tuple(items))


@data_op("Shape")
def shape_of_data(walk: Walk, index: int, node: Any, where: str, attrs: dict, inputs: list) -> None:
    shape(walk, node, where, attrs, inputs)


@shape_op("Cast", "Identity", "Transpose")
def passing(walk: Walk, node: Any, where: str, attrs: dict, inputs: list) -> None:
    value = inputs[0]
    if node.op_type == "Cast" and isinstance(value, Fill) and not isinstance(value.value, Axis):
        value = Fill(float(value.value))
    walk.values[node.output[0]] = value


@shape_op("Gather")
def gather(walk: Walk, node: Any, where: str, attrs: dict, inputs: list) -> None:
    value = inputs[0]
    if isinstance(value, Fill):
        walk.values[node.output[0]] = value
        return
    items = _items(walk, value, where)
    indices = np.asarray(walk.const(node, 1, where, "indices"))
    picked = tuple(items[int(k)] for k in indices.ravel())
    walk.values[node.output[0]] = SymVec(picked, scalar=indices.ndim == 0)


@shape_op("Slice")
def slice_(walk: Walk, node: Any, where: str, attrs: dict, inputs: list) -> None:
    value = inputs[0]
    if isinstance(value, Fill):
        walk.values[node.output[0]] = value
        return
    items = _items(walk, value, where)
    if "starts" in attrs:
        start, end, step = attrs["starts"][0], attrs["ends"][0], 1
    else:
        start = int(walk.const(node, 1, where, "starts").ravel()[0])
        end = int(walk.const(node, 2, where, "ends").ravel()[0])
        got = walk.optional_const(node, 4, where, "steps")
        step = 1 if got is None else int(got.ravel()[0])
    walk.values[node.output[0]] = SymVec(tuple(items[slice(start, end, step)]))


@shape_op("Concat")
def concat(walk: Walk, node: Any, where: str, attrs: dict, inputs: list) -> None:
    if any(isinstance(v, Fill) for v in inputs):
        fills = {v.value if isinstance(v, Fill) else None for v in inputs}
        if len(fills) == 1 and all(isinstance(v, Fill) for v in inputs):
            walk.values[node.output[0]] = inputs[0]
            return
        raise walk.fail(
            where,
            "it concatenates tensors of different values along a shape-dependent axis",
            supported=False,
        )
    items: list = []
    for v in inputs:
        items.extend(_items(walk, v, where))
    walk.values[node.output[0]] = SymVec(tuple(items))


@shape_op("Unsqueeze", "Reshape")
def as_vector(walk: Walk, node: Any, where: str, attrs: dict, inputs: list) -> None:
    value = inputs[0]
    if isinstance(value, SymVec):
        value = SymVec(value.items, scalar=False)
    walk.values[node.output[0]] = value


@shape_op("Squeeze")
def squeeze(walk: Walk, node: Any, where: str, attrs: dict, inputs: list) -> None:
    value = inputs[0]
    if isinstance(value, SymVec):
        if len(value.items) != 1:
            raise walk.fail(where, "squeezes a shape vector of several items", supported=False)
        value = SymVec(value.items, scalar=True)
    walk.values[node.output[0]] = value


@shape_op("ConstantOfShape", "Expand", "Tile")
def fill(walk: Walk, node: Any, where: str, attrs: dict, inputs: list) -> None:
    """ConstantOfShape, Expand, Tile: the result holds one value wherever its shape."""
    source = inputs[0]
    if node.op_type == "ConstantOfShape":
        given = attrs.get("value")
        number = (
            0.0
            if given is None
            else float(np.asarray(walk.onnx.numpy_helper.to_array(given)).ravel()[0])
        )
        walk.values[node.output[0]] = Fill(number)
        return
    if isinstance(source, Fill):
        walk.values[node.output[0]] = source
    elif isinstance(source, Const):
        arr = np.asarray(source.value).ravel()
        if arr.size == 0 or np.any(arr != arr[0]):
            raise walk.fail(
                where,
                "it expands a constant that is not one value everywhere "
                "over a shape computed from the input",
                supported=False,
            )
        walk.values[node.output[0]] = Fill(float(arr[0]))
    elif isinstance(source, SymVec) and len(source.items) == 1:
        item = source.items[0]
        walk.values[node.output[0]] = Fill(item if isinstance(item, Axis) else float(item))
    else:
        raise walk.fail(where, "it expands a shape vector", supported=False)
