"""Generated Python for BatchNorm, Embedding (token ids), RepeatVector, GlobalPool, TimeSlice
and the log_softmax activation: under CPython (-I -S) and MicroPython against the float64
reference (itself checked against Keras in tests/layers), the token-id API (bad ids raise,
Stream.step equals predict on every prefix), and Keras models run under MicroPython.

Every model of new_kinds_models() is rendered once and run in one subprocess per
interpreter (module-scoped fixture); the tests then check each model on its own.
"""

from __future__ import annotations

import numpy as np
import pytest
from support import (
    exec_without_fast_math,
    import_generated,
    imported_modules,
    literal_calls,
    model_inputs,
    module_level_names,
    python_jobs,
    require_tool,
    run_under_both,
    steps_reference,
)

from lstmgen.ir import (
    GRU,
    LAYER_TYPES,
    LSTM,
    Activation,
    BatchNorm,
    Bidirectional,
    Dense,
    Embedding,
    GlobalPool,
    Masking,
    Model,
    RepeatVector,
    SimpleRNN,
    TimeSlice,
)
from lstmgen.reference import forward
from lstmgen.targets import python as py_backend
from lstmgen.targets.python import runner as py_runner
from lstmgen.verify import error_metrics

TOLERANCE = 1e-5  # against Keras, |got - ref| / max(|ref|, 1)
REFERENCE_TOLERANCE = 1e-9  # against the float64 reference: both compute in double
NEW_KINDS = {"batch_norm", "embedding", "repeat_vector", "global_pool", "time_slice"}


def new_kinds_models() -> dict[str, Model]:
    """IR models (no Keras needed) of the new kinds in every role: BatchNorm on sequences
    and vectors with and without gamma/beta, Embedding with and without mask_zero (also
    streaming), autoencoders (RepeatVector), both global poolings with and without a mask,
    time slices (crop, last k, squeezed last step after a Bidirectional, a squeezed step
    counted from the start) and log_softmax on Dense and Activation."""
    rng = np.random.default_rng(41)

    def u(*shape, scale=0.6):
        return rng.uniform(-scale, scale, shape).astype(np.float32)

    def lstm(name, d, h, **kw):
        return LSTM(name, u(4 * h, d), u(4 * h, h), u(4 * h), **kw)

    def gru(name, d, h, **kw):
        return GRU(name, u(3 * h, d), u(3 * h, h), u(3 * h), u(3 * h), **kw)

    def rnn(name, d, h, **kw):
        return SimpleRNN(name, u(h, d), u(h, h), u(h), **kw)

    def bn(name, d, gamma=True, beta=True, epsilon=1e-3):
        return BatchNorm(
            name,
            u(d),
            rng.uniform(0.2, 2.0, d).astype(np.float32),
            u(d) + 1.0 if gamma else None,
            u(d) if beta else None,
            epsilon,
        )

    return {
        "batch_norm": Model(
            3,
            [
                bn("bn0", 3),
                lstm("l", 3, 4, return_sequences=True),
                bn("bn1", 4, gamma=False, epsilon=1e-2),
                gru("g", 4, 3),
                bn("bn2", 3, beta=False),
                Dense("d", u(2, 3), u(2), activation="log_softmax"),
            ],
        ),
        "embedding_stream": Model(
            1,
            [
                Embedding("emb", u(11, 4)),
                rnn("s", 4, 3, return_sequences=True),
                bn("bn", 3, gamma=False, beta=False),
                Activation("act", 3, "log_softmax"),
            ],
        ),
        "embedding_mask_last": Model(
            1,
            [Embedding("emb", u(9, 3), mask_zero=True), lstm("l", 3, 4), Dense("d", u(2, 4), u(2))],
        ),
        "embedding_mask_sequence": Model(
            1,
            [
                Embedding("emb", u(9, 3), mask_zero=True),
                gru("g", 3, 4, return_sequences=True),
                Dense("d", u(2, 4), u(2), activation="tanh"),
            ],
        ),
        "embedding_backwards_pool": Model(
            1,
            [
                Embedding("emb", u(6, 3), mask_zero=True),
                lstm("back", 3, 4, go_backwards=True, return_sequences=True),
                GlobalPool("avg", 4, "avg"),
                Dense("d", u(2, 4), u(2)),
            ],
        ),
        "autoencoder": Model(
            3,
            [
                lstm("enc", 3, 5),
                RepeatVector("rep", 5, 6),
                lstm("dec", 5, 4, return_sequences=True),
                Dense("out", u(3, 4), u(3)),
            ],
        ),
        "masked_autoencoder": Model(
            2,
            [
                Masking("mask", 2, 0.0),
                gru("enc", 2, 3, return_sequences=True),
                rnn("enc2", 3, 3),
                RepeatVector("rep", 3, 4),
                lstm("dec", 3, 2, return_sequences=True),
                GlobalPool("max", 2, "max"),
            ],
        ),
        "pool_masked": Model(
            3,
            [
                Masking("mask", 3, 0.0),
                lstm("l", 3, 4, return_sequences=True),
                GlobalPool("avg", 4, "avg"),
                bn("bn", 4),
            ],
        ),
        "pool_max_masked": Model(
            3,
            [
                Masking("mask", 3, 0.0),
                rnn("s", 3, 4, return_sequences=True),
                GlobalPool("mx", 4, "max"),
            ],
        ),
        "crop": Model(
            2,
            [
                lstm("l", 2, 3, return_sequences=True),
                TimeSlice("crop", 3, 2, -3),
                gru("g", 3, 2, return_sequences=True),
                TimeSlice("tail", 2, -2),
            ],
        ),
        "crop_masked": Model(
            2,
            [
                Masking("mask", 2, 0.0),
                lstm("l", 2, 3, return_sequences=True),
                TimeSlice("crop", 3, 1, None),
                GlobalPool("avg", 3, "avg"),
            ],
        ),
        "last_step_stream": Model(
            2,
            [
                rnn("s", 2, 4, return_sequences=True),
                TimeSlice("last", 4, -1, None, squeeze=True),
                Dense("d", u(3, 4), u(3), activation="softmax"),
            ],
        ),
        "bidirectional_last": Model(
            2,
            [
                Bidirectional(
                    "bi",
                    lstm("bi.f", 2, 3, return_sequences=True),
                    lstm("bi.b", 2, 3, return_sequences=True, go_backwards=True),
                ),
                TimeSlice("last", 6, -1, None, squeeze=True),
                Dense("d", u(2, 6), u(2)),
            ],
        ),
        "squeeze_from_start": Model(
            2,
            [gru("g", 2, 3, return_sequences=True), TimeSlice("third", 3, 2, 3, squeeze=True)],
        ),
    }


