"""Generated C against Keras model.predict over the random-architecture grid (via cffi)."""

from __future__ import annotations

import numpy as np
import pytest
from support import require_module

from lstmgen.reference import forward
from lstmgen.targets import c as c_backend
from lstmgen.targets.c import runner as c_runner
from lstmgen.verify import error_metrics

TOLERANCE = 1e-5  # max relative error, |got - ref| / max(|ref|, 1)


@pytest.fixture(scope="module")
def compiled(grid_cases, tmp_path_factory):
    require_module("cffi")
    built = []
    for case in grid_cases:
        files = c_backend.render(case.ir, "net")
        workdir = tmp_path_factory.mktemp(case.spec.id)
        built.append((case, files, c_runner.build(case.ir, files, "net", workdir)))
    return built


def test_grid_covers_the_promised_space(grid_cases):
    specs = [c.spec for c in grid_cases]
    lstms = [l for s in specs for l in s.lstms]
    assert {len(s.lstms) for s in specs} == {1, 2, 3}
    assert {l.activation for l in lstms} >= {
        "tanh",
        "softsign",
        "relu",
        "linear",
        "elu",
        "softplus",
        "sigmoid",
        "hard_sigmoid",
    }
    assert {l.recurrent_activation for l in lstms} >= {
        "sigmoid",
        "hard_sigmoid",
        "tanh",
        "softsign",
    }
    assert any(l.go_backwards for l in lstms) and any(not l.use_bias for l in lstms)
    assert any(s.lstms[-1].return_sequences for s in specs)
    assert max(l.units for l in lstms) == 128 and min(l.units for l in lstms) == 1
    assert min(s.timesteps for s in specs) == 1 and max(s.timesteps for s in specs) == 60


def test_c_predict_matches_keras(compiled, tmp_path):
    worst = []
    for case, files, module in compiled:
        got = c_runner.run(case.ir, files, "net", case.x, tmp_path, module=module)
        _, rel = error_metrics(got, case.expected)
        worst.append((float(rel.max()), case.spec.id))
    failures = [w for w in worst if not w[0] <= TOLERANCE]
    assert not failures, f"max relative error above {TOLERANCE}: {failures}"


def test_c_predict_matches_numpy_reference(compiled, tmp_path):
    for case, files, module in compiled:
        got = c_runner.run(case.ir, files, "net", case.x, tmp_path, module=module)
        _, rel = error_metrics(got, forward(case.ir, case.x))
        assert rel.max() <= TOLERANCE, case.spec.id


def test_native_fma_build_matches_keras(grid_cases, tmp_path_factory):
    """-O3 -march=native: vectorised, and fused multiply-adds where the CPU has them."""
    require_module("cffi")
    for case in grid_cases[::3]:
        files = c_backend.render(case.ir, "net")
        workdir = tmp_path_factory.mktemp(case.spec.id + "_native")
        module = c_runner.build(case.ir, files, "net", workdir, ["-O3", "-march=native"])
        got = c_runner.run(case.ir, files, "net", case.x, workdir, module=module)
        _, rel = error_metrics(got, case.expected)
        assert rel.max() <= TOLERANCE, case.spec.id


def test_numpy_reference_matches_keras(grid_cases):
    for case in grid_cases:
        _, rel = error_metrics(forward(case.ir, case.x), case.expected)
        assert rel.max() <= TOLERANCE, case.spec.id


def test_c_step_streams_like_keras_sequences(compiled, keras, tmp_path):
    """step() after t inputs equals Keras predict on the first t inputs."""
    checked = 0
    for case, files, module in compiled:
        if not case.ir.streamable:
            assert not hasattr(module.lib, "net_step")
            continue
        steps = c_runner.run_steps(case.ir, files, "net", case.x, tmp_path, module=module)
        t_len = case.x.shape[1]
        if case.ir.returns_sequences:
            expected_every_step = case.expected
        else:  # the last output after each prefix: Keras on the truncated sequences
            prefixes = [t for t in (1, (t_len + 1) // 2, t_len)]
            for t in prefixes:
                if t == t_len:
                    expected = case.expected
                else:
                    expected = _predict_prefix(keras, case, t)
                _, rel = error_metrics(steps[:, t - 1], expected)
                assert rel.max() <= TOLERANCE, (case.spec.id, t)
            checked += 1
            continue
        _, rel = error_metrics(steps, expected_every_step)
        assert rel.max() <= TOLERANCE, case.spec.id
        checked += 1
    assert checked >= 10


def _predict_prefix(keras, case, t: int) -> np.ndarray:
    """Keras output on the first t steps: rebuild the same layers for length t."""
    model = keras.models.clone_model(
        case.keras_model, input_tensors=keras.Input((t, case.spec.input_size))
    )
    model.set_weights(case.keras_model.get_weights())
    return model.predict(case.x[:, :t], verbose=0)
