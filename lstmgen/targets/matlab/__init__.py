"""MATLAB backend (MATLAB Coder / Simulink): `NAME_predict.m` and `NAME_step.m`.

`NAME_predict(x)` runs a whole sequence, x being D x T (features by time, MATLAB's
`sequenceInputLayer` convention), layer by layer over whole D x T arrays; the output is
O x 1, or O x T when the model returns sequences (O x T' after Conv1D/pooling layers, which
change the number of timesteps). `NAME_step(x, reset)` runs one timestep with the recurrent
state in `persistent` variables, for a Simulink MATLAB Function block; it exists only for
streamable models (no go_backwards, Bidirectional, Conv1D, pooling or Flatten layer).

Masking (the first layer only) computes `masked(t)` = all features of timestep t equal the
mask value; every recurrent layer then skips the state update at a masked timestep and
repeats its previous output (h, which is the previous output; a layer with an initial state
keeps its output in an extra `o_NAME`, zero before the first real step). In NAME_step the
same holds for one step: the persistent state stays as it is.

Conv1D and pooling loop over their output timesteps `T_NAME` (computed from the input's
number of timesteps as `lstmgen.ir.window_padding` does); their zero padding is an explicit
zero-padded copy `xp_NAME` of the input (Conv1D) or a window clipped to the real timesteps
(pooling, where padding never counts). An input too short for any output timestep is
refused by an assert at the top of NAME_predict that names the minimum T; a model with
Flatten asserts the model's fixed T.

Both files use only fixed-size arrays (in predict only T varies), built-in functions that
MATLAB Coder supports, no toolbox and no `coder.*` call, so Octave runs them as they are.

Weights keep the IR's canonical layout as MATLAB matrices: an LSTM's W is 4H x D, U is
4H x H (4H x P with a projection) and b is 4H x 1, rows in four gate blocks i, f, g, o; a
GRU's are 3H x D, 3H x H and 3H x 1 in blocks z, r, n (plus the recurrent bias rb with
reset_after); a SimpleRNN's H x D, H x H and H x 1; a Dense layer's W is O x I. A
Bidirectional layer is its forward and its backward layer one after the other, the
backward one looping from the last timestep to the first and storing each output at its
own timestep, which is the input time order the merge needs.

Literals are `lstmgen.literals.float_literal` text wrapped in `single([...])`, which reads
back to the model's exact float32 values; with `precision="double"` they are wrapped in
`double(single([...]))`, the same float32 values computed with in double precision.
"""

from __future__ import annotations

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
from ...naming import MAX_LENGTH, unique_identifiers, unique_name, validate_model_name
from ..common import banner_facts, display_text, render_template

OPTIONS: tuple[str, ...] = ("precision",)
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
PRECISIONS = ("single", "double")
VALUES_PER_LINE = 8
GATE_TITLES = {
    "i": "i (input gate)",
    "f": "f (forget gate)",
    "g": "g (cell candidate)",
    "o": "o (output gate)",
    "z": "z (update gate)",
    "r": "r (reset gate)",
    "n": "n (candidate)",
}
BLOCKS = {"lstm": "ifgo", "gru": "zrn", "simple_rnn": ""}
KIND_TITLES = {"lstm": "LSTM", "gru": "GRU", "simple_rnn": "SimpleRNN"}
BYTES = {"single": 4, "double": 8}


def _act_ident(name: str) -> str:
    return "act_" + name.replace(".", "_")


def _row_lines(row: np.ndarray, sep: str = ", ", indent: str = "    ") -> list[str]:
    """One matrix row as literal lines, continued with `...` after VALUES_PER_LINE values."""
    texts = [float_literal(v) for v in row]
    chunks = [
        sep.join(texts[k : k + VALUES_PER_LINE]) for k in range(0, len(texts), VALUES_PER_LINE)
    ]
    lines = [indent + chunks[0]]
    for chunk in chunks[1:]:
        lines[-1] += ", ..."
        lines.append(indent + "    " + chunk)
    return lines


def _matrix_lines(
    values: np.ndarray, groups: list[tuple[str, int, int]] | None = None
) -> list[str]:
    """Bracket body of a 2-D literal: one row per line, optional comment before row groups.

    `groups` is [(comment, first_row, stop_row), ...] with 0-based rows.
    """
    starts = dict((first, comment) for comment, first, _ in (groups or []))
    lines: list[str] = []
    for r, row in enumerate(np.asarray(values, np.float32)):
        if r in starts:
            lines.append("    % " + starts[r])
        lines.extend(_row_lines(row))
    return lines


def _column_lines(
    values: np.ndarray, groups: list[tuple[str, int, int]] | None = None
) -> list[str]:
    """Bracket body of a column vector literal: `;`-separated, VALUES_PER_LINE per line."""
    values = np.asarray(values, np.float32).ravel()
    spans = groups or [("", 0, values.size)]
    lines: list[str] = []
    for comment, first, stop in spans:
        if comment:
            lines.append("    % " + comment)
        texts = [float_literal(v) for v in values[first:stop]]
        for k in range(0, len(texts), VALUES_PER_LINE):
            lines.append("    " + "; ".join(texts[k : k + VALUES_PER_LINE]))
    return lines


