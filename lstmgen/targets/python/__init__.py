"""Pure-Python backend: one module `NAME.py` for CPython >= 3.8 and MicroPython.

The module imports only `math` and `array`. Weights are written as exact float32 literals
(`lstmgen.literals.float_literal`), flattened row-major, six to a line, inside string
literals that the module parses at import time into float32 `array('f')` rows. A module of
tens of thousands of bare float literals does not compile within MicroPython's default
heap (each literal becomes a parse node and a boxed float); strings do. (MicroPython keeps
a module's constants, these strings included, for as long as the module lives: about 11
bytes a weight on top of the 4 of the arrays. Models up to ~88k weights fit its default
2 MB heap.)

Each LSTM (and Dense, and SimpleRNN) layer becomes one matrix whose row r joins input
weights row r, recurrent weights row r and the bias b[r], so that one matrix-vector product
with [x, h, 1] gives all 4H pre-activations z (gate blocks i, f, g, o as in the IR). The
gate math is rendered per layer with its activations spelled out: sigmoid, tanh, relu,
softsign and linear as inline expressions (no function call per element), the others as
calls of small helper functions. The other recurrent layouts, two matrices a step each:

* GRU, reset_after: [W | b] times [x, 1] and [U | recurrent bias] times [h, 1] (the
  candidate needs U_n h on its own, to scale it by r);
* GRU, reset before: [W | U | b] of blocks z, r times [x, h, 1], then [W_n | U_n | b_n]
  times [x, r * h, 1];
* LSTM with a projection: the LSTM matrix, then [projection | 0] times [m, 1], m the H
  values o * act(c) (the 0 column keeps the vector's norm >= 1, see `_matvec`).

A Bidirectional layer is its two recurrent layers (the backward one reading the sequence
from its last row to its first) and a merge of their outputs.

The sequence-shaping layers:

* Masking (first layer only): predict() computes one flag per timestep (some feature
  differs from MASK_VALUE) and hands it to every recurrent layer, which skips a masked
  step (state unchanged, the previous output repeated; zeros before any real step).
  Stream.step() of a masked row returns the previous output and changes no state.
* Normalize and LayerNorm: per-vector functions, their float32 vectors parsed from
  strings like the matrices' (`_vector`).
* Conv1D: one matrix of F rows [W[f] flattened (K x D), bias[f]] times the window
  [x[t0], x[t0 + dilation], ..., 1.0]; the padding (valid, same, causal) is computed
  from the sequence length at run time, zero rows outside the sequence.
* Pool1D: max or mean over the rows of each window that exist (padding never counts).
* Flatten: the rows joined, timestep-major; the module then takes exactly the model's T.

Conv1D and Pool1D change the number of timesteps; an input too short to give one output
step is refused with a ValueError naming MIN_TIMESTEPS. Models with Conv1D, Pool1D or
Flatten have no Stream class.

The matrix-vector product picks its kernel at import time: on CPython (which has
`math.dist`) the rows are stored as unit vectors and each dot product is one C-level
`math.dist` call (see the generated `_matvec`); MicroPython keeps the float32 rows (4 bytes
a weight) and runs a plain loop.
"""

from __future__ import annotations

import re
import textwrap
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
from ...literals import float_literal
from ...naming import unique_identifiers, validate_model_name
from ..common import banner_facts, display_text, render_template

OPTIONS: tuple[str, ...] = ()
#: Layer kinds (see lstmgen.ir) this backend implements.
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
#: Optional IR features (see lstmgen.ir) this backend implements.
FEATURES: frozenset[str] = frozenset(
    {"peephole", "clip", "input_forget", "initial_state", "projection"}
)

#: Bytes a weight takes after import. CPython: a float object (24) and a tuple slot (8).
#: MicroPython: the literal text, which it keeps with the module's constants (~11-12 with
#: the string objects), and the float32 array (4). Measured with gc.mem_alloc().
CPYTHON_BYTES_PER_WEIGHT = 32
MICROPYTHON_BYTES_PER_WEIGHT = 16.5
#: The largest model measured to import and run in MicroPython's default 2 MB heap
#: (15 -> LSTM(140) -> Dense(5)); the heap fragments before it fills.
MICROPYTHON_DEFAULT_HEAP_WEIGHTS = 88_000

