"""Generated pure Python for the sequence-shaping layers (Masking, Normalize, LayerNorm,
Flatten, Conv1D, Pool1D) under CPython and MicroPython against the float64 reference:
masked steps, every padding mode, the shortest input each model takes, docstrings.
"""

from __future__ import annotations

import numpy as np
import pytest
from support import (
    exec_without_fast_math,
    import_generated,
    imported_modules,
    literal_calls,
    missing,
    module_level_names,
    other_cpythons,
    python_jobs,
    require_tool,
    run_under_both,
    steps_reference,
)

from lstmgen.ir import (
    GRU,
    LSTM,
    Bidirectional,
    Conv1D,
    Dense,
    Flatten,
    LayerNorm,
    Masking,
    Model,
    Normalize,
    Pool1D,
    SimpleRNN,
)
from lstmgen.reference import forward
from lstmgen.targets import python as py_backend
from lstmgen.targets.python import runner as py_runner
from lstmgen.verify import error_metrics

REFERENCE_TOLERANCE = 1e-9  # against the float64 reference: both compute in double


def _shaping_models() -> dict[str, Model]:
    """IR models (no Keras needed) of the sequence-shaping layers: Masking in front of
    every recurrent kind (forward, go_backwards, Bidirectional, initial state), Normalize,
    LayerNorm with and without gamma/beta on sequences and on vectors, Flatten, Conv1D
    with every padding, strides and dilations, odd and even kernels, with and without
    bias, and both poolings with both paddings."""
    rng = np.random.default_rng(21)

    def u(*shape, scale=0.6):
        return rng.uniform(-scale, scale, shape).astype(np.float32)

    def lstm(name, d, h, p=None, **kw):
        return LSTM(
            name,
            u(4 * h, d),
            u(4 * h, p or h),
            u(4 * h),
            projection=None if p is None else u(p, h),
            **kw,
        )

    def gru(name, d, h, **kw):
        return GRU(name, u(3 * h, d), u(3 * h, h), u(3 * h), u(3 * h), **kw)

    def rnn(name, d, h, **kw):
        return SimpleRNN(name, u(h, d), u(h, h), u(h), **kw)

    def conv(name, f, k, d, bias=True, **kw):
        return Conv1D(name, u(f, k, d), u(f) if bias else None, **kw)

    def norm(name, d):
        return Normalize(name, u(d, scale=2.0), rng.uniform(0.3, 3.0, d).astype(np.float32))

    return {
        "mask_sequence": Model(
            3,
            [
                Masking("mask", 3, 0.0),
                norm("norm", 3),
                lstm("l1", 3, 4, return_sequences=True),
                LayerNorm("ln", 4, u(4), u(4), epsilon=1e-3),
                Dense("d", u(2, 4), u(2)),
            ],
        ),
        "mask_last": Model(
            3,
            [
                Masking("mask", 3, -1.0),
                gru("g", 3, 5, return_sequences=True),
                rnn("s", 5, 3, activation="relu"),
                LayerNorm("ln", 3, None, None, epsilon=0.01),
                Dense("d", u(2, 3), u(2), activation="softmax"),
            ],
        ),
        "mask_backwards": Model(
            3,
            [
                Masking("mask", 3, 0.5),
                lstm("back", 3, 3, go_backwards=True, return_sequences=True),
                Bidirectional(
                    "bi",
                    gru("bi.f", 3, 2, return_sequences=True),
                    gru("bi.b", 3, 2, return_sequences=True, go_backwards=True),
                ),
                Bidirectional(
                    "bi2",
                    rnn("bi2.f", 4, 2),
                    rnn("bi2.b", 4, 2, go_backwards=True),
                    merge_mode="ave",
                ),
            ],
        ),
        "mask_initial_state": Model(
            3,
            [
                Masking("mask", 3, 0.0),
                lstm(
                    "p",
                    3,
                    4,
                    p=2,
                    initial_h=u(2),
                    initial_c=u(4),
                    peephole=u(3, 4),
                    return_sequences=True,
                ),
            ],
        ),
        "mask_flatten": Model(
            3,
            [
                Masking("mask", 3, 0.0),
                lstm("l", 3, 2, return_sequences=True),
                Flatten("flat", 9, 2),
                Dense("d", u(2, 18), u(2)),
            ],
            timesteps=9,
        ),
        "layer_norm_vector": Model(
            2,
            [
                LayerNorm("ln0", 2, u(2), None),
                lstm("l", 2, 5),
                LayerNorm("ln1", 5, None, u(5), epsilon=1e-5),
                Dense("d", u(3, 5), None),
                LayerNorm("ln2", 3, u(3), u(3)),
            ],
        ),
        "conv_valid_max": Model(
            3,
            [
                conv("c", 4, 3, 3, activation="relu"),
                Pool1D("p", 4, "max", pool_size=2, stride=2, padding="valid"),
                lstm("l", 4, 3),
            ],
        ),
        "conv_same_stride_avg": Model(
            2,
            [
                conv("c", 3, 4, 2, stride=3, padding="same", activation="tanh"),
                Pool1D("p", 3, "avg", pool_size=3, stride=2, padding="same"),
                gru("g", 3, 2, return_sequences=True),
            ],
        ),
        "conv_causal_dilated": Model(
            2,
            [
                conv(
                    "c",
                    3,
                    3,
                    2,
                    bias=False,
                    stride=2,
                    dilation=2,
                    padding="causal",
                    activation="elu",
                ),
                Pool1D("p", 3, "max", pool_size=3, stride=1, padding="same"),
                rnn("s", 3, 2, return_sequences=True),
                Dense("d", u(1, 2), u(1)),
            ],
        ),
        "conv_same_dilated": Model(
            2,
            [
                norm("norm", 2),
                conv("c1", 3, 3, 2, dilation=3, padding="same", activation="softplus"),
                conv("c2", 2, 2, 3, stride=2, padding="valid"),
                Pool1D("p", 2, "avg", pool_size=2, stride=1, padding="valid"),
                lstm("l", 2, 3),
                Dense("d", u(2, 3), u(2)),
            ],
        ),
        "conv_flatten": Model(
            2,
            [
                conv("c", 3, 2, 2, padding="valid", stride=2),
                gru("g", 3, 2, return_sequences=True),
                Flatten("flat", 4, 2),
                Dense("d", u(2, 8), u(2), activation="sigmoid"),
            ],
            timesteps=9,
        ),
    }


