"""C99 backend: `NAME.h` and `NAME.c` with weights as `static const` arrays (flash).

C weight layout (chosen for the inner loop): an LSTM's weights are stored transposed,
`*_Wt` [D][4H] and `*_Ut` [H][4H], so that row k holds input k's weights into all 4H gate
pre-activations (blocks i, f, g, o). The step accumulates z += x[k] * row k: contiguous,
unit-stride, and vectorisable by the compiler without reordering any float sum.

Options (see docs/microcontroller.md):

* ``quantize``: ``None`` (float32 weights), ``"int8"`` / ``"int16"`` (integer weights with
  one float scale per gate unit, float math; same kernel shape), or ``"fixed16"`` (all
  integer Q-format code for cores without an FPU: int16 API, `templates/c/fixed16.c.j2`);
* ``math``: ``"libm"`` (default) or ``"builtin"`` (own exp/log1p/expm1: no <math.h>);
* ``selftest``: a `lstmgen.api.SelftestData` (or True: vectors from the float64 reference)
  -> also `NAME_selftest.c`, an on-target check against the framework's outputs;
* ``arduino``: also `library.properties` (the folder is then an Arduino library).
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..errors import LstmgenError
from ..ir import LSTM, Activation, Dense, Model
from ..literals import c_float, wrap_values
from ..memory import estimate, max_timesteps, max_width
from ..naming import unique_identifiers, validate_model_name
from ..plan import make_plan
from . import c_quant
from .common import array_text, banner_facts, display_text, render_template

OPTIONS: tuple[str, ...] = ("quantize", "math", "selftest", "arduino")
QUANTIZE_MODES = (None, "int8", "int16", "fixed16")
MATH_MODES = (None, "libm", "builtin")

#: Default `lstmgen verify` tolerance (max abs error against the framework) per mode,
#: measured on the shipped example and the test grid, with margin (docs/microcontroller.md).
DEFAULT_ATOL = {None: 1e-5, "int16": 2e-4, "int8": 2e-2, "fixed16": 5e-3}
#: What the on-target self-test accepts: |got - expected| <= tol * max(1, |expected|).
SELFTEST_TOL = dict(DEFAULT_ATOL)


def check_backend_options(quantize: Any = None, math: Any = None, selftest: Any = None,
                          arduino: Any = None) -> None:
    """Refuse option values the C backend does not know, with one clear line."""
    if quantize not in QUANTIZE_MODES:
        raise LstmgenError(f"--quantize {quantize!r} is not a C quantization mode; choose "
                           "int8, int16 or fixed16")
    if math not in MATH_MODES:
        raise LstmgenError(f"--math {math!r} is not a C math mode; choose libm or builtin")
    if arduino not in (None, True, False):
        raise LstmgenError(f"arduino must be true or false, got {arduino!r}")
    if selftest not in (None, True, False) and not all(
            hasattr(selftest, k) for k in ("x", "y", "oracle")):
        raise LstmgenError("selftest must be true or a SelftestData (x, y, oracle)")


def default_atol(quantize: Optional[str] = None, **options: Any) -> float:
    """The `lstmgen verify` tolerance when --atol is not given (measured, with margin)."""
    check_backend_options(quantize=quantize, **{k: v for k, v in options.items()
                                                 if k in ("math", "selftest", "arduino")})
    return DEFAULT_ATOL[quantize]


def verify_extra(model: Model, quantize: Optional[str] = None, **options: Any) -> dict:
    """Figures for `lstmgen verify`'s report (its `extra` lines): the weights' flash in
    this mode and the saving against float32 weights."""
    mode = estimate(model, quantize=quantize)
    flt = estimate(model)
    extra = {f"flash bytes of weights ({quantize or 'float32'})": float(mode.weight_bytes)}
    if quantize:
        extra["flash saving against float32 weights (bytes)"] = float(
            flt.weight_bytes - mode.weight_bytes)
    return extra


def memory_report(model: Model, quantize: Optional[str] = None, math: Optional[str] = None,
                  **options: Any) -> str:
    """Flash and RAM per layer for `lstmgen inspect --target c` (code size and stack are
    measured with arm-none-eabi-gcc when it is installed, estimated otherwise)."""
    from ..memory import report
    check_backend_options(quantize=quantize, math=math)
    files = render(model, "model", quantize=quantize, math=math)
    return report(model, quantize=quantize, math=math, files=files, name="model")


# ------------------------------------------------------------------------ contexts --

def _array(ident: str, values: Optional[np.ndarray], comment: str,
           ctype: str = "float") -> Optional[dict]:
    if values is None:
        return None
    values = np.asarray(values)
    if ctype == "float":
        text = array_text(values, suffix="f")
    else:
        per_line = 12 if values.dtype.itemsize <= 2 else 8
        text = wrap_values([str(int(v)) for v in values.ravel()], per_line, "    ")
    return {"ident": ident, "size": int(values.size), "comment": comment, "text": text,
            "ctype": ctype}


def _act_ident(name: str) -> str:
    return name.replace(".", "_")


def _kernel_name(layer: LSTM) -> str:
    return (f"lstm_step_{_act_ident(layer.gate_activation)}_"
            f"{_act_ident(layer.cell_activation)}_{_act_ident(layer.output_activation)}")


def _layer_context(layer: Any, ident: str, prefix: str, quantize: Optional[str],
                   fixed: Optional[c_quant.FixedLayer]) -> dict:
    base = f"{prefix}_{ident}"
    ctx: dict[str, Any] = {"kind": layer.kind, "ident": ident,
                           "name": display_text(layer.name),
                           "input_size": layer.input_size, "output_size": layer.output_size}
    if isinstance(layer, LSTM):
        h, d = layer.units, layer.input_size
        ctx.update(units=h, kernel=_kernel_name(layer))
        if quantize is None:
            ctx.update(
                W=_array(f"{base}_Wt", np.ascontiguousarray(layer.input_weights.T),
                         f"input weights, transposed: [{d}][{4 * h}]"),
                U=_array(f"{base}_Ut", np.ascontiguousarray(layer.recurrent_weights.T),
                         f"recurrent weights, transposed: [{h}][{4 * h}]"),
                b=_array(f"{base}_b", layer.bias, f"bias [{4 * h}], blocks i, f, g, o"))
        elif quantize in ("int8", "int16"):
            q = c_quant.quantize_lstm(layer, quantize)
            ct = c_quant.CTYPE[quantize]
            ctx.update(
                W=_array(f"{base}_Wt", q.Wt, f"input weights / scale, transposed: "
                         f"[{d}][{4 * h}] ({quantize})", ct),
                U=_array(f"{base}_Ut", q.Ut, f"recurrent weights / scale, transposed: "
                         f"[{h}][{4 * h}] ({quantize})", ct),
                ratio=_array(f"{base}_ratio", q.ratio, f"[{4 * h}] input scale / recurrent "
                             "scale, per gate unit"),
                scale=_array(f"{base}_scale", q.scale, f"[{4 * h}] recurrent scale, per "
                             "gate unit: w = q * scale"),
                b=_array(f"{base}_b", layer.bias, f"bias [{4 * h}], blocks i, f, g, o"))
        else:
            assert fixed is not None and fixed.W is not None and fixed.U is not None
            ctx.update(
                W=_array(f"{base}_W", fixed.W.q, f"input weights [{4 * h}][{d}], int16; row r "
                         f"is w * 2^frac_r", "int16_t"),
                Wshift=_array(f"{base}_Wshift", fixed.W.shift, f"[{4 * h}] right shift of "
                              "row r's sum to Q16.16 (x frac + frac_r - 16)", "int8_t"),
                U=_array(f"{base}_U", fixed.U.q, f"recurrent weights [{4 * h}][{h}], int16",
                         "int16_t"),
                Ushift=_array(f"{base}_Ushift", fixed.U.shift, f"[{4 * h}] right shift of "
                              "row r's sum to Q16.16", "int8_t"),
                b=_array(f"{base}_b", fixed.bias, f"bias [{4 * h}], Q16.16", "int32_t"))
    elif isinstance(layer, Dense):
        o, i = layer.output_size, layer.input_size
        ctx.update(activation=_act_ident(layer.activation))
        if quantize is None:
            ctx.update(W=_array(f"{base}_W", layer.weights, f"weights [{o}][{i}]"),
                       b=_array(f"{base}_b", layer.bias, f"bias [{o}]"))
        elif quantize in ("int8", "int16"):
            q, s = c_quant.quantize_dense(layer, quantize)
            ctx.update(W=_array(f"{base}_W", q, f"weights / scale [{o}][{i}] ({quantize})",
                                c_quant.CTYPE[quantize]),
                       scale=_array(f"{base}_scale", s, f"[{o}] scale per output: "
                                    "w = q * scale"),
                       b=_array(f"{base}_b", layer.bias, f"bias [{o}]"))
        else:
            assert fixed is not None and fixed.W is not None
            ctx.update(W=_array(f"{base}_W", fixed.W.q, f"weights [{o}][{i}], int16",
                                "int16_t"),
                       Wshift=_array(f"{base}_Wshift", fixed.W.shift, f"[{o}] right shift "
                                     "of row r's sum to Q16.16", "int8_t"),
                       b=_array(f"{base}_b", fixed.bias, f"bias [{o}], Q16.16", "int32_t"))
    elif isinstance(layer, Activation):
        ctx.update(activation=_act_ident(layer.activation))
    if fixed is not None:
        ctx.update(in_frac=fixed.in_frac, out_frac=fixed.out_frac, c_frac=fixed.c_frac,
                   logits_frac=fixed.logits_frac)
    ctx["arrays"] = [ctx[k] for k in ("W", "Wshift", "U", "Ushift", "ratio", "scale", "b")
                     if ctx.get(k)]
    return ctx


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


def _math_names(builtin: bool) -> dict[str, str]:
    if builtin:
        return {"fabs": "fabs_builtin", "exp": "exp_builtin", "log1p": "log1p_builtin",
                "expm1": "expm1_builtin"}
    return {"fabs": "fabsf", "exp": "expf", "log1p": "log1pf", "expm1": "expm1f"}


def _selftest_data(model: Model, selftest: Any) -> Any:
    """SelftestData as given, or (selftest=True from a direct render call) seeded inputs
    with the float64 reference's outputs."""
    if selftest is True:
        from ..api import SelftestData
        from ..reference import forward
        from ..verify import DEFAULT_TIMESTEPS, make_inputs
        x = make_inputs(model.input_size, 3, model.timesteps or DEFAULT_TIMESTEPS, seed=1)
        return SelftestData(x=x, y=forward(model, x).astype(np.float32),
                            oracle="the lstmgen float64 reference")
    return selftest


