"""Generated MATLAB (NAME_predict.m, NAME_step.m) run in GNU Octave against Keras.

Octave takes about a second to start and rebuilds a function's weight literals on every
call (about 2 us per weight), so the whole grid runs in one batch of two Octave
processes, and stepping (one call per timestep) is limited to a budget of weights x calls
per model: a shorter prefix of fewer sequences for the big models, compared with
NAME_predict on that same prefix.

Error bounds (max relative error, |got - ref| / max(|ref|, 1)):
* double precision: <= 1e-5 against Keras (whose own float32 error dominates; measured
  1.5e-7) and <= 1e-10 against the float64 numpy reference (measured 2.5e-16; 6.7e-16 on a
  60-model grid, LSTMGEN_GRID=60);
* single precision: <= 1e-5 against Keras and the reference, the same bound as the C
  backend's float32 code (measured 1.8e-7 against Keras on the default grid, 6.3e-7 on the
  60-model grid).

GRU, SimpleRNN, Bidirectional and LSTM projection are checked here on hand-built IR models
against the reference with the same bounds (measured 1.4e-7 single, 4.4e-16 double); the
Keras grid of those kinds is tests/test_recurrent_layers.py.

Masking, Normalize, LayerNorm, Flatten, Conv1D and pooling likewise (measured 2.4e-7
single, 3.9e-16 double), at several T per model including the shortest T that gives one
output timestep; a shorter input is refused by an assert (tests/test_shaping_layers.py
checks the same kinds against Keras).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
from support import ROOT, require_tool

import lstmgen
from lstmgen.errors import LstmgenError, MissingDependencyError
from lstmgen.ir import (
    ELEMENTWISE_ACTIVATIONS,
    GRU,
    LSTM,
    Activation,
    Bidirectional,
    Conv1D,
    Dense,
    Flatten,
    LayerNorm,
    Masking,
    Model,
    Normalize,
    Pool1D,
    SimpleRNN,
)
from lstmgen.naming import unique_identifiers
from lstmgen.reference import forward
from lstmgen.targets import matlab as backend
from lstmgen.targets.common import GENERATED_MARK
from lstmgen.targets.matlab import runner
from lstmgen.verify import error_metrics

NAME = "net"  # every grid model gets the same name: the batch must not mix them up
DOUBLE_TOLERANCE = 1e-5  # against Keras
DOUBLE_REFERENCE_TOLERANCE = 1e-10  # against the float64 numpy reference
SINGLE_TOLERANCE = 1e-5  # against Keras and the reference
STEP_BUDGET = 1.5e6  # weights x NAME_step calls per model and precision
PRECISIONS = ("single", "double")
LARGE = dict(input_size=9, units=256, timesteps=50, sequences=2)

# Functions the generated code may call: MATLAB built-ins that MATLAB Coder supports.
ALLOWED_CALLS = {
    "single",
    "double",
    "zeros",
    "assert",
    "size",
    "exp",
    "abs",
    "tanh",
    "max",
    "min",
    "log1p",
    "expm1",
    "bsxfun",
    "sum",
    "isempty",
}
# ... and those that Masking, LayerNorm, Flatten, Conv1D and pooling add
SHAPING_CALLS = {"false", "all", "sqrt", "reshape", "floor", "ceil"}
FORBIDDEN = {
    "cell array braces": r"[{}]",
    "growth with end+1": r"\bend\s*\+",
    "coder.* call": r"\bcoder\s*\.",
    "eval": r"\beval\w*\b|\bfeval\b",
    "global": r"\bglobal\b",
    "cell/struct": r"\b(cell|struct|cellfun|arrayfun|containers)\b",
    "file or workspace access": r"\b(load|save|exist|assignin|clear|input|fprintf|disp)\b",
    "while/try": r"\b(while|try|catch)\b",
    "concatenation": r"(?<!single\()\[(?!\])",
}


def _step_prefix(model: Model, x: np.ndarray) -> np.ndarray:
    """The part of x that NAME_step walks through: all of it for small models."""
    n, t_len, _ = x.shape
    calls = max(1, int(STEP_BUDGET / model.parameter_count()))
    n_s = min(n, max(2, calls // t_len))
    t_s = min(t_len, max(1, calls // n_s))
    return x[:n_s, :t_s]


@pytest.fixture(scope="module")
def octave():
    return require_tool("octave-cli")


@pytest.fixture(scope="module")
def rendered(grid_cases):
    return {
        (case.spec.id, p): backend.render(case.ir, NAME, precision=p)
        for case in grid_cases
        for p in PRECISIONS
    }


@pytest.fixture(scope="module")
def octave_grid(octave, grid_cases, rendered, tmp_path_factory):
    """Every grid model, both precisions: predict on all inputs, step on a prefix."""
    root = tmp_path_factory.mktemp("matlab_grid")
    jobs, keys = [], []
    for case in grid_cases:
        for p in PRECISIONS:
            files = rendered[case.spec.id, p]
            jobs.append(runner.Job(case.ir, files, NAME, case.x, root / f"{case.spec.id}_{p}"))
            keys.append((case.spec.id, p, "predict"))
            if case.ir.streamable:
                jobs.append(
                    runner.Job(
                        case.ir,
                        files,
                        NAME,
                        _step_prefix(case.ir, case.x),
                        root / f"{case.spec.id}_{p}_steps",
                        steps=True,
                    )
                )
                keys.append((case.spec.id, p, "steps"))
    start = time.perf_counter()
    results = runner.run_batch(jobs, processes=2)
    print(f"\nOctave ran {len(jobs)} MATLAB jobs in {time.perf_counter() - start:.1f} s")
    return {key: (job, result) for key, job, result in zip(keys, jobs, results)}


def _result(octave_grid, case, precision, kind="predict"):
    job, result = octave_grid[case.spec.id, precision, kind]
    result.check(job)
    return job, result


def test_double_predict_matches_keras_and_reference(grid_cases, octave_grid):
    worst_keras, worst_ref = [], []
    for case in grid_cases:
        _, result = _result(octave_grid, case, "double")
        assert result.output_class == "double" and result.predict.dtype == np.float64
        _, rel = error_metrics(result.predict, case.expected)
        worst_keras.append((float(rel.max()), case.spec.id))
        _, rel = error_metrics(result.predict, forward(case.ir, case.x))
        worst_ref.append((float(rel.max()), case.spec.id))
    print(f"\ndouble: max rel error vs Keras {max(worst_keras)}, vs numpy {max(worst_ref)}")
    assert not [w for w in worst_keras if not w[0] <= DOUBLE_TOLERANCE], worst_keras
    assert not [w for w in worst_ref if not w[0] <= DOUBLE_REFERENCE_TOLERANCE], worst_ref


def test_single_predict_matches_keras_and_reference(grid_cases, octave_grid):
    worst_keras, worst_ref = [], []
    for case in grid_cases:
        _, result = _result(octave_grid, case, "single")
        assert result.output_class == "single" and result.predict.dtype == np.float32
        _, rel = error_metrics(result.predict, case.expected)
        worst_keras.append((float(rel.max()), case.spec.id))
        _, rel = error_metrics(result.predict, forward(case.ir, case.x))
        worst_ref.append((float(rel.max()), case.spec.id))
    print(f"\nsingle: max rel error vs Keras {max(worst_keras)}, vs numpy {max(worst_ref)}")
    assert not [w for w in worst_keras if not w[0] <= SINGLE_TOLERANCE], worst_keras
    assert not [w for w in worst_ref if not w[0] <= SINGLE_TOLERANCE], worst_ref


@pytest.mark.parametrize("precision", PRECISIONS)
def test_step_gives_predict_outputs(grid_cases, octave_grid, precision):
    """NAME_step with reset at each sequence start = NAME_predict (every step, or the last)."""
    tolerance = SINGLE_TOLERANCE if precision == "single" else DOUBLE_REFERENCE_TOLERANCE
    checked = 0
    for case in grid_cases:
        if not case.ir.streamable:
            assert (case.spec.id, precision, "steps") not in octave_grid
            continue
        job, result = _result(octave_grid, case, precision, "steps")
        assert result.output_class == precision
        x = job.x
        assert x.shape[0] >= 2  # the reset between sequences is exercised
        if case.ir.returns_sequences:
            _, rel = error_metrics(result.steps, result.predict)
        else:
            _, rel = error_metrics(result.steps[:, -1], result.predict)
        assert rel.max() <= tolerance, case.spec.id
        # the output after t steps is the model's output on the first t steps
        for t in sorted({1, (x.shape[1] + 1) // 2, x.shape[1]}):
            ref = forward(case.ir, x[:, :t])
            got = result.steps[:, :t] if case.ir.returns_sequences else result.steps[:, t - 1]
            _, rel = error_metrics(got, ref)
            assert rel.max() <= max(tolerance, 1e-10), (case.spec.id, t)
        if x.shape[1] == case.x.shape[1] and x.shape[0] == case.x.shape[0]:
            _, rel = error_metrics(
                result.steps if case.ir.returns_sequences else result.steps[:, -1], case.expected
            )
            assert rel.max() <= SINGLE_TOLERANCE, case.spec.id
        checked += 1
    assert checked >= 10


def test_files_per_model(grid_cases, rendered):
    for case in grid_cases:
        files = rendered[case.spec.id, "single"]
        expected = {f"{NAME}_predict.m", f"{NAME}_weights.m"}
        expected |= {f"{NAME}_step.m"} if case.ir.streamable else set()
        assert set(files) == expected, case.spec.id


def _code_lines(text: str) -> list[str]:
    """The code of a .m file: comments and string literals removed (no transposes used)."""
    out = []
    for line in text.splitlines():
        line = re.sub(r"'[^'\n]*'", "''", line)
        out.append(line.split("%", 1)[0].rstrip())
    return out


def _check_codegen_friendly(
    where: str, filename: str, text: str, precision: str, extra_calls: frozenset = frozenset()
) -> None:
    """%#codegen, help block first, no forbidden construct, only allowed calls (and
    `extra_calls`)."""
    lines = text.splitlines()
    function = filename[:-2]
    output = "w" if function.endswith("_weights") else "y"
    assert lines[0].startswith(f"function {output} = {function}("), where
    assert "%#codegen" in lines, where
    # the help block comes first: lines 2.. up to the first non-comment line
    assert lines[1].startswith(f"%{function.upper()}  "), where
    code = _code_lines(text)
    joined = "\n".join(code)
    for what, pattern in FORBIDDEN.items():
        hit = re.search(pattern, joined)
        assert hit is None, f"{where}: {what}: {hit and hit.group(0)!r}"
    assert ("persistent" in joined) == filename.endswith("_step.m"), where
    assert re.search(r"\b(single|double)\b", joined)
    other = "double" if precision == "single" else "single"
    assert f"'{other}'" not in text, where  # no zeros(..., 'other class')
    # every call is a variable, a local function, or an allowed built-in
    assigned = set(re.findall(r"^\s*(\w+)\s*(?:\([^=]*\))?\s*=", joined, re.M))
    local = set(re.findall(r"^function \w+ = (\w+)\(", joined, re.M))
    params = {"x", "reset"}
    called = set(re.findall(r"(?<![\w.])([A-Za-z]\w*)\s*\(", joined)) - {"function"}
    weights = {function.rsplit("_", 1)[0] + "_weights"}  # the generated weights function
    unknown = called - assigned - local - params - weights - ALLOWED_CALLS - extra_calls
    assert not unknown, f"{where}: calls {sorted(unknown)}"


def test_codegen_pragma_and_no_forbidden_constructs(grid_cases, rendered):
    for (spec_id, precision), files in rendered.items():
        for filename, text in files.items():
            _check_codegen_friendly(f"{spec_id}/{precision}/{filename}", filename, text, precision)


def test_generated_mark_and_determinism(grid_cases, rendered):
    for case in grid_cases:
        again = lstmgen.load(case.keras_model)
        for precision in PRECISIONS:
            files = rendered[case.spec.id, precision]
            for text in files.values():
                assert GENERATED_MARK in text[:4096]
            assert backend.render(again, NAME, precision=precision) == files
        assert rendered[case.spec.id, "single"] != rendered[case.spec.id, "double"]


_LITERAL = re.compile(
    r"^w\.(\w+) = (?:single\(\[|double\(single\(\[)\n(.*?)\n    \]\)\)?;$", re.M | re.S
)


def _literals(text: str) -> dict[str, tuple[str, np.ndarray]]:
    """{ident: (assignment text, values as parsed by Python)} of every weight literal (the
    fields w.IDENT of NAME_weights.m)."""
    found = {}
    for match in _LITERAL.finditer(text):
        body = "\n".join(line.split("%", 1)[0] for line in match.group(2).splitlines())
        tokens = [t for t in re.split(r"[,;\s]+|\.\.\.", body) if t]
        found[match.group(1)] = (match.group(0), np.array([float(t) for t in tokens]))
    return found


def _recurrent_arrays(layer) -> dict[str, np.ndarray]:
    """The literals of one unidirectional recurrent layer, by identifier prefix."""
    arrays = {"W": layer.input_weights, "U": layer.recurrent_weights, "b": layer.bias}
    if isinstance(layer, GRU):
        arrays["rb"] = layer.recurrent_bias
    if isinstance(layer, LSTM):
        arrays["P"] = None if layer.peephole is None else layer.peephole.T
        arrays["Pr"] = layer.projection
        if layer.initial_h is not None or layer.initial_c is not None:
            zeros = np.zeros  # a missing half of the initial state is zero
            arrays["h0"] = (
                zeros(layer.output_size, np.float32) if layer.initial_h is None else layer.initial_h
            )
            arrays["c0"] = (
                zeros(layer.units, np.float32) if layer.initial_c is None else layer.initial_c
            )
    return arrays


def _part_identifiers(outer: list[str], bidirectional: list[int]) -> list[str]:
    """IDENT_fw and IDENT_bw of every Bidirectional layer, `_2`, `_3`, ... where taken."""
    seen, names = set(outer), []
    for k in bidirectional:
        for side in ("fw", "bw"):
            base = f"{outer[k][:37]}_{side}"
            candidate, n = base, 1
            while candidate in seen:
                n += 1
                candidate = f"{base[:36]}_{n}"
            seen.add(candidate)
            names.append(candidate)
    return names


def _expected_arrays(model: Model) -> dict[str, np.ndarray]:
    """{identifier: array} of every literal; the parts of a Bidirectional layer are named
    after it (see _part_identifiers)."""
    outer = unique_identifiers([l.name for l in model.layers])
    inner = iter(
        _part_identifiers(
            outer, [k for k, l in enumerate(model.layers) if isinstance(l, Bidirectional)]
        )
    )
    expected = {}
    for layer, ident in zip(model.layers, outer):
        if isinstance(layer, Bidirectional):
            named = [(part, next(inner)) for part in (layer.forward, layer.backward)]
        else:
            named = [(layer, ident)]
        for part, part_ident in named:
            if isinstance(part, (LSTM, GRU, SimpleRNN)):
                arrays = _recurrent_arrays(part)
            elif isinstance(part, Dense):
                arrays = {"W": part.weights, "b": part.bias}
            else:
                arrays = {}
            expected.update({f"{k}_{part_ident}": a for k, a in arrays.items() if a is not None})
    return expected


def test_literals_parse_back_exactly_in_python(grid_cases, rendered):
    for case in grid_cases:
        expected = _expected_arrays(case.ir)
        for precision in PRECISIONS:
            for filename, text in rendered[case.spec.id, precision].items():
                found = _literals(text)
                holds = filename.endswith("_weights.m")
                assert set(found) == (set(expected) if holds else set()), (case.spec.id, filename)
                for ident, (_, values) in found.items():
                    got = values.astype(np.float32)  # double -> single, as single([...])
                    assert np.array_equal(
                        got.view(np.uint32), expected[ident].ravel().view(np.uint32)
                    ), ident


def _awkward_model() -> Model:
    """Weights that stress literal text: subnormals, extremes, -0, 9-digit values."""
    rng = np.random.default_rng(7)
    bits = rng.integers(0, 2**32, size=400, dtype=np.uint64).astype(np.uint32)
    pool = bits.view(np.float32)
    pool = pool[np.isfinite(pool)]
    special = np.array(
        [
            0.0,
            -0.0,
            0.1,
            -0.1,
            1 / 3,
            1e-45,
            -1e-45,
            1.17549435e-38,
            3.4028235e38,
            -3.4028235e38,
            16777215.0,
            0.30000001,
            2.5e-10,
            np.nextafter(np.float32(1), np.float32(2)),
        ],
        dtype=np.float32,
    )
    values = np.concatenate([special, pool]).astype(np.float32)

    def take(n):
        return np.resize(np.roll(values, n), n).astype(np.float32)

    lstm = LSTM("odd name!", take(16 * 3).reshape(16, 3), take(16 * 4).reshape(16, 4), take(16))
    dense = Dense("dense", take(2 * 4).reshape(2, 4), take(2))
    return Model(3, [lstm, dense], name="awkward").validate()


def test_help_and_literals_in_octave(octave, grid_cases, rendered, tmp_path):
    """`help NAME_predict` prints the help block; Octave parses every literal bit-exactly."""
    case = next(c for c in grid_cases if c.ir.streamable)
    help_dir = tmp_path / "help"
    help_dir.mkdir()
    for filename, text in rendered[case.spec.id, "single"].items():
        (help_dir / filename).write_text(text)
    model = _awkward_model()
    expected = _expected_arrays(model)
    script = [
        f"cd('{help_dir}');",
        f"help {NAME}_predict",
        "disp('=====');",
        f"help {NAME}_step",
        "disp('=====');",
    ]
    for precision in PRECISIONS:
        files = backend.render(model, "awkward", precision=precision)
        lit_dir = tmp_path / precision
        lit_dir.mkdir()
        for ident, (assignment, _) in _literals(files["awkward_weights.m"]).items():
            script += [
                f"cd('{lit_dir}');",
                assignment,
                f"fid = fopen('{ident}.bin', 'w'); fwrite(fid, w.{ident}.', "
                f"class(w.{ident})); fclose(fid);",
                f"fid = fopen('{ident}.size', 'w'); fprintf(fid, '%d %d %s', "
                f"size(w.{ident}), class(w.{ident})); fclose(fid);",
            ]
    done = runner.octave_eval("\n".join(script))
    predict_help, step_help, _ = done.stdout.split("=====")
    d, o = case.ir.input_size, case.ir.output_size
    for text, function in ((predict_help, "predict"), (step_help, "step")):
        assert f"{NAME.upper()}_{function.upper()}  " in text
        assert "Generated by lstmgen" in text and "Simulink" in text
        assert "Precision: single" in text and case.ir.name in text
        assert "\ncodegen\n" not in text  # the %#codegen line is not part of the help
    assert f"x  {d} x T" in predict_help
    assert f"{o} x {'T' if case.ir.returns_sequences else '1'}" in predict_help
    assert f"x      {d} x 1" in step_help and "reset" in step_help
    for precision in PRECISIONS:
        dtype = np.float32 if precision == "single" else np.float64
        for ident, array in expected.items():
            rows, cols, cls = (tmp_path / precision / f"{ident}.size").read_text().split()
            assert cls == precision
            shape = array.shape if array.ndim == 2 else (array.size, 1)
            assert (int(rows), int(cols)) == shape, ident
            got = np.fromfile(tmp_path / precision / f"{ident}.bin", dtype=dtype)
            want = array.ravel().astype(dtype)
            assert np.array_equal(
                got.view(np.uint32 if precision == "single" else np.uint64),
                want.view(np.uint32 if precision == "single" else np.uint64),
            ), (precision, ident)


EXTREMES = np.array(
    [-1000.0, -100.0, -88.8, -30.0, -3.0, -0.5, -0.0, 0.0, 0.5, 3.0, 30.0, 88.8, 100.0, 1000.0],
    dtype=np.float32,
)


def _activation_models() -> list[Model]:
    """Every IR activation as LSTM gate, cell and output and in Dense and Activation layers;
    and on extreme values (a Dense with zero weights whose bias holds them)."""
    rng = np.random.default_rng(5)
    names = list(ELEMENTWISE_ACTIVATIONS)

    def draw(*shape):
        return rng.uniform(-0.6, 0.6, shape).astype(np.float32)

    models = []
    for k, act in enumerate(names):
        gate = names[(k + 3) % len(names)]
        out = names[(k + 5) % len(names)]
        layers = [
            LSTM(
                "lstm",
                draw(16, 3),
                draw(16, 4),
                draw(16) if k % 2 else None,
                gate_activation=gate,
                cell_activation=act,
                output_activation=out,
                return_sequences=True,
                go_backwards=k % 3 == 1,
            ),
            Dense("dense", draw(5, 4), draw(5), activation=act),
            Activation("act", 5, names[(k + 1) % len(names)]),
            LSTM(
                "lstm2",
                draw(8, 5),
                draw(8, 2),
                draw(8),
                gate_activation=act,
                cell_activation=gate,
                return_sequences=k % 2 == 0,
            ),
            Dense("head", draw(4, 2), None, activation="softmax" if k % 2 else "linear"),
        ]
        models.append(Model(3, layers, name=f"act_{k}", source="random weights").validate())
    for act in names + ["softmax"]:
        head = (
            [Dense("extremes", np.zeros((EXTREMES.size, 1), np.float32), EXTREMES, activation=act)]
            if act != "softmax"
            else [
                Dense("extremes", np.zeros((EXTREMES.size, 1), np.float32), EXTREMES),
                Activation("softmax", EXTREMES.size, "softmax"),
            ]
        )
        models.append(
            Model(
                3,
                [LSTM("lstm", draw(4, 3), draw(4, 1), draw(4))] + head,
                name=f"extreme_{act}",
                source="random weights",
            ).validate()
        )
    return models


def test_every_activation_matches_reference(octave, tmp_path):
    """All activations, also on +-1000, against the float64 reference; nothing overflows."""
    models = _activation_models()
    x = np.random.default_rng(9).standard_normal((3, 7, 3)).astype(np.float32) * 3
    jobs = []
    for k, model in enumerate(models):
        for p in PRECISIONS:
            jobs.append(
                runner.Job(
                    model,
                    backend.render(model, "acts", precision=p),
                    "acts",
                    x,
                    tmp_path / f"{k}_{p}",
                    steps=model.streamable,
                )
            )
    results = runner.run_batch(jobs, processes=2)
    for job, result in zip(jobs, results):
        result.check(job)
        ref = forward(job.model, job.x)
        assert np.all(np.isfinite(ref)), job.model.name
        precision = result.output_class
        tolerance = SINGLE_TOLERANCE if precision == "single" else DOUBLE_REFERENCE_TOLERANCE
        assert np.all(np.isfinite(result.predict)), job.model.name
        _, rel = error_metrics(result.predict, ref)
        assert rel.max() <= tolerance, (job.model.name, precision, rel.max())
        if job.steps:
            got = result.steps if job.model.returns_sequences else result.steps[:, -1]
            _, rel = error_metrics(got, ref)
            assert rel.max() <= tolerance, (job.model.name, precision, "steps")


def _large_model() -> Model:
    d, h = LARGE["input_size"], LARGE["units"]
    rng = np.random.default_rng(11)

    def draw(*shape, scale):
        return rng.uniform(-scale, scale, shape).astype(np.float32)

    lstm = LSTM(
        "lstm",
        draw(4 * h, d, scale=0.5),
        draw(4 * h, h, scale=1 / np.sqrt(h)),
        draw(4 * h, scale=0.5),
    )
    dense = Dense("head", draw(1, h, scale=1 / np.sqrt(h)), draw(1, scale=0.5))
    return Model(d, [lstm, dense], name="large", source="random weights").validate()


def test_large_model_runs_in_octave(octave, tmp_path, record_property):
    """9 -> LSTM(256) -> Dense(1): ~272k literal weights parse and run in Octave."""
    model = _large_model()
    x = (
        np.random.default_rng(3)
        .standard_normal((LARGE["sequences"], LARGE["timesteps"], model.input_size))
        .astype(np.float32)
    )
    jobs = []
    for precision in PRECISIONS:
        files = backend.render(model, "big", precision=precision)
        jobs.append(runner.Job(model, files, "big", x, tmp_path / precision))
    jobs.append(
        runner.Job(
            model,
            backend.render(model, "big"),
            "big",
            x[:1, :3],
            tmp_path / "steps",
            predict=False,
            steps=True,
        )
    )
    start = time.perf_counter()
    results = [r.check(j) for j, r in zip(jobs, runner.run_batch(jobs, processes=2))]
    wall = time.perf_counter() - start
    size_mb = len(jobs[0].files["big_weights.m"]) / 1e6
    report = (
        f"large model ({model.parameter_count()} weights, big_weights.m {size_mb:.1f} MB): "
        f"{wall:.1f} s wall for 2 Octave processes; predict of {LARGE['sequences']} x "
        f"T={LARGE['timesteps']}: {results[0].predict_seconds:.2f} s single, "
        f"{results[1].predict_seconds:.2f} s double (first call parses the file); "
        f"3 step calls: {results[2].steps_seconds:.2f} s"
    )
    print("\n" + report)
    record_property("large_model_octave", report)
    ref = forward(model, x)
    assert error_metrics(results[0].predict, ref)[1].max() <= SINGLE_TOLERANCE
    assert error_metrics(results[1].predict, ref)[1].max() <= DOUBLE_REFERENCE_TOLERANCE
    _, rel = error_metrics(results[2].steps[:, -1], forward(model, x[:1, :3]))
    assert rel.max() <= SINGLE_TOLERANCE
    assert wall < 120, report


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
    assert (
        main(
            [
                "generate",
                str(ROOT / "examples" / "sine_lstm.keras"),
                "--target",
                "matlab",
                "--name",
                "sine",
                "--out",
                str(out),
                "--precision",
                "double",
            ]
        )
        == 0
    )
    text = (out / "sine_predict.m").read_text()
    assert "double(single([" in (out / "sine_weights.m").read_text()
    assert "zeros(16, 1, 'double')" in text
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


@pytest.mark.parametrize("precision", PRECISIONS)
def test_verify_example_end_to_end(octave, example_model_path, precision):
    report = lstmgen.verify(example_model_path, "matlab", options={"precision": precision})
    assert report.passed, report.summary()
    assert report.reference_max_abs <= (1e-6 if precision == "single" else 1e-12)


# ---- GRU, SimpleRNN, Bidirectional, LSTM projection (hand-built IR, no framework) --------


def _new_kind_models() -> dict[str, Model]:
    """Every branch of the new layer kinds: GRU with reset_after (with and without the
    recurrent bias) and without it, no bias, go_backwards; SimpleRNN; LSTM projection alone
    and with every other LSTM feature; Bidirectional of each kind in every merge mode,
    returning sequences or not, stacked; and part identifiers that collide with a layer's."""
    rng = np.random.default_rng(21)

    def draw(*shape):
        return rng.uniform(-0.6, 0.6, shape).astype(np.float32)

    def gru(name, d, h, reset_after=True, bias=True, recurrent_bias=True, **kw):
        return GRU(
            name,
            draw(3 * h, d),
            draw(3 * h, h),
            draw(3 * h) if bias else None,
            draw(3 * h) if reset_after and recurrent_bias else None,
            reset_after=reset_after,
            **kw,
        )

    def rnn(name, d, h, bias=True, **kw):
        return SimpleRNN(name, draw(h, d), draw(h, h), draw(h) if bias else None, **kw)

    def lstm(name, d, h, projection=None, **kw):
        return LSTM(
            name,
            draw(4 * h, d),
            draw(4 * h, projection or h),
            draw(4 * h),
            projection=draw(projection, h) if projection else None,
            **kw,
        )

    def bi(name, make, d, h, merge, sequences, **kw):
        return Bidirectional(
            name,
            make(name + " fw", d, h, return_sequences=sequences, **kw),
            make(name + " bw", d, h, return_sequences=sequences, go_backwards=True, **kw),
            merge_mode=merge,
        )

    models = {
        "gru": [
            gru("g1", 3, 6, return_sequences=True),
            gru("g2", 6, 4, recurrent_bias=False),
            Dense("d", draw(2, 4), draw(2)),
        ],
        "gru_reset_before": [
            gru(
                "g1",
                3,
                5,
                reset_after=False,
                return_sequences=True,
                gate_activation="hard_sigmoid_0.2",
                cell_activation="softsign",
            ),
            gru("g2", 5, 1, reset_after=False, bias=False, return_sequences=True),
        ],
        "gru_backwards": [
            gru("g", 3, 4, go_backwards=True, return_sequences=True),
            gru("g2", 4, 2, reset_after=False, go_backwards=True),
        ],
        "simple_rnn": [
            rnn("r1", 3, 7, activation="relu", return_sequences=True),
            rnn("r2", 7, 3, bias=False, activation="linear"),
            Dense("d", draw(2, 3), None, activation="softmax"),
        ],
        "projection": [
            lstm("p1", 3, 6, projection=4, return_sequences=True),
            lstm("p2", 4, 5, projection=1),
        ],
        "projection_features": [
            lstm(
                "p",
                3,
                5,
                projection=2,
                return_sequences=True,
                peephole=draw(3, 5),
                clip=1.5,
                input_forget=True,
                initial_h=draw(2),
                initial_c=draw(5),
            )
        ],
        "mixed_stream": [
            lstm("l", 3, 4, return_sequences=True),
            gru("g", 4, 3, return_sequences=True),
            rnn("r", 3, 2, return_sequences=True),
        ],
        "bi_stacked": [
            bi("b1", lstm, 3, 5, "concat", True),
            bi("b2", gru, 10, 3, "ave", True, reset_after=False),
            bi("b3", rnn, 3, 2, "concat", False),
            Dense("d", draw(1, 4), draw(1), activation="sigmoid"),
        ],
        "bi_projection": [bi("bp", lstm, 3, 5, "mul", True, projection=2), lstm("l", 2, 3)],
        "bi_names": [
            bi("x", rnn, 3, 3, "concat", True),
            rnn("x_fw", 6, 2, return_sequences=True),
            Activation("x_bw", 2, "tanh"),
        ],
        # a 40-character identifier ending in "_", a part name taken by a later layer, and
        # names that are hostile in a MATLAB comment
        "bi_long_names": [
            bi("a" * 39 + " b\n%'%{ \u540d", gru, 3, 2, "sum", True),
            rnn("a" * 37 + "_fw", 2, 2),
        ],
    }
    kinds = {"lstm": lstm, "gru": gru, "rnn": rnn}
    for k, (merge, sequences) in enumerate(
        (m, s) for m in ("concat", "sum", "mul", "ave") for s in (True, False)
    ):
        kind = list(kinds)[k % 3]
        models[f"bi_{kind}_{merge}_{'seq' if sequences else 'last'}"] = [
            bi("bi", kinds[kind], 3, 4, merge, sequences)
        ]
    return {
        key: Model(3, layers, name=key, source="random weights").validate()
        for key, layers in models.items()
    }