def _shaping_inputs(model: Model, seed: int, t_len: int = 9) -> np.ndarray:
    """Four sequences; with Masking: masked steps at the end, at the start, in the middle
    and a fully masked sequence."""
    x = np.random.default_rng(seed).standard_normal((4, t_len, model.input_size)).astype(np.float32)
    if model.layers[0].kind == "masking":
        value = model.layers[0].mask_value
        x[0, 6:] = value
        x[1, :3] = value
        x[2, 2:3] = value
        x[2, 4:6] = value
        x[3, :] = value
    return x


KEYS = list(_shaping_models())


@pytest.fixture(scope="module")
def shaping_runs(tmp_path_factory):
    """Every _shaping_models() model rendered, then run by CPython and MicroPython
    (predict, and Stream.step where streamable); models without Flatten also at the
    shortest T they take and at a longer T. One subprocess per interpreter."""
    models = _shaping_models()
    rendered = {key: py_backend.render(m, f"sh_{key}") for key, m in models.items()}
    jobs = []
    for seed, (key, model) in enumerate(models.items()):
        shortest = py_backend.min_timesteps(model)
        lengths = [9] if model.timesteps else sorted({shortest, shortest + 1, 9, 17})
        for t_len in lengths:
            x = _shaping_inputs(model, seed, t_len)
            jobs += python_jobs(model, rendered[key], f"sh_{key}", x)
    runs = run_under_both(jobs, tmp_path_factory, "shaping")
    return models, rendered, jobs, runs


@pytest.mark.parametrize("interpreter", ["cpython", "micropython"])
@pytest.mark.parametrize("key", KEYS)
def test_shaping_layers_match_the_reference(shaping_runs, key, interpreter):
    """predict() at every length and Stream.step() under CPython and MicroPython (default
    heap) against the float64 reference, masked steps and every padding mode included."""
    models, rendered, jobs, runs = shaping_runs
    if interpreter not in runs:
        require_tool("micropython")
    checked = 0
    for job, got in zip(jobs, runs[interpreter].outputs):
        if job.name == f"sh_{key}":
            expected = steps_reference(job.model, job.x) if job.steps else forward(job.model, job.x)
            assert got.shape == expected.shape, (job.x.shape, job.steps)
            _, rel = error_metrics(got, expected)
            assert rel.max() <= REFERENCE_TOLERANCE, (job.x.shape, job.steps, float(rel.max()))
            checked += 1
    assert checked >= 1
    assert ("class Stream" in rendered[key][f"sh_{key}.py"]) == models[key].streamable


def test_which_models_stream_and_the_lengths_run(shaping_runs):
    _, _, jobs, _ = shaping_runs
    assert {job.name for job in jobs if job.steps} == {
        "sh_mask_sequence",
        "sh_mask_last",
        "sh_mask_initial_state",
        "sh_layer_norm_vector",
    }
    # the runs reached an output of one timestep and a valid convolution's shortest input
    lengths = {(job.name, job.model.output_timesteps(job.x.shape[1])) for job in jobs}
    assert ("sh_conv_valid_max", 1) in lengths and ("sh_conv_same_dilated", 1) in lengths


