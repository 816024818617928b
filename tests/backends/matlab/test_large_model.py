"""A large model in Octave: 9 -> LSTM(256) -> Dense(1), 272,641 weights in a 4 MB
NAME_weights.m, parsed once and evaluated at every call (the figures are printed and
recorded, not asserted beyond a generous wall-clock bound)."""

from __future__ import annotations

import time

import numpy as np
from support import MATLAB_TOLERANCE, require_tool

from lstmgen.ir import LSTM, Dense, Model
from lstmgen.reference import forward
from lstmgen.targets import matlab as backend
from lstmgen.targets.matlab import runner
from lstmgen.verify import error_metrics

LARGE = dict(input_size=9, units=256, timesteps=50, sequences=2)


def _large_model() -> Model:
    d, h = LARGE["input_size"], LARGE["units"]
    rng = np.random.default_rng(11)

    def draw(*shape, scale):
        return rng.uniform(-scale, scale, shape).astype(np.float32)

    lstm = LSTM(
        "lstm",
        draw(4 * h, d, scale=0.5),
        draw(4 * h, h, scale=1 / np.sqrt(h)),
        draw(4 * h, scale=0.5),
    )
    dense = Dense("head", draw(1, h, scale=1 / np.sqrt(h)), draw(1, scale=0.5))
    return Model(d, [lstm, dense], name="large", source="random weights").validate()


def test_large_model_runs_in_octave(tmp_path, record_property):
    """~272k literal weights parse and run in Octave, both precisions, and step."""
    require_tool("octave-cli")
    model = _large_model()
    x = (
        np.random.default_rng(3)
        .standard_normal((LARGE["sequences"], LARGE["timesteps"], model.input_size))
        .astype(np.float32)
    )
    jobs = []
    for precision in ("single", "double"):
        files = backend.render(model, "big", precision=precision)
        jobs.append(runner.Job(model, files, "big", x, tmp_path / precision))
    steps = runner.Job(
        model, backend.render(model, "big"), "big", x[:1, :3], tmp_path / "steps", False, True
    )
    jobs.append(steps)
    start = time.perf_counter()
    results = [r.check(j) for j, r in zip(jobs, runner.run_batch(jobs, processes=2))]
    wall = time.perf_counter() - start
    size_mb = len(jobs[0].files["big_weights.m"]) / 1e6
    report = (
        f"large model ({model.parameter_count()} weights, big_weights.m {size_mb:.1f} MB): "
        f"{wall:.1f} s wall for 2 Octave processes; predict of {LARGE['sequences']} x "
        f"T={LARGE['timesteps']}: {results[0].predict_seconds:.2f} s single, "
        f"{results[1].predict_seconds:.2f} s double (the first call parses the file); "
        f"3 step calls: {results[2].steps_seconds:.2f} s"
    )
    print("\n" + report)
    record_property("large_model_octave", report)
    ref = forward(model, x)
    assert error_metrics(results[0].predict, ref)[1].max() <= MATLAB_TOLERANCE["single"]
    assert error_metrics(results[1].predict, ref)[1].max() <= MATLAB_TOLERANCE["double"]
    _, rel = error_metrics(results[2].steps[:, -1], forward(model, x[:1, :3]))
    assert rel.max() <= MATLAB_TOLERANCE["single"]
    assert wall < 120, report
