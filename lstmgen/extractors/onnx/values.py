"""The abstract values of the ONNX walk, and small helpers every part of it shares.

The walk never runs the graph: it tracks, for every tensor, one of

* `Data`: a tensor computed from the graph input, as a list of `Axis` objects saying which
  axis is time, batch, features, a singleton, the two directions of a bidirectional
  operator, ... (and whether its time axis runs reversed);
* `Const`: a constant (an initializer, a Constant node, or something folded from them);
* `SymVec`: a 1-D int64 vector whose items are ints or `Axis` objects (what `Shape` of a
  data tensor returns: the sizes of its axes, symbolically);
* `Fill`: a tensor of input-dependent shape holding one value everywhere (ConstantOfShape,
  Expand), such as the zero initial state exporters build from the input's shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ...ir import Bidirectional, Dense, Layer


class Axis:
    """One axis of a data-path tensor. Axes are shared between tensors (a Transpose
    permutes the same objects), so a role learnt late applies to every earlier tensor.

    role: 'T' time, 'B' batch, 'F' features (size = width), '1' a singleton, '?' a graph
    input axis whose role is not known yet, 'M' batch and time folded into one (parts),
    'D' the two directions of a bidirectional operator (size 2; `pair` is its feature axis,
    `owner` names the operator), 'S' an axis of a tensor that only feeds Shape (its size
    is all that is known)."""

    def __init__(
        self,
        role: str,
        size: int | None = None,
        parts: tuple = (),
        input_index: int | None = None,
        pair: Axis | None = None,
        owner: str = "",
    ) -> None:
        self.role = role
        self.size = size
        self.parts = parts
        self.input_index = input_index
        self.pair = pair
        self.owner = owner

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Axis({self.role}, {self.size})"


@dataclass
class Data:
    """A tensor on the data path. `flipped`: its time axis holds the IR's sequence in
    reverse order (index t is IR step T-1-t)."""

    axes: list
    flipped: bool = False


@dataclass
class Const:
    value: np.ndarray


@dataclass
class SymVec:
    """A 1-D int64 vector (or a scalar) whose items are ints or Axis objects (sizes of
    data-path axes, as Shape returns them)."""

    items: tuple
    scalar: bool = False


@dataclass
class Fill:
    """A tensor of input-dependent shape holding one value everywhere (a number, or an
    Axis standing for that axis's size); also an initial state given as a graph input,
    which the IR starts at zero (see `graph_io`)."""

    value: float | Axis


Value = Data | Const | SymVec | Fill


@dataclass
class Pending:
    """The Dense layer an Add (bias) or an activation may still fold into."""

    layer: Dense
    bias_open: bool = True


def is_full_length(value: Any, time: Axis | None) -> bool:
    """Whether `value` (sequence_lens) holds the full length of the time axis everywhere."""
    if time is None:
        return False
    if isinstance(value, Fill):
        return value.value is time or (time.size is not None and value.value == time.size)
    if isinstance(value, SymVec):
        return all(
            item is time or (time.size is not None and item == time.size) for item in value.items
        )
    if isinstance(value, Const):
        arr = np.asarray(value.value).ravel()
        return time.size is not None and arr.size > 0 and bool(np.all(arr == time.size))
    return False


def role_name(axis: Axis) -> str:
    return {
        "T": "time",
        "B": "batch",
        "F": f"features ({axis.size})",
        "1": "a singleton",
        "?": "an input axis of unknown role",
        "M": "batch and time folded",
        "D": f"the two directions of bidirectional {axis.owner}",
        "S": "an axis known by its size only",
    }[axis.role]


def kind_name(layer: Layer) -> str:
    if isinstance(layer, Bidirectional):
        return f"bidirectional {kind_name(layer.forward)}"
    return {"lstm": "LSTM", "gru": "GRU", "simple_rnn": "RNN"}.get(layer.kind, layer.kind)


def describe_node(node: Any, index: int) -> str:
    if node.name:
        return f"node '{node.name}' ({node.op_type})"
    out = next((o for o in node.output if o), "")
    return f"node #{index} ({node.op_type}, output '{out}')"


def attribute(attr: Any) -> Any:
    """An attribute's value (strings decoded)."""
    from onnx import helper

    value = helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def default_opset(proto: Any) -> int:
    for entry in proto.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return 1


def close(value: float | None, target: float) -> bool:
    return value is not None and abs(value - target) <= 1e-6 * max(1.0, abs(target))
