"""The generated C on emulated microcontrollers, its memory, and its packaging.

Every build mode (float, int8, int16, fixed16, and float with --math builtin) is
cross-compiled with arm-none-eabi-gcc -Os -Werror (the host tests' warning set) for a
Cortex-M4F (hard float, qemu mps2-an386) and a Cortex-M3 (soft float, qemu mps2-an385),
and the generated self-test NAME_selftest.c runs on qemu with semihosting: its exit code
must be 0, and the outputs it prints must match the framework's predictions.
"""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest
from irmodels import branch_models, large_model
from support import FRAME_SLACK, qemu_outputs, require_arm, require_tool

from lstmgen.ir import LSTM, Dense, Model
from lstmgen.reference import forward
from lstmgen.sampling import SelftestData, make_inputs
from lstmgen.targets import c as c_backend
from lstmgen.targets.c import runner as c_runner
from lstmgen.targets.c.memory import estimate, measure

MODES = {
    "float": {},
    "int8": {"quantize": "int8"},
    "int16": {"quantize": "int16"},
    "fixed16": {"quantize": "fixed16"},
    "builtin": {"math": "builtin"},
}
CORES = ["m4f", "m3"]
SEQUENCES = 16


@pytest.fixture(scope="module")
def arm():
    require_arm()


@pytest.fixture(scope="module")
def sine(keras, example_model_path):
    import lstmgen

    km = keras.models.load_model(example_model_path)
    model = lstmgen.load(example_model_path)
    x = make_inputs(1, SEQUENCES, 20, seed=3)
    return model, x, km.predict(x, verbose=0)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_example_runs_on_cortex_m_and_matches_keras(arm, sine, mode, tmp_path):
    model, x, expected = sine
    files = c_backend.render(
        model, "sine", selftest=SelftestData(x, expected, "Keras"), **MODES[mode]
    )
    atol = c_backend.default_atol(**MODES[mode])
    outputs = {}
    for core in CORES:
        rc, out, got = qemu_outputs(files, "sine", tmp_path / core, core, model, mode)
        assert rc == 0, out[-2000:]
        assert f"sine_selftest: 0 of {SEQUENCES} outputs out of tolerance" in out
        assert got.shape == (SEQUENCES,)
        err = np.max(np.abs(got - expected.ravel()))
        assert err <= atol, (mode, core, err)
        if mode == "float":
            assert err <= 1e-5 * max(1.0, float(np.max(np.abs(expected))))
        outputs[core] = got
    if mode == "fixed16":  # integer code: bit-identical on both cores
        assert np.array_equal(outputs["m4f"], outputs["m3"])


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("key", ["all_activations", "three_stages", "sequence_reversed"])
def test_every_template_branch_runs_on_cortex_m(arm, key, mode, tmp_path):
    """Every activation (incl. softplus, elu, softmax), stacked, buffered and tail layers,
    in every mode on both cores, against the float64 reference."""
    model = branch_models()[key]
    t_len = model.timesteps or 9
    x = make_inputs(model.input_size, 8, t_len, seed=5)
    expected = forward(model, x).astype(np.float32)
    options = MODES[mode]
    files = c_backend.render(
        model, "net", selftest=SelftestData(x, expected, "reference"), **options
    )
    for core in CORES:
        rc, out, got = qemu_outputs(files, "net", tmp_path / core, core, model, mode)
        assert rc == 0, (core, out[-2000:])
        err = np.max(np.abs(got - expected.ravel()) / np.maximum(1, np.abs(expected.ravel())))
        assert err <= c_backend.default_atol(**options), (core, err)


def test_selftest_reports_mismatches(arm, tmp_path):
    """Wrong expected outputs: main returns 1 and names every mismatch, on both cores."""
    model = branch_models()["tiny"]
    x = make_inputs(1, 4, 5, seed=1)
    wrong = forward(model, x).astype(np.float32) + np.float32(0.5)
    for mode in ("float", "fixed16"):
        files = c_backend.render(
            model, "net", selftest=SelftestData(x, wrong, "wrong"), **MODES[mode]
        )
        for core in CORES:
            rc, out, _ = qemu_outputs(files, "net", tmp_path / f"{mode}{core}", core, model, mode)
            assert rc == 1 and out.count("MISMATCH") == 4, out
            assert "net_selftest: 4 of 4 outputs out of tolerance" in out


