"""Benchmark: the cost of the weight literals of generated MATLAB when it is interpreted
(GNU Octave), on the 9 -> LSTM(256) -> Dense(1) model (272,641 weights, T = 50), for three
layouts of the same code, timed in the same run:

* `NAME_weights` -- what lstmgen generates: one function of constant literals that
  NAME_predict and NAME_step call (no cache, so MATLAB Coder can keep the weights constant);
* `inline` -- the layout before NAME_weights: the literals inside NAME_predict and again
  inside NAME_step (two 4 MB files to parse);
* `persistent cache` -- NAME_weights keeping its struct in a persistent variable (what
  lstmgen deliberately does not generate: in MATLAB Coder / Simulink it turns the weights
  into writable static memory, see docs/simulink.md).

Every layout's output is first checked against lstmgen's float64 reference (max relative
error 1e-5); then Octave's CPU time (`cputime`, less disturbed by other processes than the
wall clock) of the first call (parsing included), of later NAME_predict calls and of later
NAME_step calls is printed, with each time divided by NAME_weights'.
Run: python bench/bench_matlab.py
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

import numpy as np

from lstmgen.ir import LSTM, Dense, Model
from lstmgen.reference import forward
from lstmgen.targets import matlab
from lstmgen.targets.matlab import runner
from lstmgen.verify import error_metrics

NAME = "big"
T, PREDICT_CALLS, STEP_CALLS = 50, 3, 10


def large_model() -> Model:
    d, h = 9, 256
    rng = np.random.default_rng(11)

    def draw(*shape: int, scale: float) -> np.ndarray:
        return rng.uniform(-scale, scale, shape).astype(np.float32)

    lstm = LSTM(
        "lstm",
        draw(4 * h, d, scale=0.5),
        draw(4 * h, h, scale=1 / np.sqrt(h)),
        draw(4 * h, scale=0.5),
    )
    dense = Dense("head", draw(1, h, scale=1 / np.sqrt(h)), draw(1, scale=0.5))
    return Model(d, [lstm, dense], name="large", source="random weights").validate()


def layouts(files: dict[str, str]) -> dict[str, dict[str, str]]:
    """The generated files, and the same code with the two other layouts of the weights."""
    weights = files[f"{NAME}_weights.m"]
    body = weights.split("%#codegen\n", 1)[1].rsplit("end\n", 1)[0]
    call = f"w = {NAME}_weights();"
    inline = {
        name: re.sub(r"^w = \w+_weights\(\);.*$", lambda _: body.strip("\n"), text, flags=re.M)
        for name, text in files.items()
        if name != f"{NAME}_weights.m"
    }
    assert all(call not in text for text in inline.values())
    head = weights.split("%#codegen\n", 1)[0]
    cached = head + "%#codegen\npersistent cached\nif isempty(cached)\n"
    cached += body.replace("\nw.", "\ncached.") + "end\nw = cached;\nend\n"
    return {
        "NAME_weights": files,
        "inline": inline,
        "persistent cache": {**files, f"{NAME}_weights.m": cached},
    }


def octave_script(folder: Path, d: int) -> str:
    """Octave code: read x, time the calls, write (predict's y, step's last y, the times)."""
    predict, step = f"{NAME}_predict", f"{NAME}_step"
    return "\n".join(
        [
            f"cd('{folder}');",
            "fid = fopen('x.bin'); x = fread(fid, Inf, 'float32=>single'); fclose(fid);",
            f"x = reshape(x, {d}, {T});",
            f"c0 = cputime; y = {predict}(x); first = cputime - c0;",
            f"c0 = cputime; for k = 1:{PREDICT_CALLS}, y = {predict}(x); end;",
            f"per_predict = (cputime - c0) / {PREDICT_CALLS};",
            f"c0 = cputime; s = {step}(x(:, 1), true); first_step = cputime - c0;",
            f"c0 = cputime; for k = 2:{STEP_CALLS + 1}, s = {step}(x(:, k), false); end;",
            f"per_step = (cputime - c0) / {STEP_CALLS};",
            f"for k = {STEP_CALLS + 2}:{T}, s = {step}(x(:, k), false); end",
            "fid = fopen('out.txt', 'w');",
            "fprintf(fid, '%.17g ', y, s, first, per_predict, first_step, per_step); fclose(fid);",
        ]
    )


def main() -> None:
    model = large_model()
    x = np.random.default_rng(3).standard_normal((1, T, model.input_size)).astype(np.float32)
    ref = forward(model, x)
    rows = []
    with tempfile.TemporaryDirectory(prefix="lstmgen-bench-matlab-") as tmp:
        for label, files in layouts(matlab.render(model, NAME)).items():
            folder = Path(tmp) / label.replace(" ", "_")
            folder.mkdir()
            for filename, text in files.items():
                (folder / filename).write_text(text)
            np.ascontiguousarray(x[0], np.float32).tofile(folder / "x.bin")  # D fastest
            script = octave_script(folder, model.input_size)
            runner.octave_eval(script)
            y, ys, *times = (float(v) for v in (folder / "out.txt").read_text().split())
            for got in (y, ys):
                _, rel = error_metrics(np.array([[got]]), ref)
                if rel.max() > 1e-5:
                    sys.exit(f"{label}: output differs from the reference ({rel.max():.2e})")
            rows.append((label, times))
    base = rows[0][1]
    weights = model.parameter_count()
    print(f"Octave CPU seconds, 9 -> LSTM(256) -> Dense(1), {weights} weights, T = {T}")
    print("(time / NAME_weights' in parentheses)\n")
    header = ("layout", "1st predict (parse)", "predict", "1st step after it", "step")
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for label, times in rows:
        cells = [
            f"{t:.3g} s ({t / b:.2g}x)" if b > 0 else f"{t:.3g} s" for t, b in zip(times, base)
        ]
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