#: Literals per line in the weight strings, and lines per string object: adjacent string
#: literals join at compile time, so one string holds 240 values. Fewer, larger string
#: objects leave MicroPython's heap less fragmented than one string per line; much larger
#: ones need too much contiguous memory while MicroPython compiles them.
PER_LINE = 6
LINES_PER_STRING = 40

#: Each elementwise activation as a Python expression of the variable `{v}` (a plain name),
#: exactly the definitions of `lstmgen.reference.activate`, and the math names it needs.
#: The frequent, short ones are inline (no function call per element); the others call a
#: helper function that the module defines (the template's "activations" section).
EXPRESSIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "linear": ("{v}", ()),
    "relu": ("({v} if {v} > 0.0 else 0.0)", ()),
    # the overflow-free logistic: never calls exp, so sigmoid(-1000.0) is 0.0
    "sigmoid": ("(0.5 * (1.0 + tanh(0.5 * {v})))", ("tanh",)),
    "tanh": ("tanh({v})", ("tanh",)),
    "softsign": ("({v} / (1.0 + abs({v})))", ()),
    "softplus": ("_softplus({v})", ("exp", "log1p")),
    "elu": ("_elu({v})", ("expm1",)),
    "hard_sigmoid_keras3": ("_hard_sigmoid_keras3({v})", ()),
    "hard_sigmoid_0.2": ("_hard_sigmoid_0_2({v})", ()),
}


def expression(activation: str, var: str) -> str:
    """`activation` applied to the variable `var`, as Python source (safe as an operand)."""
    return EXPRESSIONS[activation][0].format(v=var)


def apply(activation: str, operand: str) -> str:
    """`activation` applied to the Python expression `operand` (safe as an operand).

    A plain name goes in as it is (as in `expression`), a call's argument needs no
    parentheses, anything else gets them (relu then evaluates `operand` twice: cheap
    arithmetic, and it keeps relu inline).
    """
    template = EXPRESSIONS[activation][0]
    if operand.isidentifier() or re.fullmatch(r"[A-Za-z_]\w*\(\{v\}\)", template):
        return template.format(v=operand)
    return template.format(v=f"({operand})")


def _needs(activation: str) -> tuple[str, ...]:
    if activation == "softmax":
        return ("exp",)
    return EXPRESSIONS[activation][1]


def weight_source(values: np.ndarray | None) -> list[str] | None:
    """Source lines holding a float32 array, flattened row-major, as exact literals.

    PER_LINE literals a line; a string of LINES_PER_STRING adjacent literals (each line
    but the string's last ends with a space inside its quotes), then a comma.
    """
    if values is None:
        return None
    texts = [float_literal(v) for v in np.asarray(values, np.float32).ravel()]
    lines = [" ".join(texts[k : k + PER_LINE]) for k in range(0, len(texts), PER_LINE)]
    source = []
    for k, line in enumerate(lines):
        ends_string = k % LINES_PER_STRING == LINES_PER_STRING - 1 or k == len(lines) - 1
        source.append(f'"{line}",' if ends_string else f'"{line} "')
    return source


def comment_text(text: str) -> str:
    """`text` on one line of printable ASCII (safe in a # comment)."""
    return display_text(text)


def doc_text(text: str) -> str:
    """`text` on one line, safe inside a docstring (backslashes and quotes escaped)."""
    return comment_text(text).replace("\\", "\\\\").replace('"', '\\"')


def _part(width: int, values: np.ndarray | None, comment: str) -> dict:
    return {"width": width, "source": weight_source(values), "comment": comment}


def _bias_part(values: np.ndarray | None, rows: int, what: str = "bias") -> dict:
    return _part(
        1,
        values,
        f"{what} [{rows}]" if values is not None else f"no {what}: a zero column [{rows}]",
    )


def _matrix(name: str, rows: int, parts: list[dict], comment: str) -> dict:
    """A weight matrix of the generated module: `name = _matrix(rows, parts)`."""
    return {"name": name, "rows": rows, "parts": parts, "comment": comment}


