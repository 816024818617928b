"""Masking, Normalize, LayerNorm, Flatten, Conv1D and Pool1D in the C backend.

Hand-built IR models (no framework needed) reach every new template branch: masked steps
in every kind of stage (guarded chains, a kept output for a layer with an initial h,
Bidirectional, go_backwards, Flatten), normalization in a step and in front of the windows,
every padding mode with strides and dilation, one or two prefix buffers, Flatten with and
without windows. They compile warning-free with gcc, clang and as C++, match the float64
reference (libm and --math builtin, -O2 and -O3 -march=native), stream where streamable,
survive sanitizers and valgrind on extreme and masked inputs and run on a Cortex-M4F under
qemu; predict() refuses a T the windows leave no step of, a Flatten model any T but its
own; the quantized modes refuse every new layer kind by name."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from support import (
    C_COMPILERS,
    FRAME_SLACK,
    PREDICT_DRIVER,
    SANITIZE,
    IRMaker,
    build_c_driver,
    compile_c,
    qemu_outputs,
    require_arm,
    require_module,
    require_tool,
    run_c_driver,
    write_files,
)

from lstmgen.errors import LstmgenError
from lstmgen.ir import Activation, Conv1D, Flatten, LayerNorm, Masking, Model, Normalize, Pool1D
from lstmgen.reference import forward
from lstmgen.sampling import SelftestData
from lstmgen.targets import c as c_backend
from lstmgen.targets.c import runner as c_runner
from lstmgen.targets.c.memory import estimate, measure
from lstmgen.verify import error_metrics

TOLERANCE = 1e-5


def _conv(m: IRMaker, name, d, f, k, **kw) -> Conv1D:
    bias = kw.pop("bias", True)
    return Conv1D(name, m.u(f, k, d), m.u(f) if bias else None, **kw)


def _norm(m: IRMaker, name, n) -> Normalize:
    return Normalize(name, m.u(n, scale=2.0), (m.rng.uniform(0.5, 2.0, n)).astype(np.float32))


def shaping_models() -> dict[str, Model]:
    m = IRMaker(23)
    models = {
        # streamable: Masking -> Normalize -> LSTM with an initial h (its kept output is
        # what masked steps repeat) -> GRU -> LayerNorm (gamma and beta) -> LSTM with an
        # initial h whose kept output the Dense tail reads
        "mask_stream": Model(
            3,
            [
                Masking("mask", 3, 0.0),
                _norm(m, "norm", 3),
                m.lstm("l1", 3, 4, return_sequences=True, features=("initial_h", "initial_c")),
                m.dense("mid", 4, 3, "tanh"),
                m.gru("g1", 3, 4, return_sequences=True),
                LayerNorm("ln", 4, m.u(4, scale=1.5), m.u(4), epsilon=1e-3),
                m.lstm("l2", 4, 3, features=("initial_h",)),
                m.dense("out", 3, 2),
            ],
            name="mask_stream",
        ),
        # streamable, sequence output: the steps after the last recurrent kernel run on
        # masked steps too (they repeat the previous output)
        "mask_seq": Model(
            2,
            [
                Masking("mask", 2, -1.0),
                m.rnn("r", 2, 5, return_sequences=True),
                m.dense("soft", 5, 3, "softmax"),
            ],
            name="mask_seq",
        ),
        # masked steps in a Bidirectional with sequences (the stored backward outputs, the
        # forward stage's merge; directions with an initial h), a buffered go_backwards GRU
        # and a Bidirectional returning its last state (the final merge of kept outputs)
        "mask_bi": Model(
            3,
            [
                Masking("mask", 3, 0.5),
                m.bi("bl", "lstm", 3, 3, "concat", sequences=True, features=("initial_h",)),
                m.gru("gb", 6, 3, go_backwards=True, return_sequences=True),
                m.bi("br", "lstm", 3, 2, "sum", features=("initial_h",)),
                m.dense("out", 2, 2),
            ],
            name="mask_bi",
        ),
        # Masking with Flatten: the masked steps' rows of the flat vector repeat outputs
        "mask_flat": Model(
            2,
            [
                Masking("mask", 2, 0.0),
                m.lstm("l", 2, 3, return_sequences=True),
                Flatten("flat", 6, 3),
                m.dense("out", 18, 2, "sigmoid"),
            ],
            name="mask_flat",
            timesteps=6,
        ),
        # the prefix: two per-timestep layers first (a group reading x), Conv1D valid with
        # stride and dilation (no bias, relu), max pooling valid, a Dense between windows,
        # causal Conv1D (linear), average pooling same with stride; then LayerNorm (beta
        # only) in the stage and a sequence output of T_out rows
        "conv_stack": Model(
            3,
            [
                _norm(m, "norm", 3),
                Activation("squash", 3, "tanh"),
                _conv(
                    m,
                    "c1",
                    3,
                    5,
                    3,
                    stride=2,
                    dilation=2,
                    padding="valid",
                    activation="relu",
                    bias=False,
                ),
                Pool1D("mp", 5, "max", 2, 2, "valid"),
                m.dense("mid", 5, 4, "elu"),
                _conv(m, "c2", 4, 4, 2, padding="causal", dilation=3),
                Pool1D("ap", 4, "avg", 3, 2, "same"),
                LayerNorm("ln", 4, None, m.u(4)),
                m.lstm("l", 4, 3, return_sequences=True),
            ],
            name="conv_stack",
        ),
        # Conv1D same with stride 3 (one prefix buffer) feeding a Bidirectional GRU with
        # sequences (its loops read the prefix buffer), then Flatten of the T_out rows
        "conv_bi_flat": Model(
            2,
            [
                _conv(m, "c", 2, 3, 4, stride=3, padding="same", activation="softsign"),
                m.bi("bg", "gru", 3, 2, "concat", sequences=True),
                Flatten("flat", 4, 4),
                m.dense("out", 16, 3, "softmax"),
            ],
            name="conv_bi_flat",
            timesteps=11,
        ),
        # pooling same with stride 1 (max, the window wider than the stride), LayerNorm
        # without gamma and beta, a go_backwards LSTM reading the prefix buffer backwards
        "pool_backwards": Model(
            3,
            [
                Pool1D("mp", 3, "max", 3, 1, "same"),
                LayerNorm("ln", 3, m.u(3), None, epsilon=1e-5),
                LayerNorm("ln0", 3, None, None),
                m.lstm("lb", 3, 4, go_backwards=True, return_sequences=True),
                m.lstm("ll", 4, 2),
            ],
            name="pool_backwards",
        ),
    }
    return {k: v.validate() for k, v in models.items()}


MODELS = shaping_models()
MASKED = {k for k, v in MODELS.items() if v.layers[0].kind == "masking"}


@pytest.fixture(scope="module")
def arm():
    require_arm()


def inputs(model: Model, n: int, t_len: int, seed: int) -> np.ndarray:
    """Random inputs; for a Masking model masked steps at the end (padding), at the start,
    in the middle, a fully masked sequence and one real step between masked ones."""
    x = np.random.default_rng(seed).standard_normal((n, t_len, model.input_size))
    x = x.astype(np.float32)
    if model.layers[0].kind == "masking" and t_len >= 3:
        value = np.float32(model.layers[0].mask_value)
        x[0, t_len // 2 :] = value
        x[1, :2] = value
        x[2, t_len // 2] = value
        x[3] = value
        x[4, :] = value
        x[4, t_len // 2] = 0.25
        x[5, 1, 0] = value  # one feature equal to the mask value: a real step
    return x


def lengths(model: Model) -> tuple[int, ...]:
    return (model.timesteps,) if model.timesteps else (c_min(model), 7, 13)


def c_min(model: Model) -> int:
    return next(t for t in range(1, 100) if model.output_timesteps(t) >= 1)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    return {
        (key, math): write_files(
            c_backend.render(model, "net", math=math), tmp_path_factory.mktemp(f"{key}_{math}")
        )
        for key, model in MODELS.items()
        for math in (None, "builtin")
    }


@pytest.mark.parametrize("opts", [["-O0"], ["-O2"], ["-O3", "-march=native"]])  # native: fmaf
@pytest.mark.parametrize("compiler", sorted(C_COMPILERS))
@pytest.mark.parametrize("math", [None, "builtin"])
@pytest.mark.parametrize("key", sorted(MODELS))
def test_compiles_without_warnings(rendered, compiler, key, math, opts):
    compile_c(compiler, rendered[key, math] / "net.c", *opts)


@pytest.mark.parametrize("key", sorted(MODELS))
def test_matches_reference(key, tmp_path):
    require_module("cffi")
    model = MODELS[key]
    for math, flags in ((None, []), ("builtin", ["-O3", "-march=native"])):
        files = c_backend.render(model, "net", math=math)
        workdir = tmp_path / (math or "libm")
        module = c_runner.build(model, files, "net", workdir, flags)
        for t_len in lengths(model):
            x = inputs(model, 6, t_len, seed=t_len)
            got = c_runner.run(model, files, "net", x, workdir, module=module)
            _, rel = error_metrics(got, forward(model, x))
            assert rel.max() <= TOLERANCE, (key, math, t_len, float(rel.max()))
        assert hasattr(module.lib, "net_step") == model.streamable
        if model.streamable:
            x = inputs(model, 6, 7, seed=3)
            steps = c_runner.run_steps(model, files, "net", x, workdir, module=module)
            ref = forward(model, x)
            if not model.returns_sequences:  # the output after every prefix of x
                ref = np.stack([forward(model, x[:, :t]) for t in range(1, 8)], axis=1)
            _, rel = error_metrics(steps, ref)
            assert rel.max() <= TOLERANCE, (key, math, "step", float(rel.max()))


def test_masked_step_keeps_state_and_repeats_output(tmp_path):
    """step() on a masked row leaves the state byte for byte and writes the previous
    output again; before any real row it writes what the model makes of zero outputs."""
    require_module("cffi")
    model = MODELS["mask_stream"]
    files = c_backend.render(model, "net")
    module = c_runner.build(model, files, "net", tmp_path)
    ffi, lib = module.ffi, module.lib
    state = ffi.new("net_state *")
    size = ffi.sizeof("net_state")
    masked = np.zeros(3, np.float32)
    y = np.zeros(2, np.float32)
    lib.net_reset(state)
    lib.net_step(state, ffi.from_buffer("float[]", masked), ffi.from_buffer("float[]", y))
    after_reset = bytes(ffi.buffer(state, size))
    fresh = ffi.new("net_state *")
    lib.net_reset(fresh)
    assert after_reset == bytes(ffi.buffer(fresh, size))
    expected = forward(model, masked[None])  # all masked: the tail of zero outputs
    assert error_metrics(y, expected)[1].max() <= TOLERANCE
    x = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)
    for row in x:
        lib.net_step(state, ffi.from_buffer("float[]", row), ffi.from_buffer("float[]", y))
    before, previous = bytes(ffi.buffer(state, size)), y.copy()
    for _ in range(3):
        lib.net_step(state, ffi.from_buffer("float[]", masked), ffi.from_buffer("float[]", y))
        assert bytes(ffi.buffer(state, size)) == before
        assert np.array_equal(y, previous)


@pytest.mark.parametrize("key", ["mask_stream", "mask_seq", "mask_bi"])
def test_variable_length_sequences(key, tmp_path):
    """predict() takes any T: a sequence padded at the end with mask rows gives the
    output of the unpadded sequence (and a sequence output repeats its last real row)."""
    require_module("cffi")
    model = MODELS[key]
    files = c_backend.render(model, "net")
    module = c_runner.build(model, files, "net", tmp_path / key)
    value = np.float32(model.layers[0].mask_value)
    x = np.random.default_rng(2).standard_normal((1, 9, model.input_size))
    x = x.astype(np.float32)
    for real in (1, 4, 9):
        padded = np.full_like(x, value)
        padded[:, :real] = x[:, :real]
        short = c_runner.run(model, files, "net", x[:, :real], tmp_path, module=module)
        full = c_runner.run(model, files, "net", padded, tmp_path, module=module)
        if model.returns_sequences:
            assert np.array_equal(full[:, :real], short)
            assert all(np.array_equal(full[:, t], short[:, -1]) for t in range(real, 9))
        elif key != "mask_bi":  # (a backward layer reads the padding first: no change)
            assert np.array_equal(full, short), (key, real)
        _, rel = error_metrics(full, forward(model, padded))
        assert rel.max() <= TOLERANCE


@pytest.mark.parametrize("key", ["conv_stack", "conv_bi_flat", "pool_backwards", "mask_flat"])
def test_output_timesteps_and_refused_lengths(key, tmp_path):
    """NAME_output_timesteps(T) is Model.output_timesteps(T) for every T (0 below
    NAME_MIN_TIMESTEPS); predict() returns -1 with y untouched for a T that leaves no
    step, above NAME_MAX_TIMESTEPS, and for any T but a Flatten model's own."""
    require_module("cffi")
    model = MODELS[key]
    files = c_backend.render(model, "net")
    header = files["net.h"]
    module = c_runner.build(model, files, "net", tmp_path / key)
    ffi, lib = module.ffi, module.lib
    x = ffi.new("float[]", 120 * model.input_size)
    y = ffi.new("float[]", [7.0] * 120 * model.output_size)
    windows = any(l.kind in ("conv1d", "pool1d") for l in model.layers)
    if windows:
        assert f"#define NET_MIN_TIMESTEPS {c_min(model)}\n" in header
        for t in [-5, 0] + list(range(1, 60)) + [2**31 - 1]:
            assert lib.net_output_timesteps(t) == (model.output_timesteps(t) if t > 0 else 0), (
                key,
                t,
            )
    else:
        assert "output_timesteps" not in header
    for t in range(1, 110):
        ok = (
            t == model.timesteps if model.timesteps else model.output_timesteps(t) >= 1 and t <= 100
        )
        ffi.memmove(y, np.full(len(y), 7.0, np.float32), 4 * len(y))
        status = lib.net_predict(x, t, y)
        assert status == (0 if ok else -1), (key, t)
        if not ok:
            assert list(y) == [7.0] * len(y), (key, t)
    assert lib.net_predict(ffi.NULL, model.timesteps or 20, y) == -1
    assert lib.net_predict(x, model.timesteps or 20, ffi.NULL) == -1


