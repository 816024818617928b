"""Masking, Normalize, LayerNorm, Flatten, Conv1D and pooling in generated MATLAB, on
hand-built IR models, against the float64 reference in both precisions (measured 2.4e-7
single, 3.9e-16 double), at several T per model including the shortest T that gives one
output timestep; a shorter input is refused by an assert (tests/differential and
tests/layers check the same kinds against the frameworks)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from support import (
    MATLAB_PRECISIONS,
    MATLAB_SHAPING_CALLS,
    MATLAB_TOLERANCE,
    check_matlab_code,
    check_matlab_literals,
    check_matlab_steps,
    require_tool,
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
from lstmgen.targets import matlab as backend
from lstmgen.targets.matlab import runner
from lstmgen.verify import error_metrics

NAME = "net"


SHAPING_SEQUENCES = 3


def _shaping_models() -> dict[str, tuple[Model, tuple[int, ...]]]:
    """{key: (model, the sequence lengths T it runs with)}: Masking in front of every
    recurrent kind, go_backwards and Bidirectional (both merges that reorder), and an LSTM
    with an initial state (whose output is zero, not h0, before the first real step);
    Normalize and LayerNorm over sequences and single vectors, with and without gamma and
    beta; Conv1D with every padding, strides, dilation, no bias and a kernel of 1; max and
    average pooling with both paddings and strides; Flatten alone and after a Conv1D;
    Bidirectional after Conv1D. T = the minimum for the Conv1D/pooling layers (one output
    step) is always among the lengths."""
    rng = np.random.default_rng(31)

    def draw(*shape):
        return rng.uniform(-0.6, 0.6, shape).astype(np.float32)

    def lstm(name, d, h, projection=None, **kw):
        return LSTM(
            name,
            draw(4 * h, d),
            draw(4 * h, projection or h),
            draw(4 * h),
            projection=draw(projection, h) if projection else None,
            **kw,
        )

    def gru(name, d, h, **kw):
        return GRU(name, draw(3 * h, d), draw(3 * h, h), draw(3 * h), draw(3 * h), **kw)

    def rnn(name, d, h, **kw):
        return SimpleRNN(name, draw(h, d), draw(h, h), draw(h), **kw)

    def bi(name, make, d, h, merge, sequences):
        return Bidirectional(
            name,
            make(name + "_f", d, h, return_sequences=sequences),
            make(name + "_b", d, h, return_sequences=sequences, go_backwards=True),
            merge_mode=merge,
        )

    def conv(name, filters, kernel, d, bias=True, **kw):
        return Conv1D(name, draw(filters, kernel, d), draw(filters) if bias else None, **kw)

    def normalize(name, n):
        return Normalize(name, draw(n), rng.uniform(0.5, 2.0, n).astype(np.float32))

    masked = (8,)
    models = {
        "mask_stack": (
            [
                Masking("mask", 3, 0.0),
                lstm("l", 3, 4, return_sequences=True),
                Dense("d", draw(3, 4), draw(3)),
                gru("g", 3, 3, return_sequences=True),
                rnn("r", 3, 2),
            ],
            masked,
        ),
        "mask_backwards": (
            [
                Masking("mask", 3, -1.0),
                lstm("l", 3, 3, return_sequences=True, go_backwards=True),
                bi("b", gru, 3, 2, "concat", True),
                bi("b2", rnn, 4, 2, "ave", False),
            ],
            masked,
        ),
        "mask_initial_state": (
            [
                Masking("mask", 3, 2.5),
                lstm(
                    "l",
                    3,
                    4,
                    projection=2,
                    initial_h=draw(2),
                    initial_c=draw(4),
                    return_sequences=True,
                ),
                lstm("l2", 2, 3, initial_h=draw(3)),
            ],
            masked,
        ),
        "mask_norms": (
            [
                Masking("mask", 3, 0.0),
                normalize("n", 3),
                LayerNorm("ln", 3, draw(3), draw(3), 1e-3),
                gru("g", 3, 4, return_sequences=True),
                LayerNorm("ln2", 4, None, None, 1e-5),
            ],
            masked,
        ),
        "norms": (
            [
                normalize("n", 3),
                lstm("l", 3, 5),
                LayerNorm("ln", 5, draw(5), None, 1e-3),
                normalize("n2", 5),
                LayerNorm("ln3", 5, None, draw(5), 0.25),
                Dense("d", draw(2, 5), draw(2)),
            ],
            (7,),
        ),
        "conv_valid": ([conv("c", 4, 3, 3, activation="relu"), lstm("l", 4, 3)], (3, 9)),
        "conv_strided_dilated": (
            [
                conv("c", 4, 3, 3, stride=2, dilation=2, activation="tanh"),
                Pool1D("p", 4, "max", 3, 1, "valid"),
                gru("g", 4, 3, return_sequences=True),
            ],
            (9, 10, 14),
        ),
        "conv_same": (
            [
                conv("c", 3, 4, 3, padding="same"),
                Pool1D("p", 3, "avg", 2, 1, "same"),
                lstm("l", 3, 3, return_sequences=True),
            ],
            (1, 2, 7),
        ),
        "conv_same_strided": (
            [
                conv(
                    "c", 3, 2, 3, bias=False, stride=3, dilation=2, padding="same", activation="elu"
                ),
                Pool1D("p", 3, "max", 3, 2, "same"),
                rnn("r", 3, 2, return_sequences=True),
            ],
            (1, 5, 10, 11),
        ),
        "conv_causal": (
            [
                conv("c", 3, 3, 3, dilation=2, padding="causal", activation="tanh"),
                conv("c2", 4, 2, 3, stride=2, padding="causal"),
                Pool1D("p", 4, "avg", 2, 2, "valid"),
                lstm("l", 4, 3),
            ],
            (3, 8),
        ),
        "conv_bidirectional": (
            [
                conv("c", 3, 1, 3),
                Pool1D("p", 3, "avg", 1, 1, "valid"),
                bi("b", lstm, 3, 2, "concat", True),
                bi("b2", gru, 4, 2, "sum", True),
            ],
            (1, 6),
        ),
        "flatten": (
            [
                normalize("n", 3),
                lstm("l", 3, 4, return_sequences=True),
                Flatten("f", 6, 4),
                Dense("d", draw(2, 24), draw(2), activation="softmax"),
            ],
            (6,),
        ),
        "conv_flatten": (
            [
                conv("c", 3, 3, 3, stride=2),
                lstm("l", 3, 2, return_sequences=True),
                Flatten("f", 3, 2),
                Dense("d", draw(2, 6), draw(2)),
            ],
            (7,),
        ),
    }
    timesteps = {"flatten": 6, "conv_flatten": 7}
    return {
        key: (
            Model(
                3, layers, name=key, source="random weights", timesteps=timesteps.get(key)
            ).validate(),
            lengths,
        )
        for key, (layers, lengths) in models.items()
    }


def _shaping_input(model: Model, t_len: int, seed: int) -> np.ndarray:
    """Random sequences; behind a Masking layer 5 of them: masked at the end, at the start,
    in the middle (twice), fully masked, and one timestep equal to the mask value in one
    feature only (not masked)."""
    rng = np.random.default_rng(seed)
    first = model.layers[0]
    n = 5 if isinstance(first, Masking) else SHAPING_SEQUENCES
    x = rng.standard_normal((n, t_len, model.input_size)).astype(np.float32)
    if isinstance(first, Masking):
        v = first.mask_value
        x[0, 5:] = v
        x[1, :3] = v
        x[2, 2] = v
        x[2, 4] = v
        x[3] = v
        x[4, 3, 0] = v
    return x


MODELS = _shaping_models()


@pytest.fixture(scope="module")
def octave_runs(tmp_path_factory):
    """Every model, both precisions, every T of its list, in one Octave batch: predict, and
    step for the streamable ones; plus inputs that are too short (Conv1D / pooling without
    an output step) or of the wrong length (Flatten)."""
    require_tool("octave-cli")
    root = tmp_path_factory.mktemp("matlab_shaping")
    jobs, refused = {}, {}
    for k, (key, (model, lengths)) in enumerate(MODELS.items()):
        for p in MATLAB_PRECISIONS:
            files = backend.render(model, NAME, precision=p)
            for t_len in lengths:
                x = _shaping_input(model, t_len, seed=k * 100 + t_len)
                workdir = root / f"{key}_{p}_{t_len}"
                jobs[key, p, t_len] = runner.Job(
                    model, files, NAME, x, workdir, steps=model.streamable
                )
            short = backend.min_timesteps(model) - 1
            if model.timesteps is not None:
                short = model.timesteps - 1
            if short >= 1 and p == "single":
                x = _shaping_input(model, short, seed=k)
                refused[key] = runner.Job(model, files, NAME, x, root / f"{key}_short")
    start = time.perf_counter()
    results = runner.run_batch([*jobs.values(), *refused.values()], processes=2)
    print(f"\nOctave ran {len(results)} shaping jobs in {time.perf_counter() - start:.1f} s")
    done = {key: (job, result) for (key, job), result in zip(jobs.items(), results)}
    short = dict(zip(refused, zip(refused.values(), results[len(jobs) :])))
    return done, short


RUNS = [
    (key, p, t_len)
    for key, (_, lengths) in MODELS.items()
    for p in MATLAB_PRECISIONS
    for t_len in lengths
]


@pytest.mark.parametrize("key,precision,t_len", RUNS)
def test_matches_reference(octave_runs, key, precision, t_len):
    """Every T (the minimum included), in both precisions."""
    job, result = octave_runs[0][key, precision, t_len]
    result.check(job)
    assert result.output_class == precision
    assert result.predict.dtype == (np.float32 if precision == "single" else np.float64)
    ref = forward(job.model, job.x)
    assert result.predict.shape == ref.shape
    _, rel = error_metrics(result.predict, ref)
    assert rel.max() <= MATLAB_TOLERANCE[precision], float(rel.max())


@pytest.mark.parametrize("key,precision,t_len", RUNS)
def test_step_gives_predict_outputs(octave_runs, key, precision, t_len):
    """Masking / Normalize / LayerNorm models stream: NAME_step from a reset gives the
    model's output on the prefix so far at every step; a masked step keeps the state and
    repeats the previous output (zero right after a reset, also with an initial state)."""
    job, result = octave_runs[0][key, precision, t_len]
    model = job.model
    if not model.streamable:
        assert set(job.files) == {f"{NAME}_predict.m", f"{NAME}_weights.m"}
        assert result.steps is None
        return
    check_matlab_steps(job, result.check(job), MATLAB_TOLERANCE[precision])
    if isinstance(model.layers[0], Masking):
        assert not np.any(result.steps[3])  # a fully masked sequence: 0
        # masked at the end: the output stays what it was at the last real step
        assert np.array_equal(result.steps[0, 5:], np.repeat(result.steps[0, 4:5], 3, 0))


def test_streaming_models():
    streamed = {key for key, (model, _) in MODELS.items() if model.streamable}
    assert streamed == {"mask_stack", "mask_initial_state", "mask_norms", "norms"}


@pytest.mark.parametrize(
    "key", ["conv_valid", "conv_strided_dilated", "conv_causal", "flatten", "conv_flatten"]
)
def test_too_short_input_is_refused(octave_runs, key):
    """An input with fewer timesteps than the Conv1D/pooling layers need for one output
    step, or with another T than a Flatten model's, stops NAME_predict at an assert that
    says what T it needs."""
    job, result = octave_runs[1][key]
    assert result.error is not None
    model = job.model
    if model.timesteps is not None:
        assert f"x must have T = {model.timesteps} timesteps" in result.error
    else:
        need = backend.min_timesteps(model)
        assert model.output_timesteps(need) == 1 and model.output_timesteps(need - 1) == 0
        assert f"x needs T >= {need} timesteps" in result.error, result.error


@pytest.mark.parametrize("precision", MATLAB_PRECISIONS)
@pytest.mark.parametrize("key", sorted(MODELS))
def test_code_and_literals(key, precision):
    """The %#codegen rules hold, the files render deterministically, the step file exists
    for the streamable models only, and every weight (mean, std, gamma, beta, the Conv1D's
    F x K*D weights and bias) parses back bit-exactly."""
    model = MODELS[key][0]
    files = backend.render(model, NAME, precision=precision)
    assert files == backend.render(model, NAME, precision=precision)
    assert (f"{NAME}_step.m" in files) == model.streamable
    for filename, text in files.items():
        where = f"{key}/{precision}/{filename}"
        check_matlab_code(where, filename, text, precision, MATLAB_SHAPING_CALLS)
    check_matlab_literals(f"{key}/{precision}", model, files)


def test_help_states_masking_and_timesteps():
    """Help texts state the masking, the minimum T and the fixed T."""
    files = backend.render(MODELS["mask_stack"][0], NAME)
    assert "whose 3 features all equal 0.0 is masked" in files[f"{NAME}_predict.m"]
    assert "equal 0.0 the step is masked" in files[f"{NAME}_step.m"]
    predict = backend.render(MODELS["conv_strided_dilated"][0], NAME)[f"{NAME}_predict.m"]
    assert "assert(T >= 9, " in predict and "fewer than 9 timesteps" in predict
    assert "reads windows of timesteps\n%   (Conv1D and pooling)" in predict
    predict = backend.render(MODELS["flatten"][0], NAME)[f"{NAME}_predict.m"]
    assert "zeros(3, 6, 'single')" in predict and "flattens all its timesteps" in predict


def test_masked_step_state_in_help_and_persistent():
    """An LSTM with an initial state behind a Masking layer keeps its output in o (part of
    the stated persistent state); other layers need no extra state."""
    step = backend.render(MODELS["mask_initial_state"][0], NAME)[f"{NAME}_step.m"]
    assert "persistent h_l c_l o_l" in step and "persistent h_l2 c_l2 o_l2" in step
    assert (
        f"{(2 + 4 + 2 + 3 + 3 + 3) * 4} bytes of LSTM state (h and c) and held outputs (o)" in step
    )
    step = backend.render(MODELS["mask_stack"][0], NAME)[f"{NAME}_step.m"]
    assert "persistent h_l c_l\n" in step and "o_" not in step
