"""BatchNorm, Embedding (token ids), RepeatVector, GlobalPool, TimeSlice and the log_softmax
activation in generated MATLAB, on hand-built IR models, against the float64 reference in
both precisions, with NAME_step on every prefix where the model streams (tests/layers
checks the same kinds against Keras). Token-id models take ids of any numeric type and
stop with an error naming an id outside [0, vocabulary)."""

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
    BatchNorm,
    Bidirectional,
    Dense,
    Embedding,
    GlobalPool,
    Masking,
    Model,
    RepeatVector,
    SimpleRNN,
    TimeSlice,
)
from lstmgen.reference import forward
from lstmgen.targets import matlab as backend
from lstmgen.targets.matlab import runner
from lstmgen.verify import error_metrics

NAME = "net"
SEQUENCES = 5


def _models() -> dict[str, tuple[Model, tuple[int, ...]]]:
    """{key: (model, the sequence lengths T it runs with)}."""
    rng = np.random.default_rng(41)

    def draw(*shape):
        return rng.uniform(-0.6, 0.6, shape).astype(np.float32)

    def positive(n):
        return rng.uniform(0.3, 2.0, n).astype(np.float32)

    def lstm(name, d, h, **kw):
        return LSTM(name, draw(4 * h, d), draw(4 * h, h), draw(4 * h), **kw)

    def gru(name, d, h, **kw):
        return GRU(name, draw(3 * h, d), draw(3 * h, h), draw(3 * h), draw(3 * h), **kw)

    def rnn(name, d, h, **kw):
        return SimpleRNN(name, draw(h, d), draw(h, h), draw(h), **kw)

    def bn(name, n, gamma=True, beta=True, epsilon=1e-3):
        return BatchNorm(
            name,
            draw(n),
            positive(n),
            draw(n) if gamma else None,
            draw(n) if beta else None,
            epsilon,
        )

    def bi(name, d, h):
        return Bidirectional(
            name,
            lstm(name + "_f", d, h, return_sequences=True),
            lstm(name + "_b", d, h, return_sequences=True, go_backwards=True),
        )

    models = {
        "batch_norm": (
            [
                bn("bn", 3),
                lstm("l", 3, 4, return_sequences=True),
                bn("bn2", 4, gamma=False, epsilon=0.01),
                lstm("l2", 4, 3),
                bn("bn3", 3, beta=False),
                Dense("d", draw(2, 3), draw(2), activation="log_softmax"),
            ],
            (7,),
        ),
        "batch_norm_masked": (
            [Masking("m", 3, 0.0), bn("bn", 3, gamma=False, beta=False), gru("g", 3, 4)],
            (8,),
        ),
        "embedding_mask_zero": (
            [
                Embedding("emb", draw(7, 3), mask_zero=True),
                lstm("l", 3, 4, return_sequences=True),
                Dense("d", draw(2, 4), draw(2), activation="log_softmax"),
            ],
            (8,),
        ),
        "embedding": (
            [
                Embedding("emb", draw(20, 5)),
                rnn("r", 5, 4),
                Dense("d", draw(1, 4), draw(1), activation="sigmoid"),
            ],
            (1, 9),
        ),
        "embedding_mask_zero_last": (
            [Embedding("emb", draw(7, 3), mask_zero=True), gru("g", 3, 3)],
            (8,),
        ),
        "embedding_global_avg": (
            [
                Embedding("emb", draw(9, 3), mask_zero=True),
                lstm("l", 3, 4, return_sequences=True),
                GlobalPool("gp", 4, "avg"),
            ],
            (8,),
        ),
        "autoencoder": (
            [
                lstm("enc", 3, 5),
                RepeatVector("rv", 5, 6),
                lstm("dec", 5, 4, return_sequences=True),
                Dense("d", draw(3, 4), draw(3)),
            ],
            (3, 9),
        ),
        "stacked_decoder": (
            [
                gru("g", 3, 4, return_sequences=True),
                gru("g2", 4, 3),
                Dense("d", draw(3, 3), draw(3), activation="tanh"),
                RepeatVector("rv", 3, 4),
                lstm("l", 3, 3, return_sequences=True),
                lstm("l2", 3, 2),
            ],
            (11,),
        ),
        "masked_encoder": (  # the decoder after RepeatVector sees no mask
            [
                Masking("m", 3, 0.0),
                lstm("enc", 3, 4),
                RepeatVector("rv", 4, 5),
                gru("dec", 4, 3, return_sequences=True),
            ],
            (8,),
        ),
        "global_avg": ([lstm("l", 3, 4, return_sequences=True), GlobalPool("gp", 4)], (1, 9)),
        "global_max_head": (
            [
                gru("g", 3, 4, return_sequences=True),
                GlobalPool("gp", 4, "max"),
                Dense("d", draw(2, 4), draw(2), activation="softmax"),
            ],
            (9,),
        ),
        "global_avg_masked": (
            [Masking("m", 3, 0.0), lstm("l", 3, 4, return_sequences=True), GlobalPool("gp", 4)],
            (8,),
        ),
        "global_max_masked": (
            [
                Masking("m", 3, 0.0),
                rnn("r", 3, 4, return_sequences=True),
                GlobalPool("gp", 4, "max"),
            ],
            (8,),
        ),
        "crop_both": (
            [lstm("l", 3, 4, return_sequences=True), TimeSlice("crop", 4, 2, -3), lstm("l2", 4, 2)],
            (6, 10),
        ),
        "crop_start_sequences": (
            [
                gru("g", 3, 3, return_sequences=True),
                TimeSlice("crop", 3, 4),
                Dense("d", draw(2, 3), None),
            ],
            (5, 9),
        ),
        "last_k": (
            [lstm("l", 3, 4, return_sequences=True), TimeSlice("last3", 4, -3)],
            (1, 2, 7),
        ),
        "first_k": (
            [rnn("r", 3, 3, return_sequences=True), TimeSlice("first3", 3, 0, 3), gru("g", 3, 2)],
            (1, 8),
        ),
        "bidirectional_last_step": (
            [bi("bi", 3, 3), TimeSlice("last", 6, -1, None, True), Dense("d", draw(2, 6), draw(2))],
            (1, 7),
        ),
        "last_step_streams": (
            [
                Masking("m", 3, 0.0),
                lstm("l", 3, 4, return_sequences=True),
                TimeSlice("last", 4, -1, None, True),
                Dense("d", draw(2, 4), draw(2)),
            ],
            (8,),
        ),
        "last_step_sequence": (
            [gru("g", 3, 4, return_sequences=True), TimeSlice("last", 4, -1)],
            (6,),
        ),
        "masked_crop": (
            [
                Masking("m", 3, 0.0),
                lstm("l", 3, 4, return_sequences=True),
                TimeSlice("crop", 4, 1, -1),
                lstm("l2", 4, 2),
            ],
            (8,),
        ),
        "mixed_signs": (
            [lstm("l", 3, 4, return_sequences=True), TimeSlice("s", 4, -5, 4), lstm("l2", 4, 2)],
            (2, 6, 8),
        ),
    }
    return {
        key: (Model(1 if key.startswith("embedding") else 3, layers, name=key).validate(), lengths)
        for key, (layers, lengths) in models.items()
    }