def _gate_groups(blocks: str, units: int) -> list[tuple[str, int, int]] | None:
    """Row groups of a recurrent layer's matrices (none for a single-block SimpleRNN)."""
    if not blocks:
        return None
    return [
        (f"{GATE_TITLES[g]}: rows {k * units + 1}-{(k + 1) * units}", k * units, (k + 1) * units)
        for k, g in enumerate(blocks)
    ]


def _literal(ident: str, lines: list[str], shape: tuple[int, int], comment: str) -> dict:
    return {"ident": ident, "lines": lines, "rows": shape[0], "cols": shape[1], "comment": comment}


def _lstm_features(layer: LSTM, ident: str, ctx: dict) -> dict:
    """The state update lines of one LSTM step, and the literals optional features need.

    Plain layers: c = gate(f) .* c + gate(i) .* cell(g); h = gate(o) .* output(c).
    With peepholes (P columns i, f, o; o sees the new c), clipped pre-activations and
    coupled input/forget gates (f = 1 - i), the gates are computed one by one. With a
    projection Pr (P x H), h = Pr * (gate(o) .* output(c)) has P values.
    """
    h, z, c, rows = layer.units, ctx["z"], ctx["c"], ctx["rows"]
    gate, cell, out = ctx["gate"], ctx["cell"], ctx["output"]
    extra: dict[str, Any] = {"P": None, "Pr": None, "h0": None, "c0": None}
    peep = {}
    if layer.peephole is not None:
        extra["P"] = _literal(
            f"P_{ident}",
            _matrix_lines(layer.peephole.T),
            (h, 3),
            f"peephole weights P [{h} x 3]: columns i, f, o",
        )
        peep = {g: f" + P_{ident}(:, {k + 1}) .* {c}" for k, g in enumerate("ifo")}
    size = layer.output_size
    if layer.projection is not None:
        extra["Pr"] = _literal(
            f"Pr_{ident}",
            _matrix_lines(layer.projection),
            (size, h),
            f"projection Pr [{size} x {h}]: h = Pr * (gate(o) .* "
            "output(c)), one row per value of h, one column per unit",
        )
    if layer.initial_h is not None or layer.initial_c is not None:
        for key, values, n in (("h0", layer.initial_h, size), ("c0", layer.initial_c, h)):
            extra[key] = _literal(
                f"{key}_{ident}",
                _column_lines(np.zeros(n, np.float32) if values is None else values),
                (n, 1),
                f"initial {key[0]} [{n} x 1]: the state every sequence starts from",
            )
    clip = None if layer.clip is None else float_literal(layer.clip)

    def pre(g: str) -> str:
        text = f"{z}({rows[g]}){peep.get(g, '')}"
        return f"min(max({text}, -{clip}), {clip})" if clip is not None else text

    def new_h(o_gate: str) -> str:
        product = f"{o_gate} .* {out}({c})"
        return f"Pr_{ident} * ({product})" if layer.projection is not None else product

    if not layer.features() - {"initial_state", "projection"}:
        o_gate = f"{gate}({z}({rows['o']}))"
        update = [
            f"{c} = {gate}({z}({rows['f']})) .* {c} + {gate}({z}({rows['i']})) .* "
            f"{cell}({z}({rows['g']}));",
            f"{ctx['h']} = {new_h(o_gate)};",
        ]
    else:
        i_gate, f_gate, o_gate = f"i_{ident}", f"f_{ident}", f"{gate}({pre('o')})"
        update = [
            f"{i_gate} = {gate}({pre('i')});",
            f"{f_gate} = 1 - {i_gate};  % coupled input and forget gates"
            if layer.input_forget
            else f"{f_gate} = {gate}({pre('f')});",
            f"{c} = {f_gate} .* {c} + {i_gate} .* {cell}({pre('g')});",
            f"{ctx['h']} = {new_h(o_gate)};",
        ]
    extra["state_update"] = update
    return extra


