"""The shaping operators of the graph walk: reshapes, the time reversal, the slice or gather
of the last timestep, and the concatenation that makes a bidirectional layer (see
`graph.py` for the walk and what each operator becomes)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import ModelError, UnsupportedLayerError
from ...ir import Bidirectional
from ...ir.int8 import BidirectionalInt8, LayerInt8, LSTMInt8
from . import layers as L
from .schema import Operator

if TYPE_CHECKING:
    from .graph import Flow, Walk


def reshape(walk: Walk, op: Operator) -> None:
    """A RESHAPE/SQUEEZE/EXPAND_DIMS that only adds or drops axes of size 1; any other
    (e.g. the inside of a LayerNormalization or a Flatten) is refused by name."""
    x = walk.flow(op)
    try:
        walk.put(op, x)
    except ModelError as exc:
        shape = list(walk.output(op).shape)
        held = f"[T={x.timesteps}, {x.width}]" if x.sequence else f"[{x.width}]"
        raise UnsupportedLayerError(
            f"{op.label}: reshapes the data {held} to {shape}, which no IR layer does (lstmgen "
            "reads reshapes that add or drop axes of size 1 only: the layer that made this "
            "operator is not supported from .tflite)"
        ) from exc


def reverse(walk: Walk, op: Operator) -> None:
    x = walk.flow(op)
    axes = walk.ints(op, 1, "axis")
    t = walk.tensors[op.inputs[0]]
    rank = len(t.shape)
    if not x.sequence or [int(a) % max(rank, 1) for a in axes] != [walk.time_axis(t, x)]:
        raise UnsupportedLayerError(f"{op.label}: only a reversal of the time axis is supported")
    walk.put(op, dataclasses.replace(x, reversed=not x.reversed))


def last_step(walk: Walk, op: Operator, x: Flow) -> None:
    """x's last timestep: the last recurrent layer returns it instead of a sequence."""
    if x.reversed:
        raise UnsupportedLayerError(
            f"{op.label}: takes the last step of a time-reversed sequence (the first step "
            "the layer computed); lstmgen supports the last step in processing order"
        )
    k = max((i for i, l in enumerate(x.layers) if l.recurrent), default=-1)
    if k < 0:
        raise UnsupportedLayerError(f"{op.label}: slices a sequence before any recurrent layer")
    if any(l.kind not in ("dense", "activation") for l in x.layers[k + 1 :]):
        raise UnsupportedLayerError(
            f"{op.label}: a layer between the recurrent layer and the slice is not per timestep"
        )
    layer: Any = x.layers[k]
    if isinstance(layer, Bidirectional):
        raise UnsupportedLayerError(
            f"{op.label}: the last step of a bidirectional sequence holds the backward "
            "direction after one step, not its final state; the IR's bidirectional "
            "layers return both final states"
        )
    layers = list(x.layers)
    layers[k] = dataclasses.replace(layer, return_sequences=False)
    int8 = list(x.int8)
    if x.integer:
        j = max(i for i, l in enumerate(int8) if isinstance(l, LSTMInt8))
        last: Any = int8[j]
        int8[j] = dataclasses.replace(last, return_sequences=False)
    flow = dataclasses.replace(x, layers=tuple(layers), int8=tuple(int8), sequence=False)
    walk.put(op, flow)


def strided_slice(walk: Walk, op: Operator) -> None:
    x = walk.flow(op)
    t = walk.tensors[op.inputs[0]]
    if not x.sequence:
        raise UnsupportedLayerError(
            f"{op.label}: slices a vector; lstmgen supports the last timestep of a sequence"
        )
    begin, end, strides = (
        walk.ints(op, k, w) for k, w in ((1, "begin"), (2, "end"), (3, "strides"))
    )
    masks = [int(op.option(slot, "int32", 0)) for slot in range(5)]
    if masks[2] or masks[3]:
        raise UnsupportedLayerError(f"{op.label}: ellipsis and new-axis masks are not supported")
    offset = bool(op.option(5, "bool", False))
    if not len(begin) == len(end) == len(strides) == len(t.shape):
        raise ModelError(f"{op.label}: begin/end/strides do not match the input's rank")
    picked = slice_indices(t.shape, begin, end, strides, masks[0], masks[1], masks[4], offset, op)
    axis = walk.time_axis(t, x)
    feature = len(t.shape) - 1
    ok = (
        len(picked[axis]) == 1
        and picked[axis][0] == x.timesteps - 1
        and (masks[4] >> axis) & 1
        and picked[feature] == list(range(x.width))
        and all(len(p) == 1 for a, p in enumerate(picked) if a not in (axis, feature))
    )
    if not ok:
        raise UnsupportedLayerError(
            f"{op.label}: only the last timestep of a sequence (all its features) is supported"
        )
    last_step(walk, op, x)


