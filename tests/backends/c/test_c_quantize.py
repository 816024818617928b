"""--quantize int8 | int16 | fixed16 (and the option plumbing of the C backend).

int8/int16 keep the float kernel with integer weights: against the float64 reference of
the *dequantized* weights they must be as exact as the float build (so any kernel bug
shows), and against Keras within the mode's documented tolerance. fixed16 is all-integer
code: against Keras within its tolerance, saturating (never wrapping) on extreme inputs.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from irmodels import branch_models
from support import C_COMPILERS, compile_c, require_module, require_tool, run_c_program, write_files

from lstmgen.errors import LstmgenError
from lstmgen.reference import forward
from lstmgen.sampling import SelftestData, make_inputs
from lstmgen.targets import c as c_backend
from lstmgen.targets.c import quant as c_quant
from lstmgen.targets.c import runner as c_runner
from lstmgen.targets.c.memory import estimate
from lstmgen.verify import error_metrics

MODES = ("int8", "int16", "fixed16")


@pytest.fixture(scope="module")
def quantized(grid_cases, tmp_path_factory):
    """Every grid case in every mode, compiled once (cffi, -O1 to keep the build short)."""
    require_module("cffi")
    built = {}
    for case in grid_cases:
        for mode in MODES:
            files = c_backend.render(case.ir, "net", quantize=mode)
            workdir = tmp_path_factory.mktemp(f"{case.spec.id}_{mode}")
            module = c_runner.build(case.ir, files, "net", workdir, ["-O1"])
            got = c_runner.run(case.ir, files, "net", case.x, workdir, module=module)
            built[case.spec.id, mode] = (case, files, module, got)
    return built


@pytest.mark.parametrize("mode", MODES)
def test_grid_within_documented_tolerance_of_keras(quantized, grid_cases, mode):
    atol = c_backend.default_atol(quantize=mode)
    worst = []
    for case in grid_cases:
        _, _, _, got = quantized[case.spec.id, mode]
        max_abs, _ = error_metrics(got, case.expected)
        worst.append((float(max_abs.max()), case.spec.id))
    # all within the tolerance, with margin: the documented tolerance is about 5x the
    # worst error seen on this grid and on the example model
    assert max(worst)[0] <= atol / 2, (mode, sorted(worst)[-3:])
    if mode == "int16":
        assert max(worst)[0] <= 1e-4


@pytest.mark.parametrize("mode", ["int8", "int16"])
def test_int_kernels_are_exact_for_their_dequantized_weights(quantized, grid_cases, mode):
    for case in grid_cases:
        _, _, _, got = quantized[case.spec.id, mode]
        ref = forward(c_quant.dequantized_model(case.ir, mode), case.x)
        _, rel = error_metrics(got, ref)
        assert rel.max() <= 1e-5, (case.spec.id, rel.max())


def test_fixed16_step_streams_like_predict(quantized, grid_cases, tmp_path):
    checked = 0
    for case in grid_cases[:8]:
        if not case.ir.streamable:
            continue
        _, files, module, got = quantized[case.spec.id, "fixed16"]
        steps = c_runner.run_steps(case.ir, files, "net", case.x, tmp_path, module=module)
        last = steps if case.ir.returns_sequences else steps[:, -1]
        assert np.array_equal(last, got), case.spec.id  # the same integer arithmetic
        checked += 1
    assert checked >= 3


def test_quantization_error_is_half_a_step():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((40, 24)).astype(np.float32) * np.float32(0.3)
    w[:, 3] = 0.0
    for mode, qmax in (("int8", 127), ("int16", 32767)):
        q, scale = c_quant.quantize_columns(w, mode)
        assert q.dtype == (np.int8 if mode == "int8" else np.int16)
        assert np.all(np.abs(q) <= qmax) and scale[3] == 1.0 and not np.any(q[:, 3])
        err = np.abs(w - q.astype(np.float64) * scale)
        assert np.all(err <= scale / 2 * (1 + 1e-6))
        assert np.max(np.abs(q), axis=0)[np.arange(24) != 3].min() == qmax


def test_flash_saving():
    from lstmgen.ir import LSTM, Model

    rng = np.random.default_rng(0)
    model = Model(
        9,
        [
            LSTM(
                "l",
                rng.uniform(-1, 1, (256, 9)).astype(np.float32),
                rng.uniform(-1, 1, (256, 64)).astype(np.float32),
                np.zeros(256, np.float32),
            )
        ],
    )
    flt = estimate(model).weight_bytes
    assert estimate(model, quantize="int16").weight_bytes < 0.55 * flt
    assert estimate(model, quantize="int8").weight_bytes < 0.3 * flt
    assert estimate(model, quantize="fixed16").weight_bytes < 0.55 * flt
    model = branch_models()["all_activations"]
    # the header says how much flash the weights take
    header = c_backend.render(model, "net", quantize="int8")["net.h"]
    assert f"{estimate(model, quantize='int8').weight_bytes} bytes of const weights" in header


@pytest.mark.parametrize("key", ["tiny", "all_activations"])
def test_fixed16_saturates_instead_of_wrapping(key, tmp_path):
    """Inputs beyond the Q3.12 range clip to +-8 (the caller's conversion saturates), and
    the model then computes on the clipped input; huge values never wrap around."""
    require_module("cffi")
    model = branch_models()[key]
    files = c_backend.render(model, "net", quantize="fixed16")
    x = np.random.default_rng(1).standard_normal((4, 6, model.input_size)) * 40
    x = x.astype(np.float32)
    x[0] = 1e30
    got = c_runner.run(model, files, "net", x, tmp_path / key)
    ref = forward(model, np.clip(x, -8.0, 8.0 - 2.0**-12))
    assert np.max(np.abs(got - ref)) <= c_backend.default_atol(quantize="fixed16"), key


DRIVER = r"""
#include <stdio.h>
#include "net.h"
int main(void)
{
    static const int16_t extremes[4] = {32767, -32768, 0, 12345};
    int16_t x[7 * NET_INPUT_SIZE], y[7 * NET_OUTPUT_SIZE];
    int e, i;
    for (e = 0; e < 4; ++e) {
        for (i = 0; i < 7 * NET_INPUT_SIZE; ++i) x[i] = extremes[(e + i) % 4];
        if (net_predict(x, 7, y) != 0) return 2;
        printf("%d\n", (int)y[0]);
    }
    return 0;
}
"""


@pytest.mark.parametrize("key", sorted(branch_models()))
def test_fixed16_ubsan_clean_on_extreme_inputs(key, tmp_path):
    clang = require_tool("clang")
    model = branch_models()[key]
    for name, text in c_backend.render(model, "net", quantize="fixed16").items():
        (tmp_path / name).write_text(text)
    (tmp_path / "driver.c").write_text(DRIVER)
    subprocess.run(
        [
            clang,
            "-std=c99",
            "-g",
            "-O1",
            "-fsanitize=address,undefined,integer",
            "-fno-sanitize=unsigned-integer-overflow",
            "-fno-sanitize-recover=all",
            "-I",
            str(tmp_path),
            str(tmp_path / "driver.c"),
            str(tmp_path / "net.c"),
            "-o",
            str(tmp_path / "driver"),
        ],
        check=True,
    )
    result = subprocess.run([str(tmp_path / "driver")], capture_output=True, text=True)
    assert result.returncode == 0 and "runtime error" not in result.stderr, result.stderr


BUILDS = {
    "float": {},
    "builtin": {"math": "builtin"},
    "int8": {"quantize": "int8"},
    "int16_builtin": {"quantize": "int16", "math": "builtin"},
    "fixed16": {"quantize": "fixed16"},
}


@pytest.mark.parametrize("build", sorted(BUILDS))
@pytest.mark.parametrize("compiler", sorted(C_COMPILERS))
@pytest.mark.parametrize("key", sorted(branch_models()))
def test_every_mode_compiles_without_warnings(compiler, key, build, tmp_path):
    """Every mode, with its self-test, warning-free as C99 (gcc, clang) and as C++."""
    model = branch_models()[key]
    x = make_inputs(model.input_size, 2, 3, seed=0)
    data = SelftestData(x, forward(model, x), "reference")
    folder = write_files(c_backend.render(model, "net", selftest=data, **BUILDS[build]), tmp_path)
    compile_c(compiler, folder / "net.c", "-O2")
    compile_c(compiler, folder / "net_selftest.c", "-O2", "-DNET_SELFTEST_MAIN")


def test_option_values_are_checked():
    model = branch_models()["tiny"]
    with pytest.raises(LstmgenError, match="int8, int16, fixed16 or int8-full"):
        c_backend.render(model, "net", quantize="int4")
    with pytest.raises(LstmgenError, match="libm or builtin"):
        c_backend.render(model, "net", math="fast")
    with pytest.raises(LstmgenError, match="does not apply"):
        c_backend.render(model, "net", precision="double")
    with pytest.raises(LstmgenError, match="selftest"):
        c_backend.render(model, "net", selftest="yes")
    assert c_backend.OPTIONS == ("quantize", "math", "selftest", "arduino", "calibration")
    assert [c_backend.default_atol(quantize=m) for m in (None, "int16", "fixed16", "int8")] == [
        1e-5,
        2e-4,
        5e-3,
        2e-2,
    ]


def test_fixed16_refuses_weights_beyond_its_range():
    model = branch_models()["tiny"]
    model.layers[0].input_weights[:] = 5000.0
    with pytest.raises(LstmgenError, match="too large for --quantize fixed16"):
        c_backend.render(model, "net", quantize="fixed16")


def test_cli_generate_and_verify_quantized(example_model_path, tmp_path, capsys, keras):
    from lstmgen.cli import main

    assert (
        main(
            [
                "generate",
                str(example_model_path),
                "--name",
                "net",
                "--out",
                str(tmp_path / "o"),
                "--quantize",
                "fixed16",
                "--selftest",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        "net.c",
        "net.h",
        "net_selftest.c",
    ]
    capsys.readouterr()
    for mode, atol in (("int8", "0.02"), ("int16", "0.0002"), ("fixed16", "0.005")):
        assert main(["verify", str(example_model_path), "--quantize", mode]) == 0
        report = capsys.readouterr().out
        assert "PASS" in report and f"atol {atol}" in report, report


def test_verify_extra_reports_the_flash_saving():
    model = branch_models()["all_activations"]
    extra = c_backend.verify_extra(model, quantize="int8")
    saving = estimate(model).weight_bytes - estimate(model, quantize="int8").weight_bytes
    assert extra["flash saving against float32 weights (bytes)"] == saving > 0
    assert list(c_backend.verify_extra(model)) == ["flash bytes of weights (float32)"]


FIXED_SWEEP = r"""
#include <math.h>
#include <stdio.h>
#include "net.c"
int main(void)
{
    double w[6] = {0, 0, 0, 0, 0, 0};
    int32_t q;
    for (q = -20 * 65536; q <= 20 * 65536; q += 7) {
        const double x = q / 65536.0, one = 65536.0;
        double d[6];
        d[0] = fabs(act_sigmoid(q) / one - 1.0 / (1.0 + exp(-x)));
        d[1] = fabs(act_tanh(q) / one - tanh(x));
        d[2] = fabs(act_softplus(q) / one - (x > 0 ? x + log1p(exp(-x)) : log1p(exp(x))));
        d[3] = x <= 0 ? fabs(exp_neg(q) / one - exp(x)) : 0.0;
        d[4] = fabs(act_elu(q) / one - (x > 0 ? x : expm1(x)));
        d[5] = fabs(act_softsign(q) / one - x / (1.0 + fabs(x)));
        for (int k = 0; k < 6; ++k) if (d[k] > w[k]) w[k] = d[k];
    }
    printf("%.3g %.3g %.3g %.3g %.3g %.3g\n", w[0], w[1], w[2], w[3], w[4], w[5]);
    return 0;
}
"""


def test_fixed16_activation_errors(tmp_path):
    """The integer activations' errors stated in fixed16.c and docs/microcontroller.md."""
    files = c_backend.render(branch_models()["all_activations"], "net", quantize="fixed16")
    out = run_c_program(tmp_path, files, FIXED_SWEEP, "-std=c99")
    sigmoid, tanh, softplus, exp, elu, softsign = map(float, out.split())
    assert "max error 6e-5 and 1.2e-4" in files["net.c"] and "(error 4.2e-5)" in files["net.c"]
    assert sigmoid <= 6e-5 and tanh <= 1.2e-4 and softplus <= 4.2e-5
    assert exp <= 1.8e-5 and elu <= 1.8e-5 and softsign <= 2e-5
