"""C99 backend: `NAME.h` and `NAME.c` with weights as `static const` arrays (flash).

C weight layout (chosen for the inner loop): an LSTM's weights are stored transposed,
`*_Wt` [D][4H] and `*_Ut` [H][4H], so that row k holds input k's weights into all 4H gate
pre-activations (blocks i, f, g, o). The step accumulates z += x[k] * row k: contiguous,
unit-stride, and vectorisable by the compiler without reordering any float sum. A GRU is
stored the same way ([D][3H] input weights; the recurrent weights split into [H][2H] for z
and r and [H][H] for n, which reset_before multiplies by r * h), a SimpleRNN as [D][H] and
[H][H]. A Bidirectional layer is two such layers with their own state; `lstmgen.targets.c.plan`
decides the loops (and the sequence buffers) that feed its backward direction.

Layer kinds: every kind of the IR in the float build (`LAYERS`, `FEATURES`); the quantized
builds implement LSTM without optional features (int8 / int16 also Bidirectional LSTM),
Dense and Activation (`check_quantizable` refuses anything else by name).

Masking, normalization and sequence shaping (float build): a Masking model's step functions
take a `real` flag (0 for a masked timestep) and skip everything up to the last recurrent
kernel of their chain on a masked step, so every recurrent layer keeps its state and its
output (its h; a layer with an initial h keeps its last output in the state as well, zeros
before the first real step). Conv1D / Pool1D and the layers before them run over whole
sequences in stack buffers before the stages (`Plan.prefix`); a Flatten layer's stage
writes each step into its row of the flattened vector (`Plan.flatten`).

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

from typing import Any

import numpy as np

from ...errors import LstmgenError
from ...ir import (
    GRU,
    LSTM,
    Activation,
    Bidirectional,
    Conv1D,
    Dense,
    Flatten,
    LayerNorm,
    Masking,
    Model,
    Normalize,
    Pool1D,
    SimpleRNN,
)
from ...literals import c_float, wrap_values
from ...naming import unique_identifiers, validate_model_name
from ..common import array_text, banner_facts, display_text, render_template
from . import quant as c_quant
from .memory import estimate, max_timesteps, prefix_width, sequence_width
from .plan import Op, Plan, make_plan

OPTIONS: tuple[str, ...] = ("quantize", "math", "selftest", "arduino", "calibration")
#: The IR layer kinds and optional LSTM features this backend implements (float build).
LAYERS: frozenset[str] = frozenset(
    {
        "lstm",
        "gru",
        "simple_rnn",
        "bidirectional",
        "dense",
        "activation",
        "masking",
        "normalize",
        "layer_norm",
        "flatten",
        "conv1d",
        "pool1d",
    }
)
FEATURES: frozenset[str] = frozenset(
    {"peephole", "clip", "input_forget", "initial_state", "projection"}
)
#: What --quantize int8 / int16 / fixed16 implement (LSTMs without optional features).
QUANTIZED_LAYERS: frozenset[str] = frozenset({"lstm", "dense", "activation"})
QUANTIZE_MODES = (None, "int8", "int16", "fixed16")
MATH_MODES = (None, "libm", "builtin")

#: Default `lstmgen verify` tolerance (max abs error against the framework) per mode,
#: measured on the shipped example and the test grid, with margin (docs/microcontroller.md).
DEFAULT_ATOL = {None: 1e-5, "int16": 2e-4, "int8": 2e-2, "fixed16": 5e-3}
#: What the on-target self-test accepts: |got - expected| <= tol * max(1, |expected|).
SELFTEST_TOL = dict(DEFAULT_ATOL)


def check_backend_options(
    quantize: Any = None, math: Any = None, selftest: Any = None, arduino: Any = None
) -> None:
    """Refuse option values the C backend does not know, with one clear line."""
    if quantize not in QUANTIZE_MODES:
        raise LstmgenError(
            f"--quantize {quantize!r} is not a C quantization mode; choose int8, int16 or fixed16"
        )
    if math not in MATH_MODES:
        raise LstmgenError(f"--math {math!r} is not a C math mode; choose libm or builtin")
    if arduino not in (None, True, False):
        raise LstmgenError(f"arduino must be true or false, got {arduino!r}")
    if selftest not in (None, True, False) and not all(
        hasattr(selftest, k) for k in ("x", "y", "oracle")
    ):
        raise LstmgenError("selftest must be true or a SelftestData (x, y, oracle)")


def default_atol(quantize: str | None = None, **options: Any) -> float:
    """The `lstmgen verify` tolerance when --atol is not given (measured, with margin)."""
    if quantize == "int8-full":  # [int8-full hook] lstmgen.targets.c_int8
        from ..c_int8.target import DEFAULT_ATOL as INT8_FULL_ATOL

        return INT8_FULL_ATOL
    options.pop("calibration", None)
    check_backend_options(
        quantize=quantize,
        **{k: v for k, v in options.items() if k in ("math", "selftest", "arduino")},
    )
    return DEFAULT_ATOL[quantize]


def verify_extra(model: Model, quantize: str | None = None, **options: Any) -> dict:
    """Figures for `lstmgen verify`'s report (its `extra` lines): the weights' flash in
    this mode and the saving against float32 weights."""
    if quantize == "int8-full":  # [int8-full hook] lstmgen.targets.c_int8
        from ..c_int8.target import verify_extra as int8_full_extra

        return int8_full_extra(model, **options)
    mode = estimate(model, quantize=quantize)
    flt = estimate(model)
    extra = {f"flash bytes of weights ({quantize or 'float32'})": float(mode.weight_bytes)}
    if quantize:
        extra["flash saving against float32 weights (bytes)"] = float(
            flt.weight_bytes - mode.weight_bytes
        )
    return extra


def memory_report(
    model: Model, quantize: str | None = None, math: str | None = None, **options: Any
) -> str:
    """Flash and RAM per layer for `lstmgen inspect --target c` (code size and stack are
    measured with arm-none-eabi-gcc when it is installed, estimated otherwise)."""
    if quantize == "int8-full":  # [int8-full hook] no per-layer report for it yet
        raise LstmgenError("inspect has no memory report for --quantize int8-full yet")
    from .memory import report

    check_backend_options(quantize=quantize, math=math)
    files = render(model, "model", quantize=quantize, math=math)
    return report(model, quantize=quantize, math=math, files=files, name="model")


# ------------------------------------------------------------------------ contexts --


def check_quantizable(model: Model, quantize: str | None) -> None:
    """The quantized builds implement LSTMs without optional features (int8 / int16 also
    inside a Bidirectional), Dense and Activation layers; refuse anything else by layer
    name and mode."""
    if quantize is None:
        return
    for layer in model.layers:
        if (
            isinstance(layer, Bidirectional)
            and quantize in ("int8", "int16")
            and isinstance(layer.forward, LSTM)
        ):
            continue  # two LSTMs: the int8/int16 kernel runs each direction (features below)
        if layer.kind not in QUANTIZED_LAYERS:
            inner = f" of {layer.forward.kind}" if isinstance(layer, Bidirectional) else ""
            raise LstmgenError(
                f"--quantize {quantize} does not implement {layer.kind}{inner} layers (layer "
                f"'{layer.name}'); it implements LSTM (without optional features"
                + ("; also in a Bidirectional" if quantize != "fixed16" else "")
                + "), Dense and Activation layers. Generate the float build instead (no "
                "--quantize; --math builtin also works without libm)"
            )
        for feature in sorted(getattr(layer, "features", lambda: set())()):
            raise LstmgenError(
                f"--quantize {quantize} does not implement LSTM {feature} (layer "
                f"'{layer.name}'); generate the float build instead (no --quantize)"
            )


def _array(
    ident: str, values: np.ndarray | None, comment: str, ctype: str = "float"
) -> dict | None:
    if values is None:
        return None
    values = np.asarray(values)
    if ctype == "float":
        text = array_text(values, suffix="f")
    else:
        per_line = 12 if values.dtype.itemsize <= 2 else 8
        text = wrap_values([str(int(v)) for v in values.ravel()], per_line, "    ")
    return {
        "ident": ident,
        "size": int(values.size),
        "comment": comment,
        "text": text,
        "ctype": ctype,
    }


def _act_ident(name: str) -> str:
    return name.replace(".", "_")


def _kernel_name(layer: LSTM) -> str:
    return (
        f"lstm_step_{_act_ident(layer.gate_activation)}_"
        f"{_act_ident(layer.cell_activation)}_{_act_ident(layer.output_activation)}"
    )


def _lstm_flags(layer: LSTM) -> list[str]:
    """The optional features that change an LSTM's step (initial_state only its reset)."""
    return [
        flag
        for flag, used in (
            ("peephole", layer.peephole is not None),
            ("clip", layer.clip is not None),
            ("input_forget", layer.input_forget),
            ("proj", layer.projection is not None),
        )
        if used
    ]