def gather(walk: Walk, op: Operator) -> None:
    x = walk.flow(op)
    t = walk.tensors[op.inputs[0]]
    index = walk.ints(op, 1, "indices")
    axis = int(op.option(0, "int32", 0)) % max(len(t.shape), 1)
    if int(op.option(1, "int32", 0)) != 0:
        raise UnsupportedLayerError(f"{op.label}: batch_dims is not supported")
    if not (
        x.sequence
        and len(index) == 1
        and axis == walk.time_axis(t, x)
        and int(index[0]) in (x.timesteps - 1, -1)
    ):
        raise UnsupportedLayerError(f"{op.label}: only a gather of the last timestep is supported")
    last_step(walk, op, x)


def concatenation(walk: Walk, op: Operator) -> None:
    if len(op.inputs) != 2:
        raise UnsupportedLayerError(
            f"{op.label}: only the two directions of a bidirectional layer can be concatenated"
        )
    a, b = walk.flow(op, 0), walk.flow(op, 1)
    t = walk.tensors[op.inputs[0]]
    axis = int(op.option(0, "int32", 0)) % max(len(t.shape), 1)
    if axis != len(t.shape) - 1 or int(op.option(1, "int8", 0)) != 0:
        raise UnsupportedLayerError(
            f"{op.label}: only a concatenation along the features "
            "(no fused activation) is supported"
        )
    fw: Any = a.layers[-1] if a.layers else None
    bw: Any = b.layers[-1] if b.layers else None
    same_prefix = len(a.layers) == len(b.layers) and all(
        p is q for p, q in zip(a.layers[:-1], b.layers[:-1])
    )
    ok = (
        same_prefix
        and fw is not None
        and bw is not None
        and type(fw) is type(bw)
        and fw.recurrent
        and fw.kind != "bidirectional"
        and not fw.go_backwards
        and bw.go_backwards
        and a.sequence == b.sequence
        and fw.return_sequences == bw.return_sequences == a.sequence
        and not a.reversed
        and b.reversed == a.sequence
    )
    if not ok:
        raise UnsupportedLayerError(
            f"{op.label}: only the concatenation of a forward and a backward recurrent "
            "layer over the same input (a bidirectional layer, forward first) is supported"
        )
    name = walk.new_name("bidirectional")
    fw = dataclasses.replace(fw, name=f"{name}.forward")
    bw = dataclasses.replace(bw, name=f"{name}.backward")
    both = Bidirectional(name, fw, bw, "concat", origin=getattr(fw, "origin", ""))
    int8: tuple[LayerInt8, ...] = a.int8
    if a.integer:
        quants = [L.quant_of(walk.tensors[i], op, "operand") for i in op.inputs]
        out_q = L.quant_of(walk.output(op), op, "output")
        if any(q != out_q for q in quants):
            raise UnsupportedLayerError(
                f"{op.label}: int8 operands quantized differently from the output "
                "(TensorFlow Lite Micro refuses this concatenation too)"
            )
        f8, b8 = a.int8[-1], b.int8[-1]
        assert isinstance(f8, LSTMInt8) and isinstance(b8, LSTMInt8)
        int8 = a.int8[:-1] + (BidirectionalInt8(name, f8, b8),)
    flow = dataclasses.replace(a, layers=a.layers[:-1] + (both,), int8=int8, width=both.output_size)
    walk.put(op, flow)


# ---- quantization ------------------------------------------------------------------


def slice_indices(
    shape: tuple[int, ...],
    begin: np.ndarray,
    end: np.ndarray,
    strides: np.ndarray,
    begin_mask: int,
    end_mask: int,
    shrink_mask: int,
    offset: bool,
    op: Operator,
) -> list[list[int]]:
    """The indices a STRIDED_SLICE keeps along every axis (TensorFlow's semantics)."""
    picked = []
    for axis, dim in enumerate(shape):
        b, e, s = int(begin[axis]), int(end[axis]), int(strides[axis])
        if s == 0:
            raise ModelError(f"{op.label}: stride 0")
        if offset:
            e = b + e
        if (shrink_mask >> axis) & 1:
            b = b + dim if b < 0 else b
            if not 0 <= b < dim:
                raise ModelError(f"{op.label}: index {b} out of range for axis {axis}")
            picked.append([b])
            continue
        start = None if (begin_mask >> axis) & 1 else b
        stop = None if (end_mask >> axis) & 1 else e
        picked.append(list(range(dim))[slice(start, stop, s)])  # Python clamps as TF does
    return picked
