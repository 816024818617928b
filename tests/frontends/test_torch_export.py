"""PyTorch modules as users write them: forward captured with torch.export and its aten graph
read into the IR. Every model is checked against its own forward (the oracle): the float64
reference on inputs of another batch size and length than the example, and the models
below that cover the issue's cases and every kind of op, through every target.
Refusals name the op and the line of forward that called it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support import (
    ORACLE_TARGETS,
    oracle_on_every_target,
    require_module,
    torch_bilstm_last_step,
)

import lstmgen
from lstmgen.errors import UnsupportedLayerError
from lstmgen.reference import forward
from lstmgen.verify import error_metrics

TOLERANCE = 1e-5
HERE = Path(__file__)


@pytest.fixture(scope="module")
def torch():
    return require_module("torch")


def randomized(torch, module, seed=0):
    """`module` in eval mode with uniform(-0.5, 0.5) parameters (biases count), positive
    batch-norm variances."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(-0.5, 0.5)
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return module.eval()


def own_forward(torch, module, x, time_first=False, ids=False):
    """The module's forward on lstmgen-layout x [N, T, D] (ids: [N, T, 1]), in the module's
    own layout, the result back in lstmgen's (a sequence output as [N, T, O])."""
    xt = torch.as_tensor(x[..., 0].astype(np.int64) if ids else x)
    if time_first:
        xt = xt.transpose(0, 1)
    with torch.no_grad():
        y = module(xt)
    if time_first and y.dim() == 3:
        y = y.transpose(0, 1)
    y = y.numpy()
    return y[:, None] if y.ndim == 1 else y


# ---- the issue's models and models covering every kind of op, through every target ---
def target_models(torch):
    """key -> (module, example_input, time_first, ids): the models run on every target."""
    nn, F = torch.nn, torch.nn.functional

    class LstmReluLast(nn.Module):  # issue 14: refused by registration-order reading
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(4, 6, batch_first=True)
            self.fc = nn.Linear(6, 3)

        def forward(self, x):
            out, _ = self.lstm(x)
            return self.fc(F.relu(out[:, -1]))

    class BiGruFinalStates(nn.Module):  # issue 14: torch.cat([h_n[-2], h_n[-1]], 1)
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(4, 5, num_layers=2, batch_first=True, bidirectional=True)
            self.fc = nn.Linear(10, 2)

        def forward(self, x):
            _, h_n = self.gru(x)
            return torch.sigmoid(self.fc(torch.cat([h_n[-2], h_n[-1]], 1)))

    class TimeFirstProjected(nn.Module):  # time-major input, normalization, h0, matmul
        def __init__(self):
            super().__init__()
            self.register_buffer("mean", torch.tensor([0.5, -1.0, 2.0, 0.0]))
            self.register_buffer("std", torch.tensor([2.0, 0.5, 1.0, 3.0]))
            self.lstm = nn.LSTM(4, 7, num_layers=2, proj_size=3)
            self.h0 = nn.Parameter(torch.zeros(2, 1, 3))
            self.c0 = nn.Parameter(torch.zeros(2, 1, 7))
            self.norm = nn.LayerNorm(3)
            self.w = nn.Parameter(torch.zeros(3, 2))
            self.b = nn.Parameter(torch.zeros(2))

        def forward(self, x):  # x [T, B, 4]
            batch = x.size(1)
            state = (self.h0.expand(-1, batch, -1).contiguous(), self.c0.expand(-1, batch, -1))
            out, _ = self.lstm((x - self.mean) / self.std, (state[0], state[1].contiguous()))
            rows = F.softsign(self.norm(out)).reshape(-1, 3)
            y = rows @ self.w + self.b
            return y.view(x.size(0), batch, 2)

    class FlattenRnn(nn.Module):  # fixed-length sequence flattened into a head
        def __init__(self):
            super().__init__()
            self.rnn = nn.RNN(3, 4, nonlinearity="relu", batch_first=True, dropout=0.0)
            self.fc1 = nn.Linear(6 * 4, 5)
            self.fc2 = nn.Linear(5, 1)

        def forward(self, x):
            out, _ = self.rnn(x)
            y = F.elu(self.fc1(torch.flatten(out, 1)))
            y = F.dropout(y, 0.3, training=self.training)
            return F.hardsigmoid(self.fc2(y)).squeeze(-1)

    class TokensPooled(nn.Module):  # token ids in, mean over time, BatchNorm, log_softmax
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(12, 4)
            self.gru = nn.GRU(4, 5, batch_first=True, bidirectional=True)
            self.norm = nn.BatchNorm1d(10)
            self.fc = nn.Linear(10, 3)

        def forward(self, ids):
            out, _ = self.gru(self.embed(ids))
            return F.log_softmax(self.fc(self.norm(out.mean(dim=1))), dim=-1)

    rng = np.random.default_rng(1)
    features = rng.standard_normal((2, 6, 4)).astype(np.float32)
    return {
        "lstm_relu_last": (randomized(torch, LstmReluLast()), features, False, False),
        "bigru_final_states": (randomized(torch, BiGruFinalStates()), features, False, False),
        "bilstm_last_step": (torch_bilstm_last_step(torch), features, False, False),
        "time_first_projected": (
            randomized(torch, TimeFirstProjected()),
            np.swapaxes(features, 0, 1),
            True,
            False,
        ),
        "flatten_rnn": (randomized(torch, FlattenRnn()), features[..., :3], False, False),
        "tokens_pooled": (
            randomized(torch, TokensPooled()),
            rng.integers(0, 12, (2, 6)),
            False,
            True,
        ),
    }


