"""Test helpers: optional tools skip on a user's machine but fail in CI (CI=true)."""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path

import pytest

from lstmgen.targets.c.runner import C_WARNINGS

ROOT = Path(__file__).resolve().parent.parent  # the repository
FIXTURES = Path(__file__).resolve().parent / "fixtures"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
EXHAUSTIVE = os.environ.get("LSTMGEN_EXHAUSTIVE", "") not in ("", "0")


def missing(what: str, module_level: bool = False) -> None:
    """Skip (the whole module with `module_level`), or fail in CI where every tool must be
    present."""
    if IN_CI:
        pytest.fail(f"{what} is required in CI but missing", pytrace=False)
    pytest.skip(f"{what} not installed", allow_module_level=module_level)


def require_module(name: str, module_level: bool = False):
    try:
        return importlib.import_module(name)
    except ImportError:
        missing(f"Python package '{name}'", module_level)


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
#: The targets the front ends' oracle tests run by default (every target in TARGETS).
ORACLE_TARGETS = ("c", "python", "matlab", "numpy")
REAL_MODELS = ROOT.parent / "shared" / "real_models"


def real_model(relative: str) -> Path:
    """A file of ../shared/real_models (INDEX.md there): skips where the folder is absent,
    fails in CI, where it must be present. Never copy these files into the repository."""
    path = REAL_MODELS / relative
    if not path.exists():
        missing(f"third-party model file {path}")
    return path


