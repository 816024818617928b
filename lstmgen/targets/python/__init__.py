"""Pure-Python target: one module `NAME.py` for CPython >= 3.8 and MicroPython.

The module imports only `math` and `array`. Weights are exact float32 literals inside string
literals that the module parses at import time into float32 `array('f')` rows (`weights`).

Each LSTM (and Dense, SimpleRNN, Conv1D) layer becomes one matrix whose row r joins the
input weights row r, the recurrent weights row r and the bias b[r], so that one
matrix-vector product with [x, h, 1] gives all pre-activations. The matrix-vector product
picks its kernel at import time: on CPython (which has `math.dist`) the rows are stored as
unit vectors and each dot product is one C-level `math.dist` call; MicroPython keeps the
float32 rows (4 bytes a weight) and runs a plain loop. Activations are inline expressions
where short, else calls of small helper functions (`templates/python/activations.j2`).

Where things are:

* `templates/python/model.py.j2` composes the module: docstring, kernels, the layers'
  functions, predict(), Stream, the weights. `templates/python/layers/<kind>.j2` holds
  all the generated Python of one IR kind (the macros are listed in `kinds`); this target
  implements exactly the kinds that have such a template.
* `context` -- the typed render context (`build_context`); `kinds` -- reaching a kind's
  macros; `activations` -- the activations' facts; `weights` -- the literal strings;
  `memory` -- `memory_report`; `runner` -- running the module in CPython or MicroPython.

Masking (and Embedding with mask_zero) gives one flag per timestep that every recurrent
layer reads: a masked step is skipped (state unchanged, the previous output repeated).
Conv1D, Pool1D, TimeSlice and RepeatVector change the number of timesteps; an input too
short to leave every layer a timestep is refused with a ValueError naming MIN_TIMESTEPS.
A model whose input is token ids (Embedding first) takes a list of ints. Models that read
time backwards or need a window of timesteps or the whole sequence have no Stream class.
"""

from __future__ import annotations

from typing import Any

from ...errors import LstmgenError
from ...ir import Model
from ...naming import validate_model_name
from ..common import render_template
from ..kind_templates import implemented_kinds
from .activations import activation_table
from .context import ModelContext, build_context
from .kinds import KIND_FOLDER
from .memory import (
    CPYTHON_BYTES_PER_WEIGHT,
    MICROPYTHON_BYTES_PER_WEIGHT,
    MICROPYTHON_DEFAULT_HEAP_WEIGHTS,
    memory_report,
)
from .weights import LINES_PER_STRING, PER_LINE, weight_source

__all__ = [
    "CPYTHON_BYTES_PER_WEIGHT",
    "FEATURES",
    "LAYERS",
    "LINES_PER_STRING",
    "MICROPYTHON_BYTES_PER_WEIGHT",
    "MICROPYTHON_DEFAULT_HEAP_WEIGHTS",
    "OPTIONS",
    "PER_LINE",
    "ModelContext",
    "memory_report",
    "min_timesteps",
    "render",
    "render_context",
    "weight_source",
]

OPTIONS: tuple[str, ...] = ()
#: Layer kinds (see lstmgen.ir) this target implements: those with a template.
LAYERS: frozenset[str] = implemented_kinds(KIND_FOLDER)
#: Activations (see lstmgen.ir.activations) this target implements: those in its template.
ACTIVATIONS: frozenset[str] = frozenset(activation_table())
#: Optional IR features (see lstmgen.ir) this target implements.
FEATURES: frozenset[str] = frozenset(
    {"peephole", "clip", "input_forget", "initial_state", "projection"}
)


def min_timesteps(model: Model) -> int:
    """The fewest input timesteps for which every layer that reads a sequence gets at
    least one (1 for most models)."""
    return model.min_timesteps()


def render_context(model: Model, name: str) -> ModelContext:
    """The typed context the templates render (also used by tests to find names)."""
    validate_model_name(name)
    model.validate()
    return build_context(model, name)


def _check(model: Model, options: dict[str, Any]) -> None:
    if options:
        raise LstmgenError(
            f"option '{sorted(options)[0]}' does not apply to target 'python'; it takes no options"
        )
    for layer in model.layers:
        missing = sorted({part.kind for part in layer.parts()} - LAYERS)
        if missing:
            raise LstmgenError(
                f"target 'python' does not implement {missing[0]} layers (layer '{layer.name}')"
            )
        used = sorted(layer.features() - FEATURES)
        if used:
            raise LstmgenError(
                f"target 'python' does not implement LSTM {used[0]} (used by layer '{layer.name}')"
            )


def render(model: Model, name: str, **options: Any) -> dict[str, str]:
    """The generated module: {"NAME.py": its text}."""
    validate_model_name(name)
    model.validate()
    _check(model, options)
    context = build_context(model, name)
    return {f"{name}.py": render_template("python/model.py.j2", m=context)}
