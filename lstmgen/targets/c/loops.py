"""The loops of the generated C, from the plan: for each part its prefix groups, its stages
(each a loop over the timesteps calling a step function that runs a chain of layers) and
its tail, with the buffers each reads and writes (`lstmgen.targets.c.context`)."""

from __future__ import annotations

from ...errors import LstmgenError
from ...ir import Model
from .context import (
    NONE,
    GroupContext,
    LayerContext,
    PartContext,
    Ref,
    RowRef,
    StageContext,
    StepContext,
    TailContext,
)
from .kinds import kind_of
from .memory import sequence_width
from .plan import Op, Part, Plan, Stage

PREFIX_BUFFERS = ("pre_a", "pre_b")


def slot_name(slot: int) -> str:
    return f"seq_{chr(ord('a') + slot)}"


def chain(
    ops: list[Op],
    layers: list[LayerContext],
    src: Ref,
    dst: Ref,
    masking: bool = False,
    width: int = 0,
) -> list[StepContext]:
    """How `ops` run in order from `src` into `dst`: each step's input and output buffer.
    A recurrent layer's output is its state h (copied out only when it is last). No op at
    all copies the `width` values of src to dst.

    With `masking`, the steps up to the last recurrent kernel are `guarded`: they run only
    for a real timestep (the recurrent layers skip a masked one), and what follows reads
    the recurrent layer's kept output."""
    steps: list[StepContext] = []
    ops = [op for op in ops if kind_of(layers[op.layer].kind).role != "input"]
    for n, op in enumerate(ops):
        last = n == len(ops) - 1
        ctx = layers[op.layer]
        cell = ctx.fw if op.part == "fw" else ctx.bw if op.part == "bw" else ctx
        assert cell is not None
        if kind_of(cell.kind).role == "recurrent":
            steps.append(StepContext("recurrent", cell, src, dst if last else NONE))
            src = Ref(cell.out, state=True)
        else:  # a per-timestep layer, or a Bidirectional's merge with the stored bw output
            out = dst if last else Ref("buf_b" if src.name == "buf_a" else "buf_a")
            steps.append(StepContext(op.part or "layer", ctx, src, out))
            src = out
    if not steps:
        steps.append(StepContext("copy", None, src, dst, size=width))
    recurrent = [n for n, step in enumerate(steps) if step.op == "recurrent"]
    if masking and recurrent:
        for step in steps[: recurrent[-1] + 1]:
            step.guarded = True
    return steps


