"""The typed render context of the C target: everything the templates read.

`ModelContext` (the templates' `m`) holds the model-wide facts, the layers (`LayerContext`,
one per IR layer and one per direction of a Bidirectional) and the loops of the plan:
`PartContext` (a sequence part and its tail), `StageContext` (one loop over the timesteps
and its step function), `GroupContext` (a prefix group run over whole sequences) and
`StepContext` (one operation of a step function's chain). Names in here are C identifiers
and the data of the arrays; all C syntax is in the templates (`templates/c/`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from .memory import MemoryEstimate
from .quant import FixedLayer, FixedPlan


@dataclass(frozen=True)
class CArray:
    """A `static const` array: identifier, element type, size and its values as C text."""

    ident: str
    ctype: str
    size: int
    text: str


@dataclass(frozen=True)
class Ref:
    """A vector the loops pass on: a local (or parameter) name, or a field of the state."""

    name: str
    state: bool = False


NONE = Ref("none")  # no output (a recurrent layer's output stays in its state)
#: accumulate_rows_streams reads a weight matrix once for a group of streams (12 or more)
#: when it has at least this many columns or values; smaller ones stay in the L1 cache and
#: each stream runs alone (the templates print these numbers into the C).
SHARED_PASS_COLUMNS = 256
SHARED_PASS_VALUES = 8192


@dataclass(frozen=True)
class RowRef:
    """Row `index` ("t": the loop's step, "src_t": the timestep read) of a sequence of rows
    of `stride` values at `base` (stride 0: the same vector for every row)."""

    base: Ref
    index: str = "src_t"
    stride: int = 0


@dataclass
class LayerContext:
    """One IR layer, or one direction of a Bidirectional (`direction`), as the templates
    see it; they read the IR layer's own fields through `layer`."""

    layer: Any
    kind: str
    ident: str  # unique among the model's layers and directions
    name: str  # safe in a C comment
    a: dict[str, CArray] = field(default_factory=dict)  # arrays by identifier suffix
    direction: str | None = None  # "forward" / "backward"
    fw: LayerContext | None = None  # a Bidirectional's directions
    bw: LayerContext | None = None
    fixed: FixedLayer | None = None  # fixed16: the Q formats around it
    keeps_out: bool = False  # keeps its last output in the state (Masking, initial h)
    acts: tuple[str, ...] = ()  # a recurrent cell's activations, as C identifiers
    flags: tuple[str, ...] = ()  # an LSTM's optional step features
    variant: str = ""  # what tells its kernel from the kind's others
    act: str = ""  # the activation of a Dense, Activation or Conv1D layer
    reads_ids: bool = False  # its input is token ids (an Embedding)

    @property
    def input_size(self) -> int:
        return int(self.layer.input_size)

    @property
    def output_size(self) -> int:
        return int(self.layer.output_size)

    @property
    def has_arrays(self) -> bool:
        return bool(self.a) or any(d is not None and d.a for d in (self.fw, self.bw))

    @property
    def out(self) -> str:
        """The state field holding its output."""
        return f"{self.ident}_out" if self.keeps_out else f"{self.ident}_h"

    @property
    def first(self) -> str:
        """A time slice's variable: where its kept timesteps start."""
        return f"{self.ident}_first"


@dataclass
class StepContext:
    """One operation of a chain: a recurrent kernel (`layer` a cell), a layer's function,
    a Bidirectional's merge with the stored backward output, or a copy."""

    op: str  # "recurrent", "layer", "merge" or "copy"
    layer: LayerContext | None
    src: Ref
    dst: Ref
    guarded: bool = False  # skipped for a masked timestep
    size: int = 0  # values a copy copies

    @property
    def template(self) -> str:
        """The kind whose template holds its code."""
        assert self.layer is not None
        return self.layer.kind

    @property
    def macro(self) -> str:
        return "merge" if self.op == "merge" else "step"


@dataclass
class StageContext:
    """One loop over the timesteps and its step function (see `plan.Stage`)."""

    index: int
    number: str  # suffix of its function's name ("" when the model has one stage)
    chain: list[StepContext]
    input_size: int
    output_size: int
    src: RowRef
    reads_input: bool = False  # reads the model's input x (or token ids)
    side: RowRef | None = None
    dst: RowRef | None = None  # None: writes nothing (a direction, or the state read)
    state_out: Ref | None = None  # the state field the tail reads instead
    reverse: bool = False
    by_source_time: bool = False
    bidirectional: bool = False
    real: bool = False  # takes the `real` flag of a masked model (skips masked steps)
    uses_state: bool = True  # runs a recurrent layer (takes the state)
    collect: bool = False  # the part's collecting layer takes each step's output
    crops: list[LayerContext] = field(default_factory=list)
    crops_before: list[LayerContext] = field(default_factory=list)
    source_crops: list[LayerContext] = field(default_factory=list)
    until: LayerContext | None = None


@dataclass
class GroupContext:
    """A prefix group (`plan.Part.prefix`): a window layer, or per-timestep layers run on
    every row, from one whole-sequence buffer into the next."""

    op: str  # "window" or "rows"
    layers: list[LayerContext]
    src: Ref
    dst: Ref
    input_size: int
    output_size: int
    index: int = 0  # of a rows group: its function's number
    chain: list[StepContext] = field(default_factory=list)

    @property
    def reads_input(self) -> bool:
        return self.src.name == "x"

    @property
    def src_row(self) -> RowRef:
        return RowRef(self.src, "t", self.input_size)

    @property
    def dst_row(self) -> RowRef:
        return RowRef(self.dst, "t", self.output_size)

    @property
    def l(self) -> LayerContext:  # noqa: E743 (the window layer, as the templates name it)
        return self.layers[0]


@dataclass
class TailContext:
    """The layers after a part's sequence collapsed to one vector, run once."""

    number: str
    chain: list[StepContext]
    input_size: int
    output_size: int


@dataclass
class PartContext:
    """A sequence part of the plan and its tail (see `plan.Part`)."""

    index: int
    stages: list[StageContext]
    vector: Ref  # the vector the part collapses to (what its tail or the next part reads)
    masked: bool = False  # its timesteps carry the model's mask
    prefix: list[GroupContext] = field(default_factory=list)
    tail: TailContext | None = None
    tail_dst: str = "y"
    final_merge: LayerContext | None = None
    end: LayerContext | None = None  # the layer collecting every step
    collect_row: RowRef | None = None  # where step t writes, when it has its own row
    repeat: LayerContext | None = None  # the RepeatVector it starts with
    last: str | None = None  # a local for the main line's per-step output
    last_size: int = 0
    repeated: str | None = None  # a local the tail fills for the next part
    prefix_buffers: list[str] = field(default_factory=list)
    slots: list[str] = field(default_factory=list)
    max_steps: int = 0  # rows of its slots (after the first part)


@dataclass(frozen=True)
class KindRef:
    name: str
    role: str


@dataclass
class ModelContext:
    """The templates' `m` (see the module docstring)."""

    name: str
    banner: dict[str, Any]
    memory: MemoryEstimate
    # the build
    quantize: str | None
    fixed: FixedPlan | None
    builtin_math: bool
    fn: dict[str, str]  # the math functions by purpose: exp, log, log1p, expm1, fabs, sqrt
    needs: dict[str, bool]  # which builtin math / fixed-point helpers the code needs
    tables: dict[str, Any]  # fixed16 activation tables
    wtype: str
    value_type: str
    # the input
    input_size: int
    output_size: int
    input_type: str  # the element type of NAME_predict's input
    x: str  # its name
    ids: bool  # the input is token ids
    vocabulary: int
    input: LayerContext | None  # a first layer that reads the input (Masking, Embedding)
    mask: LayerContext | None  # the layer whose mask the recurrent layers honour
    # the layers
    layers: list[LayerContext]
    cells: list[LayerContext]
    kinds: list[KindRef]
    elementwise: list[str]
    vector_acts: list[str]
    fixed_vector_acts: list[str]
    # the loops
    parts: list[PartContext]
    stages: list[StageContext]
    rows_groups: list[GroupContext]
    windows: list[LayerContext]
    counting: list[LayerContext]  # the layers NAME_output_timesteps follows
    crops: list[LayerContext]
    checks_count: bool  # NAME_predict refuses a T that leaves no timestep
    fixed_timesteps: LayerContext | None  # a layer that needs the model's own T
    timesteps: int | None
    min_timesteps: int
    max_timesteps: int
    needs_buffer: bool
    needs_max_timesteps: bool
    prefix_buffers: int
    prefix_width: int
    max_width: int
    max_gates: int
    max_units: int
    uses_copy: bool
    uses_same_padding: bool
    streamable: bool
    returns_sequences: bool
    initial_state: bool
    go_backwards: bool
    only_lstm: bool
    has_selftest: bool

    def x_row(self, index: str) -> RowRef:
        """Row `index` of NAME_predict's input features x."""
        return RowRef(Ref("x"), index, self.input_size)

    @property
    def NAME(self) -> str:  # noqa: N802 (the upper-case prefix of the header's macros)
        return self.name.upper()

    @property
    def kind_names(self) -> set[str]:
        return {k.name for k in self.kinds}

    @property
    def step_n(self) -> StageContext | None:
        """The stage NAME_step_n batches, when the model has one: a float build (not
        quantized, not fixed16) whose streaming step is one stage of plain LSTM or GRU layers
        (LSTM: no peephole, clip, coupled gate or projection; no mask, token ids, windows or
        direction) reading the input and each other's state, then optionally a tail.
        Other models get no NAME_step_n."""
        if not self.streamable or self.quantize or self.fixed or self.ids or self.mask:
            return None
        if len(self.parts) != 1 or self.parts[0].prefix or len(self.stages) != 1:
            return None
        stage = self.stages[0]
        if not stage.reads_input or stage.real or stage.side or stage.crops or stage.reverse:
            return None
        for st in stage.chain:
            layer = st.layer
            if st.op != "recurrent" or layer is None or layer.kind not in ("lstm", "gru"):
                return None
            if st.guarded or layer.flags or layer.direction or layer.keeps_out:
                return None
        return stage

    @property
    def chunked(self) -> StageContext | None:
        """The stage the chunked NAME_predict runs, when the model has one: that of
        NAME_step_n when all its layers are LSTMs."""
        stage = self.step_n
        if stage is None or any(st.layer.kind != "lstm" for st in stage.chain if st.layer):
            return None
        return stage

    shared_pass_columns: ClassVar[int] = SHARED_PASS_COLUMNS
    shared_pass_values: ClassVar[int] = SHARED_PASS_VALUES

    @property
    def shared_pass(self) -> bool:
        """Whether some weight matrix NAME_step_n or the chunked NAME_predict reads is large
        enough for accumulate_rows_streams to read it once for a group of streams (at least
        SHARED_PASS_COLUMNS columns or SHARED_PASS_VALUES values); below that every stream
        runs alone, and the register-tile kernels are not emitted."""
        stage = self.step_n
        if stage is None:
            return False
        for st in stage.chain:
            if st.layer is None:
                continue
            d, h = st.layer.input_size, st.layer.layer.units
            if st.layer.layer.kind == "lstm":
                shapes = [(4 * h, d), (4 * h, h)]
            else:  # GRU: [z r h] x inputs, [z r] x units, h x units
                shapes = [(3 * h, d), (2 * h, h), (h, h)]
            for columns, rows in shapes:
                if columns >= SHARED_PASS_COLUMNS or columns * rows >= SHARED_PASS_VALUES:
                    return True
        return False

    @property
    def step_n_rows(self) -> int:
        """The most rows (inputs or units) of a weight matrix NAME_step_n reads."""
        stage = self.step_n
        assert stage is not None
        return max(max(st.layer.input_size, st.layer.layer.units) for st in stage.chain if st.layer)

    @property
    def step_n_panel_rows(self) -> int:
        """Rows of NAME_step_n's weight panel: those of the largest matrix, or with register
        tiles (shared_pass) an LSTM's input and recurrent rows together (its panels of both
        matrices are read in one pass)."""
        stage = self.step_n
        assert stage is not None
        return max(
            st.layer.input_size + st.layer.layer.units
            if self.shared_pass and st.layer.kind == "lstm"
            else max(st.layer.input_size, st.layer.layer.units)
            for st in stage.chain
            if st.layer
        )

    @property
    def step_n_max_units(self) -> int:
        """The most units of a recurrent layer NAME_step_n and the chunked predict run."""
        stage = self.step_n
        assert stage is not None
        return max(st.layer.layer.units for st in stage.chain if st.layer)

    @property
    def streams(self) -> int:
        """Default streams per group of NAME_step_n: a multiple of 4 up to 32 whose gate
        scratch (streams x 4H floats) stays within 128 KB of stack (LSTM 256: 32 streams,
        1.2x the rate of two groups of 16, which read the weights twice)."""
        return max(4, min(32, 32768 // self.max_gates // 4 * 4))


@dataclass
class SelftestContext:
    """The vectors and tolerance `NAME_selftest.c` embeds."""

    sequences: int
    timesteps: int
    per_seq: int
    oracle: str
    tol: float
    x: str
    y: str
    tol_text: str = ""
    tol_q: int = 0
    one_q: int = 0
