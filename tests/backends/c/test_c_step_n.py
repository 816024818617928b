"""NAME_step_n of the C target: n independent streams advanced one timestep per call.

Oracle: Keras predict on n different sequences (batch n). Stacked LSTMs, and GRUs (reset
after and before) under an LSTM, returning sequences are compared at every timestep; an
LSTM -> Dense tail model at its last timestep and, through Keras predict on the shortened
sequences, at earlier ones. Stream counts that are not multiples of 4 nor of NET_STREAMS
(1, 3, 5, 8, 13, 33, and 33 with -DNET_STREAMS=12) reach every branch: stream by stream
under 12; from 12 on, four at a time with a remainder in the portable loops, groups of four
to six streams in the register tiles. The same driver builds warning-free with gcc, clang
(-O2, -O3 native), as C++, and runs clean under ASan/UBSan; the -march=native builds take
the AVX/FMA register-tile path of the shared pass on x86 machines that have those (this
project's CI machines do), the others its portable loops. Models outside the batched class
(SimpleRNN, int8) get no NAME_step_n, and a Cortex-M build does not compile it.

The LSTM models' NAME_predict projects the inputs of NET_CHUNK timesteps at once: checked
against Keras predict at chunk boundaries (T = 1, 7, 8, 15, 16, 17, 35) with the default
chunk (16), -DNET_CHUNK=5 and -DNET_CHUNK=1 (the loop of steps), and under ASan/UBSan."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from support import (
    C_COMPILERS,
    SANITIZE,
    build_c_driver,
    missing,
    randomize_keras_weights,
    require_module,
    require_tool,
    run_c_driver,
    write_files,
)

import lstmgen
from lstmgen.targets import c as c_backend

STEP_N_DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include "net.h"
/* driver X N T: x [N][T][NET_INPUT_SIZE] float32 in file X; prints, for every stream, the
 * outputs of its T steps, one line per step, stepping all streams with net_step_n */
int main(int argc, char **argv)
{
    int n, t_len, t, i, j;
    float *x, *xt, *y;
    net_state *states;
    FILE *f;
    if (argc != 4) return 2;
    n = atoi(argv[2]);
    t_len = atoi(argv[3]);
    x = (float *)malloc(sizeof(float) * (size_t)(n * t_len * NET_INPUT_SIZE));
    xt = (float *)malloc(sizeof(float) * (size_t)(n * NET_INPUT_SIZE));
    y = (float *)malloc(sizeof(float) * (size_t)(n * t_len * NET_OUTPUT_SIZE));
    states = (net_state *)malloc(sizeof(net_state) * (size_t)n);
    f = fopen(argv[1], "rb");
    if (!f || fread(x, sizeof(float), (size_t)(n * t_len * NET_INPUT_SIZE), f)
            != (size_t)(n * t_len * NET_INPUT_SIZE)) return 3;
    fclose(f);
    for (i = 0; i < n; ++i) net_reset(&states[i]);
    for (t = 0; t < t_len; ++t) {
        float yt[64 * NET_OUTPUT_SIZE];
        for (i = 0; i < n; ++i)
            for (j = 0; j < NET_INPUT_SIZE; ++j)
                xt[i * NET_INPUT_SIZE + j] = x[(i * t_len + t) * NET_INPUT_SIZE + j];
        net_step_n(states, n, xt, yt);
        for (i = 0; i < n; ++i)
            for (j = 0; j < NET_OUTPUT_SIZE; ++j)
                y[(i * t_len + t) * NET_OUTPUT_SIZE + j] = yt[i * NET_OUTPUT_SIZE + j];
    }
    for (i = 0; i < n * t_len; ++i) {
        for (j = 0; j < NET_OUTPUT_SIZE; ++j) printf("%.9g ", (double)y[i * NET_OUTPUT_SIZE + j]);
        printf("\n");
    }
    free(x); free(xt); free(y); free(states);
    return 0;
}
"""

STREAMS = [1, 3, 5, 8, 13, 33]
T_LEN = 9
BUILDS = {
    "gcc -O2": ["gcc", *C_COMPILERS["gcc"], "-O2"],
    "gcc -O3 native": ["gcc", *C_COMPILERS["gcc"], "-O3", "-march=native"],
    "clang -O2": ["clang", *C_COMPILERS["clang"], "-O2"],
    "g++ -O2": ["g++", *C_COMPILERS["g++"], "-O2"],
    "g++ -O3 native": ["g++", *C_COMPILERS["g++"], "-O3", "-march=native"],
    "clang -O3 native": ["clang", *C_COMPILERS["clang"], "-O3", "-march=native"],
    "asan+ubsan": ["clang", *SANITIZE],
    "asan+ubsan native": ["clang", *SANITIZE, "-march=native"],
}


