"""The IR `Model`: an input size and an ordered list of layers, its validation and the
facts derived from its layers' own facts (no per-kind code here).

Data flows as a sequence of T rows (one per timestep) until a layer returns one vector (a
recurrent layer's last state, Flatten, global pooling, a squeezed time slice); layers after
that see that vector, until a RepeatVector turns it into a sequence again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ModelError
from ..limits import check_layers, check_parameters, check_timesteps
from ..limits import current as current_limits
from .base import Check, Layer
from .checks import check_positive_int


@dataclass
class Model:
    """A whole model: input size, ordered layers, and where it came from."""

    input_size: int
    layers: list[Layer]
    name: str = "model"
    source: str = ""  # human-readable provenance, e.g. "Keras 3.15.1, sine.keras"
    timesteps: int | None = None  # fixed sequence length of the source model, if any
    notes: list[str] = field(default_factory=list)  # what the extractor dropped/folded

    # ---- derived facts -------------------------------------------------------------
    @property
    def output_size(self) -> int:
        return self.layers[-1].output_size if self.layers else self.input_size

    def sequence_flags(self) -> list[bool]:
        """For each layer, whether its output is a sequence (the input is one)."""
        flags, sequence = [], True
        for layer in self.layers:
            sequence = layer.returns_sequence(sequence)
            flags.append(sequence)
        return flags

    @property
    def returns_sequences(self) -> bool:
        """True when the output has one row per timestep."""
        return all(self.sequence_flags()[-1:])

    @property
    def streamable(self) -> bool:
        """True when one-step-at-a-time inference means something: no reversed time, no
        layer that needs a window of timesteps or the whole sequence."""
        return all(layer.streamable for layer in self.layers)

    @property
    def token_vocabulary(self) -> int | None:
        """The number of token ids when the input is token ids (an Embedding first),
        else None (the input is features)."""
        first = self.layers[0] if self.layers else None
        return (
            getattr(first, "vocabulary_size", None)
            if getattr(first, "consumes_ids", False)
            else None
        )

    def timesteps_before(self, index: int, t_len: int) -> int:
        """Timesteps of the sequence layer `index` reads, for `t_len` input timesteps."""
        for layer in self.layers[:index]:
            t_len = layer.output_timesteps(t_len)
        return t_len

    def output_timesteps(self, t_len: int) -> int:
        """Timesteps of a sequence output for an input of `t_len` steps."""
        return self.timesteps_before(len(self.layers), t_len)

    def min_timesteps(self) -> int:
        """The fewest input timesteps that leave every sequence layer at least one (the
        model's own T when a layer needs exactly that, e.g. Flatten)."""
        if any(layer.needs_fixed_timesteps for layer in self.layers) and self.timesteps:
            return self.timesteps
        # a model that accepts t_len timesteps accepts more (every layer's output length
        # grows with its input's), so: double to a bound, then bisect
        limit = current_limits().timesteps
        high = 1
        while not self.accepts_timesteps(high):
            if high >= limit:
                return limit
            high = min(2 * high, limit)
        low = high // 2  # rejected (or 0)
        while high - low > 1:
            middle = (low + high) // 2
            if self.accepts_timesteps(middle):
                high = middle
            else:
                low = middle
        return high

    def accepts_timesteps(self, t_len: int) -> bool:
        """Whether an input of `t_len` timesteps leaves every sequence layer a step."""
        sequence = True
        for layer in self.layers:
            if sequence and t_len < 1:
                return False
            t_len = layer.output_timesteps(t_len)
            if sequence and not layer.returns_sequence(sequence) and t_len < 1:
                return False  # a vector taken from no timestep (a squeezed slice)
            sequence = layer.returns_sequence(sequence)
        return not sequence or t_len >= 1

    def kinds(self) -> set[str]:
        """The layer kinds in use (a Bidirectional counts with its inner kind)."""
        return {part.kind for layer in self.layers for part in layer.parts()}

    def activations(self) -> dict[str, list[str]]:
        """Activations in use -> the names of the layers (or directions) applying them."""
        used: dict[str, list[str]] = {}
        for layer in self.layers:
            for part in layer.parts():
                for name in sorted(part.activation_names()):
                    used.setdefault(name, []).append(part.name)
        return used

    def parameter_count(self) -> int:
        return sum(layer.parameter_count() for layer in self.layers)

    def features(self) -> dict[str, list[str]]:
        """Optional IR features in use -> the names of the layers using them."""
        used: dict[str, list[str]] = {}
        for layer in self.layers:
            for feature in sorted(layer.features()):
                used.setdefault(feature, []).append(layer.name)
        return used

    def sequence_layer_count(self) -> int:
        """How many leading layers see a sequence before the first one that returns a
        vector (that one included)."""
        for k, sequence in enumerate(self.sequence_flags()):
            if not sequence:
                return k + 1
        return len(self.layers)

    # ---- validation ----------------------------------------------------------------
    def validate(self) -> Model:
        """Check shapes, values and structure; raise ModelError naming the culprit."""
        if (
            not isinstance(self.input_size, int)
            or isinstance(self.input_size, bool)
            or self.input_size <= 0
        ):
            raise ModelError(
                f"model input size must be a positive integer, got {self.input_size!r}"
            )
        for layer in self.layers:
            if not isinstance(layer, Layer):
                raise ModelError(f"unknown layer object {layer!r}")
        # the resource limits (lstmgen.limits): a backstop behind each reader's own checks
        check_layers(f"model '{self.name}'", len(self.layers))
        check_parameters(
            f"model '{self.name}'",
            sum(
                int(getattr(a, "size", 0))
                for layer in self.layers
                for part in layer.parts()
                for a in part.arrays().values()
            ),
        )
        if self.timesteps is not None:
            check_positive_int(self.timesteps, f"model '{self.name}'", "timesteps")
            check_timesteps(f"model '{self.name}'", self.timesteps)
        if not any(l.recurrent for l in self.layers):
            raise ModelError(
                "model has no recurrent layer; lstmgen compiles models with at "
                "least one LSTM, GRU or SimpleRNN"
            )
        names = [l.name for l in self.layers]
        if len(set(names)) != len(names):
            raise ModelError(f"layer names must be unique, got {names}")
        width = self.input_size
        sequence = True
        for index, layer in enumerate(self.layers):
            where = f"layer '{layer.name}' ({layer.kind})"
            layer.validate(Check(model=self, index=index, sequence=sequence, where=where))
            if layer.input_size != width:
                raise ModelError(
                    f"{where}: expects input size {layer.input_size} "
                    f"but the previous layer gives {width}"
                )
            sequence = layer.returns_sequence(sequence)
            width = layer.output_size
        return self