@pytest.fixture(scope="module")
def loaded_targets(torch):
    return {
        key: (lstmgen.extractors.open_model(module, example_input=example), module, time_first, ids)
        for key, (module, example, time_first, ids) in target_models(torch).items()
    }


TARGET_CASES = [
    "lstm_relu_last",
    "bigru_final_states",
    "bilstm_last_step",
    "time_first_projected",
    "flatten_rnn",
    "tokens_pooled",
]


@pytest.mark.parametrize("key", TARGET_CASES)
def test_model_matches_its_forward_on_every_target(key, loaded_targets, torch, tmp_path):
    loaded, module, time_first, ids = loaded_targets[key]
    t_len = loaded.ir.timesteps or 9
    rng = np.random.default_rng(7)
    x = rng.integers(0, 12, (3, t_len, 1)) if ids else rng.standard_normal((3, t_len, 4))
    x = x[..., : loaded.ir.input_size].astype(np.float32)
    expected = own_forward(torch, module, x, time_first, ids)
    assert np.array_equal(loaded.predict(x), expected)  # the oracle is forward itself
    errors = oracle_on_every_target(loaded, x, tmp_path)
    assert set(errors) == {"reference", *ORACLE_TARGETS}


def test_what_the_issue_models_become(loaded_targets):
    kinds = {
        key: [layer.kind for layer in loaded.ir.layers]
        for key, (loaded, *_) in loaded_targets.items()
    }
    assert kinds["lstm_relu_last"] == ["lstm", "activation", "dense"]
    assert not loaded_targets["lstm_relu_last"][0].ir.layers[0].return_sequences  # the last step
    gru = loaded_targets["bigru_final_states"][0].ir.layers[1]
    assert gru.kind == "bidirectional" and not gru.return_sequences  # both final states
    assert kinds["bilstm_last_step"] == ["bidirectional", "time_slice", "dense"]
    bilstm, last = loaded_targets["bilstm_last_step"][0].ir.layers[:2]
    assert bilstm.return_sequences and last.is_last_step and last.squeeze
    projected = loaded_targets["time_first_projected"][0].ir
    assert kinds["time_first_projected"][0] == "normalize" and projected.features() == {
        "initial_state": ["lstm.l0", "lstm.l1"],
        "projection": ["lstm.l0", "lstm.l1"],
    }
    assert loaded_targets["flatten_rnn"][0].ir.timesteps == 6  # Flatten fixes T
    assert loaded_targets["tokens_pooled"][0].ir.token_vocabulary == 12