@pytest.fixture(scope="module")
def new_kinds(octave, tmp_path_factory):
    """Every new-kind model, both precisions, in one Octave batch: predict, and step for
    the streamable ones (GRU and SimpleRNN stream; Bidirectional and go_backwards don't)."""
    root = tmp_path_factory.mktemp("matlab_new_kinds")
    jobs, precisions = [], []
    for k, (key, model) in enumerate(_new_kind_models().items()):
        t_len = 1 if key == "bi_lstm_concat_seq" else 9  # T = 1 once: both parts see 1 step
        x = np.random.default_rng(k).standard_normal((3, t_len, 3)).astype(np.float32)
        for p in PRECISIONS:
            jobs.append(
                runner.Job(
                    model,
                    backend.render(model, NAME, precision=p),
                    NAME,
                    x,
                    root / f"{key}_{p}",
                    steps=model.streamable,
                )
            )
            precisions.append(p)
    start = time.perf_counter()
    results = runner.run_batch(jobs, processes=2)
    print(f"\nOctave ran {len(jobs)} new-kind jobs in {time.perf_counter() - start:.1f} s")
    return [(job, p, result.check(job)) for job, p, result in zip(jobs, precisions, results)]


def test_new_kinds_match_reference(new_kinds):
    """GRU, SimpleRNN, Bidirectional and projection against the float64 reference."""
    worst: dict[tuple[str, str], float] = {}
    for job, precision, result in new_kinds:
        assert result.output_class == precision
        assert result.predict.dtype == (np.float32 if precision == "single" else np.float64)
        _, rel = error_metrics(result.predict, forward(job.model, job.x))
        worst[job.model.name, precision] = float(rel.max())
    print(
        "\nmax rel error vs reference: "
        + ", ".join(f"{key}/{p} {err:.1e}" for (key, p), err in sorted(worst.items()))
    )
    for (key, precision), err in worst.items():
        bound = SINGLE_TOLERANCE if precision == "single" else DOUBLE_REFERENCE_TOLERANCE
        assert err <= bound, (key, precision, err)