def _transposed(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a).T)


def _recurrent_context(
    layer: Any,
    ident: str,
    base: str,
    name: str,
    direction: str | None,
    quantize: str | None,
    fixed: c_quant.FixedLayer | None,
) -> dict:
    """One unidirectional recurrent layer (or one direction of a Bidirectional)."""
    ctx: dict[str, Any] = {
        "kind": layer.kind,
        "ident": ident,
        "name": name,
        "direction": direction,
        "input_size": layer.input_size,
        "output_size": layer.output_size,
        "units": layer.units,
        "h0": None,
        "c0": None,
        "out": f"{ident}_h",
        "keeps_out": False,
    }
    of = f"{direction}: " if direction else ""
    ctx.update(
        activations=_activations_of(layer), acts=tuple(map(_act_ident, _activations_of(layer)))
    )
    h, d = layer.units, layer.input_size
    if isinstance(layer, LSTM):
        flags = _lstm_flags(layer)
        p = layer.output_size
        ctx.update(
            kernel=_kernel_name(layer) + "".join(f"_{f}" for f in flags),
            general=bool(flags),
            peephole="peephole" in flags,
            clip=c_float(layer.clip) if layer.clip is not None else None,
            input_forget=layer.input_forget,
            proj="proj" in flags,
        )
        if quantize is None:
            ctx.update(
                W=_array(
                    f"{base}_Wt",
                    _transposed(layer.input_weights),
                    f"{of}input weights, transposed: [{d}][{4 * h}]",
                ),
                U=_array(
                    f"{base}_Ut",
                    _transposed(layer.recurrent_weights),
                    f"{of}recurrent weights, transposed: [{p}][{4 * h}]",
                ),
                b=_array(f"{base}_b", layer.bias, f"{of}bias [{4 * h}], blocks i, f, g, o"),
                peep=_array(
                    f"{base}_peep", layer.peephole, f"{of}peephole weights [3][{h}], rows i, f, o"
                ),
                proj=_array(
                    f"{base}_Pt",
                    None if layer.projection is None else _transposed(layer.projection),
                    f"{of}projection, transposed: [{h}][{p}]",
                ),
                h0=_array(f"{base}_h0", layer.initial_h, f"{of}initial h [{p}]"),
                c0=_array(f"{base}_c0", layer.initial_c, f"{of}initial c [{h}]"),
            )
        elif quantize in ("int8", "int16"):
            q = c_quant.quantize_lstm(layer, quantize)
            ct = c_quant.CTYPE[quantize]
            ctx.update(
                W=_array(
                    f"{base}_Wt",
                    q.Wt,
                    f"{of}input weights / scale, transposed: [{d}][{4 * h}] ({quantize})",
                    ct,
                ),
                U=_array(
                    f"{base}_Ut",
                    q.Ut,
                    f"{of}recurrent weights / scale, transposed: [{h}][{4 * h}] ({quantize})",
                    ct,
                ),
                ratio=_array(
                    f"{base}_ratio",
                    q.ratio,
                    f"{of}[{4 * h}] input scale / recurrent scale, per gate unit",
                ),
                scale=_array(
                    f"{base}_scale",
                    q.scale,
                    f"{of}[{4 * h}] recurrent scale, per gate unit: w = q * scale",
                ),
                b=_array(f"{base}_b", layer.bias, f"{of}bias [{4 * h}], blocks i, f, g, o"),
            )
        else:
            assert fixed is not None and fixed.W is not None and fixed.U is not None
            ctx.update(
                W=_array(
                    f"{base}_W",
                    fixed.W.q,
                    f"input weights [{4 * h}][{d}], int16; row r is w * 2^frac_r",
                    "int16_t",
                ),
                Wshift=_array(
                    f"{base}_Wshift",
                    fixed.W.shift,
                    f"[{4 * h}] right shift of row r's sum to Q16.16 (x frac + frac_r - 16)",
                    "int8_t",
                ),
                U=_array(
                    f"{base}_U", fixed.U.q, f"recurrent weights [{4 * h}][{h}], int16", "int16_t"
                ),
                Ushift=_array(
                    f"{base}_Ushift",
                    fixed.U.shift,
                    f"[{4 * h}] right shift of row r's sum to Q16.16",
                    "int8_t",
                ),
                b=_array(f"{base}_b", fixed.bias, f"bias [{4 * h}], Q16.16", "int32_t"),
            )
    elif isinstance(layer, GRU):
        bias, bn = layer.bias, None
        if layer.reset_after and layer.recurrent_bias is not None:
            # the recurrent biases of z and r are plain sums: fold them into the bias
            rb = layer.recurrent_bias
            bias = np.zeros(3 * h, np.float32) if bias is None else bias.copy()
            bias[: 2 * h] = bias[: 2 * h] + rb[: 2 * h]
            bn = rb[2 * h :]
        mode = "after" if layer.reset_after else "before"
        ctx.update(
            kernel=f"gru_step_{_act_ident(layer.gate_activation)}_"
            f"{_act_ident(layer.cell_activation)}_{mode}",
            reset_after=layer.reset_after,
            W=_array(
                f"{base}_Wt",
                _transposed(layer.input_weights),
                f"{of}input weights, transposed: [{d}][{3 * h}], blocks z, r, n",
            ),
            U=_array(
                f"{base}_Ut",
                _transposed(layer.recurrent_weights[: 2 * h]),
                f"{of}recurrent weights of z and r, transposed: [{h}][{2 * h}]",
            ),
            Un=_array(
                f"{base}_Unt",
                _transposed(layer.recurrent_weights[2 * h :]),
                f"{of}recurrent weights of n, transposed: [{h}][{h}]",
            ),
            b=_array(
                f"{base}_b",
                bias,
                f"{of}bias [{3 * h}], blocks z, r, n"
                + (" (input bias + recurrent bias for z and r)" if bn is not None else ""),
            ),
            bn=_array(f"{base}_bn", bn, f"{of}recurrent bias of n [{h}] (inside r * (Un h + bn))"),
        )
    else:
        assert isinstance(layer, SimpleRNN)
        ctx.update(
            kernel=f"rnn_step_{_act_ident(layer.activation)}",
            W=_array(
                f"{base}_Wt",
                _transposed(layer.input_weights),
                f"{of}input weights, transposed: [{d}][{h}]",
            ),
            U=_array(
                f"{base}_Ut",
                _transposed(layer.recurrent_weights),
                f"{of}recurrent weights, transposed: [{h}][{h}]",
            ),
            b=_array(f"{base}_b", layer.bias, f"{of}bias [{h}]"),
        )
    return ctx


