"""Handlers of the aten ops that move, pick or regroup axes: select/slice/index (on time:
TimeSlice; on h_n: see `states.py`), view/reshape/flatten/unflatten, permute/transpose,
squeeze/unsqueeze, and the ops that change nothing at inference (clone, contiguous,
dropout in eval mode, casts to float32).

A reshape is read as merging or splitting neighbouring axes by their sizes on the captured
example (whose batch size lstmgen picks unlike any other size): batch and time merged into
rows is fine for per-step layers; time and features merged is a Flatten (the model then
has a fixed number of timesteps); anything else is refused.
"""

from __future__ import annotations

from dataclasses import replace
from math import prod
from typing import Any

from ...errors import UnsupportedLayerError
from ...ir import Flatten, TimeSlice
from . import states
from .context import Context, op
from .recurrent import final_state
from .values import Axis, Flow, StateStack, as_flow, components

INT_MAX = 2**62  # slice ends at or past this mean "to the end"
AXIS_NAMES = {"B": "batch", "T": "time", "F": "feature", "S": "layers x directions", "1": "size-1"}


def flow_of(ctx: Context, value: Any) -> Flow:
    """`value` as a Flow, or the error (naming the op) saying why it cannot be one."""
    try:
        return as_flow(value)
    except UnsupportedLayerError as exc:
        raise ctx.refuse(str(exc)) from None


def axis_name(axis: Axis) -> str:
    return " x ".join(AXIS_NAMES[c] for c in components(axis))


def _drop(axes: tuple[Axis, ...], d: int) -> tuple[Axis, ...]:
    return axes[:d] + axes[d + 1 :]


def _dim(ctx: Context, flow: Flow, dim: int) -> int:
    try:
        return flow.dim(dim)
    except IndexError:
        raise ctx.refuse(f"dimension {dim} of a {len(flow.axes)}-d tensor") from None


# ---- time -----------------------------------------------------------------------------
def time_slice(
    ctx: Context, flow: Flow, d: int, start: int, stop: int | None, squeeze: bool
) -> Flow:
    """Timesteps [start:stop] of axis d (the time axis); one step as a vector with squeeze."""
    if stop is not None and stop >= INT_MAX:
        stop = None
    if start >= 0 and start == flow.steps - 1 and stop in (None, flow.steps):
        # out[:, T - 1] on the captured T: the last step (checked against forward at other T)
        start, stop = -1, None
    if stop is not None and stop >= flow.steps and start < 0:
        stop = None
    if start == -1 and stop == 0:
        stop = None
    axes = _drop(flow.axes, d) if squeeze else flow.axes
    last = flow.layers[-1] if flow.layers else None
    plain_recurrent = (
        last is not None
        and last.recurrent
        and getattr(last, "forward", None) is None
        and getattr(last, "return_sequences", False)
        and not getattr(last, "go_backwards", True)
    )
    if squeeze and start == -1 and stop is None and plain_recurrent and last is not None:
        # the last output of a forward recurrent layer is its final state
        return replace(flow, layers=(*flow.layers[:-1], final_state(last, None)), axes=axes)
    layer = TimeSlice(
        ctx.layer_name(),
        flow.width,
        start=start,
        stop=stop,
        squeeze=squeeze,
        origin=f"PyTorch {_slice_text(start, stop, squeeze)} on the time axis",
    )
    try:
        steps = len(range(flow.steps)[start:stop])
    except (TypeError, ValueError):
        raise ctx.refuse(f"time index [{start}:{stop}]") from None
    if steps < 1:
        raise ctx.refuse(f"time index [{start}:{stop}] keeps no timestep of {flow.steps}")
    return flow.then(layer, axes=axes, steps=steps)


def _slice_text(start: int, stop: int | None, squeeze: bool) -> str:
    if squeeze:
        return f"[{start}]"
    return f"[{start}:{'' if stop is None else stop}]"


