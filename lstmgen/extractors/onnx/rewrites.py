"""Exporter idioms rewritten into their equivalent before the walk.

* A Gather or Slice of one part out of a Concat is that part (PyTorch's `h_n[-1]` over
  every layer's Y_h concatenated).
* A Concat along the last axis of items 0 and 1 of a size-2 axis is a Transpose +
  Reshape (`torch.cat([h_n[-2], h_n[-1]], -1)` over a bidirectional Y_h).

The rewritten nodes keep the original outputs' names, so the rest of the graph is
untouched; the walk's notes say what was rewritten.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .values import Const, attribute, describe_node

if TYPE_CHECKING:
    from .walk import Walk


def rewrite_idioms(walk: Walk, nodes: list) -> list:
    """`nodes` with both idioms rewritten."""
    return _concat_of_pair(walk, _pick_from_concat(walk, nodes))


def _pick_from_concat(walk: Walk, nodes: list) -> list:
    """Gather(Concat(a_0, ..., a_n-1, axis k), j, axis k) is an item of one a_i, and a
    Slice of Concat along k covering exactly one a_i is that a_i: PyTorch's `h_n[-1]`
    (or `h_n[-2:]`) concatenates every layer's Y_h and picks from the last. Rewriting
    it before the walk leaves the other layers' Y_h unused."""
    producers = {o: node for node in nodes for o in node.output if o}
    out = []
    for position, node in enumerate(nodes):
        concat = (
            producers.get(node.input[0])
            if node.op_type in ("Gather", "Slice") and node.input
            else None
        )
        if concat is None or concat.op_type != "Concat":
            out.append(node)
            continue
        where = describe_node(node, position)
        replacement = _part_of_concat(walk, node, concat, producers, where)
        out.extend(replacement if replacement is not None else [node])
    return out


def _part_of_concat(walk: Walk, node: Any, concat: Any, producers: dict, where: str) -> list | None:
    from onnx import helper

    c_axis = int(next((a.i for a in concat.attribute if a.name == "axis"), 0))
    parts = list(concat.input)
    dims = [walk.ranks.get(p) for p in parts]
    first = dims[0]
    rank = len(first) if first else 0
    if rank == 0 or any(d is None or len(d) != rank or not d[c_axis % rank] for d in dims):
        return None
    c_axis %= rank
    sizes = [int(d[c_axis]) for d in dims if d is not None]
    offsets = [int(v) for v in np.cumsum([0] + sizes)]
    total = offsets[-1]
    note = f"{where} picks '{{}}' out of the Concat '{concat.name or concat.output[0]}'"
    starts: Any
    ends: Any
    axes: Any
    steps: Any
    if node.op_type == "Slice":
        if walk.opset < 10:
            attrs = {a.name: attribute(a) for a in node.attribute}
            starts, ends = attrs.get("starts"), attrs.get("ends")
            axes, steps = attrs.get("axes", [0]), [1]
        else:
            got = [
                _static_value(walk, node.input[k], producers)
                if len(node.input) > k and node.input[k]
                else None
                for k in range(1, 5)
            ]
            starts, ends = got[0], got[1]
            axes = [0] if got[2] is None else got[2]
            steps = [1] if got[3] is None else got[3]
        if starts is None or ends is None:
            return None
        starts, ends, axes, steps = (
            list(np.asarray(v).ravel()) for v in (starts, ends, axes, steps)
        )
        if (
            not (len(starts) == len(ends) == len(axes) == 1 and len(steps) == 1)
            or int(axes[0]) % rank != c_axis
            or int(steps[0]) != 1
        ):
            return None
        picked = list(range(*slice(int(starts[0]), int(ends[0])).indices(total)))
        for k, part in enumerate(parts):
            if picked == list(range(offsets[k], offsets[k + 1])):
                walk.notes.append(note.format(part))
                return [helper.make_node("Identity", [part], [node.output[0]], name=node.name)]
        return None
    axis = int(next((a.i for a in node.attribute if a.name == "axis"), 0))
    index = _static_value(walk, node.input[1], producers)
    if index is None or index.size != 1 or index.ndim > 1 or axis % rank != c_axis:
        return None
    j = int(index.ravel()[0])
    if not -total <= j < total:
        return None
    j %= total
    k = int(np.searchsorted(offsets, j, side="right")) - 1
    picked_part, offset = parts[k], j - offsets[k]
    walk.notes.append(note.format(picked_part))
    if sizes[k] > 1:  # an item of a part: Gather from the part
        index_name = f"{node.output[0]}__lstmgen_index"
        walk.values[index_name] = Const(np.array(offset, np.int64).reshape(index.shape))
        return [
            helper.make_node(
                "Gather", [picked_part, index_name], [node.output[0]], name=node.name, axis=c_axis
            )
        ]
    if index.ndim == 1:
        return [helper.make_node("Identity", [picked_part], [node.output[0]], name=node.name)]
    if walk.opset < 13:
        return [
            helper.make_node(
                "Squeeze", [picked_part], [node.output[0]], name=node.name, axes=[c_axis]
            )
        ]
    axes_name = f"{node.output[0]}__lstmgen_axes"
    walk.values[axes_name] = Const(np.array([c_axis], np.int64))
    return [helper.make_node("Squeeze", [picked_part, axes_name], [node.output[0]], name=node.name)]


