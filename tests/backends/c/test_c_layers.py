"""GRU, SimpleRNN, Bidirectional and the optional LSTM features in the C backend.

Hand-built IR models (below, no framework needed) reach every template branch and every
kind of stage the plan makes: they compile warning-free with gcc, clang and as C++, match
the float64 reference (libm and --math builtin, -O2 and -O3 -march=native), stream where
the model is streamable, survive sanitizers and valgrind on extreme inputs and run on a
Cortex-M4F under qemu; the quantized modes run Bidirectional LSTMs (int8 / int16) and
refuse what they do not implement."""

from __future__ import annotations

import re

import numpy as np
import pytest
from support import (
    C_COMPILERS,
    FRAME_SLACK,
    SANITIZE,
    IRMaker,
    build_c_driver,
    compile_c,
    extreme_inputs,
    qemu_outputs,
    require_arm,
    require_module,
    require_tool,
    run_c_driver,
    write_files,
)

from lstmgen.errors import LstmgenError
from lstmgen.ir import Activation, Model
from lstmgen.reference import forward
from lstmgen.sampling import SelftestData, make_inputs
from lstmgen.targets import c as c_backend
from lstmgen.targets.c import quant as c_quant
from lstmgen.targets.c import runner as c_runner
from lstmgen.targets.c.memory import estimate, measure
from lstmgen.targets.c.plan import make_plan
from lstmgen.verify import error_metrics

# ----------------------------------------------------------------------- models --


def layer_models() -> dict[str, Model]:
    m = IRMaker(11)
    models = {
        # streamable: GRU reset_after (+ recurrent bias) -> GRU reset_before (no bias) ->
        # SimpleRNN (relu) whose state the Dense tail reads directly
        "gru_rnn_stream": Model(
            3,
            [
                m.dense("pre", 3, 4, "tanh"),
                m.gru("g1", 4, 5, return_sequences=True),
                m.gru(
                    "g2",
                    5,
                    4,
                    reset_after=False,
                    bias=False,
                    return_sequences=True,
                    gate_activation="hard_sigmoid_0.2",
                    cell_activation="softsign",
                ),
                m.rnn("r1", 4, 3, activation="relu"),
                m.dense("out", 3, 2),
            ],
            name="gru_rnn_stream",
        ),
        # GRU reset_after without a recurrent bias, go_backwards first (x read backwards),
        # then a bias-free GRU returning its last state with no tail (copied into y)
        "gru_backwards": Model(
            2,
            [
                m.gru("gb", 2, 4, recurrent_bias=False, go_backwards=True, return_sequences=True),
                m.gru("gl", 4, 3, bias=False, recurrent_bias=False),
            ],
            name="gru_backwards",
        ),
        # SimpleRNN after another recurrent layer with go_backwards (buffered reversal),
        # no bias, softplus activation; sequence output
        "rnn_buffered": Model(
            3,
            [
                m.rnn("ra", 3, 4, return_sequences=True, activation="tanh"),
                m.rnn(
                    "rb",
                    4,
                    3,
                    bias=False,
                    go_backwards=True,
                    return_sequences=True,
                    activation="softplus",
                ),
            ],
            name="rnn_buffered",
        ),
        # every optional LSTM feature, alone and together, streamable, projection in the
        # layer the tail reads
        "lstm_features": Model(
            3,
            [
                m.lstm(
                    "all",
                    3,
                    5,
                    p=3,
                    features=("peephole", "clip", "input_forget", "initial_h", "initial_c"),
                    return_sequences=True,
                ),
                m.lstm("peep", 3, 4, features=("peephole", "initial_h"), return_sequences=True),
                m.lstm(
                    "cifg",
                    4,
                    4,
                    features=("input_forget", "initial_c"),
                    gate_activation="hard_sigmoid_keras3",
                    return_sequences=True,
                ),
                m.lstm("clipproj", 4, 6, p=2, features=("clip",), bias=False),
                m.dense("head", 2, 2, "sigmoid"),
            ],
            name="lstm_features",
        ),
        # a projected LSTM reading backwards after another layer (buffered), sequence output
        "lstm_proj_backwards": Model(
            2,
            [
                m.lstm("first", 2, 3, return_sequences=True),
                m.lstm(
                    "projb",
                    3,
                    5,
                    p=4,
                    go_backwards=True,
                    return_sequences=True,
                    features=("initial_h",),
                ),
            ],
            name="lstm_proj_backwards",
        ),
        # Bidirectional first with sequences (x read twice, the Dense before re-run), a
        # buffered Bidirectional GRU with sequences after it, a buffered Bidirectional
        # SimpleRNN returning its last state, and a Dense tail on the merged state
        "bi_stack": Model(
            3,
            [
                m.dense("pre", 3, 4, "relu"),
                m.bi("bl", "lstm", 4, 3, "concat", sequences=True),
                m.dense("mid", 6, 5, "tanh"),
                m.bi("bg", "gru", 5, 4, "sum", sequences=True),
                m.bi("br", "rnn", 4, 3, "ave"),
                m.dense("out", 3, 2, "softmax"),
            ],
            name="bi_stack",
        ),
        # Bidirectional GRU (reset_before) first, returning its last state, no tail: the
        # merged final states go straight into y
        "bi_last": Model(
            2,
            [
                Activation("pre act", 2, "softsign"),
                m.bi("bgl", "gru", 2, 4, "mul", reset_after=False),
            ],
            name="bi_last",
        ),
        # Bidirectional after a recurrent layer with sequences and LSTM features inside,
        # then a go_backwards GRU (buffered reversal of the merged output), then a
        # Bidirectional LSTM with sequences as the last layer (merged into y)
        "bi_mixed": Model(
            3,
            [
                m.lstm("l0", 3, 4, return_sequences=True),
                m.bi(
                    "bf",
                    "lstm",
                    4,
                    3,
                    "concat",
                    sequences=True,
                    p=2,
                    features=("peephole", "initial_h", "initial_c", "clip"),
                ),
                m.gru("gb", 4, 3, go_backwards=True, return_sequences=True),
                m.bi("bs", "lstm", 3, 2, "ave", sequences=True),
            ],
            name="bi_mixed",
            timesteps=7,
        ),
        # Bidirectional SimpleRNN first, returning its last state, Dense tail
        "bi_rnn_tail": Model(
            4,
            [m.bi("brt", "rnn", 4, 5, "concat", activation="elu"), m.dense("o", 10, 3)],
            name="bi_rnn_tail",
        ),
    }
    return {k: v.validate() for k, v in models.items()}


