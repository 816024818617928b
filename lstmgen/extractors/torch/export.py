"""Capturing a module's forward with torch.export and reading the aten graph into IR layers.

`torch.export.export(module, (x,))` records the ops forward runs on an example input, with
nn.LSTM/GRU/RNN kept as one fused op each (aten.lstm.input, ...). lstmgen captures on a
copy of the user's example whose batch size is unlike any other size in the model (so a
reshape or a squeeze cannot mistake the batch axis for another) and, first, with fewer
timesteps (export takes long on long sequences; the result is checked against forward on
the full example, and read again at full length when it does not hold), then walks the graph:
ops on constants only (parameters, zeros) are run as they are, ops on tensors computed
from the input go to the handlers registered in `aten.py` and `shapes.py`.

The input layout (batch first or time first) is taken from the first recurrent module and
read again the other way when the graph's recurrent op says otherwise.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from dataclasses import dataclass
from typing import Any

from ...errors import ModelError, UnsupportedLayerError
from . import aten, shapes  # noqa: F401  (registers the op handlers)
from .context import OPS, Context, InputLayoutMismatch, op_name
from .values import Axis, Flow, is_abstract

#: Batch sizes tried for the captured example, the first that no other size equals.
BATCH_CANDIDATES = (3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47)
#: Timesteps tried for a shorter capture, the first below the example's that no size equals.
STEP_CANDIDATES = (6, 8, 9, 10, 12, 14, 15, 16)


class CaptureFailed(Exception):
    """torch.export could not capture forward (the message is its first line)."""


@dataclass
class Reading:
    """What the graph of a module's forward says: the output flow (its layers and axes),
    the layout of the input, the captured timesteps and whether the model needs them."""

    flow: Flow
    input_axes: tuple[Axis, ...]
    timesteps: int
    fixed_timesteps: bool
    notes: list[str]


def read_module(torch: Any, module: Any, example: Any, short: bool = False) -> Reading:
    """Capture `module`'s forward on a re-batched copy of `example` and read it; with
    `short`, on fewer timesteps (see `capture_steps`)."""
    recurrent = recurrent_modules(torch, module)
    ids = not example.dtype.is_floating_point
    if example.dim() != (2 if ids else 3):
        raise ModelError(
            f"example_input has shape {list(example.shape)}; lstmgen needs [batch, time, "
            "features] (time first when not batch_first), or [batch, time] token ids"
        )
    batch_axis = 0 if recurrent[0].batch_first else 1
    batch = _batch_size(module, example)
    torch_dir = os.path.dirname(torch.__file__)
    for axis in (batch_axis, 1 - batch_axis):
        steps = int(example.shape[1 - axis])
        if short and axis == batch_axis:
            steps = capture_steps(torch, module, example) or steps
        x = example.index_select(axis, torch.arange(batch) % example.shape[axis])
        x = x.index_select(1 - axis, torch.arange(steps) % example.shape[1 - axis])
        program = capture(torch, module, x)
        axes: tuple[Axis, ...] = ("B", "T") if axis == 0 else ("T", "B")
        width = 1 if ids else int(example.shape[-1])
        flow = Flow((), axes if ids else (*axes, "F"), width, steps, ids=ids)
        ctx = Context(batch=batch, torch_dir=torch_dir)
        try:
            output = interpret(torch, program, flow, ctx)
        except InputLayoutMismatch:
            continue
        return Reading(output, flow.axes, steps, ctx.fixed_timesteps, ctx.notes)
    raise UnsupportedLayerError(
        "the model's input reaches its recurrent module neither batch first nor time first"
    )


def recurrent_modules(torch: Any, module: Any) -> list[Any]:
    """The module's nn.LSTM/GRU/RNN modules; an error when it has none."""
    kinds = (torch.nn.LSTM, torch.nn.GRU, torch.nn.RNN)
    found = [m for m in module.modules() if isinstance(m, kinds)]
    if not found:
        raise UnsupportedLayerError(
            f"module {type(module).__name__} has no nn.LSTM, nn.GRU or nn.RNN; lstmgen "
            "compiles models built around one"
        )
    return found


def capture_steps(torch: Any, module: Any, example: Any) -> int | None:
    """A number of timesteps, fewer than the example's, to capture forward on (export's
    time grows with the timesteps), unlike any other size of the model; None when the
    example is short already."""
    time_axis = 1 if recurrent_modules(torch, module)[0].batch_first else 0
    steps = int(example.shape[time_axis])
    sizes = _sizes(module, example) | {_batch_size(module, example)}
    return next((t for t in STEP_CANDIDATES if t < steps and t not in sizes), None)


