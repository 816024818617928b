"""verify's inputs: real floating-point or integer arrays only (complex, structured, text,
object and boolean arrays are refused by name, never converted), and non-finite values
compared the way the framework produces them: NaN where the framework gives NaN, and the
same infinity where it gives one, count as equal; anything else against NaN or an
infinity is an infinite error. The oracle is PyTorch's own forward."""

from __future__ import annotations

import os

import numpy as np
import pytest
from support import require_module

from lstmgen.cli import main
from lstmgen.errors import LstmgenError
from lstmgen.verify import error_metrics, verify

TARGETS = ["c", "python"]


def test_error_rule_for_non_finite_values():
    ref = np.array([[np.nan, np.inf, -np.inf, 1.0, 2.0, np.inf, 0.5]])
    got = np.array([[np.nan, np.inf, -np.inf, np.nan, np.inf, -np.inf, 0.25]])
    max_abs, max_rel = error_metrics(got[..., None], ref[..., None])
    assert np.isinf(max_abs[0]) and np.isinf(max_rel[0])
    for k, expected in enumerate([0.0, 0.0, 0.0, np.inf, np.inf, np.inf, 0.25]):
        abs_k, rel_k = error_metrics(got[:, k : k + 1], ref[:, k : k + 1])
        assert abs_k[0] == expected and rel_k[0] == expected, (k, abs_k, rel_k)


@pytest.fixture(scope="module")
def torch_file(tmp_path_factory):
    torch = require_module("torch")
    torch.manual_seed(3)
    lstm, head = torch.nn.LSTM(3, 5, batch_first=True), torch.nn.Linear(5, 2)
    path = tmp_path_factory.mktemp("verify_inputs") / "lstm.pt"
    torch.save({**lstm.state_dict(), **{f"fc.{k}": v for k, v in head.state_dict().items()}}, path)
    return torch, lstm, head, path


def hostile_inputs() -> np.ndarray:
    x = np.random.default_rng(4).standard_normal((5, 6, 3)).astype(np.float32)
    x[0, 2, 1] = np.nan
    x[1, 1, 0] = np.inf
    x[2, 4, 2] = -np.inf
    x[3, 0, :] = 1e30
    return x


def test_nan_and_inf_inputs_pass_where_the_framework_agrees(torch_file, tmp_path):
    torch, lstm, head, path = torch_file
    x = hostile_inputs()
    with torch.no_grad():
        expected = head(lstm(torch.from_numpy(x))[0][:, -1]).numpy()
    assert np.isnan(expected[0]).all() and np.isfinite(expected[1:]).all()  # the oracle's view
    for target in TARGETS:
        report = verify(path, target, inputs=x)
        assert report.passed, (target, report.summary())
    np.save(tmp_path / "x.npy", x)
    assert (
        main(["verify", str(path), "--target", "python", "--inputs", str(tmp_path / "x.npy")]) == 0
    )


def test_integer_and_float64_inputs_are_taken(torch_file, tmp_path):
    _, _, _, path = torch_file
    for dtype in (np.int16, np.float64):
        x = np.random.default_rng(5).integers(-2, 3, (2, 4, 3)).astype(dtype)
        assert verify(path, "c", inputs=x).passed


@pytest.mark.parametrize(
    "array,named",
    [
        (np.zeros((2, 4, 3), np.complex64), "complex numbers"),
        (np.zeros((2, 4, 3), dtype=[("a", "<f4")]), "structured dtype"),
        (np.full((2, 4, 3), "1.5"), "text"),
        (np.zeros((2, 4, 3), object), "Python objects"),
        (np.zeros((2, 4, 3), bool), "booleans"),
    ],
)
def test_other_dtypes_are_refused_by_name(torch_file, tmp_path, capsys, array, named):
    _, _, _, path = torch_file
    with pytest.raises(LstmgenError, match=named):
        verify(path, "c", inputs=array)
    np.save(tmp_path / "x.npy", array, allow_pickle=True)
    assert main(["verify", str(path), "--inputs", str(tmp_path / "x.npy")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lstmgen: error: --inputs ") and named in err[0]


def test_inputs_that_never_end_are_refused(torch_file, tmp_path, capsys):
    """A FIFO (or a device) named as --inputs would block the reader forever."""
    _, _, _, path = torch_file
    fifo = tmp_path / "x.npy"
    os.mkfifo(fifo)
    assert main(["verify", str(path), "--target", "python", "--inputs", str(fifo)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"lstmgen: error: --inputs {fifo}: not a regular file"]


@pytest.mark.parametrize("atol", ["nan", "-1", "inf"])
def test_a_tolerance_that_fails_every_run_is_refused(torch_file, capsys, atol):
    _, _, _, path = torch_file
    assert main(["verify", str(path), "--target", "python", "--atol", atol]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "atol must be a finite number >= 0" in err[0]
    with pytest.raises(LstmgenError, match="atol must be a finite number"):
        verify(path, "python", atol=float(atol))


def test_a_missing_framework_is_reported_before_the_generated_code_is_built(monkeypatch):
    """verify asks the oracle first: a framework that is not installed costs no compile."""
    from irmodels import branch_models

    from lstmgen.errors import MissingDependencyError
    from lstmgen.extractors import Loaded
    from lstmgen.targets.c import runner

    def no_framework(inputs):
        raise MissingDependencyError("verifying this file needs Keras: pip install keras")

    def build_and_run(*args, **kwargs):
        raise AssertionError("the generated code was built before the oracle ran")

    monkeypatch.setattr(runner, "run", build_and_run)
    loaded = Loaded(branch_models()["tiny"].validate(), no_framework, "Keras model.predict")
    with pytest.raises(MissingDependencyError, match="needs Keras"):
        verify(None, "c", loaded=loaded, sequences=2, timesteps=3)
