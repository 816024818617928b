"""BatchNorm, Embedding (token ids), RepeatVector, GlobalPool, TimeSlice and log_softmax in
the C target.

Hand-built IR models (no framework needed; tests/layers checks the same kinds against
Keras, and a Bidirectional's `out[:, -1]` is checked against PyTorch below) reach every new
branch of the templates and the plan: they compile warning-free with gcc and clang
(-std=c99 -Wall -Wextra -pedantic -Wconversion ... -Werror) and as C++ in every build that
implements them, match the float64 reference (libm and --math builtin, -O2 and -O3
-march=native), stream where streamable (step equals predict on every prefix), survive
ASan/UBSan on extreme inputs and token ids out of range, and run on a Cortex-M4F (and the
fixed16 build on a Cortex-M3) under qemu. The token-id API refuses a bad id without
touching y (predict) or the state (step); NAME_output_timesteps follows the IR."""

from __future__ import annotations

import re

import numpy as np
import pytest
from support import (
    FRAME_SLACK,
    PREDICT_DRIVER,
    ROOT,
    SANITIZE,
    IRMaker,
    build_c_driver,
    compile_c,
    qemu_outputs,
    require_arm,
    require_module,
    require_tool,
    run_c_driver,
    steps_reference,
    write_files,
)

from lstmgen.errors import LstmgenError
from lstmgen.ir import (
    LSTM,
    Activation,
    Bidirectional,
    Conv1D,
    GlobalPool,
    Masking,
    Model,
    RepeatVector,
    TimeSlice,
)
from lstmgen.reference import forward
from lstmgen.sampling import SelftestData
from lstmgen.targets import c as c_target
from lstmgen.targets.c import quant, runner
from lstmgen.targets.c.memory import estimate, measure
from lstmgen.targets.c.plan import make_plan
from lstmgen.verify import error_metrics

TOLERANCE = 1e-5
NEW_KINDS = {"batch_norm", "embedding", "repeat_vector", "global_pool", "time_slice"}


