"""--quantize int8-full: the integer-only C kernel, bit-exact with TensorFlow Lite Micro.

Full-integer models converted through TensorFlow Lite Micro's recipe (single, stacked,
bidirectional, go_backwards LSTMs; int8 or float interface; a 200-step sequence model) run
in the generated C and in `tflite_micro`'s interpreter on the same int8 inputs: every output
is equal. Against TensorFlow Lite's reference kernels (BUILTIN_REF) the difference is that of
TensorFlow Lite Micro itself (its int16 sigmoid/tanh are table-based, the reference ones
gemmlowp's). Float models of the other front ends quantized with --calibration: the error
against the framework, and the same kernel. The build: warning-free C99 and C++, sanitizer
clean, no floating-point instruction in the integer core on a Cortex-M3, bit-exact on the
emulated Cortex-M3 and M4.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tflite_models as M
from support import missing, require_module, require_tool

import lstmgen
from lstmgen.cli import main
from lstmgen.extractors import open_model
from lstmgen.extractors.tflite.oracle import (
    reference_interpreter,
    run_reference,
    run_tflm,
    tflm_interpreter,
)
from lstmgen.ir.int8 import quantize_values
from lstmgen.quantize_int8 import quantize
from lstmgen.quantize_int8.reference import forward_int8
from lstmgen.sampling import SelftestData
from lstmgen.targets.c import runner as c_runner
from lstmgen.targets.c.int8_full import render_int8_full

SEQUENCES = 100


@pytest.fixture(scope="module")
def tflm():
    require_module("tf_keras")
    require_module("tensorflow")
    return require_module("tflite_micro")


def build_int8(files: dict[str, str], name: str, workdir: Path):
    """Compile NAME.c with cffi, exposing the int8 and the float API."""
    cffi = require_module("cffi")
    workdir.mkdir(parents=True, exist_ok=True)
    for filename, text in files.items():
        (workdir / filename).write_text(text)
    ffi = cffi.FFI()
    ffi.cdef(
        f"int {name}_predict_int8(const int8_t *x, int timesteps, int8_t *y);\n"
        f"int {name}_predict(const float *x, int timesteps, float *y);\n"
    )
    digest = hashlib.sha1(files[f"{name}.c"].encode()).hexdigest()[:12]
    module_name = f"_int8full_{name}_{digest}"
    ffi.set_source(
        module_name,
        f'#include "{name}.h"',
        sources=[str(workdir / f"{name}.c")],
        include_dirs=[str(workdir)],
        extra_compile_args=["-std=c99", "-O2"],
    )
    library = ffi.compile(tmpdir=str(workdir))
    spec = importlib.util.spec_from_file_location(module_name, library)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[module_name] = module
    return module


def predict_int8(module, name: str, x: np.ndarray, out_size: int, timesteps=None) -> np.ndarray:
    ffi, lib = module.ffi, module.lib
    rows = []
    for k, sequence in enumerate(np.ascontiguousarray(x, np.int8)):
        t_len = sequence.shape[0] if timesteps is None else int(timesteps[k])
        y = ffi.new("int8_t[]", out_size * (sequence.shape[0] if timesteps is not None else 1))
        assert (
            getattr(lib, f"{name}_predict_int8")(ffi.from_buffer("int8_t[]", sequence), t_len, y)
            == 0
        )
        rows.append(np.frombuffer(ffi.buffer(y), np.int8).copy())
    return np.stack(rows)


def tflm_outputs(path: Path, x: np.ndarray) -> np.ndarray:
    return np.stack([y.reshape(-1) for y in run_tflm(tflm_interpreter(path), x)])


def int8_inputs(integer, n: int, t_len: int, seed: int) -> np.ndarray:
    """Half full-range random int8, half quantized normal values (what a sensor gives)."""
    rng = np.random.default_rng(seed)
    wide = rng.integers(-128, 128, (n - n // 2, t_len, integer.input_size)).astype(np.int8)
    typical = quantize_values(
        rng.standard_normal((n // 2, t_len, integer.input_size)), integer.input
    )
    return np.concatenate([wide, typical])


@pytest.fixture(scope="module")
def compiled(tflm, tmp_path_factory):
    cache: dict[str, tuple] = {}

    def get(name: str, conversion: str = "int8"):
        key = f"{name}_{conversion}"
        if key not in cache:
            path = M.suite_model(name).paths[conversion]
            loaded = open_model(path)
            files = render_int8_full(loaded.int8, "net")
            cache[key] = (
                path,
                loaded,
                files,
                build_int8(files, "net", tmp_path_factory.mktemp(key)),
            )
        return cache[key]

    return get


@pytest.mark.parametrize("name", ["single", "stacked", "bidirectional", "backwards"])
def test_bit_exact_with_tflite_micro(compiled, name):
    path, loaded, _, module = compiled(name)
    integer = loaded.int8
    x = int8_inputs(integer, SEQUENCES, integer.timesteps, seed=len(name))
    expected = tflm_outputs(path, x)
    got = predict_int8(module, "net", x, integer.output_size)
    assert np.array_equal(got, expected.reshape(got.shape)), np.argwhere(got != expected)[:5]
    # and the numpy reference the kernel was written against
    assert np.array_equal(forward_int8(integer, x).reshape(got.shape), got)


def test_sequences_up_to_200_steps_bit_exact(compiled):
    """A 200-step sequence model: the C kernel run for T = 1..200 steps gives the first T
    outputs TensorFlow Lite Micro computes for the whole sequence (an LSTM is causal)."""
    path, loaded, _, module = compiled("long")
    integer = loaded.int8
    x = int8_inputs(integer, SEQUENCES, 200, seed=7)
    expected = tflm_outputs(path, x).reshape(SEQUENCES, 200, -1)
    lengths = np.random.default_rng(8).integers(1, 201, SEQUENCES)
    lengths[:2] = (200, 1)
    got = predict_int8(module, "net", x, integer.output_size, lengths).reshape(SEQUENCES, 200, -1)
    for k, t_len in enumerate(lengths):
        assert np.array_equal(got[k, :t_len], expected[k, :t_len]), (k, t_len)


def test_float_interface_bit_exact_with_tflite_micro(compiled):
    """A file with float input and output (QUANTIZE ... DEQUANTIZE around the int8 graph):
    NAME_predict on floats gives TensorFlow Lite Micro's float outputs exactly."""
    path, loaded, _, module = compiled("single", "int8_float_io")
    x = np.random.default_rng(3).standard_normal((50, 12, 3)).astype(np.float32) * 2
    expected = np.stack([y.reshape(-1) for y in run_tflm(tflm_interpreter(path), x)])
    ffi, lib = module.ffi, module.lib
    for k in range(len(x)):
        y = ffi.new("float[]", expected.shape[1])
        assert lib.net_predict(ffi.from_buffer("float[]", np.ascontiguousarray(x[k])), 12, y) == 0
        assert np.array_equal(np.frombuffer(ffi.buffer(y), np.float32), expected[k])


