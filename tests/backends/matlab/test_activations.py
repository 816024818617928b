"""Every IR activation in generated MATLAB, against the float64 reference: as LSTM gate, cell
and output, in Dense and Activation layers, the vector ones (softmax, log_softmax) over
sequences and vectors, and on extreme values (+-1000): nothing overflows."""

from __future__ import annotations

import numpy as np
import pytest
from irmodels import EXTREMES, mixed_activation_model
from support import MATLAB_PRECISIONS, MATLAB_TOLERANCE, check_matlab_steps, require_tool

from lstmgen.ir import ELEMENTWISE_ACTIVATIONS, LSTM, VECTOR_ACTIVATIONS, Activation, Dense, Model
from lstmgen.reference import forward
from lstmgen.targets import matlab as backend
from lstmgen.targets.matlab import runner
from lstmgen.verify import error_metrics

ELEMENTWISE = list(ELEMENTWISE_ACTIVATIONS)
VECTOR = list(VECTOR_ACTIVATIONS)


def _draw(rng, *shape):
    return rng.uniform(-0.6, 0.6, shape).astype(np.float32)


def _extreme_model(act: str) -> Model:
    """A Dense with zero weights whose bias holds EXTREMES, then `act` (a vector activation
    as an Activation layer of its own)."""
    rng = np.random.default_rng(9)
    zeros = np.zeros((EXTREMES.size, 1), np.float32)
    if act in VECTOR:
        head = [Dense("extremes", zeros, EXTREMES), Activation(act, EXTREMES.size, act)]
    else:
        head = [Dense("extremes", zeros, EXTREMES, activation=act)]
    lstm = LSTM("lstm", _draw(rng, 4, 3), _draw(rng, 4, 1), _draw(rng, 4))
    return Model(3, [lstm, *head], name=f"extreme_{act}", source="random weights").validate()


MODELS = {f"mixed_{k}": (lambda k=k: mixed_activation_model(k)) for k in range(len(ELEMENTWISE))}
MODELS.update({f"extreme_{a}": (lambda a=a: _extreme_model(a)) for a in ELEMENTWISE + VECTOR})


@pytest.fixture(scope="module")
def octave_runs(tmp_path_factory):
    """Every model, both precisions, in one Octave batch (steps for the streamable ones)."""
    require_tool("octave-cli")
    root = tmp_path_factory.mktemp("matlab_activations")
    x = np.random.default_rng(9).standard_normal((3, 7, 3)).astype(np.float32) * 3
    jobs = {}
    for key, make in MODELS.items():
        model = make()
        for p in MATLAB_PRECISIONS:
            files = backend.render(model, "acts", precision=p)
            workdir = root / f"{key}_{p}"
            jobs[key, p] = runner.Job(model, files, "acts", x, workdir, steps=model.streamable)
    results = runner.run_batch(list(jobs.values()), processes=2)
    return {key: (job, result) for (key, job), result in zip(jobs.items(), results)}


@pytest.mark.parametrize("precision", MATLAB_PRECISIONS)
@pytest.mark.parametrize("key", sorted(MODELS))
def test_activation_matches_reference(octave_runs, key, precision):
    job, result = octave_runs[key, precision]
    result.check(job)
    assert result.output_class == precision
    ref = forward(job.model, job.x)
    assert np.all(np.isfinite(ref)) and np.all(np.isfinite(result.predict))
    _, rel = error_metrics(result.predict, ref)
    assert rel.max() <= MATLAB_TOLERANCE[precision], float(rel.max())
    if job.steps:
        check_matlab_steps(job, result, MATLAB_TOLERANCE[precision], [job.x.shape[1]])


def test_every_activation_is_used():
    text = "".join("".join(backend.render(make(), "acts").values()) for make in MODELS.values())
    for name in ELEMENTWISE + VECTOR:
        assert f"function y = act_{name.replace('.', '_')}(x)" in text, name