def render(model: Model, name: str, quantize: Optional[str] = None,
           math: Optional[str] = None, selftest: Any = None, arduino: Any = None,
           **unknown: Any) -> dict[str, str]:
    if unknown:
        raise LstmgenError(f"option '{sorted(unknown)[0]}' does not apply to target 'c'; it "
                           f"takes: {', '.join(OPTIONS)}")
    check_backend_options(quantize, math, selftest, arduino)
    validate_model_name(name)
    model.validate()
    builtin = math == "builtin"
    plan = make_plan(model)
    idents = unique_identifiers([l.name for l in model.layers])
    fixed = c_quant.fixed_plan(model) if quantize == "fixed16" else None
    layers = [_layer_context(l, i, name, quantize, fixed.layers[k] if fixed else None)
              for k, (l, i) in enumerate(zip(model.layers, idents))]
    mem = estimate(model, quantize=quantize, math=math)
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
    if fixed is not None:  # dense_forward takes its activation as a function
        elementwise.update("linear" if l.activation == "softmax" else l.activation
                           for l in model.layers if isinstance(l, Dense))
    stages = []
    for s, stage in enumerate(plan.stages):
        stages.append({"index": s, "reverse": stage.reverse, "buffered": stage.buffered,
                       "input_size": stage.input_size(model),
                       "output_size": stage.output_size(model),
                       "chain": _chain(model, stage.layers, idents, "x", "y"),
                       "state_out": None})
    # The tail reads the last LSTM's h straight from the state: no copy, no buffer.
    last_seq = plan.stages[-1].layers[-1]
    if plan.tail and isinstance(model.layers[last_seq], LSTM):
        stages[-1]["chain"][-1]["dst"] = "none"
        stages[-1]["state_out"] = idents[last_seq]
    acts_ident = sorted(map(_act_ident, elementwise))
    context = {
        **banner_facts(model),
        "name": name, "NAME": name.upper(), "layers": layers, "stages": stages,
        "tail": _chain(model, plan.tail, idents, "x", "y") if plan.tail else [],
        "tail_input_size": model.layers[plan.tail[0]].input_size if plan.tail else 0,
        "returns_sequences": model.returns_sequences, "streamable": model.streamable,
        "input_size": model.input_size, "output_size": model.output_size,
        "max_width": max_width(model), "max_timesteps": max_timesteps(model),
        "lstm_layers": [c for c in layers if c["kind"] == "lstm"],
        "elementwise": acts_ident,
        "vector_acts": sorted(map(_act_ident, applied)), "kernels": sorted(kernels.items()),
        # fixed16: a Dense layer applies its activation itself (softmax excepted)
        "fixed_vector_acts": sorted(map(_act_ident, {
            l.activation for l in model.layers if isinstance(l, Activation)} | (
            {"softmax"} if any(isinstance(l, Dense) and l.activation == "softmax"
                               for l in model.layers) else set()))),
        "uses_dense": any(isinstance(l, Dense) for l in model.layers),
        "uses_copy": any(step["lstm_scratch"] and step["dst"] != "none"
                         for stage in stages for step in stage["chain"]),
        "max_gates": max(4 * l.units for l in model.layers if isinstance(l, LSTM)),
        "max_units": max(l.units for l in model.layers if isinstance(l, LSTM)),
        "memory": mem, "needs_buffer": plan.needs_buffer,
        "quantize": quantize, "builtin_math": builtin, "m": _math_names(builtin),
        "wtype": c_quant.CTYPE.get(quantize or "", "float"),
        "has_selftest": bool(selftest),
        "fixed": fixed, "value_type": "int16_t" if fixed else "float",
        "needs_exp": bool({"softplus", "elu"} & set(acts_ident)) or "softmax" in applied,
        "fixed_needs_exp": "elu" in acts_ident or "softmax" in applied,
    }
    if fixed is not None:
        context.update(
            sigmoid_table=wrap_values([str(int(v)) for v in c_quant.sigmoid_table()], 12,
                                      "    "),
            softplus_table=wrap_values([str(int(v)) for v in c_quant.softplus_table()], 12,
                                       "    "),
            exp2_poly=c_quant.exp2_poly())
        files = {f"{name}.h": render_template("c/model.h.j2", **context),
                 f"{name}.c": render_template("c/fixed16.c.j2", **context)}
    else:
        files = {f"{name}.h": render_template("c/model.h.j2", **context),
                 f"{name}.c": render_template("c/model.c.j2", **context)}
    data = _selftest_data(model, selftest) if selftest else None
    if data is not None:
        files[f"{name}_selftest.c"] = render_template(
            "c/selftest.c.j2", **context, **_selftest_context(model, data, quantize, fixed))
    if arduino:
        files["library.properties"] = render_template("c/library.properties.j2", **context)
    return files


