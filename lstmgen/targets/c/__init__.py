"""The C99 target: `NAME.h` and `NAME.c` with weights as `static const` arrays (flash), no
malloc, no mutable globals; `NAME_selftest.c` and `library.properties` on request.

The package, one job per module:

* `options` -- the options (quantize, math, selftest, arduino), their validation and the
  tolerance of each build mode;
* `kinds` -- what the Python side knows of each layer kind (its role in the plan, stored
  arrays, state, scratch, code size, quantized modes); all its C is in
  `templates/c/layers/<kind>.j2`;
* `plan` -- the loops a model runs in (parts, stages, prefix groups, tails);
* `quant` -- the numbers of the quantized builds (int8 / int16 weights, fixed16 formats);
* `layers`, `loops`, `build` -> `context` -- the typed render context the templates read;
* `memory` -- flash and RAM, estimated and measured; `selftest` -- the self-test vectors;
* `runner` -- compiles and runs the generated C (cffi; qemu for Cortex-M);
* `int8_full` -- `--quantize int8-full`: TensorFlow Lite's integer LSTM as integer-only C
  (its own integer model, `lstmgen.ir.int8`, and templates in `templates/c/int8/`).

C weight layout (chosen for the inner loop): an LSTM's weights are stored transposed,
`*_Wt` [D][4H] and `*_Ut` [H][4H], so that row k holds input k's weights into all 4H gate
pre-activations (blocks i, f, g, o). The step accumulates z += x[k] * row k: contiguous,
unit-stride, and vectorisable by the compiler without reordering any float sum. A GRU is
stored the same way, a SimpleRNN as [D][H] and [H][H]; a Bidirectional layer is two such
layers with their own state.

See docs/microcontroller.md for the options, the API and what each build mode implements.
"""

from __future__ import annotations

from typing import Any

from ...errors import LstmgenError
from ...ir import LAYER_TYPES, Model
from ...naming import validate_model_name
from ..common import render_template
from .build import model_context
from .kinds import ALL_QUANTIZED, composition_order, kind_of
from .memory import estimate
from .options import (
    DEFAULT_ATOL,
    MATH_MODES,
    OPTIONS,
    QUANTIZE_MODES,
    SELFTEST_TOL,
    COptions,
    check_backend_options,
    default_atol,
)
from .quant import UNSUPPORTED_ACTIVATIONS
from .selftest import selftest_context, selftest_data

#: The IR layer kinds and optional LSTM features this target implements (float build).
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
        "batch_norm",
        "embedding",
        "repeat_vector",
        "global_pool",
        "time_slice",
    }
)
#: The activations the C templates implement (c/activations.j2); fixed16 lacks some
#: (`check_quantizable` refuses them by name).
ACTIVATIONS: frozenset[str] = frozenset(
    {
        "linear",
        "relu",
        "sigmoid",
        "tanh",
        "softsign",
        "softplus",
        "elu",
        "hard_sigmoid_keras3",
        "hard_sigmoid_0.2",
        "softmax",
        "log_softmax",
    }
)
FEATURES: frozenset[str] = frozenset(
    {"peephole", "clip", "input_forget", "initial_state", "projection"}
)
#: The kinds every quantized build (int8, int16, fixed16) implements (LSTM without
#: optional features); `quantized_kinds(mode)` gives each mode's.
QUANTIZED_LAYERS: frozenset[str] = frozenset(
    k for k in LAYERS if ALL_QUANTIZED <= kind_of(k).quantized
)

__all__ = [
    "ACTIVATIONS",
    "DEFAULT_ATOL",
    "FEATURES",
    "LAYERS",
    "MATH_MODES",
    "OPTIONS",
    "QUANTIZED_LAYERS",
    "QUANTIZE_MODES",
    "SELFTEST_TOL",
    "check_backend_options",
    "check_quantizable",
    "default_atol",
    "memory_report",
    "quantized_kinds",
    "render",
    "verify_extra",
]


def quantized_kinds(mode: str) -> list[str]:
    """The kinds `--quantize mode` implements, in the target's order."""
    return [k for k in composition_order() if k in LAYERS and mode in kind_of(k).quantized]


