"""The error boundary (lstmgen/boundary.py, the CLI's main): whatever goes wrong ends as
one line `lstmgen: error: ...` and exit code 2, never a traceback -- an exception a front
end did not anticipate names the file and what is wrong; any other exception says it is
an internal error and points to --debug, which shows the traceback. Python warnings stay
off stderr unless --debug. The limits are raised per run with --limit NAME=VALUE, the
environment (LSTMGEN_LIMIT_*), or lstmgen.limits.configure / raised.
"""

from __future__ import annotations

import os
import warnings

import pytest
from irmodels import branch_models

import lstmgen
from lstmgen import limits
from lstmgen.cli import main
from lstmgen.errors import FrontEndFault, LimitError, LstmgenError
from lstmgen.ir_io import save_ir


@pytest.fixture
def tiny(tmp_path):
    return save_ir(branch_models()["tiny"], tmp_path / "tiny.npz")


def run(capsys, *argv) -> tuple[int, list[str]]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err.strip().splitlines()


def one_line(code: int, lines: list[str], *expected: str) -> str:
    assert code == 2 and len(lines) == 1 and lines[0].startswith("lstmgen: error: "), lines
    for text in expected:
        assert text in lines[0], (text, lines[0])
    return lines[0]


@pytest.mark.parametrize(
    "raised,expected",
    [
        (TypeError("unhashable type: 'dict'"), "malformed or unsupported content (TypeError"),
        (KeyError("layers"), "malformed or unsupported content (KeyError: 'layers')"),
        (RecursionError("maximum recursion depth exceeded"), "nested too deeply"),
        (MemoryError(), "ran out of memory reading it"),
        (ValueError("line one\nline two"), "(ValueError: line one)"),
    ],
)
def test_front_end_fault_names_the_file(tiny, tmp_path, capsys, monkeypatch, raised, expected):
    def broken(path):
        raise raised

    monkeypatch.setattr("lstmgen.ir_io.load_ir", broken)
    out = tmp_path / "out"
    code, lines = run(capsys, "generate", tiny, "--out", out)
    one_line(code, lines, f"{tiny}: ", expected)
    assert not out.exists()
    with pytest.raises(FrontEndFault, match=str(tiny)):  # the API raises lstmgen's own error
        lstmgen.load(tiny)


def test_debug_shows_the_traceback_and_its_cause(tiny, tmp_path, capsys, monkeypatch):
    def broken(path):
        raise KeyError("deep inside a reader")

    monkeypatch.setattr("lstmgen.ir_io.load_ir", broken)
    code, lines = run(capsys, "inspect", tiny, "--debug")
    text = "\n".join(lines)
    assert code == 2 and "Traceback" in text and "KeyError: 'deep inside a reader'" in text
    assert lines[-1].startswith("lstmgen: error: ")