def test_bilstm_last_step_is_not_the_final_states(loaded_targets, torch):
    """out[:, -1] of a BiLSTM: the backward half has read one step; the IR says exactly that
    (reading h_n instead would differ)."""
    loaded, module, *_ = loaded_targets["bilstm_last_step"]
    x = np.random.default_rng(3).standard_normal((2, 8, 4)).astype(np.float32)
    with torch.no_grad():
        out, (h_n, _) = module.lstm(torch.as_tensor(x))
        last_step_backward = module.lstm(torch.as_tensor(x[:, -1:]))[0][:, 0, 5:]
    assert np.allclose(out[:, -1, 5:], last_step_backward, atol=1e-6)
    assert not np.allclose(out[:, -1, 5:], h_n[-1], atol=1e-3)
    reference_features = forward(
        lstmgen.ir.Model(4, loaded.ir.layers[:2]).validate(), x
    )  # the IR up to the time slice
    assert np.allclose(reference_features, out[:, -1].numpy(), atol=1e-6)


# ---- more forward patterns, against the float64 reference ------------------------------
def pattern_models(torch):
    """key -> (module, time_first): forwards over [B, T, 3] (time first where marked)."""
    nn, F = torch.nn, torch.nn.functional

    class Net(nn.Module):
        def __init__(self, recurrent, fc_in=5, fc_out=2):
            super().__init__()
            self.rnn = recurrent
            self.fc = nn.Linear(fc_in, fc_out)
            self.act = nn.ReLU(inplace=True)

    class TimeFirstLast(Net):
        def forward(self, x):
            return self.fc(self.rnn(x)[0][-1])

    class PermutedInput(Net):
        def forward(self, x):
            return self.fc(self.rnn(x.permute(1, 0, 2))[0][-1])

    class SqueezedFinalState(Net):
        def forward(self, x):
            _, h_n = self.rnn(x)
            return self.fc(h_n.squeeze())

    class FirstLayerFinalState(Net):
        def forward(self, x):
            return self.fc(self.rnn(x)[1][0][0])

    class BackwardFinalState(Net):
        def forward(self, x):
            return torch.tanh(self.fc(self.rnn(x)[1][0][-1]))

    class LastSteps(Net):
        def forward(self, x):
            return self.act(self.fc(self.rnn(x)[0][:, -3:, :]))

    class StepIndex(Net):
        def forward(self, x):
            return self.fc(self.rnn(x)[0][:, [-2, -1]])

    class FixedStep(Net):
        def forward(self, x):
            return F.softplus(self.fc(self.rnn(x)[0][:, 1]))

    class SizeMinusOne(Net):
        def forward(self, x):
            return self.fc(self.rnn(x)[0][:, x.size(1) - 1, :])

    class MaxOverTime(Net):
        def forward(self, x):
            return F.softmax(self.fc(torch.max(self.rnn(x)[0], dim=1)[0]), dim=1)

    class AmaxKeepdim(Net):
        def forward(self, x):
            return self.fc(self.rnn(x)[0].amax(1, keepdim=True))

    class RowsAndBack(Net):
        def forward(self, x):
            out = self.rnn(x)[0]
            return torch.sigmoid(self.fc(out.contiguous().view(-1, out.size(2)))).view(
                x.size(0), -1, 2
            )

    class WidthOne(Net):
        def forward(self, x):
            return self.fc(self.rnn(x)[0][:, -1]).view(-1)

    class Narrowed(Net):
        def forward(self, x):
            return self.fc(torch.narrow(self.rnn(x)[0], 1, 1, 3))

    class Addmm(Net):
        def forward(self, x):
            return torch.addmm(self.fc.bias, self.rnn(x)[0][:, -1], self.fc.weight.t())

    class SlicedFinalStates(Net):
        def forward(self, x):
            _, h_n = self.rnn(x)
            return self.fc(h_n[-2:].transpose(0, 1).reshape(x.size(0), -1))

    class PermutedFinalStates(Net):
        def forward(self, x):
            _, (h_n, _) = self.rnn(x)
            return self.fc(h_n.permute(1, 0, 2).flatten(1))

    def gru():
        return nn.GRU(3, 5, batch_first=True)

    return {
        "time_first_last": (TimeFirstLast(nn.LSTM(3, 5)), True),
        "permuted_input": (PermutedInput(nn.RNN(3, 5)), False),
        "squeezed_final_state": (SqueezedFinalState(nn.GRU(3, 5, batch_first=True)), False),
        "first_layer_final_state": (
            FirstLayerFinalState(nn.LSTM(3, 5, num_layers=2, batch_first=True)),
            False,
        ),
        "backward_final_state": (
            BackwardFinalState(nn.LSTM(3, 5, batch_first=True, bidirectional=True)),
            False,
        ),
        "last_steps": (LastSteps(nn.LSTM(3, 5, batch_first=True, bias=False)), False),
        "step_index": (StepIndex(gru()), False),
        "fixed_step": (FixedStep(nn.RNN(3, 5, batch_first=True)), False),
        "size_minus_one": (SizeMinusOne(nn.LSTM(3, 5, batch_first=True, proj_size=2), 2), False),
        "max_over_time": (MaxOverTime(gru()), False),
        "amax_keepdim": (AmaxKeepdim(gru()), False),
        "rows_and_back": (RowsAndBack(nn.LSTM(3, 5, batch_first=True)), False),
        "width_one": (WidthOne(gru(), 5, 1), False),
        "narrowed": (Narrowed(gru()), False),
        "sliced_final_states": (
            SlicedFinalStates(nn.GRU(3, 5, num_layers=2, batch_first=True, bidirectional=True), 10),
            False,
        ),
        "permuted_final_states": (
            PermutedFinalStates(nn.LSTM(3, 5, batch_first=True, bidirectional=True), 10),
            False,
        ),
        "addmm": (Addmm(nn.GRU(3, 5, batch_first=True, bidirectional=True), 10), False),
    }


