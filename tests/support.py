"""Test helpers: optional tools skip on a user's machine but fail in CI (CI=true)."""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent  # the repository
FIXTURES = Path(__file__).resolve().parent / "fixtures"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
EXHAUSTIVE = os.environ.get("LSTMGEN_EXHAUSTIVE", "") not in ("", "0")


def missing(what: str) -> None:
    """Skip, or fail in CI where every tool must be present."""
    if IN_CI:
        pytest.fail(f"{what} is required in CI but missing")
    pytest.skip(f"{what} not installed")


def require_module(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        missing(f"Python package '{name}'")


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        missing(f"tool '{name}'")
    return path


def backend_matches_or_refuses(target: str, cases: dict, tmp_path, tolerance: float = 1e-5):
    """For each case (ir, x, expected): the target's generated code matches `expected`
    when the backend declares every layer kind the IR uses; otherwise rendering refuses
    the model with an error naming what is missing."""
    from lstmgen.errors import LstmgenError
    from lstmgen.targets import BASIC_LAYERS, get_backend, get_runner, render
    from lstmgen.verify import error_metrics

    kinds = set(getattr(get_backend(target), "LAYERS", BASIC_LAYERS))
    for key, (ir, x, expected) in cases.items():
        if not ir.kinds() <= kinds:
            with pytest.raises(LstmgenError, match="does not implement"):
                render(target, ir, "net")
            continue
        workdir = tmp_path / key
        workdir.mkdir()
        got = get_runner(target).run(ir, render(target, ir, "net"), "net", x, workdir)
        _, rel = error_metrics(got, expected)
        assert rel.max() <= tolerance, (target, key, float(rel.max()))


def randomize_keras_weights(model, rng, scale: float = 0.6) -> None:
    """Random weights for every layer (biases included, so a wrong bias mapping shows);
    variances of BatchNormalization stay positive; Normalization keeps its adapted stats."""
    import numpy as np

    for layer in model.layers:
        weights = layer.get_weights()
        if not weights or type(layer).__name__ == "Normalization":
            continue
        new = [rng.uniform(-scale, scale, w.shape).astype(np.float32) for w in weights]
        if type(layer).__name__ == "BatchNormalization":  # moving_variance is the last
            new[-1] = rng.uniform(0.3, 2.0, weights[-1].shape).astype(np.float32)
        layer.set_weights(new)


def keras_cases(keras, specs: dict, seed: int, sequences: int = 5) -> dict:
    """Build each spec `key: (input_shape, layers, make_inputs)` as a Keras Sequential with
    random weights; return `key: (ir, x, expected)`, expected being Keras's predict on x.
    `make_inputs(rng, shape)` gives x as [N, T, D] float32 (token ids: [N, T, 1]); a
    model whose input has no feature axis (token ids) gets x[..., 0] as int32."""
    import numpy as np

    import lstmgen

    rng = np.random.default_rng(seed)
    built = {}
    for key, (shape, layers, make) in sorted(specs.items()):
        ids = len(shape) == 1
        model = keras.Sequential(
            [keras.Input(shape, dtype="int32" if ids else "float32"), *layers], name=key
        )
        randomize_keras_weights(model, rng)
        x = make(rng, (sequences, *(shape if not ids else (*shape, 1))))
        x = np.asarray(x, np.float32)
        expected = model.predict(x[..., 0].astype(np.int32) if ids else x, verbose=0)
        built[key] = (lstmgen.load(model), x, expected)
    return built


def reference_matches(cases: dict, tmp_path, tolerance: float = 1e-5) -> None:
    """The float64 reference of each case's IR matches the oracle, also after an .npz
    round trip."""
    import numpy as np

    from lstmgen.ir_io import load_ir, save_ir
    from lstmgen.reference import forward
    from lstmgen.verify import error_metrics

    for key, (ir, x, expected) in cases.items():
        _, rel = error_metrics(forward(ir, x), expected)
        assert rel.max() <= tolerance, (key, float(rel.max()))
        again = load_ir(save_ir(ir, tmp_path / f"{key}.npz"))
        assert np.array_equal(forward(again, x), forward(ir, x), equal_nan=True), key


# ---- third-party models (../shared/real_models) --------------------------------------
REAL_MODELS = ROOT.parent / "shared" / "real_models"


def real_model(relative: str) -> Path:
    """A file of ../shared/real_models (INDEX.md there): skips where the folder is absent,
    fails in CI, where it must be present. Never copy these files into the repository."""
    path = REAL_MODELS / relative
    if not path.exists():
        missing(f"third-party model file {path}")
    return path


def targets_match_oracle(
    loaded, x, tmp_path, targets=("c", "python", "matlab"), tolerance: float = 1e-5, **options
) -> dict:
    """Generate every target for `loaded` (an `lstmgen.extractors.Loaded`), run it on x and
    compare with the oracle `loaded.predict(x)` (the framework's own forward); returns the
    max relative error per target. Fails when a target refuses the model."""
    import numpy as np

    from lstmgen.targets import get_runner, render
    from lstmgen.verify import error_metrics

    assert loaded.predict is not None, "no framework oracle for this model"
    expected = np.asarray(loaded.predict(x))
    errors = {}
    for target in targets:
        workdir = tmp_path / f"run_{target}"
        workdir.mkdir(exist_ok=True)
        files = render(target, loaded.ir, "net", **options.get(target, {}))
        got = get_runner(target).run(loaded.ir, files, "net", x, workdir)
        _, rel = error_metrics(got, expected)
        errors[target] = float(rel.max())
        assert errors[target] <= tolerance, (target, errors[target])
    return errors


# ------------------------------------------------------------------ generated Python --
# Helpers of the Python target's tests (tests/backends/python/).


def import_generated(files: dict, name: str, folder):
    """Write a generated Python module's files to `folder` and import it in-process (a
    fresh module object each call)."""
    import importlib.util

    for filename, text in files.items():
        (folder / filename).write_text(text, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"{name}_{id(files)}", folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def exec_without_fast_math(text: str) -> dict:
    """Run a generated module's text in-process as if math had no dist, log1p, expm1
    (MicroPython): its namespace."""
    import builtins

    real_import = builtins.__import__

    def no_fast_math(name, globals=None, locals=None, fromlist=(), level=0):
        module = real_import(name, globals, locals, fromlist, level)
        if name == "math" and fromlist and set(fromlist) & {"dist", "log1p", "expm1"}:
            raise ImportError(f"cannot import name {fromlist[0]!r}")
        return module

    namespace = {"__builtins__": {**vars(builtins), "__import__": no_fast_math}, "__name__": "fb"}
    exec(compile(text, "fb.py", "exec"), namespace)
    return namespace


def model_inputs(model, x):
    """x [N, T, D] as the generated predict() takes it: rows of floats, or int token ids."""
    if model.token_vocabulary is not None:
        return [[int(v) for v in seq[:, 0]] for seq in x]
    return [seq.tolist() for seq in x]


def steps_reference(model, x):
    """What Stream.step gives after every timestep of x: the float64 reference of the model
    on each prefix of x, [N, T, O] (the last row of a sequence output)."""
    import numpy as np

    from lstmgen.reference import forward

    prefixes = []
    for t in range(1, x.shape[1] + 1):
        y = forward(model, x[:, :t])
        prefixes.append(y[:, -1] if model.returns_sequences else y)
    return np.stack(prefixes, axis=1)


def literal_calls(text: str, function: str) -> dict:
    """{NAME: the literal parts} of every `NAME = function(...)` in a generated module:
    for `_matrix`/`_table`, [(width, [literal texts] or None) per part]; for `_vector`,
    its literal texts."""
    import ast

    found = {}
    for node in ast.parse(text).body:
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Call)
            and getattr(node.value.func, "id", "") == function
        ):
            args = node.value.args
            if function == "_vector":
                found[node.targets[0].id] = " ".join(ast.literal_eval(args[0])).split()
            else:
                found[node.targets[0].id] = [
                    (width, None if lines is None else " ".join(lines).split())
                    for width, lines in ast.literal_eval(args[1])
                ]
    return found


