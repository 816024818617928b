"""Runs generated C through cffi: compiles NAME.c into a Python extension and calls it;
and on Cortex-M cores under qemu (the self-test, semihosted).

A `--quantize fixed16` build has an int16 API: its inputs are converted to the header's
input Q format (rounded, saturated) and its outputs back to float, so callers see floats
in every mode. An Embedding model takes token ids: the harness's x [N, T, 1] (float values
holding integer ids) is passed as int32."""

from __future__ import annotations

import hashlib
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from ...errors import LstmgenError, MissingDependencyError
from ...ir import Model
from .deadline import compile_module

COMPILE_ARGS = ["-std=c99", "-O2"]


def fixed_formats(files: dict[str, str], name: str) -> tuple[int | None, int] | None:
    """(input, output) Q fraction bits of a fixed16 build (input None: token ids), None for
    a float API."""
    header = files.get(f"{name}.h", "")
    upper = name.upper()
    if not re.search(rf"^#define {upper}_FIXED16 1$", header, re.M):
        return None
    frac: dict[str, int | None] = {}
    for key in ("INPUT", "OUTPUT"):
        m = re.search(rf"^#define {upper}_{key}_FRAC_BITS (\d+)", header, re.M)
        if m is None and not (key == "INPUT" and _takes_ids(header, name)):
            raise LstmgenError(f"{name}.h: fixed16 header without {upper}_{key}_FRAC_BITS")
        frac[key] = int(m.group(1)) if m else None
    output = frac["OUTPUT"]
    assert output is not None
    return frac["INPUT"], output


def _takes_ids(header: str, name: str) -> bool:
    return f"int {name}_predict(const int32_t *ids," in header


def cdef(files: dict[str, str], name: str) -> str:
    """The declarations cffi needs: the state as an opaque struct and the functions the
    generated header declares (their prototypes, as written there)."""
    header = files.get(f"{name}.h", "")
    prototypes = re.findall(rf"^(?:void|int) {name}_\w+\(.*\);$", header, re.M)
    if not any(f"{name}_predict(" in p for p in prototypes):
        raise LstmgenError(f"{name}.h declares no {name}_predict")
    selftest = f"int {name}_selftest(void);"
    declared = [p for p in prototypes if p != selftest]  # its definition may not be built
    return f"typedef struct {{ ...; }} {name}_state;\n" + "\n".join(declared) + "\n"


def build(
    model: Model,
    files: dict[str, str],
    name: str,
    workdir: Path,
    compile_args: list[str] | None = None,
) -> ModuleType:
    """Compile the generated C with cffi in `workdir`; return the extension module."""
    try:
        import cffi
    except ImportError:
        raise MissingDependencyError(
            "verifying C needs cffi: pip install 'lstmgen[verify]'"
        ) from None
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    for filename, text in files.items():
        (workdir / filename).parent.mkdir(parents=True, exist_ok=True)
        (workdir / filename).write_text(text, encoding="utf-8")
    args = COMPILE_ARGS + list(compile_args or [])
    digest = hashlib.sha1("".join([files[k] for k in sorted(files)] + args).encode()).hexdigest()[
        :12
    ]
    module_name = f"_lstmgen_{name}_{digest}"
    ffi = cffi.FFI()
    ffi.cdef(cdef(files, name))
    ffi.set_source(
        module_name,
        f'#include "{name}.h"',
        sources=[str(workdir / f"{name}.c")],
        include_dirs=[str(workdir)],
        libraries=["m"],
        extra_compile_args=args,
    )
    library = compile_module(ffi, str(workdir))  # within the compile_seconds limit
    spec = importlib.util.spec_from_file_location(module_name, library)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[module_name] = module
    return module


def _output_shape(model: Model, n: int, t_len: int) -> tuple[int, ...]:
    """A sequence output has `Model.output_timesteps(T)` rows (T but for Conv1D/pooling,
    time slices, a RepeatVector)."""
    o = model.output_size
    return (n, model.output_timesteps(t_len), o) if model.returns_sequences else (n, o)