MODELS = _models()


def _input(model: Model, t_len: int, seed: int) -> np.ndarray:
    """Random features, or token ids with padding 0 at the start, the end and in the middle;
    behind a Masking layer: masked at the end, at the start, in the middle, and one
    timestep equal to the mask value in one feature only (not masked)."""
    rng = np.random.default_rng(seed)
    if model.token_vocabulary:
        x = rng.integers(1, model.token_vocabulary, (SEQUENCES, t_len, 1)).astype(np.float32)
        x[0, 5:] = 0
        x[1, :3] = 0
        x[2, 2:3] = 0
        return x
    x = rng.standard_normal((SEQUENCES, t_len, 3)).astype(np.float32)
    if isinstance(model.layers[0], Masking):
        x[0, 5:] = 0.0
        x[1, :3] = 0.0
        x[2, 2:3] = 0.0
        x[2, 4:5] = 0.0
        x[4, 3:4, 0] = 0.0
    return x


RUNS = [
    (key, p, t) for key, (_, lengths) in MODELS.items() for p in MATLAB_PRECISIONS for t in lengths
]
#: (model, x, what the error names): ids out of range, not integers; slices of no timestep.
BAD_IDS = {
    "too_large": ("embedding", [[3], [20], [4]], "x(2) = 20 is not a token id in [0, 20)"),
    "negative": ("embedding", [[-1]], "x(1) = -1 is not a token id in [0, 20)"),
    "fraction": ("embedding", [[2], [1.5]], "x(2) = 1.5 is not a token id in [0, 20)"),
    "nan": ("embedding_mask_zero", [[np.nan]], "x(1) = NaN is not a token id in [0, 7)"),
}