def _concat_of_pair(walk: Walk, nodes: list) -> list:
    """Concat(Gather(X, 0, axis a), Gather(X, 1, axis a)) along the last axis, where
    X's axis a has size 2, is X with axis a moved just before the last axis and the two
    merged: `torch.cat([h_n[-2], h_n[-1]], -1)` over a bidirectional Y_h."""
    from onnx import helper

    producers = {o: node for node in nodes for o in node.output if o}
    out = []
    for position, node in enumerate(nodes):
        gathers = [producers.get(i) for i in node.input] if node.op_type == "Concat" else []
        if (
            len(gathers) != 2
            or any(g is None or g.op_type != "Gather" for g in gathers)
            or gathers[0].input[0] != gathers[1].input[0]  # type: ignore[union-attr]
        ):
            out.append(node)
            continue
        source = gathers[0].input[0]  # type: ignore[union-attr]
        dims = walk.ranks.get(source) or []
        rank = len(dims)
        axes = (
            {
                int(next((a.i for a in g.attribute if a.name == "axis"), 0)) % rank
                for g in gathers
                if g is not None
            }
            if rank
            else set()
        )
        indices = [_static_value(walk, g.input[1], producers) for g in gathers if g is not None]
        c_axis = int(next((a.i for a in node.attribute if a.name == "axis"), 0))
        if (
            rank < 2
            or len(axes) != 1
            or dims[next(iter(axes))] != 2
            or any(i is None or i.ndim != 0 for i in indices)
            or [int(i) % 2 for i in indices if i is not None] != [0, 1]
            or c_axis % (rank - 1) != rank - 2
        ):
            out.append(node)
            continue
        a = next(iter(axes))
        others = [k for k in range(rank) if k != a]
        perm = others[:-1] + [a] + others[-1:]
        moved = f"{node.output[0]}__lstmgen_moved"
        out.append(
            helper.make_node(
                "Transpose",
                [source],
                [moved],
                name=f"{node.name or node.output[0]}_transpose",
                perm=perm,
            )
        )
        target = [0] * (rank - 2) + [-1]
        if walk.opset < 5:
            out.append(
                helper.make_node("Reshape", [moved], [node.output[0]], name=node.name, shape=target)
            )
        else:
            shape_name = f"{node.output[0]}__lstmgen_shape"
            walk.values[shape_name] = Const(np.array(target, np.int64))
            out.append(
                helper.make_node("Reshape", [moved, shape_name], [node.output[0]], name=node.name)
            )
        walk.notes.append(
            f"{describe_node(node, position)} concatenates items 0 and 1 of "
            f"axis {a} of '{source}' along the last axis: rewritten as a "
            "Transpose + Reshape"
        )
    return out


def _static_value(walk: Walk, name: str, producers: dict) -> np.ndarray | None:
    """The constant value of tensor `name` before the walk: an initializer or a Constant."""
    value = walk.values.get(name)
    if isinstance(value, Const):
        return np.asarray(value.value)
    node = producers.get(name)
    if node is not None and node.op_type == "Constant":
        for attr in node.attribute:
            if attr.name == "value":
                return np.asarray(walk.onnx.numpy_helper.to_array(attr.t))
            if attr.name in ("value_int", "value_ints"):
                return np.asarray(attribute(attr), np.int64)
    return None
