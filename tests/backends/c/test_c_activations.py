"""The generated C's own tanh/sigmoid: error bounds stated in the code hold over all floats."""

from __future__ import annotations

import platform

import pytest
from irmodels import branch_models
from support import run_c_program

from lstmgen.ir import LSTM, Model
from lstmgen.targets import c as c_backend

X86 = platform.machine() in ("x86_64", "AMD64", "i686")
FUSED_CHECK = """#ifndef FP_FAST_FMAF
#error "expected fused multiply-adds (FP_FAST_FMAF)"
#endif
"""
SWEEP = r"""
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "net.c"
int main(void)
{
    double worst_tanh = 0.0, worst_sigmoid = 0.0;
    unsigned long u;
    for (u = 0; u < 0x100000000UL; u += 251) {   /* every exponent, ~17M floats */
        unsigned int bits = (unsigned int)u;
        float x;
        double t, s;
        memcpy(&x, &bits, sizeof x);
        if (!isfinite(x)) continue;
        t = fabs((double)act_tanh(x) - tanh((double)x));
        s = fabs((double)act_sigmoid(x) - 1.0 / (1.0 + exp(-(double)x)));
        if (t > worst_tanh) worst_tanh = t;
        if (s > worst_sigmoid) worst_sigmoid = s;
    }
    printf("%.9g %.9g\n", worst_tanh, worst_sigmoid);
    printf("%g %g %g %g %g %g %d %d\n", act_tanh(INFINITY), act_tanh(-INFINITY),
           act_sigmoid(INFINITY), act_sigmoid(-INFINITY), act_sigmoid(-100.0f),
           act_sigmoid(100.0f), isnan(act_tanh(NAN)) != 0, isnan(act_sigmoid(NAN)) != 0);
    return 0;
}
"""


@pytest.mark.parametrize(
    "flags",
    [[], pytest.param(["-mfma"], marks=pytest.mark.skipif(not X86, reason="x86 only"))],
    ids=["separate", "fused"],
)
def test_tanh_and_sigmoid_error_bounds(tmp_path, flags):
    """Both with a multiply and an add per polynomial step and with fused multiply-adds
    (x86 with FMA: FP_FAST_FMAF, so LSTMGEN_MADD is fmaf)."""
    model = branch_models()["tiny"]
    assert isinstance(model.layers[0], LSTM) and model.layers[0].gate_activation == "sigmoid"
    source = SWEEP if not flags else SWEEP.replace("int main(void)", FUSED_CHECK + "int main(void)")
    lines = run_c_program(tmp_path, c_backend.render(model, "net"), source, *flags).split("\n")
    worst_tanh, worst_sigmoid = map(float, lines[0].split())
    assert worst_tanh <= 4.1e-7 and worst_sigmoid <= 2.2e-7  # as the generated comments say
    assert lines[1].split() == ["1", "-1", "1", "0", "0", "1", "1", "1"]


def test_documented_bounds_match_the_comment():
    source = c_backend.render(Model(1, [branch_models()["tiny"].layers[0]]), "net")["net.c"]
    assert "Max abs error 4.1e-7" in source and "Max abs error 2.2e-7" in source
