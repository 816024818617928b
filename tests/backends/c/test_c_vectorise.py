"""gcc vectorises the generated gate loops (the activation pass of every LSTM and GRU step,
and of NAME_step_n's).

gcc's tree-PRE used to keep them scalar: it evaluates tanh_rational's polynomial at the clamp
bounds on branches of their own, and the loop is then refused ("control flow in loop"),
leaving one division per value. NAME.c therefore switches the pass off for gcc
(`#pragma GCC optimize("no-tree-pre")`, bench/README.md has the figures). gcc's own
vectoriser report (-fopt-info-vec-optimized) is the oracle here; speed itself is measured by
bench/bench_streaming.py, never by a test.
"""

from __future__ import annotations

import re
import subprocess

import pytest
from support import IRMaker, require_tool

from lstmgen.ir import Dense, Model
from lstmgen.targets import c as c_backend


def gate_loop_lines(source: str) -> dict[str, int]:
    """Line of each kernel's activation loop: the first `j < n_units` loop after its z sums
    (an LSTM's cell loop), and an LSTM's loop over its i and f gates before it."""
    lines = source.splitlines()
    found = {}
    for k, line in enumerate(lines):
        kernel = re.match(r"static void ((?:lstm|gru)_step_(?!blocks_)\w+)\(", line)
        if kernel:
            for j in range(k, len(lines)):
                if lines[j].strip().startswith("for (j = 0; j < 2 * n_units; ++j) z"):
                    found[kernel.group(1) + " gates"] = j + 1
                if lines[j].strip() == "for (j = 0; j < n_units; ++j) {":
                    found[kernel.group(1)] = j + 1
                    break
    return found


@pytest.mark.parametrize("opts", [["-O3"], ["-O3", "-march=native"]])
def test_gcc_vectorises_the_gate_loops(opts, tmp_path):
    gcc = require_tool("gcc")
    make = IRMaker(5)
    # 72 units: 4H = 288 columns, so NAME_step_n's shared pass (and its gate loops) can run;
    # not a multiple of 16, so not the 16-unit blocks of the register-tile path
    model = Model(
        6,
        [
            make.lstm("lstm", 6, 72, return_sequences=True),
            make.gru("gru", 72, 12),
            Dense("out", make.u(3, 12), make.u(3)),
        ],
        name="net",
    )
    source = c_backend.render(model, "net")["net.c"]
    assert '#pragma GCC optimize("no-tree-pre")' in source
    for name, text in c_backend.render(model, "net").items():
        (tmp_path / name).write_text(text)
    loops = gate_loop_lines(source)
    assert set(loops) == {
        "lstm_step_sigmoid_tanh_tanh",
        "lstm_step_sigmoid_tanh_tanh gates",
        "gru_step_sigmoid_tanh_after",
        "lstm_step_n_sigmoid_tanh_tanh",  # NAME_step_n's: the same loops over each stream
        "lstm_step_n_sigmoid_tanh_tanh gates",
        "gru_step_n_sigmoid_tanh_after",
    }, loops
    report = subprocess.run(
        [gcc, "-std=c99", *opts, "-fopt-info-vec-optimized", "-c", "net.c", "-o", "net.o"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    vectorised = {
        int(m) for m in re.findall(r"^net\.c:(\d+):\d+: optimized: loop vectorized", report, re.M)
    }
    for kernel, line in loops.items():
        assert line in vectorised, f"{kernel}: gate loop at line {line} not vectorised\n{report}"