@pytest.mark.parametrize("key", KEYS)
def test_shaping_layers_fallback_kernels_under_cpython(key):
    """The MicroPython code path (no math.dist) of every _shaping_models() model."""
    model = _shaping_models()[key]
    namespace = exec_without_fast_math(py_backend.render(model, "fb")["fb.py"])
    assert namespace["dist"] is None
    x = _shaping_inputs(model, KEYS.index(key))
    got = np.array([namespace["predict"](seq.tolist()) for seq in x])
    _, rel = error_metrics(got, forward(model, x))
    assert rel.max() <= REFERENCE_TOLERANCE


@pytest.mark.parametrize("key", KEYS)
def test_shaping_files_are_plain_deterministic_ascii(shaping_runs, key):
    models, rendered, _, _ = shaping_runs
    files = rendered[key]
    text = files[f"sh_{key}.py"]
    assert text.isascii()
    assert py_backend.render(models[key], f"sh_{key}") == files
    assert imported_modules(text) <= {"math", "array"}
    names = module_level_names(text)
    assert len(names) == len(set(names))


@pytest.mark.parametrize("key", KEYS)
def test_shaping_float_literals_are_the_ir_values_exactly(shaping_runs, key):
    """Conv1D matrices [W[f] flattened, bias[f]] and the Normalize/LayerNorm vectors read
    back to the IR's float32 values, bit for bit."""
    models, rendered, _, _ = shaping_runs
    text = rendered[key][f"sh_{key}.py"]
    matrices = literal_calls(text, "_matrix")
    vectors = literal_calls(text, "_vector")
    expected_vectors = []
    for layer in models[key].layers:
        if isinstance(layer, Conv1D):
            parts = matrices[f"_{layer.name.upper()}"]
            f, k, d = layer.weights.shape
            assert [w for w, _ in parts] == [k * d, 1]
            for array, (_, texts) in zip([layer.weights, layer.bias], parts):
                if array is None:
                    assert texts is None
                    continue
                got = np.array([float(t) for t in texts]).astype(np.float32)
                assert got.tobytes() == array.ravel().tobytes(), layer.name
        elif isinstance(layer, Normalize):
            expected_vectors += [layer.mean, layer.std]
        elif isinstance(layer, LayerNorm):
            expected_vectors += [a for a in (layer.gamma, layer.beta) if a is not None]
    assert len(vectors) == len(expected_vectors)
    for texts, array in zip(vectors.values(), expected_vectors):
        got = np.array([float(t) for t in texts]).astype(np.float32)
        assert got.tobytes() == array.tobytes()


@pytest.mark.parametrize("key", ["mask_sequence", "mask_last", "mask_initial_state"])
def test_masked_stream_steps_keep_the_state(tmp_path, key):
    """Stream.step() of a masked row returns the previous output and changes no state:
    the steps after it equal a stream that never saw it; a masked first row gives what
    predict() gives for that row alone; predict of a sequence padded at the end equals
    predict of the sequence (exactly); every returned list is a copy."""
    model = _shaping_models()[key]
    module = import_generated(py_backend.render(model, f"ms_{key}"), f"ms_{key}", tmp_path)
    value = model.layers[0].mask_value
    masked = [value] * model.input_size
    seq = np.random.default_rng(5).standard_normal((5, model.input_size)).tolist()
    seq[2] = list(masked)  # a hole in the middle
    for t_hole in range(len(seq)):
        assert module._is_real(seq[t_hole]) == (t_hole != 2)
    stream, plain = module.Stream(), module.Stream()
    first = stream.step(masked)
    last = predict = module.predict([masked])
    assert first == (predict[-1] if model.returns_sequences else predict), key
    for t, row in enumerate(seq):
        y = stream.step(row)
        if t == 2:
            assert y == last, key  # the previous output, again
            y[:] = [1e9] * len(y)  # a copy: changing it changes nothing
            continue
        assert y == plain.step(row), (key, t)
        last = y
    full = module.predict(seq)
    padded = module.predict(seq + [list(masked)] * 3)
    if model.returns_sequences:
        assert padded[: len(seq)] == full and padded[len(seq) :] == [full[-1]] * 3, key
    else:
        assert padded == full, key
    # all masked: the recurrent layers give zeros (not the initial state)
    expected = forward(model, np.full((1, 4, model.input_size), value, np.float32))[0]
    got = module.predict([list(masked)] * 4)
    assert np.allclose(got, expected, rtol=0, atol=1e-12), key


