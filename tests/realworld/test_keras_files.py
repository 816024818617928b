"""Third-party Keras models (../shared/real_models, see INDEX.md there) through inspect,
generate and verify in C, Python and MATLAB, each against its own oracle:

- files written by tf.keras 2.x / Keras 2 (`.h5`, JSON + weights pairs): tf_keras, which
  runs Keras 2 (its hard_sigmoid is 0.2x + 0.5) on current TensorFlow;
- files written by Keras 3: Keras 3's `model.predict`;
- Keras 1 files: the predictions Keras 1.2.2 itself stored with the DL4J fixture, and, for
  longer sequences, tf_keras running the same arrays re-stacked into Keras 2's layout by a
  transcription written here (support.keras1_in_tf_keras, from Keras 1's definitions,
  independent of lstmgen's reader), itself checked against those stored predictions first.

The Lambda model is refused: one error line, exit 2, nothing written. Where the folder is
absent these tests skip (they fail in CI, where it must be present).
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from support import (
    keras1_arrays,
    keras1_in_tf_keras,
    real_model,
    require_module,
    targets_match_oracles,
)

from lstmgen.cli import main
from lstmgen.extractors import Loaded, open_model
from lstmgen.reference import forward
from lstmgen.sampling import sample_inputs
from lstmgen.targets import get_runner, render
from lstmgen.verify import error_metrics

TOLERANCE = 1e-5
FREE_TIMESTEPS = 24  # Keras 1 models: their T is free, run longer than the fixtures' T
K1 = "dl4j_k1_rnn_fixtures_untrained/"
DL4J = "dl4j_simple_lstm_tf_k1/simple_lstm_tf_keras_1_"
EGOR = "egor_music_k107_lstm/"
#: case -> (model file, weights file or None, oracle: "keras" | "tf_keras" | "keras1")
CASES = {
    "circuitrnn_lstm": ("circuitrnn_lstm/lstm_model.h5", None, "tf_keras"),
    "guitarlstm_ts9": ("guitarlstm_ts9/ts9_model.h5", None, "tf_keras"),
    "thesis_coffee": ("thesis_coffee_lstm_tfk215/vanilla_lstm_Coffee.h5", None, "tf_keras"),
    "har_lstm_bn": ("har_lstm_bn_keras3h5/lstm_model.h5", None, "keras"),
    "imdb_embedding": ("imdb_embedding_simplernn/simple_rnn_model.h5", None, "keras"),
    "mikniloes_pair": (
        "mikniloes_keras_lstm_k2_pair/lstm_model.json",
        "mikniloes_keras_lstm_k2_pair/lstm_model.h5",
        "tf_keras",
    ),
    "sazaesan_pair": (
        "sazaesan_lstm_k222_pair/lstm.json",
        "sazaesan_lstm_k222_pair/lstm.h5",
        "tf_keras",
    ),
    "dl4j_k1_full": (f"{DL4J}model.h5", None, "keras1"),
    "dl4j_k1_pair": (f"{DL4J}config.json", f"{DL4J}weights.h5", "keras1"),
    "k1_simple_rnn": (f"{K1}simple_rnn_tensorflow_1.h5", None, "keras1"),
    "k1_lstm": (f"{K1}lstm_tensorflow_1.h5", None, "keras1"),
    "k1_bidirectional": (f"{K1}bidirectional_lstm_tensorflow_1.h5", None, "keras1"),
    "k1_embedding": (f"{K1}embedding_lstm_tensorflow_1.h5", None, "keras1"),
    "egor_k107_pair": (
        f"{EGOR}model_config_extracted.json",
        f"{EGOR}text_model_saved.h5py",
        "keras1",
    ),
    "egor_k107_full": (f"{EGOR}model_dump.h5py", None, "keras1"),
}
# 128 steps of LSTM(128) + LSTM(64), 2 x LSTM(128): pure Python is slow, run fewer
SEQUENCES = {"har_lstm_bn": 2, "egor_k107_pair": 2, "egor_k107_full": 2}
#: Keras 1 models whose generated code buffers the file's own T (a Bidirectional's
#: backward pass): run at that T, not FREE_TIMESTEPS.
OWN_TIMESTEPS = {"k1_bidirectional"}


def _paths(case: str) -> tuple:
    model, weights, _ = CASES[case]
    return real_model(model), real_model(weights) if weights else None


def _load(case: str) -> Loaded:
    model, weights = _paths(case)
    return open_model(model, **({"weights": weights} if weights else {}))


def _args(case: str) -> list[str]:
    model, weights = _paths(case)
    return [str(model), *(["--weights", str(weights)] if weights else [])]


def _keras1_model(case: str, tf_keras):
    """The Keras 1 model's tf_keras transcription (architecture from its JSON, arrays read
    with h5py)."""
    model, weights = _paths(case)
    if weights is None:
        with h5py.File(model, "r") as fh:
            config = json.loads(fh.attrs["model_config"])
            arrays = keras1_arrays(fh["model_weights"])
    else:
        config = json.loads(model.read_text())
        with h5py.File(weights, "r") as fh:
            arrays = keras1_arrays(fh)
    return keras1_in_tf_keras(tf_keras, config["config"], arrays)


@pytest.fixture(scope="module")
def tf_keras():
    return require_module("tf_keras")


@pytest.fixture(scope="module")
def oracles(tf_keras) -> dict:
    """case -> (Loaded with the case's oracle, inputs): every model loaded once."""
    built = {}
    for case, (_, _, oracle) in CASES.items():
        loaded = _load(case)
        if oracle == "keras1":
            transcription = _keras1_model(case, tf_keras)
            ids = loaded.ir.token_vocabulary is not None

            def predict(x, model=transcription, ids=ids):
                x = x[..., 0].astype(np.int32) if ids else x
                return model.predict(x, verbose=0)

            loaded = Loaded(loaded.ir, predict, "the Keras 1 transcription in tf_keras")
            timesteps = loaded.ir.timesteps if case in OWN_TIMESTEPS else FREE_TIMESTEPS
        else:
            timesteps = loaded.ir.timesteps or FREE_TIMESTEPS
        x = sample_inputs(loaded.ir, SEQUENCES.get(case, 3), timesteps, seed=7)
        built[case] = (loaded, x)
    return built


def test_keras1_transcription_matches_keras122_predictions(tf_keras):
    """The test's own Keras 1 transcription reproduces what Keras 1.2.2 predicted."""
    with h5py.File(real_model(f"{DL4J}inputs_and_outputs.h5"), "r") as fh:
        x, y = fh["inputs/lstm_input_1"][()], fh["predictions/dense_1"][()]
    model = _keras1_model("dl4j_k1_full", tf_keras)
    assert error_metrics(model.predict(x, verbose=0), y)[1].max() <= TOLERANCE


def _keras122_predictions() -> tuple:
    """The inputs and the predictions Keras 1.2.2 itself stored with the DL4J fixture."""
    with h5py.File(real_model(f"{DL4J}inputs_and_outputs.h5"), "r") as fh:
        return fh["inputs/lstm_input_1"][()], fh["predictions/dense_1"][()]


@pytest.mark.parametrize("case", ["dl4j_k1_full", "dl4j_k1_pair"])
def test_keras1_reference_matches_keras122_predictions(case):
    """Full file and architecture + weights pair: the float64 reference reproduces Keras
    1.2.2's own stored predictions (the targets: test_targets_match_oracle)."""
    x, y = _keras122_predictions()
    loaded = _load(case)
    assert "Keras 1.2.2" in loaded.ir.source
    assert error_metrics(forward(loaded.ir, x), y)[1].max() <= TOLERANCE


@pytest.mark.parametrize("case", sorted(CASES))
def test_reference_matches_oracle(case, oracles):
    """The converted model (float64 reference) against the case's oracle."""
    loaded, x = oracles[case]
    expected = CASES[case][2]
    assert loaded.oracle_name.startswith(
        {"keras": "Keras 3", "tf_keras": "tf_keras", "keras1": "the Keras 1"}[expected]
    )
    assert error_metrics(forward(loaded.ir, x), loaded.predict(x))[1].max() <= TOLERANCE


@pytest.mark.parametrize("target", ["c", "python", "matlab"])
def test_targets_match_oracle(target, oracles, tmp_path):
    """Every case's generated code in `target` against the case's oracle, and the DL4J
    Keras 1 model (full file and pair) against the predictions Keras 1.2.2 stored (the
    Python target runs all cases in one subprocess, the MATLAB target in one Octave)."""
    cases = {case: (loaded.ir, x, loaded.predict(x)) for case, (loaded, x) in oracles.items()}
    stored_x, stored_y = _keras122_predictions()
    for case in ("dl4j_k1_full", "dl4j_k1_pair"):
        cases[f"{case} (Keras 1.2.2 stored)"] = (oracles[case][0].ir, stored_x, stored_y)
    errors = targets_match_oracles(cases, tmp_path, targets=(target,), tolerance=TOLERANCE)
    assert sorted(errors[target]) == sorted(cases)
    for case, error in sorted(errors[target].items()):  # the figures, with pytest -s
        print(f"{target:7s} {case:18s} max relative error {error:.2e}")


@pytest.mark.parametrize("case", sorted(CASES))
def test_inspect_and_generate_cli(case, tmp_path, capsys):
    """The commands a user runs: inspect, then generate (one target per case in turn, so
    every target's command runs on a third of the files; test_targets_match_oracle renders
    every target for every file)."""
    assert main(["inspect", *_args(case)]) == 0
    out = capsys.readouterr().out
    assert _load(case).ir.layers[0].name in out
    target = ("c", "python", "matlab")[sorted(CASES).index(case) % 3]
    folder = tmp_path / target
    code = main(["generate", *_args(case), "--target", target, "--out", str(folder)])
    assert code == 0, capsys.readouterr().err
    assert any(folder.iterdir())


@pytest.mark.parametrize(
    "case, oracle",
    [
        ("circuitrnn_lstm", "tf_keras 2"),
        ("sazaesan_pair", "tf_keras 2"),
        ("imdb_embedding", "Keras 3"),
    ],
)
def test_verify_cli_names_its_oracle(case, oracle, capsys):
    require_module("tf_keras")
    assert main(["verify", *_args(case), "--target", "python", "--sequences", "2"]) == 0
    assert f"against {oracle}" in capsys.readouterr().out


def test_verify_cli_keras1_uses_the_reference(capsys):
    assert main(["verify", *_args("k1_lstm"), "--target", "python", "--sequences", "2"]) == 0
    assert "float64 numpy reference" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["inspect", "generate", "verify"])
