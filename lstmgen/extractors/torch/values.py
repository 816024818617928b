"""What lstmgen knows about each tensor of a captured PyTorch forward.

A tensor computed from the model's input is a `Flow`: the chain of IR layers that computes
it and what each of its axes holds -- "B" the batch, "T" the timesteps, "F" the features,
"1" an axis of size one, or several of these merged into one axis by a reshape (e.g.
("B", "T") after ``out.view(-1, H)``). A flow whose feature axis was squeezed away has
width 1. Tensors that do not depend on the input (parameters, zeros, constants) stay
ordinary torch tensors.

A recurrent op gives a `RecurrentRun`; its h_n is a `StateStack` (axes: stacked layers and
directions, batch, features; see `states.py`) until one entry is selected, which is a
`FinalState`: the final state of one direction of one stacked layer. Only when something
consumes it does it become layers (`as_flow`), so that torch.cat([h_n[-2], h_n[-1]], 1)
can still become one Bidirectional layer returning both final states.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Union

import numpy as np

from ...errors import UnsupportedLayerError
from ...ir import Layer
from .recurrent import final_state

#: An axis: "B", "T", "F", "S", "1", or a tuple of those merged by a reshape.
Axis = Union[str, tuple[str, ...]]  # noqa: UP007 (a runtime alias)


def components(axis: Axis) -> tuple[str, ...]:
    return axis if isinstance(axis, tuple) else (axis,)


@dataclass(frozen=True, eq=False)
class Flow:
    """A tensor computed from the model input by `layers` (see the module docstring)."""

    layers: tuple[Layer, ...]
    axes: tuple[Axis, ...]
    width: int  # features (1 when the feature axis was squeezed away)
    steps: int  # timesteps at this point, for the captured example
    ids: bool = False  # token ids, before the Embedding

    @property
    def labels(self) -> tuple[str, ...]:
        """Every axis's components, in memory order."""
        return tuple(c for axis in self.axes for c in components(axis))

    @property
    def sequence(self) -> bool:
        return "T" in self.labels

    def size(self, label: str, batch: int) -> int:
        sizes = {"B": batch, "T": self.steps, "F": self.width, "1": 1}
        return sizes[label]

    def shape(self, batch: int) -> tuple[int, ...]:
        return tuple(
            int(np.prod([self.size(c, batch) for c in components(axis)])) for axis in self.axes
        )

    def then(self, layer: Layer, **changes: Any) -> Flow:
        """This flow followed by `layer` (width from the layer unless given)."""
        changes.setdefault("width", layer.output_size)
        return replace(self, layers=(*self.layers, layer), **changes)

    def axis_of(self, dim: int) -> Axis:
        return self.axes[dim]

    def dim(self, dim: int) -> int:
        """A possibly negative dimension index as a position in `axes`."""
        rank = len(self.axes)
        if not -rank <= dim < rank:
            raise IndexError(dim)
        return dim % rank


@dataclass(frozen=True, eq=False)
class RecurrentRun:
    """The result of aten.lstm/gru/rnn: the input flow and the stacked IR layers, each
    returning sequences (a layer of a bidirectional module is one Bidirectional)."""

    before: Flow
    stack: tuple[Layer, ...]
    batch_first: bool
    module: str  # "LSTM", "GRU" or "RNN"

    @property
    def directions(self) -> int:
        return 2 if getattr(self.stack[0], "forward", None) is not None else 1

    def output(self) -> Flow:
        axes: tuple[Axis, ...] = ("B", "T", "F") if self.batch_first else ("T", "B", "F")
        flow = self.before
        for layer in self.stack:
            flow = flow.then(layer)
        return replace(flow, axes=axes)

    def final(self, layer: int, direction: int | None) -> Flow:
        """The final state of stacked layer `layer`: one direction, or with None both
        directions merged (h_n[-2] and h_n[-1] concatenated)."""
        flow = self.before
        for item in self.stack[:layer]:
            flow = flow.then(item)
        return replace(flow.then(final_state(self.stack[layer], direction)), axes=("B", "F"))


@dataclass(frozen=True, eq=False)
class StateStack:
    """h_n (or an LSTM's c_n): [layers x directions, batch, features], or some of its
    entries (`entries`: (layer, direction) each), batch first after a transpose."""

    run: RecurrentRun
    cell: bool = False
    entries: tuple[tuple[int, int], ...] = ()  # () = all, in PyTorch's order
    batch_first: bool = False

    def items(self) -> tuple[tuple[int, int], ...]:
        """(layer, direction) of each entry."""
        every = [(k, d) for k in range(len(self.run.stack)) for d in range(self.run.directions)]
        return self.entries or tuple(every)

    @property
    def stack_dim(self) -> int:
        return 1 if self.batch_first else 0


@dataclass(frozen=True, eq=False)
class FinalState:
    """h_n[i]: the final state of one direction of one stacked layer."""

    run: RecurrentRun
    layer: int
    direction: int

    def flow(self) -> Flow:
        return self.run.final(self.layer, self.direction if self.run.directions == 2 else None)


@dataclass(frozen=True, eq=False)
class Pending:
    """A partial result only a known pattern may consume (e.g. |x| + 1 of softsign's
    x / (|x| + 1)); `what` says what it is when anything else does."""

    flow: Flow
    step: str  # "abs" or "abs_plus_one"
    what: str


@dataclass(frozen=True, eq=False)
class Unusable:
    """A result lstmgen cannot represent (e.g. the indices of torch.max); an error when
    used, naming `what`."""

    what: str


ABSTRACT = (Flow, RecurrentRun, StateStack, FinalState, Pending, Unusable)


def is_abstract(value: Any) -> bool:
    """True when `value` (or anything in it) depends on the model input."""
    if isinstance(value, ABSTRACT):
        return True
    if isinstance(value, (list, tuple)):
        return any(is_abstract(v) for v in value)
    if isinstance(value, dict):
        return any(is_abstract(v) for v in value.values())
    return False


def as_flow(value: Any) -> Flow:
    """`value` as a flow of layers, or an error saying why it cannot be one."""
    if isinstance(value, Flow):
        return value
    if isinstance(value, FinalState):
        return value.flow()
    if isinstance(value, StateStack):
        if value.cell:
            raise UnsupportedLayerError(
                "c_n (the LSTM's final cell state) is read; lstmgen computes a recurrent "
                "layer's outputs and hidden states, not its cell state"
            )
        raise UnsupportedLayerError(
            "h_n as a whole ([layers x directions, batch, hidden]) is read; lstmgen reads "
            "one entry, h_n[-1], or the last layer's two directions "
            "torch.cat([h_n[-2], h_n[-1]], dim=1)"
        )
    if isinstance(value, RecurrentRun):
        raise UnsupportedLayerError("the result of a recurrent module is used as a tensor")
    if isinstance(value, Pending):
        raise UnsupportedLayerError(f"{value.what} is used other than as part of a softsign")
    if isinstance(value, Unusable):
        raise UnsupportedLayerError(f"{value.what} is used")
    raise UnsupportedLayerError(f"a {type(value).__name__} is used as a tensor")
