"""MATLAB front end: .mat files with lstmLayer's field names, checked against PyTorch
(the same i, f, g, o row order) and an independent implementation of MATLAB's documented
equations; the export script itself runs in GNU Octave on mock layer objects."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from support import require_module, require_tool

import lstmgen
from lstmgen.cli import main
from lstmgen.errors import ModelError, UnsupportedLayerError
from lstmgen.reference import forward
from lstmgen.targets import c as c_backend
from lstmgen.targets.c import runner as c_runner
from lstmgen.verify import error_metrics

TOLERANCE = 1e-5


def write_mat(path, layers: list[dict]) -> None:
    scipy_io = require_module("scipy.io")
    cells = np.empty((1, len(layers)), dtype=object)
    for k, layer in enumerate(layers):
        cells[0, k] = layer
    scipy_io.savemat(str(path), {"layers": cells}, format="5")


def random_net(rng, d, hs, o, norm="none", mode="last", state="tanh", gate="sigmoid"):
    layers = [
        {
            "Type": "sequenceInput",
            "Name": "in",
            "InputSize": float(d),
            "Normalization": norm,
            "Mean": rng.normal(0, 2, (d, 1)).astype(np.float32),
            "StandardDeviation": rng.uniform(0.5, 3, (d, 1)).astype(np.float32),
        }
    ]
    width = d
    for k, h in enumerate(hs):
        layers.append(
            {
                "Type": "lstm",
                "Name": f"lstm{k}",
                "InputWeights": rng.uniform(-0.5, 0.5, (4 * h, width)).astype(np.float32),
                "RecurrentWeights": rng.uniform(-0.5, 0.5, (4 * h, h)).astype(np.float32),
                "Bias": rng.uniform(-0.5, 0.5, (4 * h, 1)).astype(np.float32),
                "OutputMode": mode if k == len(hs) - 1 else "sequence",
                "StateActivationFunction": state,
                "GateActivationFunction": gate,
            }
        )
        width = h
    layers.append({"Type": "dropout", "Name": "drop"})
    layers.append(
        {
            "Type": "fullyConnected",
            "Name": "fc",
            "Weights": rng.uniform(-0.5, 0.5, (o, width)).astype(np.float32),
            "Bias": rng.uniform(-0.5, 0.5, (o, 1)).astype(np.float32),
        }
    )
    layers.append({"Type": "softmax" if o > 1 else "tanh", "Name": "act"})
    return layers


def torch_oracle(layers, x):
    """PyTorch nn.LSTM with MATLAB's matrices (same gate order; bias_hh = 0)."""
    torch = require_module("torch")
    y = torch.as_tensor(x, dtype=torch.float32)
    inp = layers[0]
    if inp["Normalization"] == "zscore":
        y = (y - torch.as_tensor(inp["Mean"].ravel())) / torch.as_tensor(
            inp["StandardDeviation"].ravel()
        )
    elif inp["Normalization"] == "center":
        y = y - torch.as_tensor(inp["Mean"].ravel())
    with torch.no_grad():
        for layer in layers[1:]:
            if layer["Type"] == "lstm":
                h = layer["RecurrentWeights"].shape[1]
                m = torch.nn.LSTM(layer["InputWeights"].shape[1], h, batch_first=True)
                m.weight_ih_l0.copy_(torch.as_tensor(layer["InputWeights"]))
                m.weight_hh_l0.copy_(torch.as_tensor(layer["RecurrentWeights"]))
                m.bias_ih_l0.copy_(torch.as_tensor(layer["Bias"].ravel()))
                m.bias_hh_l0.zero_()
                y, _ = m(y)
                if layer["OutputMode"] == "last":
                    y = y[:, -1]
            elif layer["Type"] == "fullyConnected":
                y = y @ torch.as_tensor(layer["Weights"]).T + torch.as_tensor(layer["Bias"].ravel())
            elif layer["Type"] == "softmax":
                y = torch.softmax(y, dim=-1)
            elif layer["Type"] == "tanh":
                y = torch.tanh(y)
    return y.numpy()


