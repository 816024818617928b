"""Unsupported or unsafe Keras models: one clear error naming the layer, nothing written."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import lstmgen
from lstmgen.cli import main
from lstmgen.errors import ModelError, UnsupportedLayerError


def _seq(keras, *layers, timesteps=5, features=3):
    return keras.Sequential([keras.Input((timesteps, features)), *layers], name="bad")


CASES = {
    "prelu": (lambda k: k.layers.PReLU(name="prelu"), "prelu", "PReLU"),
    "upsampling": (lambda k: k.layers.UpSampling1D(2, name="up"), "up", "UpSampling1D"),
    "leaky": (lambda k: k.layers.LeakyReLU(name="leaky"), "leaky", "LeakyReLU"),
    "zero_padding": (lambda k: k.layers.ZeroPadding1D(1, name="pad"), "pad", "ZeroPadding1D"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_unsupported_layer_is_named(keras, case):
    make, name, kind = CASES[case]
    kwargs = {"timesteps": 5}
    model = (
        _seq(keras, make(keras), keras.layers.LSTM(2), **kwargs)
        if case in ("upsampling", "leaky", "zero_padding")
        else _seq(keras, make(keras), **kwargs)
    )
    with pytest.raises(UnsupportedLayerError) as err:
        lstmgen.load(model)
    message = str(err.value)
    assert f"'{name}'" in message and kind in message and "supported" in message


def test_return_state_and_activation_errors(keras):
    inp = keras.Input((4, 2))
    seq = keras.layers.LSTM(3, return_sequences=True, activation="selu", name="odd")(inp)
    model = keras.Model(inp, keras.layers.LSTM(2)(seq))
    with pytest.raises(UnsupportedLayerError, match="'odd'.*activation 'selu'.*supported"):
        lstmgen.load(model)


def test_branching_functional_model_is_refused(keras):
    inp = keras.Input((4, 2))
    a = keras.layers.LSTM(3, name="a")(inp)
    b = keras.layers.LSTM(3, name="b")(inp)
    model = keras.Model(inp, keras.layers.Add()([a, b]))
    with pytest.raises(UnsupportedLayerError, match="single"):
        lstmgen.load(model)


def test_functional_single_path_is_accepted(keras):
    inp = keras.Input((6, 2))
    h = keras.layers.LSTM(4, return_sequences=True, name="l1")(inp)
    h = keras.layers.Dropout(0.5)(h)
    h = keras.layers.LSTM(3, name="l2")(h)
    out = keras.layers.Dense(2, activation="softmax", name="head")(h)
    model = keras.Model(inp, out)
    x = np.random.default_rng(0).standard_normal((3, 6, 2)).astype(np.float32)
    report = lstmgen.verify(model, "c", inputs=x)
    assert report.passed and report.max_abs.shape == (2,)


def test_lambda_is_never_deserialised(keras, tmp_path, capsys):
    model = _seq(keras, keras.layers.LSTM(2), keras.layers.Lambda(lambda t: t * 2, name="lam"))
    path = tmp_path / "lambda.keras"
    model.save(path)
    out = tmp_path / "out"
    assert main(["generate", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'lam' of type Lambda" in err and "never" in err
    assert not out.exists()


def test_cli_unsupported_layer_exit_2_no_output(keras, tmp_path):
    path = tmp_path / "up.keras"
    _seq(keras, keras.layers.UpSampling1D(2, name="my_up"), keras.layers.LSTM(2)).save(path)
    out = tmp_path / "build"
    result = subprocess.run(
        [sys.executable, "-m", "lstmgen", "generate", str(path), "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    lines = [l for l in result.stderr.splitlines() if l.startswith("lstmgen:")]
    assert len(lines) == 1 and "'my_up'" in lines[0] and "UpSampling1D" in lines[0]
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_corrupt_keras_file(tmp_path):
    path = tmp_path / "broken.keras"
    path.write_bytes(b"PK\x03\x04 definitely not a zip")
    with pytest.raises(ModelError, match="broken.keras"):
        lstmgen.load(path)


def test_corrupt_h5_file(tmp_path, keras):
    path = tmp_path / "old.h5"
    path.write_bytes(b"\x89HDF\r\n")
    with pytest.raises(ModelError, match="old.h5.*not a readable HDF5"):
        lstmgen.load(path)