def _activations_of(layer: Any) -> tuple[str, ...]:
    if isinstance(layer, LSTM):
        return (layer.gate_activation, layer.cell_activation, layer.output_activation)
    if isinstance(layer, GRU):
        return (layer.gate_activation, layer.cell_activation)
    return (layer.activation,)


ARRAY_ORDER = (
    "W",
    "Wshift",
    "U",
    "Un",
    "Ushift",
    "ratio",
    "scale",
    "b",
    "bn",
    "peep",
    "proj",
    "h0",
    "c0",
    "mean",
    "std",
    "gamma",
    "beta",
)


def _layer_context(
    layer: Any,
    ident: str,
    prefix: str,
    quantize: str | None,
    fixed: c_quant.FixedLayer | None,
    directions: tuple[str, str] | None = None,
) -> dict:
    base = f"{prefix}_{ident}"
    name = display_text(layer.name)
    if isinstance(layer, Bidirectional):
        assert directions is not None
        fw, bw = (
            _recurrent_context(part, d, f"{prefix}_{d}", name, direction, quantize, None)
            for part, d, direction in zip(
                (layer.forward, layer.backward), directions, ("forward", "backward")
            )
        )
        for cell in (fw, bw):
            cell["arrays"] = [cell[k] for k in ARRAY_ORDER if cell.get(k)]
        return {
            "kind": layer.kind,
            "ident": ident,
            "name": name,
            "input_size": layer.input_size,
            "output_size": layer.output_size,
            "merge_mode": layer.merge_mode,
            "fw": fw,
            "bw": bw,
            "arrays": fw["arrays"] + bw["arrays"],
        }
    if layer.recurrent:
        ctx = _recurrent_context(layer, ident, base, name, None, quantize, fixed)
    else:
        ctx = {
            "kind": layer.kind,
            "ident": ident,
            "name": name,
            "input_size": layer.input_size,
            "output_size": layer.output_size,
        }
    if isinstance(layer, Dense):
        o, i = layer.output_size, layer.input_size
        ctx.update(activation=_act_ident(layer.activation))
        if quantize is None:
            ctx.update(
                W=_array(f"{base}_W", layer.weights, f"weights [{o}][{i}]"),
                b=_array(f"{base}_b", layer.bias, f"bias [{o}]"),
            )
        elif quantize in ("int8", "int16"):
            q, s = c_quant.quantize_dense(layer, quantize)
            ctx.update(
                W=_array(
                    f"{base}_W",
                    q,
                    f"weights / scale [{o}][{i}] ({quantize})",
                    c_quant.CTYPE[quantize],
                ),
                scale=_array(f"{base}_scale", s, f"[{o}] scale per output: w = q * scale"),
                b=_array(f"{base}_b", layer.bias, f"bias [{o}]"),
            )
        else:
            assert fixed is not None and fixed.W is not None
            ctx.update(
                W=_array(f"{base}_W", fixed.W.q, f"weights [{o}][{i}], int16", "int16_t"),
                Wshift=_array(
                    f"{base}_Wshift",
                    fixed.W.shift,
                    f"[{o}] right shift of row r's sum to Q16.16",
                    "int8_t",
                ),
                b=_array(f"{base}_b", fixed.bias, f"bias [{o}], Q16.16", "int32_t"),
            )
    elif isinstance(layer, Activation):
        ctx.update(activation=_act_ident(layer.activation))
    elif not layer.recurrent:
        ctx.update(_shaping_context(layer, base))
    if fixed is not None:
        ctx.update(
            in_frac=fixed.in_frac,
            out_frac=fixed.out_frac,
            c_frac=fixed.c_frac,
            logits_frac=fixed.logits_frac,
        )
    ctx["arrays"] = [ctx[k] for k in ARRAY_ORDER if ctx.get(k)]
    return ctx