def test_minimum_and_fixed_timesteps_in_the_header():
    conv = c_backend.render(MODELS["conv_stack"], "net")["net.h"]
    assert c_min(MODELS["conv_stack"]) == 7  # T < 7: no step left for the LSTM
    assert "#define NET_MAX_TIMESTEPS 100" in conv
    flat = c_backend.render(MODELS["mask_flat"], "net")["net.h"]
    assert "#define NET_TIMESTEPS 6\n" in flat and "MAX_TIMESTEPS" not in flat


@pytest.mark.parametrize("key", sorted(MODELS))
def test_generated_code_facts(key):
    model = MODELS[key]
    files = c_backend.render(model, "net")
    source, header = files["net.c"], files["net.h"]
    assert "malloc(" not in source and not re.search(r"^static float \w+\[", source, re.M)
    includes = [l for l in source.splitlines() if l.startswith("#include")]
    assert includes == ['#include "net.h"', "#include <math.h>", "#include <stddef.h>"]
    assert all(text.isascii() for text in files.values())
    assert ("net_step(" in header) == model.streamable, key
    assert ("NET_MASK_VALUE" in header) == (key in MASKED)
    builtin = c_backend.render(model, "net", math="builtin")["net.c"]
    assert "#include <math.h>" not in builtin and "sqrtf" not in builtin
    assert files == c_backend.render(model, "net")  # deterministic


