"""The recurrent operators LSTM, GRU and RNN on the data path: one IR layer per
operator, or an IR Bidirectional of two for direction='bidirectional'.

Checks the weights' shapes (constants only), the activations (each must have an IR
equivalent, alpha/beta consumed in onnxruntime's order), clip (LSTM only), sequence_lens
(only the full length of every sequence), the initial states (constant and the same for
every batch row; a GRU/RNN's must be zero), which of Y / Y_h / Y_c the graph uses, and
binds the time and batch axes of the input. `recurrent_layers` builds the IR layer of
each direction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ....ir import Bidirectional, Layer, float32
from ..registry import data_op
from ..spec import (
    ACTIVATION_SLOTS,
    DEFAULT_ACTIVATIONS,
    DEFAULT_ALPHA,
    DEFAULT_BETA,
    RECURRENT_ACTIVATIONS,
    RECURRENT_OPS,
    USES_ALPHA,
    USES_BETA,
)
from ..values import Axis, Const, Data, Fill, close, is_full_length
from .recurrent_layers import direction_layer, ir_kind_name

if TYPE_CHECKING:
    from ..walk import Walk


def _rnn_activation(
    name: str, alpha: float | None, beta: float | None, where: str, walk: Walk, slot: str
) -> str:
    key = name.lower()
    simple = {
        "sigmoid": "sigmoid",
        "tanh": "tanh",
        "relu": "relu",
        "softsign": "softsign",
        "softplus": "softplus",
    }
    if key in simple:
        return simple[key]
    a = DEFAULT_ALPHA.get(key) if alpha is None else alpha
    b = DEFAULT_BETA.get(key) if beta is None else beta
    if key == "elu" and close(a, 1.0):
        return "elu"
    if key == "hardsigmoid" and close(b, 0.5):
        if close(a, 0.2):
            return "hard_sigmoid_0.2"
        if close(a, 1.0 / 6.0):
            return "hard_sigmoid_keras3"
    params = ", ".join(f"{k}={v:g}" for k, v in (("alpha", a), ("beta", b)) if v is not None)
    raise walk.fail(
        where,
        f"activation {slot} is {name}({params}), which has no IR "
        "equivalent; supported activations of the recurrent operators: "
        f"{RECURRENT_ACTIVATIONS}",
        supported=False,
    )


def _initial_state(
    walk: Walk,
    node: Any,
    k: int,
    what: str,
    layout: int,
    h: int,
    where: str,
    nd: int,
    direction: int,
) -> np.ndarray | None:
    """Direction `direction`'s constant initial state from input `k`, or None for zero."""
    name = node.input[k] if k < len(node.input) else ""
    if not name:
        return None
    value = walk.values[name]
    if isinstance(value, Fill):
        if isinstance(value.value, Axis):
            raise walk.fail(where, f"{what} is filled with an axis size")
        if value.value == 0:
            return None
        return np.full(h, value.value, np.float32)
    if not isinstance(value, Const):
        walk.const(node, k, where, what)  # raises with the reason
        raise AssertionError("unreachable")  # pragma: no cover
    arr = np.asarray(value.value, np.float32)
    if arr.ndim != 3 or arr.shape[2] != h or arr.shape[layout] != nd:
        raise walk.fail(
            where,
            f"{what} has shape {list(arr.shape)}, expected "
            f"{[f'[{nd}, batch, H]', f'[batch, {nd}, H]'][layout]} with "
            f"H = {h}",
            supported=False,
        )
    rows = arr[direction] if layout == 0 else arr[:, direction]
    walk.fix_batch(rows.shape[0], where, f"the constant {what} of batch {rows.shape[0]}")
    if np.any(rows != rows[0]):
        raise walk.fail(
            where,
            f"{what} differs between batch rows; the IR starts every sequence from one state",
            supported=False,
        )
    if not np.any(rows[0]):
        return None
    return float32(rows[0])