def _shaping_context(layer: Any, base: str) -> dict:
    """Masking, Normalize, LayerNorm, Flatten, Conv1D and Pool1D (float build only)."""
    if isinstance(layer, Masking):
        return {"mask_value": c_float(layer.mask_value)}
    if isinstance(layer, Normalize):
        n = layer.input_size
        return {
            "mean": _array(f"{base}_mean", layer.mean, f"mean [{n}]"),
            "std": _array(f"{base}_std", layer.std, f"standard deviation [{n}]"),
        }
    if isinstance(layer, LayerNorm):
        n = layer.size
        return {
            "epsilon": c_float(layer.epsilon),
            "gamma": _array(f"{base}_gamma", layer.gamma, f"gamma (scale) [{n}]"),
            "beta": _array(f"{base}_beta", layer.beta, f"beta (offset) [{n}]"),
        }
    if isinstance(layer, Conv1D):
        f, k, d = layer.weights.shape
        return {
            "activation": _act_ident(layer.activation),
            "kernel": k,
            "stride": layer.stride,
            "dilation": layer.dilation,
            "padding": layer.padding,
            "span": layer.dilation * (k - 1) + 1,
            "W": _array(
                f"{base}_W",
                np.ascontiguousarray(layer.weights.transpose(1, 2, 0)),
                f"weights as [{k}][{d}][{f}] (tap, input, filter): row (k, d) "
                f"holds input d's weights at tap k into the {f} filters",
            ),
            "b": _array(f"{base}_b", layer.bias, f"bias [{f}]"),
        }
    if isinstance(layer, Pool1D):
        return {
            "pool_type": layer.pool_type,
            "pool_size": layer.pool_size,
            "stride": layer.stride,
            "padding": layer.padding,
            "span": layer.pool_size,
        }
    assert isinstance(layer, Flatten)
    return {"timesteps": layer.timesteps, "size": layer.size}


