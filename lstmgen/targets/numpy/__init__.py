"""numpy target: one module `NAME.py` that imports only numpy, for servers that want no
framework.

`predict(x)` runs a whole batch x [N, T, D] at once: every layer is vectorised over the N
sequences (and, where the layer allows it, over the timesteps: a recurrent layer multiplies
the inputs of all timesteps by its input weights in one product before its loop over time).
`Stream(batch=N)` runs N sequences side by side one timestep per `step` call. The layers are
those of the Python target, with the same semantics (each IR kind's module docstring).

Arithmetic is float32 by default, as the frameworks compute (`precision="single"`), or
float64 (`precision="double"`). Measured on the tests' 26-model Keras grid, float32 is as
close to the framework as float64 (max relative error 1.5e-7 against 1.6e-7: the framework
itself computes in float32) and runs batches of 64 2-8x faster (`bench/bench_numpy.py`);
float64 is the choice for agreeing with the float64 reference (to ~1e-15). Weights are
exact: each array is the float32 values' bytes (IEEE 754, little-endian) written in hex,
read at import with `bytes.fromhex`.

Where things are:

* `templates/numpy/model.py.j2` composes the module: docstring, activations, the layers'
  functions, predict(), Stream, the weights; `templates/numpy/layers/<kind>.j2` holds all
  the generated code of one IR kind (the macros are listed in `kinds`); this target
  implements exactly the kinds that have such a template.
* `context` -- the typed render context; `kinds` -- reaching a kind's macros; `runner` --
  running the module in a separate Python; `memory_report` below.
"""

from __future__ import annotations

from typing import Any

from ...errors import LstmgenError
from ...ir import Model
from ...naming import validate_model_name
from ..common import render_template
from ..kind_templates import implemented_kinds
from .context import DTYPES, ModelContext, activation_module, build_context
from .kinds import KIND_FOLDER

__all__ = [
    "ACTIVATIONS",
    "FEATURES",
    "LAYERS",
    "OPTIONS",
    "memory_report",
    "render",
    "render_context",
]

#: precision: "single" (float32 arithmetic, the default) or "double" (float64)
OPTIONS: tuple[str, ...] = ("precision",)
#: Layer kinds (see lstmgen.ir) this target implements: those with a template.
LAYERS: frozenset[str] = implemented_kinds(KIND_FOLDER)
#: Activations (see lstmgen.ir.activations) this target implements: those in its template.
ACTIVATIONS: frozenset[str] = frozenset(vars(activation_module())["CALLS"])
#: Optional IR features (see lstmgen.ir) this target implements.
FEATURES: frozenset[str] = frozenset(
    {"peephole", "clip", "input_forget", "initial_state", "projection"}
)


def _precision(options: dict[str, Any]) -> str:
    for key in options:
        if key not in OPTIONS:
            raise LstmgenError(
                f"option '{key}' does not apply to target 'numpy'; it takes: precision"
            )
    precision = options.get("precision") or "single"
    if precision not in DTYPES:
        raise LstmgenError(f"precision must be single or double, got {precision!r}")
    return str(precision)


def _check(model: Model) -> None:
    for layer in model.layers:
        missing = sorted({part.kind for part in layer.parts()} - LAYERS)
        if missing:
            raise LstmgenError(
                f"target 'numpy' does not implement {missing[0]} layers (layer '{layer.name}')"
            )
        used = sorted(layer.features() - FEATURES)
        if used:
            raise LstmgenError(
                f"target 'numpy' does not implement LSTM {used[0]} (used by layer '{layer.name}')"
            )


def render_context(model: Model, name: str, **options: Any) -> ModelContext:
    """The typed context the templates render (also used by tests to find names)."""
    validate_model_name(name)
    model.validate()
    return build_context(model, name, _precision(options))


def render(model: Model, name: str, **options: Any) -> dict[str, str]:
    """The generated module: {"NAME.py": its text}."""
    validate_model_name(name)
    model.validate()
    precision = _precision(options)
    _check(model)
    context = build_context(model, name, precision)
    return {f"{name}.py": render_template("numpy/model.py.j2", m=context)}


def _widest_step(model: Model) -> int:
    """The most values one timestep of one sequence holds at once in a layer: its input
    projections (all gates) and its output, or a window of taps."""
    widest = model.input_size
    for layer in model.layers:
        parts = layer.parts()[1:] or [layer]
        width = layer.input_size + layer.output_size
        for part in parts:
            gates = getattr(part, "gates", 0) * getattr(part, "units", 0)
            width += gates + part.output_size
        span = getattr(layer, "span", 1)
        width = max(width, span * layer.input_size + layer.output_size)
        widest = max(widest, width)
    return widest


def memory_report(model: Model, precision: str | None = None, **options: Any) -> str:
    """What the generated module holds: its weights, and the arrays a batch needs."""
    dtype = DTYPES[_precision({"precision": precision} if precision else {})]
    size = 4 if dtype == "float32" else 8
    n = model.parameter_count()
    per_step = _widest_step(model) * size
    example = 64 * 100 * per_step
    return (
        f"target numpy ({dtype}): {n} weights, {n * size} bytes of {dtype} arrays after import "
        f"(the module's text holds them as hex: {8 * n} bytes)\n"
        f"  working arrays: about {per_step} bytes per sequence and timestep at the widest "
        f"layer, e.g. {example / 2**20:.1f} MiB for predict on a batch of 64 sequences of "
        "100 timesteps (freed when predict returns)"
    )