def _describe(layer: Any) -> str:
    """The text after `layer k/n "name": ` in a layer's heading comment."""
    flags: list[str] = []
    if isinstance(layer, LSTM):
        flags = [
            f"gate = {layer.gate_activation}",
            f"cell = {layer.cell_activation}",
            f"output = {layer.output_activation}",
        ]
    elif isinstance(layer, GRU):
        flags = [
            f"gate = {layer.gate_activation}",
            f"cell = {layer.cell_activation}",
            f"reset_after = {'true' if layer.reset_after else 'false'}",
        ]
    elif isinstance(layer, SimpleRNN):
        flags = [f"activation = {layer.activation}"]
    elif isinstance(layer, Dense):
        return (
            f"Dense {layer.input_size} -> {layer.output_size} "
            f"({layer.activation}{', no bias' if layer.bias is None else ''})"
        )
    elif isinstance(layer, Activation):
        return f"Activation {layer.activation} over {layer.output_size}"
    elif isinstance(layer, Masking):
        return f"Masking over {layer.size} features (mask value {float_literal(layer.mask_value)})"
    elif isinstance(layer, Normalize):
        return f"Normalize (x - mean) ./ std over {layer.input_size} features"
    elif isinstance(layer, LayerNorm):
        parts = [p for p, a in (("gamma", layer.gamma), ("beta", layer.beta)) if a is not None]
        return (
            f"LayerNorm over {layer.size} features (epsilon {_double_text(layer.epsilon)}"
            f"{', ' + ' and '.join(parts) if parts else ', no gamma or beta'})"
        )
    elif isinstance(layer, Flatten):
        return (
            f"Flatten {layer.size} x {layer.timesteps} -> {layer.output_size} "
            "(timestep by timestep)"
        )
    elif isinstance(layer, Conv1D):
        return (
            f"Conv1D {layer.input_size} -> {layer.output_size} (kernel "
            f"{layer.kernel_size}, stride {layer.stride}, dilation {layer.dilation}, "
            f"padding {layer.padding}, {layer.activation}"
            f"{', no bias' if layer.bias is None else ''})"
        )
    elif isinstance(layer, Pool1D):
        return (
            f"{'Max' if layer.pool_type == 'max' else 'Average'}Pool1D over {layer.size} "
            f"features (size {layer.pool_size}, stride {layer.stride}, padding "
            f"{layer.padding})"
        )
    elif isinstance(layer, Bidirectional):
        inner = layer.forward
        return (
            f"Bidirectional {KIND_TITLES[inner.kind]} {layer.input_size} -> "
            f"{inner.output_size} forward + {inner.output_size} backward, merge "
            f"{layer.merge_mode} -> {layer.output_size}"
            f"{', every timestep' if layer.return_sequences else ', last step'}"
        )
    if layer.go_backwards:
        flags.append("go_backwards")
    if layer.bias is None:
        flags.append("no bias")
    size = f"{layer.units}"
    if layer.output_size != layer.units:
        size += f", projected to {layer.output_size}"
    return f"{KIND_TITLES[layer.kind]} {layer.input_size} -> {size} ({', '.join(flags)})"


def _cell_context(layer: Any, ident: str, tvar: str = "T", masked: bool = False) -> dict:
    """A unidirectional recurrent layer (LSTM, GRU or SimpleRNN): literals, state, one step.

    `predict_body` is the body of the time loop of NAME_predict (the input part of every
    timestep precomputed in Zx) and `step_body` the same step in NAME_step. `tvar` is the
    variable holding the number of timesteps the layer sees; with `masked` (a Masking
    layer in front) the step is skipped at masked timesteps.
    """
    kind, h, d = layer.kind, layer.units, layer.input_size
    blocks = BLOCKS[kind]
    rows_total = max(1, len(blocks)) * h
    groups = _gate_groups(blocks, h)
    ctx: dict[str, Any] = {
        "kind": kind,
        "ident": ident,
        "name": display_text(layer.name),
        "describe": _describe(layer),
        "units": h,
        "hsize": layer.output_size,
        "input_size": d,
        "output_size": layer.output_size,
        "return_sequences": layer.return_sequences,
        "rows": {g: f"{k * h + 1}:{(k + 1) * h}" for k, g in enumerate(blocks)},
        "h": f"h_{ident}",
        "c": f"c_{ident}",
        "z": f"z_{ident}",
        "Z": f"Zx_{ident}",
        "out": f"y_{ident}",
        "P": None,
        "Pr": None,
        "rb": None,
        "h0": None,
        "c0": None,
    }
    if kind == "lstm":
        w_what = f"four gate blocks of {h} rows (i, f, g, o)"
        u_cols = (
            "one column per unit of h"
            if layer.projection is None
            else "one column per value of the projected h"
        )
        ctx.update(
            gate=_act_ident(layer.gate_activation),
            cell=_act_ident(layer.cell_activation),
            output=_act_ident(layer.output_activation),
            zx_what=f"input part of z for all timesteps ({rows_total} x {tvar})",
        )
    elif kind == "gru":
        w_what = f"three gate blocks of {h} rows (z, r, n)"
        u_cols = "one column per unit of h"
        ctx.update(
            gate=_act_ident(layer.gate_activation),
            cell=_act_ident(layer.cell_activation),
            zx=f"zx_{ident}",
            zh=f"zh_{ident}",
            u=f"u_{ident}",
            r=f"r_{ident}",
            reset_after=layer.reset_after,
            zx_what=f"input part of z, r, n for all timesteps ({rows_total} x {tvar})",
        )
    else:
        w_what = "one row per unit"
        u_cols = "one column per unit of h"
        ctx.update(
            activation=_act_ident(layer.activation),
            zx_what=f"input part for all timesteps ({h} x {tvar})",
        )
    ctx["W"] = _literal(
        f"W_{ident}",
        _matrix_lines(layer.input_weights, groups),
        (rows_total, d),
        f"input weights W [{rows_total} x {d}]: {w_what}, one column per input",
    )
    u_shape = tuple(int(n) for n in layer.recurrent_weights.shape)
    ctx["U"] = _literal(
        f"U_{ident}",
        _matrix_lines(layer.recurrent_weights, groups),
        u_shape,
        f"recurrent weights U [{u_shape[0]} x {u_shape[1]}]: "
        f"{'same row blocks' if groups else 'one row per unit'}, {u_cols}",
    )
    rows_note = ": same row blocks" if groups else ""
    if layer.bias is None:
        ctx["b"] = None
    else:
        added = ", added to W*x" if getattr(layer, "recurrent_bias", None) is not None else ""
        ctx["b"] = _literal(
            f"b_{ident}",
            _column_lines(layer.bias, groups),
            (rows_total, 1),
            f"bias b [{rows_total} x 1]{rows_note}{added}",
        )
    if kind == "gru" and layer.recurrent_bias is not None:
        ctx["rb"] = _literal(
            f"rb_{ident}",
            _column_lines(layer.recurrent_bias, groups),
            (rows_total, 1),
            f"recurrent bias rb [{rows_total} x 1]: same row blocks, added to U*h (reset_after)",
        )
    if kind == "lstm":
        ctx.update(_lstm_features(layer, ident, ctx))
        ctx["states"] = [
            {"var": ctx["h"], "size": ctx["hsize"], "init": ctx["h0"]},
            {"var": ctx["c"], "size": h, "init": ctx["c0"]},
        ]
    else:
        ctx["states"] = [{"var": ctx["h"], "size": h, "init": None}]
    # The output of a step is h; a masked step repeats the previous output, which is h
    # too, except before the first real step of a layer with an initial state (the output
    # is zero there): such a layer keeps its output in o.
    ctx["emit"] = ctx["h"]
    ctx["keep_output"] = None
    if masked and ctx["h0"] is not None:
        ctx["emit"] = ctx["keep_output"] = f"o_{ident}"
        ctx["states"].append(
            {"var": ctx["emit"], "size": ctx["hsize"], "init": None, "output": True}
        )
    ctx["literals"] = [
        a for a in (ctx["W"], ctx["U"], ctx["b"], ctx["rb"], ctx["P"], ctx["Pr"]) if a
    ]
    ctx["comment"] = _cell_comment(layer, ctx)
    # the time loop of NAME_predict: a go_backwards layer reads column T + 1 - t at step t
    ctx["T"] = tvar
    ctx["masked"] = masked
    ctx["loop"] = f"for t = 1:{tvar}"
    ctx["col"] = "t"
    if layer.go_backwards:
        ctx["loop"] += f"  % go_backwards: step t reads input column {tvar} + 1 - t" + (
            " and outputs are stored in processing order" if layer.return_sequences else ""
        )
        ctx["col"] = f"{tvar} + 1 - t"
    ctx["alloc"] = layer.return_sequences
    ctx["store"] = f"{ctx['out']}(:, t)" if layer.return_sequences else None
    ctx["final"] = None if layer.return_sequences else ctx["out"]
    return ctx


