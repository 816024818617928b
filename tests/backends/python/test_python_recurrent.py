"""Generated pure Python for GRU (both variants), SimpleRNN, Bidirectional and LSTM
projections, under CPython and MicroPython against the float64 reference and Keras: the
streams, the exact literals of every matrix, names that could collide.
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

from lstmgen.ir import GRU, LSTM, Activation, Bidirectional, Dense, Model, SimpleRNN
from lstmgen.reference import forward
from lstmgen.targets import python as py_backend
from lstmgen.targets.python import runner as py_runner
from lstmgen.verify import error_metrics

TOLERANCE = 1e-5  # max relative error against Keras, |got - ref| / max(|ref|, 1)
REFERENCE_TOLERANCE = 1e-9  # against the float64 reference: both compute in double


@pytest.fixture(scope="module")
def micropython():
    require_tool("micropython")
    return py_runner.micropython_command()


def _kinds_models() -> dict[str, Model]:
    """IR models (no Keras needed) of the other recurrent kinds: both GRU variants with and
    without biases, SimpleRNN, Bidirectional over every inner kind with every merge mode,
    stacked, with and without return_sequences, and LSTM projections (with the other
    optional features too)."""
    rng = np.random.default_rng(11)

    def u(*shape, scale=0.6):
        return rng.uniform(-scale, scale, shape).astype(np.float32)

    def gru(name, d, h, reset_after=True, bias=True, recurrent_bias=True, **kw):
        return GRU(
            name,
            u(3 * h, d),
            u(3 * h, h),
            u(3 * h) if bias else None,
            u(3 * h) if reset_after and recurrent_bias else None,
            reset_after=reset_after,
            **kw,
        )

    def rnn(name, d, h, bias=True, **kw):
        return SimpleRNN(name, u(h, d), u(h, h), u(h) if bias else None, **kw)

    def lstm(name, d, h, p=None, **kw):
        return LSTM(
            name,
            u(4 * h, d),
            u(4 * h, p or h),
            u(4 * h),
            projection=None if p is None else u(p, h),
            **kw,
        )

    def bi(name, make, d, h, merge="concat", sequences=True, **kw):
        return Bidirectional(
            name,
            make(f"{name}.forward", d, h, return_sequences=sequences, **kw),
            make(f"{name}.backward", d, h, return_sequences=sequences, go_backwards=True, **kw),
            merge_mode=merge,
        )

    # o gate = hard_sigmoid(-100) = 0 at every step: the projected vector m is all zeros
    closed = lstm(
        "closed",
        3,
        4,
        p=2,
        gate_activation="hard_sigmoid_0.2",
        output_activation="relu",
        return_sequences=True,
    )
    closed.bias[12:] = -100.0
    return {
        "gru_after": Model(
            3,
            [
                gru("g1", 3, 7, return_sequences=True),
                gru("g2", 7, 4, recurrent_bias=False),
                Dense("head", u(2, 4), u(2), activation="softmax"),
            ],
        ),
        "gru_before": Model(
            4,
            [
                gru(
                    "g1",
                    4,
                    5,
                    reset_after=False,
                    return_sequences=True,
                    gate_activation="hard_sigmoid_0.2",
                    cell_activation="relu",
                ),
                gru(
                    "g2",
                    5,
                    3,
                    reset_after=False,
                    bias=False,
                    return_sequences=True,
                    cell_activation="elu",
                ),
            ],
        ),
        "gru_backwards": Model(
            2,
            [
                gru(
                    "g1",
                    2,
                    4,
                    bias=False,
                    go_backwards=True,
                    return_sequences=True,
                    gate_activation="softsign",
                    cell_activation="softplus",
                ),
                gru("g2", 4, 3, reset_after=False, go_backwards=True),
            ],
        ),
        "simple_rnn": Model(
            3,
            [
                rnn("s1", 3, 6, activation="relu", return_sequences=True),
                rnn("s2", 6, 3, bias=False, activation="linear"),
                Activation("act", 3, "tanh"),
            ],
        ),
        "simple_rnn_seq": Model(
            2,
            [
                rnn("s1", 2, 5, activation="softsign", return_sequences=True),
                Dense("d", u(2, 5), None, activation="elu"),
            ],
        ),
        "bi_stacked": Model(
            4,
            [bi("b1", lstm, 4, 3), bi("b2", gru, 6, 2, "ave", False), Dense("head", u(1, 2), None)],
        ),
        "bi_merges": Model(
            3,
            [
                bi("b1", rnn, 3, 4, "mul", activation="tanh"),
                bi("b2", gru, 4, 3, "sum", reset_after=False),
                bi("b3", gru, 3, 2, "concat", False),
            ],
        ),
        "bi_after_backwards": Model(
            2,
            [
                gru("g", 2, 3, go_backwards=True, return_sequences=True),
                bi("b", rnn, 3, 2, "sum", False, bias=False),
                Dense("d", u(2, 2), u(2)),
            ],
        ),
        "bi_projection": Model(
            3,
            [
                bi("b", lstm, 3, 5, "concat", True, p=2),
                bi("c", lstm, 4, 3, "mul", False, p=1, peephole=u(3, 3), clip=2.5),
            ],
        ),
        "projection": Model(
            3,
            [
                lstm("p1", 3, 6, p=2, return_sequences=True),
                lstm(
                    "p2",
                    2,
                    5,
                    p=3,
                    peephole=u(3, 5),
                    clip=1.0,
                    input_forget=True,
                    initial_h=u(3),
                    initial_c=u(5),
                    return_sequences=True,
                ),
                lstm("p3", 3, 4, p=2, initial_c=u(4)),
            ],
        ),
        "projection_closed": Model(3, [closed, Dense("d", u(2, 2), u(2))]),
    }


def _kinds_inputs(model: Model, seed: int) -> np.ndarray:
    return (
        np.random.default_rng(seed).standard_normal((3, 6, model.input_size)).astype(np.float32) * 2
    )


KEYS = list(_kinds_models())


@pytest.fixture(scope="module")
def kinds_runs(tmp_path_factory):
    """Every _kinds_models() model rendered, then run by CPython and MicroPython (predict,
    and Stream.step where streamable), one subprocess each."""
    models = _kinds_models()
    rendered = {key: py_backend.render(m, f"k_{key}") for key, m in models.items()}
    jobs = []
    for seed, (key, model) in enumerate(models.items()):
        x = _kinds_inputs(model, seed)
        jobs += python_jobs(model, rendered[key], f"k_{key}", x)
    runs = run_under_both(jobs, tmp_path_factory, "kinds")
    return models, rendered, jobs, runs


@pytest.mark.parametrize("interpreter", ["cpython", "micropython"])
@pytest.mark.parametrize("key", KEYS)
def test_other_kinds_match_the_reference(kinds_runs, key, interpreter):
    """predict() and Stream.step() under CPython and MicroPython (default heap) against
    the float64 reference."""
    models, rendered, jobs, runs = kinds_runs
    if interpreter not in runs:
        require_tool("micropython")
    checked = 0
    for job, got in zip(jobs, runs[interpreter].outputs):
        if job.name == f"k_{key}":
            expected = steps_reference(job.model, job.x) if job.steps else forward(job.model, job.x)
            _, rel = error_metrics(got, expected)
            assert rel.max() <= REFERENCE_TOLERANCE, (job.steps, float(rel.max()))
            checked += 1
    assert checked == (2 if models[key].streamable else 1)
    assert ("class Stream" in rendered[key][f"k_{key}.py"]) == models[key].streamable


def test_which_models_stream(kinds_runs):
    _, _, jobs, _ = kinds_runs
    # every GRU variant and the SimpleRNN stream; no Bidirectional or go_backwards model does
    assert {job.name for job in jobs if job.steps} == {
        "k_gru_after",
        "k_gru_before",
        "k_simple_rnn",
        "k_simple_rnn_seq",
        "k_projection",
        "k_projection_closed",
    }


@pytest.mark.parametrize("key", KEYS)
def test_other_kinds_fallback_kernels_under_cpython(key):
    """The MicroPython code path of every _kinds_models() model, in-process."""
    model = _kinds_models()[key]
    namespace = exec_without_fast_math(py_backend.render(model, "fb")["fb.py"])
    assert namespace["dist"] is None
    x = _kinds_inputs(model, KEYS.index(key))
    got = np.array([namespace["predict"](seq.tolist()) for seq in x])
    _, rel = error_metrics(got, forward(model, x))
    assert rel.max() <= REFERENCE_TOLERANCE


@pytest.mark.parametrize("key", KEYS)
def test_other_kinds_files_are_plain_deterministic_ascii(kinds_runs, key):
    models, rendered, _, _ = kinds_runs
    files = rendered[key]
    text = files[f"k_{key}.py"]
    assert text.isascii()
    assert py_backend.render(models[key], f"k_{key}") == files
    assert imported_modules(text) <= {"math", "array"}


def _expected_matrices(layer) -> list[list[np.ndarray | None]]:
    """The parts of the matrices a recurrent layer becomes (see lstmgen.targets.python)."""
    if isinstance(layer, Bidirectional):
        return _expected_matrices(layer.forward) + _expected_matrices(layer.backward)
    w, u, b = layer.input_weights, layer.recurrent_weights, layer.bias
    if isinstance(layer, GRU) and layer.reset_after:
        return [[w, b], [u, layer.recurrent_bias]]
    if isinstance(layer, GRU):
        h2 = 2 * layer.units
        cut = lambda a, rows: None if a is None else a[rows]  # noqa: E731
        return [[w[:h2], u[:h2], cut(b, slice(0, h2))], [w[h2:], u[h2:], cut(b, slice(h2, None))]]
    matrices = [[w, u, b]]
    if isinstance(layer, LSTM) and layer.projection is not None:
        matrices.append([layer.projection, None])  # the zero column
    return matrices


@pytest.mark.parametrize("key", KEYS)
def test_other_kinds_float_literals_are_the_ir_weights_exactly(kinds_runs, key):
    models, rendered, _, _ = kinds_runs
    found = list(literal_calls(rendered[key][f"k_{key}.py"], "_matrix").values())
    expected = []
    for layer in models[key].layers:
        expected += (
            [[layer.weights, layer.bias]]
            if isinstance(layer, Dense)
            else []
            if isinstance(layer, Activation)
            else _expected_matrices(layer)
        )
    assert len(found) == len(expected)
    for parts, arrays in zip(found, expected):
        assert len(parts) == len(arrays)
        for array, (width, texts) in zip(arrays, parts):
            if array is None:
                assert texts is None and width == 1
                continue
            assert width == (array.shape[1] if array.ndim == 2 else 1)
            got = np.array([float(t) for t in texts], np.float64).astype(np.float32)
            assert got.tobytes() == array.ravel().tobytes()


@pytest.mark.parametrize("key", ["gru_after", "gru_before", "simple_rnn_seq"])
def test_stream_of_gru_and_simple_rnn_modules(tmp_path, key):
    """Stream in-process: step() after t rows is predict() of those rows, reset() starts
    over, and the returned list is a copy of the state."""
    model = _kinds_models()[key]
    module = import_generated(py_backend.render(model, f"s_{key}"), f"s_{key}", tmp_path)
    seq = _kinds_inputs(model, 3)[0].tolist()
    for _ in range(2):  # the second round after reset()
        stream = module.Stream()
        outputs = [stream.step(row) for row in seq]
        for t, y in enumerate(outputs):
            expected = module.predict(seq[: t + 1])
            assert y == pytest.approx(
                expected[-1] if model.returns_sequences else expected, rel=1e-12, abs=1e-12
            ), t
        stream.reset()
    if model.layers[-1].recurrent:  # changing the output must not change the state
        stream = module.Stream()
        first = stream.step(seq[0])
        first[:] = [1e6] * len(first)
        expected = module.predict(seq[:2])
        assert stream.step(seq[1]) == pytest.approx(
            expected[-1] if model.returns_sequences else expected, rel=1e-12, abs=1e-12
        )


def test_other_kinds_under_other_cpython_versions(tmp_path):
    """A GRU, a Bidirectional and a projection model under every other CPython >= 3.8
    installed here (pyenv), if any."""
    found = other_cpythons()
    if not found:
        missing("another CPython >= 3.8 (pyenv)")
    models = _kinds_models()
    kinds = [
        (key, models[key], _kinds_inputs(models[key], KEYS.index(key)))
        for key in ("gru_before", "bi_merges", "projection")
    ]
    jobs = [
        py_runner.Job(m, py_backend.render(m, f"k_{key}"), f"k_{key}", x) for key, m, x in kinds
    ]
    for python in found:
        outputs = py_runner.run_batch(
            jobs, tmp_path / python.replace("/", "_"), [python, "-I", "-S"]
        ).outputs
        for (key, model, x), got in zip(kinds, outputs):
            _, rel = error_metrics(got, forward(model, x))
            assert rel.max() <= REFERENCE_TOLERANCE, (python, key)


def test_keras_gru_and_bidirectional_under_micropython(keras, micropython, tmp_path):
    """Keras models through the extractor: a GRU/SimpleRNN stack run by Stream.step, and
    a Bidirectional model, under CPython and MicroPython, against model.predict."""
    import lstmgen

    L = keras.layers
    specs = {
        "kgru": (
            7,
            3,
            [
                L.GRU(6, return_sequences=True),
                L.GRU(
                    4, reset_after=False, return_sequences=True, recurrent_activation="hard_sigmoid"
                ),
                L.SimpleRNN(3, activation="relu", return_sequences=True),
            ],
        ),
        "kbi": (
            6,
            4,
            [
                L.Bidirectional(L.GRU(5, return_sequences=True)),
                L.Bidirectional(L.LSTM(3), merge_mode="ave"),
                L.Dense(2, activation="softmax"),
            ],
        ),
    }
    jobs, expected = [], []
    for n, (name, (t_len, d, layers)) in enumerate(specs.items()):
        model = keras.Sequential([keras.Input((t_len, d)), *layers])
        rng = np.random.default_rng(40 + n)
        for layer in model.layers:
            layer.set_weights(
                [rng.uniform(-0.6, 0.6, w.shape).astype(np.float32) for w in layer.get_weights()]
            )
        x = rng.standard_normal((2, t_len, d)).astype(np.float32)
        ir = lstmgen.load(model)
        files = py_backend.render(ir, name)
        jobs.append(py_runner.Job(ir, files, name, x))
        expected.append(model.predict(x, verbose=0))
        if ir.streamable:
            jobs.append(py_runner.Job(ir, files, name, x, steps=True))
            expected.append(expected[-1])  # returns sequences: the output of every step
    assert [j.steps for j in jobs] == [False, True, False]
    for interpreter in (None, micropython):
        outputs = py_runner.run_batch(
            jobs, tmp_path / ("mp" if interpreter else "cp"), interpreter
        ).outputs
        for job, got, want in zip(jobs, outputs, expected):
            _, rel = error_metrics(got, want)
            assert rel.max() <= TOLERANCE, (job.name, job.steps, interpreter)


def test_generated_names_never_collide(tmp_path):
    """Layers named like another layer's helper names (its Bidirectional halves, its
    peephole or initial-state constants, its GRU's second matrix) keep their own."""
    rng = np.random.default_rng(2)

    def u(*shape):
        return rng.uniform(-0.6, 0.6, shape).astype(np.float32)

    layers = [
        LSTM(
            "a",
            u(8, 2),
            u(8, 2),
            u(8),
            return_sequences=True,
            peephole=u(3, 2),
            initial_h=u(2),
            initial_c=u(2),
        ),
        Dense("a_peep_i", u(2, 2), u(2)),
        Dense("a h0", u(2, 2), u(2)),
        GRU("g", u(6, 2), u(6, 2), u(6), u(6), return_sequences=True),
        Dense("g r", u(2, 2), u(2)),
        Bidirectional(
            "b",
            GRU("b_f", u(6, 2), u(6, 2), u(6), None, return_sequences=True),
            GRU("b", u(6, 2), u(6, 2), u(6), None, return_sequences=True, go_backwards=True),
        ),
        Dense("b_f", u(2, 4), u(2)),
        Dense("b_2", u(2, 2), u(2)),
        SimpleRNN("b.backward", u(2, 2), u(2, 2), u(2)),
    ]
    model = Model(2, layers, name="collide").validate()
    files = py_backend.render(model, "collide")
    module = import_generated(files, "collide", tmp_path)
    x = rng.standard_normal((2, 4, 2)).astype(np.float32)
    got = np.array([module.predict(seq.tolist()) for seq in x])
    _, rel = error_metrics(got, forward(model, x))
    assert rel.max() <= REFERENCE_TOLERANCE
    # every module-level name is bound once
    bound = module_level_names(files["collide.py"])
    assert len(bound) == len(set(bound)), sorted(b for b in bound if bound.count(b) > 1)
