"""The direct Keras reader (zipfile, json, h5py; no Keras class instantiated) against
Keras's own loaders, weight for weight, and against the frameworks' predictions:

- the seeded grid saved as `.keras` and `.h5`: the reader's IR equals the IR of the model
  Keras 3's `load_model` makes of the same file, array for array;
- tf_keras (Keras 2) models in every format it writes (`.h5`, `.keras`, `to_json()` +
  `save_weights()`): the reader's IR equals the IR of the live tf_keras model, and the
  file's oracle (tf_keras loading the file) is what the IR computes;
- the layers new to the reader (BatchNormalization, Embedding, RepeatVector, global
  pooling, Cropping1D), Keras 3's log_softmax activation and nested models through Keras
  3 files, JSON + `.weights.h5` pairs and an unzipped archive's `config.json` +
  `model.weights.h5`, against Keras 3's predict, in the reference and every target;
- pairs whose names or shapes disagree: one clear error.
"""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from support import (
    backend_matches_or_refuses,
    ir_differences,
    randomize_keras_weights,
    require_module,
)

import lstmgen
from lstmgen.errors import LstmgenError, ModelError
from lstmgen.extractors import open_model
from lstmgen.reference import forward
from lstmgen.targets import TARGETS
from lstmgen.verify import error_metrics

TOLERANCE = 1e-5


def _ids(vocabulary: int):
    def make(rng, shape):
        ids = rng.integers(0, vocabulary, shape)
        ids[0, :2] = 0  # padding that mask_zero masks
        return ids.astype(np.float32)

    return make