def _selftest_context(model: Model, data: Any, quantize: Optional[str],
                      fixed: Optional[c_quant.FixedPlan]) -> dict:
    x = np.ascontiguousarray(data.x, dtype=np.float32)
    y = np.asarray(data.y, dtype=np.float32)
    if x.ndim != 3 or x.shape[2] != model.input_size:
        raise LstmgenError(f"selftest inputs have shape {x.shape}, expected [N, T, "
                           f"{model.input_size}]")
    n, t_len = x.shape[0], x.shape[1]
    per_seq = (t_len if model.returns_sequences else 1) * model.output_size
    if y.size != n * per_seq or not np.all(np.isfinite(y)) or not np.all(np.isfinite(x)):
        raise LstmgenError(f"selftest outputs have shape {y.shape}, expected {n} x {per_seq} "
                           "finite values")
    tol = SELFTEST_TOL[quantize]
    ctx: dict[str, Any] = {"st_sequences": n, "st_timesteps": t_len, "st_per_seq": per_seq,
                           "st_oracle": data.oracle, "st_tol": tol,
                           "st_max_timesteps": t_len}
    if fixed is None:
        ctx.update(st_x=array_text(x, suffix="f"), st_y=array_text(y, suffix="f"),
                   st_tol_text=c_float(tol))
    else:
        xq = c_quant.to_fixed(x, fixed.input_frac)
        yq = c_quant.to_fixed(y, fixed.output_frac)
        ctx.update(st_x=wrap_values([str(int(v)) for v in xq.ravel()], 12, "    "),
                   st_y=wrap_values([str(int(v)) for v in yq.ravel()], 12, "    "),
                   st_tol_q=max(1, int(round(tol * 2 ** fixed.output_frac))),
                   st_one_q=2 ** fixed.output_frac)
    return ctx
