"""The numpy target's own guarantees: the Keras grid through predict and the batched Stream
(float32 and float64) against Keras, streaming models with masks and token ids against
Keras on every prefix, exact weights, only numpy imported, the API and its errors,
determinism, the memory report, and verify end to end. (Every layer kind against Keras:
tests/layers and tests/differential, which run every target in TARGETS.)

The module is imported in-process here (fast on the grid); the runner's isolated
subprocess is what the layer and differential tests use.
"""

from __future__ import annotations

import ast

import numpy as np
import pytest
from support import import_generated, imported_modules, randomize_keras_weights

from lstmgen.errors import LstmgenError
from lstmgen.reference import forward
from lstmgen.targets import numpy as np_backend
from lstmgen.targets.numpy import runner as np_runner
from lstmgen.verify import error_metrics

TOLERANCE = 1e-5  # max relative error against Keras, |got - ref| / max(|ref|, 1)
DOUBLE_REFERENCE_TOLERANCE = 1e-9  # float64 arithmetic against the float64 reference


@pytest.fixture(scope="module")
def modules(grid_cases, tmp_path_factory):
    """Every grid case as a float32 and a float64 module."""
    built = []
    for case in grid_cases:
        folder = tmp_path_factory.mktemp(case.spec.id)
        single = import_generated(np_backend.render(case.ir, "net"), "net", folder)
        files = np_backend.render(case.ir, "netd", precision="double")
        double = import_generated(files, "netd", folder)
        built.append((case, single, double))
    return built


def _worst(pairs) -> float:
    return max(float(error_metrics(got, ref)[1].max()) for got, ref in pairs)


def test_grid_predict_matches_keras_in_float32_and_float64(modules):
    single = [(m.predict(c.x), c.expected) for c, m, _ in modules]
    double = [(d.predict(c.x), c.expected) for c, _, d in modules]
    assert all(y.dtype == np.float32 for y, _ in single)
    assert all(y.dtype == np.float64 for y, _ in double)
    assert _worst(single) <= TOLERANCE and _worst(double) <= TOLERANCE
    reference = _worst((d.predict(c.x), forward(c.ir, c.x)) for c, _, d in modules)
    assert reference <= DOUBLE_REFERENCE_TOLERANCE
    print(f"\nnumpy target vs Keras: float32 {_worst(single):.3g}, float64 {_worst(double):.3g}")


def test_grid_stream_steps_like_keras(modules):
    """A Stream of the whole batch stepped through x gives Keras's outputs: every step of a
    sequence output, the last one of a last-step output."""
    checked = 0
    for case, module, _ in modules:
        if not case.ir.streamable:
            assert not hasattr(module, "Stream"), case.spec.id
            continue
        stream = module.Stream(batch=case.x.shape[0])
        steps = np.stack([stream.step(case.x[:, t]) for t in range(case.x.shape[1])], axis=1)
        got = steps if case.ir.returns_sequences else steps[:, -1]
        assert error_metrics(got, case.expected)[1].max() <= TOLERANCE, case.spec.id
        checked += 1
    assert checked >= 10


def _prefix_outputs(keras_model, x):
    """Keras on every prefix of x (the model takes any T): what a stream gives after each
    timestep."""
    outputs = []
    for t in range(1, x.shape[1] + 1):
        y = keras_model.predict(x[:, :t], verbose=0)
        outputs.append(y[:, -1] if y.ndim == 3 else y)
    return np.stack(outputs, axis=1)