def targets_match_oracle(
    loaded, x, tmp_path, targets=ORACLE_TARGETS, tolerance: float = 1e-5, **options
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


def python_jobs(model, files: dict, name: str, x) -> list:
    """The runner's jobs for one generated module: predict on x, and Stream.step over the
    same sequences when the model streams."""
    from lstmgen.targets.python import runner

    jobs = [runner.Job(model, files, name, x)]
    if model.streamable:
        jobs.append(runner.Job(model, files, name, x, steps=True))
    return jobs


def run_under_both(jobs: list, tmp_path_factory, label: str) -> dict:
    """{"cpython": result, "micropython": result} of the runner's batch (MicroPython only
    where `micropython` is on PATH: the tests that read it call require_tool first)."""
    import shutil

    from lstmgen.targets.python import runner

    runs = {"cpython": runner.run_batch(jobs, tmp_path_factory.mktemp(f"{label}_cp"))}
    if shutil.which("micropython"):
        runs["micropython"] = runner.run_batch(
            jobs, tmp_path_factory.mktemp(f"{label}_mp"), runner.micropython_command()
        )
    return runs


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
    cases: dict, tmp_path, targets=ORACLE_TARGETS, tolerance: float = 1e-5
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


# ---- one model through the reference and every target, against its oracle -----------
def oracle_on_every_target(
    loaded, x, tmp_path, targets=ORACLE_TARGETS, tolerance: float = 1e-5
) -> dict:
    """The float64 reference and then every target against the oracle `loaded.predict(x)`
    (as `targets_match_oracle`); returns the max relative error per target."""
    import numpy as np

    from lstmgen.reference import forward
    from lstmgen.verify import error_metrics

    expected = np.asarray(loaded.predict(x))
    _, rel = error_metrics(forward(loaded.ir, x), expected)
    errors = {"reference": float(rel.max())}
    assert errors["reference"] <= tolerance, errors
    errors.update(
        targets_match_oracle(loaded, x, tmp_path, targets=tuple(targets), tolerance=tolerance)
    )
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


# ---- Keras files: IR comparison and the Keras 1 transcription ---------------------------
def ir_differences(a, b, where: str = "model") -> list[str]:
    """Where two IR models (or layers) differ: structure, every setting, and every array
    bit for bit (its provenance text `source` aside). Empty when they are the same."""
    import dataclasses

    import numpy as np

    if type(a) is not type(b):
        return [f"{where}: {type(a).__name__} vs {type(b).__name__}"]
    found = []
    for field in dataclasses.fields(a):
        if field.name == "source":
            continue
        x, y = getattr(a, field.name), getattr(b, field.name)
        here = f"{where}.{field.name}"
        if isinstance(x, list) and x and dataclasses.is_dataclass(x[0]):
            if len(x) != len(y):
                found.append(f"{here}: {len(x)} vs {len(y)} entries")
            for k, (p, q) in enumerate(zip(x, y)):
                found += ir_differences(p, q, f"{here}[{k}]")
        elif dataclasses.is_dataclass(x):
            found += ir_differences(x, y, here)
        elif isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            same = (
                isinstance(x, np.ndarray)
                and isinstance(y, np.ndarray)
                and x.dtype == y.dtype
                and np.array_equal(x, y, equal_nan=True)
            )
            if not same:
                found.append(f"{here}: arrays differ")
        elif x != y:
            found.append(f"{here}: {x!r} vs {y!r}")
    return found


def keras1_arrays(group) -> dict:
    """{layer name: {key: array}} of a Keras 1 weights group read with h5py (independent
    of lstmgen): key W_i, U_c, b, ... (Keras 1's per-gate names), prefixed forward_ /
    backward_ inside a Bidirectional."""
    import re

    import numpy as np

    def names(obj, attr):
        values = obj.attrs[attr]
        return [v.decode() if isinstance(v, bytes) else str(v) for v in values]

    found = {}
    for layer in names(group, "layer_names"):
        arrays = {}
        for weight in names(group[layer], "weight_names"):
            match = re.match(
                r"^(forward_|backward_)?.*?_?([WUb](?:_[a-z])?)$", weight.split(":")[0]
            )
            assert match, weight
            arrays[(match.group(1) or "") + match.group(2)] = np.asarray(group[layer][weight])
        found[layer] = arrays
    return found


def keras1_in_tf_keras(tf_keras, layers: list, arrays: dict, timesteps=None):
    """A tf_keras model computing what a Keras 1 Sequential computes: each Keras 1 layer
    config (`layers`, the model_config's list) re-declared in Keras 2 terms and its arrays
    (`keras1_arrays`) re-stacked into Keras 2's layout, from Keras 1's own definitions:
    LSTM gates stored i, c, f, o as W_x (D, H), U_x (H, H), b_x (H) and fused i, f, c, o;
    GRU z, r, h with the reset gate applied before the recurrent product (reset_after=False);
    `inner_activation` hard_sigmoid = 0.2x + 0.5 (tf_keras's own). Timesteps stay free."""
    import numpy as np

    L = tf_keras.layers
    gates = {"LSTM": "ifco", "GRU": "zrh"}

    def recurrent(config):
        kwargs = dict(
            units=config["output_dim"],
            activation=config.get("activation", "tanh"),
            return_sequences=config.get("return_sequences", False),
            go_backwards=config.get("go_backwards", False),
        )
        return kwargs

    def stacked(kind, found, prefix=""):
        if f"{prefix}W" in found or kind == "SimpleRNN":
            return [found[f"{prefix}{k}"] for k in "WUb"]
        return [
            np.concatenate([found[f"{prefix}{k}_{g}"] for g in gates[kind]], axis=-1) for k in "WUb"
        ]

    def make(class_name, config):
        if class_name == "LSTM":
            return L.LSTM(**recurrent(config), recurrent_activation=config["inner_activation"])
        if class_name == "GRU":
            return L.GRU(
                **recurrent(config),
                recurrent_activation=config["inner_activation"],
                reset_after=False,
            )
        if class_name == "SimpleRNN":
            return L.SimpleRNN(**recurrent(config))
        if class_name == "Dense":
            return L.Dense(
                config["output_dim"],
                activation=config.get("activation", "linear"),
                use_bias=config.get("bias", True),
            )
        raise AssertionError(f"no transcription for Keras 1 {class_name}")

    first = layers[0]["config"]
    shape = first.get("batch_input_shape")
    ids = len(shape) == 2
    model_layers = [
        tf_keras.Input(
            (timesteps,) if ids else (timesteps, shape[2]), dtype="int32" if ids else "float32"
        )
    ]
    weights = []
    for entry in layers:
        kind, config = entry["class_name"], entry["config"]
        found = arrays.get(config["name"], {})
        if kind == "Dropout":
            continue
        if kind == "Activation":
            model_layers.append(L.Activation(config["activation"]))
        elif kind == "Embedding":
            model_layers.append(
                L.Embedding(
                    config["input_dim"], config["output_dim"], mask_zero=config["mask_zero"]
                )
            )
            weights.append((len(model_layers) - 1, [found["W"]]))
        elif kind == "Bidirectional":
            inner = config["layer"]
            layer = make(inner["class_name"], inner["config"])
            model_layers.append(L.Bidirectional(layer, merge_mode=config["merge_mode"]))
            both = stacked(inner["class_name"], found, "forward_")
            both += stacked(inner["class_name"], found, "backward_")
            weights.append((len(model_layers) - 1, both))
        elif kind == "TimeDistributed":
            inner = config["layer"]
            model_layers.append(L.TimeDistributed(make(inner["class_name"], inner["config"])))
            weights.append((len(model_layers) - 1, [found[k] for k in "Wb" if k in found]))
        else:
            model_layers.append(make(kind, config))
            keys = "Wb" if kind == "Dense" else None
            values = [found[k] for k in keys if k in found] if keys else stacked(kind, found)
            weights.append((len(model_layers) - 1, values))
    model = tf_keras.Sequential(model_layers)
    for index, values in weights:
        model.layers[index - 1].set_weights(values)
    return model


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


# ---- the MATLAB target (tests/backends/matlab): the rules every generated .m file keeps ----

MATLAB_PRECISIONS = ("single", "double")
#: The bound on the max relative error of generated MATLAB against the float64 reference
#: (single: the bound against the framework too; double: float64 round-off, measured ~1e-16).
MATLAB_TOLERANCE = {"single": 1e-5, "double": 1e-10}
#: Functions the generated code may call: MATLAB built-ins that MATLAB Coder supports.
MATLAB_CALLS = frozenset(
    {"single", "double", "zeros", "assert", "size", "exp", "abs", "tanh", "max", "min"}
    | {"log1p", "expm1", "bsxfun", "sum", "isempty"}
)
#: ... and those that Masking, the normalizations, Flatten, Conv1D, pooling and the other
#: shaping layers add (error: a token id out of range; log: log_softmax).
MATLAB_SHAPING_CALLS = frozenset(
    {"false", "all", "sqrt", "reshape", "floor", "ceil", "repmat", "error", "log"}
)
_MATLAB_FORBIDDEN = {
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
_MATLAB_LITERAL = r"^w\.(\w+) = (?:single\(\[|double\(single\(\[)\n(.*?)\n    \]\)\)?;$"


def matlab_code_lines(text: str) -> list[str]:
    """The code of a .m file: comments and string literals removed (no transposes used)."""
    import re

    out = []
    for line in text.splitlines():
        line = re.sub(r"'[^'\n]*'", "''", line)
        out.append(line.split("%", 1)[0].rstrip())
    return out


def check_matlab_code(
    where: str, filename: str, text: str, precision: str, extra_calls: frozenset = frozenset()
) -> None:
    """A generated .m file keeps the code generation rules: one function with its help block
    first and %#codegen, no forbidden construct, persistent state only in NAME_step, only
    the computing class, and only calls of variables, local functions, NAME_weights and the
    allowed built-ins (MATLAB_CALLS and `extra_calls`)."""
    import re

    lines = text.splitlines()
    function = filename[:-2]
    output = "w" if function.endswith("_weights") else "y"
    assert lines[0].startswith(f"function {output} = {function}("), where
    assert "%#codegen" in lines, where
    assert lines[1].startswith(f"%{function.upper()}  "), where  # the help block first
    assert text.isascii(), where
    joined = "\n".join(matlab_code_lines(text))
    for what, pattern in _MATLAB_FORBIDDEN.items():
        hit = re.search(pattern, joined)
        assert hit is None, f"{where}: {what}: {hit and hit.group(0)!r}"
    assert ("persistent" in joined) == filename.endswith("_step.m"), where
    assert re.search(r"\b(single|double)\b", joined)
    other = "double" if precision == "single" else "single"
    assert f"'{other}'" not in text, where  # no zeros(..., 'other class')
    assigned = set(re.findall(r"^\s*(\w+)\s*(?:\([^=]*\))?\s*=", joined, re.M))
    local = set(re.findall(r"^function \w+ = (\w+)\(", joined, re.M))
    weights = {function.rsplit("_", 1)[0] + "_weights"}
    called = set(re.findall(r"(?<![\w.])([A-Za-z]\w*)\s*\(", joined)) - {"function"}
    unknown = called - assigned - local - weights - {"x", "reset"} - MATLAB_CALLS - extra_calls
    assert not unknown, f"{where}: calls {sorted(unknown)}"


def matlab_literals(text: str) -> dict:
    """{ident: (assignment text, values as Python parses them)} of every weight literal,
    the fields `w.IDENT = single([...]);` of NAME_weights.m."""
    import re

    import numpy as np

    found = {}
    for match in re.finditer(_MATLAB_LITERAL, text, re.M | re.S):
        body = "\n".join(line.split("%", 1)[0] for line in match.group(2).splitlines())
        tokens = [t for t in re.split(r"[,;\s]+|\.\.\.", body) if t]
        found[match.group(1)] = (match.group(0), np.array([float(t) for t in tokens]))
    return found


def _matlab_part_identifiers(outer: list, bidirectional: list) -> list:
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


def matlab_expected_arrays(model) -> dict:
    """{field of NAME_weights: array} of every weight literal the model needs, from the IR
    (the parts of a Bidirectional layer named after it, IDENT_fw / IDENT_bw)."""
    import numpy as np

    from lstmgen.ir import (
        GRU,
        LSTM,
        BatchNorm,
        Bidirectional,
        Conv1D,
        Dense,
        Embedding,
        LayerNorm,
        Normalize,
        SimpleRNN,
    )
    from lstmgen.naming import unique_identifiers

    outer = unique_identifiers([l.name for l in model.layers])
    bidirectional = [k for k, l in enumerate(model.layers) if isinstance(l, Bidirectional)]
    inner = iter(_matlab_part_identifiers(outer, bidirectional))
    expected = {}
    for layer, ident in zip(model.layers, outer):
        named = [(layer, ident)]
        if isinstance(layer, Bidirectional):
            named = [(part, next(inner)) for part in (layer.forward, layer.backward)]
        for part, part_ident in named:
            arrays: dict = {}
            if isinstance(part, (LSTM, GRU, SimpleRNN)):
                arrays = {"W": part.input_weights, "U": part.recurrent_weights, "b": part.bias}
            if isinstance(part, GRU):
                arrays["rb"] = part.recurrent_bias
            if isinstance(part, LSTM):
                arrays["P"] = None if part.peephole is None else part.peephole.T
                arrays["Pr"] = part.projection
                if part.initial_h is not None or part.initial_c is not None:
                    zeros = np.zeros  # a missing half of the initial state is zero
                    h0, c0 = part.initial_h, part.initial_c
                    arrays["h0"] = zeros(part.output_size, np.float32) if h0 is None else h0
                    arrays["c0"] = zeros(part.units, np.float32) if c0 is None else c0
            if isinstance(part, Dense):
                arrays = {"W": part.weights, "b": part.bias}
            if isinstance(part, Conv1D):  # F x K*D: one block of D columns per tap
                f, k, d = part.weights.shape
                arrays = {"W": part.weights.reshape(f, k * d), "b": part.bias}
            if isinstance(part, Normalize):
                arrays = {"mean": part.mean, "std": part.std}
            if isinstance(part, LayerNorm):
                arrays = {"gamma": part.gamma, "beta": part.beta}
            if isinstance(part, BatchNorm):
                arrays = {"mean": part.mean, "variance": part.variance}
                arrays.update(gamma=part.gamma, beta=part.beta)
            if isinstance(part, Embedding):  # E x vocabulary: one column per token id
                arrays = {"W": part.weights.T}
            expected.update({f"{k}_{part_ident}": a for k, a in arrays.items() if a is not None})
    return expected


def check_matlab_literals(where: str, model, files: dict) -> None:
    """Every weight is a field of NAME_weights.m (and nothing else holds literals), under
    its documented identifier, and parses back in Python to the model's exact float32."""
    import numpy as np

    expected = matlab_expected_arrays(model)
    for filename, text in files.items():
        found = matlab_literals(text)
        holds = filename.endswith("_weights.m")
        assert set(found) == (set(expected) if holds else set()), (where, filename)
        for ident, (_, values) in found.items():
            got = values.astype(np.float32)  # double -> single, as single([...])
            want = np.ascontiguousarray(expected[ident], np.float32).ravel()
            assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), (where, ident)


def check_matlab_steps(job, result, tolerance: float, prefixes=None) -> None:
    """NAME_step from a reset gives, after t steps, the model's output on the first t
    timesteps (the float64 reference), for every t in `prefixes` (default: all); and its
    last output (or all of them) equals NAME_predict's."""
    from lstmgen.reference import forward
    from lstmgen.verify import error_metrics

    model, x = job.model, job.x
    per_step = model.returns_sequences and model.output_timesteps(2) == 2
    if result.predict is not None:
        got = result.steps if per_step else result.steps[:, -1]
        want = result.predict if per_step else result.predict.reshape(got.shape)
        _, rel = error_metrics(got, want)
        assert rel.max() <= tolerance, (model.name, "steps vs predict", float(rel.max()))
    for t in prefixes or range(1, x.shape[1] + 1):
        ref = forward(model, x[:, :t])
        got = result.steps[:, :t] if per_step else result.steps[:, t - 1].reshape(ref.shape)
        _, rel = error_metrics(got, ref)
        assert rel.max() <= tolerance, (model.name, t, float(rel.max()))


# ------------------------------------------------------------------------ generated C --
# Helpers of the C target's tests (tests/backends/c/, tests/robustness/test_c_robustness.py).

# C_WARNINGS (lstmgen.targets.c.runner): the warning set of every C build in the tests, the
# ARM builds' (-std=c99 included); -Werror makes any warning a failure.
CXX_WARNINGS = ["-Wall", "-Wextra", "-pedantic", "-Werror", "-Wshadow"]
#: compiler -> its flags: C99 with gcc and clang, C++11 with g++ and clang++
C_COMPILERS = {
    "gcc": C_WARNINGS,
    "clang": C_WARNINGS,
    "g++": ["-x", "c++", "-std=c++11", *CXX_WARNINGS],
    "clang++": ["-x", "c++", "-std=c++11", *CXX_WARNINGS],
}
#: ASan + UBSan (clang), every finding fatal
SANITIZE = [
    "-std=c99",
    "-g",
    "-O1",
    "-fno-omit-frame-pointer",
    "-fsanitize=address,undefined,float-cast-overflow",
    "-fno-sanitize-recover=all",
]
#: a stack frame's saved registers, locals and alignment on top of the estimated scratch
FRAME_SLACK = 256


def write_files(files: dict, folder) -> Path:
    """Write rendered files into `folder` (created); return it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def run_c_program(folder, files: dict, main: str, *flags: str) -> str:
    """Write the generated `files` and a C program `main` (which includes them) to
    `folder`, build it with gcc -O2 and `flags`, run it; its standard output."""
    import subprocess

    folder = write_files(files, folder)
    (folder / "main.c").write_text(main)
    exe = folder / "main"
    command = [require_tool("gcc"), "-O2", *flags, "-I", str(folder), str(folder / "main.c")]
    subprocess.run([*command, "-lm", "-o", str(exe)], check=True)
    return subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout


def compile_c(compiler: str, source, *flags: str) -> None:
    """Compile `source` (-c) with `compiler` and its C_COMPILERS flags: no error, no
    warning."""
    import subprocess

    exe = require_tool(compiler)
    source = Path(source)
    result = subprocess.run(
        [
            exe,
            *C_COMPILERS[compiler],
            *flags,
            "-I",
            str(source.parent),
            "-c",
            str(source),
            "-o",
            str(source.with_suffix(f".{compiler}.o")),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and not result.stderr, (compiler, flags, result.stderr)


def require_arm() -> None:
    """The ARM toolchain (arm-none-eabi-gcc, picolibc) and qemu-system-arm."""
    from lstmgen.targets.c import runner

    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    require_tool("timeout")
    if not Path(runner.PICOLIBC_SPECS).exists():
        missing("picolibc-arm-none-eabi")


def qemu_outputs(files, name, workdir, core, model, mode):
    """Build and run the self-test on `core`; (returncode, stdout, outputs as floats)."""
    import re

    import numpy as np

    from lstmgen.targets.c import runner
    from lstmgen.targets.c.quant import from_fixed

    elf = runner.build_selftest_elf(files, name, workdir, core)
    result = runner.run_qemu(elf, core)
    got, _, _ = runner.parse_selftest(result.stdout)
    if mode == "fixed16":
        header = files[f"{name}.h"]
        frac = int(re.search(rf"#define {name.upper()}_OUTPUT_FRAC_BITS (\d+)", header).group(1))
        got = from_fixed(got, frac).astype(np.float64)
    return result.returncode, result.stdout, got


class IRMaker:
    """Hand-built IR layers with seeded random weights (no framework needed)."""

    def __init__(self, seed: int) -> None:
        import numpy as np

        self.rng = np.random.default_rng(seed)

    def u(self, *shape, scale=0.6):
        import numpy as np

        return self.rng.uniform(-scale, scale, shape).astype(np.float32)

    def lstm(self, name, d, h, p=None, bias=True, **kw):
        from lstmgen.ir import LSTM

        feats = kw.pop("features", ())
        out = p or h
        return LSTM(
            name,
            self.u(4 * h, d),
            self.u(4 * h, out),
            self.u(4 * h) if bias else None,
            peephole=self.u(3, h) if "peephole" in feats else None,
            clip=0.75 if "clip" in feats else None,
            input_forget="input_forget" in feats,
            initial_h=self.u(out) if "initial_h" in feats else None,
            initial_c=self.u(h, scale=1.5) if "initial_c" in feats else None,
            projection=self.u(p, h) if p else None,
            **kw,
        )

    def gru(self, name, d, h, reset_after=True, bias=True, recurrent_bias=True, **kw):
        from lstmgen.ir import GRU

        return GRU(
            name,
            self.u(3 * h, d),
            self.u(3 * h, h),
            self.u(3 * h) if bias else None,
            recurrent_bias=self.u(3 * h) if (reset_after and recurrent_bias) else None,
            reset_after=reset_after,
            **kw,
        )

    def rnn(self, name, d, h, bias=True, **kw):
        from lstmgen.ir import SimpleRNN

        return SimpleRNN(name, self.u(h, d), self.u(h, h), self.u(h) if bias else None, **kw)

    def bi(self, name, kind, d, h, merge="concat", sequences=False, **kw):
        from lstmgen.ir import Bidirectional

        make = getattr(self, kind)
        return Bidirectional(
            name,
            make(f"{name}_f", d, h, return_sequences=sequences, **kw),
            make(f"{name}_b", d, h, return_sequences=sequences, go_backwards=True, **kw),
            merge_mode=merge,
        )

    def dense(self, name, i, o, activation="linear", bias=True):
        from lstmgen.ir import Dense

        return Dense(name, self.u(o, i), self.u(o) if bias else None, activation=activation)

    def batch_norm(self, name, n, center=True, scale=True, epsilon=1e-3):
        import numpy as np

        from lstmgen.ir import BatchNorm

        variance = self.rng.uniform(0.3, 2.0, n).astype(np.float32)
        return BatchNorm(
            name,
            self.u(n, scale=1.0),
            variance,
            self.u(n, scale=1.5) if scale else None,
            self.u(n) if center else None,
            epsilon,
        )

    def embedding(self, name, vocabulary, size, mask_zero=False):
        from lstmgen.ir import Embedding

        return Embedding(name, self.u(vocabulary, size, scale=1.0), mask_zero=mask_zero)


PREDICT_DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include "net.h"
/* driver X N T: the N sequences of T steps in the binary float file X through predict (with
 * IDS, token ids: the floats cast), one output line per sequence, "refused" where predict
 * returns -1 (COUNTS: the model changes the number of timesteps). ONE_STREAM: then all the
 * sequences one after another through net_step from one reset, and the last output. */
int main(int argc, char **argv)
{
    int n = atoi(argv[2]), t_len = atoi(argv[3]), i, k, t_out = t_len;
    size_t per_seq = (size_t)t_len * NET_INPUT_SIZE, out_seq, j;
    float *x, *y;
#ifdef IDS
    int32_t *ids;
#endif
    FILE *f;
#ifdef COUNTS
    t_out = net_output_timesteps(t_len);
#endif
    out_seq = (size_t)(NET_RETURNS_SEQUENCES ? t_out : 1) * NET_OUTPUT_SIZE + 1;
    x = (float *)malloc((size_t)n * per_seq * sizeof(float));
    y = (float *)malloc(out_seq * sizeof(float));
    f = fopen(argv[1], "rb");
    if (!x || !y || !f || fread(x, sizeof(float), (size_t)n * per_seq, f) != (size_t)n * per_seq)
        return 3;
    fclose(f);
#ifdef IDS
    ids = (int32_t *)malloc((size_t)n * per_seq * sizeof(int32_t));
    if (!ids) return 3;
    for (j = 0; j < (size_t)n * per_seq; ++j) ids[j] = (int32_t)x[j];
#define INPUT ids
#else
#define INPUT x
    (void)j;
#endif
    for (i = 0; i < n; ++i) {
        if (net_predict(INPUT + (size_t)i * per_seq, t_len, y) != 0) {
            printf("refused\n");
            continue;
        }
        for (k = 0; k + 1 < (int)out_seq; ++k) printf("%.9g ", (double)y[k]);
        printf("\n");
    }
#ifdef ONE_STREAM
    {
        net_state s;
        int t;
        net_reset(&s);
        for (i = 0; i < n; ++i)
            for (t = 0; t < t_len; ++t)
                net_step(&s, INPUT + (size_t)i * per_seq + (size_t)t * NET_INPUT_SIZE, y);
        for (k = 0; k < NET_OUTPUT_SIZE; ++k) printf("%.9g ", (double)y[k]);
        printf("\n");
    }
#endif
#ifdef IDS
    free(ids);
#endif
    free(x);
    free(y);
    return 0;
}
"""

C_DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include "net.h"
int main(int argc, char **argv)
{
    int n = atoi(argv[2]), t_len = atoi(argv[3]), i, t, k;
    size_t per_seq = (size_t)t_len * NET_INPUT_SIZE;
    size_t out_seq = (size_t)(NET_RETURNS_SEQUENCES ? t_len : 1) * NET_OUTPUT_SIZE;
    float *x = (float *)malloc((size_t)n * per_seq * sizeof(float));
    float *y = (float *)malloc(out_seq * sizeof(float));
    FILE *f = fopen(argv[1], "rb");
    if (!x || !y || !f || fread(x, sizeof(float), (size_t)n * per_seq, f) != (size_t)n * per_seq)
        return 3;
    fclose(f);
    for (i = 0; i < n; ++i) {
        if (net_predict(x + (size_t)i * per_seq, t_len, y) != 0) return 4;
        for (k = 0; k < (int)out_seq; ++k) printf("%.9g ", (double)y[k]);
        printf("\n");
    }
#ifdef STREAMABLE
    {   /* two sequences stepped in lockstep through two states: no shared state */
        net_state a, b;
        float ya[NET_OUTPUT_SIZE], yb[NET_OUTPUT_SIZE];
        net_reset(&a);
        net_reset(&b);
        for (t = 0; t < t_len; ++t) {
            net_step(&a, x + (size_t)t * NET_INPUT_SIZE, ya);
            net_step(&b, x + per_seq + (size_t)t * NET_INPUT_SIZE, yb);
        }
        for (k = 0; k < NET_OUTPUT_SIZE; ++k) printf("%.9g ", (double)ya[k]);
        printf("\n");
        for (k = 0; k < NET_OUTPUT_SIZE; ++k) printf("%.9g ", (double)yb[k]);
        printf("\n");
    }
#endif
    (void)t;
    free(x);
    free(y);
    return 0;
}
"""


def extreme_inputs(input_size: int, t_len: int = 7):
    """Six sequences: ordinary, huge, denormal, a NaN, infinities, the most negative float."""
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, t_len, input_size)).astype(np.float32)
    x[1] *= np.float32(1e30)
    x[2] = np.float32(1e-40)
    x[3, 2] = np.nan
    x[4, ::2] = np.inf
    x[5] = -np.float32(3.4e38)
    return x


def build_c_driver(folder, model, compiler: list, driver: str = "", defines=()) -> Path:
    """NAME.c of `model` with a driver (default C_DRIVER: predict on every sequence of a
    binary file, two interleaved step streams when streamable) built by the `compiler`
    command; the driver sees STREAMABLE when the model streams, and each of `defines`."""
    import subprocess

    from lstmgen.targets import c as c_target

    folder = write_files(c_target.render(model, "net"), folder)
    (folder / "driver.c").write_text(driver or C_DRIVER)
    exe = folder / "driver"
    flags = ["-DSTREAMABLE"] if model.streamable else []
    flags += [f"-D{name}" for name in defines]
    subprocess.run(
        [
            *compiler,
            *flags,
            "-I",
            str(folder),
            str(folder / "driver.c"),
            str(folder / "net.c"),
            "-lm",
            "-o",
            str(exe),
        ],
        check=True,
    )
    return exe


def run_c_driver(exe, x, folder, prefix=()) -> list:
    """The driver's output rows for the sequences x (asserting a clean run); None for a
    line "refused" (the driver's word for a predict that returned -1)."""
    import subprocess

    import numpy as np

    folder = Path(folder)
    np.asarray(x, np.float32).tofile(folder / "x.bin")
    result = subprocess.run(
        [*prefix, str(exe), str(folder / "x.bin"), str(x.shape[0]), str(x.shape[1])],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "runtime error" not in result.stderr and "ERROR" not in result.stderr, result.stderr
    return [
        None if line == "refused" else [float(v) for v in line.split()]
        for line in result.stdout.splitlines()
    ]


# ---- libFuzzer under pytest ---------------------------------------------------------------
def fuzzer_rss_limit(growth_mb: int) -> str:
    """libFuzzer's `-rss_limit_mb` for a fuzzer started from this process. libFuzzer reads
    its peak RSS from getrusage, and Linux carries the parent's resident size over fork and
    exec into the child's peak: a fuzzer started late in a full run (pytest holding
    TensorFlow, PyTorch, ...) begins 'at' 2.5 GB. The limit is that inherited peak plus the
    growth a runaway input must not cause."""
    import resource

    inherited_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    return f"-rss_limit_mb={inherited_mb + growth_mb}"