class _Api:
    """How the generated API takes inputs and gives outputs: float, int16 Q formats
    (fixed16), token ids (int32, an Embedding first)."""

    def __init__(self, files: dict[str, str], name: str, x: np.ndarray) -> None:
        self.fixed = fixed_formats(files, name)
        self.ids = _takes_ids(files.get(f"{name}.h", ""), name)
        self.out_ctype = "int16_t[]" if self.fixed else "float[]"
        self.out_dtype: type = np.int16 if self.fixed else np.float32
        x = np.asarray(x)
        if self.ids:
            values = x[..., 0]
            if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
                raise LstmgenError("token ids must be integers")
            self.x = np.ascontiguousarray(values, dtype=np.int32)  # [N, T]
            self.in_ctype = "int32_t[]"
        elif self.fixed:
            from .quant import to_fixed

            assert self.fixed[0] is not None
            self.x = np.ascontiguousarray(to_fixed(x, self.fixed[0]))
            self.in_ctype = "int16_t[]"
        else:
            self.x = np.ascontiguousarray(x, dtype=np.float32)
            self.in_ctype = "float[]"

    def outputs(self, y: np.ndarray) -> np.ndarray:
        if self.fixed is None:
            return y
        from .quant import from_fixed

        return from_fixed(y, self.fixed[1])


def run(
    model: Model, files: dict[str, str], name: str, x: np.ndarray, workdir: Path, module: Any = None
) -> np.ndarray:
    """predict() on every sequence of x [N, T, D] (token ids as float values [N, T, 1] for
    an Embedding model): [N, T_out, O] or [N, O] (`Model.output_timesteps`)."""
    module = module or build(model, files, name, workdir)
    ffi, lib = module.ffi, module.lib
    n, t_len = x.shape[0], x.shape[1]
    api = _Api(files, name, x)
    y: np.ndarray = np.zeros(_output_shape(model, n, t_len), dtype=api.out_dtype)
    predict = getattr(lib, f"{name}_predict")
    for i in range(n):
        status = predict(
            ffi.from_buffer(api.in_ctype, api.x[i]), t_len, ffi.from_buffer(api.out_ctype, y[i])
        )
        if status != 0:
            raise LstmgenError(f"{name}_predict returned {status} for T={t_len}")
    return api.outputs(y)


def run_steps(
    model: Model, files: dict[str, str], name: str, x: np.ndarray, workdir: Path, module: Any = None
) -> np.ndarray:
    """step() through every sequence of x; the output after each step, [N, T, O]."""
    module = module or build(model, files, name, workdir)
    ffi, lib = module.ffi, module.lib
    n, t_len = x.shape[0], x.shape[1]
    api = _Api(files, name, x)
    y: np.ndarray = np.zeros((n, t_len, model.output_size), dtype=api.out_dtype)
    state = ffi.new(f"{name}_state *")
    reset, step = getattr(lib, f"{name}_reset"), getattr(lib, f"{name}_step")
    for i in range(n):
        reset(state)
        for t in range(t_len):
            out = ffi.from_buffer(api.out_ctype, y[i, t])
            if api.ids:
                status = step(state, int(api.x[i, t]), out)
                if status != 0:
                    raise LstmgenError(f"{name}_step returned {status} for id {api.x[i, t]}")
            else:
                step(state, ffi.from_buffer(api.in_ctype, api.x[i, t]), out)
    return api.outputs(y)


# ------------------------------------------------- Cortex-M under qemu (semihosting) --
# The generated self-test (NAME_selftest.c built with -DNAME_SELFTEST_MAIN) cross-compiled
# with arm-none-eabi-gcc and picolibc, run on qemu-system-arm's MPS2 boards: main()'s
# return value is qemu's exit code, its printf goes to qemu's stdout.