def test_internal_fault_in_a_target_is_one_line(tiny, tmp_path, capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise IndexError("list index out of range")

    monkeypatch.setattr("lstmgen.api.render", broken)
    out = tmp_path / "out"
    code, lines = run(capsys, "generate", tiny, "--out", out)
    line = one_line(code, lines, "internal error", str(tiny), "IndexError", "--debug")
    assert "bug in lstmgen" in line
    assert not out.exists()
    code, lines = run(capsys, "generate", tiny, "--out", out, "--debug")
    assert code == 2 and any("Traceback" in line for line in lines)


def test_internal_fault_in_a_runner_is_one_line(tiny, capsys, monkeypatch):
    from lstmgen.targets.python import runner

    def broken(*args, **kwargs):
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(runner, "run", broken)
    code, lines = run(capsys, "verify", tiny, "--target", "python")
    one_line(code, lines, "internal error", "OSError")


def test_multi_line_errors_are_joined(tiny, capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise LstmgenError("the generated Python failed:\nTraceback ...\nZeroDivisionError")

    monkeypatch.setattr("lstmgen.api.render", broken)
    code, lines = run(capsys, "generate", tiny, "--out", tiny.parent / "out")
    one_line(code, lines, "failed: | Traceback ... | ZeroDivisionError")


def test_warnings_stay_off_stderr_unless_debug(tiny, capsys, monkeypatch):
    def noisy(path):
        warnings.warn("a library complains", UserWarning, stacklevel=1)
        raise ValueError("bad file")

    monkeypatch.setattr("lstmgen.ir_io.load_ir", noisy)
    for debug, shown in ([], 0), (["--debug"], 1):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            code, lines = run(capsys, "inspect", tiny, *debug)
        assert code == 2 and lines[-1].startswith("lstmgen: error: ")
        assert len([w for w in caught if "a library complains" in str(w.message)]) == shown


# ---- limits: raising and lowering them ------------------------------------------------------
def test_limit_option_lowers_and_raises(tiny, tmp_path, capsys):
    out = tmp_path / "out"
    line = one_line(*run(capsys, "generate", tiny, "--out", out, "--limit", "parameters=10"))
    assert "over the limit of 10" in line and "--limit parameters=N" in line
    assert not out.exists()
    line = one_line(*run(capsys, "inspect", tiny, "--limit", "array-elements=2"))
    assert "over the limit of 2 " in line
    code, _ = run(capsys, "generate", tiny, "--out", out, "--limit", "parameters=1e6")
    assert code == 0 and out.is_dir()


@pytest.mark.parametrize(
    "given,expected",
    [
        ("parameters", "expected NAME=VALUE"),
        ("weights=10", "NAME one of parameters, array-elements"),
        ("layers=0", "expected a positive integer"),
        ("layers=2.5", "expected a positive integer"),
        ("layers=many", "expected a positive integer"),
    ],
)
def test_bad_limit_option_is_one_line(tiny, capsys, given, expected):
    one_line(*run(capsys, "inspect", tiny, "--limit", given), expected)


def test_limits_from_the_environment_configure_and_raised(tiny, monkeypatch):
    monkeypatch.setenv("LSTMGEN_LIMIT_PARAMETERS", "10")
    assert limits.current().parameters == 10
    with pytest.raises(LimitError, match="LSTMGEN_LIMIT_PARAMETERS"):
        lstmgen.load(tiny)
    with limits.raised(parameters=1000):
        assert lstmgen.load(tiny).parameter_count() <= 1000
        assert limits.current().layers == limits.DEFAULTS.layers
    try:
        limits.configure(parameters=500, layers=3)
        assert (limits.current().parameters, limits.current().layers) == (500, 3)
        lstmgen.load(tiny)
    finally:
        limits.configure()
    assert limits.current().parameters == 10  # back to the environment
    monkeypatch.setenv("LSTMGEN_LIMIT_LAYERS", "zero")
    with pytest.raises(LstmgenError, match="LSTMGEN_LIMIT_LAYERS"):
        limits.current()


def test_model_validation_is_the_backstop():
    model = branch_models()["tiny"]
    with limits.raised(layers=len(model.layers) - 1 or 1, parameters=10**9):
        if len(model.layers) > 1:
            with pytest.raises(LimitError, match="layers"):
                model.validate()
    with limits.raised(parameters=model.parameter_count() - 1):
        with pytest.raises(LimitError, match="parameters in all"):
            model.validate()
    model.timesteps = 10**9
    with pytest.raises(LimitError, match="timesteps"):
        model.validate()


@pytest.mark.parametrize("kind", ["fifo", "folder", "missing"])
def test_a_model_path_that_is_no_file(tmp_path, capsys, kind):
    """A FIFO would block a reader forever; a folder or a missing path is named as such."""
    path = tmp_path / "model.pt"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    code, lines = run(capsys, "generate", path, "--out", tmp_path / "out")
    expected = {
        "missing": f"{path}: no such file",
        "fifo": f"{path}: not a regular file",
        "folder": f"{path} is a folder, not a model file",
    }[kind]
    assert one_line(code, lines, expected)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "argv,expected",
    [
        ([], "the following arguments are required: command (see lstmgen --help)"),
        (["generate"], "generate: the following arguments are required: model"),
        (["verify", "m.pt", "--sequences", "abc"], "verify: argument --sequences: invalid int"),
        (["generate", "m.pt", "--target", "cobol"], "argument --target: invalid choice: 'cobol'"),
    ],
)
def test_usage_mistakes_are_one_line(capsys, argv, expected):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lstmgen: error: ") and expected in lines[0]
