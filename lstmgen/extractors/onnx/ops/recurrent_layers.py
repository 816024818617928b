"""The IR layer of one direction of an ONNX LSTM, GRU or RNN operator, and its `origin`:
where each IR array came from (ONNX blocks i, o, f, c reordered to the IR's i, f, g, o;
the two biases summed; GRU linear_before_reset as reset_after; ...), which `inspect` and
the generated files' banners print.

* LSTM: blocks **i, o, f, c** -> rows i, f, g, o; B = [Wb, Rb] -> Wb + Rb (float32);
  peepholes P blocks i, o, f -> rows i, f, o.
* GRU: blocks z, r, h are the IR's z, r, n. `linear_before_reset=1` computes
  h~ = g(Wh x + Wbh + r * (Rh h + Rbh)): the IR's reset_after=True with bias Wb and
  recurrent_bias Rb; `linear_before_reset=0` (the default) computes
  h~ = g(Wh x + Rh (r * h) + Rbh + Wbh): reset_after=False with bias Wb + Rb.
* RNN: the IR's SimpleRNN with bias Wb + Rb.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ....ir import GRU, LSTM, SimpleRNN, float32
from ..spec import ONNX_BLOCK_FOR_IR, ONNX_PEEPHOLE_FOR_IR

#: How an origin names the sequence output (a selected last step rewrites what follows).
SEQUENCE_OUTPUT = "output Y (every step"


def ir_kind_name(op: str) -> str:
    """The IR's name of the kind an ONNX recurrent operator becomes."""
    return {"LSTM": "LSTM", "GRU": "GRU", "RNN": "SimpleRNN"}[op]


def direction_layer(
    node: Any,
    name: str,
    k: int,
    w: np.ndarray,
    r: np.ndarray,
    b: np.ndarray | None,
    p: np.ndarray | None,
    acts: tuple,
    state: dict,
    go_backwards: bool,
    facts: dict,
) -> LSTM | GRU | SimpleRNN:
    """The IR layer of direction `k` of a recurrent operator."""
    op, h = facts["op"], facts["h"]
    names, ir_acts = acts
    origin = _origin(node, k, b is not None, p is not None, names, state, facts)
    common = dict(return_sequences=facts["sequence"], go_backwards=go_backwards, origin=origin)
    if op == "LSTM":

        def rows(a: np.ndarray) -> np.ndarray:
            return float32(np.concatenate([a[g * h : (g + 1) * h] for g in ONNX_BLOCK_FOR_IR]))

        bias = None if b is None else rows(float32(b[k, : 4 * h]) + float32(b[k, 4 * h :]))
        peephole = (
            None
            if p is None
            else float32(np.stack([p[k, g * h : (g + 1) * h] for g in ONNX_PEEPHOLE_FOR_IR]))
        )
        clip = facts["clip"]
        return LSTM(
            name=name,
            input_weights=rows(w[k]),
            recurrent_weights=rows(r[k]),
            bias=bias,
            gate_activation=ir_acts[0],
            cell_activation=ir_acts[1],
            output_activation=ir_acts[2],
            peephole=peephole,
            clip=None if clip is None else float(clip),
            input_forget=bool(facts["attrs"].get("input_forget", 0)),
            initial_h=state["initial_h"],
            initial_c=state["initial_c"],
            **common,
        )
    if op == "GRU":
        reset_after = bool(facts["attrs"].get("linear_before_reset", 0))
        bias = recurrent_bias = None
        if b is not None:
            wb, rb = float32(b[k, : 3 * h]), float32(b[k, 3 * h :])
            if reset_after:
                bias, recurrent_bias = wb, rb
            else:
                bias = float32(wb + rb)
        return GRU(
            name,
            float32(w[k]),
            float32(r[k]),
            bias,
            recurrent_bias=recurrent_bias,
            reset_after=reset_after,
            gate_activation=ir_acts[0],
            cell_activation=ir_acts[1],
            **common,
        )
    bias = None if b is None else float32(float32(b[k, :h]) + float32(b[k, h:]))
    return SimpleRNN(name, float32(w[k]), float32(r[k]), bias, activation=ir_acts[0], **common)


