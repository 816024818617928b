"""Runs generated C through cffi: compiles NAME.c into a Python extension and calls it."""
from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Optional

import numpy as np

from ..errors import LstmgenError, MissingDependencyError
from ..ir import Model

COMPILE_ARGS = ["-std=c99", "-O2"]


def cdef(model: Model, name: str) -> str:
    """The C declarations cffi needs, matching the generated header's API."""
    text = (f"typedef struct {{ ...; }} {name}_state;\n"
            f"void {name}_reset({name}_state *s);\n"
            f"int {name}_predict(const float *x, int timesteps, float *y);\n")
    if model.streamable:
        text += f"void {name}_step({name}_state *s, const float *x, float *y);\n"
    return text


def build(model: Model, files: dict[str, str], name: str, workdir: Path,
          compile_args: Optional[list[str]] = None) -> ModuleType:
    """Compile the generated C with cffi in `workdir`; return the extension module."""
    try:
        import cffi
    except ImportError:
        raise MissingDependencyError("verifying C needs cffi: pip install 'lstmgen[verify]'") \
            from None
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    for filename, text in files.items():
        (workdir / filename).write_text(text, encoding="utf-8")
    args = COMPILE_ARGS + list(compile_args or [])
    digest = hashlib.sha1("".join([files[k] for k in sorted(files)] + args).encode()
                          ).hexdigest()[:12]
    module_name = f"_lstmgen_{name}_{digest}"
    ffi = cffi.FFI()
    ffi.cdef(cdef(model, name))
    ffi.set_source(module_name, f'#include "{name}.h"', sources=[str(workdir / f"{name}.c")],
                   include_dirs=[str(workdir)], libraries=["m"],
                   extra_compile_args=args)
    try:
        library = ffi.compile(tmpdir=str(workdir), verbose=False)
    except Exception as exc:  # distutils/setuptools raise CompileError, LinkError, ...
        raise LstmgenError(f"compiling the generated C failed: {exc}") from None
    spec = importlib.util.spec_from_file_location(module_name, library)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[module_name] = module
    return module


def _output_shape(model: Model, n: int, t_len: int) -> tuple[int, ...]:
    o = model.output_size
    return (n, t_len, o) if model.returns_sequences else (n, o)


def run(model: Model, files: dict[str, str], name: str, x: np.ndarray, workdir: Path,
        module: Any = None) -> np.ndarray:
    """predict() on every sequence of x [N, T, D]."""
    module = module or build(model, files, name, workdir)
    ffi, lib = module.ffi, module.lib
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, t_len, _ = x.shape
    y = np.zeros(_output_shape(model, n, t_len), dtype=np.float32)
    predict = getattr(lib, f"{name}_predict")
    for i in range(n):
        xi = x[i]
        yi = y[i]
        status = predict(ffi.from_buffer("float[]", xi), t_len, ffi.from_buffer("float[]", yi))
        if status != 0:
            raise LstmgenError(f"{name}_predict returned {status} for T={t_len}")
    return y


def run_steps(model: Model, files: dict[str, str], name: str, x: np.ndarray, workdir: Path,
              module: Any = None) -> np.ndarray:
    """step() through every sequence of x; the output after each step, [N, T, O]."""
    module = module or build(model, files, name, workdir)
    ffi, lib = module.ffi, module.lib
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, t_len, _ = x.shape
    y = np.zeros((n, t_len, model.output_size), dtype=np.float32)
    state = ffi.new(f"{name}_state *")
    reset, step = getattr(lib, f"{name}_reset"), getattr(lib, f"{name}_step")
    for i in range(n):
        reset(state)
        for t in range(t_len):
            step(state, ffi.from_buffer("float[]", x[i, t]),
                 ffi.from_buffer("float[]", y[i, t]))
    return y