def module_level_names(text: str) -> list:
    """The names a generated module binds at its top level (assignments and functions)."""
    import ast

    tree = ast.parse(text)
    bound = [
        t.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name)
    ]
    return bound + [node.name for node in tree.body if isinstance(node, ast.FunctionDef)]


def imported_modules(text: str) -> set:
    """The top-level modules a generated module imports (relative imports fail)."""
    import ast

    imported = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0
            imported.add(node.module.split(".")[0])
    return imported


def other_cpythons() -> list:
    """Every other CPython >= 3.8 installed here (pyenv), oldest first."""
    import glob
    import sys

    def version(python: str) -> tuple:
        name = Path(python).name.replace("python", "")
        return tuple(int(p) for p in name.split(".")[:2])

    pattern = str(Path.home() / ".pyenv" / "versions" / "3.*" / "bin" / "python3.*[0-9]")
    found = [
        p
        for p in set(glob.glob(pattern))
        if version(p) >= (3, 8) and version(p) != sys.version_info[:2]
    ]
    return sorted(found, key=version)


def targets_match_oracles(
    cases: dict, tmp_path, targets=("c", "python", "matlab"), tolerance: float = 1e-5
) -> dict:
    """For each case `label: (ir, x, expected)`, `expected` being the framework's own output
    on x (its oracle), the generated code of every target run on x (the Python target in
    one subprocess, the MATLAB target in one Octave) and compared with `expected`. Fails
    when a target refuses a model. Returns target -> label -> max relative error."""
    import numpy as np

    from lstmgen.errors import LstmgenError
    from lstmgen.targets import get_runner, render
    from lstmgen.verify import error_metrics

    errors: dict = {}
    for target in targets:
        workdir = tmp_path / f"targets_{target}"
        files = {label: render(target, ir, "net") for label, (ir, _, _) in cases.items()}
        if target == "python":
            from lstmgen.targets.python import runner as py_runner

            batch = [py_runner.Job(ir, files[k], "net", x) for k, (ir, x, _) in cases.items()]
            outputs = py_runner.run_batch(batch, workdir).outputs
        elif target == "matlab":
            from lstmgen.targets.matlab import runner as m_runner

            try:
                m_runner.octave_path()
            except LstmgenError:
                missing("tool 'octave-cli'")
            jobs = [
                m_runner.Job(ir, files[label], "net", x, workdir / f"job{k}")
                for k, (label, (ir, x, _)) in enumerate(cases.items())
            ]
            outputs = [r.check(j).predict for r, j in zip(m_runner.run_batch(jobs), jobs)]
        else:
            runner = get_runner(target)
            outputs = [
                runner.run(ir, files[label], "net", x, workdir / f"job{k}")
                for k, (label, (ir, x, _)) in enumerate(cases.items())
            ]
        errors[target] = {}
        for (label, (_, _, expected)), got in zip(cases.items(), outputs):
            _, rel = error_metrics(np.asarray(got), np.asarray(expected))
            errors[target][label] = float(rel.max())
            assert errors[target][label] <= tolerance, (target, label, errors[target][label])
    return errors


