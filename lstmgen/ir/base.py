"""What every IR layer kind shares: the facts a kind declares, and the registry of kinds.

A layer kind is one module of `lstmgen.ir.layers`. Its class (a dataclass deriving from
`Layer` and decorated with `@register`) owns everything about the kind that is not
target code:

* its fields and arrays (float32, C order; `arrays()` names them for `.npz` files and
  parameter counts),
* `validate(check)`: shapes, values and where in a model it may sit, raising `ModelError`
  that names the layer,
* `describe()`: the one-line description `inspect` and the generated files' banners print,
* `reference(x, mask)`: its float64 forward pass (the second oracle, `lstmgen.reference`),
* the facts targets and the model need: sizes, whether it keeps a state across timesteps
  (`recurrent`), what it accepts and returns (a sequence of timesteps or one vector), how it
  changes the number of timesteps, whether it can run one timestep at a time
  (`streamable`), its optional features.

Code that must treat kinds differently dispatches on these facts or through `LAYER_TYPES`
(kind -> class), never through chains of `isinstance`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np

from ..errors import ModelError

if TYPE_CHECKING:
    from .model import Model

#: A mask: [N, T] booleans, True for a real (unmasked) timestep; None when nothing is masked.
Mask = "np.ndarray | None"

#: kind -> layer class, in the order the kinds were registered (the support table's order).
LAYER_TYPES: dict[str, type[Layer]] = {}

L = TypeVar("L", bound="type[Layer]")


def register(cls: L) -> L:
    """Class decorator: make `cls` the IR layer kind `cls.kind`."""
    if not cls.kind or cls.kind in LAYER_TYPES:
        raise ValueError(f"layer kind {cls.kind!r} is empty or registered twice")
    LAYER_TYPES[cls.kind] = cls
    return cls


@dataclass
class Check:
    """Where a layer sits while its model is validated."""

    model: Model
    index: int  # position in model.layers
    sequence: bool  # whether its input is a sequence (else one vector)
    where: str  # "layer 'NAME' (kind)", the prefix of every error message

    def fail(self, message: str) -> ModelError:
        return ModelError(f"{self.where}: {message}")


class Layer:
    """The base of every IR layer kind (see the module docstring)."""

    #: The IR kind, e.g. "lstm" (the key in LAYER_TYPES and in .npz files).
    kind: ClassVar[str] = ""
    #: How the kind is called in tables and reports, e.g. "LSTM".
    title: ClassVar[str] = ""
    #: True for layers with a state carried across timesteps (LSTM, GRU, SimpleRNN,
    #: Bidirectional): a model needs at least one.
    recurrent: ClassVar[bool] = False
    #: True for layers that work only with the model's own fixed number of timesteps
    #: (Flatten).
    needs_fixed_timesteps: ClassVar[bool] = False

    name: str
    origin: str  # how the framework's arrays were mapped, for `lstmgen inspect`

    # ---- sizes -----------------------------------------------------------------------
    @property
    def input_size(self) -> int:
        raise NotImplementedError

    @property
    def output_size(self) -> int:
        raise NotImplementedError

    # ---- shape facts -----------------------------------------------------------------
    def returns_sequence(self, sequence_in: bool) -> bool:
        """Whether the output is a sequence, given whether the input is one."""
        return sequence_in

    def output_timesteps(self, t_len: int) -> int:
        """Timesteps of the output sequence for an input of `t_len` timesteps."""
        return t_len

    @property
    def streamable(self) -> bool:
        """Whether the layer can run one timestep at a time (no reversed time, no window of
        timesteps, nothing that needs the whole sequence)."""
        return True

    # ---- arrays, features, parts -----------------------------------------------------
    def arrays(self) -> dict[str, np.ndarray | None]:
        """The layer's arrays by field name (None for an absent optional array)."""
        return {}

    def parameter_count(self) -> int:
        return sum(a.size for a in self.arrays().values() if a is not None)

    def features(self) -> set[str]:
        """The optional IR features this layer uses (targets declare which they implement)."""
        return set()

    def activation_names(self) -> set[str]:
        """The activations this layer applies (not those of the layers inside it)."""
        fields = ("activation", "gate_activation", "cell_activation", "output_activation")
        return {str(getattr(self, f)) for f in fields if hasattr(self, f)}

    def parts(self) -> list[Layer]:
        """This layer and the layers inside it (a Bidirectional's two directions)."""
        return [self]

    # ---- validation, description, reference ------------------------------------------
    def validate(self, check: Check) -> None:
        raise NotImplementedError

    def describe(self) -> str:
        """One line: `NAME: Kind sizes (details)`."""
        raise NotImplementedError

    def reference(self, x: np.ndarray, mask: Any) -> tuple[np.ndarray, Any]:
        """The float64 forward pass: x [N, T, F] (a sequence) or [N, F] (a vector), and the
        mask of x's timesteps (or None) -> (y, the mask of y's timesteps or None)."""
        raise NotImplementedError


class PerStepLayer(Layer):
    """A layer that maps every timestep (or one vector) on its own: size in = size out
    unless the kind says otherwise; a sequence stays a sequence with the same mask."""

    def validate(self, check: Check) -> None:
        pass

    def reference(self, x: np.ndarray, mask: Any) -> tuple[np.ndarray, Any]:
        return self.apply(x), mask

    def apply(self, x: np.ndarray) -> np.ndarray:
        """The float64 map over the last axis."""
        raise NotImplementedError


class KeepsSize:
    """Mix-in for a kind whose output has as many features as its input, `size`."""

    size: int

    @property
    def input_size(self) -> int:
        return self.size

    @property
    def output_size(self) -> int:
        return self.size