def matlab_equations(layers, x):
    """lstmLayer as MATLAB documents it, written out independently of lstmgen."""

    def act(name, v):
        return {
            "tanh": np.tanh,
            "softsign": lambda a: a / (1 + np.abs(a)),
            "relu": lambda a: np.maximum(a, 0),
            "sigmoid": lambda a: 1 / (1 + np.exp(-a)),
            "hard-sigmoid": lambda a: np.clip(0.2 * a + 0.5, 0, 1),
        }[name](v)

    seq = x.astype(np.float64)
    for layer in layers[1:]:
        if layer["Type"] == "lstm":
            w, r, b = (
                layer[k].astype(np.float64) for k in ("InputWeights", "RecurrentWeights", "Bias")
            )
            hn = r.shape[1]
            h = np.zeros((seq.shape[0], hn))
            c = np.zeros_like(h)
            outs = []
            for t in range(seq.shape[1]):
                z = seq[:, t] @ w.T + h @ r.T + b.ravel()
                i, f, g, o = (z[:, k * hn : (k + 1) * hn] for k in range(4))
                gate, state = layer["GateActivationFunction"], layer["StateActivationFunction"]
                c = act(gate, f) * c + act(gate, i) * act(state, g)
                h = act(gate, o) * act(state, c)
                outs.append(h)
            seq = np.stack(outs, 1) if layer["OutputMode"] == "sequence" else h
        elif layer["Type"] == "fullyConnected":
            seq = seq @ layer["Weights"].T + layer["Bias"].ravel()
        elif layer["Type"] == "tanh":
            seq = np.tanh(seq)
    return seq


def run_c(ir, x, tmp_path):
    files = c_backend.render(ir, "net")
    return c_runner.run(ir, files, "net", x, tmp_path)


def run_python(ir, x, tmp_path):
    from lstmgen.targets import render
    from lstmgen.targets.python import runner as python_runner

    return python_runner.run(ir, render("python", ir, "net"), "net", x, tmp_path)


@pytest.mark.parametrize("norm", ["none", "zscore", "center"])
@pytest.mark.parametrize("hs,mode", [([5], "last"), ([8, 3], "sequence"), ([1], "last")])
def test_mat_files_match_pytorch(tmp_path, norm, hs, mode):
    rng = np.random.default_rng(len(hs) * 7 + len(norm))
    layers = random_net(rng, 4, hs, 3 if mode == "last" else 1, norm, mode)
    write_mat(tmp_path / "net.mat", layers)
    ir = lstmgen.load(tmp_path / "net.mat")
    x = rng.standard_normal((5, 9, 4)).astype(np.float32)
    expected = torch_oracle(layers, x)
    for got in (forward(ir, x), run_c(ir, x, tmp_path), run_python(ir, x, tmp_path)):
        _, rel = error_metrics(got, expected)
        assert rel.max() <= TOLERANCE
    assert ir.layers[-1].kind == "activation" and not any(l.name == "drop" for l in ir.layers)


@pytest.mark.parametrize(
    "state,gate", [("softsign", "hard-sigmoid"), ("relu", "sigmoid"), ("tanh", "hard-sigmoid")]
)
def test_matlab_activations_match_documented_equations(tmp_path, state, gate):
    rng = np.random.default_rng(3)
    layers = random_net(rng, 3, [6], 2, "none", "sequence", state, gate)
    layers[-1] = {"Type": "tanh", "Name": "out"}
    write_mat(tmp_path / "net.mat", layers)
    ir = lstmgen.load(tmp_path / "net.mat")
    assert (
        ir.layers[0].gate_activation
        == {"sigmoid": "sigmoid", "hard-sigmoid": "hard_sigmoid_0.2"}[gate]
    )
    x = rng.standard_normal((4, 7, 3)).astype(np.float32) * 3
    expected = matlab_equations(layers, x)
    for got in (run_c(ir, x, tmp_path), run_python(ir, x, tmp_path)):
        _, rel = error_metrics(got, expected)
        assert rel.max() <= TOLERANCE