MODELS = new_kinds_models()


def new_kinds_inputs(model: Model, seed: int, t_len: int = 9) -> np.ndarray:
    """Four sequences: token ids (with padding 0 at the end, at the start, inside, and a
    sequence of padding only), or features (with Masking: masked steps likewise)."""
    rng = np.random.default_rng(seed)
    if model.token_vocabulary is not None:
        x = rng.integers(1, model.token_vocabulary, (4, t_len, 1)).astype(np.float32)
        padding = 0.0
    else:
        x = rng.standard_normal((4, t_len, model.input_size)).astype(np.float32)
        padding = model.layers[0].mask_value if model.layers[0].kind == "masking" else None
    if padding is not None and (model.token_vocabulary is None or model.layers[0].mask_zero):
        x[0, 6:] = padding
        x[1, :3] = padding
        x[2, 4:6] = padding
        x[3, :] = padding
    return x


def _lengths(model: Model) -> list[int]:
    shortest = py_backend.min_timesteps(model)
    return sorted({shortest, shortest + 1, 9})


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every model rendered, then run under CPython and MicroPython (default heap): predict
    at the shortest T it takes, one longer and 9, and Stream.step where streamable."""
    rendered = {key: py_backend.render(m, f"nk_{key}") for key, m in MODELS.items()}
    jobs = []
    for seed, (key, model) in enumerate(MODELS.items()):
        for t_len in _lengths(model):
            x = new_kinds_inputs(model, seed, t_len)
            jobs += python_jobs(model, rendered[key], f"nk_{key}", x)
    results = run_under_both(jobs, tmp_path_factory, "new_kinds")
    return rendered, jobs, results


def test_the_models_cover_every_new_kind_and_log_softmax():
    assert py_backend.LAYERS == set(LAYER_TYPES)  # a template for every IR kind
    kinds = set().union(*(m.kinds() for m in MODELS.values()))
    assert NEW_KINDS <= kinds <= py_backend.LAYERS
    activations = {getattr(l, "activation", None) for m in MODELS.values() for l in m.layers}
    assert "log_softmax" in activations
    assert {key for key, m in MODELS.items() if m.streamable} == {
        "batch_norm",
        "embedding_stream",
        "embedding_mask_last",
        "embedding_mask_sequence",
        "last_step_stream",
    }


@pytest.mark.parametrize("interpreter", ["cpython", "micropython"])
@pytest.mark.parametrize("key", sorted(MODELS))
def test_matches_the_reference(runs, key, interpreter):
    """predict() at every length, and Stream.step() after every timestep, against the
    float64 reference (on each prefix for the steps)."""
    _, jobs, results = runs
    if interpreter not in results:
        require_tool("micropython")
    checked = 0
    for job, got in zip(jobs, results[interpreter].outputs):
        if job.name != f"nk_{key}":
            continue
        expected = steps_reference(job.model, job.x) if job.steps else forward(job.model, job.x)
        assert got.shape == expected.shape, (job.x.shape, job.steps)
        # an all-masked sequence averages no timestep: NaN, as Keras gives
        assert np.array_equal(np.isnan(got), np.isnan(expected))
        _, rel = error_metrics(np.nan_to_num(got), np.nan_to_num(expected))
        assert rel.max() <= REFERENCE_TOLERANCE, (job.x.shape, job.steps, float(rel.max()))
        checked += 1
    assert checked == len(_lengths(MODELS[key])) * (2 if MODELS[key].streamable else 1)


@pytest.mark.parametrize("key", sorted(MODELS))
def test_fallback_kernels_under_cpython(key):
    """The MicroPython code path (no math.dist, log1p, expm1), run by CPython in-process."""
    model = MODELS[key]
    namespace = exec_without_fast_math(py_backend.render(model, "fb")["fb.py"])
    assert namespace["dist"] is None
    x = new_kinds_inputs(model, 7)
    got = np.array([namespace["predict"](seq) for seq in model_inputs(model, x)])
    expected = forward(model, x)
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    _, rel = error_metrics(np.nan_to_num(got), np.nan_to_num(expected))
    assert rel.max() <= REFERENCE_TOLERANCE


@pytest.mark.parametrize("key", sorted(MODELS))
def test_files_are_plain_deterministic_ascii(runs, key):
    rendered, _, _ = runs
    files = rendered[key]
    text = files[f"nk_{key}.py"]
    assert text.isascii()
    assert py_backend.render(MODELS[key], f"nk_{key}") == files
    assert imported_modules(text) <= {"math", "array"}
    names = module_level_names(text)
    assert len(names) == len(set(names))
    assert ("class Stream" in text) == MODELS[key].streamable


@pytest.mark.parametrize("key", sorted(MODELS))
def test_float_literals_are_the_ir_values_exactly(runs, key):
    """The Embedding tables and the BatchNorm vectors read back to the IR's float32 values,
    bit for bit."""
    rendered, _, _ = runs
    text = rendered[key][f"nk_{key}.py"]
    tables = literal_calls(text, "_table")
    vectors = literal_calls(text, "_vector")
    expected_tables, expected_vectors = [], []
    for layer in MODELS[key].layers:
        if isinstance(layer, Embedding):
            expected_tables.append(layer.weights)
        elif isinstance(layer, BatchNorm):
            expected_vectors += [layer.mean, layer.variance]
            expected_vectors += [a for a in (layer.gamma, layer.beta) if a is not None]
    found = [texts for parts in tables.values() for _, texts in parts]
    found += list(vectors.values())
    assert len(found) == len(expected_tables) + len(expected_vectors)
    for texts, array in zip(found, expected_tables + expected_vectors):
        got = np.array([float(t) for t in texts]).astype(np.float32)
        assert got.tobytes() == array.astype(np.float32).ravel().tobytes()


# ------------------------------------------------------------------- token ids --


@pytest.mark.parametrize(
    "bad",
    [11, -1, 1.5, "3", None, [1], float("nan"), float("inf"), 10**30],
    ids=repr,
)
@pytest.mark.parametrize("api", ["predict", "step"])
def test_a_bad_token_id_raises_value_error_naming_it(tmp_path, bad, api):
    model = MODELS["embedding_stream"]  # vocabulary 11
    module = import_generated(py_backend.render(model, "ids"), "ids", tmp_path)
    assert module.VOCABULARY == 11 and not hasattr(module, "INPUT_SIZE")
    with pytest.raises(ValueError, match=r"not a token id, an integer in \[0, 11\)") as error:
        if api == "predict":
            module.predict([1, 2, bad, 3])
        else:
            module.Stream().step(bad)
    assert repr(bad)[:20] in str(error.value)
    if api == "predict":
        assert "timestep 2" in str(error.value)


def test_token_ids_of_other_types_and_bad_sequences(tmp_path):
    model = MODELS["embedding_stream"]
    module = import_generated(py_backend.render(model, "ids2"), "ids2", tmp_path)
    ids = [3, 0, 10, 7]
    y = module.predict(ids)
    # whole floats, numpy integers and floats, and a tuple are the same ids
    assert module.predict([3.0, 0.0, 10.0, 7.0]) == y
    assert module.predict(np.array(ids, np.int64)) == y
    assert module.predict(np.array(ids, np.float32)) == y
    assert module.predict(tuple(ids)) == y
    x = np.array(ids, np.float32).reshape(1, -1, 1)
    _, rel = error_metrics(np.array([y]), forward(model, x))
    assert rel.max() <= REFERENCE_TOLERANCE
    for bad in ([], 5, "abc", None, b"\x01"):
        with pytest.raises(ValueError):
            module.predict(bad)


@pytest.mark.parametrize("key", sorted(k for k, m in MODELS.items() if m.streamable))
def test_stream_step_equals_predict_on_every_prefix(tmp_path, key):
    """In-process: step() after t inputs is predict() of those t inputs (for token ids and
    features alike), reset() starts over, a returned list is a copy, and with mask_zero
    the id 0 changes no state."""
    model = MODELS[key]
    module = import_generated(py_backend.render(model, f"s_{key}"), f"s_{key}", tmp_path)
    seq = model_inputs(model, new_kinds_inputs(model, 3))[2]
    stream = module.Stream()
    for _ in range(2):  # the second round after reset()
        for t, item in enumerate(seq):
            y = stream.step(item)
            expected = module.predict(seq[: t + 1])
            assert y == pytest.approx(
                expected[-1] if model.returns_sequences else expected, rel=1e-12, abs=1e-12
            ), t
            y[:] = [1e9] * len(y)  # a copy: changing it must not change the state
        stream.reset()
    if model.layers[0].kind == "embedding" and model.layers[0].mask_zero:
        stream, plain = module.Stream(), module.Stream()
        first = stream.step(0)
        expected = module.predict([0])
        assert first == (expected[-1] if model.returns_sequences else expected)
        for item in seq[:3]:
            assert stream.step(item) == plain.step(item)
        before = plain.step(seq[3])
        assert stream.step(seq[3]) == before and stream.step(0) == before


def test_padding_id_zero_at_the_end_keeps_the_result(tmp_path):
    """mask_zero: ids padded with 0 at the end give the unpadded sequence's result."""
    model = MODELS["embedding_mask_last"]
    module = import_generated(py_backend.render(model, "pad"), "pad", tmp_path)
    ids = [4, 1, 8, 2]
    assert module.predict(ids + [0, 0, 0]) == module.predict(ids)
    doc = module.__doc__
    assert "The id 0 is padding (mask_zero)" in doc and "VOCABULARY = 9" in doc