def test_new_kinds_step_gives_predict_outputs(new_kinds):
    """GRU / SimpleRNN / projected LSTM: NAME_step from a reset = NAME_predict, at every
    step the output of the model on the prefix so far; no step file for Bidirectional."""
    streamed = set()
    for job, precision, result in new_kinds:
        model = job.model
        kinds = model.kinds()
        if "bidirectional" in kinds or not model.streamable:
            assert set(job.files) == {f"{NAME}_predict.m", f"{NAME}_weights.m"}, model.name
            continue
        tolerance = SINGLE_TOLERANCE if precision == "single" else DOUBLE_REFERENCE_TOLERANCE
        assert result.steps.dtype == result.predict.dtype
        if model.returns_sequences:
            _, rel = error_metrics(result.steps, result.predict)
        else:
            _, rel = error_metrics(result.steps[:, -1], result.predict)
        assert rel.max() <= tolerance, (model.name, precision)
        for t in (1, 4, job.x.shape[1]):
            ref = forward(model, job.x[:, :t])
            got = result.steps[:, :t] if model.returns_sequences else result.steps[:, t - 1]
            _, rel = error_metrics(got, ref)
            assert rel.max() <= tolerance, (model.name, precision, t)
        streamed.update(kinds)
    assert {"gru", "simple_rnn", "lstm"} <= streamed