def test_inspect_names_matlab_fields(tmp_path, capsys):
    write_mat(tmp_path / "net.mat", random_net(np.random.default_rng(0), 2, [3], 1))
    assert main(["inspect", str(tmp_path / "net.mat")]) == 0
    out = capsys.readouterr().out
    assert "InputWeights (4H, D) rows i,f,g,o" in out and "dropped 'drop'" in out


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda L: L[1].__setitem__("StateActivationFunction", "gelu"), "StateActivationFunction"),
        (lambda L: L[1].__setitem__("Bias", np.zeros((3, 1), np.float32)), "do not fit"),
        (lambda L: L.__setitem__(0, {"Type": "imageInput", "Name": "img"}), "sequenceInput"),
        (lambda L: L.insert(2, {"Type": "gru", "Name": "g"}), "'gru'"),
        (lambda L: L[0].__setitem__("Normalization", "rescale-symmetric"), "rescale-symmetric"),
    ],
)
def test_bad_mat_files(tmp_path, capsys, edit, message):
    layers = random_net(np.random.default_rng(1), 2, [3], 1)
    edit(layers)
    write_mat(tmp_path / "bad.mat", layers)
    assert main(["generate", str(tmp_path / "bad.mat"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_corrupt_mat_file(tmp_path):
    (tmp_path / "junk.mat").write_bytes(b"MATLAB 5.0 MAT-file" + b"\x00" * 50)
    with pytest.raises((ModelError, UnsupportedLayerError), match="junk.mat"):
        lstmgen.load(tmp_path / "junk.mat")


def test_truncated_mat_file(tmp_path, capsys):
    write_mat(tmp_path / "net.mat", random_net(np.random.default_rng(2), 2, [3], 1))
    data = (tmp_path / "net.mat").read_bytes()
    (tmp_path / "cut.mat").write_bytes(data[: len(data) // 2])
    assert main(["generate", str(tmp_path / "cut.mat"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "cut.mat" in err and len(err.splitlines()) == 1 and not (tmp_path / "o").exists()


MOCK = """classdef {cls}
  properties
{props}
  end
  methods
    function obj = {cls}(varargin)
      for k = 1:2:numel(varargin)
        obj.(varargin{{k}}) = varargin{{k + 1}};
      end
    end
  end
end
"""
MOCK_CLASSES = {
    "SequenceInputLayer": ["Name", "InputSize", "Normalization", "Mean", "StandardDeviation"],
    "LSTMLayer": [
        "Name",
        "InputWeights",
        "RecurrentWeights",
        "Bias",
        "OutputMode",
        "StateActivationFunction",
        "GateActivationFunction",
    ],
    "FullyConnectedLayer": ["Name", "Weights", "Bias"],
    "SoftmaxLayer": ["Name"],
    "DropoutLayer": ["Name"],
    "ClassificationOutputLayer": ["Name"],
}


def test_export_script_in_octave(tmp_path):
    """lstmgen_export.m on objects of the Deep Learning Toolbox's class names."""
    octave = require_tool("octave-cli")
    package = tmp_path / "+nnet" / "+cnn" / "+layer"
    package.mkdir(parents=True)
    for cls, props in MOCK_CLASSES.items():
        (package / f"{cls}.m").write_text(
            MOCK.format(cls=cls, props="\n".join(f"    {p} = [];" for p in props))
        )
    from support import ROOT

    export_dir = ROOT / "matlab"
    script = f"""
addpath('{export_dir}'); addpath('{tmp_path}');
rand('seed', 1);
W = single(rand(12, 2) - 0.5); R = single(rand(12, 3) - 0.5); b = single(rand(12, 1) - 0.5);
net.Layers = {{nnet.cnn.layer.SequenceInputLayer('Name', 'in', 'InputSize', 2, ...
    'Normalization', 'zscore', 'Mean', single([0.5; -1]), 'StandardDeviation', single([2; 4])), ...
  nnet.cnn.layer.LSTMLayer('Name', 'lstm', 'InputWeights', W, 'RecurrentWeights', R, ...
    'Bias', b, 'OutputMode', 'last', 'StateActivationFunction', 'softsign', ...
    'GateActivationFunction', 'hard-sigmoid'), ...
  nnet.cnn.layer.DropoutLayer('Name', 'drop'), ...
  nnet.cnn.layer.FullyConnectedLayer('Name', 'fc', 'Weights', single([1 2 3; -1 0 1]), ...
    'Bias', single([0.5; -0.5])), ...
  nnet.cnn.layer.SoftmaxLayer('Name', 'sm'), ...
  nnet.cnn.layer.ClassificationOutputLayer('Name', 'out')}};
lstmgen_export(net, '{tmp_path / "exported.mat"}');
save('-v7', '{tmp_path / "expected.mat"}', 'W', 'R', 'b');
"""
    result = subprocess.run(
        [octave, "-q", "-H", "--no-window-system", "--eval", script],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    scipy_io = require_module("scipy.io")
    expected = scipy_io.loadmat(str(tmp_path / "expected.mat"))
    ir = lstmgen.load(tmp_path / "exported.mat")
    assert [l.kind for l in ir.layers] == ["normalize", "lstm", "dense", "activation"]
    lstm = ir.layers[1]
    assert np.array_equal(lstm.input_weights, expected["W"])
    assert np.array_equal(lstm.recurrent_weights, expected["R"])
    assert np.array_equal(lstm.bias, expected["b"].ravel())
    assert (lstm.gate_activation, lstm.cell_activation) == ("hard_sigmoid_0.2", "softsign")
    assert not lstm.return_sequences and "dropped 'drop'" in ir.notes[0]
    assert np.array_equal(ir.layers[0].mean, [0.5, -1]) and np.array_equal(ir.layers[0].std, [2, 4])