def test_short_and_wrong_length_sequences_are_refused(tmp_path):
    """A sequence too short for the Conv1D/pooling windows, or not of the length a Flatten
    layer needs, is a ValueError naming the limit; the shortest allowed one runs."""
    models = _shaping_models()
    model = models["conv_same_dilated"]  # valid conv (span 2, stride 2), valid pool of 2
    assert py_backend.min_timesteps(model) == 4
    assert model.output_timesteps(3) == 0 and model.output_timesteps(4) == 1
    module = import_generated(py_backend.render(model, "too_short"), "too_short", tmp_path)
    assert module.MIN_TIMESTEPS == 4
    x = _shaping_inputs(model, 1, 4)
    for t_len in (1, 3):
        with pytest.raises(ValueError, match="at least 4 timesteps"):
            module.predict(x[0, :t_len].tolist())
    _, rel = error_metrics(np.array([module.predict(x[0].tolist())]), forward(model, x[:1]))
    assert rel.max() <= REFERENCE_TOLERANCE
    assert "MIN_TIMESTEPS (4)" in module.__doc__
    for key in ("conv_flatten", "mask_flatten"):
        model = models[key]
        module = import_generated(py_backend.render(model, f"fl_{key}"), f"fl_{key}", tmp_path)
        assert module.TIMESTEPS == 9 and not hasattr(module, "Stream")
        x = _shaping_inputs(model, 2)[0].tolist()
        for bad in (x[:8], x + x[:1]):
            with pytest.raises(ValueError, match="exactly 9 timesteps"):
                module.predict(bad)
    # same and causal padding give an output for any T >= 1: no limit
    for key in ("conv_same_stride_avg", "conv_causal_dilated"):
        assert py_backend.min_timesteps(models[key]) == 1
        text = py_backend.render(models[key], "any")["any.py"]
        assert "MIN_TIMESTEPS = 1" in text and "if len(y) < MIN_TIMESTEPS" not in text


def test_shaping_docstrings(shaping_runs):
    """Masking models document variable-length input; windowed models say why they have
    no Stream and how T changes."""
    models, rendered, _, _ = shaping_runs
    masked = rendered["mask_last"]["sh_mask_last.py"]
    doc = masked.split('"""')[1]
    assert "Variable-length sequences (Masking, MASK_VALUE = -1.0)" in doc
    assert "predict() takes sequences of any length" in doc
    assert "Stream.step() of a masked row leaves the state unchanged" in doc
    assert "MASK_VALUE = -1.0\n" in masked
    doc = rendered["conv_valid_max"]["sh_conv_valid_max.py"].split('"""')[1]
    assert "no streaming class: Conv1D and pooling layers need a window" in " ".join(doc.split())
    assert 'Conv1D "c" (window of 3 steps), valid padding: T -> max(0, (T - 3) // 1 + 1)' in doc
    doc = rendered["mask_backwards"]["sh_mask_backwards.py"].split('"""')[1]
    assert "Stream.step()" not in doc and "no streaming class" in doc


def test_shaping_under_the_oldest_other_cpython(tmp_path):
    """The shaping models under the oldest other CPython >= 3.8 installed here, if any."""
    found = other_cpythons()
    if not found:
        missing("another CPython >= 3.8 (pyenv)")
    models = _shaping_models()
    jobs = [
        py_runner.Job(m, py_backend.render(m, f"o_{key}"), f"o_{key}", _shaping_inputs(m, k))
        for k, (key, m) in enumerate(models.items())
    ]
    outputs = py_runner.run_batch(jobs, tmp_path, [found[0], "-I", "-S"]).outputs
    for job, got in zip(jobs, outputs):
        _, rel = error_metrics(got, forward(job.model, job.x))
        assert rel.max() <= REFERENCE_TOLERANCE, (found[0], job.name)


def test_awkward_names_in_shaping_layers(tmp_path):
    """Names with quotes, backslashes and newlines on the shaping layers stay comments."""
    rng = np.random.default_rng(8)

    def u(*shape):
        return rng.uniform(-0.5, 0.5, shape).astype(np.float32)

    models = [
        Model(
            2,
            [
                Conv1D('c"""\\ 1\nx', u(3, 2, 2), u(3)),
                Pool1D("p'''\\", 3, "max", 2, 1, "same"),
                LSTM("l", u(8, 3), u(8, 2), u(8), return_sequences=True),
                Flatten('f"', 4, 2),
                Dense("d", u(1, 8), u(1)),
            ],
            timesteps=5,
        ),
        Model(
            2,
            [
                Masking('m"""', 2, 0.0),
                Normalize('n\\"', u(2), u(2) + 1.0),
                LayerNorm("ln'''\n", 2, u(2), u(2)),
                LSTM("l", u(8, 2), u(8, 2), u(8)),
            ],
        ),
    ]
    x = rng.standard_normal((1, 5, 2)).astype(np.float32)
    for k, model in enumerate(models):
        module = import_generated(
            py_backend.render(model.validate(), f"odd{k}"), f"odd{k}", tmp_path
        )
        _, rel = error_metrics(np.array([module.predict(x[0].tolist())]), forward(model, x))
        assert rel.max() <= REFERENCE_TOLERANCE