def _blocks(units: int, count: int) -> list[str]:
    """Slices of the row blocks (gates) of `units` rows each, as source text."""
    return [f"{k * units}:{(k + 1) * units}" for k in range(count)]


#: Elementwise merges of a Bidirectional layer's two outputs u, v (concat joins lists).
MERGES: dict[str, str | None] = {
    "concat": None,
    "sum": "u + v",
    "mul": "u * v",
    "ave": "(u + v) / 2.0",
}
KIND_TITLES = {"lstm": "LSTM", "gru": "GRU", "simple_rnn": "SimpleRNN"}


def _layer_context(layer: Any, ident: str, inner: tuple[str, str] = ("", "")) -> dict:
    """Template facts of one layer; `inner`: the identifiers of a Bidirectional's two
    recurrent layers.

    Module-level names: a layer's (first) matrix is `_IDENT`; anything else it owns is
    `_IDENT__SUFFIX`, SUFFIX starting with a letter. A sanitised identifier never holds
    `__` followed by a letter (`lstmgen.naming`), so no name of one layer can be a name
    of another.
    """
    upper = f"_{ident.upper()}"
    ctx: dict[str, Any] = {
        "kind": layer.kind,
        "ident": ident,
        "name": layer.name,
        "name_doc": doc_text(layer.name),
        "name_comment": comment_text(layer.name),
        "matrix": upper,
        "summary": "",
        "details": "",
        "input_size": layer.input_size,
        "output_size": layer.output_size,
        "matrices": [],
        "h0": None,
        "projection": None,
    }
    if layer.kind in KIND_TITLES:
        h = layer.units
        ctx.update(
            units=h,
            go_backwards=layer.go_backwards,
            return_sequences=layer.return_sequences,
            summary=f"{KIND_TITLES[layer.kind]} {layer.input_size} -> {h}",
        )
    named = f'Layer "{ctx["name_comment"]}"'
    if isinstance(layer, LSTM):
        gate, cell, out = layer.gate_activation, layer.cell_activation, layer.output_activation
        p = layer.output_size
        ctx.update(
            rows=4 * h,
            blocks=_blocks(h, 4),
            parts=[
                _part(
                    layer.input_size,
                    layer.input_weights,
                    f"input weights [{4 * h}][{layer.input_size}]",
                ),
                _part(p, layer.recurrent_weights, f"recurrent weights [{4 * h}][{p}]"),
                _bias_part(layer.bias, 4 * h),
            ],
            formula_c=f"c = {gate}(f) * c + {gate}(i) * {cell}(g)",
            formula_h=f"h = {gate}(o) * {out}(c)",
            forget_term=f"{expression(gate, 'zf')} * cj",
            input_term=f"{expression(gate, 'zi')} * {expression(cell, 'zg')}",
            h_update=f"{expression(gate, 'zo')} * {expression(out, 'cj')}",
            details=f"gate {gate}, cell {cell}, output {out}",
        )
        ctx["matrices"].append(_matrix(upper, 4 * h, ctx["parts"], f"{named} ({ctx['summary']})"))
        if layer.projection is not None:
            ctx["summary"] += f", projected to {p}"
            ctx["formula_h"] = f"h = projection @ ({gate}(o) * {out}(c))"
            ctx["projection"] = f"{upper}__PROJ"
            ctx["matrices"].append(
                _matrix(
                    ctx["projection"],
                    p,
                    [
                        _part(h, layer.projection, f"projection [{p}][{h}]"),
                        _part(1, None, f"a zero column [{p}] (for the 1.0 appended to h)"),
                    ],
                    f"{named}: its projection",
                )
            )
        ctx.update(_lstm_features(layer, upper))
    elif isinstance(layer, GRU):
        gate, cell = layer.gate_activation, layer.cell_activation
        d = layer.input_size
        w, u, b = layer.input_weights, layer.recurrent_weights, layer.bias
        ctx.update(
            rows=3 * h,
            blocks=_blocks(h, 3),
            reset_after=layer.reset_after,
            details=f"gate {gate}, cell {cell}",
            gate=gate,
            cell=cell,
        )
        if layer.reset_after:
            ctx["summary"] += ", reset after"
            ctx["second"] = f"{upper}__R"
            ctx["matrices"] += [
                _matrix(
                    upper,
                    3 * h,
                    [_part(d, w, f"input weights [{3 * h}][{d}]"), _bias_part(b, 3 * h)],
                    f"{named} ({ctx['summary']}): W x + b, blocks z, r, n",
                ),
                _matrix(
                    ctx["second"],
                    3 * h,
                    [
                        _part(h, u, f"recurrent weights [{3 * h}][{h}]"),
                        _bias_part(layer.recurrent_bias, 3 * h, "recurrent bias"),
                    ],
                    f"{named}: U h + recurrent bias, blocks z, r, n",
                ),
            ]
            ctx.update(
                z_expr=apply(gate, "az + uz"),
                r_expr=apply(gate, "ar + ur"),
                n_expr=apply(cell, "an + r * un"),
            )
        else:
            ctx["summary"] += ", reset before"
            ctx["second"] = f"{upper}__N"
            cut = 2 * h
            ctx["matrices"] += [
                _matrix(
                    upper,
                    2 * h,
                    [
                        _part(d, w[:cut], f"input weights, blocks z, r [{2 * h}][{d}]"),
                        _part(h, u[:cut], f"recurrent weights, blocks z, r [{2 * h}][{h}]"),
                        _bias_part(None if b is None else b[:cut], 2 * h),
                    ],
                    f"{named} ({ctx['summary']}): W x + U h + b, blocks z, r",
                ),
                _matrix(
                    ctx["second"],
                    h,
                    [
                        _part(d, w[cut:], f"input weights, block n [{h}][{d}]"),
                        _part(h, u[cut:], f"recurrent weights, block n [{h}][{h}]"),
                        _bias_part(None if b is None else b[cut:], h),
                    ],
                    f"{named}: W_n x + U_n (r * h) + b_n, block n",
                ),
            ]
            ctx.update(
                z_expr=expression(gate, "az"),
                r_expr=expression(gate, "ar"),
                n_expr=expression(cell, "an"),
            )
    elif isinstance(layer, SimpleRNN):
        d = layer.input_size
        ctx.update(
            rows=h,
            activation=layer.activation,
            details=layer.activation,
            expr=None if layer.activation == "linear" else expression(layer.activation, "v"),
        )
        ctx["matrices"].append(
            _matrix(
                upper,
                h,
                [
                    _part(d, layer.input_weights, f"input weights [{h}][{d}]"),
                    _part(h, layer.recurrent_weights, f"recurrent weights [{h}][{h}]"),
                    _bias_part(layer.bias, h),
                ],
                f"{named} ({ctx['summary']}, {layer.activation})",
            )
        )
    elif isinstance(layer, Bidirectional):
        forward = _layer_context(layer.forward, inner[0])
        backward = _layer_context(layer.backward, inner[1])
        ctx.update(
            forward=forward,
            backward=backward,
            merge_mode=layer.merge_mode,
            merge=MERGES[layer.merge_mode],
            return_sequences=layer.return_sequences,
            units=layer.forward.output_size,
            summary=f"Bidirectional {KIND_TITLES[layer.forward.kind]} "
            f"{layer.input_size} -> {layer.output_size}, "
            f"merge {layer.merge_mode}",
        )
    elif isinstance(layer, Dense):
        o, i = layer.output_size, layer.input_size
        ctx.update(
            rows=o,
            activation=layer.activation,
            expr=None
            if layer.activation in ("linear", "softmax")
            else expression(layer.activation, "v"),
            parts=[_part(i, layer.weights, f"weights [{o}][{i}]"), _bias_part(layer.bias, o)],
            summary=f"Dense {i} -> {o}, {layer.activation}",
        )
        ctx["matrices"].append(_matrix(upper, o, ctx["parts"], f"{named} ({ctx['summary']})"))
    elif isinstance(layer, Activation):
        ctx.update(
            activation=layer.activation,
            expr=None
            if layer.activation in ("linear", "softmax")
            else expression(layer.activation, "v"),
            summary=f"Activation {layer.activation} over {layer.size}",
        )
    else:
        ctx.update(_shaping_context(layer, upper, named))
    return ctx


