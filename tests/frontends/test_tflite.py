"""The TensorFlow Lite front end against TensorFlow Lite's own interpreters.

Float models converted through TensorFlow Lite Micro's recipe (tf_keras, fixed [1, T, D],
from_concrete_functions) and small flatbuffers written for the operators the converter does
not emit from Keras: the generated C and Python match `tf.lite.Interpreter` with the
reference kernels (BUILTIN_REF) within 1e-5, and TensorFlow Lite Micro's interpreter too.
What the IR lacks is refused by name; a WHILE-loop graph is refused with the recipe that
avoids it. Full-integer files: their dequantized weights are the float model's, to half a
quantization step (the integer kernel itself: tests/backends/c/test_int8_full.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tflite_models as M
from support import require_module

import lstmgen
from lstmgen.cli import main
from lstmgen.extractors import open_model
from lstmgen.extractors.tflite.oracle import (
    reference_interpreter,
    run_reference,
    run_tflm,
    tflm_interpreter,
)
from lstmgen.reference import forward
from lstmgen.verify import error_metrics


@pytest.fixture(scope="module")
def tf():
    require_module("tf_keras")
    return require_module("tensorflow")


@pytest.fixture(scope="module")
def tflm():
    return require_module("tflite_micro")


def inputs(model, n: int = 8, seed: int = 0) -> np.ndarray:
    t_len = model.timesteps
    return (
        np.random.default_rng(seed).standard_normal((n, t_len, model.input_size)).astype(np.float32)
    )


@pytest.mark.parametrize("name", ["single", "stacked", "bidirectional", "classifier"])
def test_converted_float_models_match_the_reference_interpreter(tf, name):
    """C and Python generated from the file vs BUILTIN_REF on the file, within 1e-5."""
    path = M.suite_model(name).paths["float"]
    loaded = open_model(path)
    assert "BUILTIN_REF" in loaded.oracle_name
    kinds = [l.kind for l in loaded.ir.layers]
    expected_kinds = {
        "single": ["lstm", "dense"],
        "stacked": ["lstm", "lstm", "dense"],
        "bidirectional": ["bidirectional", "bidirectional", "dense"],
        "classifier": ["lstm", "dense", "dense"],
    }[name]
    assert kinds == expected_kinds
    if name == "classifier":
        assert [l.activation for l in loaded.ir.layers[1:]] == ["relu", "softmax"]
    for target in ("c", "python"):
        report = lstmgen.verify(path, target=target, sequences=12)
        assert report.passed and float(np.max(report.max_rel)) <= 1e-5, (target, report.summary())


@pytest.mark.parametrize("name", ["single", "stacked", "bidirectional"])
def test_float_models_match_tflite_micro(tf, tflm, name):
    path = M.suite_model(name).paths["float"]
    loaded = open_model(path)
    x = inputs(loaded.ir, 10, seed=4)
    micro = np.stack([y.reshape(-1) for y in run_tflm(tflm_interpreter(path), x)])
    _, rel = error_metrics(forward(loaded.ir, x), micro.reshape(len(x), -1))
    assert rel.max() <= 1e-5


def test_keras_recipe_matches_keras(tf):
    """The chain of oracles closes: the file agrees with the Keras model it came from."""
    suite = M.suite_model("stacked")
    loaded = open_model(suite.paths["float"])
    x = inputs(loaded.ir, 6, seed=2)
    _, rel = error_metrics(forward(loaded.ir, x), suite.keras_model.predict(x, verbose=0))
    assert rel.max() <= 1e-5


CRAFTED = {
    "peephole": lambda: M.lstm_graph(peephole=True),
    "projection": lambda: M.lstm_graph(p=3),
    "peephole_projection": lambda: M.lstm_graph(p=2, peephole=True, seed=5),
    "sequence_output": lambda: M.lstm_graph(last_step=False, seed=6),
    "fused_bidirectional_merged": lambda: M.bidirectional_lstm_graph(),
    "fused_bidirectional_forward_output": lambda: M.bidirectional_lstm_graph(merge_outputs=False),
    "rnn_tanh": lambda: M.rnn_graph(),
    "rnn_relu": lambda: M.rnn_graph(relu=True),
}


@pytest.mark.parametrize("name", sorted(CRAFTED))
def test_operators_beyond_the_recipe_match_the_reference_interpreter(tf, name, tmp_path):
    """Peepholes, projection, the fused bidirectional op (time-major), the sequence RNN:
    generated C within 1e-5 of BUILTIN_REF running the same file."""
    path = M.save(CRAFTED[name](), tmp_path, name)
    loaded = open_model(path)
    features = loaded.ir.features()
    if "peephole" in name:
        assert "peephole" in features
    if "projection" in name:
        assert "projection" in features
    report = lstmgen.verify(path, target="c", sequences=6)
    assert float(np.max(report.max_rel)) <= 1e-5, report.summary()


REFUSED = {
    "cifg": (lambda: M.lstm_graph(cifg=True), "CIFG"),
    "layer_norm": (lambda: M.lstm_graph(layer_norm=True), "layer normalization"),
    "projection_bias": (lambda: M.lstm_graph(p=3, projection_bias=True), "projection bias"),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_what_the_ir_lacks_is_refused_by_name(name, tmp_path, capsys):
    make, words = REFUSED[name]
    path = M.save(make(), tmp_path, name)
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0] and "UNIDIRECTIONAL_SEQUENCE_LSTM" in err[0]


def test_a_while_loop_graph_is_refused_with_the_recipe(tf, tmp_path, capsys):
    """What the converter writes for a Keras 3 model: a WHILE loop, refused with the way out."""
    keras = require_module("keras")
    model = keras.Sequential(
        [keras.Input((6, 2), batch_size=1), keras.layers.LSTM(3), keras.layers.Dense(1)]
    )
    data = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    path = M.save(data, tmp_path, "keras3")
    assert main(["generate", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "WHILE" in err[0] and "from_concrete_functions" in err[0] and "tf_keras" in err[0]
    assert not (tmp_path / "out").exists()


def test_a_keras_layer_outside_the_ir_is_refused_naming_it(tf, tmp_path, capsys):
    """A Keras layer the converter writes as operators with no IR counterpart (here a
    LayerNormalization between two LSTMs): one line naming the operator and the Keras layer
    its output tensor is named after, exit 2, nothing written."""
    import tf_keras as k

    model = k.Sequential(
        [
            k.Input((6, 2), batch_size=1),
            k.layers.LSTM(3, return_sequences=True),
            k.layers.LayerNormalization(name="norm_after_lstm"),
            k.layers.LSTM(2),
        ]
    )
    path = M.save(M.convert_keras(model, 6, 2), tmp_path, "layer_norm")
    assert main(["generate", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "norm_after_lstm/" in err[0] and "not supported" in err[0], err
    assert not (tmp_path / "out").exists()


def test_cell_clip_is_noted(tf, capsys):
    """The converter sets cell_clip = 10 on every Keras LSTM: the float IR says it has no
    such clip (the int8-full kernel applies it)."""
    path = M.suite_model("single").paths["float"]
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "cell_clip" in out and "UNIDIRECTIONAL_SEQUENCE_LSTM" in out


def test_full_integer_file_dequantizes_to_the_float_weights(tf):
    """The int8 file's IR is the float file's IR to half a quantization step: the two
    conversions of one Keras model are independent witnesses of the weight mapping."""
    suite = M.suite_model("stacked")
    ir_float = open_model(suite.paths["float"]).ir
    loaded = open_model(suite.paths["int8"])
    assert "TensorFlow Lite Micro" in loaded.oracle_name and loaded.int8 is not None
    for lf, lq, l8 in zip(ir_float.layers, loaded.ir.layers, loaded.int8.layers):
        if lf.kind == "lstm":
            step = np.repeat(l8.input_weight_scales, lf.units)[:, None]
            assert np.all(np.abs(lq.input_weights - lf.input_weights) <= step / 2 + 1e-7)
            step = np.repeat(l8.recurrent_weight_scales, lf.units)[:, None]
            assert np.all(np.abs(lq.recurrent_weights - lf.recurrent_weights) <= step / 2 + 1e-7)
        else:
            step = np.broadcast_to(l8.weight_scales, (lf.output_size,))[:, None]
            assert np.all(np.abs(lq.weights - lf.weights) <= step / 2 + 1e-7)
    assert any("full-integer" in note for note in loaded.ir.notes)


def test_reference_interpreter_oracle_resets_the_state(tf):
    """tf.lite keeps LSTM states across invokes unless reset: the oracle resets them, so the
    same sequence twice gives the same output."""
    path = M.suite_model("single").paths["float"]
    x = inputs(open_model(path).ir, 1)
    interpreter = reference_interpreter(Path(path))
    first, second = run_reference(interpreter, np.concatenate([x, x]))
    assert np.array_equal(first, second)
