"""What the int8-full templates print: an `Int8Model` as C arrays, parameter records and a
plan of which buffer each layer reads and writes.

Two ways to run a model, chosen from its layers:

* streaming (no layer reads time backwards): `NAME_step_int8` pushes one timestep through
  every layer up to the last recurrent one, the state holding each LSTM's h and c; the
  layers after it (the "tail") run on its last h. `NAME_predict_int8` is a loop of steps:
  RAM is the state and one step's scratch, whatever the sequence length.
* buffered (a Bidirectional or go_backwards LSTM): `NAME_predict_int8` runs one layer at a
  time over the whole sequence, ping-ponging between two int8 buffers of
  NAME_MAX_TIMESTEPS rows on the stack.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .... import __version__
from ....errors import LstmgenError
from ....ir.int8 import (
    ActivationInt8,
    BidirectionalInt8,
    DenseInt8,
    Int8Model,
    LayerInt8,
    LSTMInt8,
    Multiplier,
)
from ....literals import c_float, wrap_values
from ....naming import unique_identifiers
from ....quantize_int8.fixedpoint import SIGMOID_TABLE
from ...common import GENERATED_MARK, display_text

DEFAULT_MAX_TIMESTEPS = 100


def int_array(ident: str, values: np.ndarray, ctype: str, comment: str) -> dict:
    flat = np.asarray(values).ravel()
    per_line = 16 if ctype == "int8_t" else 8
    texts = [_int_literal(int(v)) for v in flat]
    return {
        "ident": ident,
        "ctype": ctype,
        "size": int(flat.size),
        "text": wrap_values(texts, per_line, "    "),
        "comment": comment,
    }


def _int_literal(v: int) -> str:
    return "(-2147483647 - 1)" if v == -(2**31) else str(v)


def _mul(m: Multiplier) -> dict:
    return {"m": m.significand, "s": m.shift, "real": f"{m.real:.9g}"}


def lstm_cell(layer: LSTMInt8, ident: str, name: str, direction: str = "") -> dict:
    h, d = layer.units, layer.input_size
    prefix = f"{name}_{ident}"
    tanh_mul, tanh_shift = layer.tanh_input_rescale(layer.cell_power)
    return {
        "kind": "lstm",
        "name": display_text(layer.name),
        "ident": ident,
        "direction": direction,
        "params": f"{prefix}_params",
        "units": h,
        "input_size": d,
        "go_backwards": layer.go_backwards,
        "return_sequences": layer.return_sequences,
        "arrays": [
            int_array(
                f"{prefix}_W",
                layer.input_weights,
                "int8_t",
                f"input weights [4][{h}][{d}], gate blocks i, f, g, o",
            ),
            int_array(
                f"{prefix}_U",
                layer.recurrent_weights,
                "int8_t",
                f"recurrent weights [4][{h}][{h}], gate blocks i, f, g, o",
            ),
            int_array(
                f"{prefix}_bx",
                layer.folded_input_bias(),
                "int32_t",
                "input bias [4][H] minus the input zero point times each row's sum",
            ),
            int_array(
                f"{prefix}_bh",
                layer.folded_recurrent_bias(),
                "int32_t",
                "minus the hidden zero point times each recurrent row's sum [4][H]",
            ),
        ],
        "gate_x": [_mul(m) for m in layer.gate_input_multipliers()],
        "gate_h": [_mul(m) for m in layer.gate_recurrent_multipliers()],
        "forget": _mul(layer.forget_multiplier()),
        "input": _mul(layer.input_multiplier()),
        "hidden": _mul(layer.hidden_multiplier()),
        "input_quant": _quant(layer.input),
        "hidden_quant": _quant(layer.hidden),
        "cell_power": layer.cell_power,
        "tanh_mul": tanh_mul,
        "tanh_shift": tanh_shift,
        "clip": layer.quantized_cell_clip(),
        "weight_scales_x": ", ".join(f"{float(s):.6g}" for s in layer.input_weight_scales),
        "weight_scales_h": ", ".join(f"{float(s):.6g}" for s in layer.recurrent_weight_scales),
    }


def _quant(q: Any) -> dict:
    return {"scale": c_float(q.scale), "zero_point": int(q.zero_point), "text": f"{q.scale:.9g}"}


def dense_layer(layer: DenseInt8, ident: str, name: str) -> dict:
    o, i = layer.output_size, layer.input_size
    prefix = f"{name}_{ident}"
    multipliers = layer.multipliers()
    low, high = layer.clamp()
    return {
        "kind": "dense",
        "name": display_text(layer.name),
        "ident": ident,
        "params": f"{prefix}_params",
        "input_size": i,
        "output_size": o,
        "per_channel": layer.per_channel,
        "activation": layer.activation,
        "arrays": [
            int_array(f"{prefix}_W", layer.weights, "int8_t", f"weights [{o}][{i}]"),
            int_array(
                f"{prefix}_b",
                layer.folded_bias(),
                "int32_t",
                f"bias [{o}] minus the input zero point times each row's sum",
            ),
            int_array(
                f"{prefix}_m",
                np.array([m.significand for m in multipliers]),
                "int32_t",
                "rescaling significands (Q31), one per output",
            ),
            int_array(
                f"{prefix}_s",
                np.array([m.shift for m in multipliers]),
                "int8_t",
                "rescaling powers of two, one per output",
            ),
        ],
        "input_quant": _quant(layer.input),
        "output_quant": _quant(layer.output),
        "low": low,
        "high": high,
    }


def _split(model: Int8Model) -> int:
    """How many leading layers see a sequence (the rest, the tail, see one vector)."""
    if model.returns_sequences:
        return len(model.layers)
    last = max(
        k for k, l in enumerate(model.layers) if isinstance(l, (LSTMInt8, BidirectionalInt8))
    )
    return last + 1


def _layer_context(layer: LayerInt8, ident: str, name: str) -> dict:
    if isinstance(layer, LSTMInt8):
        return {
            "kind": "lstm",
            "cell": lstm_cell(layer, ident, name),
            "name": layer.name,
            "output_size": layer.output_size,
            "input_size": layer.input_size,
        }
    if isinstance(layer, BidirectionalInt8):
        return {
            "kind": "bidirectional",
            "name": display_text(layer.name),
            "fw": lstm_cell(layer.forward, f"{ident}_fw", name, "forward"),
            "bw": lstm_cell(layer.backward, f"{ident}_bw", name, "backward"),
            "return_sequences": layer.return_sequences,
            "input_size": layer.input_size,
            "output_size": layer.output_size,
        }
    if isinstance(layer, DenseInt8):
        return dense_layer(layer, ident, name)
    assert isinstance(layer, ActivationInt8)
    raise LstmgenError(
        f"layer '{layer.name}': the int8-full kernel does not implement an int8 "
        f"{layer.activation} yet (LSTM, Bidirectional LSTM and Dense with a linear, relu, "
        "relu6 or relu_n1_to_1 clamp); generate the float build of this model instead"
    )


def model_context(model: Int8Model, name: str) -> dict[str, Any]:
    idents = unique_identifiers([l.name for l in model.layers])
    layers = [_layer_context(l, i, name) for l, i in zip(model.layers, idents)]
    split = _split(model)
    cells = [
        c
        for l in layers
        for c in (
            (l["fw"], l["bw"])
            if l["kind"] == "bidirectional"
            else (l["cell"],)
            if l["kind"] == "lstm"
            else ()
        )
    ]
    widths = [model.input_size] + [l.output_size for l in model.layers]
    seq_width = max(widths[: split + 1])
    vec_width = max(widths)
    max_t = model.timesteps or DEFAULT_MAX_TIMESTEPS
    weight_bytes = sum(
        a["size"] * (1 if a["ctype"] == "int8_t" else 4) for l in layers for a in _arrays_of(l)
    )
    state_bytes = sum(c["units"] * 3 for c in cells)  # int8 h + int16 c
    return {
        "version": __version__,
        "mark": GENERATED_MARK,
        "source": display_text(model.source or "an lstmgen integer model"),
        "model_name": display_text(model.name),
        "timesteps": model.timesteps,
        "layer_lines": [display_text(_summary(l)) for l in model.layers],
        "notes": [display_text(n) for n in model.notes],
        "name": name,
        "NAME": name.upper(),
        "input_size": model.input_size,
        "output_size": model.output_size,
        "returns_sequences": model.returns_sequences,
        "streamable": model.streamable,
        "layers": layers,
        "seq_layers": layers[:split],
        "tail": layers[split:],
        "cells": cells,
        "max_units": max(c["units"] for c in cells),
        "seq_width": seq_width,
        "vec_width": vec_width,
        "max_timesteps": max_t,
        "input_quant": _quant(model.input),
        "output_quant": _quant(model.output),
        "weight_bytes": weight_bytes,
        "state_bytes": state_bytes,
        "uses_dense": any(l["kind"] == "dense" for l in layers),
        "uses_bidirectional": any(l["kind"] == "bidirectional" for l in layers),
        "parameters": sum(a["size"] for l in layers for a in _arrays_of(l)),
        "sigmoid_table": wrap_values([str(int(v)) for v in SIGMOID_TABLE], 12, "    "),
        "has_selftest": False,
    }


def _arrays_of(layer: dict) -> list[dict]:
    if layer["kind"] == "lstm":
        return list(layer["cell"]["arrays"])
    if layer["kind"] == "bidirectional":
        return list(layer["fw"]["arrays"]) + list(layer["bw"]["arrays"])
    return list(layer.get("arrays", []))


def _summary(layer: LayerInt8) -> str:
    if isinstance(layer, LSTMInt8):
        flags = ["sequences" if layer.return_sequences else "last step"]
        if layer.go_backwards:
            flags.append("go_backwards")
        if layer.cell_clip > 0:
            flags.append(f"cell clip {layer.cell_clip:g}")
        return (
            f"{layer.name}: int8 LSTM({layer.units}), {', '.join(flags)}; cell state int16 "
            f"scale 2^{layer.cell_power}"
        )
    if isinstance(layer, BidirectionalInt8):
        inner = _summary(layer.forward).split(": ", 1)[1]
        return f"{layer.name}: Bidirectional({inner}), concat"
    if isinstance(layer, DenseInt8):
        scales = "per-channel" if layer.per_channel else "per-tensor"
        return (
            f"{layer.name}: int8 Dense({layer.output_size}), {layer.activation}, "
            f"{scales} weight scales"
        )
    return f"{layer.name}: int8 {layer.activation}"


def selftest_context(model: Int8Model, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    x = np.asarray(x, np.int8)
    n, t_len, _ = x.shape
    per_seq = int(np.asarray(y).size // n)
    return {
        "has_selftest": True,
        "st_sequences": n,
        "st_timesteps": t_len,
        "st_per_seq": per_seq,
        "st_x": wrap_values([str(int(v)) for v in x.ravel()], 16, "    "),
        "st_y": wrap_values([str(int(v)) for v in np.asarray(y, np.int8).ravel()], 16, "    "),
    }