def _vector(name: str, values: np.ndarray, comment: str) -> dict:
    """A float32 vector of the generated module: `name = _vector(strings)`."""
    return {"name": name, "vector": True, "source": weight_source(values), "comment": comment}


def _windows_code(padding: str, span: int, stride: int) -> list[str]:
    """Source lines setting `pad` (rows of padding before the sequence) and `t_out` (output
    steps) from `t_len`: `lstmgen.ir.window_padding` written out for one layer."""
    if padding == "valid":
        return [
            "# valid padding: none; an output step for every full window",
            "pad = 0",
            f"t_out = max(0, (t_len - {span}) // {stride} + 1)",
        ]
    if padding == "causal":
        return [
            f"# causal padding: {span - 1} zero row(s) before the sequence",
            f"pad = {span - 1}",
            f"t_out = (t_len - 1) // {stride} + 1",
        ]
    return [
        "# same padding (TensorFlow's rule): ceil(T / stride) output steps, the left",
        "# padding half the total (rounded down)",
        f"t_out = -(-t_len // {stride})",
        f"pad = max((t_out - 1) * {stride} + {span} - t_len, 0) // 2",
    ]


def _shaping_context(layer: Any, upper: str, named: str) -> dict[str, Any]:
    """Template facts of a Masking, Normalize, LayerNorm, Flatten, Conv1D or Pool1D layer."""
    if isinstance(layer, Masking):
        return {
            "mask_value": repr(float(layer.mask_value)),
            "summary": f"Masking over {layer.size}, mask_value {float(layer.mask_value)!r}",
        }
    if isinstance(layer, Normalize):
        d = layer.input_size
        return {
            "mean": f"{upper}__MEAN",
            "std": f"{upper}__STD",
            "summary": f"Normalize (x - mean) / std over {d}",
            "vectors": [
                _vector(f"{upper}__MEAN", layer.mean, f"{named}: mean [{d}]"),
                _vector(f"{upper}__STD", layer.std, f"{named}: std [{d}]"),
            ],
        }
    if isinstance(layer, LayerNorm):
        eps = repr(float(layer.epsilon))
        ctx: dict[str, Any] = {
            "epsilon": eps,
            "gamma": None,
            "beta": None,
            "vectors": [],
            "summary": f"LayerNorm over {layer.size}, epsilon {eps}",
        }
        for what in ("gamma", "beta"):
            if getattr(layer, what) is not None:
                ctx[what] = f"{upper}__{what.upper()}"
                ctx["vectors"].append(
                    _vector(ctx[what], getattr(layer, what), f"{named}: {what} [{layer.size}]")
                )
        ctx["formula_doc"] = (
            "(x - mean(x)) / sqrt(var(x) + epsilon)"
            + (" * gamma" if ctx["gamma"] else "")
            + (" + beta" if ctx["beta"] else "")
        )
        return ctx
    if isinstance(layer, Flatten):
        return {
            "timesteps": layer.timesteps,
            "summary": f"Flatten [{layer.timesteps}][{layer.size}] -> {layer.output_size}",
        }
    if isinstance(layer, Conv1D):
        f, k, d = layer.weights.shape
        span = layer.dilation * (k - 1) + 1
        ctx = {
            "rows": f,
            "kernel": k,
            "span": span,
            "stride": layer.stride,
            "dilation": layer.dilation,
            "padding": layer.padding,
            "activation": layer.activation,
            "windows": _windows_code(layer.padding, span, layer.stride),
            "expr": None if layer.activation == "linear" else expression(layer.activation, "v"),
            "summary": f"Conv1D {d} -> {f}, kernel {k}, stride {layer.stride}, "
            f"dilation {layer.dilation}, {layer.padding} padding, "
            f"{layer.activation}",
        }
        ctx["matrices"] = [
            _matrix(
                upper,
                f,
                [
                    _part(
                        k * d,
                        layer.weights.reshape(f, k * d),
                        f"weights [{f}][{k}][{d}]: filter f, then tap k, then input feature",
                    ),
                    _bias_part(layer.bias, f),
                ],
                f"{named} ({ctx['summary']})",
            )
        ]
        return ctx
    if isinstance(layer, Pool1D):
        title = f"{layer.pool_type.capitalize()}Pool1D"
        return {
            "pool_type": layer.pool_type,
            "pool_size": layer.pool_size,
            "stride": layer.stride,
            "padding": layer.padding,
            "windows": _windows_code(layer.padding, layer.pool_size, layer.stride),
            "summary": f"{title} size {layer.pool_size}, stride {layer.stride}, "
            f"{layer.padding} padding, over {layer.size}",
        }
    raise LstmgenError(f"target 'python' does not implement {layer.kind} layers")