def _chain(
    ops: list[Op], layers: list[dict], src: str, dst: str, masking: bool = False
) -> list[dict]:
    """How `ops` run in order from `src` into `dst`: each step's input and output buffer.
    A recurrent layer's output is its state h (copied out only when it is last).

    With `masking`, the steps up to the last recurrent kernel are `guarded`: they run only
    for a real timestep (the recurrent layers skip a masked one), and what follows reads
    the recurrent layer's kept output."""
    steps = []
    for n, op in enumerate(ops):
        last = n == len(ops) - 1
        ctx = layers[op.layer]
        cell = ctx[op.part] if op.part in ("fw", "bw") else ctx
        if "units" in cell:  # a recurrent layer or one direction of a Bidirectional
            steps.append(
                {
                    "op": "recurrent",
                    "l": cell,
                    "src": src,
                    "dst": dst if last else "none",
                    "scratch": True,
                    "guarded": False,
                }
            )
            src = f"s->{cell['out']}"
        elif ctx["kind"] == "masking":  # the mask is the `real` flag of the step
            continue
        else:  # Dense, Activation, or a Bidirectional's merge with the stored bw output
            out = dst if last else ("buf_b" if src == "buf_a" else "buf_a")
            steps.append(
                {
                    "op": op.part or "layer",
                    "l": ctx,
                    "src": src,
                    "dst": out,
                    "scratch": False,
                    "guarded": False,
                }
            )
            src = out
    recurrent = [n for n, step in enumerate(steps) if step["op"] == "recurrent"]
    if masking and recurrent:
        for step in steps[: recurrent[-1] + 1]:
            step["guarded"] = True
    return steps


def _window_steps(var: str, span: int, stride: int, padding: str) -> str:
    """C expression: the output timesteps of a window of `span` steps every `stride` over
    `var` >= 1 input steps (`lstmgen.ir.window_padding`); no overflow for any int."""
    if padding == "valid":
        if stride == 1:
            return var if span == 1 else f"{var} >= {span} ? {var} - {span - 1} : 0"
        return f"{var} >= {span} ? ({var} - {span}) / {stride} + 1 : 0"
    return var if stride == 1 else f"({var} - 1) / {stride} + 1"


def _prefix_context(model: Model, plan: Plan, layers: list[dict]) -> list[dict]:
    """The groups run over whole sequences before the stages (`Plan.prefix`)."""
    groups = []
    for g, group in enumerate(plan.prefix):
        src = "x" if g == 0 else ("pre_a", "pre_b")[(g - 1) % 2]
        dst = ("pre_a", "pre_b")[g % 2]
        first, last = model.layers[group[0]], model.layers[group[-1]]
        ctx = {
            "src": src,
            "dst": dst,
            "input_size": first.input_size,
            "output_size": last.output_size,
        }
        if first.kind in ("conv1d", "pool1d"):
            ctx.update(op="window", l=layers[group[0]])
            l = ctx["l"]
            ctx["steps"] = _window_steps("timesteps", l["span"], l["stride"], l["padding"])
            ctx["pad"] = {
                "valid": "0",
                "causal": str(l["span"] - 1),
                "same": f"same_padding(timesteps, steps, {l['span']}, {l['stride']})",
            }[l["padding"]]
        else:
            ctx.update(
                op="rows",
                index=len([c for c in groups if c["op"] == "rows"]),
                count=len(group),
                names=", ".join(f'"{layers[k]["name"]}"' for k in group),
                chain=_chain([Op(k) for k in group], layers, "x", "y"),
            )
        groups.append(ctx)
    return groups