def _cell_comment(layer: Any, ctx: dict) -> list[str]:
    """The comment lines that state one step of a recurrent layer."""
    rows = ctx["rows"]
    if layer.kind == "lstm":
        h_line = "gate(o) .* output(c)"
        if layer.projection is not None:
            h_line = f"Pr * ({h_line})  (h has {ctx['hsize']} values)"
        return [
            f"% One step, with z = W*x_t + U*h + b split into gate blocks i, f, g, o "
            f"(rows {rows['i']}, {rows['f']}, {rows['g']}, {rows['o']}):",
            f"%   c = gate(f) .* c + gate(i) .* cell(g);   h = {h_line}",
        ]
    if layer.kind == "gru":
        rb = " + rb" if ctx["rb"] else ""
        b = " + b" if ctx["b"] else ""
        lines = [
            f"% One step, with zx = W*x_t{b} and zh = U*h{rb} split into blocks z, r, n "
            f"(rows {rows['z']}, {rows['r']}, {rows['n']})",
            "% and u the update gate (z in the usual formulas):",
            "%   u = gate(zx_z + zh_z);   r = gate(zx_r + zh_r);",
        ]
        if layer.reset_after:
            lines.append(
                "%   h = u .* h + (1 - u) .* cell(zx_n + r .* zh_n)   (reset_after: r "
                f"scales U_n*h{rb and ' + rb_n'})"
            )
        else:
            lines.append(
                "%   h = u .* h + (1 - u) .* cell(zx_n + U_n * (r .* h))   (reset "
                "before: r scales h)"
            )
        return lines
    return [f"% One step: h = activation(W*x_t + U*h{' + b' if ctx['b'] else ''})"]


def _cell_body(cell: dict, xpart: str) -> list[str]:
    """The lines of one step of a recurrent layer whose input part W*x_t is `xpart`."""
    lines = _cell_update(cell, xpart)
    if cell["keep_output"]:
        lines.append(f"{cell['keep_output']} = {cell['h']};  % the output of this step")
    return lines