def _literals(values: np.ndarray | None) -> str | None:
    """A float32 vector as `array('f', (...))`: exactly the float32 values."""
    if values is None:
        return None
    return "array('f', (" + ", ".join(float_literal(v) for v in values) + ",))"


def _lstm_features(layer: LSTM, upper: str) -> dict[str, Any]:
    """Template facts for the general LSTM step (peephole, clip, input_forget, h0/c0)."""
    gate, cell, out = layer.gate_activation, layer.cell_activation, layer.output_activation
    peephole = layer.peephole
    clip = None if layer.clip is None else repr(float(layer.clip))  # exact as a double

    def pre(expr: str) -> list[str]:
        """`a` = a gate's pre-activation, clipped when the layer clips."""
        lines = [f"a = {expr}"]
        if clip is not None:
            lines.append(f"a = min(max(a, -{clip}), {clip})")
        return lines

    body = pre("zi + pi * cj" if peephole is not None else "zi")
    body.append(f"i = {expression(gate, 'a')}")
    if layer.input_forget:
        body.append("f = 1.0 - i")
    else:
        body += pre("zf + pf * cj" if peephole is not None else "zf")
        body.append(f"f = {expression(gate, 'a')}")
    body += pre("zg")
    body.append(f"cj = f * cj + i * {expression(cell, 'a')}")
    body += pre("zo + po * cj" if peephole is not None else "zo")
    body.append(f"h_new.append({expression(gate, 'a')} * {expression(out, 'cj')})")
    h0 = c0 = None
    if "initial_state" in layer.features():
        h0 = (
            _literals(layer.initial_h)
            if layer.initial_h is not None
            else f"[0.0] * {layer.output_size}"
        )
        c0 = _literals(layer.initial_c) if layer.initial_c is not None else f"[0.0] * {layer.units}"
    return {
        "general": bool(layer.features() - {"initial_state", "projection"}),
        "body": body,
        "peephole": None if peephole is None else [_literals(row) for row in peephole],
        "peephole_names": [f"{upper}__PEEP_{g}" for g in "IFO"],
        "clip": clip,
        "input_forget": layer.input_forget,
        "h0": h0,
        "c0": c0,
        "h0_name": f"{upper}__H0",
        "c0_name": f"{upper}__C0",
    }


