"""Builds the render context (`lstmgen.targets.c.context.ModelContext`) of one model in
one build mode: layers, loops, activations, math, memory and the facts of its API."""

from __future__ import annotations

from ...ir import VECTOR_ACTIVATIONS, Model
from ...literals import wrap_values
from ..common import banner_facts
from .context import KindRef, LayerContext, ModelContext
from .kinds import composition_order, kind_of
from .layers import act_ident, cells_of, layer_contexts
from .loops import LoopBuilder
from .memory import estimate, max_timesteps, prefix_width, sequence_width
from .options import COptions
from .plan import make_plan
from .quant import CTYPE, exp2_poly, fixed_plan, sigmoid_table, softplus_table

#: A model of only these kinds is called an "LSTM" model in the files' first line.
LSTM_ONLY = frozenset({"lstm", "dense", "activation"})
MATH = {
    "libm": {
        "fabs": "fabsf",
        "exp": "expf",
        "log": "logf",
        "log1p": "log1pf",
        "expm1": "expm1f",
        "sqrt": "sqrtf",
    },
    "builtin": {
        "fabs": "fabs_builtin",
        "exp": "exp_builtin",
        "log": "log_builtin",
        "log1p": "log1p_builtin",
        "expm1": "expm1_builtin",
        "sqrt": "sqrt_builtin",
    },
}


def min_timesteps(model: Model) -> int:
    """The fewest input timesteps that leave every sequence layer at least one."""
    t = 1
    while not model.accepts_timesteps(t):
        t += 1
    return t


def changes_timesteps(model: Model) -> list[int]:
    """The layers whose output has another number of timesteps than their input."""
    return [
        k
        for k, layer in enumerate(model.layers)
        if any(layer.output_timesteps(t) != t for t in (1, 2, 3, 5, 8))
    ]


def _integers(values: list[int]) -> str:
    return wrap_values([str(int(v)) for v in values], 12, "    ")


def model_context(model: Model, name: str, options: COptions, has_selftest: bool) -> ModelContext:
    quantize = options.quantize
    fixed = fixed_plan(model) if quantize == "fixed16" else None
    plan = make_plan(model)
    layers = layer_contexts(model, name, quantize, fixed)
    cells = cells_of(layers)
    first = model.layers[0]
    input_layer = layers[0] if kind_of(first.kind).role == "input" else None
    mask = layers[0] if kind_of(first.kind).masks(first) else None
    if mask is not None:  # output before any real step: zeros, not the initial h
        masked = {id(c) for k in plan.parts[0].layers for c in cells_of([layers[k]])}
        for cell in cells:
            if id(cell) in masked and kind_of(cell.kind).starts_with_output(cell.layer):
                cell.keeps_out = True
    loops = LoopBuilder(model, plan, layers, masked=mask is not None)
    parts = loops.parts()
    elementwise, vectors = _activations(model, fixed is not None)
    windows = [layers[k] for k, l in enumerate(model.layers) if kind_of(l.kind).role == "window"]
    changes = changes_timesteps(model)
    least = min_timesteps(model)
    counting = bool(windows) or least > 1 or (model.returns_sequences and bool(changes))
    fixed_t = next(
        (layers[k] for k in plan.parts[0].layers if model.layers[k].needs_fixed_timesteps), None
    )
    chains = [st for s in loops.stages for st in s.chain] + [
        st for g in loops.rows_groups for st in g.chain
    ]
    needs_math = {m for l in model.layers for m in kind_of(l.kind).math}
    ids = input_layer is not None and input_layer.reads_ids
    facts = banner_facts(model)
    if counting and model.returns_sequences:
        facts["output_shape"] = (
            f"[T_out][{model.output_size}] (one row per timestep the "
            + ("Conv1D/pooling layers leave" if windows else "model gives")
            + f": T_out = {name}_output_timesteps(T))"
        )
    if ids:
        facts["input_shape"] = "[T]"
    value_type = "int16_t" if fixed else "float"
    return ModelContext(
        name=name,
        banner=facts,
        memory=estimate(model, quantize=quantize, math=options.math),
        quantize=quantize,
        fixed=fixed,
        builtin_math=options.builtin_math,
        fn=MATH["builtin" if options.builtin_math else "libm"],
        needs={
            "exp": bool({"softplus", "elu"} & elementwise or {"softmax", "log_softmax"} & vectors),
            "log": "log_softmax" in vectors,
            "log1p": "softplus" in elementwise or "log_softmax" in vectors,
            "expm1": "elu" in elementwise,
            "fabs": bool({"softsign", "softplus"} & elementwise),
            "sqrt": "sqrt" in needs_math,
            "fixed_exp": "elu" in elementwise or "softmax" in vectors,
        },
        tables=(
            {
                "sigmoid": _integers(list(sigmoid_table())),
                "softplus": _integers(list(softplus_table())),
                "exp2_poly": exp2_poly(),
            }
            if fixed
            else {}
        ),
        wtype=CTYPE.get(quantize or "", "float"),
        value_type=value_type,
        input_size=model.input_size,
        output_size=model.output_size,
        input_type="int32_t" if ids else value_type,
        x="ids" if ids else "x",
        ids=ids,
        vocabulary=model.token_vocabulary or 0,
        input=input_layer,
        mask=mask,
        layers=layers,
        cells=cells,
        kinds=[KindRef(k, kind_of(k).role) for k in composition_order() if k in model.kinds()],
        elementwise=sorted(map(act_ident, elementwise)),
        vector_acts=sorted(map(act_ident, vectors)),
        fixed_vector_acts=sorted(map(act_ident, vectors)),
        parts=parts,
        stages=loops.stages,
        rows_groups=loops.rows_groups,
        windows=windows,
        counting=[l for k, l in enumerate(layers) if k in changes or l in windows]
        if counting
        else [],
        crops=[layers[k] for s in plan.stages for k in s.crops_before],
        checks_count=bool(windows) or least > 1,
        fixed_timesteps=fixed_t,
        timesteps=model.timesteps,
        min_timesteps=least,
        max_timesteps=max_timesteps(model),
        needs_buffer=plan.needs_buffer,
        needs_max_timesteps=plan.needs_buffer or bool(plan.prefix_buffers),
        prefix_buffers=plan.prefix_buffers,
        prefix_width=prefix_width(model),
        max_width=sequence_width(model),
        max_gates=max(kind_of(c.kind).scratch_values(c.layer, "float") for c in cells),
        max_units=max(kind_of(c.kind).scratch_values(c.layer, "fixed16") for c in cells),
        uses_copy=any(c.keeps_out for c in cells)
        or any(
            st.op == "copy" or (st.op == "recurrent" and st.dst.name != "none") for st in chains
        ),
        uses_same_padding=any(w.layer.padding == "same" for w in windows),
        streamable=model.streamable,
        returns_sequences=model.returns_sequences,
        initial_state="initial_state" in model.features(),
        go_backwards=any(
            kind_of(l.kind).role == "recurrent" and l.layer.go_backwards for l in layers
        ),
        only_lstm=model.kinds() <= LSTM_ONLY,
        has_selftest=has_selftest,
    )


def _activations(model: Model, fixed: bool) -> tuple[set[str], set[str]]:
    """(elementwise activations, vector activations) the model's code calls."""
    elementwise: set[str] = set()
    vectors: set[str] = set()
    for layer in model.layers:
        for part in layer.parts():
            e, v = kind_of(part.kind).activations(part, fixed)
            elementwise |= e
            vectors |= v
    return elementwise - set(VECTOR_ACTIVATIONS), vectors


__all__ = ["model_context", "LayerContext"]
