"""The third-party ONNX files of ../shared/real_models (INDEX.md there) convert and match
their oracles: onnxruntime running the file, and onnx2c's published test data
(test_data_set_0, computed by onnxruntime when onnx2c generated the test), through the
float64 reference and the generated code of every target."""

from __future__ import annotations

import numpy as np
import pytest
from support import real_model, require_module, targets_match_oracles

from lstmgen.cli import main
from lstmgen.extractors import open_model
from lstmgen.reference import forward
from lstmgen.verify import error_metrics

TOLERANCE = 1e-5
ONNX2C = "onnx2c_lstm_bidir_issue95"
MNIST = "mnist_rowlstm_torch13_onnx/lstm.onnx"


@pytest.fixture(scope="module")
def onnx():
    require_module("onnxruntime")
    return require_module("onnx")


def close(got: np.ndarray, want: np.ndarray, what: str) -> float:
    _, rel = error_metrics(np.asarray(got), np.asarray(want))
    assert rel.max() <= TOLERANCE, (what, float(rel.max()))
    print(f"\n{what}: {float(rel.max()):.2g}", end="")
    return float(rel.max())


def onnx2c_test_data(onnx) -> dict[str, np.ndarray]:
    """test_data_set_0: input X [T=5, B=1, 4] and outputs Y [5, 2, 1, 3], Y_h and Y_c
    [2, 1, 3], in the graph's order."""
    arrays = {}
    names = {"input_0": "X", "output_0": "Y", "output_1": "Y_h", "output_2": "Y_c"}
    for stem, name in names.items():
        tensor = onnx.TensorProto()
        tensor.ParseFromString(real_model(f"{ONNX2C}/test_data_set_0/{stem}.pb").read_bytes())
        arrays[name] = onnx.numpy_helper.to_array(tensor)
    return arrays


def as_ir_output(name: str, y: np.ndarray) -> np.ndarray:
    """ONNX's Y [T, 2, B, H] / Y_h [2, B, H] as the IR's Bidirectional output: the two
    directions concatenated along the features, forward first ([B, T, 2H] / [B, 2H])."""
    if name == "Y":
        return y.transpose(2, 0, 1, 3).reshape(y.shape[2], y.shape[0], -1)
    return y.transpose(1, 0, 2).reshape(y.shape[1], -1)


def test_onnx2c_bidirectional_lstm_with_the_output_named(onnx, tmp_path):
    data = onnx2c_test_data(onnx)
    published = np.swapaxes(data["X"], 0, 1)  # [B=1, T=5, 4]
    x = np.concatenate(
        [published, np.random.default_rng(95).standard_normal((4, 5, 4)).astype(np.float32)]
    )
    path = real_model(f"{ONNX2C}/model.onnx")
    cases = {}
    for name in ("Y", "Y_h"):
        loaded = open_model(path, output=name)
        assert [l.kind for l in loaded.ir.layers] == ["bidirectional"], name
        assert loaded.ir.returns_sequences == (name == "Y") and loaded.ir.timesteps == 5
        expected = loaded.predict(x)
        test_data = as_ir_output(name, data[name])
        close(expected[:1], test_data, f"{name}: onnxruntime vs test_data_set_0")
        close(forward(loaded.ir, x), expected, f"{name}: reference vs onnxruntime")
        cases[name] = (loaded.ir, x, expected)
    errors = targets_match_oracles(cases, tmp_path)
    # the generated code on the published input against the published outputs
    published_cases = {
        name: (ir, published, as_ir_output(name, data[name])) for name, (ir, _, _) in cases.items()
    }
    errors_published = targets_match_oracles(published_cases, tmp_path / "published")
    print("\nonnx2c max relative errors vs onnxruntime:", errors)
    print("onnx2c max relative errors vs test_data_set_0:", errors_published)


def test_onnx2c_without_an_output_name_or_with_y_c_is_one_error_line(tmp_path, capsys):
    path = real_model(f"{ONNX2C}/model.onnx")
    out = tmp_path / "out"
    for args, message in [
        ([], "has 3 outputs ('Y', 'Y_h', 'Y_c'); name the one to compile with --output NAME"),
        (["--output", "Y_c"], "cell state output Y_c ('Y_c')"),
    ]:
        assert main(["generate", str(path), "--out", str(out), *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
        assert not out.exists()


def mnist_case() -> tuple:
    """PyTorch 1.3's opset-9 export: zero states from the input's shape, gate reordering by
    Slice, LSTM(28) -> last step -> Gemm(10) -> LogSoftmax; the batch is fixed to 128."""
    loaded = open_model(real_model(MNIST))
    assert [l.kind for l in loaded.ir.layers] == ["lstm", "dense"]
    assert loaded.ir.layers[1].activation == "log_softmax"
    assert loaded.ir.timesteps == 28 and loaded.ir.input_size == 28
    x = np.random.default_rng(13).uniform(0.0, 1.0, (6, 28, 28)).astype(np.float32)
    expected = loaded.predict(x)
    assert expected.shape == (6, 10)
    close(forward(loaded.ir, x), expected, "mnist: reference vs onnxruntime")
    return loaded.ir, x, expected


def test_mnist_rowlstm_torch13_converts(onnx):
    mnist_case()


def test_mnist_rowlstm_torch13_through_targets(onnx, tmp_path):
    """Waits on the targets' log_softmax branch."""
    errors = targets_match_oracles({"mnist": mnist_case()}, tmp_path)
    print("\nmnist max relative errors vs onnxruntime:", errors)