def _math_names(builtin: bool) -> dict[str, str]:
    if builtin:
        return {
            "fabs": "fabs_builtin",
            "exp": "exp_builtin",
            "log1p": "log1p_builtin",
            "expm1": "expm1_builtin",
        }
    return {"fabs": "fabsf", "exp": "expf", "log1p": "log1pf", "expm1": "expm1f"}


def _selftest_data(model: Model, selftest: Any) -> Any:
    """SelftestData as given, or (selftest=True from a direct render call) seeded inputs
    with the float64 reference's outputs."""
    if selftest is True:
        from ...sampling import reference_selftest

        return reference_selftest(model)
    return selftest


def _stage_contexts(
    model: Model, plan: Plan, layers: list[dict], name: str, width: int
) -> list[dict]:
    """Each stage's step function and the pointers its loop in NAME_predict passes."""
    slot_names = [f"seq_{chr(ord('a') + k)}" for k in range(plan.slots)]
    masking = any(isinstance(l, Masking) for l in model.layers)
    # the stages' input: the model's x, or the sequence the prefix groups leave
    x_name, x_stride = "x", model.input_size
    if plan.prefix:
        x_name = ("pre_a", "pre_b")[(len(plan.prefix) - 1) % 2]
        x_stride = model.layers[plan.prefix[-1][-1]].output_size
    stages = []
    for s, stage in enumerate(plan.stages):
        main_line = s == len(plan.stages) - 1 and plan.final_merge is None
        if stage.sink is not None:
            index = "src_t" if stage.by_source_time else "(size_t)t"
            dst: str | None = f"{slot_names[plan.slot(stage.sink)]} + {index} * {width}"
        elif main_line and plan.flatten is not None:  # each step's row of the flat vector
            dst = f"flat + (size_t)t * {model.layers[plan.flatten].size}"
        elif main_line:
            dst = (
                f"y + (size_t)t * {model.output_size}"
                if model.returns_sequences
                else ("last" if plan.tail else "y")
            )
        else:
            dst = None  # a Bidirectional's direction: its final state is merged afterwards
        src = x_name if stage.source is None else slot_names[plan.slot(stage.source)]
        stride = x_stride if stage.source is None else width
        ctx = {
            "index": s,
            "reverse": stage.reverse,
            "input_size": stage.input_size(model),
            "output_size": stage.output_size(model),
            "chain": _chain(stage.ops, layers, "x", "y" if dst else "none", masking),
            "state_out": None,
            "src": f"{src} + src_t * {stride}",
            "side": (
                f"{slot_names[plan.slot(stage.side)]} + src_t * {width}"
                if stage.side is not None
                else None
            ),
            "dst": dst,
            "fn": f"{name}_sequence_step" + (str(s) if len(plan.stages) > 1 else ""),
            "bidirectional": any(op.part for op in stage.ops),
            "by_source_time": stage.by_source_time,
        }
        stages.append(ctx)
    # The tail reads the last recurrent layer's h straight from the state: no copy, no buffer.
    last = stages[-1]["chain"][-1]
    if (
        plan.tail
        and plan.final_merge is None
        and plan.flatten is None
        and last["op"] == "recurrent"
    ):
        last["dst"] = "none"
        stages[-1]["state_out"] = last["l"]["out"]
        stages[-1]["dst"] = None
    return stages