def _features(rng, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    x[0, -2:] = 0.0  # padded tail for models with Masking
    return x


def new_layer_specs(L) -> dict:
    """name -> (input shape, layers, inputs): the layers the reader maps beyond the grid."""
    return {
        "bn_sequence_and_vector": (
            (7, 3),
            [
                L.LSTM(5, return_sequences=True),
                L.BatchNormalization(),
                L.GRU(4),
                L.BatchNormalization(center=False, epsilon=0.01),
                L.Dense(2),
            ],
            _features,
        ),
        "embedding_mask_global_avg": (
            (9,),
            [
                L.Embedding(11, 4, mask_zero=True),
                L.LSTM(5, return_sequences=True),
                L.GlobalAveragePooling1D(),
                L.Dense(2, activation="softmax"),
            ],
            _ids(11),
        ),
        "autoencoder_repeat_vector": (
            (6, 2),
            [
                L.LSTM(4),
                L.RepeatVector(6),
                L.LSTM(3, return_sequences=True),
                L.TimeDistributed(L.Dense(2)),
            ],
            _features,
        ),
        "masking_global_max_cropping": (
            (8, 3),
            [
                L.Masking(0.0),
                L.SimpleRNN(4, return_sequences=True),
                L.Cropping1D((1, 2)),
                L.GlobalMaxPooling1D(),
                L.Dense(1),
            ],
            _features,
        ),
        "bidirectional_bn_scale_off": (
            (5, 3),
            [
                L.Bidirectional(
                    L.GRU(3, return_sequences=True, reset_after=False), merge_mode="sum"
                ),
                L.BatchNormalization(scale=False),
                L.LSTM(2),
            ],
            _features,
        ),
    }


def _build(framework, name, shape, layers, rng):
    ids = len(shape) == 1
    model = framework.Sequential(
        [framework.Input(shape, dtype="int32" if ids else "float32"), *layers], name=name
    )
    randomize_keras_weights(model, rng)
    return model


def _inputs(model, make, rng, n=4):
    shape = tuple(model.inputs[0].shape[1:])
    ids = len(shape) == 1
    x = np.asarray(make(rng, (n, *(shape if not ids else (*shape, 1)))), np.float32)
    return x, (x[..., 0].astype(np.int32) if ids else x)


def _save_all(model, folder, framework_name) -> dict:
    """Every format the framework writes: full `.keras` and `.h5`, and JSON + weights."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"keras": folder / "m.keras", "h5": folder / "m.h5"}
    model.save(paths["keras"])
    model.save(paths["h5"])
    (folder / "m.json").write_text(model.to_json())
    weights = folder / ("m.weights.h5" if framework_name == "keras" else "w.h5")
    model.save_weights(weights)
    paths["pair"] = (folder / "m.json", weights)
    if framework_name == "keras":  # a .keras archive unzipped: its config.json + weights
        with zipfile.ZipFile(paths["keras"]) as archive:
            archive.extractall(folder / "unzipped", ["config.json", "model.weights.h5"])
        unzipped = folder / "unzipped"
        paths["unzipped"] = (unzipped / "config.json", unzipped / "model.weights.h5")
    return paths


def _open(entry):
    if isinstance(entry, tuple):
        return open_model(entry[0], weights=entry[1])
    return open_model(entry)


# ---- the grid: reader vs Keras 3's loader -------------------------------------------------
def test_reader_matches_keras_loader_on_the_grid(grid_cases, keras, tmp_path):
    checked = 0
    for case in grid_cases:
        for suffix in (".keras", ".h5"):
            path = tmp_path / f"{case.spec.id}{suffix}"
            case.keras_model.save(path)
            direct = open_model(path).ir
            via_keras = lstmgen.load(keras.saving.load_model(path, compile=False))
            assert not ir_differences(direct, via_keras), (
                path.name,
                ir_differences(direct, via_keras),
            )
            checked += 1
    assert checked == 2 * len(grid_cases)


# ---- Keras 3 files: the new layers, nested models, pairs -------------------------------
@pytest.fixture(scope="module")
def keras3_files(keras, tmp_path_factory) -> dict:
    """name -> (live model, x as given to the IR, its predict, paths)."""
    L = keras.layers
    rng = np.random.default_rng(41)
    built = {}
    folder = tmp_path_factory.mktemp("keras3")
    specs = new_layer_specs(L)
    specs["log_softmax"] = (  # a Keras 3 activation (tf_keras has none by that name)
        (6, 3),
        [
            L.LSTM(5, return_sequences=True),
            L.TimeDistributed(L.Dense(4, activation="log_softmax")),
            L.GRU(3),
            L.Dense(4),
            L.Activation("log_softmax"),
        ],
        _features,
    )
    for name, (shape, layers, make) in specs.items():
        model = _build(keras, name, shape, layers, rng)
        x, fed = _inputs(model, make, rng)
        built[name] = (
            model,
            x,
            model.predict(fed, verbose=0),
            _save_all(model, folder / name, "keras"),
        )
    # nested: a Sequential inside a functional model inside a Sequential
    inner = keras.Sequential(
        [keras.Input((6, 3)), L.LSTM(4, return_sequences=True, name="inner_lstm")], name="inner"
    )
    inputs = keras.Input((6, 3))
    middle = keras.Model(inputs, L.GRU(3, name="middle_gru")(inner(inputs)), name="middle")
    model = keras.Sequential([keras.Input((6, 3)), middle, L.Dense(2, name="head")], name="outer")
    randomize_keras_weights(inner, rng)
    randomize_keras_weights(middle, rng)
    randomize_keras_weights(model, rng)
    x, fed = _inputs(model, _features, rng)
    built["nested"] = (
        model,
        x,
        model.predict(fed, verbose=0),
        _save_all(model, folder / "nested", "keras"),
    )
    return built


@pytest.mark.parametrize("fmt", ["keras", "h5", "pair", "unzipped"])
def test_keras3_files_match_keras(keras3_files, fmt):
    for name, (model, x, expected, paths) in keras3_files.items():
        loaded = _open(paths[fmt])
        differences = ir_differences(loaded.ir, lstmgen.load(model))
        assert not differences, (name, fmt, differences)
        assert error_metrics(forward(loaded.ir, x), expected)[1].max() <= TOLERANCE, (name, fmt)
        assert loaded.oracle_name.startswith("Keras 3")


def test_keras3_file_oracle_is_keras_predict(keras3_files):
    _, x, expected, paths = keras3_files["embedding_mask_global_avg"]
    for fmt in ("keras", "pair"):
        assert error_metrics(_open(paths[fmt]).predict(x), expected)[1].max() <= 1e-6


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_keras3_files_in_every_target(keras3_files, target, tmp_path):
    cases = {
        name: (_open(paths["keras"]).ir, x, expected)
        for name, (_, x, expected, paths) in keras3_files.items()
    }
    backend_matches_or_refuses(target, cases, tmp_path, TOLERANCE)


# ---- tf_keras (Keras 2) files ------------------------------------------------------------
@pytest.fixture(scope="module")
def tf_keras_files(tmp_path_factory) -> dict:
    tf_keras = require_module("tf_keras")
    L = tf_keras.layers
    rng = np.random.default_rng(42)
    norm = L.Normalization()
    norm.adapt(rng.normal(1, 3, (20, 7, 3)).astype(np.float32))
    specs = {
        **new_layer_specs(L),
        "hard_sigmoid_gates": (
            (7, 3),
            [
                norm,
                L.LSTM(5, recurrent_activation="hard_sigmoid", return_sequences=True),
                L.GRU(4, recurrent_activation="hard_sigmoid", reset_after=True),
                L.Dense(3, activation="hard_sigmoid"),
            ],
            _features,
        ),
        "conv_pool_layer_norm": (
            (12, 2),
            [
                L.Conv1D(4, 3, padding="causal", activation="relu"),
                L.MaxPooling1D(2),
                L.LayerNormalization(),
                L.LSTM(3, go_backwards=True),
                L.Dense(2),
            ],
            _features,
        ),
    }
    built = {}
    folder = tmp_path_factory.mktemp("tf_keras")
    for name, (shape, layers, make) in specs.items():
        model = _build(tf_keras, name, shape, layers, rng)
        x, fed = _inputs(model, make, rng)
        paths = _save_all(model, folder / name, "tf_keras")
        built[name] = (model, x, model.predict(fed, verbose=0), paths)
    return built


@pytest.mark.parametrize("fmt", ["keras", "h5", "pair"])
def test_tf_keras_files_match_tf_keras(tf_keras_files, fmt):
    for name, (model, x, expected, paths) in tf_keras_files.items():
        loaded = _open(paths[fmt])
        assert loaded.ir.source.startswith("Keras 2."), loaded.ir.source
        differences = ir_differences(loaded.ir, lstmgen.load(model))
        assert not differences, (name, fmt, differences)
        assert error_metrics(forward(loaded.ir, x), expected)[1].max() <= TOLERANCE, (name, fmt)


def test_tf_keras_file_oracle_is_tf_keras(tf_keras_files):
    _, x, expected, paths = tf_keras_files["hard_sigmoid_gates"]
    for fmt in ("h5", "pair"):
        loaded = _open(paths[fmt])
        assert loaded.oracle_name.startswith("tf_keras ")
        assert error_metrics(loaded.predict(x), expected)[1].max() <= 1e-6
    ir = _open(paths["h5"]).ir
    assert ir.layers[1].gate_activation == "hard_sigmoid_0.2"  # Keras 2's 0.2x + 0.5


# ---- pairs that disagree, and usage errors ---------------------------------------------
def test_pair_with_a_missing_layer_names_it(keras3_files, tmp_path):
    _, _, _, paths = keras3_files["bn_sequence_and_vector"]
    json_path, weights = paths["pair"]
    config = json.loads(json_path.read_text())
    config["config"]["layers"].append(
        {"class_name": "Dense", "config": {"name": "extra", "units": 1}}
    )
    bad = tmp_path / "extra.json"
    bad.write_text(json.dumps(config))
    with pytest.raises(ModelError, match="'extra'.*nothing at 'layers/dense_1'"):
        lstmgen.load(bad, weights=weights)


def test_legacy_pair_with_a_missing_layer_names_it(tf_keras_files, tmp_path):
    _, _, _, paths = tf_keras_files["autoencoder_repeat_vector"]
    json_path, weights = paths["pair"]
    config = json.loads(json_path.read_text())
    config["config"]["layers"][-1]["config"]["name"] = "renamed"
    bad = tmp_path / "renamed.json"
    bad.write_text(json.dumps(config))
    with pytest.raises(ModelError, match="has no layer 'renamed' \\(its layers: "):
        lstmgen.load(bad, weights=weights)


def test_pair_with_a_shape_mismatch_names_the_array(tf_keras_files, tmp_path):
    _, _, _, paths = tf_keras_files["autoencoder_repeat_vector"]
    json_path, weights = paths["pair"]
    config = json.loads(json_path.read_text())
    lstm = next(l for l in config["config"]["layers"] if l["class_name"] == "LSTM")
    lstm["config"]["units"] += 1
    bad = tmp_path / "wider.json"
    bad.write_text(json.dumps(config))
    with pytest.raises(ModelError, match=r"\(LSTM\): kernel has shape \(2, 16\).*needs \(2, 20\)"):
        lstmgen.load(bad, weights=weights)


def test_json_needs_weights_and_weights_need_json(keras3_files, tmp_path):
    _, _, _, paths = keras3_files["nested"]
    json_path, weights = paths["pair"]
    with pytest.raises(LstmgenError, match="needs its weights file: --weights"):
        lstmgen.load(json_path)
    with pytest.raises(LstmgenError, match="--weights goes with an architecture JSON"):
        lstmgen.load(paths["keras"], weights=weights)


def test_cli_pair(tf_keras_files, tmp_path, capsys):
    from lstmgen.cli import main

    _, _, _, paths = tf_keras_files["conv_pool_layer_norm"]
    json_path, weights = paths["pair"]
    assert main(["inspect", str(json_path), "--weights", str(weights)]) == 0
    assert "files m.json + w.h5" in capsys.readouterr().out
    out = tmp_path / "out"
    assert main(["generate", str(json_path), "--weights", str(weights), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["model.c", "model.h"]
