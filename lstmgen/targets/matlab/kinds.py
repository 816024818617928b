"""What the MATLAB renderer must know about a layer kind beyond the IR's own facts.

The MATLAB text of every kind is its template, `templates/matlab/layers/<kind>.j2`. A few
kinds also change how data flows between the generated lines, which the renderer must know
before any template runs; `RULES` holds them, keyed by kind:

* `states`: the persistent state a recurrent layer keeps in NAME_step (and starts from in
  NAME_predict),
* `new_timesteps`: NAME_predict computes `T_IDENT`, the number of timesteps of the layer's
  output sequence (Conv1D, pooling, RepeatVector, TimeSlice),
* `mask_out`: the variable flagging the masked timesteps of the output (Masking and an
  Embedding with mask_zero create `masked`, a TimeSlice slices it, a RepeatVector drops it),
* `limits`: the layer makes short inputs give no timestep (the help and the assert say why),
* `no_step`: why a kind that cannot run one timestep at a time leaves the model without
  NAME_step (the help text of NAME_predict gives the reasons).

A kind without an entry behaves as `KindRules`: a layer that maps every timestep (or its one
vector) on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ...ir import Layer


@dataclass(frozen=True)
class StateVar:
    """One persistent state vector of a recurrent layer."""

    var: str  # its variable, e.g. h_lstm
    size: int
    init: str | None = None  # the weights field it starts from (None: zero)
    held_output: bool = False  # the output held over masked steps (not h itself)


@dataclass(frozen=True, order=True)
class NoStepReason:
    """Why a layer cannot stream: `phrase` (one per group, in `group` order) and the name
    of what does it (joined with `joiner` within the group, in `rank` order)."""

    group: int
    phrase: str
    rank: int = 0
    name: str = ""
    joiner: str = " and "


WINDOWS = (0, "reads windows of timesteps")
FLATTEN = (1, "flattens all its timesteps into one vector")
POOLS = (2, "pools over all its timesteps")
SLICES = (3, "keeps a slice of its timesteps")
REPEATS = (4, "repeats one vector as a new sequence")
BACKWARDS = (9, "reads time backwards")


class KindRules:
    """A layer that maps every timestep (or its one vector) on its own."""

    #: NAME_predict computes T_IDENT, the timesteps of the output sequence.
    new_timesteps: ClassVar[bool] = False
    #: Which layers make a short input give no timestep ("windows", "slice"), or "".
    limits: ClassVar[str] = ""
    #: A recurrent kind with a cell state c next to h (the help texts name it).
    cell_state: ClassVar[bool] = False

    def states(self, layer: Any, ident: str, masked: bool) -> list[StateVar]:
        return []

    def mask_out(
        self, layer: Any, ident: str, mask_in: str | None, sequence_out: bool
    ) -> str | None:
        """The mask variable of the output: the input's, while the timesteps stay."""
        return mask_in if sequence_out and not self.new_timesteps else None

    def no_step(self, layer: Any) -> NoStepReason | None:
        return None


class RecurrentRules(KindRules):
    """GRU and SimpleRNN: the state is h; go_backwards reads time backwards."""

    def states(self, layer: Any, ident: str, masked: bool) -> list[StateVar]:
        return [StateVar(f"h_{ident}", layer.units)]

    def no_step(self, layer: Any) -> NoStepReason | None:
        return NoStepReason(*BACKWARDS, 0, "go_backwards", " or ") if layer.go_backwards else None


class LSTMRules(RecurrentRules):
    """h (P values with a projection) and c; with an initial state behind a mask also the
    held output o, which is zero (not the initial h) before the first real step."""

    cell_state = True

    def states(self, layer: Any, ident: str, masked: bool) -> list[StateVar]:
        initial = "initial_state" in layer.features()
        states = [
            StateVar(f"h_{ident}", layer.output_size, f"h0_{ident}" if initial else None),
            StateVar(f"c_{ident}", layer.units, f"c0_{ident}" if initial else None),
        ]
        if masked and initial:
            states.append(StateVar(f"o_{ident}", layer.output_size, None, held_output=True))
        return states


class BidirectionalRules(KindRules):
    """Its state is its parts' (the renderer collects them); it reads time backwards."""

    def no_step(self, layer: Any) -> NoStepReason | None:
        return NoStepReason(*BACKWARDS, 1, "a Bidirectional layer", " or ")


class MaskingRules(KindRules):
    def mask_out(
        self, layer: Any, ident: str, mask_in: str | None, sequence_out: bool
    ) -> str | None:
        return "masked"


class EmbeddingRules(KindRules):
    def mask_out(
        self, layer: Any, ident: str, mask_in: str | None, sequence_out: bool
    ) -> str | None:
        return "masked" if layer.mask_zero else None


class WindowRules(KindRules):
    """Conv1D and pooling: windows of timesteps, T_IDENT output timesteps."""

    new_timesteps = True
    limits = "windows"

    def __init__(self, name: str, rank: int) -> None:
        self.name, self.rank = name, rank

    def no_step(self, layer: Any) -> NoStepReason | None:
        return NoStepReason(*WINDOWS, self.rank, self.name)


class FlattenRules(KindRules):
    def no_step(self, layer: Any) -> NoStepReason | None:
        return NoStepReason(*FLATTEN)


class GlobalPoolRules(KindRules):
    def no_step(self, layer: Any) -> NoStepReason | None:
        return NoStepReason(*POOLS, 0, "global pooling")


class RepeatVectorRules(KindRules):
    new_timesteps = True

    def no_step(self, layer: Any) -> NoStepReason | None:
        return NoStepReason(*REPEATS, 0, "RepeatVector")


class TimeSliceRules(KindRules):
    """A slice of the timesteps (T_IDENT of them, and the mask's slice), or one timestep."""

    new_timesteps = True
    limits = "slice"

    def mask_out(
        self, layer: Any, ident: str, mask_in: str | None, sequence_out: bool
    ) -> str | None:
        return f"masked_{ident}" if mask_in and sequence_out else None

    def no_step(self, layer: Any) -> NoStepReason | None:
        return None if layer.streamable else NoStepReason(*SLICES, 0, "TimeSlice")


RULES: dict[str, KindRules] = {
    "lstm": LSTMRules(),
    "gru": RecurrentRules(),
    "simple_rnn": RecurrentRules(),
    "bidirectional": BidirectionalRules(),
    "masking": MaskingRules(),
    "embedding": EmbeddingRules(),
    "conv1d": WindowRules("Conv1D", 0),
    "pool1d": WindowRules("pooling", 1),
    "flatten": FlattenRules(),
    "global_pool": GlobalPoolRules(),
    "repeat_vector": RepeatVectorRules(),
    "time_slice": TimeSliceRules(),
}
_PER_STEP = KindRules()


def rules(layer: Layer) -> KindRules:
    """The rules of `layer`'s kind."""
    return RULES.get(layer.kind, _PER_STEP)