def test_new_kinds_code_and_literals():
    """The new kinds keep the %#codegen rules, render deterministically, and every weight
    (GRU recurrent bias, projection, initial state, both Bidirectional parts) parses back
    bit-exactly under its documented identifier."""
    for key, model in _new_kind_models().items():
        expected = _expected_arrays(model)
        for precision in PRECISIONS:
            files = backend.render(model, NAME, precision=precision)
            assert files == backend.render(model, NAME, precision=precision)
            for filename, text in files.items():
                where = f"{key}/{precision}/{filename}"
                assert text.isascii(), where
                _check_codegen_friendly(where, filename, text, precision)
                found = _literals(text)
                holds = filename.endswith("_weights.m")
                assert set(found) == (set(expected) if holds else set()), where
                for ident, (_, values) in found.items():
                    got = values.astype(np.float32)
                    assert np.array_equal(
                        got.view(np.uint32), expected[ident].ravel().view(np.uint32)
                    ), ident
    files = backend.render(_new_kind_models()["bi_names"], NAME)
    text = files[f"{NAME}_predict.m"]
    assert "(a Bidirectional layer)" in text  # why there is no step file
    assert "\ny_x_bw = " in text
    for ident in ("W_x_fw", "W_x_fw_2", "W_x_bw_2"):
        assert f"\nw.{ident} = " in files[f"{NAME}_weights.m"], ident


