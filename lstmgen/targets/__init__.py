"""Backends: each target language renders an IR model to source files.

A backend module exposes `render(model, name, **options) -> dict[filename, text]`,
`OPTIONS` (the option names it accepts) and `FEATURES` (the optional IR features it
implements, see `lstmgen.ir`; a model using any other is refused by `render` below, so no
backend silently ignores part of a model). Backends read only the IR (and the plan derived
from it); templates under `templates/<target>/` hold the text.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from ..errors import LstmgenError

TARGETS: dict[str, str] = {
    "c": "lstmgen.targets.c",
    "python": "lstmgen.targets.python",
    "matlab": "lstmgen.targets.matlab",
    "numpy": "lstmgen.targets.numpy",
}


def import_target(table: dict[str, str], target: str, what: str) -> ModuleType:
    """The module `table` names for `target` (a backend or a runner), or a clear error."""
    if target not in table:
        raise LstmgenError(f"unknown target '{target}'; targets: {', '.join(table)}")
    try:
        return importlib.import_module(table[target])
    except ModuleNotFoundError as exc:
        if exc.name == table[target]:
            raise LstmgenError(f"target '{target}' has no {what} in this version") from None
        raise


def get_backend(target: str) -> ModuleType:
    return import_target(TARGETS, target, "backend")


def get_runner(target: str) -> ModuleType:
    """The target's runner (`lstmgen.targets.<target>.runner`): `run(model, files, name, x,
    workdir) -> y` builds or loads the rendered files in `workdir`, feeds every sequence of
    x [N, T, D] through the generated `predict` and returns y as [N, T, O] or [N, O];
    `run_steps(...)` feeds each sequence one `step` at a time ([N, T, O])."""
    runners = {target: f"{module}.runner" for target, module in TARGETS.items()}
    return import_target(runners, target, "runner (it cannot be verified)")


#: The layer kinds a backend implements unless it declares `LAYERS` itself.
BASIC_LAYERS = frozenset({"lstm", "dense", "activation"})


def check_features(target: str, model: Any) -> None:
    """Refuse a model with a layer kind, an activation (when the target declares
    `ACTIVATIONS`) or an optional IR feature the target does not implement."""
    backend = get_backend(target)
    kinds = getattr(backend, "LAYERS", BASIC_LAYERS)
    for layer in model.layers:
        missing = (
            {layer.kind, getattr(getattr(layer, "forward", None), "kind", None)}
            - set(kinds)
            - {None}
        )
        if missing:
            raise LstmgenError(
                f"target '{target}' does not implement {sorted(missing)[0]} "
                f"layers (layer '{layer.name}') yet; it implements: "
                f"{', '.join(sorted(kinds))}"
            )
    activations: frozenset[str] | None = getattr(backend, "ACTIVATIONS", None)
    for activation, layers in sorted(model.activations().items()):
        if activations is not None and activation not in activations:
            raise LstmgenError(
                f"target '{target}' does not implement the activation {activation} (used by "
                f"layer '{layers[0]}'); it implements: {', '.join(sorted(activations))}"
            )
    supported: frozenset[str] = getattr(backend, "FEATURES", frozenset())
    for feature, layers in sorted(model.features().items()):
        if feature not in supported:
            raise LstmgenError(
                f"target '{target}' does not implement LSTM {feature} (used by "
                f"layer '{layers[0]}'); it implements: "
                f"{', '.join(sorted(supported)) or 'no optional features'}"
            )


def check_options(target: str, options: dict[str, Any]) -> None:
    """Refuse options the target's backend does not take (e.g. --precision for C)."""
    accepted = get_backend(target).OPTIONS
    for key in options:
        if key not in accepted:
            raise LstmgenError(
                f"option '{key}' does not apply to target '{target}'; it takes: "
                f"{', '.join(accepted) or 'no options'}"
            )


def render(target: str, model: Any, name: str, **options: Any) -> dict[str, str]:
    """Render `model` for `target` after checking the target implements all of it."""
    check_features(target, model)
    return get_backend(target).render(model, name, **options)