def render(
    model: Model,
    name: str,
    quantize: str | None = None,
    math: str | None = None,
    selftest: Any = None,
    arduino: Any = None,
    calibration: Any = None,
    **unknown: Any,
) -> dict[str, str]:
    if quantize == "int8-full":  # [int8-full hook] the integer renderer: lstmgen.targets.c_int8
        from ..c_int8.target import render_for_c_target

        return render_for_c_target(model, name, calibration, selftest, math, arduino, **unknown)
    if calibration is not None:
        raise LstmgenError("--calibration applies to --quantize int8-full only")
    if unknown:
        raise LstmgenError(
            f"option '{sorted(unknown)[0]}' does not apply to target 'c'; it "
            f"takes: {', '.join(OPTIONS)}"
        )
    check_backend_options(quantize, math, selftest, arduino)
    validate_model_name(name)
    model.validate()
    check_quantizable(model, quantize)
    builtin = math == "builtin"
    plan = make_plan(model)
    bidirectional = [l for l in model.layers if isinstance(l, Bidirectional)]
    # layer identifiers first (unchanged by the rest), then one per Bidirectional direction
    idents = unique_identifiers(
        [l.name for l in model.layers]
        + [f"{l.name} {d}" for l in bidirectional for d in ("fw", "bw")]
    )
    directions = iter(zip(idents[len(model.layers) :: 2], idents[len(model.layers) + 1 :: 2]))
    fixed = c_quant.fixed_plan(model) if quantize == "fixed16" else None
    layers = [
        _layer_context(
            l,
            i,
            name,
            quantize,
            fixed.layers[k] if fixed else None,
            next(directions) if isinstance(l, Bidirectional) else None,
        )
        for k, (l, i) in enumerate(zip(model.layers, idents))
    ]
    cells = [
        c
        for ctx in layers
        for c in ((ctx["fw"], ctx["bw"]) if "fw" in ctx else (ctx,) if "units" in ctx else ())
    ]
    masking = next((l for l in layers if l["kind"] == "masking"), None)
    if masking is not None:
        for cell in cells:  # output before any real step: zeros, not the initial h
            if cell["h0"]:
                cell.update(out=f"{cell['ident']}_out", keeps_out=True)
    mem = estimate(model, quantize=quantize, math=math)
    elementwise: set[str] = set()
    applied: set[str] = set()  # activations applied to whole vectors (Dense, Activation)
    kernels: dict[str, tuple[str, ...]] = {}  # LSTMs without optional step features
    extra_kernels: dict[str, dict] = {}  # the other recurrent kernels
    for cell in cells:
        elementwise.update(cell["activations"])
        if cell["kind"] == "lstm" and not cell["general"]:
            kernels[cell["kernel"]] = cell["acts"]
        else:
            extra_kernels[cell["kernel"]] = cell
    for layer in model.layers:
        if isinstance(layer, Activation) or (
            isinstance(layer, (Dense, Conv1D)) and layer.activation != "linear"
        ):
            applied.add(layer.activation)
    elementwise.update(applied - {"softmax"})
    if fixed is not None:  # dense_forward takes its activation as a function
        elementwise.update(
            "linear" if l.activation == "softmax" else l.activation
            for l in model.layers
            if isinstance(l, Dense)
        )
    width = sequence_width(model)
    stages = _stage_contexts(model, plan, layers, name, width)
    final_merge = None
    if plan.final_merge is not None:
        bi = layers[plan.final_merge]
        final_merge = {
            "mode": bi["merge_mode"],
            "a": f"s.{bi['fw']['out']}",
            "b": f"s.{bi['bw']['out']}",
            "n": bi["fw"]["output_size"],
            "dst": "last" if plan.tail else "y",
        }
    prefix = _prefix_context(model, plan, layers)
    windows = [g for g in prefix if g["op"] == "window"]
    flatten = layers[plan.flatten] if plan.flatten is not None else None
    norms = {l["kind"] for l in layers} & {"normalize", "layer_norm"}
    acts_ident = sorted(map(_act_ident, elementwise))
    only_lstm = model.kinds() <= QUANTIZED_LAYERS
    features = {f for layer in model.layers for f in getattr(layer, "features", set)()}
    facts = banner_facts(model)
    if windows and model.returns_sequences:
        facts["output_shape"] = (
            f"[T_out][{model.output_size}] (one row per timestep the "
            f"Conv1D/pooling layers leave: T_out = "
            f"{name}_output_timesteps(T))"
        )
    context = {
        **facts,
        "name": name,
        "NAME": name.upper(),
        "layers": layers,
        "stages": stages,
        "tail": _chain([Op(k) for k in plan.tail], layers, "x", "y") if plan.tail else [],
        "tail_input_size": model.layers[plan.tail[0]].input_size if plan.tail else 0,
        "returns_sequences": model.returns_sequences,
        "streamable": model.streamable,
        "input_size": model.input_size,
        "output_size": model.output_size,
        "max_width": width,
        "max_timesteps": max_timesteps(model),
        "cells": cells,
        "only_lstm": only_lstm,
        "kinds": model.kinds(),
        "initial_state": "initial_state" in features,
        "go_backwards": any(l.recurrent and l.go_backwards for l in model.layers),
        "slots": [f"seq_{chr(ord('a') + k)}" for k in range(plan.slots)],
        "final_merge": final_merge,
        "merge_modes": sorted({l.merge_mode for l in bidirectional}),
        "uses_clip": any(c.get("clip") for c in cells),
        "elementwise": acts_ident,
        "vector_acts": sorted(map(_act_ident, applied)),
        "kernels": sorted(kernels.items()),
        "extra_kernels": [extra_kernels[k] for k in sorted(extra_kernels)],
        # fixed16: a Dense layer applies its activation itself (softmax excepted)
        "fixed_vector_acts": sorted(
            map(
                _act_ident,
                {l.activation for l in model.layers if isinstance(l, Activation)}
                | (
                    {"softmax"}
                    if any(isinstance(l, Dense) and l.activation == "softmax" for l in model.layers)
                    else set()
                ),
            )
        ),
        "uses_dense": any(isinstance(l, Dense) for l in model.layers),
        "uses_copy": any(c["keeps_out"] for c in cells)
        or any(
            step["op"] == "recurrent" and step["dst"] != "none"
            for stage in stages
            for step in stage["chain"]
        ),
        "max_gates": max(_scratch_values(c) for c in cells),
        "max_units": max([c["units"] for c in cells if c["kind"] == "lstm"], default=0),
        "memory": mem,
        "needs_buffer": plan.needs_buffer,
        # masking, normalization and sequence shaping (float build only)
        "masking": masking,
        "prefix": prefix,
        "windows": windows,
        "flatten": flatten,
        "norms": sorted(norms),
        "needs_sqrt": "layer_norm" in norms,
        "pool_types": sorted({w["l"]["pool_type"] for w in windows if w["l"]["kind"] == "pool1d"}),
        "uses_conv": any(w["l"]["kind"] == "conv1d" for w in windows),
        "uses_same": any(w["l"]["padding"] == "same" for w in windows),
        "prefix_width": prefix_width(model),
        "prefix_buffers": plan.prefix_buffers,
        "rows_groups": [g for g in prefix if g["op"] == "rows"],
        "min_timesteps": _min_timesteps(model) if windows else 1,
        "keeps_out": any(c["keeps_out"] for c in cells),
        "uses_window_buffers": bool(plan.prefix_buffers),
        "quantize": quantize,
        "builtin_math": builtin,
        "m": _math_names(builtin),
        "wtype": c_quant.CTYPE.get(quantize or "", "float"),
        "has_selftest": bool(selftest),
        "fixed": fixed,
        "value_type": "int16_t" if fixed else "float",
        "needs_exp": bool({"softplus", "elu"} & set(acts_ident)) or "softmax" in applied,
        "fixed_needs_exp": "elu" in acts_ident or "softmax" in applied,
    }
    if fixed is not None:
        context.update(
            sigmoid_table=wrap_values([str(int(v)) for v in c_quant.sigmoid_table()], 12, "    "),
            softplus_table=wrap_values([str(int(v)) for v in c_quant.softplus_table()], 12, "    "),
            exp2_poly=c_quant.exp2_poly(),
        )
        files = {
            f"{name}.h": render_template("c/model.h.j2", **context),
            f"{name}.c": render_template("c/fixed16.c.j2", **context),
        }
    else:
        files = {
            f"{name}.h": render_template("c/model.h.j2", **context),
            f"{name}.c": render_template("c/model.c.j2", **context),
        }
    data = _selftest_data(model, selftest) if selftest else None
    if data is not None:
        files[f"{name}_selftest.c"] = render_template(
            "c/selftest.c.j2", **context, **_selftest_context(model, data, quantize, fixed)
        )
    if arduino:
        files["library.properties"] = render_template("c/library.properties.j2", **context)
    return files


