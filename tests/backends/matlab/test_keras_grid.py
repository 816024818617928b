"""The generated MATLAB of every model of the Keras grid (tests/grid.py), run in GNU Octave
against Keras model.predict and the float64 reference, in both precisions.

Octave takes about a second to start and evaluates a function's weight literals at every
call (about 2 us per weight; NAME_weights is not cached, see docs/simulink.md), so the whole
grid runs in one batch of two Octave processes, and the calls are limited to a budget of
weights x calls per model: NAME_predict on fewer of the grid's sequences (at least 2) for
the big models, and stepping (one call per timestep) on a shorter prefix of fewer sequences,
compared with NAME_predict on that same prefix (one Octave job does both when the prefix
holds whole sequences). LSTMGEN_EXHAUSTIVE=1 runs every sequence and a 3x longer step budget.

Error bounds (max relative error, |got - ref| / max(|ref|, 1)):
* double precision: <= 1e-5 against Keras (whose own float32 error dominates; measured
  1.5e-7) and <= 1e-10 against the float64 numpy reference (measured 2.5e-16; 6.7e-16 on a
  60-model grid, LSTMGEN_GRID=60);
* single precision: <= 1e-5 against Keras and the reference, the same bound as the C
  backend's float32 code (measured 1.8e-7 against Keras on the default grid, 6.3e-7 on the
  60-model grid).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from grid import default_grid
from support import (
    EXHAUSTIVE,
    MATLAB_PRECISIONS,
    MATLAB_TOLERANCE,
    check_matlab_code,
    check_matlab_literals,
    check_matlab_steps,
    require_tool,
)

import lstmgen
from lstmgen.reference import forward
from lstmgen.targets import matlab as backend
from lstmgen.targets.common import GENERATED_MARK
from lstmgen.targets.matlab import runner
from lstmgen.verify import error_metrics

NAME = "net"  # every grid model gets the same name: the batch must not mix them up
KERAS_TOLERANCE = 1e-5
# weights x calls per model and precision (Octave evaluates the weights at every call)
PREDICT_BUDGET = float("inf") if EXHAUSTIVE else 2e5  # NAME_predict calls
STEP_BUDGET = 1.5e6 if EXHAUSTIVE else 5e5  # NAME_step calls
GRID_IDS = [spec.id for spec in default_grid()]


def _predict_sample(model, x: np.ndarray) -> np.ndarray:
    """The sequences NAME_predict runs on: all of them for small models."""
    return x[: min(len(x), max(2, int(PREDICT_BUDGET / model.parameter_count())))]


def _step_prefix(model, x: np.ndarray) -> np.ndarray:
    """The part of x that NAME_step walks through: all of it for small models."""
    n, t_len, _ = x.shape
    calls = max(1, int(STEP_BUDGET / model.parameter_count()))
    n_s = min(n, max(2, calls // t_len))
    t_s = min(t_len, max(1, calls // n_s))
    return x[:n_s, :t_s]


@pytest.fixture(scope="module")
def cases(grid_cases):
    return {case.spec.id: case for case in grid_cases}


@pytest.fixture(scope="module")
def rendered(grid_cases):
    return {
        (case.spec.id, p): backend.render(case.ir, NAME, precision=p)
        for case in grid_cases
        for p in MATLAB_PRECISIONS
    }


@pytest.fixture(scope="module")
def octave_grid(grid_cases, rendered, tmp_path_factory):
    """Every grid model, both precisions: predict on all inputs, step on a prefix."""
    require_tool("octave-cli")
    root = tmp_path_factory.mktemp("matlab_grid")
    jobs, keys = [], []
    for case in grid_cases:
        for p in MATLAB_PRECISIONS:
            files = rendered[case.spec.id, p]
            sample = _predict_sample(case.ir, case.x)
            prefix = _step_prefix(case.ir, case.x) if case.ir.streamable else None
            if prefix is not None and prefix.shape[1] == case.x.shape[1]:  # one job does both
                x = case.x[: max(len(sample), len(prefix))]
                workdir = root / f"{case.spec.id}_{p}"
                jobs.append(runner.Job(case.ir, files, NAME, x, workdir, steps=True))
                keys.append([(case.spec.id, p, "predict"), (case.spec.id, p, "steps")])
                continue
            jobs.append(runner.Job(case.ir, files, NAME, sample, root / f"{case.spec.id}_{p}"))
            keys.append([(case.spec.id, p, "predict")])
            if prefix is not None:
                workdir = root / f"{case.spec.id}_{p}_steps"
                jobs.append(runner.Job(case.ir, files, NAME, prefix, workdir, steps=True))
                keys.append([(case.spec.id, p, "steps")])
    start = time.perf_counter()
    results = runner.run_batch(jobs, processes=2)
    print(f"\nOctave ran {len(jobs)} MATLAB jobs in {time.perf_counter() - start:.1f} s")
    return {key: (job, result) for group, job, result in zip(keys, jobs, results) for key in group}


@pytest.mark.parametrize("precision", MATLAB_PRECISIONS)
@pytest.mark.parametrize("case_id", GRID_IDS)
def test_predict_matches_keras_and_reference(cases, octave_grid, case_id, precision):
    case = cases[case_id]
    job, result = octave_grid[case_id, precision, "predict"]
    result.check(job)
    assert result.output_class == precision
    assert result.predict.dtype == (np.float32 if precision == "single" else np.float64)
    n = len(job.x)
    assert n >= 2 and np.array_equal(job.x, case.x[:n])
    _, rel = error_metrics(result.predict, case.expected[:n])
    assert rel.max() <= KERAS_TOLERANCE, float(rel.max())
    _, rel = error_metrics(result.predict, forward(case.ir, case.x[:n]))
    assert rel.max() <= MATLAB_TOLERANCE[precision], float(rel.max())


@pytest.mark.parametrize("precision", MATLAB_PRECISIONS)
@pytest.mark.parametrize("case_id", GRID_IDS)
def test_step_gives_predict_outputs(cases, octave_grid, case_id, precision):
    """NAME_step with reset at each sequence start = NAME_predict on the same prefix (every
    step, or the last), and after t steps the model's output on the first t timesteps."""
    case = cases[case_id]
    if not case.ir.streamable:
        assert (case_id, precision, "steps") not in octave_grid
        return
    job, result = octave_grid[case_id, precision, "steps"]
    result.check(job)
    assert result.output_class == precision
    assert job.x.shape[0] >= 2  # the reset between sequences is exercised
    prefixes = sorted({1, (job.x.shape[1] + 1) // 2, job.x.shape[1]})
    check_matlab_steps(job, result, MATLAB_TOLERANCE[precision], prefixes)
    if job.x.shape == case.x.shape:
        got = result.steps if case.ir.returns_sequences else result.steps[:, -1]
        _, rel = error_metrics(got, case.expected)
        assert rel.max() <= KERAS_TOLERANCE


def test_grid_has_streaming_and_backwards_models(grid_cases):
    assert sum(case.ir.streamable for case in grid_cases) >= 10
    assert any(not case.ir.streamable for case in grid_cases)


@pytest.mark.parametrize("case_id", GRID_IDS)
def test_files_per_model(cases, rendered, case_id):
    expected = {f"{NAME}_predict.m", f"{NAME}_weights.m"}
    expected |= {f"{NAME}_step.m"} if cases[case_id].ir.streamable else set()
    assert set(rendered[case_id, "single"]) == expected


@pytest.mark.parametrize("precision", MATLAB_PRECISIONS)
@pytest.mark.parametrize("case_id", GRID_IDS)
def test_codegen_pragma_and_no_forbidden_constructs(rendered, case_id, precision):
    for filename, text in rendered[case_id, precision].items():
        check_matlab_code(f"{case_id}/{precision}/{filename}", filename, text, precision)


@pytest.mark.parametrize("case_id", GRID_IDS)
def test_generated_mark_and_determinism(cases, rendered, case_id):
    case = cases[case_id]
    again = lstmgen.load(case.keras_model)
    for precision in MATLAB_PRECISIONS:
        files = rendered[case_id, precision]
        for text in files.values():
            assert GENERATED_MARK in text[:4096]
        assert backend.render(again, NAME, precision=precision) == files
    assert rendered[case_id, "single"] != rendered[case_id, "double"]


@pytest.mark.parametrize("case_id", GRID_IDS)
def test_literals_parse_back_exactly_in_python(cases, rendered, case_id):
    for precision in MATLAB_PRECISIONS:
        check_matlab_literals(
            f"{case_id}/{precision}", cases[case_id].ir, rendered[case_id, precision]
        )