def keras_models() -> dict:
    """Stacked LSTMs returning sequences, the first wide enough (4H >= 256 columns) for the
    shared pass over the weights and 4H not a multiple of its 16-column blocks, the second
    without a bias, 32 units over 65 inputs (32 KB of input weights: the shared pass, and
    with register tiles 16 units at a time), the third narrow (stream by stream); a wide
    LSTM (64 units: 16 at a time with register tiles) -> Dense tail; and GRUs, reset after
    (96 units) and before (91) the recurrent product, wide enough for the shared pass on all
    three of their weight matrices (3H >= 256 columns, U_n over 32 KB), then a narrow LSTM."""
    keras = require_module("keras")
    rng = np.random.default_rng(16)
    inp = keras.Input((None, 6))
    h = keras.layers.LSTM(65, return_sequences=True)(inp)
    h = keras.layers.LSTM(32, return_sequences=True, use_bias=False)(h)
    h = keras.layers.LSTM(5, return_sequences=True)(h)
    stacked = keras.Model(inp, h)
    inp = keras.Input((None, 4))
    h = keras.layers.LSTM(64)(inp)
    tail = keras.Model(inp, keras.layers.Dense(3, activation="tanh")(h))
    inp = keras.Input((None, 6))
    h = keras.layers.GRU(96, return_sequences=True)(inp)
    h = keras.layers.GRU(91, return_sequences=True, reset_after=False)(h)
    h = keras.layers.LSTM(5, return_sequences=True)(h)
    gru = keras.Model(inp, h)
    for model in (stacked, tail, gru):
        randomize_keras_weights(model, rng, scale=0.15)
    return {"stacked": stacked, "tail": tail, "gru": gru}


@pytest.fixture(scope="module")
def cases():
    """name -> (Keras model, x [33][T][D], expected [33][T][out] at every timestep)."""
    out = {}
    rng = np.random.default_rng(3)
    for name, model in keras_models().items():
        x = rng.standard_normal((max(STREAMS), T_LEN, model.input_shape[-1])).astype(np.float32)
        if name != "tail":  # returns sequences
            expected = model.predict(x, verbose=0)
        else:  # the output after t + 1 steps: predict on the first t + 1 steps
            expected = np.stack(
                [model.predict(x[:, : t + 1], verbose=0) for t in range(T_LEN)], axis=1
            )
        out[name] = (model, x, expected)
    return out


@pytest.fixture(scope="module")
def chunk_cases(cases):
    """name -> {T: (two sequences of T steps, Keras predict of them, flattened)}."""
    rng = np.random.default_rng(5)
    out: dict = {}
    for name, (model, x, _) in cases.items():
        if name == "gru":
            continue
        out[name] = {}
        for t_len in (1, 7, 8, 15, 16, 17, 35):
            seqs = rng.standard_normal((2, t_len, x.shape[-1])).astype(np.float32)
            out[name][t_len] = (seqs, model.predict(seqs, verbose=0).reshape(2, -1))
    return out