def quantizable_bidirectional() -> Model:
    """Stacked Bidirectional LSTMs without optional features (what --quantize int8 / int16
    implement besides plain LSTMs), a Dense before them re-run by the backward loop."""
    m = IRMaker(5)
    return Model(
        3,
        [
            m.dense("pre", 3, 4, "tanh"),
            m.bi("b1", "lstm", 4, 5, "concat", sequences=True),
            m.bi("b2", "lstm", 10, 3, "ave"),
            m.dense("o", 3, 2),
        ],
        name="bi_quant",
    ).validate()


MODELS = layer_models()
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def arm():
    require_arm()


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    return {
        key: write_files(c_backend.render(model, "net"), tmp_path_factory.mktemp(key))
        for key, model in MODELS.items()
    }


@pytest.mark.parametrize("opts", [["-O0"], ["-O2"], ["-O3", "-march=native"]])  # native: fmaf
@pytest.mark.parametrize("compiler", sorted(C_COMPILERS))
@pytest.mark.parametrize("key", sorted(MODELS))
def test_compiles_without_warnings(rendered, compiler, key, opts):
    compile_c(compiler, rendered[key] / "net.c", *opts)


@pytest.mark.parametrize("key", sorted(MODELS))
def test_matches_reference(key, tmp_path):
    require_module("cffi")
    model = MODELS[key]
    for math, flags in ((None, []), ("builtin", ["-O3", "-march=native"])):
        files = c_backend.render(model, "net", math=math)
        workdir = tmp_path / (math or "libm")
        module = c_runner.build(model, files, "net", workdir, flags)
        for t_len in (1, 7):
            x = np.random.default_rng(t_len).standard_normal((4, t_len, model.input_size))
            x = x.astype(np.float32)
            got = c_runner.run(model, files, "net", x, workdir, module=module)
            _, rel = error_metrics(got, forward(model, x))
            assert rel.max() <= TOLERANCE, (key, math, t_len, float(rel.max()))
        assert hasattr(module.lib, "net_step") == model.streamable
        if model.streamable:
            x = np.random.default_rng(3).standard_normal((3, 6, model.input_size))
            x = x.astype(np.float32)
            steps = c_runner.run_steps(model, files, "net", x, workdir, module=module)
            ref = forward(model, x)
            if not model.returns_sequences:  # the output after every prefix of x
                ref = np.stack([forward(model, x[:, :t]) for t in range(1, 7)], axis=1)
            _, rel = error_metrics(steps, ref)
            assert rel.max() <= TOLERANCE, (key, math, "step", float(rel.max()))


