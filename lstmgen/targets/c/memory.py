"""Flash and RAM of the generated C: estimates from the IR alone, and measurements with the
ARM toolchain when it is installed.

Estimates (`estimate`), per layer and in total, for each `--quantize` mode:

* flash = const weights in their stored form (float32, or int8/int16 + one float scale
  per unit, or int16 + shifts for fixed16; biases float32, or int32 for fixed16) + the
  fixed16 activation tables + code (a per-feature size calibrated on arm-none-eabi-gcc 12
  -Os for Cortex-M4F; `measure` replaces it with the real number);
* RAM = the recurrent state (h and c of every LSTM, h of every GRU/SimpleRNN, both
  directions of a Bidirectional: `NAME_state`) + the stack scratch of one call: one
  recurrent kernel's scratch (4H values for an LSTM or GRU, fixed16 needs only H new h
  values; H for a SimpleRNN) and the layer buffers, + the sequence buffers of
  `NAME_predict` where a layer needs a whole sequence (go_backwards after another
  recurrent layer, Bidirectional, a time slice after a recurrent layer; one or two for
  Conv1D / Pool1D and the layers before them; the vector a Flatten or GlobalPool layer
  fills; the vector a RepeatVector repeats). No weight is ever copied to RAM or the
  stack.

`measure` compiles NAME.c with arm-none-eabi-gcc -Os -fstack-usage -fcallgraph-info=su and
reads the sections (`arm-none-eabi-size -A`) and the worst-case stack of `NAME_step` and
`NAME_predict` from gcc's call graph (frame sizes summed along the deepest path).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...ir import Model
from .kinds import kind_of, parts_of_kind, recurrent_cells
from .plan import make_plan
from .quant import FIXED_FORMATS, fixed_plan, layer_arrays

FLOAT_BYTES = 4
DEFAULT_MAX_TIMESTEPS = 100

CORTEX_M4F = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
CORTEX_M3 = ["-mcpu=cortex-m3", "-mthumb", "-mfloat-abi=soft"]
ARM_GCC = "arm-none-eabi-gcc"

# Code bytes (arm-none-eabi-gcc 12.2 -Os, Cortex-M4F for the float modes, Cortex-M3 for
# fixed16) of the parts of NAME.c, fitted to the test models (within about 25%); the
# estimate sums them with each kind's own figures (`lstmgen.targets.c.kinds`). `measure`
# gives the real figure.
CODE_BASE = {"float": 100, "int8": 130, "int16": 130, "fixed16": 300}
CODE_PER_LAYER_CALL = 50
CODE_PER_EXTRA_STAGE = 120
CODE_ACTIVATION = {
    "tanh": 120,
    "sigmoid": 30,
    "softsign": 30,
    "softplus": 200,
    "elu": 150,
    "softmax": 150,
    "log_softmax": 180,
    "relu": 16,
    "linear": 4,
    "hard_sigmoid_keras3": 40,
    "hard_sigmoid_0.2": 40,
}
CODE_FIXED_ACTIVATION = {
    "tanh": 100,
    "sigmoid": 100,
    "softsign": 80,
    "softplus": 120,
    "elu": 60,
    "softmax": 300,
    "relu": 30,
    "linear": 20,
    "hard_sigmoid_keras3": 60,
    "hard_sigmoid_0.2": 60,
}
CODE_BUILTIN_EXP = 330  # exp_builtin (+ log1p / expm1 where used), --math builtin
NEEDS_EXP = {"softplus", "elu", "softmax", "log_softmax"}
FIXED_TABLE_BYTES = {"sigmoid": 257 * 2, "softplus": 513 * 2}


@dataclass
class LayerMemory:
    name: str
    kind: str
    weight_bytes: int  # flash: weights, scales/shifts and bias in their stored form
    state_bytes: int  # RAM in NAME_state (LSTM h and c)
    scratch_bytes: int  # stack this layer needs while it runs (LSTM: gate scratch)


@dataclass
class MemoryEstimate:
    weight_bytes: int
    state_bytes: int
    scratch_bytes: int
    sequence_buffer_bytes: int  # only for plans with buffered stages, per max timesteps
    mode: str = "float"
    code_bytes: int = 0  # estimated code (flash), see CODE_*
    table_bytes: int = 0  # fixed16 activation tables (flash)
    layers: list[LayerMemory] = field(default_factory=list)

    @property
    def ram_bytes(self) -> int:
        return self.state_bytes + self.scratch_bytes + self.sequence_buffer_bytes

    @property
    def flash_bytes(self) -> int:
        return self.weight_bytes + self.table_bytes + self.code_bytes


def max_width(model: Model) -> int:
    return max([model.input_size] + [layer.output_size for layer in model.layers])


def sequence_width(model: Model) -> int:
    """The widest vector a step or the tail passes between layers (the vector a Flatten
    or GlobalPool layer fills is a buffer of its own)."""
    return max(
        [model.input_size]
        + [layer.output_size for layer in model.layers if kind_of(layer.kind).role != "collect"]
    )


def prefix_width(model: Model) -> int:
    """Values per row of the prefix buffers (`Part.prefix`): the widest output of the
    layers up to the last Conv1D / Pool1D, 0 without one."""
    plan = make_plan(model)
    return max([model.layers[k].output_size for group in plan.prefix for k in group], default=0)


def max_timesteps(model: Model) -> int:
    return model.timesteps or DEFAULT_MAX_TIMESTEPS


def _weight_bytes(model: Model, mode: str) -> list[int]:
    """Flash of every layer's arrays in the mode's stored form."""
    fixed = None
    if mode == "fixed16" and all(l.kind in FIXED_FORMATS for l in model.layers):
        fixed = fixed_plan(model)
    quantize = None if mode == "float" else mode
    out = []
    for k, layer in enumerate(model.layers):
        holders = recurrent_cells(layer) if kind_of(layer.kind).role == "bidirectional" else [layer]
        fl = fixed.layers[k] if fixed is not None else None
        out.append(sum(a.bytes for h in holders for a in layer_arrays(h, quantize, fl).values()))
    return out


def _activations(model: Model) -> set[str]:
    """Every activation the model's code applies."""
    used: set[str] = set()
    for layer in model.layers:
        for cell in recurrent_cells(layer):
            used |= set(cell.activations())
        activation = getattr(layer, "activation", None)
        if kind_of(layer.kind).role != "recurrent" and isinstance(activation, str):
            used.add(activation)
    return used