@pytest.fixture(scope="module")
def large_files():
    model = large_model()
    x = make_inputs(9, 2, 8, seed=2)
    y = forward(model, x).astype(np.float32)
    return (
        model,
        {
            mode: c_backend.render(
                model, "large", selftest=SelftestData(x, y, "ref"), **MODES[mode]
            )
            for mode in ("float", "int8", "fixed16")
        },
        y,
    )


def test_large_model_runs_and_fits_a_microcontroller(arm, large_files, tmp_path):
    """9 -> LSTM(256) -> 1: ~1.1 MB of float weights stay in flash; the stack stays a few
    KiB (keras2c's generated code copies every weight onto the stack: ~1.1 MB)."""
    model, files, expected = large_files
    for mode, core in (("float", "m4f"), ("int8", "m4f"), ("fixed16", "m3")):
        rc, out, got = qemu_outputs(files[mode], "large", tmp_path / mode, core, model, mode)
        assert rc == 0, out[-2000:]
        assert np.max(np.abs(got - expected.ravel())) <= c_backend.default_atol(**MODES[mode])
        m = measure(files[mode], "large", "cortex-m3" if mode == "fixed16" else "cortex-m4")
        est = estimate(model, **MODES[mode])
        assert m.ram_bytes == 0
        rodata = sum(v for k, v in m.sections.items() if k.startswith(".rodata"))
        assert rodata >= est.weight_bytes - 64
        # RAM: the state plus one gate-vector scratch (4H floats; fixed16: H int16)
        assert m.stack["large_step"] <= est.scratch_bytes + FRAME_SLACK
        assert m.stack["large_predict"] <= est.state_bytes + est.scratch_bytes + FRAME_SLACK
        assert m.stack["large_predict"] < 8 * 1024
    assert estimate(model).weight_bytes > 1_000_000


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("key", sorted(branch_models()))
def test_no_weight_in_ram_and_stack_is_state_plus_scratch(arm, key, mode):
    """Weights land in .rodata (read-only), nothing in .data/.bss, and the measured
    worst-case stack is the estimated scratch plus frame overhead."""
    model = branch_models()[key]
    files = c_backend.render(model, "net", **MODES[mode])
    m = measure(files, "net", "cortex-m3" if mode == "fixed16" else "cortex-m4")
    est = estimate(model, **MODES[mode])
    assert m.ram_bytes == 0, m.sections
    if "net_step" in m.stack:
        assert m.stack["net_step"] <= est.scratch_bytes + FRAME_SLACK, m.stack
    assert m.stack["net_predict"] <= est.ram_bytes + FRAME_SLACK, m.stack
    assert max(m.frames.values()) <= est.ram_bytes + FRAME_SLACK


@pytest.mark.parametrize("mode", ["float", "int8", "fixed16"])
def test_weight_symbols_are_read_only(arm, mode, tmp_path):
    model = branch_models()["all_activations"]
    files = c_backend.render(model, "net", **MODES[mode])
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    obj = tmp_path / f"{mode}.o"
    subprocess.run(
        [
            "arm-none-eabi-gcc",
            *c_runner.C_WARNINGS,
            *c_runner.ARM_CORES["m3"][0],
            "-Os",
            "-c",
            str(tmp_path / "net.c"),
            "-o",
            str(obj),
        ],
        check=True,
    )
    symbols = subprocess.run(
        ["arm-none-eabi-nm", str(obj)], capture_output=True, text=True, check=True
    ).stdout
    weights = [l.split() for l in symbols.splitlines() if re.search(r" net_\w+_(W|U|b)", l)]
    assert weights and all(kind in "rR" for _, kind, _ in weights), weights