def test_every_stage_kind_is_covered():
    """The models above reach every kind of stage the plan makes."""
    seen = set()
    for model in MODELS.values():
        plan = make_plan(model)
        seen.add(("final_merge", plan.final_merge is not None))
        seen.add(("slots", min(plan.slots, 3)))
        for stage in plan.stages:
            parts = {op.part for op in stage.ops}
            seen.add(("reverse", stage.reverse, stage.source is not None))
            seen.add(("by_source_time", stage.by_source_time))
            seen.add(("parts", tuple(sorted(p or "" for p in parts))))
            seen.add(
                ("replay", stage.source is None and len(stage.ops) > 1 and bool(parts - {None}))
            )
    for fact in [
        ("final_merge", True),
        ("slots", 0),
        ("slots", 1),
        ("slots", 3),
        ("reverse", True, True),
        ("reverse", True, False),
        ("by_source_time", True),
        ("parts", ("", "bw")),
        ("parts", ("", "fw", "merge")),
        ("replay", True),
    ]:
        assert fact in seen, fact


def test_streaming_starts_from_the_initial_state(tmp_path):
    """reset() puts the model's initial h and c in place: step() then equals predict()
    after every prefix, and a second reset starts over."""
    require_module("cffi")
    model = MODELS["lstm_features"]
    files = c_backend.render(model, "net")
    module = c_runner.build(model, files, "net", tmp_path)
    ffi, lib = module.ffi, module.lib
    x = np.random.default_rng(9).standard_normal((5, 3)).astype(np.float32)
    state = ffi.new("net_state *")
    y = np.zeros(2, np.float32)
    for _ in range(2):
        lib.net_reset(state)
        for t in range(5):
            lib.net_step(state, ffi.from_buffer("float[]", x[t]), ffi.from_buffer("float[]", y))
            ref = forward(model, x[: t + 1])
            assert error_metrics(y, ref)[1].max() <= TOLERANCE


def test_predict_rejects_bad_arguments_with_bidirectional_buffers(tmp_path):
    require_module("cffi")
    model = MODELS["bi_mixed"]  # T = 7: NET_MAX_TIMESTEPS 7, three sequence slots
    files = c_backend.render(model, "net")
    assert "#define NET_MAX_TIMESTEPS 7" in files["net.h"]
    assert "seq_c[NET_MAX_TIMESTEPS * " in files["net.c"]
    module = c_runner.build(model, files, "net", tmp_path)
    ffi, lib = module.ffi, module.lib
    x = ffi.new("float[]", 3 * 20)
    y = ffi.new("float[]", [7.0] * 2 * 20)
    assert lib.net_predict(x, 0, y) == -1
    assert lib.net_predict(ffi.NULL, 3, y) == -1
    assert lib.net_predict(x, 3, ffi.NULL) == -1
    assert lib.net_predict(x, 8, y) == -1
    assert list(y) == [7.0] * 40, "y must be untouched on error"
    assert lib.net_predict(x, 7, y) == 0


@pytest.mark.parametrize(
    "key", ["bi_last", "bi_rnn_tail", "gru_backwards", "gru_rnn_stream", "lstm_features"]
)
def test_no_buffer_where_none_is_needed(key):
    """A Bidirectional as the first recurrent layer returning its last state reads x
    backwards directly; only layers that need a whole sequence get a stack buffer."""
    text = c_backend.render(MODELS[key], "net")
    assert "MAX_TIMESTEPS" not in text["net.h"] + text["net.c"]


def test_one_reversed_sequence_needs_one_buffer():
    assert "seq_b" not in c_backend.render(MODELS["rnn_buffered"], "net")["net.c"]


