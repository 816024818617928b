"""PyTorch front end: nn.LSTM stacks + Linear heads against the module's own forward."""
from __future__ import annotations

import numpy as np
import pytest

import lstmgen
from lstmgen.backends import c as c_backend
from lstmgen.cli import main
from lstmgen.errors import ModelError, UnsupportedLayerError
from lstmgen.runners import c as c_runner
from lstmgen.verify import error_metrics

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def torch():
    from support import require_module
    return require_module("torch")


def make_net(torch, d, h, layers, bias, batch_first, head, sequence):
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(d, h, num_layers=layers, bias=bias,
                                      batch_first=batch_first, dropout=0.2 if layers > 1 else 0)
            mods, width = [], h
            for item in head:
                if isinstance(item, int):
                    mods.append(torch.nn.Linear(width, item))
                    width = item
                else:
                    mods.append(item)
            self.head = torch.nn.Sequential(*mods)

        def forward(self, x):
            y, _ = self.lstm(x)
            if not sequence:
                y = y[:, -1] if batch_first else y[-1]
            return self.head(y)
    torch.manual_seed(d * 100 + h)
    net = Net()
    with torch.no_grad():  # biases are zero-ish by default: make them count
        for p in net.parameters():
            p.uniform_(-0.5, 0.5)
    return net


def grid(torch):
    nn = torch.nn
    return [
        dict(d=3, h=5, layers=1, bias=True, batch_first=True, head=[1], sequence=False),
        dict(d=1, h=1, layers=1, bias=False, batch_first=False, head=[], sequence=False),
        dict(d=20, h=64, layers=2, bias=True, batch_first=True,
             head=[16, nn.ReLU(), 4, nn.Softmax(dim=-1)], sequence=False),
        dict(d=7, h=12, layers=3, bias=True, batch_first=False, head=[3, nn.Tanh()],
             sequence=True),
        dict(d=9, h=32, layers=2, bias=False, batch_first=True,
             head=[nn.Dropout(0.5), 5, nn.Sigmoid()], sequence=True),
        dict(d=4, h=6, layers=1, bias=True, batch_first=True,
             head=[6, nn.ELU(), 2, nn.Softplus(), nn.Identity(), 2, nn.Hardsigmoid()],
             sequence=False),
        dict(d=5, h=8, layers=1, bias=True, batch_first=True, head=[3, nn.Softsign()],
             sequence=False),
    ]


def test_torch_grid_through_c_matches_forward(torch, tmp_path):
    for n, spec in enumerate(grid(torch)):
        net = make_net(torch, **spec)
        rng = np.random.default_rng(n)
        t_len = 11
        x = rng.standard_normal((5, t_len, spec["d"])).astype(np.float32)
        example = x if spec["batch_first"] else np.swapaxes(x, 0, 1)
        loaded = lstmgen.extractors.open_model(net, example_input=example)
        ir = loaded.ir
        assert sum(l.kind == "lstm" for l in ir.layers) == spec["layers"]
        expected = loaded.predict(x)
        with torch.no_grad():  # the oracle: the module itself, in its own layout
            direct = net.eval()(torch.as_tensor(example)).numpy()
        if spec["sequence"] and not spec["batch_first"]:
            direct = np.swapaxes(direct, 0, 1)
        assert np.array_equal(expected, direct)
        files = c_backend.render(ir, "net")
        workdir = tmp_path / f"m{n}"
        got = c_runner.run(ir, files, "net", x, workdir)
        _, rel = error_metrics(got, direct)
        assert rel.max() <= TOLERANCE, (spec, rel.max())


def test_two_biases_are_summed(torch):
    net = make_net(torch, 2, 3, 1, True, True, [], False)
    ir = lstmgen.load(net, example_input=np.zeros((1, 2, 2), np.float32))
    lstm = net.lstm
    assert np.array_equal(ir.layers[0].bias,
                          (lstm.bias_ih_l0 + lstm.bias_hh_l0).detach().numpy())
    assert np.array_equal(ir.layers[0].input_weights, lstm.weight_ih_l0.detach().numpy())
    assert "bias_ih_l0 + bias_hh_l0" in ir.layers[0].origin


def test_state_dict_file_with_head_description(torch, tmp_path, capsys):
    net = make_net(torch, 4, 10, 2, True, True, [6, torch.nn.ReLU(), 3], False)
    torch.save(net.state_dict(), tmp_path / "net.pt")
    x = np.random.default_rng(3).standard_normal((4, 9, 4)).astype(np.float32)
    with torch.no_grad():
        expected = net.eval()(torch.as_tensor(x)).numpy()
    loaded = lstmgen.extractors.open_model(tmp_path / "net.pt",
                                           head=["head.0", "relu", "head.2"])
    assert np.allclose(loaded.predict(x), expected, atol=1e-6)
    report = lstmgen.verify(tmp_path / "net.pt", "c", inputs=x,
                            load_options={"head": ["head.0", "relu", "head.2"]})
    assert report.passed and "PyTorch" in report.oracle
    assert main(["verify", str(tmp_path / "net.pt"), "--head", "head.0,relu,head.2"]) == 0
    assert main(["inspect", str(tmp_path / "net.pt"), "--head", "head.0,relu,head.2"]) == 0
    assert "weight_ih_l{k}".replace("{k}", "0") in capsys.readouterr().out
    assert main(["generate", str(tmp_path / "net.pt"), "--head", "nope",
                 "--out", str(tmp_path / "o")]) == 2
    assert "'nope'" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_unsafe_pickle_is_refused(torch, tmp_path):
    import pickle

    class Boom:
        def __reduce__(self):
            return (print, ("pwned",))
    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"x": Boom()}))
    with pytest.raises(ModelError, match="weights_only"):
        lstmgen.load(tmp_path / "evil.pt")


def test_unsupported_torch_features(torch):
    nn = torch.nn
    x = np.zeros((1, 3, 2), np.float32)
    for kwargs, text in ((dict(bidirectional=True), "bidirectional"),
                         (dict(proj_size=2), "proj_size")):
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.lstm = nn.LSTM(2, 4, batch_first=True, **kwargs)

            def forward(self, v):
                return self.lstm(v)[0][:, -1]
        with pytest.raises(UnsupportedLayerError, match=text):
            lstmgen.load(Net(), example_input=x)

    class Odd(nn.Module):  # forward does something the chain of modules does not say
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(2, 4, batch_first=True)
            self.fc = nn.Linear(4, 1)

        def forward(self, v):
            y, _ = self.lstm(v)
            return self.fc(y[:, -1] * 2)
    with pytest.raises(UnsupportedLayerError, match="does not compute the chain"):
        lstmgen.load(Odd(), example_input=np.ones((2, 3, 2), np.float32))

    class Conv(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(2, 4, batch_first=True)
            self.gru = nn.GRU(4, 3, batch_first=True)

        def forward(self, v):
            return self.gru(self.lstm(v)[0])[0][:, -1]
    with pytest.raises(UnsupportedLayerError, match="'?gru'?.*GRU"):
        lstmgen.load(Conv(), example_input=x)
