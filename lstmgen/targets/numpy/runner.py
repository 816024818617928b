"""Runs a generated numpy module in a separate Python: `sys.executable -I` (isolated: no
PYTHON* variables, no user site, no current folder on the path), so it runs as on a server
that has numpy and nothing of lstmgen.

One subprocess takes the whole batch: inputs go to the driver as an `.npy` file of
[N, T, D] float32 (token ids as int64 [N, T] for a model that starts with an Embedding), and
`predict` (or a `Stream(batch=N)` stepped through the timesteps) runs on all N sequences at
once; the outputs come back as float64 `.npy`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from ...errors import LstmgenError
from ...ir import Model

#: The driver: imports the module from its folder and runs it on the inputs.
DRIVER = r"""
import sys

import numpy as np

folder, module_name, x_path, y_path, mode = sys.argv[1:6]
sys.path.insert(0, folder)
module = __import__(module_name)
x = np.load(x_path)
if mode == "steps":
    stream = module.Stream(batch=x.shape[0])
    y = np.stack([stream.step(x[:, t]) for t in range(x.shape[1])], axis=1)
else:
    y = module.predict(x)
np.save(y_path, np.asarray(y, dtype=np.float64))
"""


def _inputs(model: Model, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 3 or x.shape[2] != model.input_size or min(x.shape) < 1:
        raise LstmgenError(f"inputs must be [N, T, {model.input_size}], got {x.shape}")
    if model.token_vocabulary is not None:  # the module takes integer token ids [N, T]
        return x[..., 0].astype(np.int64)
    return np.ascontiguousarray(x)


def _run(
    model: Model, files: dict[str, str], name: str, x: np.ndarray, workdir: Path, mode: str
) -> np.ndarray:
    workdir = Path(workdir).resolve()
    folder = workdir / f"numpy_{mode}"
    folder.mkdir(parents=True, exist_ok=True)
    for filename, text in files.items():
        (folder / filename).write_text(text, encoding="utf-8")
    (folder / "driver.py").write_text(DRIVER, encoding="utf-8")
    np.save(folder / "x.npy", _inputs(model, x))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-I",
                str(folder / "driver.py"),
                str(folder),
                name,
                str(folder / "x.npy"),
                str(folder / "y.npy"),
                mode,
            ],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    except subprocess.TimeoutExpired:
        raise LstmgenError("running the generated numpy module took over 600 s") from None
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-12:])
        raise LstmgenError(f"the generated numpy module failed:\n{tail}")
    return np.load(folder / "y.npy")


def run(model: Model, files: dict[str, str], name: str, x: np.ndarray, workdir: Path) -> np.ndarray:
    """predict() on the whole batch x [N, T, D]: [N, T_out, O] or [N, O]."""
    return _run(model, files, name, x, workdir, "predict")


def run_steps(
    model: Model, files: dict[str, str], name: str, x: np.ndarray, workdir: Path
) -> np.ndarray:
    """A Stream(batch=N) stepped through the timesteps of x: the output after each, [N, T, O]."""
    if not model.streamable:
        raise LstmgenError(
            f"model '{name}' is not streamable (it reads its sequence backwards, or needs "
            "windows of timesteps or the whole sequence): it has no Stream class"
        )
    return _run(model, files, name, x, workdir, "steps")