def capture(torch: Any, module: Any, example: Any) -> Any:
    """torch.export's program of `module` on `example`; CaptureFailed when it fails."""
    quiet = logging.getLogger("torch")
    level = quiet.level
    try:
        quiet.setLevel(logging.CRITICAL)  # export logs failed guards as it goes,
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")  # and prints the partial graph when it fails
            return torch.export.export(module, (example,), strict=False)
    except Exception as exc:  # export raises many kinds; the fallback handles them all
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CaptureFailed(f"{type(exc).__name__}: {first}") from None
    finally:
        quiet.setLevel(level)


def _sizes(module: Any, example: Any) -> set[int]:
    sizes = set(example.shape)
    for tensor in [*module.parameters(), *module.buffers()]:
        sizes.update(tensor.shape)
    return sizes


def _batch_size(module: Any, example: Any) -> int:
    sizes = _sizes(module, example)
    return next((b for b in BATCH_CANDIDATES if b not in sizes), BATCH_CANDIDATES[-1])


def interpret(torch: Any, program: Any, input_flow: Flow, ctx: Context) -> Flow:
    """Walk the program's graph (the nodes the output needs) and return the output flow."""
    from torch.export.graph_signature import InputKind
    from torch.fx.node import map_arg

    constants: dict[str, Any] = {}
    user_inputs: list[str] = []
    for spec in program.graph_signature.input_specs:
        if spec.kind == InputKind.USER_INPUT:
            user_inputs.append(spec.arg.name)
        elif spec.target in program.state_dict:
            constants[spec.arg.name] = program.state_dict[spec.target]
        elif spec.target in program.constants:
            constants[spec.arg.name] = program.constants[spec.target]
    if len(user_inputs) != 1:
        raise UnsupportedLayerError(f"forward takes {len(user_inputs)} tensors; lstmgen needs one")
    graph = program.graph
    output_node = next(n for n in graph.nodes if n.op == "output")
    needed = _ancestors(output_node)
    env: dict[Any, Any] = {}
    outputs: Any = None
    for node in graph.nodes:
        if node not in needed:
            continue
        ctx.node = node
        if node.op == "placeholder":
            env[node] = input_flow if node.name == user_inputs[0] else constants.get(node.name)
        elif node.op == "call_function":
            args = map_arg(node.args, env.__getitem__)
            kwargs = map_arg(node.kwargs, env.__getitem__)
            env[node] = _call(torch, ctx, node, args, kwargs)
        elif node.op == "output":
            outputs = map_arg(node.args[0], env.__getitem__)
        else:
            raise ctx.refuse(f"a graph node of kind {node.op}; lstmgen reads plain aten ops")
    ctx.node = None
    if not isinstance(outputs, (tuple, list)) or len(outputs) != 1:
        count = len(outputs) if isinstance(outputs, (tuple, list)) else "no"
        raise UnsupportedLayerError(
            f"forward returns {count} tensors; lstmgen needs one output tensor"
        )
    return _output_flow(ctx, outputs[0])


def _call(torch: Any, ctx: Context, node: Any, args: Any, kwargs: Any) -> Any:
    if not is_abstract((args, kwargs)):
        try:
            with torch.no_grad():
                return node.target(*args, **kwargs)
        except Exception as exc:
            raise ctx.refuse(f"failed on constants: {exc}") from None
    handler = OPS.get(op_name(node.target))
    if handler is None:
        raise ctx.unsupported()
    return handler(ctx, *args, **kwargs)


def _ancestors(node: Any) -> set:
    seen, todo = set(), [node]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        todo.extend(current.all_input_nodes)
    return seen


def _output_flow(ctx: Context, value: Any) -> Flow:
    from .shapes import flow_of

    if not is_abstract(value):
        raise UnsupportedLayerError("forward's output does not depend on its input")
    flow = flow_of(ctx, value)
    labels = [c for c in flow.labels if c != "1"]
    if (
        flow.ids
        or sorted(set(labels)) != sorted(labels)
        or "B" not in labels
        or not set(labels) <= {"B", "T", "F"}
    ):
        names = ", ".join(shapes.axis_name(a) for a in flow.axes)
        raise UnsupportedLayerError(
            f"forward returns a tensor whose axes hold {names}; lstmgen needs [batch, "
            "(time,) features]"
        )
    return flow