def test_new_kinds_state_size_in_help():
    """The help states the persistent state: h (P values with a projection) and c."""
    models = _new_kind_models()
    step = backend.render(models["gru"], NAME)[f"{NAME}_step.m"]
    assert "h of every GRU layer" in step and f"{(6 + 4) * 4} bytes of recurrent state" in step
    step = backend.render(models["projection"], NAME, precision="double")[f"{NAME}_step.m"]
    assert f"{(4 + 6 + 1 + 5) * 8} bytes of LSTM state (h and c)" in step
    assert "persistent h_p1 c_p1" in step and "h_p2 = zeros(1, 1, 'double');" in step


# ---- Masking, Normalize, LayerNorm, Flatten, Conv1D, Pool1D (hand-built IR) ----------------

SHAPING_SEQUENCES = 3


def _shaping_models() -> dict[str, tuple[Model, tuple[int, ...]]]:
    """{key: (model, the sequence lengths T it runs with)}: Masking in front of every
    recurrent kind, go_backwards and Bidirectional (both merges that reorder), and an LSTM
    with an initial state (whose output is zero, not h0, before the first real step);
    Normalize and LayerNorm over sequences and single vectors, with and without gamma and
    beta; Conv1D with every padding, strides, dilation, no bias and a kernel of 1; max and
    average pooling with both paddings and strides; Flatten alone and after a Conv1D;
    Bidirectional after Conv1D. T = the minimum for the Conv1D/pooling layers (one output
    step) is always among the lengths."""
    rng = np.random.default_rng(31)

    def draw(*shape):
        return rng.uniform(-0.6, 0.6, shape).astype(np.float32)

    def lstm(name, d, h, projection=None, **kw):
        return LSTM(
            name,
            draw(4 * h, d),
            draw(4 * h, projection or h),
            draw(4 * h),
            projection=draw(projection, h) if projection else None,
            **kw,
        )

    def gru(name, d, h, **kw):
        return GRU(name, draw(3 * h, d), draw(3 * h, h), draw(3 * h), draw(3 * h), **kw)

    def rnn(name, d, h, **kw):
        return SimpleRNN(name, draw(h, d), draw(h, h), draw(h), **kw)

    def bi(name, make, d, h, merge, sequences):
        return Bidirectional(
            name,
            make(name + "_f", d, h, return_sequences=sequences),
            make(name + "_b", d, h, return_sequences=sequences, go_backwards=True),
            merge_mode=merge,
        )

    def conv(name, filters, kernel, d, bias=True, **kw):
        return Conv1D(name, draw(filters, kernel, d), draw(filters) if bias else None, **kw)

    def normalize(name, n):
        return Normalize(name, draw(n), rng.uniform(0.5, 2.0, n).astype(np.float32))

    masked = (8,)
    models = {
        "mask_stack": (
            [
                Masking("mask", 3, 0.0),
                lstm("l", 3, 4, return_sequences=True),
                Dense("d", draw(3, 4), draw(3)),
                gru("g", 3, 3, return_sequences=True),
                rnn("r", 3, 2),
            ],
            masked,
        ),
        "mask_backwards": (
            [
                Masking("mask", 3, -1.0),
                lstm("l", 3, 3, return_sequences=True, go_backwards=True),
                bi("b", gru, 3, 2, "concat", True),
                bi("b2", rnn, 4, 2, "ave", False),
            ],
            masked,
        ),
        "mask_initial_state": (
            [
                Masking("mask", 3, 2.5),
                lstm(
                    "l",
                    3,
                    4,
                    projection=2,
                    initial_h=draw(2),
                    initial_c=draw(4),
                    return_sequences=True,
                ),
                lstm("l2", 2, 3, initial_h=draw(3)),
            ],
            masked,
        ),
        "mask_norms": (
            [
                Masking("mask", 3, 0.0),
                normalize("n", 3),
                LayerNorm("ln", 3, draw(3), draw(3), 1e-3),
                gru("g", 3, 4, return_sequences=True),
                LayerNorm("ln2", 4, None, None, 1e-5),
            ],
            masked,
        ),
        "norms": (
            [
                normalize("n", 3),
                lstm("l", 3, 5),
                LayerNorm("ln", 5, draw(5), None, 1e-3),
                normalize("n2", 5),
                LayerNorm("ln3", 5, None, draw(5), 0.25),
                Dense("d", draw(2, 5), draw(2)),
            ],
            (7,),
        ),
        "conv_valid": ([conv("c", 4, 3, 3, activation="relu"), lstm("l", 4, 3)], (3, 9)),
        "conv_strided_dilated": (
            [
                conv("c", 4, 3, 3, stride=2, dilation=2, activation="tanh"),
                Pool1D("p", 4, "max", 3, 1, "valid"),
                gru("g", 4, 3, return_sequences=True),
            ],
            (9, 10, 14),
        ),
        "conv_same": (
            [
                conv("c", 3, 4, 3, padding="same"),
                Pool1D("p", 3, "avg", 2, 1, "same"),
                lstm("l", 3, 3, return_sequences=True),
            ],
            (1, 2, 7),
        ),
        "conv_same_strided": (
            [
                conv(
                    "c", 3, 2, 3, bias=False, stride=3, dilation=2, padding="same", activation="elu"
                ),
                Pool1D("p", 3, "max", 3, 2, "same"),
                rnn("r", 3, 2, return_sequences=True),
            ],
            (1, 5, 10, 11),
        ),
        "conv_causal": (
            [
                conv("c", 3, 3, 3, dilation=2, padding="causal", activation="tanh"),
                conv("c2", 4, 2, 3, stride=2, padding="causal"),
                Pool1D("p", 4, "avg", 2, 2, "valid"),
                lstm("l", 4, 3),
            ],
            (3, 8),
        ),
        "conv_bidirectional": (
            [
                conv("c", 3, 1, 3),
                Pool1D("p", 3, "avg", 1, 1, "valid"),
                bi("b", lstm, 3, 2, "concat", True),
                bi("b2", gru, 4, 2, "sum", True),
            ],
            (1, 6),
        ),
        "flatten": (
            [
                normalize("n", 3),
                lstm("l", 3, 4, return_sequences=True),
                Flatten("f", 6, 4),
                Dense("d", draw(2, 24), draw(2), activation="softmax"),
            ],
            (6,),
        ),
        "conv_flatten": (
            [
                conv("c", 3, 3, 3, stride=2),
                lstm("l", 3, 2, return_sequences=True),
                Flatten("f", 3, 2),
                Dense("d", draw(2, 6), draw(2)),
            ],
            (7,),
        ),
    }
    timesteps = {"flatten": 6, "conv_flatten": 7}
    return {
        key: (
            Model(
                3, layers, name=key, source="random weights", timesteps=timesteps.get(key)
            ).validate(),
            lengths,
        )
        for key, (layers, lengths) in models.items()
    }