def test_lambda_model_is_refused(command, tmp_path, capsys):
    path = real_model("waterq_lstm_keras3/lstm_model.keras")
    out = tmp_path / "out"
    args = [command, str(path)] + (["--out", str(out)] if command == "generate" else [])
    assert main(args) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "of type Lambda" in lines[0] and "never" in lines[0]
    assert captured.out == "" and not out.exists()


@pytest.mark.parametrize("target", ["c", "python", "matlab"])
def test_char_model_streams_like_a_sequence(target, oracles, tmp_path):
    """The Keras 1 char model, stepped from reset one character at a time, ends where a
    whole-sequence predict from a zero state ends (and where the oracle ends). Octave
    re-reads the weight literals on every NAME_step call: MATLAB streams 6 characters."""
    loaded, x = oracles["egor_k107_pair"]
    if target == "matlab":
        x = x[:1, :6]
    files = render(target, loaded.ir, "net")
    runner = get_runner(target)
    streamed = runner.run_steps(loaded.ir, files, "net", x, tmp_path)
    whole = runner.run(loaded.ir, files, "net", x, tmp_path)
    assert error_metrics(streamed[:, -1], whole)[1].max() <= TOLERANCE
    assert error_metrics(streamed[:, -1], loaded.predict(x))[1].max() <= TOLERANCE
