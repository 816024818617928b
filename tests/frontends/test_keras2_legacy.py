"""Legacy HDF5 models saved by tf.keras 2.15 (Keras 2): `hard_sigmoid` means
clip(0.2x + 0.5, 0, 1) there, not Keras 3's relu6(x + 3) / 6. Oracles: the predictions
tf.keras 2.15 itself made, stored with the fixtures (tests/fixtures/keras2/make_fixtures.py),
and tf_keras (Keras 2 on current TensorFlow), which verify runs for such files."""

from __future__ import annotations

import numpy as np
import pytest
from support import FIXTURES as ALL_FIXTURES  # noqa: E402
from support import require_module

import lstmgen
from lstmgen.cli import main
from lstmgen.errors import UnsupportedLayerError
from lstmgen.extractors import open_model
from lstmgen.reference import forward
from lstmgen.targets import BASIC_LAYERS, TARGETS, get_backend, get_runner, render
from lstmgen.verify import error_metrics

FIXTURES = ALL_FIXTURES / "keras2"
MODELS = ["lstm_hard_sigmoid", "gru_reset_before", "plain_sigmoid"]


@pytest.mark.parametrize("name", MODELS)
def test_keras2_files_match_tf215_predictions(name, tmp_path):
    data = np.load(FIXTURES / f"{name}.npz")
    assert str(data["tf_version"]).startswith("2.15")
    loaded = open_model(FIXTURES / f"{name}.h5")
    assert "Keras 2.15" in loaded.ir.source
    assert error_metrics(forward(loaded.ir, data["x"]), data["y"])[1].max() <= 1e-5
    for target in sorted(TARGETS):
        if not loaded.ir.kinds() <= set(getattr(get_backend(target), "LAYERS", BASIC_LAYERS)):
            continue  # tests/test_recurrent_layers.py checks the refusal
        got = get_runner(target).run(
            loaded.ir, render(target, loaded.ir, "net"), "net", data["x"], tmp_path
        )
        assert error_metrics(got, data["y"])[1].max() <= 1e-5, target


def test_hard_sigmoid_means_keras2s(keras):
    ir = lstmgen.load(FIXTURES / "lstm_hard_sigmoid.h5")
    assert [l.gate_activation for l in ir.layers[:2]] == ["hard_sigmoid_0.2"] * 2


@pytest.mark.parametrize("name", MODELS)
def test_the_oracle_is_tf_keras_and_agrees_with_tf215(name):
    require_module("tf_keras")
    data = np.load(FIXTURES / f"{name}.npz")
    loaded = open_model(FIXTURES / f"{name}.h5")
    assert loaded.oracle_name.startswith("tf_keras ")
    assert error_metrics(loaded.predict(data["x"]), data["y"])[1].max() <= 1e-5


def test_keras3_predict_on_a_keras2_file_is_wrong(keras, tmp_path):
    """Why the oracle is tf_keras: Keras 3 loads the file (once the Keras-2-only
    time_major argument is dropped), but computes another model."""
    import json
    import shutil

    import h5py

    copy = tmp_path / "copy.h5"
    shutil.copyfile(FIXTURES / "lstm_hard_sigmoid.h5", copy)
    with h5py.File(copy, "r+") as fh:
        text = json.dumps(json.loads(fh.attrs["model_config"])).replace(', "time_major": false', "")
        fh.attrs["model_config"] = text
    data = np.load(FIXTURES / "lstm_hard_sigmoid.npz")
    model = keras.saving.load_model(copy, compile=False)
    assert np.abs(model.predict(data["x"], verbose=0) - data["y"]).max() > 1e-3


def test_verify_says_which_oracle(capsys):
    require_module("tf_keras")
    assert main(["verify", str(FIXTURES / "lstm_hard_sigmoid.h5"), "--sequences", "3"]) == 0
    assert "against tf_keras" in capsys.readouterr().out


def test_lambda_in_h5_is_refused_before_loading():
    with pytest.raises(UnsupportedLayerError, match="Lambda.*refused before loading"):
        lstmgen.load(FIXTURES / "lambda_layer.h5")