#: -std=c99 and the warning set of the host tests; -Werror makes any warning a failure.
C_WARNINGS = [
    "-std=c99",
    "-Wall",
    "-Wextra",
    "-pedantic",
    "-Werror",
    "-Wshadow",
    "-Wconversion",
    "-Wdouble-promotion",
    "-Wstrict-prototypes",
    "-Wmissing-prototypes",
]
ARM_CORES = {
    # Cortex-M4F, hard float (single-precision FPU), board MPS2 AN386
    "m4f": (["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"], "mps2-an386"),
    # Cortex-M3, no FPU: float code goes through the soft-float library, board MPS2 AN385
    "m3": (["-mcpu=cortex-m3", "-mthumb", "-mfloat-abi=soft"], "mps2-an385"),
}
PICOLIBC_SPECS = "/usr/lib/picolibc/arm-none-eabi/picolibc.specs"
SEMIHOST_LINK = [
    "--oslib=semihost",
    "--crt0=semihost",
    "-Wl,--defsym=__flash=0x0",
    "-Wl,--defsym=__flash_size=0x400000",
    "-Wl,--defsym=__ram=0x20000000",
    "-Wl,--defsym=__ram_size=0x400000",
]


def build_selftest_elf(
    files: dict[str, str],
    name: str,
    workdir: Path,
    core: str,
    opt: str = "-Os",
    extra: list[str] | None = None,
) -> Path:
    """Cross-compile NAME.c + NAME_selftest.c (with main) for `core` into an ELF."""
    import subprocess
    from pathlib import Path as _Path

    if f"{name}_selftest.c" not in files:
        raise LstmgenError("build_selftest_elf needs files rendered with selftest")
    workdir = _Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    for filename, text in files.items():
        (workdir / filename).parent.mkdir(parents=True, exist_ok=True)
        (workdir / filename).write_text(text, encoding="utf-8")
    flags, _ = ARM_CORES[core]
    specs = PICOLIBC_SPECS if _Path(PICOLIBC_SPECS).exists() else "picolibc.specs"
    elf = workdir / f"{name}_{core}.elf"
    cmd = [
        "arm-none-eabi-gcc",
        *C_WARNINGS,
        *flags,
        opt,
        f"--specs={specs}",
        *SEMIHOST_LINK,
        f"-D{name.upper()}_SELFTEST_MAIN",
        "-I",
        str(workdir),
        *(extra or []),
        str(workdir / f"{name}.c"),
        str(workdir / f"{name}_selftest.c"),
        "-o",
        str(elf),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0 or result.stderr:
        raise LstmgenError(f"arm-none-eabi-gcc failed for {core}:\n{result.stderr[-4000:]}")
    return elf


def run_qemu(elf: Path, core: str, timeout: float = 120.0, icount_shift: int | None = None):
    """Run `elf` on qemu's board for `core`; a CompletedProcess (returncode = main's).
    With `icount_shift`, qemu counts instructions (one virtual ns is 2^shift of them), so
    the program's clock measures instructions, not host time."""
    import subprocess

    _, machine = ARM_CORES[core]
    counting = (
        [] if icount_shift is None else ["-icount", f"shift={icount_shift},align=off,sleep=off"]
    )
    cmd = [
        "timeout",
        str(int(timeout)),
        "qemu-system-arm",
        "-M",
        machine,
        "-display",
        "none",
        "-monitor",
        "none",
        "-serial",
        "none",
        "-chardev",
        "stdio,id=shc",
        "-semihosting-config",
        "enable=on,target=native,chardev=shc",
        *counting,
        "-kernel",
        str(elf),
    ]
    return subprocess.run(
        cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout + 10
    )


def parse_selftest(stdout: str) -> tuple[np.ndarray, np.ndarray, int]:
    """The `y SEQ INDEX GOT EXPECTED` lines of a self-test run: (got, expected, mismatches),
    got/expected as float64 in the order printed (raw Q integers for fixed16)."""
    got, expected, bad = [], [], 0
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[0] == "y":
            got.append(float(parts[3]))
            expected.append(float(parts[4]))
            bad += parts[-1] == "MISMATCH"
    return np.array(got), np.array(expected), bad
