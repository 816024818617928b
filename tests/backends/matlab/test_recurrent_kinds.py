"""GRU, SimpleRNN, Bidirectional and LSTM projection in generated MATLAB, on hand-built IR
models, against the float64 reference in both precisions (measured 1.4e-7 single, 4.4e-16
double; tests/differential and tests/layers check the same kinds against the frameworks).
NAME_step, where the model streams, gives the model's output on every prefix."""

from __future__ import annotations

import time

import numpy as np
import pytest
from support import (
    MATLAB_PRECISIONS,
    MATLAB_TOLERANCE,
    check_matlab_code,
    check_matlab_literals,
    check_matlab_steps,
    require_tool,
)

from lstmgen.ir import GRU, LSTM, Activation, Bidirectional, Dense, Model, SimpleRNN
from lstmgen.reference import forward
from lstmgen.targets import matlab as backend
from lstmgen.targets.matlab import runner
from lstmgen.verify import error_metrics

NAME = "net"


def _recurrent_models() -> dict[str, Model]:
    """Every branch of the new layer kinds: GRU with reset_after (with and without the
    recurrent bias) and without it, no bias, go_backwards; SimpleRNN; LSTM projection alone
    and with every other LSTM feature; Bidirectional of each kind in every merge mode,
    returning sequences or not, stacked; and part identifiers that collide with a layer's."""
    rng = np.random.default_rng(21)

    def draw(*shape):
        return rng.uniform(-0.6, 0.6, shape).astype(np.float32)

    def gru(name, d, h, reset_after=True, bias=True, recurrent_bias=True, **kw):
        return GRU(
            name,
            draw(3 * h, d),
            draw(3 * h, h),
            draw(3 * h) if bias else None,
            draw(3 * h) if reset_after and recurrent_bias else None,
            reset_after=reset_after,
            **kw,
        )

    def rnn(name, d, h, bias=True, **kw):
        return SimpleRNN(name, draw(h, d), draw(h, h), draw(h) if bias else None, **kw)

    def lstm(name, d, h, projection=None, **kw):
        return LSTM(
            name,
            draw(4 * h, d),
            draw(4 * h, projection or h),
            draw(4 * h),
            projection=draw(projection, h) if projection else None,
            **kw,
        )

    def bi(name, make, d, h, merge, sequences, **kw):
        return Bidirectional(
            name,
            make(name + " fw", d, h, return_sequences=sequences, **kw),
            make(name + " bw", d, h, return_sequences=sequences, go_backwards=True, **kw),
            merge_mode=merge,
        )

    models = {
        "gru": [
            gru("g1", 3, 6, return_sequences=True),
            gru("g2", 6, 4, recurrent_bias=False),
            Dense("d", draw(2, 4), draw(2)),
        ],
        "gru_reset_before": [
            gru(
                "g1",
                3,
                5,
                reset_after=False,
                return_sequences=True,
                gate_activation="hard_sigmoid_0.2",
                cell_activation="softsign",
            ),
            gru("g2", 5, 1, reset_after=False, bias=False, return_sequences=True),
        ],
        "gru_backwards": [
            gru("g", 3, 4, go_backwards=True, return_sequences=True),
            gru("g2", 4, 2, reset_after=False, go_backwards=True),
        ],
        "simple_rnn": [
            rnn("r1", 3, 7, activation="relu", return_sequences=True),
            rnn("r2", 7, 3, bias=False, activation="linear"),
            Dense("d", draw(2, 3), None, activation="softmax"),
        ],
        "projection": [
            lstm("p1", 3, 6, projection=4, return_sequences=True),
            lstm("p2", 4, 5, projection=1),
        ],
        "projection_features": [
            lstm(
                "p",
                3,
                5,
                projection=2,
                return_sequences=True,
                peephole=draw(3, 5),
                clip=1.5,
                input_forget=True,
                initial_h=draw(2),
                initial_c=draw(5),
            )
        ],
        "mixed_stream": [
            lstm("l", 3, 4, return_sequences=True),
            gru("g", 4, 3, return_sequences=True),
            rnn("r", 3, 2, return_sequences=True),
        ],
        "bi_stacked": [
            bi("b1", lstm, 3, 5, "concat", True),
            bi("b2", gru, 10, 3, "ave", True, reset_after=False),
            bi("b3", rnn, 3, 2, "concat", False),
            Dense("d", draw(1, 4), draw(1), activation="sigmoid"),
        ],
        "bi_projection": [bi("bp", lstm, 3, 5, "mul", True, projection=2), lstm("l", 2, 3)],
        "bi_names": [
            bi("x", rnn, 3, 3, "concat", True),
            rnn("x_fw", 6, 2, return_sequences=True),
            Activation("x_bw", 2, "tanh"),
        ],
        # a 40-character identifier ending in "_", a part name taken by a later layer, and
        # names that are hostile in a MATLAB comment
        "bi_long_names": [
            bi("a" * 39 + " b\n%'%{ \u540d", gru, 3, 2, "sum", True),
            rnn("a" * 37 + "_fw", 2, 2),
        ],
    }
    kinds = {"lstm": lstm, "gru": gru, "rnn": rnn}
    for k, (merge, sequences) in enumerate(
        (m, s) for m in ("concat", "sum", "mul", "ave") for s in (True, False)
    ):
        kind = list(kinds)[k % 3]
        models[f"bi_{kind}_{merge}_{'seq' if sequences else 'last'}"] = [
            bi("bi", kinds[kind], 3, 4, merge, sequences)
        ]
    return {
        key: Model(3, layers, name=key, source="random weights").validate()
        for key, layers in models.items()
    }


