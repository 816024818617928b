"""What a person sees while lstmgen works and after: progress lines on stderr (one per phase
over about a second, none with --quiet), no framework log lines unless --verbose, and the
verify report page, rendered by headless Chromium: it shows, no chart is blank, no script
error."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest
from irmodels import branch_models
from support import ROOT, require_module, require_tool

from lstmgen import console
from lstmgen.errors import LstmgenError
from lstmgen.ir import LSTM, Dense, Model
from lstmgen.ir_io import save_ir

# ------------------------------------------------------------------------ progress --


def test_a_phase_gets_a_line_only_when_it_lasts():
    stream = io.StringIO()
    with console.reporting(stream, after=0.2):
        with console.phase("fast"):
            pass
        with console.phase("slow"):
            time.sleep(0.5)
        with pytest.raises(RuntimeError), console.phase("broken"):
            time.sleep(0.5)
            raise RuntimeError
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2, lines
    assert re.fullmatch(
        r"lstmgen: slow \.\.\. 0\.[5-9] s|lstmgen: slow \.\.\. [1-9]\.\d s", lines[0]
    )
    assert lines[1] == "lstmgen: broken ... failed"


def test_phases_are_silent_without_reporting(capfd):
    with console.phase("anything"):
        time.sleep(0.01)
    with console.reporting(enabled=False), console.phase("anything"):
        pass
    assert capfd.readouterr() == ("", "")


def test_native_stderr_is_silenced_and_replayed_only_on_a_crash(capfd):
    with console.native_output_silenced():
        os.write(2, b"absl noise from C++\n")
        print("python warning text", file=sys.stderr)
    assert capfd.readouterr().err == ""
    with pytest.raises(LstmgenError), console.native_output_silenced():
        os.write(2, b"noise before a user error\n")
        raise LstmgenError("bad model")
    assert capfd.readouterr().err == ""  # the user error explains itself
    with pytest.raises(ZeroDivisionError), console.native_output_silenced():
        os.write(2, b"what explains the crash\n")
        1 / 0  # noqa: B018
    assert "what explains the crash" in capfd.readouterr().err
    with console.native_output_silenced(enabled=False):
        os.write(2, b"verbose\n")
    assert capfd.readouterr().err == "verbose\n"


def _lstmgen(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "LSTMGEN_"))}
    return subprocess.run(
        [sys.executable, "-m", "lstmgen", *args],
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        cwd=ROOT,
        timeout=600,
    )


def test_quiet_removes_the_progress_lines(tmp_path):
    npz = save_ir(branch_models()["tiny"], tmp_path / "tiny.npz")
    shown = _lstmgen("verify", str(npz), "--target", "python", env={"LSTMGEN_PROGRESS_AFTER": "0"})
    assert shown.returncode == 0, shown.stderr
    lines = shown.stderr.splitlines()
    assert lines and all(line.startswith("lstmgen: ") for line in lines), lines
    assert any("loading tiny.npz" in line for line in lines)
    assert any("building and running the generated python code on 16 sequences" in l for l in lines)
    quiet = _lstmgen(
        "verify", str(npz), "--target", "python", "--quiet", env={"LSTMGEN_PROGRESS_AFTER": "0"}
    )
    assert quiet.returncode == 0 and quiet.stderr == "" and "PASS" in quiet.stdout


@pytest.fixture(scope="module")
def keras_verify_with_report(tmp_path_factory, keras):
    """`lstmgen verify` of the example, in a fresh process as a user runs it (TensorFlow's
    logging variables unset), with --report."""
    report = tmp_path_factory.mktemp("report") / "report.html"
    proc = _lstmgen("verify", "examples/sine_lstm.keras", "--target", "c", "--report", str(report))
    return proc, report


def test_keras_verify_prints_progress_and_no_framework_log(keras_verify_with_report):
    proc, report = keras_verify_with_report
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert all(line.startswith("lstmgen: ") for line in lines), lines
    # reading the .keras file no longer needs TensorFlow (well under the 1 s after which a
    # step is announced); starting Keras for the oracle does
    assert any(line.startswith("lstmgen: running Keras ") for line in lines), lines
    for noise in ("absl", "oneDNN", "cuda", "round-off", "I0000", "W0000", "E0000"):
        assert noise not in proc.stderr
    assert f"report: {report}" in proc.stdout and "PASS" in proc.stdout


# -------------------------------------------------------------------------- report --


def test_report_is_one_self_contained_page(keras_verify_with_report):
    _, report = keras_verify_with_report
    html = report.read_text(encoding="utf-8")
    assert not re.search(r"(src|href)\s*=|https?://|@import|url\(", html)
    assert html.count("<svg") == 2  # one output: its scatter and its error histogram
    assert html.count("<circle") == 16  # one dot per test sequence
    assert "tolerance 1e-05" in html and 'class="tolerance"' in html
    for text in ("PASS", "Keras 3", "lstm", "next_value", "columns i,f,c,o", "i, f, g, o"):
        assert text in html, text
    assert "flash" in html and "RAM" in html  # the C target's memory report
    assert "stack" in html


def _sequence_report(tmp_path):
    """A report of a model with sequence outputs (traces) and one that fails."""
    import lstmgen

    rng = np.random.default_rng(3)
    model = Model(
        2,
        [
            LSTM(
                "enc<&>",
                rng.uniform(-1, 1, (12, 2)).astype(np.float32),
                rng.uniform(-1, 1, (12, 3)).astype(np.float32),
                None,
                return_sequences=True,
            ),
            Dense("head", rng.uniform(-1, 1, (2, 3)).astype(np.float32), None),
        ],
        name="seq<script>",
    ).validate()
    result = lstmgen.verify(model, target="numpy", sequences=5, timesteps=9, atol=1e-12)
    from lstmgen.report import write_report

    return result, write_report(result, tmp_path / "seq.html")


def test_report_of_sequence_outputs_has_traces_and_escapes_names(tmp_path):
    result, path = _sequence_report(tmp_path)
    html = path.read_text(encoding="utf-8")
    assert html.count("<svg") == 4  # two outputs, each traces + errors
    # three sequences drawn, framework and generated, per output
    assert html.count('class="framework') == 6 and html.count('class="generated') == 6
    assert "<script>" not in html.replace("<script>\n// Any script error", "")
    assert "seq&lt;script&gt;" in html and "enc&lt;&amp;&gt;" in html
    assert ("FAIL" in html) == (not result.passed)


def _chromium(*args: str, tmp_path) -> subprocess.CompletedProcess:
    chromium = require_tool("chromium")
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
    ]
    return subprocess.run([chromium, *flags, *args], capture_output=True, text=True, timeout=120)


def _check_page_renders(page, tmp_path, shot):
    dom = _chromium("--dump-dom", page.as_uri(), tmp_path=tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    # the page's error hook writes any script error into #page-errors and shows it
    assert re.search(r'<div id="page-errors" hidden(="")?></div>', dom.stdout), dom.stdout[:3000]
    assert ":CONSOLE" not in dom.stderr, [l for l in dom.stderr.splitlines() if ":CONSOLE" in l]
    run = _chromium(
        f"--screenshot={shot}", "--window-size=1100,1800", page.as_uri(), tmp_path=tmp_path
    )
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    image = require_module("PIL.Image")
    pixels = np.asarray(image.open(shot).convert("L"), np.float64)
    assert pixels.std() > 20  # text, charts and tables: far from a blank page
    top = pixels[: pixels.shape[0] // 2]
    assert (top < 128).mean() > 0.01  # dark marks (text, axes, dots) in the upper half


def test_report_renders_in_headless_chromium(keras_verify_with_report, tmp_path):
    _, report = keras_verify_with_report
    _check_page_renders(report, tmp_path, tmp_path / "report.png")


def test_sequence_report_renders_in_headless_chromium(tmp_path):
    _, page = _sequence_report(tmp_path)
    _check_page_renders(page, tmp_path, tmp_path / "seq.png")


def test_report_path_errors_before_any_work(tmp_path, capsys):
    from lstmgen.cli import main

    npz = save_ir(branch_models()["tiny"], tmp_path / "tiny.npz")
    assert main(["verify", str(npz), "--report", str(tmp_path / "no" / "r.html")]) == 2
    assert main(["verify", str(npz), "--report", str(tmp_path)]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert errors == [
        f"lstmgen: error: --report {tmp_path / 'no' / 'r.html'}: folder {tmp_path / 'no'} "
        "does not exist",
        f"lstmgen: error: --report {tmp_path} is a folder; give a file name such as report.html",
    ]