@pytest.fixture(scope="module")
def streaming_models(keras):
    """Streamable Keras models with masks and token ids, and inputs with padding."""
    L = keras.layers
    rng = np.random.default_rng(5)
    built = {}
    masked = keras.Sequential(
        [
            keras.Input((None, 3)),
            L.Masking(0.0),
            L.LSTM(6, return_sequences=True),
            L.LayerNormalization(),
            L.GRU(4),
            L.Dense(2, activation="softmax"),
        ]
    )
    x = rng.standard_normal((4, 7, 3)).astype(np.float32)
    x[0, 5:] = 0.0  # padded tail
    x[1, :2] = 0.0  # padded head
    x[2, 3] = 0.0  # a hole
    built["masked"] = (masked, x)
    tokens = keras.Sequential(
        [
            keras.Input((None,), dtype="int32"),
            L.Embedding(9, 5, mask_zero=True),
            L.SimpleRNN(4, return_sequences=True),
            L.BatchNormalization(),
            L.Dense(3, activation="tanh"),
        ]
    )
    ids = rng.integers(1, 9, (3, 6)).astype(np.int32)
    ids[0, 4:] = 0
    ids[1, 2] = 0
    built["tokens"] = (tokens, ids)
    for model, _ in built.values():
        randomize_keras_weights(model, rng)
    return built


@pytest.mark.parametrize("key", ["masked", "tokens"])
def test_stream_with_masks_matches_keras_on_every_prefix(streaming_models, key, tmp_path):
    import lstmgen

    keras_model, x = streaming_models[key]
    ir = lstmgen.load(keras_model)
    module = import_generated(np_backend.render(ir, "net"), "net", tmp_path)
    stream = module.Stream(batch=x.shape[0])
    steps = np.stack([stream.step(x[:, t]) for t in range(x.shape[1])], axis=1)
    assert error_metrics(steps, _prefix_outputs(keras_model, x))[1].max() <= TOLERANCE
    whole = module.predict(x)
    expected = keras_model.predict(x, verbose=0)
    assert error_metrics(whole, expected)[1].max() <= TOLERANCE
    # the runner's isolated subprocess gives the same
    x_ir = x[..., None].astype(np.float32) if x.ndim == 2 else x
    ran = np_runner.run_steps(ir, np_backend.render(ir, "net"), "net", x_ir, tmp_path / "run")
    assert np.array_equal(ran, steps.astype(np.float64))


def _module_arrays(text: str) -> list[bytes]:
    """The float32 bytes of every `_array(shape, (hex lines))` constant of a module."""
    found = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "_array":
            found.append(bytes.fromhex("".join(ast.literal_eval(node.args[1]))))
    return found


def test_weights_are_the_ir_values_exactly(grid_cases, streaming_models):
    import lstmgen

    irs = [c.ir for c in grid_cases] + [lstmgen.load(m) for m, _ in streaming_models.values()]
    for ir in irs:
        stored = _module_arrays(np_backend.render(ir, "net")["net.py"])
        for layer in ir.layers:
            for part in layer.parts():
                for name, values in part.arrays().items():
                    if values is not None:
                        blob = np.ascontiguousarray(values, "<f4").tobytes()
                        assert blob in stored, (layer.name, name)


def test_imports_only_numpy_and_renders_deterministically(grid_cases):
    for case in grid_cases:
        text = np_backend.render(case.ir, "net")["net.py"]
        assert imported_modules(text) == {"numpy"}, case.spec.id
        assert text.isascii() and np_backend.render(case.ir, "net")["net.py"] == text


def test_api_shapes_and_errors(grid_cases, tmp_path):
    case = next(c for c in grid_cases if c.ir.streamable and not c.ir.returns_sequences)
    module = import_generated(np_backend.render(case.ir, "api"), "api", tmp_path)
    d, o = case.ir.input_size, case.ir.output_size
    assert (module.INPUT_SIZE, module.OUTPUT_SIZE, module.RETURNS_SEQUENCES) == (d, o, False)
    batch = module.predict(case.x)
    assert batch.shape == (case.x.shape[0], o)
    one = module.predict(case.x[0].tolist())  # one sequence as nested lists
    assert one.shape == (o,) and np.allclose(one, batch[0], rtol=1e-6, atol=1e-6)
    stream = module.Stream()  # batch 1: rows in, rows out
    for row in case.x[0]:
        last = stream.step(row)
    assert last.shape == (o,) and np.allclose(last, batch[0], rtol=1e-5, atol=1e-6)
    last[:] = 1e9  # the result is a copy, not the state
    stream.reset()
    assert np.allclose(stream.step(case.x[0, 0]), module.predict(case.x[:1, :1])[0], atol=1e-6)
    for bad in (np.zeros((2, 3, d + 1)), np.zeros((2, 0, d)), np.zeros(d), "abc", [[None] * d]):
        with pytest.raises(ValueError):
            module.predict(bad)
    with pytest.raises(ValueError, match="steps 1 sequence"):
        stream.step(np.zeros((2, d)))
    with pytest.raises(ValueError, match="batch"):
        module.Stream(batch=0)


