"""PyTorch state_dict files: nn.LSTM / nn.GRU / nn.RNN recognised from the shapes, what the
file cannot say assumed and stated, each file against the forward of the module that saved
it (the oracle), and bad files refused in one line."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from support import require_module

import lstmgen
from lstmgen.cli import main
from lstmgen.errors import ModelError
from lstmgen.reference import forward
from lstmgen.verify import error_metrics

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def torch():
    return require_module("torch")


def saved_module(torch, recurrent, head, read, seed=0):
    """A module `recurrent` -> read (last, h_n, sequence) -> head, random weights."""
    nn = torch.nn

    class Saved(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = recurrent
            self.head = nn.Sequential(*head)

        def forward(self, x):
            out, state = self.rnn(x)
            if read == "last":
                return self.head(out[:, -1])
            if read == "h_n":
                h_n = state[0] if isinstance(state, tuple) else state
                both = recurrent.bidirectional
                return self.head(torch.cat([h_n[-2], h_n[-1]], 1) if both else h_n[-1])
            return self.head(out)

    torch.manual_seed(seed)
    module = Saved()
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(-0.5, 0.5)
    return module.eval()


def cases(torch):
    """key -> (module, load options): what a user passes for the file the module saves."""
    nn = torch.nn
    return {
        "gru_bidirectional_last": (
            saved_module(
                torch,
                nn.GRU(4, 5, num_layers=2, batch_first=True, bidirectional=True),
                [nn.Linear(10, 3)],
                "last",
            ),
            {},
        ),
        "gru_bidirectional_h_n": (
            saved_module(
                torch,
                nn.GRU(4, 5, batch_first=True, bidirectional=True),
                [nn.Linear(10, 3), nn.Tanh()],
                "h_n",
            ),
            {"head": ["head.0", "tanh"], "output": "h_n"},
        ),
        "rnn_relu_sequence": (
            saved_module(
                torch,
                nn.RNN(4, 6, nonlinearity="relu", batch_first=True),
                [nn.Linear(6, 2)],
                "sequence",
            ),
            {"output": "sequence", "nonlinearity": "relu"},
        ),
        "rnn_no_bias": (
            saved_module(
                torch, nn.RNN(4, 3, bias=False, num_layers=2, batch_first=True), [], "last"
            ),
            {},
        ),
        "lstm_projection_h_n": (
            saved_module(
                torch,
                nn.LSTM(4, 7, proj_size=3, num_layers=2, batch_first=True),
                [nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2), nn.LogSoftmax(dim=-1)],
                "h_n",
            ),
            {"head": ["head.0", "relu", "head.2", "log_softmax"], "output": "h_n"},
        ),
        "lstm_layer_norm_head": (
            saved_module(
                torch,
                nn.LSTM(4, 6, batch_first=True),
                [nn.LayerNorm(6), nn.Linear(6, 2), nn.Softmax(dim=-1)],
                "last",
            ),
            {"head": ["head.0", "head.1", "softmax"]},
        ),
    }


def test_files_match_the_modules_that_saved_them(torch, tmp_path):
    x = np.random.default_rng(4).standard_normal((3, 7, 4)).astype(np.float32)
    for key, (module, options) in cases(torch).items():
        path = tmp_path / f"{key}.pt"
        torch.save(module.state_dict(), path)
        loaded = lstmgen.extractors.open_model(path, **options)
        with torch.no_grad():
            expected = module(torch.as_tensor(x)).numpy()
        _, rel = error_metrics(forward(loaded.ir, x), expected)
        assert rel.max() <= TOLERANCE, (key, float(rel.max()))
        _, rel = error_metrics(loaded.predict(x), expected)  # the rebuilt oracle
        assert rel.max() <= 1e-6, (key, float(rel.max()))


def test_what_the_file_cannot_say_is_stated(torch, tmp_path):
    module, _ = cases(torch)["gru_bidirectional_last"]
    torch.save(module.state_dict(), tmp_path / "bi.pt")
    ir = lstmgen.load(tmp_path / "bi.pt")
    notes = "\n".join(ir.notes)
    assert "'rnn.' holds nn.GRU(4, 5, num_layers=2, bidirectional=True)" in notes
    assert "assumed: forward reads out[:, -1]: the forward direction after T steps" in notes
    assert "assumed: the head is head.0 (the Linear layers in file order" in notes
    assert [layer.kind for layer in ir.layers] == ["bidirectional"] * 2 + ["time_slice", "dense"]


def test_rnn_nonlinearity_is_an_assumption(torch, tmp_path, capsys):
    module, _ = cases(torch)["rnn_relu_sequence"]
    path = tmp_path / "relu.pt"
    torch.save(module.state_dict(), path)
    x = np.random.default_rng(1).standard_normal((2, 5, 4)).astype(np.float32)
    with torch.no_grad():
        expected = module(torch.as_tensor(x)).numpy()
    as_tanh = lstmgen.load(path, output="sequence")  # the file does not say relu
    assert any("nn.RNN nonlinearity 'tanh'" in note for note in as_tanh.notes)
    assert error_metrics(forward(as_tanh, x), expected)[1].max() > 1e-3
    assert (
        main(["inspect", str(path), "--lstm-output", "sequence", "--rnn-nonlinearity", "relu"]) == 0
    )
    out = capsys.readouterr().out
    assert (
        "note: assumed: nn.RNN nonlinearity 'relu'" in out
        and "SimpleRNN 4 -> 6 (activation=relu" in out
    )
    assert (
        main(["verify", str(path), "--lstm-output", "sequence", "--rnn-nonlinearity", "relu"]) == 0
    )


def _as_if_saved_on_a_gpu(path):
    """Rewrite the storages' location tag in the file's pickle from cpu to cuda:0, as
    torch.save writes it on a GPU machine."""
    with zipfile.ZipFile(path) as old:
        items = [(info, old.read(info)) for info in old.infolist()]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as new:
        for info, data in items:
            if info.filename.endswith("data.pkl"):
                data = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
            new.writestr(info, data)
    path.write_bytes(buffer.getvalue())


def test_state_dict_saved_on_a_gpu_loads_on_cpu(torch, tmp_path):
    module, options = cases(torch)["lstm_layer_norm_head"]
    path = tmp_path / "gpu.pt"
    torch.save(module.state_dict(), path)
    _as_if_saved_on_a_gpu(path)
    if not torch.cuda.is_available():  # the file really is tagged for a GPU
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(path, weights_only=True)
    ir = lstmgen.load(path, **options)
    assert ir.layers[0].input_weights.shape == (24, 4)


def test_checkpoint_dict_and_chained_modules(torch, tmp_path):
    nn = torch.nn

    class TwoLstms(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.LSTM(4, 6, batch_first=True)
            self.decoder = nn.GRU(6, 3, batch_first=True)
            self.out = nn.Linear(3, 2)

        def forward(self, x):
            return self.out(self.decoder(self.encoder(x)[0])[0][:, -1])

    torch.manual_seed(2)
    module = TwoLstms().eval()
    torch.save({"epoch": 7, "model_state_dict": module.state_dict()}, tmp_path / "ckpt.pt")
    loaded = lstmgen.extractors.open_model(tmp_path / "ckpt.pt")
    x = np.random.default_rng(2).standard_normal((2, 5, 4)).astype(np.float32)
    with torch.no_grad():
        expected = module(torch.as_tensor(x)).numpy()
    assert error_metrics(forward(loaded.ir, x), expected)[1].max() <= TOLERANCE
    assert "the state_dict is the checkpoint's entry 'model_state_dict'" in loaded.ir.notes
    assert [layer.kind for layer in loaded.ir.layers] == ["lstm", "gru", "dense"]


def test_bad_files_are_one_line_errors(torch, tmp_path, capsys):
    nn = torch.nn
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    torch.save({"fc.weight": torch.zeros(2, 3)}, tmp_path / "no_rnn.pt")
    torch.save(
        {"weight_ih_l0": torch.zeros(10, 3), "weight_hh_l0": torch.zeros(10, 5)},
        tmp_path / "odd.pt",
    )
    torch.save(nn.LSTM(3, 4).state_dict(), tmp_path / "lstm.pt")
    bad = {
        "tensor.pt": ([], "expected a state_dict"),
        "no_rnn.pt": ([], "no recurrent module"),
        "odd.pt": ([], "neither an nn.LSTM (4H x H), an nn.GRU (3H x H) nor an nn.RNN"),
        "lstm.pt": (["--head", "fc"], "head item 'fc'"),
    }
    for name, (options, message) in bad.items():
        out = tmp_path / f"out_{name}"
        assert main(["generate", str(tmp_path / name), *options, "--out", str(out)]) == 2, name
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and not out.exists(), (name, err)
    with pytest.raises(ModelError, match="output must be one of last, sequence, h_n"):
        lstmgen.load(tmp_path / "lstm.pt", output="first")
