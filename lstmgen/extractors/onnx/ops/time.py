"""Time selection on the data path: Gather and Slice of the time axis, and ReverseSequence.

* The last processed step makes the last recurrent layer return its state (or, for the
  last step of a bidirectional Y, PyTorch's `out[:, -1]`, becomes an IR TimeSlice [-1:]).
* Consecutive steps [a:b] of a sequence in input order (`out[:, -k:]`, the last k) become
  an IR TimeSlice.
* A full reversal (Slice with step -1, ReverseSequence of every sequence's full length)
  flips the tracked time order, folded into the next recurrent operator's go_backwards.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ....ir import Bidirectional, TimeSlice
from ..registry import data_op
from ..spec import BIDIRECTIONAL_GLUE
from ..values import Axis, Data, is_full_length, role_name
from .recurrent_layers import SEQUENCE_OUTPUT

if TYPE_CHECKING:
    from ..walk import Walk

#: Lengths a dynamic time axis is probed with when classifying a Slice or Gather.
PROBE_LENGTHS = (1, 2, 3, 5, 8, 64)
#: A Slice bound this large stands for "from the start" / "to the end" (INT64 min/max).
HUGE = 2**31


def time_labels(select: Callable[[int], list], static: int | None) -> set:
    """Which of 'all', 'last', 'first', 'reverse' an index selection is, for every
    length the time axis can have (its static size, or a few probes when dynamic)."""
    labels = None
    for t_len in [static] if static else PROBE_LENGTHS:
        idx = select(t_len)
        found = set()
        if idx == list(range(t_len)):
            found.add("all")
        if idx == [t_len - 1]:
            found.add("last")
        if idx == [0]:
            found.add("first")
        if idx == list(range(t_len - 1, -1, -1)):
            found.add("reverse")
        labels = found if labels is None else labels & found
    return labels or set()


def select_last(
    walk: Walk, d: Data, pos: int, keep: bool, where: str, node: Any, index: int
) -> Data:
    """The last processed step of the current sequence: the last recurrent layer returns
    its state; or, where that is not the same (the last step of a bidirectional Y, whose
    backward half is the backward direction after one step, as PyTorch's `out[:, -1]`; a
    sequence already cut by a TimeSlice), an IR TimeSlice of the last step."""
    recurrent = [l for l in walk.layers if l.recurrent]
    if not recurrent:
        raise walk.fail(where, "it selects a timestep before any recurrent operator")
    last = recurrent[-1]
    after = walk.layers[walk.layers.index(last) + 1 :]
    bidirectional_y = isinstance(last, Bidirectional) and (
        walk.time_axis is None or walk.time_axis.size != 1
    )
    if bidirectional_y or any(isinstance(l, TimeSlice) for l in after):
        what = (
            f"the last step of the output Y of bidirectional '{last.name}' (its backward "
            "half is the backward direction after one step)"
            if bidirectional_y
            else "the last step"
        )
        walk.layers.append(
            TimeSlice(
                walk.unique_name(node, index),
                int(walk.width or 0),
                start=-1,
                squeeze=True,
                origin=f"ONNX {node.op_type}: {where} takes {what} -> TimeSlice [-1:], one step",
            )
        )
        walk.pending = None
    else:
        for layer in ([last.forward, last.backward] if isinstance(last, Bidirectional) else []) + [
            last
        ]:
            if not isinstance(layer, Bidirectional):
                layer.return_sequences = False  # type: ignore[attr-defined]
            head, _, _ = layer.origin.partition(SEQUENCE_OUTPUT)
            layer.origin = (
                f"{head}output Y, of which {where} takes the last processed step "
                "(-> return_sequences False)"
            )
    axes = list(d.axes)
    if keep:
        axes[pos] = Axis("1", 1)
    else:
        del axes[pos]
    return Data(axes, False)


def keep_steps(
    walk: Walk, d: Data, pos: int, start: int, end: int, where: str, node: Any, index: int
) -> Data:
    """The timesteps [start:end] (step 1) of a sequence in input order: an IR TimeSlice
    (ONNX clamps start and end as Python slicing does); the time axis after it is a new
    axis of the kept length."""
    time = walk.time_axis
    if time is None or not any(l.recurrent for l in walk.layers):
        raise walk.fail(where, "it slices time before any recurrent operator")
    first = 0 if start <= -HUGE else start
    stop = None if end >= HUGE else end
    lengths = [time.size] if time.size else list(PROBE_LENGTHS)
    if end <= -HUGE or start >= HUGE or all(not range(t)[first:stop] for t in lengths):
        raise walk.fail(where, f"it slices time as [{start}:{end}], which keeps no timestep")
    bounds = f"[{first}:{'' if stop is None else stop}]"
    walk.layers.append(
        TimeSlice(
            walk.unique_name(node, index),
            int(walk.width or 0),
            start=first,
            stop=stop,
            origin=f"ONNX Slice: {where} keeps timesteps [{start}:{end}] -> TimeSlice {bounds}",
        )
    )
    walk.pending = None
    kept = Axis("T", len(range(time.size)[first:stop]) if time.size else None)
    walk.time_axis = kept
    axes = list(d.axes)
    axes[pos] = kept
    return Data(axes, False)


@data_op("Gather", sees_directions=True)
def gather(walk: Walk, index: int, node: Any, where: str, attrs: dict, inputs: list) -> None:
    d = walk.data_input(node, inputs, where)
    indices = np.asarray(walk.const(node, 1, where, "indices"))
    pos = int(attrs.get("axis", 0))
    pos = pos + len(d.axes) if pos < 0 else pos
    axis = d.axes[pos]
    if indices.size != 1 or indices.ndim > 1:
        raise walk.fail(where, f"gathers {indices.size} indices; only one step is supported")
    k = int(indices.ravel()[0])
    keep = indices.ndim == 1
    if axis is walk.time_axis and axis is not None:
        labels = time_labels(lambda t: [k + t if k < 0 else k] if -t <= k < t else [], axis.size)
        wanted = "first" if d.flipped else "last"
        if wanted not in labels:
            order = "after a reverse LSTM, index 0" if d.flipped else "index -1 (or T-1)"
            raise walk.fail(
                where,
                f"it gathers timestep {k}; lstmgen supports only the last processed step ({order})",
            )
        walk.assign(node.output[0], select_last(walk, d, pos, keep, where, node, index), where)
        return
    if walk.is_singleton(axis) and k in (0, -1):
        axes = list(d.axes)
        if keep:
            axes[pos] = Axis("1", 1)
        else:
            del axes[pos]
        walk.assign(node.output[0], Data(axes, d.flipped), where)
        return
    if axis.role == "D":
        raise walk.fail(
            where,
            f"it takes one of the two directions of bidirectional "
            f"{axis.owner}; {BIDIRECTIONAL_GLUE}",
            supported=False,
        )
    raise walk.fail(
        where,
        f"it gathers along axis {pos}, which lstmgen tracked as "
        f"{role_name(axis)}; only a step of the time axis (or index 0 of a "
        "singleton axis) is supported",
    )


def _slice_selection(start: int, end: int, step: int) -> Callable[[int], list]:
    return lambda t: list(range(*slice(start, end, step).indices(t)))


@data_op("Slice", sees_directions=True)
def slice_(walk: Walk, index: int, node: Any, where: str, attrs: dict, inputs: list) -> None:
    d = walk.data_input(node, inputs, where)
    rank = len(d.axes)
    if "starts" in attrs:  # opset 1-9
        starts, ends = list(attrs["starts"]), list(attrs["ends"])
        axes = list(attrs.get("axes", range(len(starts))))
        steps = [1] * len(starts)
    else:
        starts = [int(v) for v in walk.const(node, 1, where, "starts").ravel()]
        ends = [int(v) for v in walk.const(node, 2, where, "ends").ravel()]
        got = walk.optional_const(node, 3, where, "axes")
        axes = list(range(len(starts))) if got is None else [int(v) for v in got.ravel()]
        got = walk.optional_const(node, 4, where, "steps")
        steps = [1] * len(starts) if got is None else [int(v) for v in got.ravel()]
    out = Data(list(d.axes), d.flipped)
    for start, end, pos, step in zip(starts, ends, axes, steps):
        pos = pos + rank if pos < 0 else pos
        axis = d.axes[pos]
        labels = time_labels(_slice_selection(start, end, step), axis.size)
        if "all" in labels:
            continue
        if axis.role == "D":
            raise walk.fail(
                where,
                f"it slices the two directions of bidirectional {axis.owner}; {BIDIRECTIONAL_GLUE}",
                supported=False,
            )
        if axis is not walk.time_axis:
            raise walk.fail(
                where,
                f"it slices axis {pos} ({role_name(axis)}); only a slice "
                "of the time axis (its last step, or all steps reversed) "
                "is supported",
            )
        wanted = "first" if out.flipped else "last"
        if wanted in labels:
            out = select_last(walk, out, pos, True, where, node, index)
        elif "reverse" in labels:
            out = Data(out.axes, not out.flipped)
        elif step == 1 and not out.flipped:
            out = keep_steps(walk, out, pos, start, end, where, node, index)
        else:
            raise walk.fail(
                where,
                f"it slices time as [{start}:{end}:{step}]; lstmgen "
                "supports the last processed step, a full reversal, or consecutive steps "
                "(step 1, e.g. the last k) of a sequence in input order",
            )
    walk.assign(node.output[0], out, where)


@data_op("ReverseSequence")
def reverse_sequence(
    walk: Walk, index: int, node: Any, where: str, attrs: dict, inputs: list
) -> None:
    d = walk.data_input(node, inputs, where)
    time_pos = int(attrs.get("time_axis", 0))
    batch_pos = int(attrs.get("batch_axis", 1))
    if time_pos >= len(d.axes) or d.axes[time_pos].role not in ("?", "T"):
        raise walk.fail(where, f"time_axis {time_pos} is not the time axis")
    time = d.axes[time_pos]
    if time.role == "?":
        walk.bind_time(time, where)
    batch = d.axes[batch_pos]
    if batch.role == "?":
        walk.bind_batch(batch, where)
    elif batch.role not in ("B",) and not walk.is_singleton(batch):
        raise walk.fail(where, f"batch_axis {batch_pos} is not the batch axis")
    if not is_full_length(inputs[1], time):
        raise walk.fail(
            where,
            "its sequence_lens are not the full length of every "
            "sequence; only a full reversal of time is supported",
        )
    walk.notes.append(f"{where} reverses time: folded into the next LSTM's go_backwards")
    walk.assign(node.output[0], Data(list(d.axes), not d.flipped), where)
