"""Pure-Python backend: one module `NAME.py` for CPython >= 3.8 and MicroPython.

The module imports only `math` and `array`. Weights are written as exact float32 literals
(`lstmgen.literals.float_literal`), flattened row-major, six to a line, inside string
literals that the module parses at import time into float32 `array('f')` rows. A module of
tens of thousands of bare float literals does not compile within MicroPython's default
heap (each literal becomes a parse node and a boxed float); strings do. (MicroPython keeps
a module's constants, these strings included, for as long as the module lives: about 11
bytes a weight on top of the 4 of the arrays. Models up to ~88k weights fit its default
2 MB heap.)

Each LSTM (and Dense) layer becomes one matrix whose row r joins input weights row r,
recurrent weights row r and the bias b[r], so that one matrix-vector product with
[x, h, 1] gives all 4H pre-activations z (gate blocks i, f, g, o as in the IR). The gate
math is rendered per layer with its activations spelled out: sigmoid, tanh, relu, softsign
and linear as inline expressions (no function call per element), the others as calls of
small helper functions.

The matrix-vector product picks its kernel at import time: on CPython (which has
`math.dist`) the rows are stored as unit vectors and each dot product is one C-level
`math.dist` call (see the generated `_matvec`); MicroPython keeps the float32 rows (4 bytes
a weight) and runs a plain loop.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..errors import LstmgenError
from ..ir import LSTM, Activation, Dense, Model
from ..literals import float_literal
from ..naming import unique_identifiers, validate_model_name
from .common import banner_facts, display_text, render_template

OPTIONS: tuple[str, ...] = ()
#: Optional IR features (see lstmgen.ir) this backend implements.
FEATURES: frozenset[str] = frozenset({"peephole", "clip", "input_forget", "initial_state"})

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


def _needs(activation: str) -> tuple[str, ...]:
    if activation == "softmax":
        return ("exp",)
    return EXPRESSIONS[activation][1]


def weight_source(values: Optional[np.ndarray]) -> Optional[list[str]]:
    """Source lines holding a float32 array, flattened row-major, as exact literals.

    PER_LINE literals a line; a string of LINES_PER_STRING adjacent literals (each line
    but the string's last ends with a space inside its quotes), then a comma.
    """
    if values is None:
        return None
    texts = [float_literal(v) for v in np.asarray(values, np.float32).ravel()]
    lines = [" ".join(texts[k:k + PER_LINE]) for k in range(0, len(texts), PER_LINE)]
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


def _part(width: int, values: Optional[np.ndarray], comment: str) -> dict:
    return {"width": width, "source": weight_source(values), "comment": comment}


def _layer_context(layer: Any, ident: str) -> dict:
    ctx: dict[str, Any] = {"kind": layer.kind, "ident": ident, "name": layer.name,
                           "name_doc": doc_text(layer.name),
                           "name_comment": comment_text(layer.name),
                           "matrix": f"_{ident.upper()}", "summary": "", "details": "",
                           "input_size": layer.input_size, "output_size": layer.output_size}
    if isinstance(layer, LSTM):
        h = layer.units
        gate, cell, out = layer.gate_activation, layer.cell_activation, layer.output_activation
        ctx.update(
            units=h, rows=4 * h, go_backwards=layer.go_backwards,
            return_sequences=layer.return_sequences,
            blocks=[f"{k * h}:{(k + 1) * h}" for k in range(4)],
            parts=[_part(layer.input_size, layer.input_weights,
                         f"input weights [{4 * h}][{layer.input_size}]"),
                   _part(h, layer.recurrent_weights, f"recurrent weights [{4 * h}][{h}]"),
                   _part(1, layer.bias, f"bias [{4 * h}]" if layer.bias is not None
                         else f"no bias: a zero column [{4 * h}]")],
            formula_c=f"c = {gate}(f) * c + {gate}(i) * {cell}(g)",
            formula_h=f"h = {gate}(o) * {out}(c)",
            forget_term=f"{expression(gate, 'zf')} * cj",
            input_term=f"{expression(gate, 'zi')} * {expression(cell, 'zg')}",
            h_update=f"{expression(gate, 'zo')} * {expression(out, 'cj')}",
            summary=f"LSTM {layer.input_size} -> {h}",
            details=f"gate {gate}, cell {cell}, output {out}")
        ctx.update(_lstm_features(layer))
    elif isinstance(layer, Dense):
        o, i = layer.output_size, layer.input_size
        ctx.update(
            rows=o, activation=layer.activation,
            expr=None if layer.activation in ("linear", "softmax")
            else expression(layer.activation, "v"),
            parts=[_part(i, layer.weights, f"weights [{o}][{i}]"),
                   _part(1, layer.bias, f"bias [{o}]" if layer.bias is not None
                         else f"no bias: a zero column [{o}]")],
            summary=f"Dense {i} -> {o}, {layer.activation}")
    elif isinstance(layer, Activation):
        ctx.update(activation=layer.activation,
                   expr=None if layer.activation in ("linear", "softmax")
                   else expression(layer.activation, "v"),
                   summary=f"Activation {layer.activation} over {layer.size}")
    return ctx


def _literals(values: Optional[np.ndarray]) -> Optional[str]:
    """A float32 vector as `array('f', (...))`: exactly the float32 values."""
    if values is None:
        return None
    return "array('f', (" + ", ".join(float_literal(v) for v in values) + ",))"


def _lstm_features(layer: LSTM) -> dict[str, Any]:
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
    return {
        "general": bool(layer.features() - {"initial_state"}), "body": body,
        "peephole": None if peephole is None else [_literals(row) for row in peephole],
        "clip": clip,
        "input_forget": layer.input_forget,
        "h0": _literals(layer.initial_h), "c0": _literals(layer.initial_c),
    }


def render_context(model: Model, name: str) -> dict[str, Any]:
    """Everything the template needs (also used by tests to find the generated names)."""
    validate_model_name(name)
    model.validate()
    idents = unique_identifiers([l.name for l in model.layers])
    layers = [_layer_context(l, i) for l, i in zip(model.layers, idents)]
    math_names: set[str] = set()
    used: set[str] = set()
    for layer in model.layers:
        if isinstance(layer, LSTM):
            used.update((layer.gate_activation, layer.cell_activation, layer.output_activation))
        else:
            used.add(layer.activation)
    for act in used:
        math_names.update(_needs(act))
    # Which layers see (and return) a sequence of rows rather than one vector.
    n_seq = model.sequence_layer_count()
    for k, ctx in enumerate(layers):
        ctx["sees_sequence"] = k < n_seq
    facts = banner_facts(model)
    for key in ("source", "model_name"):
        facts[key] = doc_text(facts[key])
    for key in ("layer_lines", "notes"):
        facts[key] = [doc_text(line) for line in facts[key]]
    return {
        **facts,
        "name": name, "layers": layers,
        "lstm_layers": [c for c in layers if c["kind"] == "lstm"],
        "matrix_layers": [c for c in layers if c["kind"] in ("lstm", "dense")],
        "returns_sequences": model.returns_sequences, "streamable": model.streamable,
        "input_size": model.input_size, "output_size": model.output_size,
        "math_names": sorted(math_names - {"log1p", "expm1"}),
        "uses_log1p": "log1p" in math_names, "uses_expm1": "expm1" in math_names,
        "helpers": sorted(a for a in used
                          if a in EXPRESSIONS and EXPRESSIONS[a][0].startswith("_")),
        "uses_softmax": "softmax" in used,
        "per_line": PER_LINE, "lines_per_string": LINES_PER_STRING,
    }


def render(model: Model, name: str, **options: Any) -> dict[str, str]:
    validate_model_name(name)
    model.validate()
    if options:
        raise LstmgenError(f"option '{sorted(options)[0]}' does not apply to target 'python'; "
                           "it takes no options")
    for layer in model.layers:
        used = sorted(getattr(layer, "features", set)() - FEATURES)
        if used:
            raise LstmgenError(f"target 'python' does not implement LSTM {used[0]} (used by "
                               f"layer '{layer.name}')")
    context = render_context(model, name)
    return {f"{name}.py": render_template("python/model.py.j2", **context)}


def memory_report(model: Model, **options: Any) -> str:
    """What the generated module holds in memory (for `lstmgen inspect --target python`)."""
    n = model.parameter_count()
    micro = n * MICROPYTHON_BYTES_PER_WEIGHT
    fits = ("fits MicroPython's default 2 MB heap" if n <= MICROPYTHON_DEFAULT_HEAP_WEIGHTS
            else "needs a MicroPython heap larger than the default 2 MB "
                 f"(micropython -X heapsize={max(4, int(micro * 2.5 / 2**20) + 1)}M)")
    return (f"target python: {n} weights\n"
            f"  CPython: about {n * CPYTHON_BYTES_PER_WEIGHT / 1024:.0f} KiB after import "
            f"({CPYTHON_BYTES_PER_WEIGHT} bytes a weight: float objects in tuples)\n"
            f"  MicroPython: about {micro / 1024:.0f} KiB of heap after import "
            f"({MICROPYTHON_BYTES_PER_WEIGHT:g} bytes a weight: literal text + float32 "
            f"arrays);\n  {fits}")
