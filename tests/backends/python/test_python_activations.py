"""Generated pure Python with every activation in every role, under CPython and MicroPython
against the float64 reference: extreme inputs (exp overflow territory), the MicroPython
kernels run by CPython, awkward layer names.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from support import exec_without_fast_math, import_generated, require_tool

from lstmgen.ir import ELEMENTWISE_ACTIVATIONS, LSTM, Activation, Dense, Model
from lstmgen.reference import forward
from lstmgen.targets import python as py_backend
from lstmgen.targets.python import runner as py_runner
from lstmgen.verify import error_metrics


@pytest.fixture(scope="module")
def micropython():
    require_tool("micropython")
    return py_runner.micropython_command()


def _activation_models() -> list[Model]:
    """IR models (no Keras needed) covering every activation in every role, with weights
    large enough that pre-activations reach +-1000 (exp overflow territory)."""
    rng = np.random.default_rng(3)

    def arr(*shape, scale=0.5):
        return (rng.uniform(-scale, scale, shape)).astype(np.float32)

    acts = list(ELEMENTWISE_ACTIVATIONS)
    models = []
    for k, act in enumerate(acts):
        d, h = 3, 4
        # bounded gates keep the state finite; `act` is tried as gate where it is bounded
        gate = (
            act
            if act in ("sigmoid", "tanh", "softsign", "hard_sigmoid_keras3", "hard_sigmoid_0.2")
            else "sigmoid"
        )
        layers = [
            LSTM(
                "lstm_a",
                arr(4 * h, d, scale=300.0),
                arr(4 * h, h),
                arr(4 * h) if k % 2 else None,
                gate_activation=gate,
                cell_activation=act,
                output_activation=act,
                return_sequences=True,
                go_backwards=bool(k % 3 == 1),
            ),
            Dense("dense", arr(5, h, scale=200.0), arr(5), activation=act),
            Activation("act", 5, "softmax" if k % 2 else act),
            LSTM(
                "lstm_b",
                arr(8, 5),
                arr(8, 2),
                None,
                cell_activation=act,
                return_sequences=bool(k % 2),
                go_backwards=bool(k % 4 == 2),
            ),
            Dense("head", arr(3, 2), None, activation="softmax"),
        ]
        models.append(Model(d, layers, name=f"acts_{k}", source="test"))
    return models


def _run_both(models, tmp_path, x, micropython=None):
    jobs = [
        py_runner.Job(m, py_backend.render(m, f"m{k}"), f"m{k}", x) for k, m in enumerate(models)
    ]
    runs = [py_runner.run_batch(jobs, tmp_path / "cpython").outputs]
    if micropython:
        runs.append(py_runner.run_batch(jobs, tmp_path / "micropython", micropython).outputs)
    return runs


def test_every_activation_and_extreme_inputs_match_reference(tmp_path, micropython):
    models = _activation_models()
    x = np.random.default_rng(4).standard_normal((2, 5, 3)).astype(np.float32) * 3
    x[0, 0] = [1000.0, -1000.0, 1000.0]
    x[1, 2] = [-1000.0, 1000.0, -1000.0]
    for outputs in _run_both(models, tmp_path, x, micropython):
        for model, got in zip(models, outputs):
            ref = forward(model, x)
            assert np.all(np.isfinite(got)), model.name
            _, rel = error_metrics(got, ref)
            assert rel.max() <= 1e-9, model.name


@pytest.mark.parametrize("k", range(len(ELEMENTWISE_ACTIVATIONS)))
def test_fallback_kernels_under_cpython(k):
    """The MicroPython code path (no math.dist, log1p, expm1), run by CPython in-process."""
    model = _activation_models()[k]
    x = np.random.default_rng(5).standard_normal((2, 4, 3)).astype(np.float32)
    text = py_backend.render(model, "fb")["fb.py"]
    namespace = exec_without_fast_math(text)
    assert namespace["dist"] is None
    if "def log1p" in text:
        assert namespace["log1p"].__module__ == "fb"
    got = np.array([namespace["predict"](seq.tolist()) for seq in x])
    _, rel = error_metrics(got, forward(model, x))
    assert rel.max() <= 1e-9, model.name


def test_sigmoid_softplus_never_overflow(tmp_path):
    """A gate at -1000 gives exactly 0 (no OverflowError), softplus(1000) = 1000."""
    w = np.array([[-1000.0]] * 4, np.float32)  # z = -1000 x for every gate
    model = Model(
        1,
        [
            LSTM(
                "l",
                w,
                np.zeros((4, 1), np.float32),
                None,
                cell_activation="softplus",
                output_activation="softplus",
                return_sequences=True,
            )
        ],
        source="test",
    )
    module = import_generated(py_backend.render(model, "ovf"), "ovf", tmp_path)
    # x = 1: gates sigmoid(-1000) = 0 -> c = 0, h = 0; x = -1: gates 1, g = softplus(1000)
    assert module.predict([[1.0]]) == [[0.0]]
    out = module.predict([[-1.0]])
    assert out[0][0] == pytest.approx(math.log1p(math.exp(-1000.0)) + 1000.0)


def test_awkward_layer_names_stay_valid_python(tmp_path):
    rng = np.random.default_rng(0)
    f32 = lambda *s: rng.uniform(-0.5, 0.5, s).astype(np.float32)  # noqa: E731
    layers = [
        LSTM('l"""\\ 1\nx', f32(8, 2), f32(8, 2), f32(8)),
        Dense("one", f32(2, 2), f32(2)),
        Dense("ONE", f32(2, 2), f32(2)),
    ]
    model = Model(2, layers, source='C:\\models\\"odd"\nname.keras')
    module = import_generated(py_backend.render(model, "odd"), "odd", tmp_path)
    x = rng.standard_normal((1, 3, 2)).astype(np.float32)
    _, rel = error_metrics(np.array([module.predict(x[0].tolist())]), forward(model, x))
    assert rel.max() <= 1e-12