def new_kind_models() -> dict[str, Model]:
    m = IRMaker(41)
    models = {
        # BatchNorm on the input, on a sequence (no beta) and on a vector (no gamma), a
        # log_softmax head
        "batch_norm": Model(
            3,
            [
                m.batch_norm("bn_in", 3),
                m.lstm("l1", 3, 4, return_sequences=True),
                m.batch_norm("bn_seq", 4, center=False, epsilon=0.01),
                m.gru("g", 4, 3),
                m.batch_norm("bn_vec", 3, scale=False),
                m.dense("out", 3, 4, "log_softmax"),
            ],
        ),
        # streamable: BatchNorm on every step, a standalone log_softmax over every step
        "batch_norm_stream": Model(
            2,
            [
                m.lstm("l", 2, 5, return_sequences=True),
                m.batch_norm("bn", 5),
                Activation("lsm", 5, "log_softmax"),
            ],
        ),
        # token ids in, streamable, a softmax head
        "embedding": Model(
            1, [m.embedding("emb", 11, 4), m.lstm("l", 4, 5), m.dense("out", 5, 3, "softmax")]
        ),
        # id 0 masks its timestep; a layer with an initial h keeps its output; sequences
        "embedding_masked": Model(
            1,
            [
                m.embedding("emb", 7, 3, mask_zero=True),
                m.lstm("l", 3, 4, return_sequences=True, features=("initial_h",)),
                m.dense("out", 4, 2),
            ],
        ),
        # rows of one value (no stride), a SimpleRNN whose state y is
        "embedding_width1": Model(1, [m.embedding("emb", 5, 1), m.rnn("r", 1, 3)]),
        # the rows an Embedding gives, into a Conv1D (a prefix group fetches them)
        "embedding_conv": Model(
            1,
            [
                m.embedding("emb", 9, 3),
                Conv1D("conv", m.u(4, 2, 3), m.u(4), stride=2, activation="relu"),
                m.lstm("l", 4, 3),
            ],
        ),
        # an autoencoder: encoder, RepeatVector, decoder with sequences, per-step head
        "autoencoder": Model(
            3,
            [
                m.lstm("enc", 3, 5),
                RepeatVector("rv", 5, 6),
                m.lstm("dec", 5, 4, return_sequences=True),
                m.dense("td", 4, 3),
            ],
        ),
        # three parts: a tail before each repeat, a Bidirectional (buffered) and a
        # go_backwards layer after a repeat
        "repeat_parts": Model(
            2,
            [
                m.gru("g1", 2, 4, return_sequences=True),
                m.gru("g2", 4, 3),
                m.dense("mid", 3, 3, "tanh"),
                RepeatVector("rv1", 3, 5),
                m.bi("bd", "lstm", 3, 2, "concat", sequences=True),
                m.lstm("back", 4, 3, go_backwards=True),
                RepeatVector("rv2", 3, 4),
                m.rnn("r", 3, 2, return_sequences=True),
            ],
        ),
        # the mean over the real timesteps of a masked sequence, a head after it
        "global_avg_masked": Model(
            3,
            [
                Masking("mask", 3, 0.0),
                m.lstm("l", 3, 4, return_sequences=True),
                GlobalPool("gap", 4, "avg"),
                m.dense("out", 4, 2),
            ],
        ),
        # the maximum as the last layer (the pooled vector is y)
        "global_max": Model(
            2, [m.lstm("l", 2, 4, return_sequences=True), GlobalPool("gmp", 4, "max")]
        ),
        # the mean of embedding rows with id 0 masked (no recurrent layer before it),
        # repeated into an LSTM
        "bag_of_embeddings": Model(
            1,
            [
                m.embedding("emb", 8, 3, mask_zero=True),
                GlobalPool("gap", 3, "avg"),
                RepeatVector("rv", 3, 4),
                m.lstm("l", 3, 2),
            ],
        ),
        # Keras Cropping1D after a recurrent layer (buffered), read backwards after it
        "crop_buffered": Model(
            3,
            [
                m.lstm("l1", 3, 4, return_sequences=True),
                TimeSlice("crop", 4, 2, -3),
                m.lstm("l2", 4, 3, go_backwards=True, return_sequences=True),
            ],
        ),
        # a crop in front of the recurrent layers (where the loops start reading x) and
        # the last k steps after one (ONNX's Slice)
        "crop_input_last_k": Model(
            3,
            [
                m.dense("pre", 3, 3, "tanh"),
                TimeSlice("c0", 3, 1, -1),
                m.gru("g", 3, 4, return_sequences=True),
                TimeSlice("lastk", 4, -3, None),
                m.dense("out", 4, 2),
            ],
        ),
        # PyTorch's bidirectional out[:, -1]: the squeezed last step of the merged sequence
        "bidirectional_last_step": Model(
            3,
            [
                m.bi("b", "lstm", 3, 3, "concat", sequences=True),
                TimeSlice("last", 6, -1, None, True),
                m.dense("out", 6, 2),
            ],
        ),
        # streamable: a unidirectional layer's last step squeezed
        "last_step_stream": Model(
            2,
            [
                m.lstm("l", 2, 4, return_sequences=True),
                TimeSlice("last", 4, -1, None, True),
                m.dense("out", 4, 2),
            ],
        ),
        # a squeezed step counted from the start: the loop stops after it (T >= 4)
        "squeeze_step": Model(
            3,
            [
                m.gru("g", 3, 4, return_sequences=True),
                TimeSlice("s", 4, 3, 4, True),
                m.dense("out", 4, 2),
            ],
        ),
        # a crop of a masked sequence: the mask positions follow the kept rows
        "masked_crop": Model(
            3,
            [
                Masking("mask", 3, 0.0),
                m.lstm("l1", 3, 4, return_sequences=True),
                TimeSlice("crop", 4, 1, None),
                m.lstm("l2", 4, 3),
            ],
        ),
    }
    for key, model in models.items():
        model.name = key
    return {k: v.validate() for k, v in models.items()}