@pytest.fixture(scope="module")
def octave_runs(tmp_path_factory):
    """Every model, both precisions, every T, in one Octave batch (steps where the model
    streams); plus the refused inputs: bad token ids (predict and step), inputs too short
    for a time slice, and a slice of mixed signs that keeps no timestep of a long input."""
    require_tool("octave-cli")
    root = tmp_path_factory.mktemp("matlab_new_kinds")
    jobs = {}
    for k, (key, p, t_len) in enumerate(RUNS):
        model = MODELS[key][0]
        files = backend.render(model, NAME, precision=p)
        x = _input(model, t_len, seed=k)
        jobs[key, p, t_len] = runner.Job(
            model, files, NAME, x, root / f"{key}_{p}_{t_len}", steps=model.streamable
        )
    for bad, (key, ids, _) in BAD_IDS.items():
        model = MODELS[key][0]
        x = np.array(ids, np.float32)[None]
        for how in ("predict", "steps"):
            jobs[bad, how] = runner.Job(
                model,
                backend.render(model, NAME),
                NAME,
                x,
                root / f"{bad}_{how}",
                predict=how == "predict",
                steps=how == "steps",
            )
    for key, t_len in (("crop_both", 5), ("mixed_signs", 9)):
        model = MODELS[key][0]
        x = _input(model, t_len, seed=1)
        workdir = root / f"{key}_refused"
        jobs[key, "refused"] = runner.Job(model, backend.render(model, NAME), NAME, x, workdir)
    start = time.perf_counter()
    results = runner.run_batch(list(jobs.values()), processes=2)
    print(f"\nOctave ran {len(jobs)} new-kind jobs in {time.perf_counter() - start:.1f} s")
    return {key: (job, result) for (key, job), result in zip(jobs.items(), results)}


@pytest.mark.parametrize("key,precision,t_len", RUNS)
def test_matches_reference(octave_runs, key, precision, t_len):
    job, result = octave_runs[key, precision, t_len]
    result.check(job)
    assert result.output_class == precision
    assert result.predict.dtype == (np.float32 if precision == "single" else np.float64)
    ref = forward(job.model, job.x)
    assert result.predict.shape == ref.shape
    _, rel = error_metrics(result.predict, ref)
    assert rel.max() <= MATLAB_TOLERANCE[precision], float(rel.max())


@pytest.mark.parametrize("key,precision,t_len", RUNS)
def test_step_gives_predict_outputs(octave_runs, key, precision, t_len):
    """Where the model streams (BatchNorm, Embedding, the last timestep), NAME_step from a
    reset gives the model's output on every prefix; a masked step (token id 0) holds."""
    job, result = octave_runs[key, precision, t_len]
    model = job.model
    if not model.streamable:
        assert set(job.files) == {f"{NAME}_predict.m", f"{NAME}_weights.m"}
        assert result.steps is None
        return
    check_matlab_steps(job, result.check(job), MATLAB_TOLERANCE[precision])
    if key == "embedding_mask_zero":  # padding at the end: the output holds
        assert np.array_equal(result.steps[0, 5:], np.repeat(result.steps[0, 4:5], 3, 0))


def test_streaming_models():
    streaming = {key for key, (model, _) in MODELS.items() if model.streamable}
    assert streaming == {
        "batch_norm",
        "batch_norm_masked",
        "embedding",
        "embedding_mask_zero",
        "embedding_mask_zero_last",
        "last_step_streams",
        "last_step_sequence",
    }


@pytest.mark.parametrize("bad", sorted(BAD_IDS))
@pytest.mark.parametrize("how", ["predict", "steps"])
def test_bad_token_id_is_an_error_naming_it(octave_runs, bad, how):
    job, result = octave_runs[bad, how]
    message = BAD_IDS[bad][2]
    assert result.error is not None
    if how == "predict":
        assert f"{NAME}_predict: {message}" in result.error, result.error
    else:  # the step of the first bad id
        value = message.split(" = ", 1)[1]
        assert f"{NAME}_step: x = {value}" in result.error, result.error