# ------------------------------------------------------------------- timesteps --


def test_too_short_sequences_are_refused_naming_min_timesteps(tmp_path):
    for key, need in (("crop", 6), ("squeeze_from_start", 3)):
        model = MODELS[key]
        assert py_backend.min_timesteps(model) == need
        module = import_generated(
            py_backend.render(model, f"short_{key}"), f"short_{key}", tmp_path
        )
        assert module.MIN_TIMESTEPS == need
        x = new_kinds_inputs(model, 1, need)[0].tolist()
        with pytest.raises(ValueError, match=f"at least {need} timesteps .MIN_TIMESTEPS"):
            module.predict(x[:-1])
        _, rel = error_metrics(
            np.array([module.predict(x)]), forward(model, np.array([x], np.float32))
        )
        assert rel.max() <= REFERENCE_TOLERANCE


def test_docstrings_say_how_timesteps_change_and_why_there_is_no_stream(runs):
    rendered, _, _ = runs
    doc = " ".join(rendered["crop"]["nk_crop.py"].split('"""')[1].split())
    assert 'TimeSlice "crop" [2:-3]: T -> max(0, T - 5)' in doc
    assert 'TimeSlice "tail" [-2:]: T -> min(T, 2)' in doc
    assert "a TimeSlice layer needs the whole sequence" in doc
    doc = " ".join(rendered["autoencoder"]["nk_autoencoder.py"].split('"""')[1].split())
    assert 'RepeatVector "rep": its one vector -> 6 timesteps' in doc
    assert "RepeatVector layer starts its timesteps only after the whole input sequence" in doc
    doc = " ".join(rendered["pool_masked"]["nk_pool_masked.py"].split('"""')[1].split())
    assert "global pooling needs the whole sequence" in doc


