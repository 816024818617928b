"""--math builtin: the generated C's own exp/log1p/expm1 (no <math.h>, no libm call), with
the error bounds its comments state holding over the whole float range."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest
from irmodels import branch_models
from support import require_module, require_tool, run_c_program

from lstmgen.reference import forward
from lstmgen.targets import c as c_backend
from lstmgen.targets.c import runner as c_runner
from lstmgen.verify import error_metrics

# Every libm function a C LSTM could reach for; none may be referenced by a builtin build.
LIBM = {
    "exp",
    "expf",
    "expm1f",
    "log1pf",
    "logf",
    "log",
    "tanhf",
    "tanh",
    "fabsf",
    "fabs",
    "fmaf",
    "powf",
    "sqrtf",
    "expm1",
    "log1p",
    "exp2f",
    "ldexpf",
    "__expf_finite",
}

SWEEP = r"""
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "net.c"
static double rel(double got, double ref)
{
    double d = fabs(got - ref);
    return d / (fabs(ref) > 1.0 ? fabs(ref) : 1.0);
}
int main(void)
{
    double w_exp = 0.0, w_exp_sub = 0.0, w_softplus = 0.0, w_elu = 0.0, w_tanh = 0.0,
           w_sigmoid = 0.0, w_softsign = 0.0;
    unsigned long u;
    float in[2] = {1000.0f, 0.0f}, out[2];
    for (u = 0; u < 0x100000000UL; u += 251) {   /* every exponent, ~17M floats */
        unsigned int bits = (unsigned int)u;
        float x;
        double xd, e, d;
        memcpy(&x, &bits, sizeof x);
        if (!isfinite(x)) continue;
        xd = (double)x;
        e = exp(xd);
        if (e >= 1.1754943508222875e-38 && e <= 3.4028234663852886e38) {
            d = fabs((double)exp_builtin(x) - e) / e;
            if (d > w_exp) w_exp = d;
        } else if (e < 1.1754943508222875e-38) {
            d = fabs((double)exp_builtin(x) - e);
            if (d > w_exp_sub) w_exp_sub = d;
        }
        d = rel((double)act_softplus(x), xd > 0 ? xd + log1p(exp(-xd)) : log1p(exp(xd)));
        if (d > w_softplus) w_softplus = d;
        d = rel((double)act_elu(x), xd > 0 ? xd : expm1(xd));
        if (d > w_elu) w_elu = d;
        d = fabs((double)act_tanh(x) - tanh(xd));
        if (d > w_tanh) w_tanh = d;
        d = fabs((double)act_sigmoid(x) - 0.5 * (1.0 + tanh(0.5 * xd)));
        if (d > w_sigmoid) w_sigmoid = d;
        d = rel((double)act_softsign(x), xd / (1.0 + fabs(xd)));
        if (d > w_softsign) w_softsign = d;
    }
    printf("%.3g %.3g %.3g %.3g %.3g %.3g %.3g\n", w_exp, w_exp_sub, w_softplus, w_elu, w_tanh,
           w_sigmoid, w_softsign);
    printf("%g %g %g %g %g %g\n", (double)exp_builtin(INFINITY), (double)exp_builtin(-INFINITY),
           (double)exp_builtin(-100.0f), (double)exp_builtin(88.7f), (double)exp_builtin(89.0f),
           (double)exp_builtin(0.0f));
    printf("%g %g %g %g\n", (double)act_sigmoid(-100.0f), (double)act_sigmoid(100.0f),
           (double)act_sigmoid(-INFINITY), (double)act_sigmoid(INFINITY));
    printf("%g %g %g %g\n", (double)act_softplus(-100.0f), (double)act_softplus(100.0f),
           (double)act_softplus(-INFINITY), (double)act_softplus(INFINITY));
    printf("%g %g %g %g\n", (double)act_elu(-INFINITY), (double)act_elu(-100.0f),
           (double)act_tanh(-INFINITY), (double)act_tanh(INFINITY));
    printf("%d %d %d %d %d %d\n", isnan(exp_builtin(NAN)) != 0, isnan(act_sigmoid(NAN)) != 0,
           isnan(act_tanh(NAN)) != 0, isnan(act_softplus(NAN)) != 0, isnan(act_elu(NAN)) != 0,
           isnan(act_softsign(NAN)) != 0);
    apply_softmax(in, out, 2);
    printf("%g %g\n", (double)out[0], (double)out[1]);
    return 0;
}
"""


@pytest.fixture(scope="module")
def builtin_all(tmp_path_factory):
    """The all-activations model (softplus, elu, softsign, softmax, ...), --math builtin."""
    folder = tmp_path_factory.mktemp("builtin")
    model = branch_models()["all_activations"]
    files = c_backend.render(model, "net", math="builtin")
    for name, text in files.items():
        (folder / name).write_text(text)
    return model, files, folder


@pytest.fixture(scope="module")
def sweep(builtin_all):
    _, files, folder = builtin_all
    return run_c_program(folder, files, SWEEP).splitlines()


def test_error_bounds_over_all_floats(sweep, builtin_all):
    w_exp, w_exp_sub, w_softplus, w_elu, w_tanh, w_sigmoid, w_softsign = map(
        float, sweep[0].split()
    )
    source = builtin_all[1]["net.c"]
    # the bounds the generated comment states (docs/microcontroller.md repeats them)
    assert "exp_builtin    max rel error 1.2e-7" in source and w_exp <= 1.2e-7
    assert w_exp_sub <= 1.5e-45
    assert "act_softplus   max error 2.0e-7" in source and w_softplus <= 2.0e-7
    assert "act_elu        max abs error 6e-8" in source and w_elu <= 6e-8
    assert w_tanh <= 4.1e-7 and w_sigmoid <= 2.2e-7 and w_softsign <= 1.2e-7


def test_special_values(sweep):
    e_inf, e_minf, e_m100, e_887, e_89, e_0 = map(float, sweep[1].split())
    assert (e_inf, e_minf, e_89, e_0) == (np.inf, 0.0, np.inf, 1.0)
    assert (
        abs(e_m100 - np.exp(-100.0)) <= 1.5e-45
        and abs(e_887 / np.exp(float(np.float32(88.7))) - 1) < 1e-5
    )
    assert sweep[2].split() == ["0", "1", "0", "1"]  # sigmoid(-100) is 0, not NaN
    sp_m100, sp_100, sp_minf, sp_inf = map(float, sweep[3].split())
    assert abs(sp_m100 - np.exp(-100.0)) <= 3e-45 and (sp_100, sp_minf, sp_inf) == (
        100.0,
        0.0,
        np.inf,
    )
    assert sweep[4].split() == ["-1", "-1", "-1", "1"]
    assert sweep[5].split() == ["1"] * 6  # NaN in, NaN out
    assert sweep[6].split() == ["1", "0"]  # softmax: no overflow


@pytest.mark.parametrize(
    "compiler,opts", [("gcc", ["-O0"]), ("gcc", ["-O2"]), ("clang", ["-O2"]), ("arm", ["-Os"])]
)
def test_no_math_header_and_no_libm_symbol(builtin_all, compiler, opts, tmp_path):
    """No <math.h>, and `nm -u` on the object lists no math function (gcc, clang, ARM)."""
    model, files, folder = builtin_all
    assert "#include <math.h>" not in files["net.c"] and "<math.h>" not in files["net.h"]
    if compiler == "arm":
        exe, nm = require_tool("arm-none-eabi-gcc"), require_tool("arm-none-eabi-nm")
        flags = c_runner.ARM_CORES["m4f"][0]
    else:
        exe, nm, flags = require_tool(compiler), require_tool("nm"), ["-march=native"]
    obj = tmp_path / "net.o"
    result = subprocess.run(
        [exe, *c_runner.C_WARNINGS, *flags, *opts, "-c", str(folder / "net.c"), "-o", str(obj)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and not result.stderr, result.stderr
    undefined = set(
        subprocess.run(
            [nm, "-u", str(obj)], capture_output=True, text=True, check=True
        ).stdout.split()
    ) - {"U"}
    assert not undefined & LIBM, undefined
    assert undefined <= {"memcpy", "memset"}, undefined


def test_libm_build_does_use_libm(builtin_all, tmp_path):
    """The contrast: the default (libm) build of the same model references expf etc."""
    files = c_backend.render(builtin_all[0], "net")
    (tmp_path / "net.c").write_text(files["net.c"])
    (tmp_path / "net.h").write_text(files["net.h"])
    subprocess.run(
        [
            require_tool("gcc"),
            "-std=c99",
            "-O2",
            "-c",
            str(tmp_path / "net.c"),
            "-o",
            str(tmp_path / "net.o"),
        ],
        check=True,
    )
    undefined = subprocess.run(
        [require_tool("nm"), "-u", str(tmp_path / "net.o")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert re.search(r"\b(expf|log1pf|expm1f)\b", undefined)


@pytest.mark.parametrize("key", sorted(branch_models()))
def test_builtin_models_match_reference(key, tmp_path):
    require_module("cffi")
    model = branch_models()[key]
    files = c_backend.render(model, "net", math="builtin")
    x = np.random.default_rng(11).standard_normal((6, 7, model.input_size)).astype(np.float32)
    got = c_runner.run(model, files, "net", x, tmp_path)
    _, rel = error_metrics(got, forward(model, x))
    assert rel.max() <= 1e-5, (key, rel)


LOG_SWEEP = r"""
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "net.c"
int main(void)
{
    double worst = 0.0;
    unsigned int bits;
    for (bits = 0x3f800000u; bits < 0x4b800000u; bits += 251) {   /* 1 <= x < 2^24 */
        float x;
        double ref, d;
        memcpy(&x, &bits, sizeof x);
        ref = log((double)x);
        d = fabs((double)log_builtin(x) - ref) / (ref > 1.0 ? ref : 1.0);
        if (d > worst) worst = d;
    }
    printf("%.3g %g %d\n", worst, (double)log_builtin(INFINITY), isnan(log_builtin(NAN)) != 0);
    return 0;
}
"""


def test_builtin_log_error_bound(tmp_path):
    """log_builtin (log_softmax's log of a sum of exponentials, which is >= 1) under --math
    builtin: the bound its comment states, over every 251st float in [1, 2^24)."""
    from lstmgen.ir import Dense, Model

    tiny = branch_models()["tiny"]
    rng = np.random.default_rng(0)
    head = Dense("head", rng.uniform(-1, 1, (4, 1)).astype(np.float32), None, "log_softmax")
    model = Model(1, [tiny.layers[0], head]).validate()
    files = c_backend.render(model, "net", math="builtin")
    assert "log_builtin    max rel error 1.4e-7" in files["net.c"]
    worst, inf, nan = run_c_program(tmp_path, files, LOG_SWEEP).split()
    assert float(worst) <= 1.4e-7 and inf == "inf" and nan == "1", (worst, inf, nan)
