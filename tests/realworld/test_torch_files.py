"""Third-party PyTorch state_dicts (../shared/real_models): each rebuilt as the module its
SOURCE.txt describes, loaded the way its author would, converted from the live module and
checked against that module's forward (the float64 reference, and every target); the file
read on its own (no module) gives the same IR, and its rebuilt oracle agrees with the
author's module."""

from __future__ import annotations

import numpy as np
import pytest
from support import EXHAUSTIVE, oracle_on_every_target, real_model, require_module

import lstmgen
from lstmgen.reference import forward
from lstmgen.verify import error_metrics

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def torch():
    return require_module("torch")


def energy_module(torch):
    """energy_lstm_torch/SOURCE.txt: LSTMNet, nn.LSTM(5, 256, 2 layers, batch_first,
    dropout 0.2) -> out[:, -1] -> ReLU (in forward, not in the file) -> nn.Linear(256, 1)."""
    nn = torch.nn

    class LSTMNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(5, 256, num_layers=2, batch_first=True, dropout=0.2)
            self.fc = nn.Linear(256, 1)
            self.relu = nn.ReLU()

        def forward(self, x):
            out, _ = self.lstm(x)
            return self.fc(self.relu(out[:, -1]))

    return LSTMNet()


def btc_module(torch):
    """btc_lstm_torch/SOURCE.txt: LSTMModel, nn.LSTM(5, 64, batch_first) -> out[:, -1, :]
    -> nn.Linear(64, 1)."""
    nn = torch.nn

    class LSTMModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(5, 64, num_layers=1, batch_first=True)
            self.fc = nn.Linear(64, 1)

        def forward(self, x):
            out, _ = self.lstm(x)
            return self.fc(out[:, -1, :])

    return LSTMModel()


# file, module builder, the timesteps its author used, what --head says for the file alone
MODELS = {
    "energy_lstm_torch": ("energy_lstm_torch/lstm_model.pt", energy_module, 90, ["relu", "fc"]),
    "btc_lstm_torch": ("btc_lstm_torch/lstm_model.pth", btc_module, 60, None),
}
#: On every target by default; energy's 800k weights take minutes to compile and run per
#: target, so it joins with LSTMGEN_EXHAUSTIVE=1 (its conversion is checked by default).
ON_TARGETS = sorted(MODELS) if EXHAUSTIVE else ["btc_lstm_torch"]


@pytest.fixture(scope="module")
def converted(torch):
    """key -> (the author's module with the file loaded, lstmgen's Loaded of it)."""
    result = {}
    for key, (relative, build, t_len, _) in sorted(MODELS.items()):
        path = real_model(relative)
        module = build(torch)
        # as its author loads it (energy's file was saved on a GPU: map_location is needed)
        module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        module.eval()
        example = np.random.default_rng(0).standard_normal((1, t_len, 5)).astype(np.float32)
        result[key] = (module, lstmgen.extractors.open_model(module, example_input=example))
    return result


def inputs(sequences=3, timesteps=12):
    """Short sequences: the python target runs 800k weights slowly."""
    return np.random.default_rng(1).standard_normal((sequences, timesteps, 5)).astype(np.float32)


@pytest.mark.parametrize("key", sorted(MODELS))
def test_real_pytorch_file_converts_and_matches_its_module(key, converted, torch):
    module, live = converted[key]
    x = inputs()
    with torch.no_grad():
        expected = module(torch.as_tensor(x)).numpy()
    assert np.array_equal(live.predict(x), expected)  # the oracle is the author's forward
    _, rel = error_metrics(forward(live.ir, x), expected)
    assert rel.max() <= TOLERANCE, float(rel.max())

    relative, _, _, head = MODELS[key]
    from_file = lstmgen.extractors.open_model(
        real_model(relative), **({"head": head} if head else {})
    )
    assert [layer.describe() for layer in from_file.ir.layers] == [
        layer.describe() for layer in live.ir.layers
    ]
    for a, b in zip(from_file.ir.layers, live.ir.layers):
        assert all(
            np.array_equal(u, v) for u, v in zip(a.arrays().values(), b.arrays().values())
        ), a.name
    assert np.allclose(from_file.predict(x), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("key", ON_TARGETS)
def test_real_pytorch_file_on_every_target(key, converted, tmp_path):
    _, live = converted[key]
    errors = oracle_on_every_target(live, inputs(), tmp_path)
    assert max(errors.values()) <= TOLERANCE, errors
