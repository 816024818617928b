"""PyTorch front end: nn.LSTM/GRU/RNN stacks and Linear heads (live modules and state_dict
files) against the module's own forward."""

from __future__ import annotations

import numpy as np
import pytest

import lstmgen
from lstmgen.cli import main
from lstmgen.errors import ModelError, UnsupportedLayerError
from lstmgen.targets import c as c_backend
from lstmgen.targets.c import runner as c_runner
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
            self.lstm = torch.nn.LSTM(
                d,
                h,
                num_layers=layers,
                bias=bias,
                batch_first=batch_first,
                dropout=0.2 if layers > 1 else 0,
            )
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
        dict(
            d=20,
            h=64,
            layers=2,
            bias=True,
            batch_first=True,
            head=[16, nn.ReLU(), 4, nn.Softmax(dim=-1)],
            sequence=False,
        ),
        dict(d=7, h=12, layers=3, bias=True, batch_first=False, head=[3, nn.Tanh()], sequence=True),
        dict(
            d=9,
            h=32,
            layers=2,
            bias=False,
            batch_first=True,
            head=[nn.Dropout(0.5), 5, nn.Sigmoid()],
            sequence=True,
        ),
        dict(
            d=4,
            h=6,
            layers=1,
            bias=True,
            batch_first=True,
            head=[6, nn.ELU(), 2, nn.Softplus(), nn.Identity(), 2, nn.Hardsigmoid()],
            sequence=False,
        ),
        dict(
            d=5, h=8, layers=1, bias=True, batch_first=True, head=[3, nn.Softsign()], sequence=False
        ),
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
    assert np.array_equal(ir.layers[0].bias, (lstm.bias_ih_l0 + lstm.bias_hh_l0).detach().numpy())
    assert np.array_equal(ir.layers[0].input_weights, lstm.weight_ih_l0.detach().numpy())
    assert "bias_ih_l0 + bias_hh_l0" in ir.layers[0].origin


def test_state_dict_file_with_head_description(torch, tmp_path, capsys):
    net = make_net(torch, 4, 10, 2, True, True, [6, torch.nn.ReLU(), 3], False)
    torch.save(net.state_dict(), tmp_path / "net.pt")
    x = np.random.default_rng(3).standard_normal((4, 9, 4)).astype(np.float32)
    with torch.no_grad():
        expected = net.eval()(torch.as_tensor(x)).numpy()
    loaded = lstmgen.extractors.open_model(tmp_path / "net.pt", head=["head.0", "relu", "head.2"])
    assert np.allclose(loaded.predict(x), expected, atol=1e-6)
    report = lstmgen.verify(
        tmp_path / "net.pt", "c", inputs=x, load_options={"head": ["head.0", "relu", "head.2"]}
    )
    assert report.passed and "PyTorch" in report.oracle
    assert main(["verify", str(tmp_path / "net.pt"), "--head", "head.0,relu,head.2"]) == 0
    assert main(["inspect", str(tmp_path / "net.pt"), "--head", "head.0,relu,head.2"]) == 0
    assert "weight_ih_l{k}".replace("{k}", "0") in capsys.readouterr().out
    assert (
        main(["generate", str(tmp_path / "net.pt"), "--head", "nope", "--out", str(tmp_path / "o")])
        == 2
    )
    assert "'nope'" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_unsafe_pickle_is_refused(torch, tmp_path):
    import pickle

    class Boom:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"x": Boom()}))
    with pytest.raises(ModelError, match="weights_only"):
        lstmgen.load(tmp_path / "evil.pt")


def _module(torch, recurrent, head_in, sequence, use_h_n=False):
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = recurrent
            self.fc = nn.Linear(head_in, 2)

        def forward(self, v):
            y, state = self.rnn(v)
            if sequence:
                return self.fc(y)
            if use_h_n:  # both directions' final states
                h_n = state[0] if isinstance(state, tuple) else state
                return self.fc(torch.cat([h_n[-2], h_n[-1]], dim=-1))
            return self.fc(y[:, -1])

    torch.manual_seed(head_in)
    net = Net()
    with torch.no_grad():
        for p in net.parameters():
            p.uniform_(-0.5, 0.5)
    return net