def _implemented(mode: str) -> str:
    """What `--quantize mode` implements, in words."""
    kinds = quantized_kinds(mode)
    also = "; also in a Bidirectional" if "bidirectional" in kinds else ""
    titles = [
        f"LSTM (without optional features{also})" if k == "lstm" else LAYER_TYPES[k].title
        for k in kinds
        if k != "bidirectional"
    ]
    return f"{', '.join(titles[:-1])} and {titles[-1]} layers"


def check_quantizable(model: Model, quantize: str | None) -> None:
    """Refuse, by layer name and mode, a layer kind (or a Bidirectional's inner kind) or an
    optional LSTM feature the quantized build does not implement (int8-full checks its own
    when it quantizes)."""
    if quantize is None or quantize == "int8-full":
        return
    for layer in model.layers:
        inner = [p for p in layer.parts() if p is not layer]
        if any(quantize not in kind_of(p.kind).quantized for p in [layer, *inner]):
            of = f" of {inner[0].kind}" if inner else ""
            raise LstmgenError(
                f"--quantize {quantize} does not implement {layer.kind}{of} layers (layer "
                f"'{layer.name}'); it implements {_implemented(quantize)}. Generate the float "
                "build instead (no --quantize; --math builtin also works without libm)"
            )
        if kind_of(layer.kind).masks(layer):  # (Masking itself is refused above)
            raise LstmgenError(
                f"--quantize {quantize} does not implement masking (layer '{layer.name}', "
                f"{layer.kind} with mask_zero); generate the float build instead (no --quantize)"
            )
        for part in layer.parts():
            _, vectors = kind_of(part.kind).activations(part, quantize == "fixed16")
            for name in sorted(vectors & UNSUPPORTED_ACTIVATIONS.get(quantize, set())):
                raise LstmgenError(
                    f"--quantize {quantize} does not implement the {name} activation (layer "
                    f"'{layer.name}'); generate the float build instead (no --quantize)"
                )
        for feature in sorted(layer.features()):
            raise LstmgenError(
                f"--quantize {quantize} does not implement LSTM {feature} (layer "
                f"'{layer.name}'); generate the float build instead (no --quantize)"
            )


def verify_extra(model: Model, quantize: str | None = None, **options: Any) -> dict:
    """Figures for `lstmgen verify`'s report (its `extra` lines): the weights' flash in
    this mode and the saving against float32 weights."""
    if quantize == "int8-full":
        from .int8_full.target import verify_extra as int8_full_extra

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
    from .memory import report

    check_backend_options(quantize=quantize, math=math)
    if quantize == "int8-full":
        from .int8_full.target import memory_report as int8_full_report

        return int8_full_report(model, options.get("calibration"))
    files = render(model, "model", quantize=quantize, math=math)
    return report(model, quantize=quantize, math=math, files=files, name="model")


def render(model: Model, name: str, **options: Any) -> dict[str, str]:
    """`NAME.h`, `NAME.c` (and `NAME_selftest.c`, `library.properties`) for `model`."""
    opts = COptions.from_kwargs(**options)
    validate_model_name(name)
    model.validate()
    if opts.quantize == "int8-full":
        from .int8_full.target import render_for_c_target

        return render_for_c_target(model, name, opts.calibration, opts.selftest, opts.math)
    check_quantizable(model, opts.quantize)
    m = model_context(model, name, opts, has_selftest=bool(opts.selftest))
    files = {
        f"{name}.h": render_template("c/model.h.j2", m=m),
        f"{name}.c": render_template("c/fixed16.c.j2" if m.fixed else "c/model.c.j2", m=m),
    }
    if opts.selftest:
        data = selftest_data(model, opts.selftest)
        st = selftest_context(model, data, opts.quantize, m.fixed)
        files[f"{name}_selftest.c"] = render_template("c/selftest.c.j2", m=m, st=st)
    if opts.arduino:
        files["library.properties"] = render_template("c/library.properties.j2", m=m)
    return files