@op("aten.select.int")
def select(ctx: Context, x: Any, dim: int, index: int) -> Any:
    if isinstance(x, StateStack):
        return states.select(ctx, x, dim, index)
    flow = flow_of(ctx, x)
    d = _dim(ctx, flow, dim)
    axis = flow.axes[d]
    if axis == "T":
        return time_slice(ctx, flow, d, index, index + 1 if index != -1 else None, True)
    if axis == "1" or (axis == "F" and flow.width == 1 and index in (0, -1)):
        return replace(flow, axes=_drop(flow.axes, d))
    raise ctx.refuse(
        f"selects one entry of the {axis_name(axis)} axis; lstmgen selects timesteps "
        "(out[:, -1]) or entries of h_n"
    )


@op("aten.slice.Tensor")
def slice_(
    ctx: Context,
    x: Any,
    dim: int = 0,
    start: int | None = None,
    end: int | None = None,
    step: int = 1,
) -> Any:
    full_end = end is None or end >= INT_MAX
    if step == 1 and start in (None, 0) and full_end and not isinstance(x, Flow):
        return x  # a[:, :] of h_n or a final state
    if isinstance(x, StateStack):
        return states.slice_entries(ctx, x, dim, start, None if full_end else end, step)
    flow = flow_of(ctx, x)
    d = _dim(ctx, flow, dim)
    size = flow.shape(ctx.batch)[d]
    start = 0 if start is None else start
    if step == 1 and start in (0, -size) and (full_end or (end is not None and end >= size)):
        return flow
    axis = flow.axes[d]
    if axis != "T":
        raise ctx.refuse(f"slices the {axis_name(axis)} axis; lstmgen slices timesteps")
    if step != 1:
        raise ctx.refuse(f"a time slice with step {step}; lstmgen keeps consecutive timesteps")
    return time_slice(ctx, flow, d, start, None if full_end else end, False)


@op("aten.narrow.default")
def narrow(ctx: Context, x: Any, dim: int, start: int, length: int) -> Any:
    return slice_(ctx, x, dim, start, start + length)


@op("aten.index.Tensor")
def index(ctx: Context, x: Any, indices: list) -> Any:
    used = [(d, i) for d, i in enumerate(indices) if i is not None]
    if len(used) != 1:
        raise ctx.refuse("indexes several axes at once; lstmgen indexes time or h_n")
    d, ids = used[0]
    if isinstance(x, StateStack) and d == x.stack_dim and not ids.dtype.is_floating_point:
        positions = [int(v) for v in ids.reshape(-1).tolist()]
        if ids.dim() == 0:
            return states.select(ctx, x, d, positions[0])
        return states.pick(ctx, x, positions)
    flow = flow_of(ctx, x)
    if flow.axes[d] != "T" or ids.dtype.is_floating_point:
        raise ctx.refuse(f"indexes the {axis_name(flow.axes[d])} axis with a tensor")
    values = [int(v) for v in ids.reshape(-1).tolist()]
    if ids.dim() == 0:
        return select(ctx, flow, d, values[0])
    consecutive = all(b == a + 1 for a, b in zip(values, values[1:]))
    if ids.dim() != 1 or not values or not consecutive or (values[0] < 0 <= values[-1]):
        raise ctx.refuse(f"time index {values}; lstmgen keeps consecutive timesteps")
    stop = values[-1] + 1
    return time_slice(ctx, flow, d, values[0], None if stop == 0 else stop, False)