def recurrent_cases(torch):
    nn = torch.nn
    return {
        "bi_lstm_h_n": _module(
            torch,
            nn.LSTM(4, 5, num_layers=2, bidirectional=True, batch_first=True),
            10,
            False,
            use_h_n=True,
        ),
        "bi_gru_seq": _module(torch, nn.GRU(4, 3, bidirectional=True, batch_first=True), 6, True),
        "proj": _module(
            torch, nn.LSTM(4, 8, proj_size=3, num_layers=2, batch_first=True), 3, False
        ),
        "bi_proj": _module(
            torch, nn.LSTM(4, 6, proj_size=2, bidirectional=True, batch_first=True), 4, True
        ),
        "gru": _module(torch, nn.GRU(4, 7, num_layers=2, batch_first=True), 7, False),
        "rnn_relu": _module(torch, nn.RNN(4, 6, nonlinearity="relu", batch_first=True), 6, True),
        "rnn_no_bias": _module(torch, nn.RNN(4, 5, bias=False, batch_first=True), 5, False),
    }


def test_gru_rnn_bidirectional_projection_match_forward(torch, tmp_path):
    from lstmgen.reference import forward
    from lstmgen.targets import BASIC_LAYERS, TARGETS, get_backend, get_runner, render

    x = np.random.default_rng(5).standard_normal((4, 9, 4)).astype(np.float32)
    for key, net in recurrent_cases(torch).items():
        loaded = lstmgen.extractors.open_model(net, example_input=x)
        with torch.no_grad():
            expected = net.eval()(torch.as_tensor(x)).numpy()
        assert error_metrics(forward(loaded.ir, x), expected)[1].max() <= TOLERANCE, key
        for target in sorted(TARGETS):
            backend = get_backend(target)
            kinds = getattr(backend, "LAYERS", BASIC_LAYERS)
            features = getattr(backend, "FEATURES", frozenset())
            if not (loaded.ir.kinds() <= set(kinds) and set(loaded.ir.features()) <= features):
                with pytest.raises(lstmgen.LstmgenError, match="does not implement"):
                    render(target, loaded.ir, "net")
                continue
            workdir = tmp_path / f"{key}_{target}"
            workdir.mkdir()
            got = get_runner(target).run(
                loaded.ir, render(target, loaded.ir, "net"), "net", x, workdir
            )
            assert error_metrics(got, expected)[1].max() <= TOLERANCE, (key, target)


def test_gru_rows_and_biases_are_mapped(torch):
    net = recurrent_cases(torch)["gru"]
    ir = lstmgen.load(net, example_input=np.zeros((1, 2, 4), np.float32))
    gru, h = ir.layers[0], 7
    w = net.rnn.weight_ih_l0.detach().numpy()
    assert np.array_equal(gru.input_weights[:h], w[h : 2 * h])  # z is PyTorch's 2nd block
    assert np.array_equal(gru.input_weights[h : 2 * h], w[:h])  # r is its 1st
    assert np.array_equal(gru.recurrent_bias[2 * h :], net.rnn.bias_hh_l0.detach().numpy()[2 * h :])
    assert gru.reset_after and "rows r,z,n -> input_weights rows z,r,n" in gru.origin


def test_bidirectional_state_dict_file(torch, tmp_path):
    net = recurrent_cases(torch)["bi_lstm_h_n"]
    torch.save(net.state_dict(), tmp_path / "bi.pt")
    x = np.random.default_rng(2).standard_normal((3, 6, 4)).astype(np.float32)
    with torch.no_grad():
        expected = net.eval()(torch.as_tensor(x)).numpy()
    from lstmgen.reference import forward

    ir = lstmgen.load(tmp_path / "bi.pt", head=["fc"], output="h_n")
    assert error_metrics(forward(ir, x), expected)[1].max() <= TOLERANCE


def test_unsupported_torch_features(torch):
    nn = torch.nn
    x = np.ones((2, 3, 2), np.float32)

    class Odd(nn.Module):  # forward does something the IR cannot say: refused by op name
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(2, 4, batch_first=True)
            self.fc = nn.Linear(4, 1)

        def forward(self, v):
            y, _ = self.lstm(v)
            return self.fc(y[:, -1] * y[:, 0])

    with pytest.raises(UnsupportedLayerError, match="aten.mul.Tensor .*multiplies two tensors"):
        lstmgen.load(Odd(), example_input=x)

    class Conv(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(2, 2, 1)
            self.lstm = nn.LSTM(2, 4, batch_first=True)

        def forward(self, v):
            return self.lstm(self.conv(v.transpose(1, 2)).transpose(1, 2))[0][:, -1]

    with pytest.raises(UnsupportedLayerError, match="aten.conv1d.default .*not supported"):
        lstmgen.load(Conv(), example_input=x)
