"""MATLAB backend (MATLAB Coder / Simulink): `NAME_predict.m` and `NAME_step.m`.

`NAME_predict(x)` runs a whole sequence, x being D x T (features by time, MATLAB's
`sequenceInputLayer` convention), layer by layer over whole D x T arrays; the output is
O x 1, or O x T when the model returns sequences. `NAME_step(x, reset)` runs one timestep
with the recurrent state in `persistent` variables, for a Simulink MATLAB Function block;
it exists only for streamable models (no go_backwards layer).

Both files use only fixed-size arrays (in predict only T varies), built-in functions that
MATLAB Coder supports, no toolbox and no `coder.*` call, so Octave runs them as they are.

Weights keep the IR's canonical layout as MATLAB matrices: an LSTM's W is 4H x D, U is
4H x H and b is 4H x 1, rows in four gate blocks i, f, g, o; a Dense layer's W is O x I.
Literals are `lstmgen.literals.float_literal` text wrapped in `single([...])`, which reads
back to the model's exact float32 values; with `precision="double"` they are wrapped in
`double(single([...]))`, the same float32 values computed with in double precision.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..errors import LstmgenError
from ..ir import LSTM, Activation, Dense, Model
from ..literals import float_literal
from ..naming import unique_identifiers, validate_model_name
from .common import banner_facts, display_text, render_template

OPTIONS: tuple[str, ...] = ("precision",)
#: Optional IR features (see lstmgen.ir) this backend implements.
FEATURES: frozenset[str] = frozenset({"peephole", "clip", "input_forget", "initial_state"})
PRECISIONS = ("single", "double")
VALUES_PER_LINE = 8
GATE_TITLES = {"i": "i (input gate)", "f": "f (forget gate)", "g": "g (cell candidate)",
               "o": "o (output gate)"}
BYTES = {"single": 4, "double": 8}


def _act_ident(name: str) -> str:
    return "act_" + name.replace(".", "_")


def _row_lines(row: np.ndarray, sep: str = ", ", indent: str = "    ") -> list[str]:
    """One matrix row as literal lines, continued with `...` after VALUES_PER_LINE values."""
    texts = [float_literal(v) for v in row]
    chunks = [sep.join(texts[k:k + VALUES_PER_LINE])
              for k in range(0, len(texts), VALUES_PER_LINE)]
    lines = [indent + chunks[0]]
    for chunk in chunks[1:]:
        lines[-1] += ", ..."
        lines.append(indent + "    " + chunk)
    return lines


def _matrix_lines(values: np.ndarray,
                  groups: Optional[list[tuple[str, int]]] = None) -> list[str]:
    """Bracket body of a 2-D literal: one row per line, optional comment before row groups.

    `groups` is [(comment, first_row), ...] with 0-based first rows.
    """
    starts = dict((first, comment) for comment, first in (groups or []))
    lines: list[str] = []
    for r, row in enumerate(np.asarray(values, np.float32)):
        if r in starts:
            lines.append("    % " + starts[r])
        lines.extend(_row_lines(row))
    return lines


def _column_lines(values: np.ndarray,
                  groups: Optional[list[tuple[str, int, int]]] = None) -> list[str]:
    """Bracket body of a column vector literal: `;`-separated, VALUES_PER_LINE per line."""
    values = np.asarray(values, np.float32).ravel()
    spans = groups or [("", 0, values.size)]
    lines: list[str] = []
    for comment, first, stop in spans:
        if comment:
            lines.append("    % " + comment)
        texts = [float_literal(v) for v in values[first:stop]]
        for k in range(0, len(texts), VALUES_PER_LINE):
            lines.append("    " + "; ".join(texts[k:k + VALUES_PER_LINE]))
    return lines


def _gate_groups(units: int) -> list[tuple[str, int, int]]:
    return [(f"{GATE_TITLES[g]}: rows {k * units + 1}-{(k + 1) * units}", k * units,
             (k + 1) * units) for k, g in enumerate("ifgo")]


def _literal(ident: str, lines: list[str], shape: tuple[int, int], comment: str) -> dict:
    return {"ident": ident, "lines": lines, "rows": shape[0], "cols": shape[1],
            "comment": comment}


def _lstm_features(layer: LSTM, ident: str, ctx: dict) -> dict:
    """The state update lines of one LSTM step, and the literals optional features need.

    Plain layers: c = gate(f) .* c + gate(i) .* cell(g); h = gate(o) .* output(c).
    With peepholes (P columns i, f, o; o sees the new c), clipped pre-activations and
    coupled input/forget gates (f = 1 - i), the gates are computed one by one.
    """
    h, z, c, rows = layer.units, ctx["z"], ctx["c"], ctx["rows"]
    gate, cell, out = ctx["gate"], ctx["cell"], ctx["output"]
    extra: dict[str, Any] = {"P": None, "h0": None, "c0": None}
    peep = {}
    if layer.peephole is not None:
        extra["P"] = _literal(f"P_{ident}", _matrix_lines(layer.peephole.T), (h, 3),
                              f"peephole weights P [{h} x 3]: columns i, f, o")
        peep = {g: f" + P_{ident}(:, {k + 1}) .* {c}" for k, g in enumerate("ifo")}
    if layer.initial_h is not None or layer.initial_c is not None:
        zeros = np.zeros(h, np.float32)
        for key, values in (("h0", layer.initial_h), ("c0", layer.initial_c)):
            extra[key] = _literal(f"{key}_{ident}", _column_lines(
                zeros if values is None else values), (h, 1),
                f"initial {key[0]} [{h} x 1]: the state every sequence starts from")
    clip = None if layer.clip is None else float_literal(layer.clip)

    def pre(g: str) -> str:
        text = f"{z}({rows[g]}){peep.get(g, '')}"
        return f"min(max({text}, -{clip}), {clip})" if clip is not None else text

    if not layer.features() - {"initial_state"}:
        update = [f"{c} = {gate}({z}({rows['f']})) .* {c} + {gate}({z}({rows['i']})) .* "
                  f"{cell}({z}({rows['g']}));",
                  f"{ctx['h']} = {gate}({z}({rows['o']})) .* {out}({c});"]
    else:
        i_gate, f_gate = f"i_{ident}", f"f_{ident}"
        update = [f"{i_gate} = {gate}({pre('i')});",
                  f"{f_gate} = 1 - {i_gate};  % coupled input and forget gates"
                  if layer.input_forget else f"{f_gate} = {gate}({pre('f')});",
                  f"{c} = {f_gate} .* {c} + {i_gate} .* {cell}({pre('g')});",
                  f"{ctx['h']} = {gate}({pre('o')}) .* {out}({c});"]
    extra["state_update"] = update
    return extra


def _layer_context(layer: Any, ident: str, position: int, count: int) -> dict:
    ctx: dict[str, Any] = {"kind": layer.kind, "ident": ident, "name": display_text(layer.name),
                           "position": position, "count": count,
                           "input_size": layer.input_size, "output_size": layer.output_size,
                           "out": f"y_{ident}", "W": None, "U": None, "b": None}
    if isinstance(layer, LSTM):
        h = layer.units
        groups = _gate_groups(h)
        ctx.update(
            units=h, gate=_act_ident(layer.gate_activation),
            cell=_act_ident(layer.cell_activation), output=_act_ident(layer.output_activation),
            activations=(layer.gate_activation, layer.cell_activation, layer.output_activation),
            reverse=layer.go_backwards, return_sequences=layer.return_sequences,
            rows={g: f"{k * h + 1}:{(k + 1) * h}" for k, g in enumerate("ifgo")},
            h=f"h_{ident}", c=f"c_{ident}", z=f"z_{ident}", Z=f"Zx_{ident}",
            W=_literal(f"W_{ident}", _matrix_lines(layer.input_weights,
                                                   [(c, a) for c, a, _ in groups]),
                       (4 * h, layer.input_size),
                       f"input weights W [{4 * h} x {layer.input_size}]: four gate blocks of "
                       f"{h} rows (i, f, g, o), one column per input"),
            U=_literal(f"U_{ident}", _matrix_lines(layer.recurrent_weights,
                                                   [(c, a) for c, a, _ in groups]),
                       (4 * h, h),
                       f"recurrent weights U [{4 * h} x {h}]: same row blocks, one column "
                       "per unit of h"),
            b=None if layer.bias is None else _literal(
                f"b_{ident}", _column_lines(layer.bias, groups), (4 * h, 1),
                f"bias b [{4 * h} x 1]: same row blocks"))
        ctx.update(_lstm_features(layer, ident, ctx))
    elif isinstance(layer, Dense):
        o, i = layer.weights.shape
        ctx.update(
            activation=_act_ident(layer.activation), activation_name=layer.activation,
            linear=layer.activation == "linear",
            W=_literal(f"W_{ident}", _matrix_lines(layer.weights), (o, i),
                       f"weights W [{o} x {i}]: one row per output, one column per input"),
            b=None if layer.bias is None else _literal(
                f"b_{ident}", _column_lines(layer.bias), (o, 1), f"bias b [{o} x 1]"))
    elif isinstance(layer, Activation):
        ctx.update(activation=_act_ident(layer.activation), activation_name=layer.activation)
    return ctx


def render(model: Model, name: str, precision: str = "single", **options: Any) -> dict[str, str]:
    validate_model_name(name)
    if precision not in PRECISIONS:
        raise LstmgenError(f"precision {precision!r} is not supported by target 'matlab'; "
                           f"choose one of: {', '.join(PRECISIONS)}")
    if options:
        raise LstmgenError(f"option '{sorted(options)[0]}' does not apply to target 'matlab'; "
                           f"it takes: {', '.join(OPTIONS)}")
    model.validate()
    idents = unique_identifiers([l.name for l in model.layers])
    count = len(model.layers)
    layers = [_layer_context(l, i, k + 1, count)
              for k, (l, i) in enumerate(zip(model.layers, idents))]
    n_seq = model.sequence_layer_count()
    source = "x0"
    for k, ctx in enumerate(layers):
        ctx["src"] = source
        ctx["sequence_in"] = k < n_seq  # in predict: input is D x T (else a column)
        ctx["sequence_out"] = k < n_seq and not (ctx["kind"] == "lstm"
                                                 and not ctx["return_sequences"])
        source = ctx["out"]
    used: set[str] = set()
    for layer in model.layers:
        if isinstance(layer, LSTM):
            used.update((layer.gate_activation, layer.cell_activation, layer.output_activation))
        elif isinstance(layer, Activation) or layer.activation != "linear":
            used.add(layer.activation)
    activations = [{"ident": _act_ident(a), "name": a} for a in sorted(used)]
    lstms = [c for c in layers if c["kind"] == "lstm"]
    state_values = sum(2 * c["units"] for c in lstms)
    o, d = model.output_size, model.input_size
    facts = banner_facts(model)
    context = {
        **facts,
        "name": name, "NAME": name.upper(), "precision": precision,
        "weight_open": "single([" if precision == "single" else "double(single([",
        "weight_close": "])" if precision == "single" else "]))",
        "layers": layers, "lstm_layers": lstms, "activations": activations,
        "input_size": d, "output_size": o, "returns_sequences": model.returns_sequences,
        "streamable": model.streamable, "final": layers[-1]["out"],
        "x_shape": f"{d} x T", "y_shape": f"{o} x T" if model.returns_sequences else f"{o} x 1",
        "weight_bytes": model.parameter_count() * BYTES[precision],
        "state_values": state_values, "state_bytes": state_values * BYTES[precision],
    }
    files = {f"{name}_predict.m": render_template("matlab/predict.m.j2", **context)}
    if model.streamable:
        files[f"{name}_step.m"] = render_template("matlab/step.m.j2", **context)
    return files
