"""The MATLAB target's surface: the precision option, names, the files a model gets, the
runner's errors, and `lstmgen verify` end to end on the shipped example (against Keras)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import ROOT, require_tool

import lstmgen
from lstmgen.errors import LstmgenError, MissingDependencyError
from lstmgen.ir import ACTIVATIONS, LAYER_TYPES
from lstmgen.targets import matlab as backend
from lstmgen.targets.matlab import runner

NAME = "net"


def test_every_ir_kind_and_activation_has_its_template():
    """A kind is implemented by its template, templates/matlab/layers/<kind>.j2; an
    activation by its macro in templates/matlab/activations.j2."""
    assert backend.LAYERS == set(LAYER_TYPES)
    assert backend.ACTIVATIONS == set(ACTIVATIONS)
    assert backend.FEATURES == {"peephole", "clip", "input_forget", "initial_state", "projection"}


def test_precision_option_and_names(grid_cases, tmp_path):
    model = grid_cases[0].ir
    assert backend.OPTIONS == ("precision",)
    with pytest.raises(LstmgenError, match="precision"):
        backend.render(model, NAME, precision="half")
    with pytest.raises(LstmgenError):
        backend.render(model, NAME, bits=16)
    with pytest.raises(LstmgenError):
        backend.render(model, "end")
    assert backend.render(model, NAME) == backend.render(model, NAME, precision="single")
    from lstmgen.cli import main

    out = tmp_path / "out"
    example = str(ROOT / "examples" / "sine_lstm.keras")
    args = ["generate", example, "--target", "matlab", "--name", "sine", "--out", str(out)]
    assert main([*args, "--precision", "double"]) == 0
    assert "double(single([" in (out / "sine_weights.m").read_text()
    assert "zeros(16, 1, 'double')" in (out / "sine_predict.m").read_text()
    assert (out / "sine_step.m").exists()


def test_go_backwards_model_has_no_step(grid_cases):
    backwards = [c for c in grid_cases if not c.ir.streamable]
    assert backwards
    for case in backwards:
        assert set(backend.render(case.ir, NAME)) == {f"{NAME}_predict.m", f"{NAME}_weights.m"}
        with pytest.raises(LstmgenError, match="go_backwards"):
            runner.run_steps(case.ir, backend.render(case.ir, NAME), NAME, case.x, Path("."))


def test_missing_octave_is_a_clear_error(grid_cases, tmp_path, monkeypatch):
    case = grid_cases[0]
    monkeypatch.setattr(runner.shutil, "which", lambda name: None)
    with pytest.raises(MissingDependencyError, match="apt-get install octave"):
        runner.run(case.ir, backend.render(case.ir, NAME), NAME, case.x, tmp_path)


@pytest.mark.parametrize("precision", ["single", "double"])
def test_verify_example_end_to_end(example_model_path, precision):
    require_tool("octave-cli")
    report = lstmgen.verify(example_model_path, "matlab", options={"precision": precision})
    assert report.passed, report.summary()
    assert report.reference_max_abs <= (1e-6 if precision == "single" else 1e-12)
