"""How the C target reaches the int8-full renderer (`--quantize int8-full`).

`render_for_c_target` takes the C target's options: the float IR model it is given is
rendered from the integer model of the file it came from (a full-integer `.tflite`), or
quantized with `calibration`. `--selftest` embeds int8 inputs and the int8 outputs the
build must reproduce exactly: the file's own interpreter's (dequantized by the oracle,
requantized here without loss) for a full-integer source, lstmgen's integer reference
(bit-exact with TensorFlow Lite Micro) for a quantized float model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ....ir import Model
from ....ir.int8 import Int8Model, int8_source, quantize_values
from ....quantize_int8.fixedpoint import SIGMOID_TABLE
from . import as_int8_model, render_int8_full

DEFAULT_SELFTEST_TIMESTEPS = 20


@dataclass
class Int8Selftest:
    x: np.ndarray  # int8 [N, T, D]
    y: np.ndarray  # int8 expected outputs


def integer_model(model: Model, calibration: Any = None) -> Int8Model:
    source = int8_source(model)
    if source is not None and calibration is None:
        return source.validate()
    return as_int8_model(model, calibration)


def render_for_c_target(
    model: Model,
    name: str,
    calibration: Any = None,
    selftest: Any = None,
    math: Any = None,
) -> dict[str, str]:
    """NAME.h / NAME.c (/ NAME_selftest.c) for the C target's validated options (`math`
    changes nothing: the integer core calls no math function)."""
    integer = integer_model(model, calibration)
    vectors = _selftest(model, integer, calibration, selftest) if selftest else None
    return render_int8_full(integer, name, selftest=vectors)


def _selftest(model: Model, integer: Int8Model, calibration: Any, selftest: Any) -> Int8Selftest:
    from ....quantize_int8.reference import forward_int8

    if selftest is True:  # seeded inputs; expected: the integer reference
        t_len = integer.timesteps or DEFAULT_SELFTEST_TIMESTEPS
        shape = (3, t_len, model.input_size)
        x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
        expected = None
    else:
        x, expected = np.asarray(selftest.x, np.float32), np.asarray(selftest.y)
    xq = quantize_values(x, integer.input)
    if expected is not None and int8_source(model) is integer and calibration is None:
        yq = quantize_values(expected, integer.output)  # the file's own outputs, exactly
    else:
        yq = forward_int8(integer, xq)
    return Int8Selftest(xq, yq)


def memory_report(model: Model, calibration: Any = None) -> str:
    """`lstmgen inspect --target c --quantize int8-full`: flash and RAM of the integer build
    (measured with arm-none-eabi-gcc -Os for a Cortex-M4 when it is installed)."""
    from ..memory import measure, toolchain_available
    from .context import model_context

    integer = integer_model(model, calibration)
    context = model_context(integer, "model")
    weights, state = context["weight_bytes"], context["state_bytes"]
    scratch, table = 8 * context["max_units"], 2 * len(SIGMOID_TABLE)
    out = [
        "C target, int8-full (integer only, TensorFlow Lite Micro's kernel): flash and RAM (bytes)",
        f"  flash: int8 weights, int32 biases and rescaling factors {weights} + sigmoid table "
        f"{table}",
        f"  RAM: state {state} (int8 h + int16 c per LSTM unit) + gate scratch {scratch} "
        "on the stack",
    ]
    if toolchain_available():
        measured = measure(render_int8_full(integer, "model"), "model", "cortex-m4")
        out.append(
            f"  measured (arm-none-eabi-gcc -Os cortex-m4): flash {measured.flash_bytes} "
            f"(.text {measured.sections.get('.text', 0)}, .rodata "
            f"{measured.sections.get('.rodata', 0)}); static RAM {measured.ram_bytes}; stack of "
            f"model_predict {measured.stack.get('model_predict', 0)} incl. its state"
        )
    out.append("  no weight is copied to RAM or the stack (all static const, read in place)")
    return "\n".join(out)


def verify_extra(model: Model, calibration: Any = None, **options: Any) -> dict[str, float]:
    integer = integer_model(model, calibration)
    files = render_int8_full(integer, "model")
    from .context import model_context

    context = model_context(integer, "model")
    del files
    return {"flash bytes of weights (int8-full)": float(context["weight_bytes"])}