@pytest.mark.parametrize("key", sorted(MODELS))
def test_generated_code_facts(key):
    model = MODELS[key]
    files = c_backend.render(model, "net")
    source = files["net.c"]
    assert "malloc(" not in source and not re.search(r"^static float \w+\[", source, re.M)
    includes = [l for l in source.splitlines() if l.startswith("#include")]
    assert includes == ['#include "net.h"', "#include <math.h>", "#include <stddef.h>"]
    assert all(text.isascii() for text in files.values())
    assert ("net_step(" in files["net.h"]) == model.streamable, key
    builtin = c_backend.render(model, "net", math="builtin")["net.c"]
    assert "#include <math.h>" not in builtin
    # deterministic
    assert c_backend.render(MODELS["bi_stack"], "net") == c_backend.render(
        MODELS["bi_stack"], "net"
    )


@pytest.mark.parametrize("key", sorted(MODELS))
def test_asan_ubsan_clean_on_extreme_inputs(key, tmp_path):
    model = MODELS[key]
    exe = build_c_driver(tmp_path, model, [require_tool("clang"), *SANITIZE])
    x = extreme_inputs(model.input_size)
    rows = run_c_driver(exe, x, tmp_path)
    assert len(rows) == 6 + (2 if model.streamable else 0)
    assert np.allclose(rows[0], forward(model, x[:1]).reshape(-1), atol=1e-5)
    for row in rows[1:6]:
        assert all(np.isnan(v) or abs(v) <= 3.5e38 for v in row)


@pytest.mark.parametrize("key", ["bi_stack", "bi_mixed"])
def test_valgrind_clean(key, tmp_path):
    valgrind = require_tool("valgrind")
    model = MODELS[key]
    exe = build_c_driver(tmp_path, model, [require_tool("gcc"), "-std=c99", "-g", "-O1"])
    run_c_driver(
        exe,
        extreme_inputs(model.input_size),
        tmp_path,
        prefix=[valgrind, "-q", "--error-exitcode=9", "--leak-check=full"],
    )


@pytest.mark.parametrize(
    "key,what",
    [
        ("gru_rnn_stream", "gru layers (layer 'g1')"),
        ("rnn_buffered", "simple_rnn layers (layer 'ra')"),
        ("bi_last", "bidirectional of gru layers (layer 'bgl')"),
        ("lstm_features", "LSTM clip (layer 'all')"),
        ("lstm_proj_backwards", "LSTM initial_state (layer 'projb')"),
    ],
)
@pytest.mark.parametrize("mode", ["int8", "int16", "fixed16"])
def test_quantized_modes_refuse_what_they_do_not_implement(mode, key, what):
    with pytest.raises(
        LstmgenError, match=re.escape(f"--quantize {mode} does not implement {what}")
    ):
        c_backend.render(MODELS[key], "net", quantize=mode)


@pytest.mark.parametrize("mode", ["int8", "int16"])
def test_quantized_bidirectional_lstm(mode, tmp_path):
    """int8 / int16 run each direction of a Bidirectional LSTM with their kernel: exact for
    the dequantized weights, within the mode's tolerance of the float model, warning-free."""
    require_module("cffi")
    model = quantizable_bidirectional()
    files = c_backend.render(model, "net", quantize=mode)
    write_files(files, tmp_path)
    for compiler in ("gcc", "clang"):
        compile_c(compiler, tmp_path / "net.c", "-O2")
    x = np.random.default_rng(0).standard_normal((4, 9, 3)).astype(np.float32)
    got = c_runner.run(model, files, "net", x, tmp_path / "build")
    ref = forward(c_quant.dequantized_model(model, mode), x)
    assert error_metrics(got, ref)[1].max() <= TOLERANCE
    assert error_metrics(got, forward(model, x))[0].max() <= c_backend.default_atol(mode) / 2
    with pytest.raises(
        LstmgenError, match="fixed16 does not implement bidirectional of lstm layers"
    ):
        c_backend.render(model, "net", quantize="fixed16")


def test_memory_estimate_counts_every_state_and_buffer():
    model = MODELS["bi_stack"]
    est = estimate(model)
    # state: LSTM h + c per direction, GRU and SimpleRNN h per direction
    assert est.state_bytes == 4 * (2 * (3 + 3) + 2 * 4 + 2 * 3)
    # three sequence slots of T x the widest vector (6)
    assert est.sequence_buffer_bytes == 3 * 100 * 6 * 4
    # every array as stored: the GRU's recurrent biases of z and r are folded into its
    # bias (2H values less per direction)
    assert est.weight_bytes == 4 * (model.parameter_count() - 2 * 2 * 4)


