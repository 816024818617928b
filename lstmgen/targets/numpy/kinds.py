"""The layer kinds of the numpy target: one template per kind, and how to reach its macros.

Every IR kind this target implements has one template, `templates/numpy/layers/<kind>.j2`,
holding all of that kind's generated code as Jinja macros; the target implements exactly
the kinds that have one (`implemented_kinds`). Each macro takes the layer's context `l`
(`context.LayerContext`; the IR layer is `l.layer`) and the model's `m`
(`context.ModelContext`). A kind defines only the macros it needs; a missing one renders as
nothing. The macros:

Facts (read while the model's context is built):
    activations(l)   the activations its code applies, space-separated
    traits(l)        space-separated flags: `mask` (the layer makes the timestep mask)

Code (composed by `templates/numpy/model.py.j2`):
    functions(l, m)  its functions (the "layers" section): a function over a whole batch
                     of sequences, and for recurrent kinds one timestep of it
    predict(l, m)    its lines in predict() (`y` is the batch, `mask` the timestep mask)
    stream_reset(l, m), stream_step(l, m)  its lines in Stream.reset() and Stream.step()
                     (`y` is the batch's current timestep, `keep` its mask row)
    weights(l, m)    its weight constants (the "weights" section)
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from ..common import environment, templates_dir

#: Where the kinds' templates are, under the templates folder.
KIND_FOLDER = "numpy/layers"


def implemented_kinds() -> frozenset[str]:
    """The IR kinds that have a template in this target."""
    return frozenset(path.stem for path in (templates_dir() / KIND_FOLDER).glob("*.j2"))


def _nothing(*args: Any) -> str:
    return ""


class KindTemplate:
    """The macros of one kind's template; a macro the kind does not define gives ""."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._module = environment().get_template(f"{KIND_FOLDER}/{kind}.j2").module

    def __getattr__(self, macro: str) -> Callable[..., str]:
        if macro.startswith("_"):
            raise AttributeError(macro)
        return getattr(self._module, macro, _nothing)

    def words(self, macro: str, *args: Any) -> list[str]:
        """The space-separated words a fact macro gives."""
        return str(getattr(self, macro)(*args)).split()


@cache
def kind_template(kind: str) -> KindTemplate:
    """The macros of `kind`'s template (each template is read once)."""
    return KindTemplate(kind)
