"""Renders the MATLAB files of a model: NAME_weights.m, NAME_predict.m and, for a model
that can run one timestep at a time, NAME_step.m.

The file templates (`templates/matlab/{weights,predict,step}.m.j2`) only compose: every
layer's MATLAB comes from the macros of its kind's template,
`templates/matlab/layers/<kind>.j2` (`describe`, `weights`, `predict`, `step`), which the
file templates reach through `kinds[layer.kind]`. The local functions of the activations a
file calls follow its main function: a template asks `act(NAME)` for the function of an
activation, which also records that the file needs it; `templates/matlab/activations.j2`
writes them, one macro per activation, listed in its table ACTIVATIONS.
"""

from __future__ import annotations

from typing import Any

from ...ir import Model
from ..common import environment
from .context import RenderContext, build
from .literals import column_blocks, double_text, matrix_rows
from .options import Precision

LAYER_TEMPLATES = "matlab/layers"
ACTIVATIONS_TEMPLATE = "matlab/activations.j2"


def activation_names() -> frozenset[str]:
    """The activations the target implements: the names in the template's table."""
    module = environment().get_template(ACTIVATIONS_TEMPLATE).module
    return frozenset(vars(module)["ACTIVATIONS"])


class ActivationUse:
    """`act(name)` gives the local function of activation `name` and records the use;
    `used()` lists (function, name) of every activation used, by name."""

    def __init__(self) -> None:
        self._names: set[str] = set()

    def __call__(self, name: str) -> str:
        if name not in activation_names():
            raise ValueError(f"activation {name!r} has no MATLAB in {ACTIVATIONS_TEMPLATE}")
        self._names.add(name)
        return function_name(name)

    def used(self) -> list[tuple[str, str]]:
        return [(function_name(n), n) for n in sorted(self._names)]


def function_name(activation: str) -> str:
    """The local function computing `activation`, e.g. act_hard_sigmoid_0_2."""
    return "act_" + activation.replace(".", "_")


def _render(path: str, context: RenderContext) -> str:
    """Render one file template with the kinds' macros bound to this file's variables."""
    env = environment()
    kinds: dict[str, Any] = {}
    variables: dict[str, Any] = {
        **context.variables(),
        "kinds": kinds,
        "act": ActivationUse(),
        "matrix_rows": matrix_rows,
        "column_blocks": column_blocks,
        "double_text": double_text,
    }
    for kind in sorted({part.kind for l in context.layers for part in [l, *l.parts]}):
        template = env.get_template(f"{LAYER_TEMPLATES}/{kind}.j2")
        kinds[kind] = template.make_module(variables)
    return env.get_template(path).render(**variables)


def render_files(model: Model, name: str, precision: Precision) -> dict[str, str]:
    """{filename: text} of the model's MATLAB files (model validated, name checked)."""
    context = build(model, name, precision)
    files = {f"{name}_predict.m": _render("matlab/predict.m.j2", context)}
    if model.streamable:
        files[f"{name}_step.m"] = _render("matlab/step.m.j2", context)
    files[f"{name}_weights.m"] = _render("matlab/weights.m.j2", context)
    return files