def test_token_ids_of_any_numeric_type(tmp_path):
    """int32, double, single and uint8 ids give the same output; the runner passes int32."""
    require_tool("octave-cli")
    model = MODELS["embedding_mask_zero"][0]
    for filename, text in backend.render(model, NAME).items():
        (tmp_path / filename).write_text(text)
    ids = "[0 3 6 1 0 2]"
    script = [f"cd('{tmp_path}');", f"y = {NAME}_predict(int32({ids}));"]
    for cls in ("double", "single", "uint8"):
        script.append(f"assert(isequal({NAME}_predict({cls}({ids})), y), '{cls}');")
    script.append("fid = fopen('y.bin', 'w'); fwrite(fid, y, 'single'); fclose(fid);")
    runner.octave_eval("\n".join(script))
    got = np.fromfile(tmp_path / "y.bin", np.float32).reshape(6, 2)
    ref = forward(model, np.array([0, 3, 6, 1, 0, 2], np.float32).reshape(1, 6, 1))[0]
    _, rel = error_metrics(got, ref)
    assert rel.max() <= MATLAB_TOLERANCE["single"]
    x = np.zeros((1, 2, 1), np.float32)
    assert runner._input_type(model, x, "single")[0] is np.int32


@pytest.mark.parametrize(
    "key,message",
    [
        ("crop_both", "x needs T >= 6 timesteps (TimeSlice keeps no timestep for fewer)"),
        ("mixed_signs", 'TimeSlice "s" keeps no timestep of this x'),
    ],
)
def test_slice_without_timesteps_is_refused(octave_runs, key, message):
    _, result = octave_runs[key, "refused"]
    assert result.error is not None and message in result.error, result.error


@pytest.mark.parametrize("precision", MATLAB_PRECISIONS)
@pytest.mark.parametrize("key", sorted(MODELS))
def test_code_and_literals(key, precision):
    """The %#codegen rules hold, the files render deterministically, and every weight
    (BatchNorm's statistics, the Embedding's table as E x vocabulary) parses back exactly."""
    model = MODELS[key][0]
    files = backend.render(model, NAME, precision=precision)
    assert files == backend.render(model, NAME, precision=precision)
    assert (f"{NAME}_step.m" in files) == model.streamable
    for filename, text in files.items():
        where = f"{key}/{precision}/{filename}"
        check_matlab_code(where, filename, text, precision, MATLAB_SHAPING_CALLS)
    check_matlab_literals(f"{key}/{precision}", model, files)


def _prose(text: str) -> str:
    """A file's text with the comment marks and line breaks of its help gone."""
    return " ".join(text.replace("%", " ").split())


def test_help_texts():
    """The help states the token-id input, the padding id, the minimum T of a time slice,
    and why a model has no step."""
    files = backend.render(MODELS["embedding_mask_zero"][0], NAME)
    predict, step = _prose(files[f"{NAME}_predict.m"]), _prose(files[f"{NAME}_step.m"])
    assert "x 1 x T token ids, one per timestep: integers in [0, 7)" in predict
    assert "Token id 0 is padding" in predict and "Token id 0 is padding" in step
    assert "token id at this timestep: an integer in [0, 7)" in step
    assert "type int32 and size [1 1]" in step
    assert "x0 = " not in predict and "x0 = " not in step
    predict = _prose(backend.render(MODELS["crop_both"][0], NAME)[f"{NAME}_predict.m"])
    assert "TimeSlice layers keep no timestep for fewer than 6 timesteps" in predict
    assert "the model keeps a slice of its timesteps (TimeSlice)" in predict
    predict = _prose(backend.render(MODELS["autoencoder"][0], NAME)[f"{NAME}_predict.m"])
    assert "the model repeats one vector as a new sequence (RepeatVector)" in predict
    assert "y 3 x T' single output at every timestep the model returns" in predict
    predict = _prose(backend.render(MODELS["global_avg_masked"][0], NAME)[f"{NAME}_predict.m"])
    assert "the model pools over all its timesteps (global pooling)" in predict
    step = _prose(backend.render(MODELS["last_step_sequence"][0], NAME)[f"{NAME}_step.m"])
    assert "as if the sequence ended at this timestep" in step