@data_op("LSTM", "GRU", "RNN")
def recurrent_op(walk: Walk, index: int, node: Any, where: str, attrs: dict, inputs: list) -> None:
    """An LSTM, GRU or RNN operator: one IR layer, or a Bidirectional of two."""
    op = node.op_type
    gates, per_direction, _ = RECURRENT_OPS[op]
    d = walk.data_input(node, inputs, where)
    direction = attrs.get("direction", "forward")
    if direction not in ("forward", "reverse", "bidirectional"):
        raise walk.fail(where, f"unknown direction '{direction}'")
    nd = 2 if direction == "bidirectional" else 1
    if nd == 2 and d.flipped:
        raise walk.fail(
            where,
            "a bidirectional operator reads a time-reversed sequence: its "
            "forward direction would be the IR's backward one and the two "
            "halves of its output would swap; reverse the sequence back "
            "before it",
            supported=False,
        )
    layout = int(attrs.get("layout", 0))
    if layout not in (0, 1):
        raise walk.fail(where, f"unknown layout {layout}")
    if len(d.axes) != 3:
        raise walk.fail(where, f"X has rank {len(d.axes)}, expected 3")
    w = walk.const(node, 1, where, "W")
    r = walk.const(node, 2, where, "R")
    b = walk.optional_const(node, 3, where, "B")
    p = walk.optional_const(node, 7, where, "P") if op == "LSTM" else None
    h = int(attrs.get("hidden_size", r.shape[-1] if r.ndim == 3 else 0) or 0)
    time_pos, batch_pos = (0, 1) if layout == 0 else (1, 0)
    walk.bind_time(d.axes[time_pos], where)
    walk.bind_batch(d.axes[batch_pos], where)
    feature = d.axes[2]
    if feature.role == "?":
        feature.role = "F"
        if feature.size is None:
            feature.size = int(w.shape[-1]) if w.ndim == 3 else None
        walk.width = feature.size
    elif feature.role == "1" and walk.width is None:
        walk.width = 1
    walk.feature(d, 2, where)
    dim = int(walk.width or 0)
    expected: dict[str, tuple[np.ndarray, tuple]] = {
        "W": (w, (nd, gates * h, dim)),
        "R": (r, (nd, gates * h, h)),
    }
    if b is not None:
        expected["B"] = (b, (nd, 2 * gates * h))
    if p is not None:
        expected["P"] = (p, (nd, 3 * h))
    for what, (arr, shape) in expected.items():
        if tuple(arr.shape) != shape:
            raise walk.fail(
                where,
                f"{what} has shape {list(arr.shape)}, expected {list(shape)} (H = {h}, D = {dim})",
                supported=False,
            )
    seq_name = node.input[4] if len(node.input) > 4 else ""
    if seq_name:
        if not is_full_length(walk.values[seq_name], walk.time_axis):
            raise walk.fail(
                where,
                "sequence_lens is given; lstmgen runs every sequence over "
                "all T steps (sequence_lens is only accepted when it is a "
                "constant equal to the static sequence length)",
                supported=False,
            )
        walk.notes.append(f"{where}: sequence_lens is the full length of every sequence (dropped)")
    acts = _activations(walk, op, attrs, nd, where)
    clip = attrs.get("clip")
    if clip is not None and op != "LSTM":
        raise walk.fail(
            where,
            f"clip = {clip:g}: the IR's {ir_kind_name(op)} has no clip "
            "(only the LSTM has one); export the model without clip",
            supported=False,
        )
    if clip is not None and not (0.0 < float(clip) < float("inf")):
        raise walk.fail(where, f"clip = {clip} is not a positive finite number", supported=False)
    states = _initial_states(walk, node, op, layout, h, where, nd)

    outputs = list(node.output) + [""] * (3 - len(node.output))
    y_name, yh_name, yc_name = outputs[:3]
    used = [n for n in (y_name, yh_name) if n and walk.consumers.get(n)]
    if op == "LSTM" and yc_name and walk.consumers.get(yc_name):
        raise walk.fail(
            where,
            f"the output needs its cell state output Y_c ('{yc_name}'); the IR's "
            "layers output the hidden state h (compile Y or Y_h instead)",
            supported=False,
        )
    if len(used) > 1:
        raise walk.fail(
            where,
            "both its sequence output Y and its last state Y_h are used; "
            "lstmgen follows a single chain",
            supported=False,
        )
    sequence = bool(used) and used[0] == y_name
    name = walk.unique_name(node, index)
    facts = dict(
        op=op,
        h=h,
        dim=dim,
        nd=nd,
        direction=direction,
        layout=layout,
        flipped=d.flipped,
        sequence=sequence,
        clip=clip,
        attrs=attrs,
    )
    parts = []
    for k in range(nd):
        backwards = direction == "reverse" or k == 1
        part_name = name if nd == 1 else f"{name}.{'backward' if k else 'forward'}"
        parts.append(
            direction_layer(
                node, part_name, k, w, r, b, p, acts[k], states[k], backwards != d.flipped, facts
            )
        )
    if nd == 1:
        layer: Layer = parts[0]
    else:
        layer = Bidirectional(
            name,
            parts[0],
            parts[1],
            merge_mode="concat",
            origin=f"ONNX {op} direction=bidirectional: W, R, B [2, ...] "
            "index 0 -> forward, index 1 -> backward (go_backwards); "
            f"the graph concatenates the two directions of "
            f"{'Y' if sequence else 'Y_h'} along the features "
            "(forward first) -> merge_mode concat",
        )
    walk.layers.append(layer)
    walk.pending = None
    walk.width = nd * h
    time, batch = d.axes[time_pos], d.axes[batch_pos]
    features = Axis("F", h)
    directions = Axis("D", 2, pair=features, owner=f"'{name}' ({op})") if nd == 2 else Axis("1", 1)
    if layout == 0:
        y_axes = [time, directions, batch, features]
        state_axes = [directions, batch, features]
    else:
        y_axes = [batch, time, directions, features]
        state_axes = [batch, directions, features]
    walk.assign(y_name, Data(y_axes, direction == "reverse"), where)
    walk.assign(yh_name, Data(state_axes, False), where)
    if yc_name and op == "LSTM":
        walk.values[yc_name] = Data(list(state_axes), False)