# ----------------------------------------------------------- Keras, MicroPython --


def test_keras_token_and_autoencoder_models_under_micropython(keras, tmp_path):
    """Keras models with the new kinds through the extractor, under CPython and
    MicroPython (predict, and Stream.step of the streamable one), against model.predict."""
    import lstmgen

    require_tool("micropython")
    micropython = py_runner.micropython_command()
    L = keras.layers
    specs = {
        "kemb": (
            (7,),
            [
                L.Embedding(12, 4, mask_zero=True),
                L.LSTM(5, return_sequences=True),
                L.BatchNormalization(),
                L.Dense(3, activation="softmax"),
            ],
        ),
        "kauto": (
            (6, 2),
            [
                L.GRU(4),
                L.RepeatVector(6),
                L.LSTM(3, return_sequences=True),
                L.Cropping1D((1, 2)),
                L.GlobalAveragePooling1D(),
            ],
        ),
    }
    rng = np.random.default_rng(51)
    jobs, expected = [], []
    for name, (shape, layers) in specs.items():
        ids = len(shape) == 1
        model = keras.Sequential([keras.Input(shape, dtype="int32" if ids else "float32"), *layers])
        for layer in model.layers:
            weights = [
                rng.uniform(-0.6, 0.6, w.shape).astype(np.float32) for w in layer.get_weights()
            ]
            if type(layer).__name__ == "BatchNormalization":
                weights[-1] = rng.uniform(0.3, 2.0, weights[-1].shape).astype(np.float32)
            layer.set_weights(weights)
        if ids:
            x = rng.integers(1, 12, (3, 7, 1)).astype(np.float32)
            x[0, 4:] = 0.0  # padding at the end
            x[1, :2] = 0.0  # and at the start
            want = model.predict(x[..., 0].astype(np.int32), verbose=0)
        else:
            x = rng.standard_normal((3, 6, 2)).astype(np.float32)
            want = model.predict(x, verbose=0)
        ir = lstmgen.load(model)
        files = py_backend.render(ir, name)
        jobs.append(py_runner.Job(ir, files, name, x))
        expected.append(want)
        if ir.streamable:  # returns sequences: the output of every step
            jobs.append(py_runner.Job(ir, files, name, x, steps=True))
            expected.append(want)
    assert [j.steps for j in jobs] == [False, True, False]
    for interpreter in (None, micropython):
        outputs = py_runner.run_batch(
            jobs, tmp_path / ("mp" if interpreter else "cp"), interpreter
        ).outputs
        for job, got, want in zip(jobs, outputs, expected):
            _, rel = error_metrics(got, want)
            assert rel.max() <= TOLERANCE, (job.name, job.steps, interpreter)