def _origin(
    node: Any, k: int, has_b: bool, has_p: bool, acts: list, state: dict, facts: dict
) -> str:
    op, h, dim, nd = facts["op"], facts["h"], facts["dim"], facts["nd"]
    direction, attrs = facts["direction"], facts["attrs"]
    at = f"[{k}]" if nd == 2 else ""

    def named(i: int, label: str) -> str:
        return f"{label} '{node.input[i]}'{at}"

    head = (
        f"ONNX {op} {direction}"
        + (f" ({'backward' if k else 'forward'} half)" if nd == 2 else "")
        + f", layout {facts['layout']}"
    )
    if op == "LSTM":
        parts = [
            f"{head}: {named(1, 'W')} [{nd}, 4H={4 * h}, D={dim}] blocks i,o,f,c -> "
            "input_weights rows i,f,g,o",
            f"{named(2, 'R')} [{nd}, 4H, H={h}] blocks i,o,f,c -> recurrent_weights rows i,f,g,o",
        ]
        parts.append(
            f"{named(3, 'B')} [{nd}, 8H] = [Wb, Rb] -> bias = Wb + Rb (summed in "
            "float32), rows i,f,g,o"
            if has_b
            else "no B -> no bias"
        )
        if has_p:
            parts.append(f"{named(7, 'P')} [{nd}, 3H] blocks i,o,f -> peephole rows i,f,o")
        parts.append(f"activations f,g,h = {','.join(acts)} -> gate, cell, output")
        if facts["clip"] is not None:
            parts.append(f"clip {facts['clip']:g}")
        if attrs.get("input_forget", 0):
            parts.append("input_forget=1 -> input_forget")
        for what in ("initial_h", "initial_c"):
            if state.get(what) is not None:
                parts.append(f"{what} [.., H] (same for every batch row) -> {what} (H,)")
    elif op == "GRU":
        lbr = int(bool(attrs.get("linear_before_reset", 0)))
        parts = [
            f"{head}, linear_before_reset {lbr}: {named(1, 'W')} [{nd}, 3H={3 * h}, "
            f"D={dim}] blocks z,r,h -> input_weights rows z,r,n as is",
            f"{named(2, 'R')} [{nd}, 3H, H={h}] blocks z,r,h -> recurrent_weights as is",
        ]
        if not has_b:
            parts.append("no B -> no bias")
        elif lbr:
            parts.append(
                f"{named(3, 'B')} [{nd}, 6H] = [Wb, Rb] -> bias = Wb, recurrent_bias "
                "= Rb (reset_after: h~ = g(Wh x + Wbh + r * (Rh h + Rbh)))"
            )
        else:
            parts.append(
                f"{named(3, 'B')} [{nd}, 6H] = [Wb, Rb] -> bias = Wb + Rb (summed in "
                "float32; reset_after False: h~ = g(Wh x + Rh (r * h) + Rbh + Wbh))"
            )
        if not has_b:
            parts.append(f"reset_after {bool(lbr)}")
        parts.append(f"activations f,g = {','.join(acts)} -> gate, cell")
    else:
        parts = [
            f"{head}: {named(1, 'W')} [{nd}, H={h}, D={dim}] -> input_weights as is",
            f"{named(2, 'R')} [{nd}, H, H] -> recurrent_weights as is",
            f"{named(3, 'B')} [{nd}, 2H] = [Wb, Rb] -> bias = Wb + Rb (summed in float32)"
            if has_b
            else "no B -> no bias",
            f"activation f = {acts[0]}",
        ]
    flipped = facts["flipped"]
    if nd == 2:
        parts.append("reads backward -> go_backwards" if k else "reads forward")
    elif direction == "reverse" and not flipped:
        parts.append("direction reverse -> go_backwards")
    elif direction == "reverse":
        parts.append("direction reverse over a time-reversed input -> forward")
    elif flipped:
        parts.append("forward over a time-reversed input -> go_backwards")
    if facts["sequence"]:
        parts.append(
            SEQUENCE_OUTPUT
            + (
                ", emitted in processing order)"
                if direction == "reverse"
                else ", in input time order)"
                if k
                else ")"
            )
        )
    else:
        parts.append("output Y_h (last state)")
    return "; ".join(parts)
