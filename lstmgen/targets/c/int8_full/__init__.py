"""The int8-full C renderer: an `Int8Model` as integer-only C99 (`--quantize int8-full`).

`render_int8_full(model_or_spec, name)` writes NAME.h and NAME.c (and NAME_selftest.c on
request): int8 weights and activations, int32 accumulation, the int16 gate and cell-state
arithmetic of TensorFlow Lite Micro's integer LSTM, bit-exact with it. The integer core
uses no floating-point type; the float API around it (quantize the input with the model's
scale, dequantize the output) can be left out with -DNAME_INTEGER_ONLY.

A float IR model is quantized first (`lstmgen.quantize_int8.quantize`, TensorFlow Lite's
post-training scheme), which needs calibration inputs; an `Int8Model` (what a full-integer
`.tflite` file holds) is rendered as it is. Text lives in `templates/c/int8/`;
`context.py` turns the integer model into what the templates print.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ....errors import LstmgenError
from ....ir import Model
from ....ir.int8 import Int8Model
from ....naming import validate_model_name
from ...common import render_template
from .context import model_context, selftest_context

__all__ = ["render_int8_full", "as_int8_model"]


def as_int8_model(model_or_spec: Any, calibration: Any = None) -> Int8Model:
    """The integer model to render: `model_or_spec` itself, or a float IR model quantized
    with `calibration` (inputs [N, T, D], a path to a .npy file or an array)."""
    if isinstance(model_or_spec, Int8Model):
        return model_or_spec.validate()
    if isinstance(model_or_spec, Model):
        if calibration is None:
            raise LstmgenError(
                "--quantize int8-full needs calibration inputs for a float model: "
                "--calibration X.npy, an array [N, T, D] of typical input sequences"
            )
        from ....quantize_int8 import quantize

        return quantize(model_or_spec, calibration).validate()
    raise LstmgenError(f"cannot render a {type(model_or_spec).__name__} as int8-full C")


def render_int8_full(
    model_or_spec: Any,
    name: str,
    calibration: Any = None,
    selftest: Any = None,
) -> dict[str, str]:
    """NAME.h / NAME.c (+ NAME_selftest.c when `selftest` holds int8 inputs [N, T, D] and
    the expected int8 outputs: an object with `x` and `y`) for the integer model."""
    validate_model_name(name)
    model = as_int8_model(model_or_spec, calibration)
    context = model_context(model, name)
    if selftest is not None:
        context.update(selftest_context(model, np.asarray(selftest.x), np.asarray(selftest.y)))
    files = {
        f"{name}.h": render_template("c/int8/model.h.j2", **context),
        f"{name}.c": render_template("c/int8/model.c.j2", **context),
    }
    if selftest is not None:
        files[f"{name}_selftest.c"] = render_template("c/int8/selftest.c.j2", **context)
    return files