# ------------------------------------------------------------ Cortex-M (qemu, arm-gcc) --


@pytest.mark.parametrize("key", ["gru_rnn_stream", "bi_stack", "lstm_features"])
def test_runs_on_cortex_m4f(arm, key, tmp_path):
    """The float build (and --math builtin) cross-compiled -Os -Werror for a Cortex-M4F,
    its self-test run on qemu against the float64 reference."""
    model = MODELS[key]
    x = make_inputs(model.input_size, 4, 9, seed=2)
    expected = forward(model, x).astype(np.float32)
    for math in (None, "builtin"):
        files = c_backend.render(
            model, "net", math=math, selftest=SelftestData(x, expected, "reference")
        )
        rc, out, got = qemu_outputs(files, "net", tmp_path / str(math), "m4f", model, "float")
        assert rc == 0 and "net_selftest: 0 of" in out, out[-2000:]
        err = np.abs(got - expected.ravel()) / np.maximum(1, np.abs(expected.ravel()))
        assert err.max() <= TOLERANCE, (key, math, float(err.max()))


def test_quantized_bidirectional_runs_on_cortex_m(arm, tmp_path):
    model = quantizable_bidirectional()
    x = make_inputs(model.input_size, 4, 9, seed=2)
    expected = forward(model, x).astype(np.float32)
    files = c_backend.render(
        model, "net", quantize="int8", selftest=SelftestData(x, expected, "reference")
    )
    for core in ("m4f", "m3"):
        rc, out, got = qemu_outputs(files, "net", tmp_path / core, core, model, "int8")
        assert rc == 0 and "net_selftest: 0 of" in out, out[-2000:]
        assert np.max(np.abs(got - expected.ravel())) <= c_backend.default_atol("int8")


@pytest.mark.parametrize("key", sorted(MODELS))
def test_memory_on_cortex_m4f_is_what_the_estimate_says(arm, key):
    """Weights in .rodata, nothing in .data/.bss, the measured stack within the estimate
    (state, scratch, sequence buffers) plus frames, the code estimate within 0.5-1.5x."""
    model = MODELS[key]
    files = c_backend.render(model, "net")
    m = measure(files, "net", "cortex-m4")
    est = estimate(model)
    assert m.ram_bytes == 0, (key, m.sections)
    if "net_step" in m.stack:
        assert m.stack["net_step"] <= est.scratch_bytes + FRAME_SLACK, (key, m.stack)
    assert m.stack["net_predict"] <= est.ram_bytes + FRAME_SLACK, (key, m.stack)
    sizes = [int(n) for n in re.findall(r"^static const float \w+\[(\d+)\]", files["net.c"], re.M)]
    assert est.weight_bytes == 4 * sum(sizes), key  # the estimate is the arrays
    # all in .rodata (-Os may turn tiny arrays such as initial states into immediates)
    rodata = sum(v for k, v in m.sections.items() if k.startswith(".rodata"))
    assert rodata >= 4 * sum(n for n in sizes if n >= 16), (key, rodata)
    assert 0.5 <= m.sections[".text"] / est.code_bytes <= 1.5, (key, m.sections, est)


def test_hostile_bidirectional_names(tmp_path):
    """Direction identifiers never collide with another layer's, and names in comments
    stay harmless."""
    require_module("cffi")
    m = IRMaker(3)
    model = Model(
        2,
        [
            m.bi("x */ y??/", "gru", 2, 3, sequences=True),
            m.dense("x  y fw", 6, 3),
            m.bi("x y bw", "lstm", 3, 2, "sum"),
            m.dense("x_y_bw_2", 2, 2),
        ],
        name="hostile",
    ).validate()
    files = c_backend.render(model, "net")
    assert all(text.isascii() for text in files.values())
    compile_c("gcc", write_files(files, tmp_path) / "net.c", "-Wtrigraphs")
    x = np.random.default_rng(0).standard_normal((3, 4, 2)).astype(np.float32)
    got = c_runner.run(model, files, "net", x, tmp_path / "build")
    assert error_metrics(got, forward(model, x))[1].max() <= TOLERANCE