# ---- new IR parts whose target code lands from parallel branches (issues 12 and 14) --
#: Layer kinds and activations the targets implement in parallel branches; until those
#: merge, a target may refuse (or fail on) a model that uses one.
PENDING_IN_TARGETS = frozenset(
    {"time_slice", "embedding", "batch_norm", "global_pool", "repeat_vector", "log_softmax"}
)


def pending_parts(ir) -> set:
    """The parts of PENDING_IN_TARGETS that `ir` uses (layer kinds and activations)."""
    used = set(ir.kinds())
    for layer in ir.layers:
        used.add(getattr(layer, "activation", None))
    return used & PENDING_IN_TARGETS


def oracle_on_every_target(
    loaded, x, tmp_path, targets=("c", "python", "matlab"), tolerance: float = 1e-5
) -> dict:
    """The float64 reference and then every target against the oracle `loaded.predict(x)`
    (as `targets_match_oracle`); returns the max relative error per target. A target that
    cannot build or run a model using a part of PENDING_IN_TARGETS makes the test xfail,
    naming the targets and parts it waits for; a wrong result always fails."""
    import numpy as np

    from lstmgen.reference import forward
    from lstmgen.verify import error_metrics

    expected = np.asarray(loaded.predict(x))
    _, rel = error_metrics(forward(loaded.ir, x), expected)
    errors = {"reference": float(rel.max())}
    assert errors["reference"] <= tolerance, errors
    pending = pending_parts(loaded.ir)
    waiting = {}
    for target in targets:
        try:
            errors.update(
                targets_match_oracle(loaded, x, tmp_path, targets=(target,), tolerance=tolerance)
            )
        except AssertionError:
            raise
        except Exception as exc:
            if not pending:
                raise
            waiting[target] = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
    if waiting:
        pytest.xfail(f"waits on target branches for {sorted(pending)}: {waiting}")
    return errors


