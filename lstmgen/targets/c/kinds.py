"""The layer kinds of the C target, keyed by IR kind: what the Python side needs to know of
each (its C is all in `templates/c/layers/<kind>.j2`).

Each entry says

* its *role* in the execution plan (`lstmgen.targets.c.plan`): ``step`` (runs on every
  timestep or on one vector), ``recurrent``, ``bidirectional``, ``window`` (Conv1D,
  Pool1D: windows of timesteps), ``input`` (Masking, Embedding: first layer, their work
  happens where a timestep is read), ``crop`` (a time slice), ``collect`` (every step into
  one vector: Flatten, GlobalPool) or ``repeat`` (a vector into a sequence);
* the arrays it stores in the float build, in their stored form (`arrays`; the quantized
  forms come from `lstmgen.targets.c.quant`), each by the suffix of its C identifier;
* for a recurrent kind, the state values and the kernel scratch of one step;
* the code bytes of its functions (arm-none-eabi-gcc 12 -Os, Cortex-M4F), for the memory
  estimate (`lstmgen.targets.c.memory` measures the real figure when it can);
* the `--quantize` modes that implement it.

Adding a kind to the C target: its template and its name in `LAYERS`; an entry here only
when it is more than a per-timestep layer storing the IR's arrays as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ...ir import LAYER_TYPES, VECTOR_ACTIVATIONS, Layer, Model

INTEGER_MODES = frozenset({"int8", "int16"})
ALL_QUANTIZED = frozenset({"int8", "int16", "fixed16"})


@dataclass(frozen=True)
class Stored:
    """One array as the C code stores it."""

    values: np.ndarray
    ctype: str = "float"  # "float", "int8_t", "int16_t" or "int32_t"

    @property
    def bytes(self) -> int:
        return int(self.values.size) * {"float": 4, "int8_t": 1, "int16_t": 2}.get(self.ctype, 4)


def transposed(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a).T)


def stored(**arrays: np.ndarray | None) -> dict[str, Stored]:
    """The float32 arrays given, in order, without the absent ones."""
    return {k: Stored(np.asarray(v, np.float32)) for k, v in arrays.items() if v is not None}


class CKind:
    """What the C target knows of one IR kind (see the module docstring)."""

    kind: ClassVar[str] = ""
    role: ClassVar[str] = "step"
    #: the --quantize modes that implement the kind
    quantized: ClassVar[frozenset[str]] = frozenset()
    #: code bytes of the kind's functions (one copy per model)
    code: ClassVar[int] = 0
    #: a collecting kind: the vector it fills, and whether each step writes its own row
    vector: ClassVar[str] = ""
    collects_rows: ClassVar[bool] = False

    def arrays(self, layer: Any) -> dict[str, Stored]:
        """The float build's arrays of `layer`, by identifier suffix, in declaration order
        (by default the IR's arrays as they are, by field name)."""
        return stored(**layer.arrays())

    def state_values(self, cell: Any) -> int:
        """Values of recurrent state one cell keeps (0: none)."""
        return 0

    def scratch_values(self, cell: Any, mode: str) -> int:
        """Values of scratch one step of the cell's kernel needs."""
        return 0

    def flags(self, cell: Any) -> tuple[str, ...]:
        """The optional features that change a cell's step (and so its kernel)."""
        return ()

    def variant(self, cell: Any, acts: tuple[str, ...]) -> str:
        """What tells a cell's kernel from the kind's others (a C identifier fragment)."""
        return "_".join(acts + self.flags(cell))

    def starts_with_output(self, cell: Any) -> bool:
        """Whether a cell's output before any step is not zero (an initial h)."""
        return False

    #: math functions its code calls besides the activations ("sqrt")
    math: ClassVar[frozenset[str]] = frozenset()
    #: an Activation layer applies even "linear" (a Dense or Conv1D does nothing then)
    applies_linear: ClassVar[bool] = False

    def activations(self, layer: Any, fixed: bool) -> tuple[set[str], set[str]]:
        """The activations the layer's code calls: (elementwise act_NAME functions, vector
        apply_NAME functions)."""
        a = getattr(layer, "activation", None)
        if not isinstance(a, str) or (a == "linear" and not self.applies_linear):
            return set(), set()
        return (set() if a in VECTOR_ACTIVATIONS else {a}), {a}

    def masks(self, layer: Any) -> bool:
        """Whether the layer masks timesteps (the recurrent layers skip them)."""
        return False

    #: a masked timestep's features become zeros (Masking; an Embedding's rows stay)
    zeroes_masked: ClassVar[bool] = False

    def code_bytes(self, parts: list[Any], model: Model, mode: str, math: str | None) -> int:
        """Code of the kind's functions for these layers (or cells) of `model`."""
        return self.code if parts else 0


class RecurrentKind(CKind):
    role = "recurrent"

    def activations(self, layer: Any, fixed: bool) -> tuple[set[str], set[str]]:
        return set(layer.activations()), set()


class LSTMKind(RecurrentKind):
    kind, quantized = "lstm", ALL_QUANTIZED
    KERNEL = {"float": 200, "int8": 250, "int16": 250, "fixed16": 300}
    PER_FEATURE = 60  # peephole, clip, input_forget or projection in a kernel

    def arrays(self, layer: Any) -> dict[str, Stored]:
        return stored(
            Wt=transposed(layer.input_weights),
            Ut=transposed(layer.recurrent_weights),
            b=layer.bias,
            peep=layer.peephole,
            Pt=None if layer.projection is None else transposed(layer.projection),
            h0=layer.initial_h,
            c0=layer.initial_c,
        )

    def state_values(self, cell: Any) -> int:
        return cell.output_size + cell.units

    def scratch_values(self, cell: Any, mode: str) -> int:
        return cell.units if mode == "fixed16" else 4 * cell.units

    def flags(self, cell: Any) -> tuple[str, ...]:
        return tuple(
            flag
            for flag, used in (
                ("peephole", cell.peephole is not None),
                ("clip", cell.clip is not None),
                ("input_forget", cell.input_forget),
                ("proj", cell.projection is not None),
            )
            if used
        )

    def starts_with_output(self, cell: Any) -> bool:
        return cell.initial_h is not None

    def code_bytes(self, parts: list[Any], model: Model, mode: str, math: str | None) -> int:
        kernels = {
            (c.activations(), tuple(sorted(c.features() - {"initial_state"}))) for c in parts
        }
        return self.KERNEL[mode] * len(kernels) + self.PER_FEATURE * sum(len(k[1]) for k in kernels)


class GRUKind(RecurrentKind):
    kind, code = "gru", 330  # per kernel

    def arrays(self, layer: Any) -> dict[str, Stored]:
        h = layer.units
        bias, bn = layer.bias, None
        if layer.reset_after and layer.recurrent_bias is not None:
            # the recurrent biases of z and r are plain sums: fold them into the bias
            rb = layer.recurrent_bias
            bias = np.zeros(3 * h, np.float32) if bias is None else bias.copy()
            bias[: 2 * h] = bias[: 2 * h] + rb[: 2 * h]
            bn = rb[2 * h :]
        return stored(
            Wt=transposed(layer.input_weights),
            Ut=transposed(layer.recurrent_weights[: 2 * h]),
            Unt=transposed(layer.recurrent_weights[2 * h :]),
            b=bias,
            bn=bn,
        )

    def state_values(self, cell: Any) -> int:
        return cell.units

    def scratch_values(self, cell: Any, mode: str) -> int:
        return 4 * cell.units

    def variant(self, cell: Any, acts: tuple[str, ...]) -> str:
        return "_".join(acts + ("after" if cell.reset_after else "before",))

    def code_bytes(self, parts: list[Any], model: Model, mode: str, math: str | None) -> int:
        return self.code * len({(c.activations(), c.reset_after) for c in parts})


class SimpleRNNKind(RecurrentKind):
    kind, code = "simple_rnn", 110  # per kernel

    def arrays(self, layer: Any) -> dict[str, Stored]:
        return stored(
            Wt=transposed(layer.input_weights),
            Ut=transposed(layer.recurrent_weights),
            b=layer.bias,
        )

    def state_values(self, cell: Any) -> int:
        return cell.units

    def scratch_values(self, cell: Any, mode: str) -> int:
        return cell.units

    def code_bytes(self, parts: list[Any], model: Model, mode: str, math: str | None) -> int:
        return self.code * len({c.activations() for c in parts})


class BidirectionalKind(CKind):
    kind, role, quantized = "bidirectional", "bidirectional", INTEGER_MODES
    MERGE = 40  # one merge function
    CALL = 50  # the second direction's call

    def code_bytes(self, parts: list[Any], model: Model, mode: str, math: str | None) -> int:
        return self.MERGE * len({p.merge_mode for p in parts}) + self.CALL * len(parts)


class DenseKind(CKind):
    kind, quantized = "dense", ALL_QUANTIZED
    CODE = {"float": 70, "int8": 80, "int16": 80, "fixed16": 90}

    def arrays(self, layer: Any) -> dict[str, Stored]:
        return stored(W=layer.weights, b=layer.bias)

    def activations(self, layer: Any, fixed: bool) -> tuple[set[str], set[str]]:
        if not fixed:
            return super().activations(layer, fixed)
        # fixed16: dense_forward takes its activation as a function (softmax after it)
        a = layer.activation
        return {"linear" if a == "softmax" else a}, ({a} if a == "softmax" else set())

    def code_bytes(self, parts: list[Any], model: Model, mode: str, math: str | None) -> int:
        return self.CODE[mode] if parts else 0


class ActivationKind(CKind):
    kind, quantized, applies_linear = "activation", ALL_QUANTIZED, True


class MaskingKind(CKind):
    kind, role, code, zeroes_masked = "masking", "input", 60, True
    PER_CELL = 20  # the guard around a recurrent kernel for masked steps

    def masks(self, layer: Any) -> bool:
        return True

    def code_bytes(self, parts: list[Any], model: Model, mode: str, math: str | None) -> int:
        cells = sum(len(recurrent_cells(layer)) for layer in model.layers)
        return self.code + self.PER_CELL * cells if parts else 0


class NormalizeKind(CKind):
    kind, code = "normalize", 40

    def arrays(self, layer: Any) -> dict[str, Stored]:
        return stored(mean=layer.mean, std=layer.std)


class LayerNormKind(CKind):
    kind, code, math = "layer_norm", 130, frozenset({"sqrt"})
    BUILTIN_SQRT = 90

    def arrays(self, layer: Any) -> dict[str, Stored]:
        return stored(gamma=layer.gamma, beta=layer.beta)

    def code_bytes(self, parts: list[Any], model: Model, mode: str, math: str | None) -> int:
        return (self.code + (self.BUILTIN_SQRT if math == "builtin" else 0)) if parts else 0


WINDOW_CALL = 60  # one Conv1D / Pool1D call in NAME_predict (+ output steps)


class Conv1DKind(CKind):
    kind, role, code = "conv1d", "window", 170

    def arrays(self, layer: Any) -> dict[str, Stored]:
        return stored(W=layer.weights.transpose(1, 2, 0), b=layer.bias)

    def code_bytes(self, parts: list[Any], model: Model, mode: str, math: str | None) -> int:
        return self.code + WINDOW_CALL * len(parts) if parts else 0


class Pool1DKind(CKind):
    kind, role, code = "pool1d", "window", 90

    def code_bytes(self, parts: list[Any], model: Model, mode: str, math: str | None) -> int:
        types = {p.pool_type for p in parts}
        return self.code * len(types) + WINDOW_CALL * len(parts)


class FlattenKind(CKind):
    kind, role, code = "flatten", "collect", 20
    vector = "flat"  # the vector NAME_predict collects the steps in
    collects_rows = True  # each step writes its own row of it


class BatchNormKind(CKind):
    kind, code, quantized = "batch_norm", 40, INTEGER_MODES

    def arrays(self, layer: Any) -> dict[str, Stored]:
        scale, shift = layer.scale_and_shift()  # folded in float64, stored as float32
        return stored(scale=scale, shift=shift)


class EmbeddingKind(CKind):
    kind, role, code, quantized = "embedding", "input", 40, ALL_QUANTIZED

    def arrays(self, layer: Any) -> dict[str, Stored]:
        return stored(W=layer.weights)

    def masks(self, layer: Any) -> bool:
        return bool(layer.mask_zero)


class RepeatVectorKind(CKind):
    kind, role, code, quantized = "repeat_vector", "repeat", 10, ALL_QUANTIZED


class GlobalPoolKind(CKind):
    kind, role, code, quantized = "global_pool", "collect", 60, INTEGER_MODES
    vector = "pooled"
    collects_rows = False  # each step's output is folded into it

    def code_bytes(self, parts: list[Any], model: Model, mode: str, math: str | None) -> int:
        return self.code * len({p.pool_type for p in parts})


class TimeSliceKind(CKind):
    kind, role, code, quantized = "time_slice", "crop", 50, ALL_QUANTIZED


#: The kinds the C target implements, in the order their code is composed.
KINDS: dict[str, CKind] = {
    k.kind: k
    for k in (
        LSTMKind(),
        GRUKind(),
        SimpleRNNKind(),
        BidirectionalKind(),
        DenseKind(),
        ActivationKind(),
        MaskingKind(),
        NormalizeKind(),
        LayerNormKind(),
        Conv1DKind(),
        Pool1DKind(),
        FlattenKind(),
        BatchNormKind(),
        EmbeddingKind(),
        RepeatVectorKind(),
        GlobalPoolKind(),
        TimeSliceKind(),
    )
}


#: What a kind without an entry above is: a per-timestep layer storing the IR's arrays as
#: they are (its template alone makes it work in the float build).
PER_STEP = CKind()


def kind_of(kind: str) -> CKind:
    return KINDS.get(kind, PER_STEP)


def composition_order() -> list[str]:
    """The order the templates compose the kinds' code in."""
    return list(KINDS) + [k for k in LAYER_TYPES if k not in KINDS]


def role(layer: Layer) -> str:
    return kind_of(layer.kind).role


def recurrent_cells(layer: Layer) -> list[Any]:
    """The unidirectional recurrent layers inside `layer` (both directions of a
    Bidirectional), each with its own state and kernel."""
    return [p for p in layer.parts() if p.recurrent and p.parts() == [p]]


def parts_of_kind(model: Model, kind: str) -> list[Any]:
    """Every layer, or direction of a Bidirectional, of `kind` in `model`."""
    return [p for layer in model.layers for p in layer.parts() if p.kind == kind]