# ---- reshapes -------------------------------------------------------------------------
def reshape(ctx: Context, x: Any, shape: list[int]) -> Any:
    """`x` viewed as `shape`: neighbouring axes merged or split (see the module docstring)."""
    if isinstance(x, StateStack):
        return states.reshape(ctx, x, shape, ctx.batch)
    flow = flow_of(ctx, x)
    sizes = flow.shape(ctx.batch)
    total = prod(sizes)
    target = [int(n) for n in shape]
    if target.count(-1) == 1:
        known = prod(n for n in target if n != -1)
        target[target.index(-1)] = total // known if known else 0
    if prod(target) != total:
        raise ctx.refuse(f"view {list(shape)} of a tensor of shape {list(sizes)}")
    atoms = [(c, flow.size(c, ctx.batch)) for c in flow.labels]
    kept = [(c, n) for c, n in atoms if n != 1]
    dropped = {c for c, n in atoms if n == 1}
    flow = _drop_steps(ctx, flow) if "T" in dropped else flow
    axes: list[Axis] = []
    i = 0
    for n in target:
        if n == 1:
            axes.append("1")
            continue
        group, product = [], 1
        while product < n and i < len(kept):
            group.append(kept[i][0])
            product *= kept[i][1]
            i += 1
        if product != n:
            raise ctx.refuse(
                f"view {list(shape)} of a tensor of shape {list(sizes)} splits its "
                f"{axis_name(group[-1]) if group else ''} axis"
            )
        axes.append(group[0] if len(group) == 1 else tuple(group))
    return _merge(ctx, replace(flow, axes=tuple(axes)))


def _drop_steps(ctx: Context, flow: Flow) -> Flow:
    """A sequence of one timestep losing its time axis: a single-step TimeSlice squeezed."""
    last = flow.layers[-1] if flow.layers else None
    if isinstance(last, TimeSlice) and last.single_step() and not last.squeeze:
        return replace(flow, layers=(*flow.layers[:-1], replace(last, squeeze=True)))
    raise ctx.refuse(
        "drops the time axis of a sequence that has one timestep only on the captured "
        "example; give example_input more timesteps"
    )


def _merge(ctx: Context, flow: Flow) -> Flow:
    """Check the merged axes of `flow`; time x features becomes a Flatten layer."""
    for d, axis in enumerate(flow.axes):
        if not isinstance(axis, tuple):
            continue
        if set(axis) <= {"B", "T"} and len(axis) == 2:
            continue  # rows of (batch, time): per-step layers apply to each row
        if axis == ("T", "F") and "B" in flow.axes:
            layer = Flatten(
                ctx.layer_name(),
                flow.steps,
                flow.width,
                origin="PyTorch view/flatten [batch, time, features] -> [batch, time x features]",
            )
            ctx.fixed_timesteps = True
            axes = tuple("F" if k == d else a for k, a in enumerate(flow.axes))
            return flow.then(layer, axes=axes)
        raise ctx.refuse(
            f"merges the {axis_name(axis)} axes into one; lstmgen merges batch and time "
            "(rows) or time and features (flatten of a fixed-length sequence)"
        )
    return flow


@op("aten.view.default", "aten.reshape.default", "aten._unsafe_view.default")
def view(ctx: Context, x: Any, shape: list[int]) -> Any:
    return reshape(ctx, x, shape)


@op("aten.flatten.using_ints")
def flatten(ctx: Context, x: Any, start_dim: int = 0, end_dim: int = -1) -> Any:
    if isinstance(x, StateStack) and start_dim == 1 and end_dim in (2, -1):
        return states.reshape(ctx, x, [ctx.batch, -1], ctx.batch)
    flow = flow_of(ctx, x)
    sizes = list(flow.shape(ctx.batch))
    s, e = _dim(ctx, flow, start_dim), _dim(ctx, flow, end_dim)
    return reshape(ctx, flow, sizes[:s] + [prod(sizes[s : e + 1])] + sizes[e + 1 :])


@op("aten.unflatten.int")
def unflatten(ctx: Context, x: Any, dim: int, sizes: list[int]) -> Any:
    flow = flow_of(ctx, x)
    shape = list(flow.shape(ctx.batch))
    d = _dim(ctx, flow, dim)
    return reshape(ctx, flow, shape[:d] + list(sizes) + shape[d + 1 :])