def test_buffers_only_where_needed():
    # a stack buffer only where a layer needs whole sequences
    assert "pre_b" not in c_backend.render(MODELS["conv_bi_flat"], "net")["net.c"]
    assert "pre_b[NET_MAX_TIMESTEPS * 5]" in c_backend.render(MODELS["conv_stack"], "net")["net.c"]
    for key in ("mask_stream", "mask_seq", "mask_flat"):
        assert "MAX_TIMESTEPS" not in "".join(c_backend.render(MODELS[key], "net").values())
    # the mask value is the float32 Keras compares with, as an exact literal
    assert "#define NET_MASK_VALUE 0.5f" in c_backend.render(MODELS["mask_bi"], "net")["net.h"]


# --------------------------------------------------------------- sanitizers, valgrind --


def extreme_inputs(model: Model, t_len: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, t_len, model.input_size)).astype(np.float32)
    x[1] *= np.float32(1e30)  # huge magnitudes
    x[2] = np.float32(1e-40)  # denormals
    x[3, t_len // 2] = np.nan  # NaN at one step
    x[4, ::2] = np.inf  # infinities
    x[5] = -np.float32(3.4e38)
    if model.layers[0].kind == "masking":
        x[6] = np.float32(model.layers[0].mask_value)  # fully masked
    return x


def build_driver(folder: Path, model: Model, compiler: list[str]) -> Path:
    windows = any(l.kind in ("conv1d", "pool1d") for l in model.layers)
    defines = (["COUNTS"] if windows else []) + (["ONE_STREAM"] if model.streamable else [])
    return build_c_driver(folder, model, compiler, PREDICT_DRIVER, defines)


@pytest.mark.parametrize("key", sorted(MODELS))
def test_asan_ubsan_clean_on_extreme_inputs(key, tmp_path):
    clang = require_tool("clang")
    model = MODELS[key]
    exe = build_driver(tmp_path, model, [clang, *SANITIZE])
    for t_len in lengths(model) + ((c_min(model) - 1,) if c_min(model) > 1 else ()):
        x = extreme_inputs(model, t_len)
        rows = run_c_driver(exe, x, tmp_path)
        assert len(rows) == 7 + (1 if model.streamable else 0)
        if model.output_timesteps(t_len) < 1:
            assert rows[:7] == [None] * 7
            continue
        assert np.allclose(rows[0], forward(model, x[:1]).reshape(-1), atol=1e-5)
        assert np.allclose(rows[6], forward(model, x[6:]).reshape(-1), atol=1e-5)
        for row in rows[1:6]:
            assert all(np.isnan(v) or abs(v) <= 3.5e38 for v in row)


@pytest.mark.parametrize("key", ["mask_bi", "conv_stack"])
def test_valgrind_clean(key, tmp_path):
    valgrind = require_tool("valgrind")
    model = MODELS[key]
    exe = build_driver(tmp_path, model, [require_tool("gcc"), "-std=c99", "-g", "-O1"])
    run_c_driver(
        exe,
        extreme_inputs(model, 16),
        tmp_path,
        prefix=[valgrind, "-q", "--error-exitcode=9", "--leak-check=full"],
    )


# ------------------------------------------------------------------- quantized modes --


def _refused_first_layer(kind: str):
    m = IRMaker(4)
    return {
        "masking": lambda: Masking("m", 2, 0.0),
        "normalize": lambda: _norm(m, "nz", 2),
        "layer_norm": lambda: LayerNorm("ln", 2, None, None),
        "conv1d": lambda: _conv(m, "cv", 2, 2, 2),
        "pool1d": lambda: Pool1D("pl", 2, "max", 2, 2),
    }[kind]()


@pytest.mark.parametrize("kind", ["masking", "normalize", "layer_norm", "conv1d", "pool1d"])
@pytest.mark.parametrize("mode", ["int8", "int16", "fixed16"])
def test_quantized_modes_refuse_the_shaping_kinds(mode, kind):
    first = _refused_first_layer(kind)
    model = Model(2, [first, IRMaker(4).lstm("l", 2, 3)], name="q").validate()
    expected = f"--quantize {mode} does not implement {kind} layers (layer '{first.name}')"
    with pytest.raises(LstmgenError, match=re.escape(expected)):
        c_backend.render(model, "net", quantize=mode)


@pytest.mark.parametrize("mode", ["int8", "int16", "fixed16"])
def test_quantized_modes_refuse_flatten(mode):
    m = IRMaker(4)
    flat = Model(
        2,
        [m.lstm("l", 2, 3, return_sequences=True), Flatten("fl", 4, 3), m.dense("d", 12, 1)],
        name="q",
        timesteps=4,
    ).validate()
    with pytest.raises(
        LstmgenError, match=f"--quantize {mode} does not implement flatten layers \\(layer 'fl'\\)"
    ):
        c_backend.render(flat, "net", quantize=mode)


# ---------------------------------------------------------------------- --math builtin --

SQRT_DRIVER = r"""
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <math.h>
%s
int main(void)
{
    double worst = 0.0;
    uint32_t bits;
    for (bits = 1; bits < 0x7f800000u; bits += 251) {
        float x, got;
        double want, err;
        memcpy(&x, &bits, sizeof x);
        got = sqrt_builtin(x);
        want = sqrt((double)x);
        err = fabs((double)got - want) / want;
        if (err > worst) worst = err;
    }
    printf("%%.3g %%g %%g\n", worst, (double)sqrt_builtin(INFINITY), (double)sqrt_builtin(NAN));
    return 0;
}
"""


def test_builtin_sqrt_accuracy(tmp_path):
    """sqrt_builtin (LayerNorm under --math builtin): max relative error over every 251st
    positive float, subnormals included, as its comment states; inf and NaN pass."""
    source = c_backend.render(MODELS["mask_stream"], "net", math="builtin")["net.c"]
    start = source.index("/* sqrt(x) for x > 0")
    body = source[start : source.index("\n}\n", start) + 3]
    assert "max rel error 9e-8" in source
    (tmp_path / "sqrt.c").write_text(SQRT_DRIVER % body)
    subprocess.run(
        [
            require_tool("gcc"),
            "-std=c99",
            "-O2",
            str(tmp_path / "sqrt.c"),
            "-lm",
            "-o",
            str(tmp_path / "sqrt"),
        ],
        check=True,
    )
    worst, inf, nan = subprocess.run(
        [str(tmp_path / "sqrt")], capture_output=True, text=True, check=True
    ).stdout.split()
    assert float(worst) <= 9e-8 and inf == "inf" and nan in ("nan", "-nan")


# ------------------------------------------------------------ Cortex-M (qemu, arm-gcc) --


@pytest.mark.parametrize("key", ["mask_stream", "conv_stack"])
def test_runs_on_cortex_m4f(arm, key, tmp_path):
    """The float build (and --math builtin) cross-compiled -Os -Werror for a Cortex-M4F,
    its self-test run on qemu against the float64 reference (masked steps included)."""
    model = MODELS[key]
    x = inputs(model, 6, 16, seed=2)
    expected = forward(model, x).astype(np.float32)
    for math in (None, "builtin"):
        files = c_backend.render(
            model, "net", math=math, selftest=SelftestData(x, expected, "reference")
        )
        rc, out, got = qemu_outputs(files, "net", tmp_path / str(math), "m4f", model, "float")
        assert rc == 0 and "net_selftest: 0 of" in out, out[-2000:]
        err = np.abs(got - expected.ravel()) / np.maximum(1, np.abs(expected.ravel()))
        assert err.max() <= TOLERANCE, (key, math, float(err.max()))


@pytest.mark.parametrize("key", sorted(MODELS))
def test_memory_on_cortex_m4f_is_what_the_estimate_says(arm, key):
    """Weights in .rodata, nothing in .data/.bss, the measured stack within the estimate
    (state, scratch, prefix and sequence buffers, flat vector) plus frames, the code
    estimate within 0.5-1.5x."""
    model = MODELS[key]
    files = c_backend.render(model, "net")
    m = measure(files, "net", "cortex-m4")
    est = estimate(model)
    assert m.ram_bytes == 0, (key, m.sections)
    if "net_step" in m.stack:
        assert m.stack["net_step"] <= est.scratch_bytes + FRAME_SLACK, (key, m.stack)
    assert m.stack["net_predict"] <= est.ram_bytes + FRAME_SLACK, (key, m.stack)
    sizes = [int(n) for n in re.findall(r"^static const float \w+\[(\d+)\]", files["net.c"], re.M)]
    assert est.weight_bytes == 4 * sum(sizes), key
    assert 0.5 <= m.sections[".text"] / est.code_bytes <= 1.5, (key, m.sections, est)