def estimate(model: Model, quantize: str | None = None, math: str | None = None) -> MemoryEstimate:
    """Flash and RAM of the generated C for `model` in a `--quantize` mode (None: float)."""
    mode = quantize or "float"
    value = 2 if mode == "fixed16" else FLOAT_BYTES
    plan = make_plan(model)
    width = sequence_width(model)
    weights = _weight_bytes(model, mode)
    gates = 0
    layers = []
    for layer, weight in zip(model.layers, weights):
        cells = recurrent_cells(layer)
        if cells:
            state = sum(kind_of(c.kind).state_values(c) for c in cells) * value
            scratch = kind_of(cells[0].kind).scratch_values(cells[0], mode) * value
            gates = max(gates, scratch // value)
        else:
            state, scratch = 0, layer.output_size * value
        layers.append(LayerMemory(layer.name, layer.kind, weight, state, scratch))
    # one recurrent kernel's scratch, two layer buffers in a step, and the sequence part's
    # last output when the tail cannot read it from the state (it can after a
    # unidirectional recurrent layer)
    last_part = plan.parts[-1]
    last = last_part.stages[-1].ops[-1] if last_part.stages[-1].ops else None
    tail_reads_state = (
        bool(last_part.tail)
        and last_part.final_merge is None
        and last is not None
        and last.part is None
        and model.layers[last.layer].recurrent
    )
    scratch = (gates + (2 if tail_reads_state else 3) * width) * value
    # whole sequences on the stack: one slot of T x the widest vector per live buffer,
    # the prefix buffers, the vectors collecting every step, those the parts repeat
    first = plan.parts[0]
    buffers = (
        (first.slots * width + first.prefix_buffers * prefix_width(model))
        * max_timesteps(model)
        * value
    )
    ir_layers: list[Any] = list(model.layers)
    for part in plan.parts:
        if part.index > 0 and part.repeat is not None:
            buffers += part.slots * width * ir_layers[part.repeat].times * value
            buffers += ir_layers[part.repeat].output_size * value
        if part.end is not None:
            end = ir_layers[part.end]
            buffers += (
                end.output_size + (0 if kind_of(end.kind).collects_rows else end.size)
            ) * value
    acts = _activations(model)
    tables = 0
    if mode == "fixed16":
        if acts & {"sigmoid", "tanh"}:
            tables += FIXED_TABLE_BYTES["sigmoid"]
        if "softplus" in acts:
            tables += FIXED_TABLE_BYTES["softplus"]
    act_code = CODE_FIXED_ACTIVATION if mode == "fixed16" else CODE_ACTIVATION
    code = (
        CODE_BASE[mode]
        + sum(
            kind_of(kind).code_bytes(parts_of_kind(model, kind), model, mode, math)
            for kind in model.kinds()
        )
        + CODE_PER_LAYER_CALL * len(model.layers)
        + CODE_PER_EXTRA_STAGE * (len(plan.stages) - 1)
        + sum(act_code.get(a, 60) for a in acts)
        + (CODE_BUILTIN_EXP if math == "builtin" and mode != "fixed16" and acts & NEEDS_EXP else 0)
    )
    return MemoryEstimate(
        weight_bytes=sum(l.weight_bytes for l in layers),
        state_bytes=sum(l.state_bytes for l in layers),
        scratch_bytes=scratch,
        sequence_buffer_bytes=buffers,
        mode=mode,
        code_bytes=code,
        table_bytes=tables,
        layers=layers,
    )


# ---------------------------------------------------------------------- measurement --


@dataclass
class Measured:
    """What the ARM toolchain says about NAME.c compiled -Os for one core."""

    cpu: str
    sections: dict[str, int]  # .text, .rodata, .data, .bss, ...
    stack: dict[str, int]  # worst-case stack bytes of each public function
    frames: dict[str, int]  # each function's own frame

    @property
    def flash_bytes(self) -> int:
        return sum(
            v for k, v in self.sections.items() if k.startswith((".text", ".rodata", ".data"))
        )

    @property
    def ram_bytes(self) -> int:  # static RAM (must be 0: no mutable globals)
        return sum(v for k, v in self.sections.items() if k.startswith((".data", ".bss")))


def toolchain_available() -> bool:
    return shutil.which(ARM_GCC) is not None


def parse_callgraph(text: str) -> tuple[dict[str, int], dict[str, list[str]]]:
    """Frames {node: bytes} and edges {node: [callee]} of a gcc `-fcallgraph-info=su` file."""
    frames: dict[str, int] = {}
    edges: dict[str, list[str]] = {}
    for m in re.finditer(r'node: \{ title: "([^"]+)" label: "([^"]*)"', text):
        size = re.search(r"\\n(\d+) bytes", m.group(2))
        frames[m.group(1)] = int(size.group(1)) if size else 0
    for m in re.finditer(r'edge: \{ sourcename: "([^"]+)" targetname: "([^"]+)"', text):
        edges.setdefault(m.group(1), []).append(m.group(2))
    return frames, edges


def worst_stack(
    node: str, frames: dict[str, int], edges: dict[str, list[str]], seen: tuple[str, ...] = ()
) -> int:
    """Largest sum of frames along a call path from `node` (recursion would be infinite;
    the generated code has none, so a cycle is an error)."""
    if node in seen:
        raise ValueError(f"recursive call through {node}")
    below = [worst_stack(c, frames, edges, seen + (node,)) for c in edges.get(node, [])]
    return frames.get(node, 0) + max(below, default=0)


def measure(
    files: dict[str, str], name: str, cpu: str = "cortex-m4", extra_flags: list[str] | None = None
) -> Measured:
    """Compile `NAME.c` with arm-none-eabi-gcc -Os for `cpu` (cortex-m4: hard float;
    cortex-m3/m0: soft float) and measure its sections and stack."""
    flags = CORTEX_M4F if cpu == "cortex-m4" else [f"-mcpu={cpu}", "-mthumb", "-mfloat-abi=soft"]
    with tempfile.TemporaryDirectory(prefix="lstmgen-size-") as tmp:
        work = Path(tmp)
        for filename, text in files.items():
            if "/" not in filename:
                (work / filename).write_text(text, encoding="utf-8")
        obj = work / f"{name}.o"
        cmd = [
            ARM_GCC,
            "-std=c99",
            *flags,
            "-Os",
            "-fstack-usage",
            "-fcallgraph-info=su",
            *(extra_flags or []),
            "-c",
            f"{name}.c",
            "-o",
            obj.name,
        ]
        result = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"arm-none-eabi-gcc failed: {result.stderr[-2000:]}")
        size = subprocess.run(
            ["arm-none-eabi-size", "-A", obj.name],
            cwd=work,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        sections = {}
        for line in size.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0].startswith(".") and parts[1].isdigit():
                sections[parts[0]] = int(parts[1])
        ci = next(work.glob("*.ci")).read_text()
        frames, edges = parse_callgraph(ci)
    stack = {}
    for public in (f"{name}_step", f"{name}_predict"):
        if public in frames:
            stack[public] = worst_stack(public, frames, edges)
    return Measured(cpu=cpu, sections=sections, stack=stack, frames=frames)