# ---- PyTorch models shared by the front ends' tests ----------------------------------
def torch_bilstm_last_step(torch, input_size=4, hidden=5, outputs=3, num_layers=1, seed=0):
    """The most common PyTorch BiLSTM classifier, with random weights (biases included):

        out, _ = self.lstm(x)            # nn.LSTM(batch_first=True, bidirectional=True)
        return self.fc(out[:, -1])       # nn.Linear(2 * hidden, outputs)

    `out[:, -1]` holds the forward direction after T steps and the backward direction
    after ONE step (it has read only the last timestep). Input [B, T, input_size]; export
    it to ONNX as it is (`torch.onnx.export(model, (x,), path)`)."""
    nn = torch.nn

    class BiLSTMLastStep(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(
                input_size, hidden, num_layers=num_layers, batch_first=True, bidirectional=True
            )
            self.fc = nn.Linear(2 * hidden, outputs)

        def forward(self, x):
            out, _ = self.lstm(x)
            return self.fc(out[:, -1])

    torch.manual_seed(seed)
    model = BiLSTMLastStep()
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-0.5, 0.5)
    return model.eval()


# ---- hostile input: the CLI under a memory cap and a deadline ---------------------------
_CONTAINED_DRIVER = r"""
import json, os, resource, signal, sys, time
request = json.loads(sys.stdin.read())
for module in request["preload"]:
    __import__(module)
from lstmgen.cli import main
outcomes = []
for case in request["cases"]:
    sys.stdout.flush()
    sys.stderr.flush()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            resource.setrlimit(resource.RLIMIT_AS, (request["memory"], request["memory"]))
            os.dup2(os.open(case["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
            code = main(case["argv"])
        except BaseException:  # a traceback in the child is a finding: exit 99
            import traceback
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code if isinstance(code, int) else 98)
    timed_out = False
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() - start > request["seconds"]:
            os.kill(pid, signal.SIGKILL)
            timed_out = True
        time.sleep(0.02)
    outcomes.append({
        "exit": os.waitstatus_to_exitcode(status),
        "seconds": round(time.monotonic() - start, 2),
        "peak_mb": round(usage.ru_maxrss / 1024),
        "timed_out": timed_out,
    })
print(json.dumps(outcomes))
"""


def run_cli_contained(
    cases: dict, folder, preload=(), memory: int = 3 * 2**30, seconds: float = 120.0
) -> dict:
    """Run `lstmgen` with each case's argv ({name: argv}) in its own process, forked from a
    driver that imported `preload` once, under RLIMIT_AS = `memory` and a wall-clock
    deadline of `seconds`. Returns {name: {"exit", "stderr" (text), "seconds", "peak_mb"
    (the child's peak resident memory, the preloaded modules included), "timed_out"}}."""
    import json
    import subprocess
    import sys

    folder = Path(folder)
    request = {
        "preload": list(preload),
        "memory": memory,
        "seconds": seconds,
        "cases": [
            {"argv": [str(a) for a in argv], "stderr": str(folder / f"{name}.stderr")}
            for name, argv in cases.items()
        ],
    }
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-c", _CONTAINED_DRIVER],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=600 + seconds * len(cases),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    outcomes = json.loads(done.stdout.strip().splitlines()[-1])
    results = {}
    for name, outcome in zip(cases, outcomes):
        outcome["stderr"] = (folder / f"{name}.stderr").read_text(errors="replace")
        results[name] = outcome
    return results


def assert_one_error_line(outcome: dict, *expected: str) -> str:
    """The outcome of `run_cli_contained` is exit code 2 with exactly one stderr line
    `lstmgen: error: ...` containing every `expected` text, in time; returns the line."""
    lines = outcome["stderr"].strip().splitlines()
    assert not outcome["timed_out"], outcome
    assert outcome["exit"] == 2, outcome
    assert len(lines) == 1 and lines[0].startswith("lstmgen: error: "), outcome
    for text in expected:
        assert text in lines[0], (text, lines[0])
    return lines[0]