def test_forward_patterns_match_forward(torch):
    rng = np.random.default_rng(0)
    example = rng.standard_normal((2, 6, 3)).astype(np.float32)
    x = rng.standard_normal((4, 8, 3)).astype(np.float32)
    for key, (module, time_first) in pattern_models(torch).items():
        module = randomized(torch, module, seed=len(key))
        loaded = lstmgen.extractors.open_model(
            module, example_input=np.swapaxes(example, 0, 1) if time_first else example
        )
        ir = loaded.ir
        length = ir.timesteps or x.shape[1]
        got = forward(ir, x[:, :length])
        expected = own_forward(torch, module, x[:, :length], time_first)
        if key == "amax_keepdim":  # forward keeps the pooled time axis: [N, 1, O]
            expected = expected[:, 0]
        _, rel = error_metrics(got, expected)
        assert rel.max() <= TOLERANCE, (key, float(rel.max()))
        if key == "fixed_step":  # out[:, 1] is step 1 for any T
            assert ir.layers[1].start == 1 and ir.timesteps is None
        if key in ("size_minus_one", "time_first_last"):  # the last step: a final state
            assert [layer.kind for layer in ir.layers] == ["lstm", "dense"]
        if key in ("sliced_final_states", "permuted_final_states"):  # h_n[-2], h_n[-1] joined
            assert ir.layers[-2].kind == "bidirectional" and not ir.layers[-2].return_sequences
        if key == "backward_final_state":
            assert ir.layers[0].kind == "lstm" and ir.layers[0].go_backwards


