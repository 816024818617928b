"""C99 backend: `NAME.h` and `NAME.c` with weights as `static const float` arrays.

C weight layout (chosen for the inner loop): an LSTM's weights are stored transposed,
`*_Wt` [D][4H] and `*_Ut` [H][4H], so that row k holds input k's weights into all 4H gate
pre-activations (blocks i, f, g, o). The step accumulates z += x[k] * row k: contiguous,
unit-stride, and vectorisable by the compiler without reordering any float sum.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..ir import LSTM, Activation, Dense, Model
from ..memory import estimate, max_timesteps, max_width
from ..naming import unique_identifiers, validate_model_name
from ..plan import make_plan
from .common import array_text, banner_facts, render_template

OPTIONS: tuple[str, ...] = ()


def _array(ident: str, values: Optional[np.ndarray], comment: str) -> Optional[dict]:
    if values is None:
        return None
    return {"ident": ident, "size": int(values.size), "comment": comment,
            "text": array_text(values, suffix="f")}


def _layer_context(layer: Any, ident: str, prefix: str) -> dict:
    base = f"{prefix}_{ident}"
    ctx: dict[str, Any] = {"kind": layer.kind, "ident": ident, "name": layer.name,
                           "input_size": layer.input_size, "output_size": layer.output_size}
    if isinstance(layer, LSTM):
        h = layer.units
        ctx.update(
            units=h, kernel=f"lstm_step_{_act_ident(layer.gate_activation)}_"
            f"{_act_ident(layer.cell_activation)}_{_act_ident(layer.output_activation)}",
            W=_array(f"{base}_Wt", np.ascontiguousarray(layer.input_weights.T),
                     f"input weights, transposed: [{layer.input_size}][{4 * h}]"),
            U=_array(f"{base}_Ut", np.ascontiguousarray(layer.recurrent_weights.T),
                     f"recurrent weights, transposed: [{h}][{4 * h}]"),
            b=_array(f"{base}_b", layer.bias, f"bias [{4 * h}], blocks i, f, g, o"))
    elif isinstance(layer, Dense):
        ctx.update(
            activation=_act_ident(layer.activation),
            W=_array(f"{base}_W", layer.weights,
                     f"weights [{layer.output_size}][{layer.input_size}]"),
            b=_array(f"{base}_b", layer.bias, f"bias [{layer.output_size}]"))
    elif isinstance(layer, Activation):
        ctx.update(activation=_act_ident(layer.activation))
    ctx["arrays"] = [ctx[k] for k in ("W", "U", "b") if ctx.get(k)]
    return ctx


def _act_ident(name: str) -> str:
    return name.replace(".", "_")


def _chain(model: Model, layer_indices: list[int], idents: list[str], src: str,
           dst: str) -> list[dict]:
    """How `layer_indices` run in order from `src` into `dst`: each step's input and
    output buffer. An LSTM's output is its state h (copied out only when it is last)."""
    steps = []
    for n, k in enumerate(layer_indices):
        last = n == len(layer_indices) - 1
        if isinstance(model.layers[k], LSTM):
            steps.append({"layer": k, "src": src, "dst": dst if last else "none",
                          "lstm_scratch": True})
            src = f"s->{idents[k]}_h"
        else:
            out = dst if last else ("buf_b" if src == "buf_a" else "buf_a")
            steps.append({"layer": k, "src": src, "dst": out, "lstm_scratch": False})
            src = out
    return steps


def render(model: Model, name: str, **options: Any) -> dict[str, str]:
    validate_model_name(name)
    model.validate()
    plan = make_plan(model)
    idents = unique_identifiers([l.name for l in model.layers])
    layers = [_layer_context(l, i, name) for l, i in zip(model.layers, idents)]
    mem = estimate(model)
    elementwise: set[str] = set()
    applied: set[str] = set()  # activations applied to whole vectors (Dense, Activation)
    kernels: dict[str, tuple[str, ...]] = {}
    for layer, ctx in zip(model.layers, layers):
        if isinstance(layer, LSTM):
            acts = (layer.gate_activation, layer.cell_activation, layer.output_activation)
            elementwise.update(acts)
            kernels[ctx["kernel"]] = tuple(map(_act_ident, acts))
        elif isinstance(layer, Activation) or layer.activation != "linear":
            applied.add(layer.activation)
    elementwise.update(applied - {"softmax"})
    stages = []
    for s, stage in enumerate(plan.stages):
        stages.append({"index": s, "reverse": stage.reverse, "buffered": stage.buffered,
                       "input_size": stage.input_size(model),
                       "output_size": stage.output_size(model),
                       "chain": _chain(model, stage.layers, idents, "x", "y")})
    context = {
        **banner_facts(model),
        "name": name, "NAME": name.upper(), "layers": layers, "stages": stages,
        "tail": _chain(model, plan.tail, idents, "x", "y") if plan.tail else [],
        "tail_input_size": model.layers[plan.tail[0]].input_size if plan.tail else 0,
        "returns_sequences": model.returns_sequences, "streamable": model.streamable,
        "input_size": model.input_size, "output_size": model.output_size,
        "max_width": max_width(model), "max_timesteps": max_timesteps(model),
        "lstm_layers": [c for c in layers if c["kind"] == "lstm"],
        "elementwise": sorted(map(_act_ident, elementwise)),
        "vector_acts": sorted(map(_act_ident, applied)), "kernels": sorted(kernels.items()),
        "uses_dense": any(isinstance(l, Dense) for l in model.layers),
        "uses_copy": any(step["lstm_scratch"] and step["dst"] != "none"
                         for stage in stages for step in stage["chain"]),
        "max_gates": max(4 * l.units for l in model.layers if isinstance(l, LSTM)),
        "memory": mem, "needs_buffer": plan.needs_buffer,
    }
    return {f"{name}.h": render_template("c/model.h.j2", **context),
            f"{name}.c": render_template("c/model.c.j2", **context)}
