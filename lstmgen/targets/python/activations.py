"""The activations of the Python target: the facts the renderer needs about them.

Their code lives in `templates/python/activations.j2`: each activation's expression (or
call of a helper function the module defines) and the names it imports from `math`, in the
template's ACTIVATIONS table. This module reads that table, so that adding an activation
to this target is one entry there.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ...errors import LstmgenError
from ...ir import ELEMENTWISE_ACTIVATIONS, VECTOR_ACTIVATIONS
from ..common import environment

ACTIVATIONS_TEMPLATE = "python/activations.j2"


def activation_table() -> dict[str, Any]:
    """name -> {"call": expression of {v}, "needs": math names[, "helper": its code]}."""
    module = environment().get_template(ACTIVATIONS_TEMPLATE).module
    table: dict[str, Any] = vars(module)["ACTIVATIONS"]
    return table


def check_activations(used: Iterable[str]) -> None:
    """Refuse an activation the template does not define."""
    table = activation_table()
    for name in sorted(set(used) - set(table)):
        raise LstmgenError(
            f"target 'python' does not implement the activation {name!r}; "
            f"it implements: {', '.join(sorted(table))}"
        )


def math_names(used: Iterable[str]) -> set[str]:
    """The names the activations in `used` import from `math`."""
    table = activation_table()
    return {name for act in used for name in table[act]["needs"]}


def helpers(used: Iterable[str]) -> list[str]:
    """The activations in `used` that call a helper function: the elementwise ones in
    alphabetical order, then the vector ones (softmax, ...) in the IR's order."""
    table = activation_table()
    used = set(used)
    elementwise = sorted(a for a in used if a in ELEMENTWISE_ACTIVATIONS and "helper" in table[a])
    vector = [a for a in VECTOR_ACTIVATIONS if a in used]
    return elementwise + vector