def test_a_hard_coded_step_fixes_the_timesteps(torch):
    """out[:, 5] on an example of 6 steps reads like the last step; forward on other
    lengths says it is not, so the model is read for 6 timesteps, with a note."""
    nn = torch.nn

    class Step5(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(3, 4, batch_first=True)

        def forward(self, x):
            return self.lstm(x)[0][:, 5]

    example = np.random.default_rng(0).standard_normal((2, 6, 3)).astype(np.float32)
    ir = lstmgen.load(randomized(torch, Step5()), example_input=example)
    assert ir.timesteps == 6 and "6 timesteps only" in ir.notes[0]


def test_batch_of_one_example_and_reused_modules(torch):
    """An example with batch 1 (lstmgen captures with another batch size), and a module
    called twice (its layers get distinct names)."""
    nn = torch.nn

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.GRU(3, 4, batch_first=True)
            self.fc = nn.Linear(4, 4)
            self.act = nn.Tanh()

        def forward(self, x):
            _, h_n = self.lstm(x)
            return self.act(self.fc(self.act(self.fc(h_n.squeeze()))))

    module = randomized(torch, Twice())
    example = np.ones((1, 5, 3), np.float32)
    ir = lstmgen.load(module, example_input=example)
    assert [layer.name for layer in ir.layers] == ["lstm", "fc", "act", "fc_2", "act_2"]


def test_fallback_where_export_fails(torch):
    nn = torch.nn

    class DataDependent(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(3, 4, batch_first=True)
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            if x.abs().sum() > 0:  # torch.export cannot capture this branch
                return self.fc(self.lstm(x)[0][:, -1])
            return self.fc(self.lstm(x)[0][:, -1])

    example = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    module = randomized(torch, DataDependent())
    ir = lstmgen.load(module, example_input=example)
    assert "registration order" in ir.notes[0] and "torch.export" in ir.notes[0]
    x = np.random.default_rng(1).standard_normal((3, 7, 3)).astype(np.float32)
    assert error_metrics(forward(ir, x), own_forward(torch, module, x))[1].max() <= TOLERANCE


# ---- refusals: the op and the line of forward ------------------------------------------
def refused_models(torch):
    """key -> (module, the op named, words of the reason, a marker on the refused line)."""
    nn, F = torch.nn, torch.nn.functional

    class Base(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(3, 3, num_layers=2, batch_first=True)
            self.fc = nn.Linear(3, 2)

    class Gelu(Base):
        def forward(self, x):
            return self.fc(F.gelu(self.lstm(x)[0][:, -1]))  # marker: gelu

    class Residual(Base):
        def forward(self, x):
            return self.lstm(x)[0] + x  # marker: residual

    class CellState(Base):
        def forward(self, x):
            return self.fc(self.lstm(x)[1][1][-1])  # marker: c_n

    class WholeStack(Base):
        def forward(self, x):
            _, (h_n, _) = self.lstm(x)
            return h_n.permute(1, 0, 2).reshape(x.size(0), -1)  # marker: whole h_n

    class Scaled(Base):
        def forward(self, x):
            return self.lstm(x)[0][:, -1] * 2.0  # marker: scaled

    class FeatureSlice(Base):
        def forward(self, x):
            return self.lstm(x)[0][:, -1, :2]  # marker: feature slice

    class SwappedStates(Base):
        def forward(self, x):
            _, (h_n, _) = self.lstm(x)
            return torch.cat([h_n[-1], h_n[-2]], dim=1)  # marker: swapped

    class TwoOutputs(Base):
        def forward(self, x):
            return self.lstm(x)

    return {
        "gelu": (Gelu(), "aten.gelu.default", "not supported", "marker: gelu"),
        "residual": (Residual(), "aten.add.Tensor", "residual", "marker: residual"),
        "c_n": (CellState(), "aten.select.int", "cell state", "marker: c_n"),
        "whole_h_n": (
            WholeStack(),
            "aten.reshape.default",
            "joins the final states",
            "marker: whole h_n",
        ),
        "scaled": (Scaled(), "aten.mul.Tensor", "lstm layer 'lstm.l1'", "marker: scaled"),
        "feature_slice": (FeatureSlice(), "aten.slice.Tensor", "feature axis", "marker: feature"),
        "swapped": (SwappedStates(), "aten.cat.default", "forward first", "marker: swapped"),
        "two_outputs": (TwoOutputs(), "forward returns 3 tensors", "one output tensor", None),
    }


def test_refusals_name_the_op_and_the_line(torch):
    example = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    lines = HERE.read_text(encoding="utf-8").splitlines()
    for key, (module, op, reason, marker) in refused_models(torch).items():
        with pytest.raises(UnsupportedLayerError) as info:
            lstmgen.load(module, example_input=example)
        message = str(info.value)
        assert op in message and reason in message and "\n" not in message, (key, message)
        if marker:
            line = next(n for n, text in enumerate(lines, 1) if f"# {marker}" in text)
            assert f"(at {HERE.name}:{line}: " in message, (key, message)


def test_a_module_without_recurrent_layers_or_example_is_refused(torch):
    with pytest.raises(UnsupportedLayerError, match="no nn.LSTM"):
        lstmgen.load(torch.nn.Linear(3, 2), example_input=np.ones((2, 3), np.float32))
    with pytest.raises(lstmgen.LstmgenError, match="example_input"):
        lstmgen.load(torch_bilstm_last_step(torch))