def _shaping_input(model: Model, t_len: int, seed: int) -> np.ndarray:
    """Random sequences; behind a Masking layer 5 of them: masked at the end, at the start,
    in the middle (twice), fully masked, and one timestep equal to the mask value in one
    feature only (not masked)."""
    rng = np.random.default_rng(seed)
    first = model.layers[0]
    n = 5 if isinstance(first, Masking) else SHAPING_SEQUENCES
    x = rng.standard_normal((n, t_len, model.input_size)).astype(np.float32)
    if isinstance(first, Masking):
        v = first.mask_value
        x[0, 5:] = v
        x[1, :3] = v
        x[2, 2] = v
        x[2, 4] = v
        x[3] = v
        x[4, 3, 0] = v
    return x


def _shaping_arrays(model: Model) -> dict[str, np.ndarray]:
    """`_expected_arrays` and the literals of the shaping layers."""
    expected = _expected_arrays(model)
    for layer, ident in zip(model.layers, unique_identifiers([l.name for l in model.layers])):
        if isinstance(layer, Normalize):
            expected.update({f"mean_{ident}": layer.mean, f"std_{ident}": layer.std})
        elif isinstance(layer, LayerNorm):
            for key in ("gamma", "beta"):
                if getattr(layer, key) is not None:
                    expected[f"{key}_{ident}"] = getattr(layer, key)
        elif isinstance(layer, Conv1D):
            f, k, d = layer.weights.shape  # W is F x K*D: one block of D columns per tap
            expected[f"W_{ident}"] = layer.weights.reshape(f, k * d)
            if layer.bias is not None:
                expected[f"b_{ident}"] = layer.bias
    return expected