def _cell_update(cell: dict, xpart: str) -> list[str]:
    """The state update of one step of a recurrent layer (see `_cell_body`)."""
    bias = f" + {cell['b']['ident']}" if cell["b"] else ""
    h, u_mat = cell["h"], cell["U"]["ident"]
    if cell["kind"] == "lstm":
        return [f"{cell['z']} = {xpart} + {u_mat} * {h}{bias};"] + cell["state_update"]
    if cell["kind"] == "simple_rnn":
        return [f"{h} = {cell['activation']}({xpart} + {u_mat} * {h}{bias});"]
    rows, n = cell["rows"], cell["units"]
    zx, zh, u, r = cell["zx"], cell["zh"], cell["u"], cell["r"]
    gate, act = cell["gate"], cell["cell"]
    lines = [f"{zx} = {xpart}{bias};"]
    if cell["reset_after"]:
        rbias = f" + {cell['rb']['ident']}" if cell["rb"] else ""
        lines.append(f"{zh} = {u_mat} * {h}{rbias};")
        candidate = f"{zx}({rows['n']}) + {r} .* {zh}({rows['n']})"
    else:
        lines.append(f"{zh} = {u_mat}(1:{2 * n}, :) * {h};  % recurrent part of z and r")
        candidate = f"{zx}({rows['n']}) + {u_mat}({rows['n']}, :) * ({r} .* {h})"
    lines += [
        f"{u} = {gate}({zx}({rows['z']}) + {zh}({rows['z']}));",
        f"{r} = {gate}({zx}({rows['r']}) + {zh}({rows['r']}));",
        f"{h} = {u} .* {h} + (1 - {u}) .* {act}({candidate});",
    ]
    return lines


def _layer_context(
    layer: Any,
    ident: str,
    position: int,
    count: int,
    inner: tuple[str, str] = ("", ""),
    tvar: str = "T",
    masked: bool = False,
) -> dict:
    """Everything the templates need about one layer (`inner`: a Bidirectional's parts'
    identifiers; `tvar`: the variable holding the number of timesteps of its input;
    `masked`: a Masking layer is in front)."""
    ctx: dict[str, Any] = {
        "kind": layer.kind,
        "ident": ident,
        "name": display_text(layer.name),
        "position": position,
        "count": count,
        "describe": _describe(layer),
        "input_size": layer.input_size,
        "output_size": layer.output_size,
        "out": f"y_{ident}",
        "literals": [],
        "recurrent": layer.recurrent,
        "return_sequences": getattr(layer, "return_sequences", True),
        "T": tvar,
    }
    if isinstance(layer, (LSTM, GRU, SimpleRNN)):
        ctx.update(_cell_context(layer, ident, tvar, masked))
    elif isinstance(layer, Bidirectional):
        size = layer.forward.output_size
        parts = [
            _cell_context(layer.forward, inner[0], tvar, masked),
            _cell_context(layer.backward, inner[1], tvar, masked),
        ]
        parts[0]["part"], parts[1]["part"] = "forward", "backward"
        backward = parts[1]
        # the backward layer runs t = T, ..., 1 and stores each output at its own timestep:
        # its outputs come out in input time order, as the merge needs them
        backward["loop"] = f"for t = {tvar}:-1:1  % backward: from the last timestep to the first"
        if layer.return_sequences:
            backward["loop"] += ", each output stored at its own timestep"
        backward["col"] = "t"
        concat = layer.merge_mode == "concat"
        if concat:  # both parts write straight into their rows of the output
            for k, part in enumerate(parts):
                rows = f"{k * size + 1}:{(k + 1) * size}"
                part["rows_out"] = rows
                part["alloc"] = False
                part["store"] = f"{ctx['out']}({rows}, t)" if layer.return_sequences else None
                part["final"] = None if layer.return_sequences else f"{ctx['out']}({rows})"
        fw, bw = parts[0]["out"], parts[1]["out"]
        merge = {"sum": f"{fw} + {bw}", "mul": f"{fw} .* {bw}", "ave": f"({fw} + {bw}) / 2"}.get(
            layer.merge_mode
        )
        ctx.update(
            parts=parts,
            merge_mode=layer.merge_mode,
            concat=concat,
            merge=merge,
            part_size=size,
            return_sequences=layer.return_sequences,
            states=parts[0]["states"] + parts[1]["states"],
        )
    elif isinstance(layer, Dense):
        o, i = layer.weights.shape
        ctx.update(
            activation=_act_ident(layer.activation),
            activation_name=layer.activation,
            linear=layer.activation == "linear",
            W=_literal(
                f"W_{ident}",
                _matrix_lines(layer.weights),
                (o, i),
                f"weights W [{o} x {i}]: one row per output, one column per input",
            ),
            b=None
            if layer.bias is None
            else _literal(f"b_{ident}", _column_lines(layer.bias), (o, 1), f"bias b [{o} x 1]"),
        )
        ctx["literals"] = [a for a in (ctx["W"], ctx["b"]) if a]
    elif isinstance(layer, Activation):
        ctx.update(activation=_act_ident(layer.activation), activation_name=layer.activation)
    elif isinstance(layer, Masking):
        ctx["mask_value"] = float_literal(layer.mask_value)
    elif isinstance(layer, Normalize):
        n = layer.input_size
        ctx.update(
            mean=_literal(
                f"mean_{ident}",
                _column_lines(layer.mean),
                (n, 1),
                f"mean [{n} x 1], one value per feature",
            ),
            std=_literal(
                f"std_{ident}",
                _column_lines(layer.std),
                (n, 1),
                f"standard deviation std [{n} x 1], one value per feature",
            ),
        )
        ctx["literals"] = [ctx["mean"], ctx["std"]]
    elif isinstance(layer, LayerNorm):
        n = layer.size
        ctx.update(
            epsilon=_double_text(layer.epsilon),
            gamma=None
            if layer.gamma is None
            else _literal(
                f"gamma_{ident}",
                _column_lines(layer.gamma),
                (n, 1),
                f"scale gamma [{n} x 1], one value per feature",
            ),
            beta=None
            if layer.beta is None
            else _literal(
                f"beta_{ident}",
                _column_lines(layer.beta),
                (n, 1),
                f"offset beta [{n} x 1], one value per feature",
            ),
        )
        ctx["literals"] = [a for a in (ctx["gamma"], ctx["beta"]) if a]
    elif isinstance(layer, Flatten):
        ctx["timesteps"] = layer.timesteps
    elif isinstance(layer, Conv1D):
        f, k, d = layer.weights.shape
        ctx.update(
            activation=_act_ident(layer.activation),
            linear=layer.activation == "linear",
            W=_literal(
                f"W_{ident}",
                _matrix_lines(layer.weights.reshape(f, k * d)),
                (f, k * d),
                f"weights W [{f} x {k * d}]: one row per filter, "
                f"{k} tap block{'s' if k > 1 else ''} of {d} columns (columns "
                f"(k - 1)*{d} + 1 to k*{d} multiply the input at tap k)",
            ),
            b=None
            if layer.bias is None
            else _literal(f"b_{ident}", _column_lines(layer.bias), (f, 1), f"bias b [{f} x 1]"),
        )
        ctx["literals"] = [a for a in (ctx["W"], ctx["b"]) if a]
    return ctx


