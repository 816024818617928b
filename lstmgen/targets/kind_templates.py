"""Targets whose layer kinds are templates of Jinja macros: the lookup and the layer contexts.

The Python, numpy and MATLAB targets each keep one template per IR kind in a folder of
`templates/` (e.g. `python/layers/<kind>.j2`); a target implements exactly the kinds that
have one (`implemented_kinds`). The Python and numpy targets also read facts from those
templates' macros (`KindTemplate`) and give every layer the same basic render context
(`LayerContextBase`, built for a whole model by `layer_contexts`); what each macro means
is documented in the target's own `kinds` module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any, TypeVar

from ..ir import Model
from ..naming import unique_identifiers
from .common import environment, templates_dir


def implemented_kinds(folder: str) -> frozenset[str]:
    """The IR kinds that have a template in `folder` (under the templates folder)."""
    return frozenset(path.stem for path in (templates_dir() / folder).glob("*.j2"))


def _nothing(*args: Any) -> str:
    return ""


class KindTemplate:
    """The macros of one kind's template; a macro the kind does not define gives ""."""

    def __init__(self, folder: str, kind: str) -> None:
        self.kind = kind
        self._module = environment().get_template(f"{folder}/{kind}.j2").module

    def __getattr__(self, macro: str) -> Callable[..., str]:
        if macro.startswith("_"):
            raise AttributeError(macro)
        return getattr(self._module, macro, _nothing)

    def words(self, macro: str, *args: Any) -> list[str]:
        """The space-separated words a fact macro gives."""
        return str(getattr(self, macro)(*args)).split()

    def text(self, macro: str, *args: Any) -> str:
        """What a macro gives, on one line (for docstrings)."""
        return " ".join(str(getattr(self, macro)(*args)).split())


@cache
def kind_template(folder: str, kind: str) -> KindTemplate:
    """The macros of `kind`'s template in `folder` (each template is read once)."""
    return KindTemplate(folder, kind)


@dataclass
class LayerContextBase:
    """One layer of a generated module: the IR layer, its identifier and its kind's macros.

    Module-level names: a layer's constants are `const` (`_IDENT`) and `const + "__SUFFIX"`,
    SUFFIX starting with a letter. A sanitised identifier never holds `__` followed by a
    letter (`lstmgen.naming`), so no name of one layer can be a name of another.
    """

    layer: Any  # the IR layer (its kind's class)
    ident: str
    code: KindTemplate  # the macros of its kind's template
    sees_sequence: bool = True  # its input is a sequence of timesteps (else one vector)
    masked: bool = False  # its input sequence comes with the timestep mask
    halves: list[Any] = field(default_factory=list)  # a Bidirectional's, of the same class

    @property
    def kind(self) -> str:
        return str(self.layer.kind)

    @property
    def const(self) -> str:
        return f"_{self.ident.upper()}"

    def traits(self) -> set[str]:
        return set(self.code.words("traits", self))


Context = TypeVar("Context", bound=LayerContextBase)


def _identifiers(model: Model) -> tuple[list[str], list[list[str]]]:
    """Identifiers of the layers, and of the layers inside each (a Bidirectional's).

    The inner layers are named after all top-level layers, so that the top-level
    identifiers do not depend on whether a model has a Bidirectional layer.
    """
    inner = [layer.parts()[1:] for layer in model.layers]
    names = [layer.name for layer in model.layers] + [p.name for parts in inner for p in parts]
    idents = unique_identifiers(names)
    top, rest = idents[: len(model.layers)], idents[len(model.layers) :]
    nested = []
    for parts in inner:
        nested.append(rest[: len(parts)])
        rest = rest[len(parts) :]
    return top, nested


def layer_contexts(model: Model, folder: str, make: type[Context]) -> list[Context]:
    """A context of class `make` for every layer of `model` (a Bidirectional's directions as
    its `halves`), with the macros of the kind templates in `folder`."""
    top, nested = _identifiers(model)
    flags = model.sequence_flags()
    sees_sequence = [True, *flags[:-1]]
    layers = []
    masked = False
    for index, (layer, ident, inner) in enumerate(zip(model.layers, top, nested)):
        ctx = make(layer, ident, kind_template(folder, layer.kind), sees_sequence[index], masked)
        ctx.halves = [
            make(part, part_ident, kind_template(folder, part.kind), True, masked)
            for part, part_ident in zip(layer.parts()[1:], inner)
        ]
        layers.append(ctx)
        # the mask goes with the sequence for as long as the data stays one
        masked = flags[index] and (masked or "mask" in ctx.traits())
    return layers


def used_activations(layers: list[Context]) -> set[str]:
    """The activations the layers' code applies (their kinds' `activations` macro)."""
    used: set[str] = set()
    for ctx in layers:
        for part in (ctx, *ctx.halves):
            used.update(part.code.words("activations", part))
    return used
