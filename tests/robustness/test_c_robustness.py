"""The generated C under stress: sanitizers, valgrind, extreme inputs, reentrancy."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from irmodels import branch_models
from support import require_tool

from lstmgen.reference import forward
from lstmgen.targets import c as c_backend

# Feeds every sequence of a binary input file through predict (and step, twice
# interleaved with two states when streamable), printing one output row per sequence.
DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include "net.h"
int main(int argc, char **argv)
{
    int n = atoi(argv[2]), t_len = atoi(argv[3]), i, t, k;
    size_t per_seq = (size_t)t_len * NET_INPUT_SIZE;
    size_t out_seq = (size_t)(NET_RETURNS_SEQUENCES ? t_len : 1) * NET_OUTPUT_SIZE;
    float *x = (float *)malloc((size_t)n * per_seq * sizeof(float));
    float *y = (float *)malloc(out_seq * sizeof(float));
    FILE *f = fopen(argv[1], "rb");
    if (!x || !y || !f || fread(x, sizeof(float), (size_t)n * per_seq, f) != (size_t)n * per_seq)
        return 3;
    fclose(f);
    for (i = 0; i < n; ++i) {
        if (net_predict(x + (size_t)i * per_seq, t_len, y) != 0) return 4;
        for (k = 0; k < (int)out_seq; ++k) printf("%.9g ", (double)y[k]);
        printf("\n");
    }
#ifdef STREAMABLE
    {   /* two sequences stepped in lockstep through two states: no shared state */
        net_state a, b;
        float ya[NET_OUTPUT_SIZE], yb[NET_OUTPUT_SIZE];
        net_reset(&a);
        net_reset(&b);
        for (t = 0; t < t_len; ++t) {
            net_step(&a, x + (size_t)t * NET_INPUT_SIZE, ya);
            net_step(&b, x + per_seq + (size_t)t * NET_INPUT_SIZE, yb);
        }
        for (k = 0; k < NET_OUTPUT_SIZE; ++k) printf("%.9g ", (double)ya[k]);
        printf("\n");
        for (k = 0; k < NET_OUTPUT_SIZE; ++k) printf("%.9g ", (double)yb[k]);
        printf("\n");
    }
#endif
    (void)t;
    free(x);
    free(y);
    return 0;
}
"""
MODELS = branch_models()
T_LEN = 7


def extreme_inputs(input_size: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, T_LEN, input_size)).astype(np.float32)
    x[1] *= np.float32(1e30)  # huge magnitudes
    x[2] = np.float32(1e-40)  # denormals
    x[3, 2] = np.nan  # NaN at one step
    x[4, ::2] = np.inf  # infinities
    x[5] = -np.float32(3.4e38)
    return x


def build(folder: Path, model, compiler: list[str]) -> Path:
    for name, text in c_backend.render(model, "net").items():
        (folder / name).write_text(text)
    (folder / "driver.c").write_text(DRIVER)
    exe = folder / "driver"
    flags = ["-DSTREAMABLE"] if model.streamable else []
    subprocess.run(
        [
            *compiler,
            *flags,
            "-I",
            str(folder),
            str(folder / "driver.c"),
            str(folder / "net.c"),
            "-lm",
            "-o",
            str(exe),
        ],
        check=True,
    )
    return exe


def run(exe: Path, x: np.ndarray, folder: Path, prefix: list[str] = ()) -> list[list[float]]:
    x.astype(np.float32).tofile(folder / "x.bin")
    result = subprocess.run(
        [*prefix, str(exe), str(folder / "x.bin"), str(x.shape[0]), str(x.shape[1])],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "runtime error" not in result.stderr and "ERROR" not in result.stderr, result.stderr
    return [[float(v) for v in line.split()] for line in result.stdout.splitlines()]


@pytest.mark.parametrize("key", sorted(MODELS))
def test_asan_ubsan_clean_on_extreme_inputs(key, tmp_path):
    clang = require_tool("clang")
    model = MODELS[key]
    exe = build(
        tmp_path,
        model,
        [
            clang,
            "-std=c99",
            "-g",
            "-O1",
            "-fno-omit-frame-pointer",
            "-fsanitize=address,undefined,float-cast-overflow",
            "-fno-sanitize-recover=all",
        ],
    )
    x = extreme_inputs(model.input_size)
    rows = run(exe, x, tmp_path)
    assert len(rows) == 6 + (2 if model.streamable else 0)
    # finite, ordinary inputs give the reference result; extremes never crash
    ref = forward(model, x[:1]).reshape(-1)
    assert np.allclose(rows[0], ref, atol=1e-5)
    # huge and infinite inputs saturate bounded gates: the output stays finite or NaN,
    # never garbage beyond the float range
    for row in rows[1:6]:
        assert all(np.isnan(v) or abs(v) <= 3.5e38 for v in row)


def test_documented_behaviour_of_nan_and_huge_inputs(tmp_path):
    model = MODELS["tiny"]  # sigmoid/tanh LSTM(1): bounded, so saturation is visible
    exe = build(tmp_path, model, [require_tool("gcc"), "-std=c99", "-O2"])
    rows = run(exe, extreme_inputs(1), tmp_path)
    assert all(np.isfinite(rows[1])) and abs(rows[1][0]) < 1.0  # 1e30: saturates, finite
    assert all(np.isfinite(rows[2]))  # denormals: ordinary
    assert np.isnan(rows[3][0])  # NaN in: NaN out
    assert all(np.isfinite(rows[5])) and abs(rows[5][0]) < 1.0  # -3.4e38: saturates


def test_two_interleaved_states_equal_separate_runs(tmp_path):
    model = MODELS["all_activations"]
    exe = build(tmp_path, model, [require_tool("gcc"), "-std=c99", "-O2"])
    x = np.random.default_rng(4).standard_normal((6, T_LEN, model.input_size))
    rows = run(exe, x.astype(np.float32), tmp_path)
    assert np.array_equal(rows[6], rows[0]) and np.array_equal(rows[7], rows[1])


def test_valgrind_clean(tmp_path):
    valgrind = require_tool("valgrind")
    model = MODELS["three_stages"]
    exe = build(tmp_path, model, [require_tool("gcc"), "-std=c99", "-g", "-O1"])
    run(
        exe,
        extreme_inputs(model.input_size),
        tmp_path,
        prefix=[valgrind, "-q", "--error-exitcode=9", "--leak-check=full"],
    )