@pytest.fixture(scope="module")
def shaping(octave, tmp_path_factory):
    """Every shaping model, both precisions, every T of its list, in one Octave batch:
    predict, and step for the streamable ones; plus inputs that are too short (Conv1D /
    pooling without an output step) or of the wrong length (Flatten)."""
    root = tmp_path_factory.mktemp("matlab_shaping")
    jobs, refused = [], []
    for k, (key, (model, lengths)) in enumerate(_shaping_models().items()):
        for p in PRECISIONS:
            files = backend.render(model, NAME, precision=p)
            for t_len in lengths:
                x = _shaping_input(model, t_len, seed=k * 100 + t_len)
                jobs.append(
                    runner.Job(
                        model, files, NAME, x, root / f"{key}_{p}_{t_len}", steps=model.streamable
                    )
                )
            short = backend.min_timesteps(model) - 1
            if model.timesteps is not None:
                short = model.timesteps - 1
            if short >= 1 and p == "single":
                x = _shaping_input(model, short, seed=k)
                refused.append(runner.Job(model, files, NAME, x, root / f"{key}_short"))
    start = time.perf_counter()
    results = runner.run_batch(jobs + refused, processes=2)
    print(
        f"\nOctave ran {len(jobs) + len(refused)} shaping jobs in "
        f"{time.perf_counter() - start:.1f} s"
    )
    done = [(job, result.check(job)) for job, result in zip(jobs, results)]
    return done, list(zip(refused, results[len(jobs) :]))


