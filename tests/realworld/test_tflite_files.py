"""A third-party trained model through TensorFlow Lite Micro's recipe into .tflite, then
lstmgen: ../shared/real_models holds no .tflite file, so the real model circuitrnn_lstm
(tf.keras 2.3 .h5: LSTM(50) x3 -> Dense(1), trained weights) is converted here with the
recipe a TFLM user follows (tf_keras, a fixed batch of 1, `from_concrete_functions`), float
and full-integer. Oracles: the float file's TFLite reference interpreter (the generated C
within 1e-5) and TensorFlow Lite Micro for the int8 file (`verify` reports 0 error).
"""

from __future__ import annotations

import numpy as np
import pytest
import tflite_models as M
from support import real_model, require_module, targets_match_oracle

from lstmgen.cli import main
from lstmgen.extractors import open_model

T_LEN, D = 8, 2  # the model's input (None, 8, 2)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    path = real_model("circuitrnn_lstm/lstm_model.h5")
    k = require_module("tf_keras")
    require_module("tensorflow")
    require_module("tflite_micro")
    model = k.models.load_model(path, compile=False)
    folder = tmp_path_factory.mktemp("circuitrnn")
    calibration = np.random.default_rng(0).standard_normal((64, T_LEN, D)).astype(np.float32)
    return model, {
        "float": M.save(M.convert_keras(model, T_LEN, D), folder, "float"),
        "int8": M.save(
            M.convert_keras(model, T_LEN, D, integer=True, calibration=calibration), folder, "int8"
        ),
    }


def test_float_file_matches_keras_and_the_reference_interpreter(converted, tmp_path):
    model, paths = converted
    loaded = open_model(paths["float"])
    assert [l.kind for l in loaded.ir.layers] == ["lstm", "lstm", "lstm", "dense"]
    x = np.random.default_rng(1).standard_normal((16, T_LEN, D)).astype(np.float32)
    keras_y = model.predict(x, verbose=0).reshape(16, -1)
    assert np.max(np.abs(loaded.predict(x).reshape(16, -1) - keras_y)) < 1e-5
    errors = targets_match_oracle(loaded, x, tmp_path, targets=("c",))
    assert errors["c"] <= 1e-5


def test_int8_file_bit_exact_with_tflite_micro(converted, capsys):
    _, paths = converted
    args = ["verify", str(paths["int8"]), "--quantize", "int8-full", "--sequences", "50"]
    assert main(args) == 0
    report = capsys.readouterr().out
    assert "TensorFlow Lite Micro" in report and "max abs error 0," in report, report