MODELS = new_kind_models()
IDS = {k for k, v in MODELS.items() if v.token_vocabulary}
COUNTING = {k for k, v in MODELS.items() if "_output_timesteps" in c_target.render(v, "n")["n.h"]}


def implemented(mode: str) -> list[str]:
    """The models a quantized build implements (the others it refuses by name)."""
    out = []
    for key, model in MODELS.items():
        try:
            c_target.check_quantizable(model, mode)
        except LstmgenError:
            continue
        out.append(key)
    return out


def inputs(model: Model, n: int, t_len: int, seed: int) -> np.ndarray:
    """Random features or token ids [n, t_len, D]; masked (padding) steps at the end, the
    start and the middle, and one fully masked sequence, for a masking model."""
    rng = np.random.default_rng(seed)
    vocabulary = model.token_vocabulary
    if vocabulary is not None:
        x = rng.integers(0, vocabulary, (n, t_len, 1)).astype(np.float32)
        if getattr(model.layers[0], "mask_zero", False):
            x[0, t_len // 2 :] = 0
            x[1, :2] = 0
            x[2] = 0
        return x
    x = rng.standard_normal((n, t_len, model.input_size)).astype(np.float32)
    if model.layers[0].kind == "masking":
        x[0, t_len // 2 :] = 0.0
        x[1, :2] = 0.0
        x[2] = 0.0
    return x


def lengths(model: Model) -> tuple[int, ...]:
    least = model.min_timesteps()
    return (least, least + 3, 13)


def assert_matches(got: np.ndarray, ref: np.ndarray, what) -> None:
    """Equal NaN where the reference is NaN (a mean over no real step), else within 1e-5."""
    assert np.array_equal(np.isnan(got), np.isnan(ref)), what
    ok = ~np.isnan(ref)
    _, rel = error_metrics(got[ok], ref[ok])
    assert rel.max() <= TOLERANCE, (what, float(rel.max()))


@pytest.fixture(scope="module")
def arm():
    require_arm()


# ------------------------------------------------------------------------ compilers --


BUILDS = [  # (compiler, --math, optimisation): C99 both ways, C++ with libm
    *[
        (c, math, opts)
        for c in ("gcc", "clang")
        for math in (None, "builtin")
        for opts in (("-O2",), ("-O3", "-march=native"))
    ],  # native: the fmaf path
    ("g++", None, ("-O2",)),
    ("clang++", None, ("-O2",)),
]


@pytest.mark.parametrize("compiler,math,opts", BUILDS)
@pytest.mark.parametrize("key", sorted(MODELS))
def test_compiles_without_warnings(key, compiler, math, opts, tmp_path):
    folder = write_files(c_target.render(MODELS[key], "net", math=math, selftest=True), tmp_path)
    compile_c(compiler, folder / "net.c", *opts)
    if compiler in ("gcc", "g++") and opts == ("-O2",):
        compile_c(compiler, folder / "net_selftest.c", "-O2", "-DNET_SELFTEST_MAIN")


@pytest.mark.parametrize(
    "key,mode", [(k, mode) for mode in ("int8", "int16", "fixed16") for k in implemented(mode)]
)
@pytest.mark.parametrize("compiler", ["gcc", "clang++"])
def test_quantized_builds_compile_without_warnings(key, mode, compiler, tmp_path):
    folder = write_files(
        c_target.render(MODELS[key], "net", quantize=mode, selftest=True), tmp_path
    )
    compile_c(compiler, folder / "net.c", "-O2")
    compile_c(compiler, folder / "net_selftest.c", "-O2", "-DNET_SELFTEST_MAIN")


def test_a_template_for_every_ir_kind_and_every_activation():
    from lstmgen.ir import ALL_ACTIVATIONS, LAYER_TYPES

    folder = ROOT / "templates" / "c" / "layers"
    assert {p.stem for p in folder.glob("*.j2")} == set(LAYER_TYPES) == c_target.LAYERS
    assert c_target.ACTIVATIONS == set(ALL_ACTIVATIONS)


def test_every_new_kind_is_covered():
    assert set().union(*(m.kinds() for m in MODELS.values())) >= NEW_KINDS
    assert any(
        "log_softmax" in {getattr(l, "activation", "") for l in m.layers} for m in MODELS.values()
    )
    parts = {key: len(make_plan(model).parts) for key, model in MODELS.items()}
    assert parts["repeat_parts"] == 3 and parts["autoencoder"] == 2
    assert make_plan(MODELS["repeat_parts"]).parts[1].slots > 0  # buffers after a repeat


# ------------------------------------------------------------- against the reference --


@pytest.mark.parametrize("key", sorted(MODELS))
def test_matches_reference(key, tmp_path):
    require_module("cffi")
    model = MODELS[key]
    for math, flags in ((None, []), ("builtin", ["-O3", "-march=native"])):
        files = c_target.render(model, "net", math=math)
        workdir = tmp_path / (math or "libm")
        module = runner.build(model, files, "net", workdir, flags)
        for t_len in lengths(model):
            x = inputs(model, 5, t_len, seed=t_len)
            got = runner.run(model, files, "net", x, workdir, module=module)
            assert_matches(got, forward(model, x), (key, math, t_len))
        assert hasattr(module.lib, "net_step") == model.streamable
        if model.streamable:  # step() after every prefix equals predict() on it
            x = inputs(model, 5, 8, seed=3)
            steps = runner.run_steps(model, files, "net", x, workdir, module=module)
            assert_matches(steps, steps_reference(model, x), (key, math, "step"))


@pytest.mark.parametrize(
    "key,mode", [(k, mode) for mode in ("int8", "int16", "fixed16") for k in implemented(mode)]
)
def test_quantized_builds(key, mode, tmp_path):
    """int8 / int16: exact for their dequantized weights (so a kernel bug shows apart from
    quantization error); every mode within its tolerance of the float model."""
    require_module("cffi")
    model = MODELS[key]
    files = c_target.render(model, "net", quantize=mode)
    x = inputs(model, 5, max(model.min_timesteps(), 9), seed=7)
    got = runner.run(model, files, "net", x, tmp_path)
    if mode != "fixed16":
        assert_matches(got, forward(quant.dequantized_model(model, mode), x), (key, mode))
    assert np.max(np.abs(got - forward(model, x))) <= c_target.default_atol(mode) / 2
    if model.streamable:
        steps = runner.run_steps(model, files, "net", x, tmp_path)
        assert np.max(np.abs(steps - steps_reference(model, x))) <= c_target.default_atol(mode)


@pytest.mark.parametrize(
    "key,mode,what",
    [
        ("batch_norm", "fixed16", "batch_norm layers (layer 'bn_in')"),
        ("global_max", "fixed16", "global_pool layers (layer 'gmp')"),
        ("embedding_masked", "int8", "masking (layer 'emb', embedding with mask_zero)"),
        ("bag_of_embeddings", "fixed16", "masking (layer 'emb', embedding with mask_zero)"),
        ("batch_norm_stream", "int16", None),
        ("masked_crop", "int16", "masking layers (layer 'mask')"),
    ],
)
def test_quantized_modes_refuse_what_they_do_not_implement(key, mode, what):
    if what is None:  # implemented: renders
        assert c_target.render(MODELS[key], "net", quantize=mode)
        return
    expected = re.escape(f"--quantize {mode} does not implement {what}")
    with pytest.raises(LstmgenError, match=expected):
        c_target.render(MODELS[key], "net", quantize=mode)


def test_fixed16_refuses_log_softmax():
    m = IRMaker(2)
    model = Model(2, [m.lstm("l", 2, 3), Activation("lsm", 3, "log_softmax")]).validate()
    with pytest.raises(LstmgenError, match=r"fixed16 does not implement the log_softmax activa"):
        c_target.render(model, "net", quantize="fixed16")
    assert c_target.render(model, "net", quantize="int8")


def test_refuses_masked_rows_read_without_a_recurrent_layer():
    """Masking makes a masked row zeros; layers reading it with no recurrent layer in between
    (the first recurrent layer after a RepeatVector) are refused by name, not miscomputed."""
    m = IRMaker(3)
    model = Model(
        3,
        [
            Masking("mask", 3, 0.5),
            m.dense("d", 3, 3),
            GlobalPool("gmp", 3, "max"),
            RepeatVector("rv", 3, 4),
            m.lstm("l", 3, 2),
        ],
    ).validate()
    with pytest.raises(LstmgenError, match=r"masking layer masks .*layer 'mask'"):
        c_target.render(model, "net")


def test_pytorch_bidirectional_last_step(tmp_path):
    """PyTorch's `out[:, -1]` of a bidirectional LSTM with batch_first: the forward
    direction after T steps and the backward one after a single step, against torch."""
    torch = require_module("torch")
    require_module("cffi")
    torch.manual_seed(3)
    lstm = torch.nn.LSTM(3, 4, batch_first=True, bidirectional=True)
    x = np.random.default_rng(0).standard_normal((5, 9, 3)).astype(np.float32)
    with torch.no_grad():
        out, _ = lstm(torch.from_numpy(x))
        expected = out[:, -1].numpy()

    def direction(suffix: str, backwards: bool) -> LSTM:
        weights = {n: p.detach().numpy() for n, p in lstm.named_parameters()}
        return LSTM(  # PyTorch's gate order i, f, g, o is the IR's; its two biases add up
            f"d{suffix}",
            weights[f"weight_ih_l0{suffix}"],
            weights[f"weight_hh_l0{suffix}"],
            weights[f"bias_ih_l0{suffix}"] + weights[f"bias_hh_l0{suffix}"],
            return_sequences=True,
            go_backwards=backwards,
        )

    model = Model(
        3,
        [
            Bidirectional("bi", direction("", False), direction("_reverse", True)),
            TimeSlice("last", 8, -1, None, True),
        ],
    ).validate()
    got = runner.run(model, c_target.render(model, "net"), "net", x, tmp_path)
    _, rel = error_metrics(got, expected)
    assert rel.max() <= TOLERANCE


# ------------------------------------------------------------------------ token ids --


@pytest.mark.parametrize("key", sorted(IDS & {k for k, m in MODELS.items() if m.streamable}))
def test_token_ids_api(key, tmp_path):
    """predict refuses an id outside [0, VOCABULARY) with -1 and y untouched; step returns
    -1 for it and changes neither the state nor y; after every id, step equals predict on
    the ids so far."""
    require_module("cffi")
    model = MODELS[key]
    vocabulary = model.token_vocabulary
    files = c_target.render(model, "net")
    assert f"#define NET_VOCABULARY_SIZE {vocabulary}\n" in files["net.h"]
    assert "int net_predict(const int32_t *ids, int timesteps, float *y);" in files["net.h"]
    assert "int net_step(net_state *s, int32_t id, float *y);" in files["net.h"]
    module = runner.build(model, files, "net", tmp_path)
    ffi, lib = module.ffi, module.lib
    per_step = (6 if model.returns_sequences else 1) * model.output_size
    ids = np.array([1, 2, 0, 3, 1, 2], np.int32)
    for bad in (-1, vocabulary, 2**31 - 1, -(2**31)):
        wrong = ids.copy()
        wrong[3] = bad
        y = np.full(per_step, 7.0, np.float32)
        status = lib.net_predict(
            ffi.from_buffer("int32_t[]", wrong), 6, ffi.from_buffer("float[]", y)
        )
        assert status == -1 and np.all(y == 7.0), bad
    assert lib.net_predict(ffi.NULL, 6, ffi.from_buffer("float[]", y)) == -1
    state = ffi.new("net_state *")
    size = ffi.sizeof("net_state")
    y = np.zeros(model.output_size, np.float32)
    lib.net_reset(state)
    for t, token in enumerate(ids):
        assert lib.net_step(state, int(token), ffi.from_buffer("float[]", y)) == 0
        before, previous = bytes(ffi.buffer(state, size)), y.copy()
        for bad in (-1, vocabulary):
            assert lib.net_step(state, bad, ffi.from_buffer("float[]", y)) == -1
            assert bytes(ffi.buffer(state, size)) == before and np.array_equal(y, previous)
        prefix = ids[: t + 1].astype(np.float32)[None, :, None]
        ref = forward(model, prefix)
        assert_matches(y, (ref[0, -1] if model.returns_sequences else ref[0]), (key, t))


def test_masked_token_id_keeps_state(tmp_path):
    """step() on id 0 of a mask_zero Embedding leaves the state byte for byte and writes
    the previous output again."""
    require_module("cffi")
    model = MODELS["embedding_masked"]
    files = c_target.render(model, "net")
    module = runner.build(model, files, "net", tmp_path)
    ffi, lib = module.ffi, module.lib
    state = ffi.new("net_state *")
    size = ffi.sizeof("net_state")
    y = np.zeros(model.output_size, np.float32)
    lib.net_reset(state)
    for token in (3, 1, 5):
        lib.net_step(state, token, ffi.from_buffer("float[]", y))
    before, previous = bytes(ffi.buffer(state, size)), y.copy()
    for _ in range(3):
        assert lib.net_step(state, 0, ffi.from_buffer("float[]", y)) == 0
        assert bytes(ffi.buffer(state, size)) == before and np.array_equal(y, previous)


# ----------------------------------------------------------------- timesteps counted --


@pytest.mark.parametrize("key", sorted(COUNTING))
def test_output_timesteps_and_refused_lengths(key, tmp_path):
    """NAME_output_timesteps(T) is Model.output_timesteps(T) for every T it accepts, 0 for
    the others; predict() returns -1 with y untouched for those."""
    require_module("cffi")
    model = MODELS[key]
    files = c_target.render(model, "net")
    module = runner.build(model, files, "net", tmp_path)
    ffi, lib = module.ffi, module.lib
    for t in [-3, 0, *range(1, 40), 2**31 - 1]:
        want = model.output_timesteps(t) if t >= 1 and model.accepts_timesteps(t) else 0
        assert lib.net_output_timesteps(t) == want, t
    if model.min_timesteps() > 1:
        assert f"#define NET_MIN_TIMESTEPS {model.min_timesteps()}\n" in files["net.h"]
    dtype, ctype = (np.int32, "int32_t[]") if model.token_vocabulary else (np.float32, "float[]")
    x = np.ones(60 * model.input_size, dtype)
    y = np.full(60 * 8 * model.output_size, 7.0, np.float32)
    for t in range(1, model.min_timesteps()):
        status = lib.net_predict(ffi.from_buffer(ctype, x), t, ffi.from_buffer("float[]", y))
        assert status == -1 and np.all(y == 7.0), t
    assert (
        lib.net_predict(
            ffi.from_buffer(ctype, x), model.min_timesteps(), ffi.from_buffer("float[]", y)
        )
        == 0
    )


# ------------------------------------------------------------------------ sanitizers --


def sanitizer_inputs(model: Model, t_len: int) -> np.ndarray:
    """Ordinary inputs first; then extremes: for features huge, denormal, NaN and infinite
    values, for token ids values outside the vocabulary (predict must refuse them)."""
    x = inputs(model, 6, t_len, seed=0)
    if model.token_vocabulary:
        x[1, t_len // 2] = -1
        x[2, 0] = model.token_vocabulary
        x[3, -1] = 2147483520
        x[4] = 0
        x[5, 1] = -2e9
        return x
    x[1] *= np.float32(1e30)
    x[2] = np.float32(1e-40)
    x[3, t_len // 2] = np.nan
    x[4, ::2] = np.inf
    x[5] = -np.float32(3.4e38)
    return x


@pytest.mark.parametrize("key", sorted(MODELS))
def test_asan_ubsan_clean_on_extreme_inputs(key, tmp_path):
    clang = require_tool("clang")
    model = MODELS[key]
    defines = (["IDS"] if model.token_vocabulary else []) + (["COUNTS"] if key in COUNTING else [])
    exe = build_c_driver(tmp_path, model, [clang, *SANITIZE], PREDICT_DRIVER, defines)
    t_len = max(model.min_timesteps(), 7)
    x = sanitizer_inputs(model, t_len)
    rows = run_c_driver(exe, x, tmp_path)
    assert len(rows) == 6
    ref = forward(model, x[:1]).reshape(-1)
    assert_matches(np.array(rows[0]), ref, key)
    if model.token_vocabulary:
        assert rows[1:4] == [None] * 3 and rows[5] is None
    else:
        for row in rows[1:]:
            assert all(np.isnan(v) or abs(v) <= 3.5e38 for v in row)


# ------------------------------------------------------------ Cortex-M (qemu, arm-gcc) --


@pytest.mark.parametrize(
    "key",
    [
        "autoencoder",
        "batch_norm",
        "bidirectional_last_step",
        "embedding_masked",
        "global_avg_masked",
    ],
)
def test_runs_on_cortex_m4f(arm, key, tmp_path):
    """The float build (and --math builtin) cross-compiled -Os -Werror for a Cortex-M4F,
    its self-test run on qemu against the float64 reference (masked steps included)."""
    model = MODELS[key]
    x = inputs(model, 5, max(model.min_timesteps(), 11), seed=2)
    expected = forward(model, x).astype(np.float32)
    if np.isnan(expected).any():  # a self-test compares finite outputs only
        x, expected = x[~np.isnan(expected).reshape(len(x), -1).any(axis=1)], None
        expected = forward(model, x).astype(np.float32)
    for math in (None, "builtin"):
        data = SelftestData(x, expected, "reference")
        files = c_target.render(model, "net", math=math, selftest=data)
        rc, out, got = qemu_outputs(files, "net", tmp_path / str(math), "m4f", model, "float")
        assert rc == 0 and "net_selftest: 0 of" in out, out[-2000:]
        err = np.abs(got - expected.ravel()) / np.maximum(1, np.abs(expected.ravel()))
        assert err.max() <= TOLERANCE, (math, float(err.max()))


@pytest.mark.parametrize(
    "key,mode,core", [("embedding", "fixed16", "m3"), ("autoencoder", "int8", "m4f")]
)
def test_quantized_runs_on_cortex_m(arm, key, mode, core, tmp_path):
    model = MODELS[key]
    x = inputs(model, 4, 9, seed=5)
    expected = forward(model, x).astype(np.float32)
    files = c_target.render(model, "net", quantize=mode, selftest=SelftestData(x, expected, "ref"))
    rc, out, got = qemu_outputs(files, "net", tmp_path, core, model, mode)
    assert rc == 0 and "net_selftest: 0 of" in out, out[-2000:]
    assert np.max(np.abs(got - expected.ravel())) <= c_target.default_atol(mode)


@pytest.mark.parametrize("key", sorted(MODELS))
def test_memory_on_cortex_m4f_is_what_the_estimate_says(arm, key):
    """Weights in .rodata, nothing in .data/.bss, the measured stack within the estimate
    (state, scratch, sequence buffers, collected and repeated vectors) plus frames, the
    weight bytes the arrays', the code estimate within 0.5-1.5x."""
    model = MODELS[key]
    files = c_target.render(model, "net")
    m = measure(files, "net", "cortex-m4")
    est = estimate(model)
    assert m.ram_bytes == 0, m.sections
    if "net_step" in m.stack:
        assert m.stack["net_step"] <= est.scratch_bytes + FRAME_SLACK, m.stack
    assert m.stack["net_predict"] <= est.ram_bytes + FRAME_SLACK, (m.stack, est)
    sizes = [int(n) for n in re.findall(r"^static const float \w+\[(\d+)\]", files["net.c"], re.M)]
    assert est.weight_bytes == 4 * sum(sizes)
    assert 0.5 <= m.sections[".text"] / est.code_bytes <= 1.5, (m.sections, est)