def test_shaping_layers_match_reference(shaping):
    """Masking, Normalize, LayerNorm, Flatten, Conv1D and pooling against the float64
    reference, at every T (the minimum included), in both precisions."""
    worst: dict[tuple[str, str], float] = {}
    for job, result in shaping[0]:
        precision = result.output_class
        assert result.predict.dtype == (np.float32 if precision == "single" else np.float64)
        ref = forward(job.model, job.x)
        assert result.predict.shape == ref.shape, job.workdir.name
        _, rel = error_metrics(result.predict, ref)
        key = (job.model.name, precision)
        worst[key] = max(worst.get(key, 0.0), float(rel.max()))
        bound = SINGLE_TOLERANCE if precision == "single" else DOUBLE_REFERENCE_TOLERANCE
        assert rel.max() <= bound, (job.workdir.name, float(rel.max()))
    print(
        "\nmax rel error vs reference: "
        + ", ".join(f"{key}/{p} {err:.1e}" for (key, p), err in sorted(worst.items()))
    )
    assert {k for k, _ in worst} == set(_shaping_models())


def test_shaping_step_gives_predict_outputs(shaping):
    """Masking / Normalize / LayerNorm models stream: NAME_step from a reset gives the
    model's output on the prefix so far at every step; a masked step keeps the state and
    repeats the previous output (zero right after a reset, also with an initial state)."""
    streamed = set()
    for job, result in shaping[0]:
        model = job.model
        if not model.streamable:
            assert set(job.files) == {f"{NAME}_predict.m", f"{NAME}_weights.m"}, model.name
            assert result.steps is None
            continue
        tolerance = (
            SINGLE_TOLERANCE if result.output_class == "single" else DOUBLE_REFERENCE_TOLERANCE
        )
        for t in range(1, job.x.shape[1] + 1):
            ref = forward(model, job.x[:, :t])
            got = result.steps[:, :t] if model.returns_sequences else result.steps[:, t - 1]
            _, rel = error_metrics(got, ref)
            assert rel.max() <= tolerance, (model.name, result.output_class, t)
        if isinstance(model.layers[0], Masking):
            assert not np.any(result.steps[3]), model.name  # a fully masked sequence: 0
            # masked at the end: the output stays what it was at the last real step
            assert np.array_equal(result.steps[0, 5:], np.repeat(result.steps[0, 4:5], 3, 0))
        streamed.add(model.name)
    assert streamed == {"mask_stack", "mask_initial_state", "mask_norms", "norms"}


def test_too_short_input_is_refused(shaping):
    """An input with fewer timesteps than the Conv1D/pooling layers need for one output
    step, or with another T than a Flatten model's, stops NAME_predict at an assert that
    says what T it needs."""
    refused = shaping[1]
    assert {job.model.name for job, _ in refused} >= {
        "conv_valid",
        "conv_strided_dilated",
        "conv_causal",
        "flatten",
        "conv_flatten",
    }
    for job, result in refused:
        assert result.error is not None, job.model.name
        model = job.model
        if model.timesteps is not None:
            assert f"x must have T = {model.timesteps} timesteps" in result.error
        else:
            need = backend.min_timesteps(model)
            assert model.output_timesteps(need) == 1 and model.output_timesteps(need - 1) == 0
            assert f"x needs T >= {need} timesteps" in result.error, result.error


def test_shaping_code_and_literals():
    """The shaping layers keep the %#codegen rules, render deterministically and leave
    every weight (mean, std, gamma, beta, the Conv1D's F x K*D weights and bias) parse
    back bit-exactly; help texts state the masking, the minimum T and the fixed T."""
    for key, (model, _) in _shaping_models().items():
        expected = _shaping_arrays(model)
        for precision in PRECISIONS:
            files = backend.render(model, NAME, precision=precision)
            assert files == backend.render(model, NAME, precision=precision)
            assert (f"{NAME}_step.m" in files) == model.streamable, key
            for filename, text in files.items():
                where = f"{key}/{precision}/{filename}"
                assert text.isascii(), where
                _check_codegen_friendly(where, filename, text, precision, frozenset(SHAPING_CALLS))
                found = _literals(text)
                holds = filename.endswith("_weights.m")
                assert set(found) == (set(expected) if holds else set()), where
                for ident, (_, values) in found.items():
                    got = values.astype(np.float32)
                    assert np.array_equal(
                        got.view(np.uint32), expected[ident].ravel().view(np.uint32)
                    ), ident
    models = {key: model for key, (model, _) in _shaping_models().items()}
    files = backend.render(models["mask_stack"], NAME)
    assert "whose 3 features all equal 0.0 is masked" in files[f"{NAME}_predict.m"]
    assert "equal 0.0 the step is masked" in files[f"{NAME}_step.m"]
    predict = backend.render(models["conv_strided_dilated"], NAME)[f"{NAME}_predict.m"]
    assert "assert(T >= 9, " in predict and "fewer than 9 timesteps" in predict
    assert "reads windows of timesteps\n%   (Conv1D and pooling)" in predict
    predict = backend.render(models["flatten"], NAME)[f"{NAME}_predict.m"]
    assert "zeros(3, 6, 'single')" in predict and "flattens all its timesteps" in predict


def test_masked_step_state_in_help_and_persistent():
    """An LSTM with an initial state behind a Masking layer keeps its output in o (part of
    the stated persistent state); other layers need no extra state."""
    models = {key: model for key, (model, _) in _shaping_models().items()}
    step = backend.render(models["mask_initial_state"], NAME)[f"{NAME}_step.m"]
    assert "persistent h_l c_l o_l" in step and "persistent h_l2 c_l2 o_l2" in step
    assert (
        f"{(2 + 4 + 2 + 3 + 3 + 3) * 4} bytes of LSTM state (h and c) and held outputs (o)" in step
    )
    step = backend.render(models["mask_stack"], NAME)[f"{NAME}_step.m"]
    assert "persistent h_l c_l\n" in step and "o_" not in step