MODELS = _recurrent_models()


@pytest.fixture(scope="module")
def octave_runs(tmp_path_factory):
    """Every model, both precisions, in one Octave batch: predict, and step for the
    streamable ones (GRU and SimpleRNN stream; Bidirectional and go_backwards don't)."""
    require_tool("octave-cli")
    root = tmp_path_factory.mktemp("matlab_recurrent")
    jobs = {}
    for k, (key, model) in enumerate(MODELS.items()):
        t_len = 1 if key == "bi_lstm_concat_seq" else 9  # T = 1 once: both parts see 1 step
        x = np.random.default_rng(k).standard_normal((3, t_len, 3)).astype(np.float32)
        for p in MATLAB_PRECISIONS:
            files = backend.render(model, NAME, precision=p)
            jobs[key, p] = runner.Job(
                model, files, NAME, x, root / f"{key}_{p}", steps=model.streamable
            )
    start = time.perf_counter()
    results = runner.run_batch(list(jobs.values()), processes=2)
    print(f"\nOctave ran {len(jobs)} recurrent-kind jobs in {time.perf_counter() - start:.1f} s")
    return {key: (job, result.check(job)) for (key, job), result in zip(jobs.items(), results)}


@pytest.mark.parametrize("precision", MATLAB_PRECISIONS)
@pytest.mark.parametrize("key", sorted(MODELS))
def test_matches_reference(octave_runs, key, precision):
    job, result = octave_runs[key, precision]
    assert result.output_class == precision
    assert result.predict.dtype == (np.float32 if precision == "single" else np.float64)
    _, rel = error_metrics(result.predict, forward(job.model, job.x))
    assert rel.max() <= MATLAB_TOLERANCE[precision], float(rel.max())


@pytest.mark.parametrize("precision", MATLAB_PRECISIONS)
@pytest.mark.parametrize("key", sorted(MODELS))
def test_step_gives_predict_outputs(octave_runs, key, precision):
    """GRU / SimpleRNN / projected LSTM: NAME_step from a reset = NAME_predict, at every
    step the output of the model on the prefix so far; no step file for Bidirectional."""
    job, result = octave_runs[key, precision]
    if "bidirectional" in job.model.kinds() or not job.model.streamable:
        assert set(job.files) == {f"{NAME}_predict.m", f"{NAME}_weights.m"}
        assert result.steps is None
        return
    assert result.steps.dtype == result.predict.dtype
    check_matlab_steps(job, result, MATLAB_TOLERANCE[precision], [1, 4, job.x.shape[1]])


def test_every_recurrent_kind_streams():
    streamed = set()
    for model in MODELS.values():
        if model.streamable:
            streamed |= model.kinds()
    assert {"gru", "simple_rnn", "lstm"} <= streamed


@pytest.mark.parametrize("precision", MATLAB_PRECISIONS)
@pytest.mark.parametrize("key", sorted(MODELS))
def test_code_and_literals(key, precision):
    """The %#codegen rules hold, the files render deterministically, and every weight (GRU
    recurrent bias, projection, initial state, both Bidirectional parts) parses back
    bit-exactly under its documented identifier."""
    model = MODELS[key]
    files = backend.render(model, NAME, precision=precision)
    assert files == backend.render(model, NAME, precision=precision)
    for filename, text in files.items():
        check_matlab_code(f"{key}/{precision}/{filename}", filename, text, precision)
    check_matlab_literals(f"{key}/{precision}", model, files)


def test_part_identifiers():
    """A Bidirectional layer's parts are IDENT_fw / IDENT_bw, with a numeric suffix where a
    layer has that identifier already; the help says why there is no step file."""
    files = backend.render(MODELS["bi_names"], NAME)
    text = files[f"{NAME}_predict.m"]
    assert "(a Bidirectional layer)" in text  # why there is no step file
    assert "\ny_x_bw = " in text
    for ident in ("W_x_fw", "W_x_fw_2", "W_x_bw_2"):
        assert f"\nw.{ident} = " in files[f"{NAME}_weights.m"], ident


def test_state_size_in_help():
    """The help states the persistent state: h (P values with a projection) and c."""
    step = backend.render(MODELS["gru"], NAME)[f"{NAME}_step.m"]
    assert "h of every GRU layer" in step and f"{(6 + 4) * 4} bytes of recurrent state" in step
    step = backend.render(MODELS["projection"], NAME, precision="double")[f"{NAME}_step.m"]
    assert f"{(4 + 6 + 1 + 5) * 8} bytes of LSTM state (h and c)" in step
    assert "persistent h_p1 c_p1" in step and "h_p2 = zeros(1, 1, 'double');" in step
