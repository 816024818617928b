"""Every IR activation in the generated numpy module: each one on extreme values (+-1000,
exp overflow territory) against PyTorch's own functions (float32 and float64, no numpy
warning raised), and in every role (LSTM gate, cell and output, Dense, Activation, the
vector ones as heads over sequences and vectors) against the float64 reference, through
predict and the batched Stream."""

from __future__ import annotations

import numpy as np
import pytest
from irmodels import EXTREMES, mixed_activation_model
from support import import_generated, require_module, steps_reference

from lstmgen.ir import ELEMENTWISE_ACTIVATIONS, LSTM, VECTOR_ACTIVATIONS, Activation, Dense, Model
from lstmgen.reference import forward
from lstmgen.targets import numpy as np_backend
from lstmgen.verify import error_metrics

ELEMENTWISE = list(ELEMENTWISE_ACTIVATIONS)
VECTOR = list(VECTOR_ACTIVATIONS)
PRECISIONS = {"single": 1e-6, "double": 1e-12}  # bound against the oracle


def _torch_activation(name: str, v):
    """PyTorch's function for an IR activation name (torch.nn.functional)."""
    torch = require_module("torch")
    f = torch.nn.functional
    table = {
        "linear": lambda t: t,
        "relu": f.relu,
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "softsign": f.softsign,
        "softplus": f.softplus,
        "elu": f.elu,
        "hard_sigmoid_keras3": f.hardsigmoid,
        # ONNX HardSigmoid's defaults (alpha 0.2, beta 0.5); torch has no such function
        "hard_sigmoid_0.2": lambda t: f.hardtanh(0.2 * t + 0.5, 0.0, 1.0),
        "softmax": lambda t: f.softmax(t, dim=-1),
        "log_softmax": lambda t: f.log_softmax(t, dim=-1),
    }
    return table[name](torch.from_numpy(np.ascontiguousarray(v))).numpy()


def _extreme_model(act: str) -> Model:
    """An LSTM and a Dense with zero weights, the Dense's bias holding EXTREMES, then `act`
    (a vector activation as an Activation layer of its own): the output is act(EXTREMES) at
    every step."""
    zeros = np.zeros((EXTREMES.size, 1), np.float32)
    lstm = LSTM(
        "lstm",
        np.zeros((4, 2), np.float32),
        np.zeros((4, 1), np.float32),
        None,
        return_sequences=True,
    )
    if act in VECTOR:
        layers: list = [
            lstm,
            Dense("extremes", zeros, EXTREMES),
            Activation(act, EXTREMES.size, act),
        ]
    else:
        layers = [lstm, Dense("extremes", zeros, EXTREMES, activation=act)]
    return Model(2, layers, name=f"extreme_{act}", source="zero weights").validate()


@pytest.mark.parametrize("precision", sorted(PRECISIONS))
@pytest.mark.parametrize("act", ELEMENTWISE + VECTOR)
def test_activation_on_extremes_matches_torch(act, precision, tmp_path):
    module = import_generated(
        np_backend.render(_extreme_model(act), "ext", precision=precision), "ext", tmp_path
    )
    x = np.ones((2, 3, 2), np.float32)
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # no warning
        got = module.predict(x)
    dtype = np.float32 if precision == "single" else np.float64
    assert got.dtype == dtype and np.all(np.isfinite(got))
    expected = _torch_activation(act, np.broadcast_to(EXTREMES.astype(dtype), got.shape))
    _, rel = error_metrics(got, expected)
    assert rel.max() <= PRECISIONS[precision], (act, float(rel.max()))


@pytest.mark.parametrize("k", range(len(ELEMENTWISE)))
def test_every_role_matches_reference_in_predict_and_stream(k, tmp_path):
    model = mixed_activation_model(k)
    x = np.random.default_rng(9).standard_normal((3, 7, 3)).astype(np.float32) * 3
    reference = forward(model, x)
    for precision, bound in (("single", 1e-5), ("double", 1e-12)):
        files = np_backend.render(model, f"acts_{precision}", precision=precision)
        module = import_generated(files, f"acts_{precision}", tmp_path)
        assert error_metrics(module.predict(x), reference)[1].max() <= bound, precision
        if model.streamable:
            stream = module.Stream(batch=x.shape[0])
            steps = np.stack([stream.step(x[:, t]) for t in range(x.shape[1])], axis=1)
            rel = error_metrics(steps, steps_reference(model, x))[1]
            assert rel.max() <= bound, precision


def test_every_activation_is_rendered():
    text = "".join(
        np_backend.render(m, "acts")["acts.py"]
        for m in [mixed_activation_model(k) for k in range(len(ELEMENTWISE))]
    )
    for name in ("_sigmoid", "_softsign", "_elu", "_hard_sigmoid_keras3", "_hard_sigmoid_02"):
        assert f"def {name}(v)" in text, name
    for name in ("_softmax", "_log_softmax"):
        assert f"def {name}(v)" in text, name
    assert "np.logaddexp(" in text and "np.maximum(" in text