def _activations(layer: Any) -> set[str]:
    """The activation names `layer` uses (a Bidirectional's: its inner layers')."""
    if isinstance(layer, Bidirectional):
        return _activations(layer.forward) | _activations(layer.backward)
    if isinstance(layer, LSTM):
        return {layer.gate_activation, layer.cell_activation, layer.output_activation}
    if isinstance(layer, GRU):
        return {layer.gate_activation, layer.cell_activation}
    if isinstance(layer, (Dense, Activation, SimpleRNN, Conv1D)):
        return {layer.activation}
    return set()


def _identifiers(model: Model) -> tuple[list[str], list[tuple[str, str]]]:
    """Identifiers of the layers, and of each Bidirectional's forward and backward layer.

    The inner layers are named after all top-level layers, so that the top-level
    identifiers do not depend on whether a model has a Bidirectional layer.
    """
    names = [l.name for l in model.layers]
    bidirectional = [l for l in model.layers if isinstance(l, Bidirectional)]
    for layer in bidirectional:
        names += [layer.forward.name, layer.backward.name]
    idents = unique_identifiers(names)
    top, rest = idents[: len(model.layers)], idents[len(model.layers) :]
    inner = []
    for layer in model.layers:
        if isinstance(layer, Bidirectional):
            inner.append((rest[0], rest[1]))
            rest = rest[2:]
        else:
            inner.append(("", ""))
    return top, inner