def run_streams(exe, folder, x: np.ndarray) -> np.ndarray:
    n, t_len = x.shape[:2]
    x.astype(np.float32).tofile(folder / "x.bin")
    result = subprocess.run(
        [str(exe), str(folder / "x.bin"), str(n), str(t_len)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "runtime error" not in result.stderr and "ERROR" not in result.stderr, result.stderr
    rows = [[float(v) for v in line.split()] for line in result.stdout.splitlines()]
    return np.array(rows).reshape(n, t_len, -1)


def build(folder, files: dict, command: list, *flags: str):
    folder = write_files(files, folder)
    (folder / "driver.c").write_text(STEP_N_DRIVER)
    exe = folder / "driver"
    require_tool(command[0])
    result = subprocess.run(
        [*command, *flags, "-I", str(folder), str(folder / "driver.c"), str(folder / "net.c")]
        + ["-lm", "-o", str(exe)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and not result.stderr, result.stderr
    return exe


@pytest.mark.parametrize("build_name", list(BUILDS))
@pytest.mark.parametrize("name", ["stacked", "tail", "gru"])
def test_step_n_matches_keras(cases, name, build_name, tmp_path):
    model, x, expected = cases[name]
    files = c_backend.render(lstmgen.load(model), "net")
    assert "void net_step_n(net_state *states, int n" in files["net.h"]
    exe = build(tmp_path, files, BUILDS[build_name])
    for n in STREAMS:
        got = run_streams(exe, tmp_path, x[:n])
        err = np.abs(got - expected[:n]) / np.maximum(np.abs(expected[:n]), 1.0)
        assert err.max() <= 1e-5, (name, build_name, n, float(err.max()))


def test_step_n_small_groups(cases, tmp_path):
    """-DNET_STREAMS=12: 33 streams make groups of 12, 12 and 9."""
    model, x, expected = cases["stacked"]
    files = c_backend.render(lstmgen.load(model), "net")
    exe = build(tmp_path, files, BUILDS["gcc -O2"], "-DNET_STREAMS=12")
    got = run_streams(exe, tmp_path, x)
    err = np.abs(got - expected) / np.maximum(np.abs(expected), 1.0)
    assert err.max() <= 1e-5, float(err.max())


def test_step_n_only_where_batched(cases, tmp_path):
    """SimpleRNN and quantized builds declare no NAME_step_n, a model with GRUs no chunked
    predict; a Cortex-M build does not compile NAME_step_n."""
    keras = require_module("keras")
    inp = keras.Input((None, 3))
    rnn = keras.Model(inp, keras.layers.SimpleRNN(4)(inp))
    assert "step_n" not in c_backend.render(lstmgen.load(rnn), "net")["net.h"]
    assert "NET_CHUNK" not in c_backend.render(lstmgen.load(cases["gru"][0]), "net")["net.h"]
    model = lstmgen.load(cases["tail"][0])
    assert "step_n" not in c_backend.render(model, "net", quantize="int8")["net.h"]
    arm = require_tool("arm-none-eabi-gcc")
    folder = write_files(c_backend.render(model, "net"), tmp_path)
    obj = folder / "net.o"
    subprocess.run(
        [arm, "-mcpu=cortex-m4", "-mthumb", "-Os", "-std=c99", "-c", str(folder / "net.c")]
        + ["-I", str(folder), "-o", str(obj)],
        check=True,
    )
    symbols = subprocess.run(
        ["arm-none-eabi-nm", str(obj)], capture_output=True, text=True, check=True
    ).stdout
    assert "net_step_n" not in symbols and "net_step" in symbols


@pytest.mark.parametrize(
    "flags",
    [
        ["gcc", "-std=c99", "-O2"],
        ["gcc", "-std=c99", "-O3", "-march=native", "-DNET_CHUNK=5"],
        ["clang", "-std=c99", "-O2", "-DNET_CHUNK=1"],
        ["clang", *SANITIZE],
    ],
    ids=["gcc chunk 16", "gcc chunk 5", "clang chunk 1", "asan+ubsan"],
)
@pytest.mark.parametrize("name", ["stacked", "tail"])
def test_chunked_predict_matches_keras(cases, chunk_cases, name, flags, tmp_path):
    model = cases[name][0]
    require_tool(flags[0])
    ir = lstmgen.load(model)
    assert "#define NET_CHUNK 16" in c_backend.render(ir, "net")["net.h"]
    exe = build_c_driver(tmp_path, ir, flags)
    for t_len, (seqs, expected) in chunk_cases[name].items():
        got = np.array(run_c_driver(exe, seqs, tmp_path)[:2])
        err = np.abs(got - expected) / np.maximum(np.abs(expected), 1.0)
        assert err.max() <= 1e-5, (name, flags, t_len, float(err.max()))


def test_register_tile_path_is_taken_where_avx_fma(cases, tmp_path):
    """On an x86 machine with AVX and FMA (this project's CI machines), a -march=native build
    compiles the register-tile kernels that the native builds above check against Keras, and
    a baseline build the portable loops."""
    cpu = open("/proc/cpuinfo").read() if sys.platform.startswith("linux") else ""
    if " avx " not in cpu or " fma " not in cpu:
        missing("an x86 CPU with AVX and FMA")
    require_tool("gcc")
    folder = write_files(c_backend.render(lstmgen.load(cases["tail"][0]), "net"), tmp_path)

    def macros(*flags: str) -> str:
        return subprocess.run(
            ["gcc", "-std=c99", "-O2", *flags, "-dM", "-E", str(folder / "net.c")],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    assert "LSTMGEN_AVX_FMA" in macros("-march=native")
    assert "LSTMGEN_AVX_FMA" not in macros()
    assert "static void lstm_step_blocks_" in (folder / "net.c").read_text()  # 64 units
