"""Benchmark: every C build mode of one model on an emulated Cortex-M4, by instruction count.

For the sine example (1 -> LSTM(16) -> 1, T = 20) and a 9 -> LSTM(256) -> 1 model (T = 50)
it generates the C of each mode -- float, int8 and int16 weights (float math), fixed16 and
int8-full (integer only) -- cross-compiles it with a harness (`mcu_harness.c`,
arm-none-eabi-gcc -O2, Cortex-M4F hard float, picolibc) and runs it on qemu's mps2-an386
with `-icount shift=6`: every executed instruction advances the virtual clock by exactly
64 ns, and the harness reads SysTick around one inference. The count is deterministic (the
same on every run); the harness calibrates ticks per instruction on a loop of a known
length and subtracts the cost of reading the clock. Flash and RAM are measured as
`lstmgen inspect --target c` does: the model's object at -Os (text + rodata + data), its
static RAM (data + bss, 0 for every mode) and its worst-case stack from gcc's call graph.
Every build's outputs on the target are checked against the float64 reference (within the
mode's tolerance). Ratios are against the float build measured in the same run.

    python bench/bench_mcu.py [--quick]      # --quick: the sine example only
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))  # irmodels: the models the tests build too

from irmodels import large_model  # noqa: E402

import lstmgen  # noqa: E402
from lstmgen.ir import LSTM, Model  # noqa: E402
from lstmgen.ir.int8 import dequantize_values, quantize_values  # noqa: E402
from lstmgen.quantize_int8 import quantize  # noqa: E402
from lstmgen.reference import forward  # noqa: E402
from lstmgen.targets import c as c_backend  # noqa: E402
from lstmgen.targets.c.int8_full import render_int8_full  # noqa: E402
from lstmgen.targets.c.memory import measure, parse_callgraph, worst_stack  # noqa: E402
from lstmgen.targets.c.quant import to_fixed  # noqa: E402
from lstmgen.targets.c.runner import (  # noqa: E402
    ARM_CORES,
    PICOLIBC_SPECS,
    SEMIHOST_LINK,
    run_qemu,
)

MODES = ["float", "int8", "int16", "fixed16", "int8-full"]
ICOUNT_SHIFT = 6
KNOWN_INSTRUCTIONS = 2_000_000  # known_loop(1000000): 2 instructions per iteration


@dataclass
class Result:
    model: str
    mode: str
    instructions: int
    timesteps: int
    flash: int
    code: int
    static_ram: int
    stack: int
    state: int
    max_err: float


def c_array(values: np.ndarray, fmt: str) -> str:
    flat = [fmt % v for v in np.asarray(values).ravel()]
    return ",\n".join(", ".join(flat[k : k + 8]) for k in range(0, len(flat), 8))


def build_and_run(
    files: dict[str, str], mode: str, x: np.ndarray, outputs: int, work: Path
) -> tuple[int, np.ndarray]:
    for filename, text in files.items():
        (work / filename).write_text(text)
    t_len = x.shape[0]
    if mode == "int8-full":
        in_t, out_t, predict, fmt, scale = "int8_t", "int8_t", "net_predict_int8", "%d", 1
    elif mode == "fixed16":
        in_t, out_t, predict, fmt, scale = "int16_t", "int16_t", "net_predict", "%d", 1
    else:
        in_t, out_t, predict, fmt, scale = "float", "float", "net_predict", "%.9gf", 1000000
    (work / "bench_inputs.h").write_text(
        f"#define BENCH_T {t_len}\n#define BENCH_OUTPUTS {outputs}\n"
        f"static const {in_t} bench_x[{x.size}] = {{\n{c_array(x, fmt)}\n}};\n"
    )
    elf = work / "bench.elf"
    flags, _ = ARM_CORES["m4f"]
    cmd = [
        "arm-none-eabi-gcc",
        "-std=c99",
        *flags,
        "-O2",
        f"--specs={PICOLIBC_SPECS}",
        *SEMIHOST_LINK,
        '-DBENCH_HEADER="net.h"',
        f"-DBENCH_PREDICT={predict}",
        f"-DBENCH_OUT_T={out_t}",
        f"-DBENCH_PRINT_SCALE={scale}",
        "-I",
        str(work),
        str(work / "net.c"),
        str(HERE / "mcu_harness.c"),
        "-o",
        str(elf),
    ]
    subprocess.run(cmd, check=True, capture_output=True)
    run = run_qemu(elf, "m4f", timeout=600, icount_shift=ICOUNT_SHIFT)
    if run.returncode != 0:
        raise RuntimeError(f"qemu: exit {run.returncode}: {run.stderr.strip()}")
    values = dict(re.findall(r"^(ticks_\w+) (\d+)$", run.stdout, re.M))
    empty = int(values["ticks_empty"])
    per_tick = KNOWN_INSTRUCTIONS / (int(values["ticks_known_2000000"]) - empty)
    instructions = round((int(values["ticks_inference"]) - empty) * per_tick)
    got = np.array([int(v) for v in re.findall(r"^y \d+ (-?\d+)$", run.stdout, re.M)])
    return instructions, got / scale


def memory(files: dict[str, str], mode: str) -> tuple[int, int, int, int]:
    """(flash, code, static RAM, worst-case stack of the predict function) at -Os."""
    m = measure(files, "net", "cortex-m4")
    code = m.sections.get(".text", 0)
    flash = code + sum(v for k, v in m.sections.items() if k.startswith((".rodata", ".data")))
    ram = sum(v for k, v in m.sections.items() if k.startswith((".data", ".bss")))
    stack = m.stack.get("net_predict", 0)
    if mode == "int8-full":
        with tempfile.TemporaryDirectory() as tmp:
            for k, v in files.items():
                (Path(tmp) / k).write_text(v)
            subprocess.run(
                [
                    "arm-none-eabi-gcc",
                    "-std=c99",
                    *ARM_CORES["m4f"][0],
                    "-Os",
                    "-fstack-usage",
                    "-fcallgraph-info=su",
                    "-c",
                    "net.c",
                ],
                cwd=tmp,
                check=True,
            )
            frames, edges = parse_callgraph(next(Path(tmp).glob("*.ci")).read_text())
            stack = worst_stack("net_predict_int8", frames, edges)
    return flash, code, ram, stack


def bench_model(label: str, model: Model, t_len: int, calibration: np.ndarray) -> list[Result]:
    x = np.random.default_rng(1).standard_normal((t_len, model.input_size)).astype(np.float32)
    expected = forward(model, x[None])[0]
    integer = quantize(model, calibration)
    results = []
    with tempfile.TemporaryDirectory(prefix="lstmgen-mcu-") as tmp:
        for mode in MODES:
            work = Path(tmp) / mode
            work.mkdir()
            if mode == "int8-full":
                files = render_int8_full(integer, "net")
                fed = quantize_values(x, integer.input)
            else:
                files = c_backend.render(model, "net", quantize=None if mode == "float" else mode)
                fed = x
                if mode == "fixed16":
                    frac = int(re.search(r"NET_INPUT_FRAC_BITS (\d+)", files["net.h"]).group(1))
                    fed = to_fixed(x, frac)
            count, got = build_and_run(files, mode, fed, model.output_size, work)
            if mode == "int8-full":
                got = dequantize_values(got.astype(np.int8), integer.output)
            elif mode == "fixed16":
                frac = int(re.search(r"NET_OUTPUT_FRAC_BITS (\d+)", files["net.h"]).group(1))
                got = got / 2.0**frac
            err = float(np.max(np.abs(got - expected)))
            flash, code, ram, stack = memory(files, mode)
            state = {"float": 8, "int8": 8, "int16": 8, "fixed16": 4, "int8-full": 3}[mode]
            results.append(
                Result(
                    label,
                    mode,
                    count,
                    t_len,
                    flash,
                    code,
                    ram,
                    stack,
                    state * sum(l.units for l in model.layers if isinstance(l, LSTM)),
                    err,
                )
            )
    return results


def table(results: list[Result]) -> str:
    lines = [
        "| model | mode | instructions / inference | per timestep | vs float | flash "
        "(code + weights) | of which code | static RAM | stack (worst case, incl. state) "
        "| max abs error vs float64 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    base = {r.model: r for r in results if r.mode == "float"}
    for r in results:
        ratio = r.instructions / base[r.model].instructions
        flash_ratio = r.flash / base[r.model].flash
        lines.append(
            f"| {r.model} | {r.mode} | {r.instructions:,} | {r.instructions // r.timesteps:,} "
            f"| {ratio:.2f}x | {r.flash:,} B ({flash_ratio:.2f}x) | {r.code:,} B "
            f"| {r.static_ram} B | {r.stack:,} B | {r.max_err:.2g} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the sine example only")
    args = parser.parse_args()
    results = []
    sine = lstmgen.load(HERE.parent / "examples" / "sine_lstm.keras")
    t_len = sine.timesteps or 20
    calibration = np.random.default_rng(0).standard_normal((256, t_len, 1)).astype(np.float32)
    results += bench_model(
        f"sine 1-LSTM({sine.layers[0].units})-1, T={t_len}", sine, t_len, calibration
    )
    if not args.quick:
        big = large_model()
        calibration = np.random.default_rng(0).standard_normal((64, 50, 9)).astype(np.float32)
        results += bench_model("9-LSTM(256)-1, T=50", big, 50, calibration)
    print(table(results))


if __name__ == "__main__":
    main()
