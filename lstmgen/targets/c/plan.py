"""The execution plan of an IR model in C: which layers run per timestep, in which loops.

The C target (its render context and its memory estimate) derives the generated loops from
this. A model is one or more *parts*: a sequence part (the layers that see a sequence, up
to the first one that returns one vector) followed by its *tail* (the layers that see that
vector, run once). A RepeatVector layer starts the next part: its sequence is `times`
copies of the vector before it (an autoencoder: encoder, RepeatVector, decoder).

Each kind plays a role here (`lstmgen.targets.c.kinds`): a per-timestep op, a recurrent
layer, a window over timesteps (Conv1D, Pool1D), an input layer (Masking, Embedding: what
they do happens where a timestep is read), a time slice, a layer that collects every step
into one vector (Flatten, GlobalPool), or a repeat (RepeatVector).

The sequence part runs time-major, one step through a chain of layers at a time, in
*stages*: one loop over the timesteps each, reading its per-step input from the part's
input or from a buffered sequence, forward or from the last step to the first.

* A `go_backwards` layer with another recurrent layer before it starts a new stage that
  reads the previous stage's buffered outputs from the last step to the first. As the first
  recurrent layer it needs no buffer: its stage just reads x backwards (per-timestep layers
  before it commute with the reversal).
* A `Bidirectional` layer runs as two directions, ``fw`` and ``bw``, each with its own
  state. It needs its whole input sequence twice, so after another recurrent layer that
  sequence is buffered; as the first recurrent layer its stages read x directly and re-run
  the per-timestep layers before it.

  - returning only its last state: a forward stage runs ``fw``, a reverse stage runs
    ``bw``, and the two final states are merged after the loops (`Part.final_merge`);
  - returning sequences: a reverse stage runs ``bw`` first and stores its outputs back in
    input time order (`Stage.by_source_time`); the forward stage then runs ``fw`` and
    merges its output with the stored one of the same timestep (op ``merge``, reading
    `Stage.side`), and the layers after it follow in the same stage.
* A time slice that keeps a range of timesteps (a crop): before any recurrent layer of the
  part it only moves where the stages start reading their input (`Stage.crops`); after one
  it ends the stage, whose outputs are buffered, and the next stage reads the kept rows.
  A slice that keeps the one timestep the part ends with (`squeeze`) ends the last stage's
  loop after that step (`Stage.until`); its output is that step's, like a recurrent
  layer's last state.

Buffers are assigned to *slots* (each a whole sequence of the model's widest vector) so that
a slot is reused once nothing reads its sequence any more (the parts do not share slots).

Two more shapes of sequence work sit around the stages of the first part:

* the *prefix*: Conv1D and Pool1D layers (in front of the recurrent layers only) need
  windows of timesteps, so the layers up to the last of them run sequence by sequence
  before the stages, in groups (`Part.prefix`): a Conv1D or Pool1D layer alone, or a run
  of per-timestep layers applied to every row. Group k writes prefix buffer k % 2 (so at
  most two, `Plan.prefix_buffers`), which the next group, or the stages, read as their
  input sequence. The per-timestep layers after the last window layer stay in the stages.
* a layer that collects the sequence into one vector (`Part.end`: Flatten, GlobalPool)
  is no op of a stage: the main-line stage hands it every step's output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...errors import LstmgenError
from ...ir import Model
from .kinds import role


@dataclass
class Op:
    """One per-timestep operation of a stage."""

    layer: int  # index into model.layers
    part: str | None = None  # None: the whole layer; "fw" / "bw": one direction of a
    #                             Bidirectional; "merge": its fw output merged with the
    #                             stored bw output of the same timestep


@dataclass
class Stage:
    ops: list[Op] = field(default_factory=list)
    reverse: bool = False  # reads its input from the last timestep to the first
    source: int | None = None  # buffer it reads (None: the part's input)
    sink: int | None = None  # buffer its per-step output goes to (None: none, or
    #                                   the part's output for the main-line stage)
    by_source_time: bool = False  # the sink is indexed by the input's time, not by step
    side: int | None = None  # buffer of stored bw outputs the merge op reads
    crops: list[int] = field(default_factory=list)  # time slices: the rows it reads start
    #                                                  at the sum of their first rows
    crops_before: list[int] = field(default_factory=list)  # time slices computed before it
    source_crops: list[int] = field(default_factory=list)  # the crops before its source
    #                                         was written (where its mask positions start)
    until: int | None = None  # a squeezing time slice: the loop ends after its timestep

    def output_size(self, model: Model) -> int:
        op = self.ops[-1]
        layer: Any = model.layers[op.layer]
        return layer.forward.output_size if op.part in ("fw", "bw") else layer.output_size


@dataclass
class Part:
    """A sequence part and the vector layers after it (see the module docstring)."""

    index: int
    repeat: int | None  # the RepeatVector layer it starts with (None: the model input)
    layers: list[int]  # its sequence layers (the repeat excluded)
    prefix: list[list[int]]
    stages: list[Stage]
    tail: list[int] = field(default_factory=list)
    final_merge: int | None = None  # a Bidirectional whose final states are merged
    end: int | None = None  # the layer that collects every step into one vector
    sequence_out: bool = False  # its output is a sequence (the model's output)
    first_slot: int = 0  # its slots are first_slot .. first_slot + slots - 1
    slots: int = 0

    @property
    def prefix_buffers(self) -> int:
        """Whole-sequence buffers the prefix groups write (alternately)."""
        return min(len(self.prefix), 2)


@dataclass
class Plan:
    parts: list[Part]
    buffer_slots: list[int] = field(default_factory=list)  # slot of each buffer

    @property
    def stages(self) -> list[Stage]:
        """Every stage, part after part."""
        return [stage for part in self.parts for stage in part.stages]

    @property
    def prefix(self) -> list[list[int]]:
        return self.parts[0].prefix

    @property
    def prefix_buffers(self) -> int:
        return self.parts[0].prefix_buffers

    @property
    def final_merge(self) -> int | None:
        return next((p.final_merge for p in self.parts if p.final_merge is not None), None)

    @property
    def tail(self) -> list[int]:
        return self.parts[-1].tail

    @property
    def needs_buffer(self) -> bool:
        """Whether the first part buffers sequences as long as the input."""
        return self.parts[0].slots > 0

    @property
    def slots(self) -> int:
        return max(self.buffer_slots, default=-1) + 1


def make_plan(model: Model) -> Plan:
    roles = [role(layer) for layer in model.layers]
    flags = model.sequence_flags()
    parts: list[Part] = []
    buffer_slots: list[int] = []
    start = 0
    while start < len(model.layers):
        repeat = start if roles[start] == "repeat" else None
        first = start + 1 if repeat is not None else start
        end = next((k for k in range(first, len(model.layers)) if not flags[k]), None)
        last = end if end is not None else len(model.layers) - 1
        following = next(
            (k for k in range(last + 1, len(model.layers)) if roles[k] == "repeat"),
            len(model.layers),
        )
        part = Part(
            index=len(parts),
            repeat=repeat,
            layers=list(range(first, last + 1)),
            prefix=[],
            stages=[],
            tail=list(range(last + 1, following)),
            sequence_out=end is None,
        )
        buffers = _plan_stages(model, roles, part, first_buffer=len(buffer_slots))
        slots = _assign_slots(part.stages, len(buffer_slots), buffers)
        part.first_slot = max(buffer_slots, default=-1) + 1
        part.slots = max(slots, default=-1) + 1
        buffer_slots += [part.first_slot + s for s in slots]
        parts.append(part)
        start = following
    return Plan(parts=parts, buffer_slots=buffer_slots)


def _refuse(model: Model, k: int, what: str) -> LstmgenError:
    layer = model.layers[k]
    return LstmgenError(
        f"target 'c' does not implement {layer.kind} layers {what} (layer '{layer.name}')"
    )


def _plan_stages(model: Model, roles: list[str], part: Part, first_buffer: int) -> int:
    """Fill `part.prefix` and `part.stages`; return how many buffers they use."""
    windows = [k for k in part.layers if roles[k] == "window"]
    if windows and part.index > 0:
        raise _refuse(model, windows[0], "after a RepeatVector")
    start = windows[-1] + 1 if windows else 0
    for k in part.layers:
        if k >= start:
            break
        if roles[k] == "crop":
            raise _refuse(model, k, "in front of a Conv1D or pooling layer")
        if roles[k] == "window" or not part.prefix or roles[part.prefix[-1][-1]] == "window":
            part.prefix.append([k])
        else:
            part.prefix[-1].append(k)
    builder = _StageBuilder(model, part, first_buffer)
    for k in part.layers:
        if k < start:
            continue
        r = roles[k]
        if r == "crop":
            builder.crop(k)
        elif r == "collect":
            part.end = k
        elif r == "bidirectional":
            builder.bidirectional(k)
        elif r == "recurrent":
            builder.recurrent(k)
        elif r == "step":
            builder.step(k)
        # "input" (Masking, Embedding): no op, its work happens where a timestep is read
    builder.finish()
    return builder.buffers


class _StageBuilder:
    """Turns the sequence layers of one part into stages (see the module docstring)."""

    def __init__(self, model: Model, part: Part, first_buffer: int) -> None:
        self.model = model
        self.layers: list[Any] = list(model.layers)
        self.part = part
        self.first_buffer = first_buffer
        self.buffers = 0
        self.cur: Stage | None = Stage()
        self.seen_recurrent = False

    def new_buffer(self) -> int:
        self.buffers += 1
        return self.first_buffer + self.buffers - 1

    def buffered(self) -> bool:
        """Whether what the current stage gives must be buffered before a layer that
        needs it reversed or cropped (nothing to buffer before a recurrent layer, or when
        the current stage only reads a buffer so far)."""
        assert self.cur is not None
        return self.seen_recurrent and bool(self.cur.ops)

    def step(self, k: int) -> None:
        assert self.cur is not None
        self.cur.ops.append(Op(k))

    def recurrent(self, k: int) -> None:
        assert self.cur is not None
        if self.layers[k].go_backwards:
            if self.buffered():
                self.cur.sink = self.new_buffer()
                self.part.stages.append(self.cur)
                self.cur = Stage(reverse=True, source=self.cur.sink)
            else:  # x (or a buffer nothing else reads) read backwards
                self.cur.reverse = True
        self.cur.ops.append(Op(k))
        self.seen_recurrent = True

    def bidirectional(self, k: int) -> None:
        cur = self.cur
        assert cur is not None
        if self.buffered():  # both directions read the sequence so far: buffer it
            source: int | None = self.new_buffer()
            cur.sink = source
            self.part.stages.append(cur)
            replay: list[Op] = []
            crops: list[int] = []
            before: list[int] = []
        else:  # read the input (or a buffer) directly, re-running the layers before
            source, replay, crops, before = cur.source, list(cur.ops), cur.crops, cur.crops_before
        if self.layers[k].return_sequences:
            stored = self.new_buffer()
            self.part.stages.append(
                Stage(
                    ops=replay + [Op(k, "bw")],
                    reverse=True,
                    source=source,
                    sink=stored,
                    by_source_time=True,
                    crops=list(crops),
                    crops_before=list(before),
                )
            )
            self.cur = Stage(
                ops=replay + [Op(k, "fw"), Op(k, "merge")],
                source=source,
                side=stored,
                crops=list(crops),
            )
        else:
            self.part.stages.append(
                Stage(
                    ops=replay + [Op(k, "fw")],
                    source=source,
                    crops=list(crops),
                    crops_before=list(before),
                )
            )
            self.part.stages.append(
                Stage(ops=replay + [Op(k, "bw")], reverse=True, source=source, crops=list(crops))
            )
            self.part.final_merge, self.cur = k, None
        self.seen_recurrent = True

    def crop(self, k: int) -> None:
        assert self.cur is not None
        if self.layers[k].squeeze:  # the part's last step: the loop ends there
            self.cur.until = k
            return
        if self.buffered():
            self.cur.sink = self.new_buffer()
            self.part.stages.append(self.cur)
            self.cur = Stage(source=self.cur.sink)
        self.cur.crops.append(k)
        self.cur.crops_before.append(k)

    def finish(self) -> None:
        if self.cur is not None:
            self.part.stages.append(self.cur)
        writers = {s.sink: s for s in self.part.stages if s.sink is not None}
        for stage in self.part.stages:  # where the mask positions of its source start
            if stage.source is not None:
                writer = writers[stage.source]
                stage.source_crops = writer.source_crops + writer.crops


def _assign_slots(stages: list[Stage], first_buffer: int, count: int) -> list[int]:
    """Give every buffer of one part (first_buffer ..) the lowest slot free while it is
    written and read (a stage's sink never shares a slot with what the same stage reads)."""
    last_read = {}
    for s, stage in enumerate(stages):
        for b in (stage.source, stage.side):
            if b is not None:
                last_read[b] = s
    slots = [-1] * count
    busy: dict[int, int] = {}  # slot -> buffer
    for s, stage in enumerate(stages):
        if stage.sink is not None:
            slot = min(set(range(count + 1)) - set(busy))
            slots[stage.sink - first_buffer] = slot
            busy[slot] = stage.sink
        for slot, b in list(busy.items()):
            if last_read.get(b, s) <= s:
                del busy[slot]
    return slots
