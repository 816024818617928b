"""The plan: how the IR's [N, T, D] input and [N, T, O] / [N, O] output map onto the ONNX
graph's input and output tensors (which axis is time, batch, features, a singleton or the
two directions of a bidirectional operator, and the batch size the graph is fixed to),
built from the walk's tracked axes; the inputs the oracle feeds zeros (initial states);
and the two conversions the oracle uses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .spec import BIDIRECTIONAL_GLUE
from .values import Data, kind_name, role_name

if TYPE_CHECKING:
    from .walk import Walk


@dataclass
class Plan:
    """How the IR's [N, T, D] maps onto the ONNX input and the ONNX output onto the IR's."""

    input_name: str
    output_name: str
    input_roles: list  # per ONNX input axis: 'T', 'B', 'F' or '1'
    output_roles: list  # per ONNX output axis: 'T', 'B', 'F', '1' or 'D' (directions)
    batch: int | None  # the batch size the graph is fixed to, if any
    sequence: bool
    output_size: int
    input_size: int
    #: Inputs fed zeros: (name, dims with None where dynamic, i.e. the batch; numpy dtype).
    zero_inputs: list = field(default_factory=list)


def build_plan(
    walk: Walk, input_name: str, output_name: str, out: Data, zero_inputs: list | None = None
) -> Plan:
    """The plan of a finished walk whose output `output_name` is the data tensor `out`."""
    where = f"graph output '{output_name}'"
    sequence = True
    for layer in walk.layers:
        sequence = layer.returns_sequence(sequence)
    input_roles = []
    for axis in walk.input_axes:
        role = axis.role
        if role == "?" and axis.size == 1:
            role = "1"
        if role not in ("T", "B", "F", "1"):
            raise walk.fail(
                f"graph input '{input_name}'",
                f"axis {axis.input_index} (size "
                f"{axis.size or 'dynamic'}) is never used as time, batch or "
                "features",
            )
        input_roles.append(role)
    if "T" not in input_roles:
        raise walk.fail(
            f"graph input '{input_name}'",
            "the recurrent operator's time axis is not an axis of the graph input",
        )
    if "B" not in input_roles:
        walk.fix_batch(1, f"graph input '{input_name}'", "an input without a batch axis")
    output_roles = []
    for axis in out.axes:
        if axis is walk.time_axis:
            role = "T"
        elif axis.role in ("B", "F", "1"):
            role = axis.role
        elif axis.role == "?" and axis.size == 1:
            role = "1"
        elif axis.role == "M":
            raise walk.fail(where, "batch and time are still folded into one axis")
        elif axis.role == "D" and any(a is axis.pair for a in out.axes):
            role = "D"  # the directions concatenated along the features, forward first
            walk.notes.append(
                f"{where} keeps the two directions of bidirectional {axis.owner} as an "
                "axis: compiled as the directions concatenated along the features, forward "
                "first"
            )
        elif axis.role == "D":
            raise walk.fail(
                where,
                f"it keeps the two directions of bidirectional "
                f"{axis.owner} as a separate axis; "
                f"{BIDIRECTIONAL_GLUE}",
                supported=False,
            )
        else:
            raise walk.fail(where, f"axis of role {role_name(axis)} cannot be mapped")
        output_roles.append(role)
    if sequence and "T" not in output_roles:
        raise walk.fail(where, "the output has no time axis although no step was selected")
    if sequence and out.flipped:
        last = [l for l in walk.layers if l.recurrent][-1]
        raise walk.fail(
            where,
            "the output sequence runs in reverse order relative to "
            f"the IR's (after {kind_name(last)} '{last.name}'): ONNX "
            "returns a reverse operator's Y in the original time order, "
            "the IR emits a go_backwards layer's sequence in processing "
            "order and has no time flip, so this model cannot be "
            "represented "
            "(use the last state Y_h, or reverse the sequence back in "
            "the graph)",
            supported=False,
        )
    if "B" not in output_roles:
        walk.fix_batch(1, where, "an output without a batch axis")
    if "F" not in output_roles and walk.width != 1:
        raise walk.fail(where, "the output lost its feature axis")
    return Plan(
        input_name=input_name,
        output_name=output_name,
        input_roles=input_roles,
        output_roles=output_roles,
        batch=walk.batch,
        sequence=sequence,
        output_size=int(walk.width or 0),
        input_size=_input_width(walk),
        zero_inputs=list(zero_inputs or []),
    )


def _input_width(walk: Walk) -> int:
    for axis in walk.input_axes:
        if axis.role == "F":
            return int(axis.size or 0)
    return 1  # features made by an Unsqueeze: one feature


def to_onnx_input(plan: Plan, x: np.ndarray) -> np.ndarray:
    """x [n, T, D] as the graph input's layout."""
    n, t_len, d = x.shape
    sizes = {"B": n, "T": t_len, "F": d}
    present = [r for r in plan.input_roles if r in sizes]
    kept = [r for r in ("B", "T", "F") if r in present]
    arr = x.reshape([sizes[r] for r in kept]).transpose([kept.index(r) for r in present])
    return np.ascontiguousarray(
        arr.reshape([sizes.get(r, 1) for r in plan.input_roles]), dtype=np.float32
    )


def from_onnx_output(plan: Plan, y: np.ndarray, n: int) -> np.ndarray:
    """The graph output as the IR's [n, T, O] or [n, O] (a directions axis D and its
    features H become the features [forward H, backward H])."""
    directions = "D" in plan.output_roles
    t_len = y.shape[plan.output_roles.index("T")] if "T" in plan.output_roles else 1
    sizes = {
        "B": n,
        "T": t_len,
        "D": 2,
        "F": plan.output_size // 2 if directions else plan.output_size,
    }
    present = [r for r in plan.output_roles if r in sizes]
    arr = y.reshape([sizes[r] for r in present])
    kept = [r for r in ("B", "T", "D", "F") if r in present]
    arr = arr.transpose([present.index(r) for r in kept])
    shape = [n] + ([t_len] if plan.sequence else []) + [plan.output_size]
    return arr.reshape(shape)


def zero_feeds(plan: Plan, batch: int) -> dict[str, Any]:
    """Zeros for every input that is an initial state (a dynamic axis is the batch)."""
    return {
        name: np.zeros([batch if d is None else d for d in dims], dtype)
        for name, dims, dtype in plan.zero_inputs
    }