def _min_timesteps(model: Model) -> int:
    """The fewest input timesteps that leave the recurrent layers at least one."""
    t = 1
    while model.output_timesteps(t) < 1:
        t += 1
    return t


def _scratch_values(cell: dict) -> int:
    """Floats of gate scratch (z) one step of a recurrent kernel uses."""
    return cell["units"] if cell["kind"] == "simple_rnn" else 4 * cell["units"]


def _selftest_context(
    model: Model, data: Any, quantize: str | None, fixed: c_quant.FixedPlan | None
) -> dict:
    x = np.ascontiguousarray(data.x, dtype=np.float32)
    y = np.asarray(data.y, dtype=np.float32)
    if x.ndim != 3 or x.shape[2] != model.input_size:
        raise LstmgenError(
            f"selftest inputs have shape {x.shape}, expected [N, T, {model.input_size}]"
        )
    n, t_len = x.shape[0], x.shape[1]
    if model.output_timesteps(t_len) < 1:
        raise LstmgenError(
            f"selftest inputs of {t_len} timesteps leave none after the "
            f"Conv1D/pooling layers; they need at least "
            f"{_min_timesteps(model)}"
        )
    if any(l.kind == "flatten" for l in model.layers) and t_len != model.timesteps:
        raise LstmgenError(
            f"selftest inputs have {t_len} timesteps; the model's Flatten layer "
            f"needs exactly {model.timesteps}"
        )
    per_seq = (model.output_timesteps(t_len) if model.returns_sequences else 1) * model.output_size
    if y.size != n * per_seq or not np.all(np.isfinite(y)) or not np.all(np.isfinite(x)):
        raise LstmgenError(
            f"selftest outputs have shape {y.shape}, expected {n} x {per_seq} finite values"
        )
    tol = SELFTEST_TOL[quantize]
    ctx: dict[str, Any] = {
        "st_sequences": n,
        "st_timesteps": t_len,
        "st_per_seq": per_seq,
        "st_oracle": data.oracle,
        "st_tol": tol,
        "st_max_timesteps": t_len,
    }
    if fixed is None:
        ctx.update(
            st_x=array_text(x, suffix="f"), st_y=array_text(y, suffix="f"), st_tol_text=c_float(tol)
        )
    else:
        xq = c_quant.to_fixed(x, fixed.input_frac)
        yq = c_quant.to_fixed(y, fixed.output_frac)
        ctx.update(
            st_x=wrap_values([str(int(v)) for v in xq.ravel()], 12, "    "),
            st_y=wrap_values([str(int(v)) for v in yq.ravel()], 12, "    "),
            st_tol_q=max(1, int(round(tol * 2**fixed.output_frac))),
            st_one_q=2**fixed.output_frac,
        )
    return ctx