@op("aten.permute.default")
def permute(ctx: Context, x: Any, dims: list[int]) -> Any:
    if isinstance(x, StateStack):
        return states.permute(ctx, x, list(dims))
    flow = flow_of(ctx, x)
    order = [_dim(ctx, flow, d) for d in dims]
    return replace(flow, axes=tuple(flow.axes[d] for d in order))


@op("aten.transpose.int")
def transpose(ctx: Context, x: Any, dim0: int, dim1: int) -> Any:
    rank = 3 if isinstance(x, StateStack) else len(flow_of(ctx, x).axes)
    order = list(range(rank))
    if not (-rank <= dim0 < rank and -rank <= dim1 < rank):
        raise ctx.refuse(f"dimensions {dim0}, {dim1} of a {rank}-d tensor")
    a, b = dim0 % rank, dim1 % rank
    order[a], order[b] = order[b], order[a]
    return permute(ctx, x, order)


@op("aten.t.default")
def t(ctx: Context, x: Any) -> Any:
    return transpose(ctx, x, 0, -1)


@op("aten.squeeze.default", "aten.squeeze.dim", "aten.squeeze.dims")
def squeeze(ctx: Context, x: Any, dim: int | list[int] | None = None) -> Any:
    if isinstance(x, StateStack):
        return states.squeeze(ctx, x, [dim] if isinstance(dim, int) else dim)
    flow = flow_of(ctx, x)
    sizes = flow.shape(ctx.batch)
    if dim is None:
        chosen = [d for d, n in enumerate(sizes) if n == 1]
    else:
        dims = [dim] if isinstance(dim, int) else list(dim)
        chosen = [d for d in (_dim(ctx, flow, k) for k in dims) if sizes[d] == 1]
    for d in sorted(chosen, reverse=True):
        if flow.axes[d] == "T":
            flow = _drop_steps(ctx, flow)
        flow = replace(flow, axes=_drop(flow.axes, d))
    return flow


@op("aten.unsqueeze.default")
def unsqueeze(ctx: Context, x: Any, dim: int) -> Any:
    flow = flow_of(ctx, x)
    d = dim % (len(flow.axes) + 1)
    return replace(flow, axes=flow.axes[:d] + ("1",) + flow.axes[d:])


# ---- no-ops at inference --------------------------------------------------------------
@op(
    "aten.clone.default",
    "aten.contiguous.default",
    "aten.alias.default",
    "aten.detach.default",
    "aten.lift_fresh_copy.default",
)
def same(ctx: Context, x: Any, *args: Any, **kwargs: Any) -> Any:
    return x


@op("aten._assert_tensor_metadata.default")
def metadata_assert(ctx: Context, *args: Any, **kwargs: Any) -> None:
    return None


@op(
    "aten.to.dtype",
    "aten.to.dtype_layout",
    "aten._to_copy.default",
    "aten.to.device",
    "aten.type_as.default",
)
def cast(ctx: Context, x: Any, *args: Any, **kwargs: Any) -> Any:
    torch = _torch()
    dtype = kwargs.get("dtype")
    dtype = (
        dtype if dtype is not None else next((a for a in args if isinstance(a, torch.dtype)), None)
    )
    if dtype is not None and dtype != torch.float32:
        raise ctx.refuse(f"casts to {dtype}; lstmgen computes in float32")
    return x


@op(
    "aten.dropout.default",
    "aten.feature_dropout.default",
    "aten.alpha_dropout.default",
    "aten.feature_alpha_dropout.default",
)
def dropout(ctx: Context, x: Any, p: float = 0.5, train: bool = False) -> Any:
    if train:
        raise ctx.refuse("dropout in training mode; lstmgen reads the module in eval mode")
    return x


@op("getitem")
def getitem(ctx: Context, container: Any, key: Any) -> Any:
    if isinstance(container, (tuple, list)):
        return container[key]
    raise ctx.refuse(f"indexing a {type(container).__name__}")


def _torch() -> Any:
    import torch

    return torch