def test_token_ids_are_checked(streaming_models, tmp_path):
    import lstmgen

    ir = lstmgen.load(streaming_models["tokens"][0])
    module = import_generated(np_backend.render(ir, "tok"), "tok", tmp_path)
    assert module.VOCABULARY == 9 and not hasattr(module, "INPUT_SIZE")
    assert module.predict([1, 2, 3]).shape == (3, 3)
    for bad, match in (([1, 9], "9 is outside"), ([1.5], "integers"), ([-1], "-1 is outside")):
        with pytest.raises(ValueError, match=match):
            module.predict(bad)
    stream = module.Stream(batch=2)
    assert stream.step([1, 0]).shape == (2, 3)
    with pytest.raises(ValueError, match="outside"):
        stream.step([1, 12])


def test_window_models_refuse_short_sequences(tmp_path):
    from lstmgen.ir import LSTM, Conv1D, Model

    rng = np.random.default_rng(0)
    model = Model(
        2,
        [
            Conv1D("conv", rng.random((3, 4, 2), dtype=np.float32), None),
            LSTM(
                "lstm", rng.random((8, 3), dtype=np.float32), rng.random((8, 2), np.float32), None
            ),
        ],
    ).validate()
    module = import_generated(np_backend.render(model, "win"), "win", tmp_path)
    assert module.MIN_TIMESTEPS == 4 and not hasattr(module, "Stream")
    x = rng.standard_normal((2, 9, 2)).astype(np.float32)
    assert error_metrics(module.predict(x), forward(model, x))[1].max() <= 1e-5
    with pytest.raises(ValueError, match="MIN_TIMESTEPS"):
        module.predict(x[:, :3])


def test_options_and_memory_report(grid_cases):
    ir = grid_cases[0].ir
    with pytest.raises(LstmgenError, match="takes: precision"):
        np_backend.render(ir, "net", quantize="int8")
    with pytest.raises(LstmgenError, match="single or double"):
        np_backend.render(ir, "net", precision="half")
    report = np_backend.memory_report(ir)
    assert f"{ir.parameter_count()} weights" in report and "float32" in report
    assert "float64" in np_backend.memory_report(ir, precision="double")


def test_verify_end_to_end(example_model_path, keras, tmp_path):
    import lstmgen

    report = lstmgen.verify(example_model_path, target="numpy")
    assert report.passed and "Keras" in report.oracle
    paths = lstmgen.generate(example_model_path, "numpy", "sine", tmp_path)
    assert [p.name for p in paths] == ["sine.py"]


def test_implements_every_ir_kind_activation_and_feature():
    """One template per IR kind, every activation in its table, every optional feature: a
    model is never refused by this target for what it uses (each is tested against a
    framework in tests/layers, tests/differential and test_numpy_activations)."""
    from lstmgen.ir import ACTIVATIONS, FEATURE_TITLES, LAYER_TYPES

    assert np_backend.LAYERS == set(LAYER_TYPES)
    assert np_backend.ACTIVATIONS == set(ACTIVATIONS)
    assert np_backend.FEATURES == set(FEATURE_TITLES)
    # and the front ends' oracle tests run it with the others
    from support import ORACLE_TARGETS

    from lstmgen.targets import TARGETS

    assert set(ORACLE_TARGETS) == set(TARGETS)
