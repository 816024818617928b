"""The execution plan of an IR model: which layers run per timestep, in which order.

The C backend (and its memory estimate) derive the generated loops from this. The sequence
part of a model (the layers up to the first recurrent layer that returns only its last
state) runs time-major, one step through a chain of layers at a time, in *stages*: one loop
over the timesteps each, reading its per-step input from x or from a buffered sequence,
forward or from the last step to the first.

* A `go_backwards` layer with another recurrent layer before it starts a new stage that
  reads the previous stage's buffered outputs from the last step to the first. As the first
  recurrent layer it needs no buffer: its stage just reads x backwards (per-timestep layers
  before it commute with the reversal).
* A `Bidirectional` layer runs as two directions, ``fw`` and ``bw``, each with its own
  state. It needs its whole input sequence twice, so after another recurrent layer that
  sequence is buffered; as the first recurrent layer its stages read x directly and re-run
  the per-timestep layers before it.

  - returning only its last state: a forward stage runs ``fw``, a reverse stage runs
    ``bw``, and the two final states are merged after the loops (`Plan.final_merge`);
  - returning sequences: a reverse stage runs ``bw`` first and stores its outputs back in
    input time order (`Stage.by_source_time`); the forward stage then runs ``fw`` and
    merges its output with the stored one of the same timestep (op ``merge``, reading
    `Stage.side`), and the layers after it follow in the same stage.

Buffers are assigned to *slots* (each a whole sequence of the model's widest vector) so that
a slot is reused once nothing reads its sequence any more. The *tail* (layers after the
sequence collapsed to one vector) runs once, on the last step's output.

Two more shapes of sequence work sit around the stages:

* the *prefix*: Conv1D and Pool1D layers (in front of the recurrent layers only) need
  windows of timesteps, so the layers up to the last of them run sequence by sequence
  before the stages, in groups (`Plan.prefix`): a Conv1D or Pool1D layer alone, or a run
  of per-timestep layers applied to every row. Group k writes prefix buffer k % 2 (so at
  most two, `Plan.prefix_buffers`), which the next group, or the stages, read as their
  input sequence. The per-timestep layers after the last window layer stay in the stages.
* a ``Flatten`` layer (`Plan.flatten`) ends the sequence part: it is no op of a stage; the
  main-line stage writes each step's output into its row of the flattened vector, which the
  tail reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...ir import Model


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
    source: int | None = None  # buffer it reads (None: the model input x)
    sink: int | None = None  # buffer its per-step output goes to (None: none, or
    #                                   the model output for the last stage)
    by_source_time: bool = False  # the sink is indexed by the input's time, not by step
    side: int | None = None  # buffer of stored bw outputs the merge op reads

    @property
    def layers(self) -> list[int]:
        return [op.layer for op in self.ops]

    @property
    def buffered(self) -> bool:
        return self.source is not None

    def input_size(self, model: Model) -> int:
        return model.layers[self.ops[0].layer].input_size

    def output_size(self, model: Model) -> int:
        op = self.ops[-1]
        layer = model.layers[op.layer]
        return layer.forward.output_size if op.part in ("fw", "bw") else layer.output_size


@dataclass
class Plan:
    stages: list[Stage]
    tail: list[int]
    buffer_slots: list[int] = field(default_factory=list)  # slot of each buffer
    final_merge: int | None = None  # a Bidirectional whose final states are merged
    prefix: list[list[int]] = field(default_factory=list)  # groups run before the stages
    flatten: int | None = None  # the Flatten layer that ends the sequence part

    @property
    def prefix_buffers(self) -> int:
        """Whole-sequence buffers the prefix groups write (alternately)."""
        return min(len(self.prefix), 2)

    @property
    def needs_buffer(self) -> bool:
        return bool(self.buffer_slots)

    @property
    def slots(self) -> int:
        return max(self.buffer_slots, default=-1) + 1

    def slot(self, buffer: int | None) -> int | None:
        return None if buffer is None else self.buffer_slots[buffer]


def make_plan(model: Model) -> Plan:
    n_seq = model.sequence_layer_count()
    stages: list[Stage] = []
    buffers = 0
    final_merge = None
    cur: Stage | None = Stage()
    seen_recurrent = False

    def new_buffer() -> int:
        nonlocal buffers
        buffers += 1
        return buffers - 1

    windows = [k for k, l in enumerate(model.layers) if l.kind in ("conv1d", "pool1d")]
    start = windows[-1] + 1 if windows else 0
    prefix: list[list[int]] = []
    for k in range(start):
        if (
            model.layers[k].kind in ("conv1d", "pool1d")
            or not prefix
            or model.layers[prefix[-1][-1]].kind in ("conv1d", "pool1d")
        ):
            prefix.append([k])
        else:
            prefix[-1].append(k)
    flatten = n_seq - 1 if model.layers[n_seq - 1].kind == "flatten" else None
    for k, layer in enumerate(model.layers[:n_seq]):
        if k < start or k == flatten:
            continue
        assert cur is not None
        if layer.kind == "bidirectional":
            if seen_recurrent:  # both directions read the sequence so far: buffer it
                source: int | None = new_buffer()
                cur.sink = source
                stages.append(cur)
                replay: list[Op] = []
            else:  # read x directly, re-running the per-timestep layers before this one
                source, replay = None, list(cur.ops)
            if layer.return_sequences:
                stored = new_buffer()
                stages.append(
                    Stage(
                        ops=replay + [Op(k, "bw")],
                        reverse=True,
                        source=source,
                        sink=stored,
                        by_source_time=True,
                    )
                )
                cur = Stage(ops=replay + [Op(k, "fw"), Op(k, "merge")], source=source, side=stored)
            else:
                stages.append(Stage(ops=replay + [Op(k, "fw")], source=source))
                stages.append(Stage(ops=replay + [Op(k, "bw")], reverse=True, source=source))
                final_merge, cur = k, None
        elif layer.recurrent and layer.go_backwards:
            if seen_recurrent:
                cur.sink = new_buffer()
                stages.append(cur)
                cur = Stage(reverse=True, source=cur.sink)
            else:
                cur.reverse = True
            cur.ops.append(Op(k))
        else:
            cur.ops.append(Op(k))
        seen_recurrent = seen_recurrent or layer.recurrent
    if cur is not None:
        stages.append(cur)
    return Plan(
        stages=stages,
        tail=list(range(n_seq, len(model.layers))),
        buffer_slots=_assign_slots(stages, buffers),
        final_merge=final_merge,
        prefix=prefix,
        flatten=flatten,
    )


def _assign_slots(stages: list[Stage], count: int) -> list[int]:
    """Give every buffer the lowest slot free while it is written and read (a stage's sink
    never shares a slot with what the same stage reads)."""
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
            slots[stage.sink] = slot
            busy[slot] = stage.sink
        for slot, b in list(busy.items()):
            if last_read.get(b, s) <= s:
                del busy[slot]
    return slots