def render_context(model: Model, name: str) -> dict[str, Any]:
    """Everything the template needs (also used by tests to find the generated names)."""
    validate_model_name(name)
    model.validate()
    idents, inner = _identifiers(model)
    layers = [_layer_context(l, i, n) for l, i, n in zip(model.layers, idents, inner)]
    math_names: set[str] = set()
    used: set[str] = set()
    for layer in model.layers:
        used |= _activations(layer)
    for act in used:
        math_names.update(_needs(act))
    if "layer_norm" in model.kinds():
        math_names.add("sqrt")
    # Which layers see (and return) a sequence of rows rather than one vector.
    n_seq = model.sequence_layer_count()
    for k, ctx in enumerate(layers):
        ctx["sees_sequence"] = k < n_seq
    matrices = []
    for ctx in layers:
        for part in (ctx["forward"], ctx["backward"]) if ctx["kind"] == "bidirectional" else (ctx,):
            matrices += part["matrices"]
        matrices += ctx.get("vectors", [])
    kinds = model.kinds()
    facts = banner_facts(model)
    for key in ("source", "model_name"):
        facts[key] = doc_text(facts[key])
    for key in ("layer_lines", "notes"):
        facts[key] = [doc_text(line) for line in facts[key]]
    return {
        **facts,
        "name": name,
        "layers": layers,
        "title": "/".join(title for kind, title in KIND_TITLES.items() if kind in kinds),
        "state_layers": [c for c in layers if c["kind"] in KIND_TITLES],
        "matrix_layers": [c for c in layers if c["kind"] in ("lstm", "dense")],
        "matrices": matrices,
        "returns_sequences": model.returns_sequences,
        "streamable": model.streamable,
        "has_go_backwards": any(l.recurrent and l.go_backwards for l in model.layers),
        "has_bidirectional": "bidirectional" in kinds,
        "has_two_matrices": "gru" in kinds or "projection" in model.features(),
        "input_size": model.input_size,
        "output_size": model.output_size,
        "math_names": sorted(math_names - {"log1p", "expm1"}),
        "uses_log1p": "log1p" in math_names,
        "uses_expm1": "expm1" in math_names,
        "helpers": sorted(
            a for a in used if a in EXPRESSIONS and EXPRESSIONS[a][0].startswith("_")
        ),
        "uses_softmax": "softmax" in used,
        "per_line": PER_LINE,
        "lines_per_string": LINES_PER_STRING,
        "has_vectors": any(ctx.get("vectors") for ctx in layers),
        "kinds": sorted(kinds),
        **_shaping_facts(model, layers),
    }


def min_timesteps(model: Model) -> int:
    """The fewest input timesteps for which the model's Conv1D/Pool1D layers leave at
    least one step (1 without such layers)."""
    t_len = 1
    while model.output_timesteps(t_len) < 1:
        t_len += 1
    return t_len


def _timesteps_doc(model: Model) -> list[str]:
    """How each Conv1D/Pool1D layer changes the number of timesteps, one line each."""
    lines = []
    for layer in model.layers:
        if layer.kind not in ("conv1d", "pool1d"):
            continue
        if layer.kind == "conv1d":
            span = layer.dilation * (layer.kernel_size - 1) + 1
            what = f'Conv1D "{doc_text(layer.name)}" (window of {span} steps)'
        else:
            span = layer.pool_size
            what = f'{layer.pool_type.capitalize()}Pool1D "{doc_text(layer.name)}"'
        rule = {
            "valid": f"max(0, (T - {span}) // {layer.stride} + 1)",
            "same": f"ceil(T / {layer.stride})",
            "causal": f"ceil(T / {layer.stride})",
        }[layer.padding]
        lines.append(f"{what}, {layer.padding} padding: T -> {rule}")
    return lines