@pytest.mark.parametrize("key", sorted(branch_models()))
def test_fixed16_has_no_floating_point(arm, key, tmp_path):
    """fixed16 on the soft-float M3: no float/double in the source, and no call into the
    soft-float library (__aeabi_f*, __aeabi_d*) in the object -- model and self-test."""
    model = branch_models()[key]
    x = make_inputs(model.input_size, 2, 3, seed=0)
    files = c_backend.render(
        model,
        "net",
        quantize="fixed16",
        selftest=SelftestData(x, forward(model, x), "reference"),
    )
    for name, text in files.items():
        code = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
        assert not re.search(r"\b(float|double)\b", code), (key, name)
        assert "<math.h>" not in text
        (tmp_path / name).write_text(text)
    for source in ("net.c", "net_selftest.c"):
        obj = tmp_path / (source + ".o")
        subprocess.run(
            [
                "arm-none-eabi-gcc",
                *c_runner.C_WARNINGS,
                *c_runner.ARM_CORES["m3"][0],
                "-Os",
                "-I",
                str(tmp_path),
                "-c",
                str(tmp_path / source),
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
        assert not re.search(r"__aeabi_[fd]", dis + undefined), (key, source)


def test_float_on_m3_uses_soft_float(arm, tmp_path):
    """The contrast that makes the check above meaningful: float code on the M3 does call
    the soft-float helpers."""
    files = c_backend.render(branch_models()["tiny"], "net")
    (tmp_path / "net.c").write_text(files["net.c"])
    (tmp_path / "net.h").write_text(files["net.h"])
    subprocess.run(
        [
            "arm-none-eabi-gcc",
            "-std=c99",
            *c_runner.ARM_CORES["m3"][0],
            "-Os",
            "-c",
            str(tmp_path / "net.c"),
            "-o",
            str(tmp_path / "net.o"),
        ],
        check=True,
    )
    undefined = subprocess.run(
        ["arm-none-eabi-nm", "-u", str(tmp_path / "net.o")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "__aeabi_f" in undefined


def test_inspect_memory_report(arm, example_model_path, capsys, keras):
    from lstmgen.cli import main

    assert main(["inspect", str(example_model_path), "--target", "c"]) == 0
    out = capsys.readouterr().out
    assert "flash and RAM per layer" in out and "measured" in out and "lstm" in out
    assert main(["inspect", str(example_model_path), "--target", "c", "--quantize", "int8"]) == 0
    out = capsys.readouterr().out
    assert "int8 weights" in out and "flash saving against float32 weights" in out


def test_memory_report_estimates_without_toolchain(monkeypatch):
    from lstmgen.targets.c import memory

    monkeypatch.setattr(memory, "toolchain_available", lambda: False)
    text = c_backend.memory_report(branch_models()["all_activations"], quantize="fixed16")
    assert "(estimated)" in text and "measured" not in text and "tables" in text


@pytest.mark.parametrize("mode", ["float", "int8", "fixed16"])
@pytest.mark.parametrize("key", sorted(branch_models()))
def test_estimated_code_size_is_close_to_measured(arm, key, mode):
    model = branch_models()[key]
    files = c_backend.render(model, "net", **MODES[mode])
    m = measure(files, "net", "cortex-m3" if mode == "fixed16" else "cortex-m4")
    est = estimate(model, **MODES[mode]).code_bytes
    assert 0.7 <= m.sections[".text"] / est <= 1.4, (m.sections, est)


# ------------------------------------------------------------------------ packaging --

ARDUINO_STUB = """
#pragma once
#include <stdio.h>
struct SerialStub { void begin(long) {} void println(int v) { printf("%d\\n", v); } };
static SerialStub Serial;
"""
SKETCH = """
#include "Arduino.h"
#include "net.h"
void setup() { Serial.begin(115200); Serial.println(net_selftest()); }
void loop() {}
int main() { setup(); return net_selftest(); }
"""


def test_arduino_library_layout(tmp_path, capsys):
    """--arduino: library.properties next to the sources (flat layout); a sketch (C++)
    includes the header and calls the self-test."""
    from lstmgen.cli import main
    from lstmgen.ir_io import save_ir

    npz = save_ir(branch_models()["all_activations"], tmp_path / "m.npz")
    out = tmp_path / "libraries" / "net"
    assert (
        main(
            [
                "generate",
                str(npz),
                "--name",
                "net",
                "--out",
                str(out),
                "--arduino",
                "--selftest",
                "--quantize",
                "int8",
            ]
        )
        == 0
    )
    names = sorted(p.name for p in out.iterdir())
    assert names == ["library.properties", "net.c", "net.h", "net_selftest.c"]
    props = dict(
        line.split("=", 1)
        for line in (out / "library.properties").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    for key in (
        "name",
        "version",
        "author",
        "maintainer",
        "sentence",
        "paragraph",
        "category",
        "url",
        "architectures",
        "includes",
    ):
        assert key in props, key
    assert props["name"] == "net" and props["includes"] == "net.h"
    (tmp_path / "Arduino.h").write_text(ARDUINO_STUB)
    (tmp_path / "sketch.cpp").write_text(SKETCH)
    objs = []
    for source in ("net.c", "net_selftest.c"):  # Arduino compiles .c files as C
        obj = tmp_path / (source + ".o")
        subprocess.run(
            [
                require_tool("gcc"),
                *c_runner.C_WARNINGS,
                "-Os",
                "-c",
                str(out / source),
                "-o",
                str(obj),
            ],
            check=True,
        )
        objs.append(str(obj))
    subprocess.run(
        [
            require_tool("g++"),
            "-std=c++11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-I",
            str(tmp_path),
            "-I",
            str(out),
            str(tmp_path / "sketch.cpp"),
            *objs,
            "-lm",
            "-o",
            str(tmp_path / "sketch"),
        ],
        check=True,
    )
    result = subprocess.run([str(tmp_path / "sketch")], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "0"


def test_output_folder_builds_with_cmake(tmp_path):
    """The generated folder added to a CMake project as is (docs/microcontroller.md)."""
    cmake = require_tool("cmake")
    model = branch_models()["tiny"]
    gen = tmp_path / "gen"
    gen.mkdir()
    x = make_inputs(1, 2, 3, seed=0)
    for name, text in c_backend.render(
        model, "net", selftest=SelftestData(x, forward(model, x), "reference")
    ).items():
        (gen / name).write_text(text)
    (tmp_path / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.13)\nproject(app C)\n"
        "add_library(net STATIC gen/net.c gen/net_selftest.c)\n"
        "target_include_directories(net PUBLIC gen)\n"
        "target_link_libraries(net PUBLIC m)\n"
        "add_executable(app main.c)\ntarget_link_libraries(app net)\n"
    )
    (tmp_path / "main.c").write_text(
        '#include "net.h"\nint main(void) { return net_selftest(); }\n'
    )
    build = tmp_path / "build"
    subprocess.run([cmake, "-S", str(tmp_path), "-B", str(build)], check=True, capture_output=True)
    subprocess.run([cmake, "--build", str(build)], check=True, capture_output=True)
    assert subprocess.run([str(build / "app")]).returncode == 0


@pytest.mark.parametrize("level", ["-O2", "-O3"])
def test_speed_builds_compile_warning_free_for_a_microcontroller(arm, level, tmp_path):
    """-Os is what the size figures use, but users build at -O2/-O3 too: there gcc's loop
    analysis once warned 'iteration 1073741823 invokes undefined behavior' in the row kernel
    when the input width was a multiple of four (the remainder loop it could not prove dead)."""
    rng = np.random.default_rng(4)
    units, width = 16, 16
    model = Model(
        width,
        [
            LSTM(
                "lstm",
                rng.standard_normal((4 * units, width)).astype(np.float32) * 0.1,
                rng.standard_normal((4 * units, units)).astype(np.float32) * 0.1,
                np.zeros(4 * units, np.float32),
            ),
            Dense("out", rng.standard_normal((1, units)).astype(np.float32), None),
        ],
    )
    for mode in sorted(MODES):
        files = c_backend.render(model, "net", **MODES[mode])
        for name, text in files.items():
            (tmp_path / name).write_text(text)
        for core in ("m4f", "m3"):
            subprocess.run(
                [
                    "arm-none-eabi-gcc",
                    *c_runner.C_WARNINGS,
                    *c_runner.ARM_CORES[core][0],
                    level,
                    "-c",
                    str(tmp_path / "net.c"),
                    "-o",
                    str(tmp_path / f"{mode}_{core}.o"),
                ],
                check=True,
            )