@pytest.mark.parametrize("name", ["single", "stacked"])
def test_within_the_reference_interpreters_difference(compiled, name):
    """TensorFlow Lite's reference kernels (BUILTIN_REF) compute the int16 sigmoid and tanh
    with gemmlowp's fixed point, TensorFlow Lite Micro with a table: the C kernel, equal to
    the latter, is as close to the former as TensorFlow Lite Micro is (measured: at most
    2 LSB on these models, 3 on the 200-step one; most outputs equal)."""
    path, loaded, _, module = compiled(name)
    integer = loaded.int8
    x = int8_inputs(integer, SEQUENCES, integer.timesteps, seed=11)
    reference = np.stack(
        [y.reshape(-1) for y in run_reference(reference_interpreter(path), x)]
    ).astype(int)
    got = predict_int8(module, "net", x, integer.output_size).astype(int)
    diff = np.abs(got - reference.reshape(got.shape))
    assert diff.max() <= 2 and np.mean(diff == 0) >= 0.8, (diff.max(), np.mean(diff == 0))


def test_cli_generate_and_verify_a_full_integer_file(compiled, tmp_path, capsys):
    path, *_ = compiled("stacked")
    out = tmp_path / "gen"
    assert (
        main(["generate", str(path), "--quantize", "int8-full", "--name", "net", "--out", str(out)])
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == ["net.c", "net.h"]
    capsys.readouterr()
    assert main(["verify", str(path), "--quantize", "int8-full", "--sequences", "20"]) == 0
    report = capsys.readouterr().out
    assert "TensorFlow Lite Micro" in report and "max abs error 0," in report and "PASS" in report
    assert main(["inspect", str(path), "--target", "c", "--quantize", "int8-full"]) == 0
    memory = capsys.readouterr().out
    assert "C target, int8-full" in memory and "sigmoid table 512" in memory
    require_tool("arm-none-eabi-gcc")  # measured: no mutable global, the state on the stack
    assert "static RAM 0;" in memory and "stack of model_predict" in memory


# ------------------------------------------------------ other front ends (--calibration) --


@pytest.fixture(scope="module")
def keras3_model():
    keras = require_module("keras")
    keras.utils.set_random_seed(4)
    model = keras.Sequential(
        [
            keras.Input((15, 2)),
            keras.layers.LSTM(10, return_sequences=True),
            keras.layers.LSTM(6),
            keras.layers.Dense(4, activation="relu"),
            keras.layers.Dense(1),
        ]
    )
    return model


def test_keras_model_quantized_with_calibration(keras3_model, tmp_path):
    """Post-training quantization of a Keras 3 model: the C build's error against
    model.predict stays within the mode's tolerance, and the C kernel is the integer
    reference's bit for bit."""
    path = tmp_path / "m.keras"
    keras3_model.save(path)
    calibration = np.random.default_rng(0).standard_normal((256, 15, 2)).astype(np.float32)
    np.save(tmp_path / "cal.npy", calibration)
    report = lstmgen.verify(
        path,
        target="c",
        options={"quantize": "int8-full", "calibration": str(tmp_path / "cal.npy")},
    )
    assert report.passed and float(np.max(report.max_abs)) <= 0.05, report.summary()
    integer = quantize(lstmgen.load(path), calibration)
    module = build_int8(render_int8_full(integer, "net"), "net", tmp_path / "build")
    x = int8_inputs(integer, 40, 15, seed=1)
    assert np.array_equal(predict_int8(module, "net", x, 1), forward_int8(integer, x))


def test_pytorch_model_quantized_with_calibration(tmp_path):
    """A PyTorch nn.LSTM + Linear quantized with calibration: error against its forward."""
    torch = require_module("torch")
    torch.manual_seed(0)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(3, 12, batch_first=True)
            self.fc = torch.nn.Linear(12, 2)

        def forward(self, x):
            out, _ = self.lstm(x)
            return self.fc(out[:, -1, :])

    net = Net().eval()
    calibration = np.random.default_rng(1).standard_normal((256, 10, 3)).astype(np.float32)
    report = lstmgen.verify(
        net,
        target="c",
        load_options={"example_input": torch.zeros(1, 10, 3)},
        inputs=calibration[:16],
        options={"quantize": "int8-full", "calibration": calibration},
    )
    assert float(np.max(report.max_abs)) <= 0.05, report.summary()


def test_other_targets_and_modes_refuse_int8_full(tmp_path, capsys):
    from irmodels import branch_models

    from lstmgen.ir_io import save_ir

    npz = save_ir(branch_models()["tiny"], tmp_path / "m.npz")
    for target in ("python", "matlab"):
        assert (
            main(
                [
                    "generate",
                    str(npz),
                    "--target",
                    target,
                    "--quantize",
                    "int8-full",
                    "--out",
                    str(tmp_path / target),
                ]
            )
            == 2
        )
        err = capsys.readouterr().err
        assert "'quantize' does not apply" in err
    assert (
        main(["generate", str(npz), "--quantize", "int8-full", "--out", str(tmp_path / "c")]) == 2
    )
    assert "--calibration" in capsys.readouterr().err
    assert (
        main(
            [
                "generate",
                str(npz),
                "--quantize",
                "int8",
                "--calibration",
                "x.npy",
                "--out",
                str(tmp_path / "d"),
            ]
        )
        == 2
    )
    assert "int8-full only" in capsys.readouterr().err


# -------------------------------------------------------------------------- the build --


def test_deterministic_and_warning_free_in_c_and_cpp(compiled, tmp_path):
    gcc = require_tool("gcc")
    for name in ("bidirectional", "long"):
        path, loaded, files, _ = compiled(name)
        assert render_int8_full(loaded.int8, "net") == files  # byte-identical
        for k, v in files.items():
            (tmp_path / k).write_text(v)
        for compiler, extra in (
            (gcc, []),
            (require_tool("clang"), []),
            (require_tool("g++"), ["-x", "c++", "-std=c++11"]),
        ):
            flags = [
                f
                for f in c_runner.C_WARNINGS
                if not (extra and f in ("-std=c99", "-Wstrict-prototypes", "-Wmissing-prototypes"))
            ]
            subprocess.run(
                [
                    compiler,
                    *flags,
                    *extra,
                    "-O2",
                    "-c",
                    str(tmp_path / "net.c"),
                    "-o",
                    str(tmp_path / "net.o"),
                ],
                check=True,
            )


def test_sanitizers_clean(compiled, tmp_path):
    """ASan + UBSan over full-range inputs, the longest sequences, and the buffered path."""
    clang = require_tool("clang")
    for name in ("long", "bidirectional"):
        path, loaded, files, _ = compiled(name)
        integer = loaded.int8
        x = int8_inputs(integer, 4, integer.timesteps, seed=2)
        expected = tflm_outputs(path, x)
        work = tmp_path / name
        work.mkdir()
        for k, v in files.items():
            (work / k).write_text(v)
        main_c = "\n".join(
            [
                '#include "net.h"',
                "#include <stdio.h>",
                f"static const int8_t xs[] = {{{c_list(x)}}};",
                f"static const int8_t want[] = {{{c_list(expected)}}};",
                "int main(void) {",
                f"  int8_t y[{expected.shape[1]}]; int n, k, bad = 0;",
                f"  for (n = 0; n < {len(x)}; ++n) {{",
                f"    if (net_predict_int8(xs + n * {x[0].size}, {integer.timesteps}, y))",
                "      return 2;",
                f"    for (k = 0; k < {expected.shape[1]}; ++k) bad += y[k] != want[n * "
                f"{expected.shape[1]} + k];",
                "  }",
                '  printf("%d\\n", bad); return bad != 0;',
                "}",
            ]
        )
        (work / "main.c").write_text(main_c)
        exe = work / "san"
        subprocess.run(
            [
                clang,
                "-std=c99",
                "-g",
                "-O1",
                "-fno-omit-frame-pointer",
                "-fsanitize=address,undefined",
                "-fno-sanitize-recover=undefined",
                str(work / "net.c"),
                str(work / "main.c"),
                "-o",
                str(exe),
            ],
            check=True,
        )
        result = subprocess.run([str(exe)], capture_output=True, text=True)
        assert result.returncode == 0 and result.stdout.strip() == "0", result.stderr[-2000:]


def c_list(values: np.ndarray) -> str:
    return ", ".join(str(int(v)) for v in np.asarray(values).ravel())


@pytest.fixture(scope="module")
def arm():
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    require_tool("timeout")
    if not Path(c_runner.PICOLIBC_SPECS).exists():
        missing("picolibc-arm-none-eabi")
    return True


def test_integer_core_has_no_floating_point(arm, compiled, tmp_path):
    """Cortex-M3 (no FPU) build with NAME_INTEGER_ONLY: no float/double in the code, no
    soft-float helper called, no VFP instruction; the float API alone brings them in."""
    for name in ("stacked", "bidirectional"):
        _, _, files, _ = compiled(name)
        code = re.sub(r"/\*.*?\*/", "", files["net.c"], flags=re.S)
        integer_part = code.split("#ifndef NET_INTEGER_ONLY")[0]
        assert not re.search(r"\b(float|double)\b", integer_part)
        for k, v in files.items():
            (tmp_path / k).write_text(v)
        for defines, expect_float in ((["-DNET_INTEGER_ONLY"], False), ([], True)):
            obj = tmp_path / "net.o"
            subprocess.run(
                [
                    "arm-none-eabi-gcc",
                    *c_runner.C_WARNINGS,
                    *c_runner.ARM_CORES["m3"][0],
                    "-Os",
                    *defines,
                    "-c",
                    str(tmp_path / "net.c"),
                    "-o",
                    str(obj),
                ],
                check=True,
            )
            dis = subprocess.run(
                ["arm-none-eabi-objdump", "-d", str(obj)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            undefined = subprocess.run(
                ["arm-none-eabi-nm", "-u", str(obj)], capture_output=True, text=True, check=True
            ).stdout
            uses_float = bool(re.search(r"__aeabi_[fd]|\bv(add|mul|div|cvt)", dis + undefined))
            assert uses_float == expect_float, (name, defines)


@pytest.mark.parametrize("core", ["m3", "m4f"])
def test_runs_bit_exact_on_cortex_m(arm, compiled, core, tmp_path):
    """The generated self-test on the emulated core: TensorFlow Lite Micro's int8 outputs,
    reproduced exactly (stacked: streaming; bidirectional: buffered)."""
    for name in ("stacked", "bidirectional"):
        path, loaded, _, _ = compiled(name)
        x = np.random.default_rng(5).standard_normal((3, loaded.int8.timesteps, 3))
        x = x.astype(np.float32)
        selftest = SelftestData(x, loaded.predict(x), loaded.oracle_name)
        files = c_runner_files(loaded, selftest)
        work = tmp_path / f"{name}_{core}"
        work.mkdir()
        elf = c_runner.build_selftest_elf(files, "net", work, core)
        result = c_runner.run_qemu(elf, core)
        got, expected, bad = c_runner.parse_selftest(result.stdout)
        assert result.returncode == 0 and bad == 0, result.stdout[-1500:]
        xq = quantize_values(x, loaded.int8.input)
        assert np.array_equal(got, tflm_outputs(path, xq).ravel())


def c_runner_files(loaded, selftest) -> dict[str, str]:
    from lstmgen.targets import c as c_backend

    return c_backend.render(loaded.ir, "net", quantize="int8-full", selftest=selftest)
