"""Broken and hostile model files: one clear error line, exit code 2, nothing written."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from irmodels import branch_models

from lstmgen.cli import main
from lstmgen.ir_io import save_ir


def generate_fails(path, tmp_path, capsys, *expected: str) -> None:
    out = tmp_path / "out"
    assert main(["generate", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("lstmgen: error: "), err
    for text in expected:
        assert text in err, (text, err)
    assert not out.exists()


def test_nan_weights_in_keras_model(keras, tmp_path, capsys):
    model = keras.Sequential([keras.Input((3, 2)), keras.layers.LSTM(2, name="bad_lstm")])
    weights = model.layers[0].get_weights()
    weights[1][0, 0] = np.nan
    model.layers[0].set_weights(weights)
    model.save(tmp_path / "nan.keras")
    generate_fails(tmp_path / "nan.keras", tmp_path, capsys, "'bad_lstm'", "NaN")


def test_truncated_keras_file(example_model_path, tmp_path, capsys, keras):
    data = example_model_path.read_bytes()
    (tmp_path / "cut.keras").write_bytes(data[: len(data) // 2])
    generate_fails(tmp_path / "cut.keras", tmp_path, capsys, "cut.keras")


def test_truncated_and_corrupt_npz(tmp_path, capsys):
    path = save_ir(branch_models()["tiny"], tmp_path / "m.npz")
    data = path.read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    generate_fails(tmp_path / "cut.npz", tmp_path, capsys, "cut.npz")
    (tmp_path / "junk.npz").write_bytes(b"\x00" * 100)
    generate_fails(tmp_path / "junk.npz", tmp_path, capsys, "junk.npz")


def _edit_npz(src, dst, edit) -> None:
    with np.load(src, allow_pickle=False) as archive:
        contents = {k: archive[k] for k in archive.files}
    meta = json.loads(contents["__lstmgen__"].tobytes())
    edit(contents, meta)
    contents["__lstmgen__"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(dst, **contents)


@pytest.mark.parametrize(
    "edit,expected",
    [
        (lambda a, m: a.__setitem__("layer0.bias", np.zeros(3, np.float32)), "bias has shape"),
        (
            lambda a, m: a.__setitem__("layer0.input_weights", np.zeros((0, 4), np.float32)),
            "input_weights",
        ),
        (
            lambda a, m: a.__setitem__("layer0.recurrent_weights", np.zeros((0, 0), np.float32)),
            "recurrent_weights has shape (0, 0)",
        ),
        (
            lambda a, m: (
                a.__setitem__("layer0.input_weights", np.zeros((0, 4), np.float32))
                or a.__setitem__("layer0.recurrent_weights", np.zeros((0, 0), np.float32))
            ),
            "at least one unit",
        ),
        (lambda a, m: m["layers"][0].__setitem__("gate_activation", "swish"), "'swish'"),
        (
            lambda a, m: m["layers"][0].__setitem__("kind", "transformer"),
            "unknown kind 'transformer'",
        ),
        (lambda a, m: m["layers"][0].__setitem__("kind", "gru"), "unknown field(s)"),
        (lambda a, m: m["layers"][0].__setitem__("peepholes", True), "unknown field"),
        (lambda a, m: m.__setitem__("version", 99), "version 99"),
        (
            lambda a, m: a.__setitem__(
                "layer0.input_weights", np.full((12, 4), np.inf, np.float32)
            ),
            "NaN/Inf",
        ),
    ],
)
def test_hand_edited_ir(tmp_path, capsys, edit, expected):
    model = branch_models()["three_stages"]
    path = save_ir(model, tmp_path / "m.npz")
    _edit_npz(path, tmp_path / "edited.npz", edit)
    generate_fails(tmp_path / "edited.npz", tmp_path, capsys, expected)


def test_multi_input_and_multi_output_graphs(keras, tmp_path, capsys):
    a, b = keras.Input((3, 2)), keras.Input((3, 2))
    two_in = keras.Model([a, b], keras.layers.LSTM(2)(keras.layers.Concatenate()([a, b])))
    two_in.save(tmp_path / "two_in.keras")
    generate_fails(tmp_path / "two_in.keras", tmp_path, capsys, "2 inputs")
    x = keras.Input((3, 2))
    h = keras.layers.LSTM(2)(x)
    two_out = keras.Model(x, [keras.layers.Dense(1)(h), keras.layers.Dense(2)(h)])
    two_out.save(tmp_path / "two_out.keras")
    generate_fails(tmp_path / "two_out.keras", tmp_path, capsys, "2 outputs")


def test_custom_layer_is_not_loaded(keras, tmp_path, capsys):
    @keras.saving.register_keras_serializable(package="evil")
    class Doubler(keras.layers.Layer):
        def call(self, x):
            return 2 * x

    model = keras.Sequential([keras.Input((3, 2)), Doubler(name="dbl"), keras.layers.LSTM(2)])
    model.save(tmp_path / "custom.keras")
    # in a session where the class is registered Keras can rebuild it, but lstmgen still
    # refuses the layer by name; where it is not registered the file does not load at all
    generate_fails(tmp_path / "custom.keras", tmp_path, capsys, "'dbl'", "Doubler")


def test_output_folder_untouched_on_failure(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"nope")
    assert main(["generate", str(bad), "--out", str(out)]) == 2
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    shutil.rmtree(out)
