"""Every IR activation in generated MATLAB, against the float64 reference: as LSTM gate, cell
and output, in Dense and Activation layers, the vector ones (softmax, log_softmax) over
sequences and vectors, and on extreme values (+-1000): nothing overflows."""

from __future__ import annotations

import numpy as np
import pytest
from support import MATLAB_PRECISIONS, MATLAB_TOLERANCE, check_matlab_steps, require_tool

from lstmgen.ir import ELEMENTWISE_ACTIVATIONS, LSTM, VECTOR_ACTIVATIONS, Activation, Dense, Model
from lstmgen.reference import forward
from lstmgen.targets import matlab as backend
from lstmgen.targets.matlab import runner
from lstmgen.verify import error_metrics

EXTREMES = np.array(
    [-1000.0, -100.0, -88.8, -30.0, -3.0, -0.5, -0.0, 0.0, 0.5, 3.0, 30.0, 88.8, 100.0, 1000.0],
    dtype=np.float32,
)
ELEMENTWISE = list(ELEMENTWISE_ACTIVATIONS)
VECTOR = list(VECTOR_ACTIVATIONS)


def _draw(rng, *shape):
    return rng.uniform(-0.6, 0.6, shape).astype(np.float32)


def _mixed_model(k: int) -> Model:
    """Activation k as LSTM cell, Dense and gate of a second LSTM; its neighbours in the
    list as gate and output; a vector activation as the head (softmax, log_softmax) or a
    linear head, over a sequence or after the last step."""
    rng = np.random.default_rng(5 + k)
    act = ELEMENTWISE[k]
    gate = ELEMENTWISE[(k + 3) % len(ELEMENTWISE)]
    out = ELEMENTWISE[(k + 5) % len(ELEMENTWISE)]
    head = VECTOR[k % len(VECTOR)] if k % 3 else "linear"
    layers = [
        LSTM(
            "lstm",
            _draw(rng, 16, 3),
            _draw(rng, 16, 4),
            _draw(rng, 16) if k % 2 else None,
            gate_activation=gate,
            cell_activation=act,
            output_activation=out,
            return_sequences=True,
            go_backwards=k % 3 == 1,
        ),
        Dense("dense", _draw(rng, 5, 4), _draw(rng, 5), activation=act),
        Activation("act", 5, ELEMENTWISE[(k + 1) % len(ELEMENTWISE)]),
        LSTM(
            "lstm2",
            _draw(rng, 8, 5),
            _draw(rng, 8, 2),
            _draw(rng, 8),
            gate_activation=act,
            cell_activation=gate,
            return_sequences=k % 2 == 0,
        ),
        Dense("head", _draw(rng, 4, 2), None, activation=head),
    ]
    return Model(3, layers, name=f"act_{k}", source="random weights").validate()


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


MODELS = {f"mixed_{k}": (lambda k=k: _mixed_model(k)) for k in range(len(ELEMENTWISE))}
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