def _shaping_facts(model: Model, layers: list[dict]) -> dict[str, Any]:
    """Template facts of the model's sequence-shaping layers as a whole."""
    kinds = model.kinds()
    facts: dict[str, Any] = {
        "has_masking": "masking" in kinds,
        "mask_value": None,
        "mask_tail": [],
        "mask_zeros": 0,
        "min_timesteps": 1,
        "fixed_timesteps": None,
        "timesteps_doc": _timesteps_doc(model),
        "no_stream_lines": None,
    }
    if facts["has_masking"]:
        facts["mask_value"] = layers[0]["mask_value"]
        last = max(k for k, l in enumerate(model.layers) if l.recurrent)
        facts["mask_tail"] = layers[last + 1 :]
        facts["mask_zeros"] = model.layers[last].output_size
    if kinds & {"conv1d", "pool1d"}:
        facts["min_timesteps"] = min_timesteps(model)
    if "flatten" in kinds:
        facts["fixed_timesteps"] = model.timesteps
    if not model.streamable and kinds & {"conv1d", "pool1d", "flatten"}:
        reasons = []
        if kinds >= {"conv1d", "pool1d"}:
            reasons.append("Conv1D and pooling layers need a window of timesteps for each output")
        elif kinds & {"conv1d", "pool1d"}:
            reasons.append(
                f"a {'Conv1D' if 'conv1d' in kinds else 'pooling'} layer needs a "
                "window of timesteps for each output"
            )
        if "flatten" in kinds:
            reasons.append("Flatten needs the whole sequence")
        if any(l.recurrent and l.go_backwards for l in model.layers):
            reasons.append(
                "a go_backwards layer reads the sequence from its last timestep to its first"
            )
        if "bidirectional" in kinds:
            reasons.append(
                "the backward half of a Bidirectional layer reads the sequence "
                "from its last timestep to its first"
            )
        facts["no_stream_lines"] = textwrap.wrap(
            "There is no streaming class: " + "; ".join(reasons) + "; so no output exists "
            "before the whole sequence is known.",
            88,
        )
    return facts


def render(model: Model, name: str, **options: Any) -> dict[str, str]:
    validate_model_name(name)
    model.validate()
    if options:
        raise LstmgenError(
            f"option '{sorted(options)[0]}' does not apply to target 'python'; it takes no options"
        )
    for layer in model.layers:
        kinds = {layer.kind} | ({layer.forward.kind} if isinstance(layer, Bidirectional) else set())
        if kinds - LAYERS:
            raise LstmgenError(
                f"target 'python' does not implement {sorted(kinds - LAYERS)[0]} "
                f"layers (layer '{layer.name}')"
            )
        used = sorted(getattr(layer, "features", set)() - FEATURES)
        if used:
            raise LstmgenError(
                f"target 'python' does not implement LSTM {used[0]} (used by layer '{layer.name}')"
            )
    context = render_context(model, name)
    return {f"{name}.py": render_template("python/model.py.j2", **context)}


def memory_report(model: Model, **options: Any) -> str:
    """What the generated module holds in memory (for `lstmgen inspect --target python`)."""
    n = model.parameter_count()
    micro = n * MICROPYTHON_BYTES_PER_WEIGHT
    fits = (
        "fits MicroPython's default 2 MB heap"
        if n <= MICROPYTHON_DEFAULT_HEAP_WEIGHTS
        else "needs a MicroPython heap larger than the default 2 MB "
        f"(micropython -X heapsize={max(4, int(micro * 2.5 / 2**20) + 1)}M)"
    )
    return (
        f"target python: {n} weights\n"
        f"  CPython: about {n * CPYTHON_BYTES_PER_WEIGHT / 1024:.0f} KiB after import "
        f"({CPYTHON_BYTES_PER_WEIGHT} bytes a weight: float objects in tuples)\n"
        f"  MicroPython: about {micro / 1024:.0f} KiB of heap after import "
        f"({MICROPYTHON_BYTES_PER_WEIGHT:g} bytes a weight: literal text + float32 "
        f"arrays);\n  {fits}"
    )