def _kb(n: int) -> str:
    return f"{n} B" if n < 10000 else f"{n / 1024:.1f} KiB"


def report(
    model: Model,
    quantize: str | None = None,
    math: str | None = None,
    files: dict[str, str] | None = None,
    name: str = "model",
) -> str:
    """The text of `lstmgen inspect MODEL --target c`: per-layer flash/RAM, totals, and the
    measured figures when the ARM toolchain is installed."""
    mode = quantize or "float"
    est = estimate(model, quantize=quantize, math=math)
    flt = estimate(model)
    out = [
        f"C target, {mode} weights{', builtin math' if math == 'builtin' else ''}: "
        "flash and RAM per layer (bytes)"
    ]
    out.append(f"  {'layer':<24} {'flash (weights)':>16} {'RAM (state)':>12} {'stack scratch':>14}")
    for lm in est.layers:
        out.append(
            f"  {lm.name:<24} {lm.weight_bytes:>16} {lm.state_bytes:>12} {lm.scratch_bytes:>14}"
        )
    if est.table_bytes:
        out.append(f"  {'(activation tables)':<24} {est.table_bytes:>16}")
    code = f"about {est.code_bytes} (estimated)"
    stack = f"about {est.scratch_bytes + est.sequence_buffer_bytes} (estimated)"
    measured = None
    if files is not None and toolchain_available():
        cpu = "cortex-m3" if mode == "fixed16" else "cortex-m4"
        try:
            measured = measure(files, name, cpu)
        except (RuntimeError, OSError, subprocess.CalledProcessError):
            measured = None
    if measured is not None:
        code_bytes = measured.sections.get(".text", 0)
        const = measured.sections.get(".rodata", 0)
        code = (
            f"{code_bytes} (.text, measured: arm-none-eabi-gcc -Os {measured.cpu}); "
            f".rodata {const}; .data + .bss {measured.ram_bytes}"
        )
        step = measured.stack.get(f"{name}_step")
        pred = measured.stack.get(f"{name}_predict")
        stack = (
            f"{name}_step {step} + state {est.state_bytes}, " if step is not None else ""
        ) + f"{name}_predict {pred} incl. its state (measured, -fstack-usage)"
        total_flash = measured.flash_bytes
    else:
        total_flash = est.flash_bytes
    out.append(
        f"  flash: weights {est.weight_bytes}"
        + (f" + tables {est.table_bytes}" if est.table_bytes else "")
        + f"; code {code}"
    )
    out.append(f"  flash total: {_kb(total_flash)}")
    if mode != "float":
        saved = flt.weight_bytes - est.weight_bytes
        out.append(
            f"  flash saving against float32 weights: {saved} bytes "
            f"({100.0 * saved / flt.weight_bytes:.0f}%)"
        )
    out.append(
        f"  RAM: state {est.state_bytes} + stack scratch {est.scratch_bytes}"
        + (f" + sequence buffer {est.sequence_buffer_bytes}" if est.sequence_buffer_bytes else "")
        + f" = {_kb(est.ram_bytes)}; stack: {stack}"
    )
    out.append("  no weight is copied to RAM or the stack (all static const, read in place)")
    return "\n".join(out)