class LoopBuilder:
    """Builds the part contexts of one model (see the module docstring)."""

    def __init__(self, model: Model, plan: Plan, layers: list[LayerContext], masked: bool):
        self.model = model
        self.plan = plan
        self.layers = layers
        self.masked = masked
        self.width = sequence_width(model)
        self.stage_count = len(plan.stages)
        self.rows_groups: list[GroupContext] = []
        self.stages: list[StageContext] = []
        self.previous = Ref("x")  # the vector the part being built repeats

    def parts(self) -> list[PartContext]:
        out = []
        for part in self.plan.parts:
            ctx = self.part(part)
            # what the next part repeats: the tail's output, or the part's own vector
            self.previous = Ref(ctx.repeated) if ctx.repeated else ctx.vector
            out.append(ctx)
        return out

    # ---- one part ----------------------------------------------------------------------
    def part(self, part: Part) -> PartContext:
        many = len(self.plan.parts) > 1
        suffix = str(part.index) if many else ""
        last_part = part.index == len(self.plan.parts) - 1
        ctx = PartContext(
            index=part.index,
            stages=[],
            vector=Ref("y"),
            masked=self.masked and part.index == 0 and not part.prefix,
        )
        vector_needed = bool(part.tail) or not last_part
        if part.end is not None:
            kind = kind_of(self.model.layers[part.end].kind)
            ctx.end = self.layers[part.end]
            ctx.vector = Ref(kind.vector + suffix) if vector_needed else Ref("y")
            if kind.collects_rows:
                ctx.collect_row = RowRef(ctx.vector, "t", self.model.layers[part.end].input_size)
            else:
                ctx.last, ctx.last_size = "last" + suffix, self.model.layers[part.end].input_size
        elif not part.sequence_out and vector_needed:
            ctx.vector = Ref("last" + suffix)
            ctx.last = ctx.vector.name
            ctx.last_size = self.model.layers[part.layers[-1]].output_size
        if part.final_merge is not None:
            ctx.final_merge = self.layers[part.final_merge]
        if part.repeat is not None:
            ctx.repeat = self.layers[part.repeat]
            ctx.max_steps = self.layers[part.repeat].layer.times
        ctx.prefix = self.prefix(part)
        ctx.prefix_buffers = list(PREFIX_BUFFERS[: part.prefix_buffers])
        ctx.slots = [slot_name(s) for s in range(part.first_slot, part.first_slot + part.slots)]
        source = self.part_input(part, ctx)
        for stage in part.stages:
            ctx.stages.append(self.stage(part, stage, ctx, source))
        main = ctx.stages[-1]
        last_op = part.stages[-1].ops[-1] if part.stages[-1].ops else None
        if (
            vector_needed
            and part.final_merge is None
            and part.end is None
            and last_op is not None
            and last_op.part is None
            and kind_of(self.model.layers[last_op.layer].kind).role == "recurrent"
        ):  # the tail reads the last recurrent layer's h straight from the state
            cell = self.layers[last_op.layer]
            main.chain[-1].dst = NONE
            main.state_out = Ref(cell.out, state=True)
            main.dst = None
            ctx.vector = main.state_out
            ctx.last = None
        if part.tail:
            ctx.tail = TailContext(
                number=str(part.index) if sum(bool(p.tail) for p in self.plan.parts) > 1 else "",
                chain=chain([Op(k) for k in part.tail], self.layers, Ref("x"), Ref("y")),
                input_size=self.model.layers[part.tail[0]].input_size,
                output_size=self.model.layers[part.tail[-1]].output_size,
            )
            if not last_part:
                ctx.repeated = "repeated" + suffix
                ctx.tail_dst = ctx.repeated
        return ctx

    def part_input(self, part: Part, ctx: PartContext) -> RowRef:
        """What the part's stages read when they read no buffer."""
        if part.index > 0:
            return RowRef(self.previous, "src_t", 0)
        if part.prefix:
            width = self.model.layers[part.prefix[-1][-1]].output_size
            return RowRef(Ref(PREFIX_BUFFERS[(len(part.prefix) - 1) % 2]), "src_t", width)
        return RowRef(Ref("x"), "src_t", self.model.input_size)

    def prefix(self, part: Part) -> list[GroupContext]:
        groups = []
        for g, group in enumerate(part.prefix):
            src = Ref("x") if g == 0 else Ref(PREFIX_BUFFERS[(g - 1) % 2])
            dst = Ref(PREFIX_BUFFERS[g % 2])
            first, last = self.model.layers[group[0]], self.model.layers[group[-1]]
            ctx = GroupContext(
                op="window" if kind_of(first.kind).role == "window" else "rows",
                layers=[self.layers[k] for k in group],
                src=src,
                dst=dst,
                input_size=first.input_size,
                output_size=last.output_size,
            )
            if ctx.op == "rows":
                ctx.index = len(self.rows_groups)
                ctx.chain = chain(
                    [Op(k) for k in group], self.layers, Ref("x"), Ref("y"), width=last.output_size
                )
                self.rows_groups.append(ctx)
            groups.append(ctx)
        return groups

    # ---- one stage ---------------------------------------------------------------------
    def stage(self, part: Part, stage: Stage, ctx: PartContext, source: RowRef) -> StageContext:
        index = len(self.stages)
        main_line = stage is part.stages[-1] and part.final_merge is None
        dst: RowRef | None
        collect = False
        if stage.sink is not None:
            index_kind = "src_t" if stage.by_source_time else "t"
            dst = RowRef(Ref(slot_name(self.plan.buffer_slots[stage.sink])), index_kind, self.width)
        elif main_line and part.end is not None:
            collect, dst = True, RowRef(ctx.vector)  # the collecting layer's template says
        elif main_line and part.sequence_out:
            dst = RowRef(Ref("y"), "t", self.model.output_size)
        elif main_line:
            dst = RowRef(ctx.vector)
        else:
            dst = None  # a Bidirectional's direction: its final state is merged afterwards
        if stage.source is None:
            src = source
        else:
            src = RowRef(Ref(slot_name(self.plan.buffer_slots[stage.source])), "src_t", self.width)
        real = ctx.masked
        width = self.input_width(part, stage)
        steps = chain(stage.ops, self.layers, Ref("x"), Ref("y") if dst else NONE, real, width)
        reads_input = part.index == 0 and not part.prefix and stage.source is None
        first = self.model.layers[0]
        if (
            real
            and reads_input
            and kind_of(first.kind).zeroes_masked
            and not any(step.op == "recurrent" for step in steps)
        ):  # those layers would see the masked rows as they are, not as zeros
            raise LstmgenError(
                f"target 'c' does not implement layers that read the timesteps a masking layer "
                f"masks with no recurrent layer in between (layer '{first.name}' masks; the "
                f"first recurrent layer comes after a RepeatVector)"
            )
        first_op = next(
            (op for op in stage.ops if kind_of(self.model.layers[op.layer].kind).role != "input"),
            None,
        )
        out = StageContext(
            index=index,
            number=str(index) if self.stage_count > 1 else "",
            chain=steps,
            input_size=(
                self.model.layers[first_op.layer].input_size if first_op is not None else width
            ),
            output_size=stage.output_size(self.model)
            if stage.ops
            else self.input_width(part, stage),
            src=src,
            reads_input=reads_input,
            side=(
                RowRef(Ref(slot_name(self.plan.buffer_slots[stage.side])), "src_t", self.width)
                if stage.side is not None
                else None
            ),
            dst=dst,
            reverse=stage.reverse,
            by_source_time=stage.by_source_time,
            bidirectional=any(op.part for op in stage.ops),
            real=any(step.guarded for step in steps),
            uses_state=any(step.op == "recurrent" for step in steps),
            collect=collect,
            crops=[self.layers[k] for k in stage.crops],
            crops_before=[self.layers[k] for k in stage.crops_before],
            source_crops=[self.layers[k] for k in stage.source_crops],
            until=self.layers[stage.until] if stage.until is not None else None,
        )
        self.stages.append(out)
        return out

    def input_width(self, part: Part, stage: Stage) -> int:
        """Values per row a stage without ops passes on (what it reads)."""
        if stage.source is not None:
            return self.width
        if part.index > 0 and part.repeat is not None:
            return self.model.layers[part.repeat].output_size
        if part.prefix:
            return self.model.layers[part.prefix[-1][-1]].output_size
        return self.model.layers[0].output_size if part.layers else self.model.input_size
