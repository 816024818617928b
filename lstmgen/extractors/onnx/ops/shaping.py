"""Shape glue on the data path: Identity/Dropout/Cast, Transpose, Squeeze, Unsqueeze,
Reshape, Flatten. They make no IR layer: they move, add or drop singleton axes, fold
batch and time into one axis (and split it again), or concatenate the two directions of
a bidirectional operator along the features; anything that would mix the features with
another axis is refused."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ....errors import UnsupportedLayerError
from ..registry import data_op
from ..spec import BIDIRECTIONAL_GLUE
from ..values import Axis, Const, Data, SymVec, role_name
from .time import select_last

if TYPE_CHECKING:
    from ..walk import Walk


def shape_only_concat(walk: Walk, node: Any, where: str, attrs: dict, inputs: list) -> None:
    """A Concat whose result only feeds Shape: its axes are the first data input's, with
    the concatenated axis known by its size only."""
    first = next(v for v in inputs if isinstance(v, Data))
    rank = len(first.axes)
    axis = int(attrs.get("axis", 0))
    axis = axis + rank if axis < 0 else axis
    if not 0 <= axis < rank:
        raise walk.fail(where, f"axis {attrs.get('axis')} is out of range", supported=False)
    dims = walk.ranks.get(node.output[0])
    size = dims[axis] if dims and len(dims) == rank and dims[axis] else None
    axes = list(first.axes)
    axes[axis] = Axis("S", size)
    walk.values[node.output[0]] = Data(axes, first.flipped)


@data_op("Identity", "Dropout", "Cast", sees_directions=True)
def identity(walk: Walk, index: int, node: Any, where: str, attrs: dict, inputs: list) -> None:
    d = walk.data_input(node, inputs, where)
    if node.op_type == "Cast" and attrs.get("to") != 1:
        raise walk.fail(
            where, f"casts to ONNX type {attrs.get('to')}; only float32 keeps the model's math"
        )
    if node.op_type == "Dropout":
        if len(node.input) > 2 and node.input[2]:
            mode = walk.const(node, 2, where, "training_mode")
            if bool(np.asarray(mode).ravel()[0]):
                raise walk.fail(where, "training_mode is true")
        if len(node.output) > 1 and node.output[1] and walk.consumers.get(node.output[1]):
            raise walk.fail(where, "its mask output is used")
        walk.notes.append(
            f"dropped {node.op_type} '{node.name or node.output[0]}': identity at inference"
        )
    walk.assign(node.output[0], Data(list(d.axes), d.flipped), where)


@data_op("Transpose", sees_directions=True)
def transpose(walk: Walk, index: int, node: Any, where: str, attrs: dict, inputs: list) -> None:
    d = walk.data_input(node, inputs, where)
    perm = list(attrs.get("perm", range(len(d.axes) - 1, -1, -1)))
    walk.assign(node.output[0], Data([d.axes[p] for p in perm], d.flipped), where)


@data_op("Squeeze", sees_directions=True)
def squeeze(walk: Walk, index: int, node: Any, where: str, attrs: dict, inputs: list) -> None:
    d = walk.data_input(node, inputs, where)
    axes = walk.axes_attr(node, attrs, len(d.axes), where)
    if axes is None:
        unknown = [k for k, a in enumerate(d.axes) if a.size is None and not walk.is_singleton(a)]
        if unknown:
            raise walk.fail(
                where,
                f"Squeeze without axes on a tensor whose axis {unknown[0]} "
                "has a dynamic size (its result depends on the batch "
                "size)",
            )
        axes = [k for k, a in enumerate(d.axes) if a.size == 1 or walk.is_singleton(a)]
    out = Data(list(d.axes), d.flipped)
    for k in sorted(axes, reverse=True):
        axis = d.axes[k]
        if (
            axis is walk.time_axis and axis is not None and axis.size == 1
        ):  # the only step is the last one
            out = select_last(walk, out, k, True, where, node, index)
            continue
        if walk.is_singleton(axis):
            if axis.role == "?":
                axis.role = "1"
            continue
        if axis.role == "B":
            if axis.size not in (None, 1):
                raise walk.fail(where, f"squeezes the batch axis of size {axis.size}")
            walk.fix_batch(1, where, "squeezing the batch axis")
        elif axis.role == "?" and axis.size is None:
            axis.role = "1"  # the graph only runs when this input axis is 1
        elif axis.role == "F" and axis.size == 1:
            continue
        else:
            raise walk.fail(where, f"squeezes axis {k}, which lstmgen tracked as {role_name(axis)}")
    keep = [a for k, a in enumerate(out.axes) if k not in axes]
    walk.assign(node.output[0], Data(keep, out.flipped), where)


@data_op("Unsqueeze", sees_directions=True)
def unsqueeze(walk: Walk, index: int, node: Any, where: str, attrs: dict, inputs: list) -> None:
    d = walk.data_input(node, inputs, where)
    rank = len(d.axes)
    n_new = (
        len(attrs["axes"])
        if "axes" in attrs
        else int(np.asarray(walk.const(node, 1, where, "axes")).size)
    )
    axes = sorted(walk.axes_attr(node, attrs, rank + n_new, where) or [])
    out = list(d.axes)
    for k in axes:
        out.insert(k, Axis("1", 1))
    walk.assign(node.output[0], Data(out, d.flipped), where)


def _atoms(walk: Walk, axes: list) -> list:
    """The non-singleton axes in order, folded axes expanded into their parts."""
    out: list = []
    for a in axes:
        if walk.is_singleton(a):
            continue
        out.extend(a.parts if a.role == "M" else [a])
    return out


def _merge_directions(walk: Walk, atoms: list) -> list:
    """`atoms` with every directions axis followed by its own feature axis (or whose
    feature axis is a singleton) replaced by the concatenated features [forward, backward]
    (direction-major, as ONNX's Y [.., 2, .., H] reshaped to [.., 2H] holds them)."""
    out, k = [], 0
    while k < len(atoms):
        axis = atoms[k]
        if axis.role == "D":
            if k + 1 < len(atoms) and atoms[k + 1] is axis.pair:
                out.append(Axis("F", 2 * int(axis.pair.size)))
                k += 2
                continue
            if walk.is_singleton(axis.pair):
                out.append(Axis("F", 2 * int(axis.pair.size)))
                k += 1
                continue
        out.append(axis)
        k += 1
    return out


def _fold_axes(walk: Walk, atoms: list, where: str) -> Axis:
    if not atoms:
        return Axis("1", 1)
    if len(atoms) == 1 and atoms[0].role != "D":
        return atoms[0]
    if any(a.role == "D" for a in atoms):
        merged = _merge_directions(walk, atoms)
        directions = [a for a in merged if a.role == "D"]
        if directions and len(atoms) > 1:
            raise walk.fail(
                where,
                f"it merges the two directions of bidirectional "
                f"{directions[0].owner} with another axis than their own "
                f"features, or in feature-major order; {BIDIRECTIONAL_GLUE}",
                supported=False,
            )
        atoms = merged
        if len(atoms) == 1:
            return atoms[0]
    if any(a.role not in ("B", "T") for a in atoms):
        raise walk.fail(
            where,
            "it merges the feature axis (or an axis whose role is not "
            "known yet) with another axis; only batch and time may be "
            "folded together",
        )
    return Axis("M", None, parts=tuple(atoms))


def _regroup(walk: Walk, d: Data, entries: list, where: str) -> list:
    """Output axes of a Reshape whose target entries are ('axis', Axis), ('size', n),
    ('one',), ('rest',) or ('copy', k): it may only add or drop singletons, fold batch
    and time into one axis, or split such a fold."""
    atoms = _atoms(walk, d.axes)
    try:
        return _regroup_atoms(walk, d, atoms, entries, where)
    except UnsupportedLayerError:
        merged = _merge_directions(walk, atoms)
        if len(merged) == len(atoms):
            raise
        try:  # the two directions concatenated along the features by an explicit size
            return _regroup_atoms(walk, d, merged, entries, where)
        except UnsupportedLayerError:
            pass
        raise


def _regroup_atoms(walk: Walk, d: Data, atoms: list, entries: list, where: str) -> list:
    expanded: list[tuple] = []
    for entry in entries:
        if entry[0] == "copy":
            k = entry[1]
            if k >= len(d.axes):
                raise walk.fail(
                    where, f"target entry 0 copies input axis {k}, which does not exist"
                )
            axis = d.axes[k]
            expanded.append(("one",) if walk.is_singleton(axis) else ("copy", axis))
        elif entry[0] == "axis" and walk.is_singleton(entry[1]):
            expanded.append(("one",))
        else:
            expanded.append(entry)

    def need(entry: tuple) -> int:
        if entry[0] == "copy":
            return len(_atoms(walk, [entry[1]]))
        return 1 if entry[0] in ("axis", "size") else 0

    rests = [e for e in expanded if e[0] == "rest"]
    if len(rests) > 1:
        raise walk.fail(where, "its target shape has more than one -1")
    spare = len(atoms) - sum(need(e) for e in expanded)
    if spare < 0 or (spare > 0 and not rests):
        raise walk.fail(
            where,
            "it changes the non-singleton axes (only adding or dropping "
            "singleton axes, or folding batch with time, is supported)",
        )
    out, pos = [], 0
    for entry in expanded:
        kind = entry[0]
        if kind == "one":
            out.append(Axis("1", 1))
        elif kind == "rest":
            out.append(_fold_axes(walk, atoms[pos : pos + spare], where))
            pos += spare
        elif kind == "copy":
            parts = _atoms(walk, [entry[1]])
            if atoms[pos : pos + len(parts)] != parts:
                raise walk.fail(where, "target entry 0 copies an axis out of place")
            out.append(entry[1])
            pos += len(parts)
        elif kind == "axis":
            if pos >= len(atoms) or atoms[pos] is not entry[1]:
                raise walk.fail(where, "its target shape reorders or merges the input's axes")
            out.append(entry[1])
            pos += 1
        elif kind == "size":
            axis = atoms[pos] if pos < len(atoms) else None
            if axis is None or axis.size != entry[1]:
                what = (
                    "nothing"
                    if axis is None
                    else f"{role_name(axis)} of size {axis.size or 'dynamic'}"
                )
                raise walk.fail(
                    where,
                    f"its target size {entry[1]} lands on {what}; only "
                    "adding or dropping singleton axes, or folding batch "
                    "with time, is supported",
                )
            out.append(axis)
            pos += 1
    return out


@data_op("Reshape", sees_directions=True)
def reshape(walk: Walk, index: int, node: Any, where: str, attrs: dict, inputs: list) -> None:
    d = walk.data_input(node, inputs, where)
    if "shape" in attrs:  # opset 1-4
        target: list = [int(v) for v in attrs["shape"]]
    else:
        value = inputs[1] if len(inputs) > 1 else None
        if isinstance(value, Const):
            target = [int(v) for v in np.asarray(value.value).ravel()]
        elif isinstance(value, SymVec) and not value.scalar:
            target = list(value.items)
        else:
            raise walk.fail(
                where, "its target shape is neither a constant nor built from the input's shape"
            )
    allowzero = bool(attrs.get("allowzero", 0))
    entries: list[tuple] = []
    for k, item in enumerate(target):
        if isinstance(item, Axis):
            entries.append(("axis", item))
        elif item == -1:
            entries.append(("rest",))
        elif item == 0 and not allowzero:
            entries.append(("copy", k))
        elif item == 1:
            entries.append(("one",))
        elif item > 1:
            entries.append(("size", item))
        else:
            raise walk.fail(where, f"target shape entry {item} is not supported")
    walk.assign(node.output[0], Data(_regroup(walk, d, entries, where), d.flipped), where)


@data_op("Flatten", sees_directions=True)
def flatten(walk: Walk, index: int, node: Any, where: str, attrs: dict, inputs: list) -> None:
    d = walk.data_input(node, inputs, where)
    axis = int(attrs.get("axis", 1))
    axis = axis + len(d.axes) if axis < 0 else axis
    out = [
        _fold_axes(walk, _atoms(walk, d.axes[:axis]), where),
        _fold_axes(walk, _atoms(walk, d.axes[axis:]), where),
    ]
    walk.assign(node.output[0], Data(out, d.flipped), where)