def _double_text(value: float) -> str:
    """The exact text of a Python float (a double) as a MATLAB literal."""
    text = repr(float(value))
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{int(exponent)}"
    return text if any(ch in text for ch in ".e") else text + ".0"


def _window_lines(layer: Any, ctx: dict, src: str, tin: str, precision: str) -> list[str]:
    """The lines of a Conv1D or Pool1D layer in NAME_predict: its number of output
    timesteps `T_NAME` (from `tin`, the number of input timesteps), its padding, and the
    loop over the output timesteps (see `lstmgen.ir.window_padding`)."""
    ident, out, tout = ctx["ident"], ctx["out"], ctx["T_out"]
    conv = isinstance(layer, Conv1D)
    span = layer.dilation * (layer.kernel_size - 1) + 1 if conv else layer.pool_size
    stride, padding = layer.stride, layer.padding
    what = "output timesteps"
    if padding == "valid":
        count = (
            f"{tin} - {span - 1}"
            if stride == 1 and span > 1
            else tin
            if stride == 1
            else f"floor(({tin} - {span}) / {stride}) + 1"
        )
        lines = [
            f"{tout} = {count};  % {what}: every window of {span} input timesteps"
            f"{'' if stride == 1 else f' every {stride} steps'} (valid: no padding)"
        ]
        left, total = "0", "0"
    elif padding == "causal":
        count = tin if stride == 1 else f"floor(({tin} - 1) / {stride}) + 1"
        lines = [f"{tout} = {count};  % {what} (causal: {span - 1} zero timesteps in front)"]
        left = total = str(span - 1)
    elif stride == 1:  # same, stride 1: the padding does not depend on T
        lines = [
            f"{tout} = {tin};  % {what} (same: {span - 1} padded timesteps, "
            f"{(span - 1) // 2} in front)"
        ]
        left, total = str((span - 1) // 2), str(span - 1)
    else:  # same: ceil(T / stride) outputs, the padding depends on T
        left, total = f"padl_{ident}", f"pad_{ident}"
        lines = [
            f"{tout} = ceil({tin} / {stride});  % {what} (same padding)",
            f"{total} = max(({tout} - 1) * {stride} + {span} - {tin}, 0);  % padded "
            "timesteps in total",
            f"{left} = floor({total} / 2);  % padded timesteps in front",
        ]
    lines.append(f"{out} = zeros({layer.output_size}, {tout}, '{precision}');")
    first = "t" if stride == 1 else "s"
    if conv:
        data = src
        if total != "0":  # a zero-padded copy of the input
            data = f"xp_{ident}"
            lines += [
                f"{data} = zeros({layer.input_size}, {tin} + {total}, '{precision}');"
                f"  % the input with zero padding",
                f"{data}(:, {left} + 1:{left} + {tin}) = {src};",
            ]
        d, dil = layer.input_size, layer.dilation
        loop = [f"for t = 1:{tout}"]
        if stride > 1:
            loop.append(
                f"    s = (t - 1) * {stride} + 1;  % the first input column of output timestep t"
            )
        taps = []
        for k in range(layer.kernel_size):
            col = first if k == 0 else f"{first} + {k * dil}"
            weights = (
                ctx["W"]["ident"]
                if layer.kernel_size == 1
                else f"{ctx['W']['ident']}(:, {k * d + 1}:{(k + 1) * d})"
            )
            taps.append(f"{weights} * {data}(:, {col})")
        if ctx["b"]:
            taps.append(ctx["b"]["ident"])
        head = f"    {out}(:, t) = " + ("" if ctx["linear"] else f"{ctx['activation']}(")
        close = "" if ctx["linear"] else ")"
        if len(taps) == 1:
            loop.append(f"{head}{taps[0]}{close};")
        else:
            loop.append(f"{head}{taps[0]} ...  % tap 1")
            pad = " " * (len(head) - 2)
            for k, tap in enumerate(taps[1:], start=2):
                last = k == len(taps)
                note = "bias" if ctx["b"] and last else f"tap {k}"
                loop.append(f"{pad}+ {tap}{close + ';' if last else ' ...'}  % {note}")
        return lines + loop + ["end"]
    avg = layer.pool_type == "avg"
    combine = (
        (lambda acc, new: f"{acc} + {new}") if avg else (lambda acc, new: f"max({acc}, {new})")
    )
    acc = f"{out}(:, t)"
    loop = [f"for t = 1:{tout}"]
    if padding == "valid":
        start = "t - 1" if stride == 1 else f"(t - 1) * {stride}"
        loop += [
            f"    s = {start};  % the window is input timesteps s + 1 to s + {span}",
            f"    {acc} = {src}(:, s + 1);",
        ]
        if span > 1:
            loop += [
                f"    for k = 2:{span}",
                f"        {acc} = {combine(acc, f'{src}(:, s + k)')};",
                "    end",
            ]
        if avg and span > 1:
            loop.append(f"    {acc} = {acc} / {span};")
        return lines + loop + ["end"]
    start = "t - 1" if stride == 1 else f"(t - 1) * {stride}"
    if left != "0":
        start += f" - {left}"
    loop += [
        f"    s = {start};  % the window is input timesteps s + 1 to s + {span}, "
        "padding never counts:",
        "    lo = max(s + 1, 1);  % its first real timestep",
        f"    hi = min(s + {span}, {tin});  % its last real timestep",
        f"    {acc} = {src}(:, lo);",
        "    for k = lo + 1:hi",
        f"        {acc} = {combine(acc, f'{src}(:, k)')};",
        "    end",
    ]
    if avg:
        loop.append(f"    {acc} = {acc} / (hi - lo + 1);")
    return lines + loop + ["end"]


def min_timesteps(model: Model) -> int:
    """The fewest input timesteps for which every Conv1D / pooling layer has an output."""
    t_len = 1
    while model.output_timesteps(t_len) < 1:
        t_len += 1
    return t_len


def _cells(layer: Any) -> list[Any]:
    """The unidirectional recurrent layers inside `layer` (none for Dense / Activation)."""
    if isinstance(layer, Bidirectional):
        return [layer.forward, layer.backward]
    return [layer] if isinstance(layer, (LSTM, GRU, SimpleRNN)) else []


def _part_identifiers(model: Model, outer: list[str]) -> dict[int, tuple[str, str]]:
    """Identifiers of the forward and backward parts of every Bidirectional layer: its own
    identifier + `_fw` / `_bw`, with a numeric suffix where that is taken by a layer (the
    layers' identifiers stay what they are without Bidirectional layers)."""
    seen = set(outer)
    parts: dict[int, tuple[str, str]] = {}
    for k, layer in enumerate(model.layers):
        if not isinstance(layer, Bidirectional):
            continue
        names = []
        for side in ("fw", "bw"):
            names.append(unique_name(f"{outer[k][: MAX_LENGTH - 3]}_{side}", seen))
        parts[k] = (names[0], names[1])
    return parts


def _state_words(kinds: set[str]) -> tuple[str, str, str]:
    """(model kind for the title, what the state is, whose state it is) for the help."""
    if kinds == {"lstm"}:
        return "LSTM", "LSTM state (h and c)", "h and c of every LSTM layer"
    if "lstm" not in kinds:
        names = " and ".join(KIND_TITLES[k] for k in sorted(kinds))
        title = names if len(kinds) == 1 else "recurrent"
        return title, "recurrent state (h)", f"h of every {names} layer"
    return (
        "recurrent",
        "recurrent state (h, and c of LSTM layers)",
        "h of every recurrent layer, c of every LSTM layer",
    )


def render(model: Model, name: str, precision: str = "single", **options: Any) -> dict[str, str]:
    validate_model_name(name)
    if precision not in PRECISIONS:
        raise LstmgenError(
            f"precision {precision!r} is not supported by target 'matlab'; "
            f"choose one of: {', '.join(PRECISIONS)}"
        )
    if options:
        raise LstmgenError(
            f"option '{sorted(options)[0]}' does not apply to target 'matlab'; "
            f"it takes: {', '.join(OPTIONS)}"
        )
    model.validate()
    count = len(model.layers)
    outer = unique_identifiers([l.name for l in model.layers])
    inner = _part_identifiers(model, outer)
    masked = any(isinstance(l, Masking) for l in model.layers)
    layers, tvar = [], "T"  # tvar: the variable holding the current number of timesteps
    for k, layer in enumerate(model.layers):
        layers.append(
            _layer_context(layer, outer[k], k + 1, count, inner.get(k, ("", "")), tvar, masked)
        )
        if isinstance(layer, (Conv1D, Pool1D)):
            layers[-1]["T_out"] = tvar = f"T_{outer[k]}"
    n_seq = model.sequence_layer_count()
    source = "x0"
    for k, ctx in enumerate(layers):
        ctx["src"] = source
        for part in ctx.get("parts", []):
            part["src"] = source
        ctx["sequence_in"] = k < n_seq  # in predict: input is D x T (else a column)
        ctx["sequence_out"] = (
            k < n_seq
            and not (ctx["recurrent"] and not ctx["return_sequences"])
            and ctx["kind"] != "flatten"
        )
        if ctx["kind"] in ("conv1d", "pool1d"):
            ctx["window_lines"] = _window_lines(model.layers[k], ctx, source, ctx["T"], precision)
        source = ctx["out"]
    for ctx in layers:
        if ctx["kind"] in BLOCKS:
            ctx["predict_body"] = _cell_body(ctx, f"{ctx['Z']}(:, {ctx['col']})")
            ctx["step_body"] = _cell_body(ctx, f"{ctx['W']['ident']} * {ctx['src']}")
        for part in ctx.get("parts", []):
            part["predict_body"] = _cell_body(part, f"{part['Z']}(:, {part['col']})")
    used: set[str] = set()
    cells = [c for layer in model.layers for c in _cells(layer)]
    for layer in model.layers:
        if isinstance(layer, (Dense, Activation, Conv1D)) and (
            isinstance(layer, Activation) or layer.activation != "linear"
        ):
            used.add(layer.activation)
    for cell in cells:
        used.update(_act_names(cell))
    activations = [{"ident": _act_ident(a), "name": a} for a in sorted(used)]
    state_layers = [c for c in layers if c["kind"] in BLOCKS]
    state_values = sum(s["size"] for c in layers for s in c.get("states", []))
    kinds = {c.kind for c in cells}
    model_kind, state_what, state_whose = _state_words(kinds)
    if any(s.get("output") for c in layers for s in c.get("states", [])):
        state_what += " and held outputs (o)"
    backwards = [l for l in model.layers if l.recurrent and l.go_backwards]
    reasons = (["go_backwards"] if backwards else []) + (["a Bidirectional layer"] if inner else [])
    windows = [l for l in model.layers if l.kind in ("conv1d", "pool1d")]
    flatten = any(l.kind == "flatten" for l in model.layers)
    no_step = []
    if windows or flatten:  # why there is no NAME_step (go_backwards alone: see the template)
        what = []
        if windows:
            kinds_used = sorted({"Conv1D" if l.kind == "conv1d" else "pooling" for l in windows})
            what.append(f"reads windows of timesteps ({' and '.join(kinds_used)})")
        if flatten:
            what.append("flattens all its timesteps into one vector")
        if reasons:
            what.append(f"reads time backwards ({' or '.join(reasons)})")
        no_step = textwrap.wrap(
            f"There is no {name}_step for sample-by-sample use: the model "
            f"{', '.join(what[:-1]) + ' and ' if len(what) > 1 else ''}{what[-1]}, so it "
            "needs the whole sequence before its first output.",
            87,
        )
    o, d = model.output_size, model.input_size
    min_t = min_timesteps(model)
    example_t = model.timesteps or max(min_t, 10)
    y_shape = f"{o} x 1"
    if model.returns_sequences:
        y_shape = f"{o} x T'" if windows else f"{o} x T"
    facts = banner_facts(model)
    context = {
        **facts,
        "name": name,
        "NAME": name.upper(),
        "precision": precision,
        "weight_open": "single([" if precision == "single" else "double(single([",
        "weight_close": "])" if precision == "single" else "]))",
        "layers": layers,
        "state_layers": state_layers,
        "activations": activations,
        "input_size": d,
        "output_size": o,
        "returns_sequences": model.returns_sequences,
        "streamable": model.streamable,
        "final": layers[-1]["out"],
        "processing_order": bool(backwards),
        "backwards_reason": " or ".join(reasons),
        "model_kind": model_kind,
        "state_what": state_what,
        "state_whose": state_whose,
        "x_shape": f"{d} x T",
        "y_shape": y_shape,
        "masked": masked,
        "mask_value": next((c["mask_value"] for c in layers if c["kind"] == "masking"), None),
        "scalar_open": "single(" if precision == "single" else "double(single(",
        "scalar_close": ")" if precision == "single" else "))",
        "flatten": flatten,
        "windows": bool(windows),
        "min_t": min_t,
        "fixed_t": model.timesteps if flatten else None,
        "no_step": no_step,
        "example_t": example_t,
        "example_t_out": model.output_timesteps(example_t),
        "weight_bytes": model.parameter_count() * BYTES[precision],
        "state_values": state_values,
        "state_bytes": state_values * BYTES[precision],
    }
    files = {f"{name}_predict.m": render_template("matlab/predict.m.j2", **context)}
    if model.streamable:
        files[f"{name}_step.m"] = render_template("matlab/step.m.j2", **context)
    return files


def _act_names(cell: Any) -> tuple[str, ...]:
    if isinstance(cell, LSTM):
        return (cell.gate_activation, cell.cell_activation, cell.output_activation)
    if isinstance(cell, GRU):
        return (cell.gate_activation, cell.cell_activation)
    return (cell.activation,)