def _activations(walk: Walk, op: str, attrs: dict, nd: int, where: str) -> list:
    """The IR activations of each direction (onnxruntime consumes activation_alpha and
    activation_beta in order over the whole list, for the activations that take them)."""
    per_direction = RECURRENT_OPS[op][1]
    names = [
        a.decode() if isinstance(a, bytes) else a
        for a in attrs.get("activations", DEFAULT_ACTIVATIONS[op] * nd)
    ]
    slots = ACTIVATION_SLOTS[op]
    if len(names) != per_direction * nd:
        raise walk.fail(
            where,
            f"{len(names)} activations given, expected "
            f"{per_direction * nd} ({', '.join(slots)}"
            f"{' for each direction' if nd == 2 else ''})",
        )
    alphas = list(attrs.get("activation_alpha", []))
    betas = list(attrs.get("activation_beta", []))
    ir_acts = []
    for k, act in enumerate(names):
        key = act.lower()
        alpha = alphas.pop(0) if key in USES_ALPHA and alphas else None
        beta = betas.pop(0) if key in USES_BETA and betas else None
        slot = slots[k % per_direction] + (f" of direction {k // per_direction}" if nd == 2 else "")
        ir_acts.append(_rnn_activation(act, alpha, beta, where, walk, slot))
    return [
        (
            names[k * per_direction : (k + 1) * per_direction],
            ir_acts[k * per_direction : (k + 1) * per_direction],
        )
        for k in range(nd)
    ]


def _initial_states(
    walk: Walk, node: Any, op: str, layout: int, h: int, where: str, nd: int
) -> list:
    """Per direction, {'initial_h': array or None, 'initial_c': ...}; a non-zero initial
    state of a GRU/RNN is refused (the IR's has none)."""
    wanted = ((5, "initial_h"), (6, "initial_c")) if op == "LSTM" else ((5, "initial_h"),)
    states = [
        {
            what: _initial_state(walk, node, k, what, layout, h, where, nd, direction)
            for k, what in wanted
        }
        for direction in range(nd)
    ]
    if op != "LSTM" and any(s["initial_h"] is not None for s in states):
        raise walk.fail(
            where,
            f"initial_h is not zero; the IR's {ir_kind_name(op)} always "
            "starts from zero (only the LSTM has an initial state)",
            supported=False,
        )
    zeros = [
        what
        for k, what in wanted
        if all(s[what] is None for s in states) and len(node.input) > k and node.input[k]
    ]
    if zeros:
        walk.notes.append(
            f"{where}: {' and '.join(zeros)} {'is' if len(zeros) == 1 else 'are'} zero (dropped)"
        )
    return states
