"""Generated pure Python against Keras, the numpy reference, CPython -I -S and MicroPython.

Interpreter start-up dominates small runs, so every differential test shares a few batch
subprocesses (module-scoped fixtures): one CPython run for the whole grid (predict and
Stream.step), one MicroPython run for the grid.
"""

from __future__ import annotations

import ast
import glob
import importlib.util
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support import require_tool

from lstmgen.errors import LstmgenError
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
from lstmgen.reference import forward
from lstmgen.targets import python as py_backend
from lstmgen.targets.python import runner as py_runner
from lstmgen.verify import error_metrics

TOLERANCE = 1e-5  # max relative error against Keras, |got - ref| / max(|ref|, 1)
REFERENCE_TOLERANCE = 1e-9  # against the float64 reference: both compute in double
MICROPYTHON_SEQUENCES = 3  # MicroPython is ~25x slower: fewer sequences per grid case


def module_name(case) -> str:
    return f"net_{case.spec.id}"


def _macs(model: Model) -> int:
    """Multiply-adds of one timestep."""
    return sum(l.parameter_count() for l in model.layers if isinstance(l, (LSTM, Dense)))


@pytest.fixture(scope="module")
def rendered(grid_cases):
    return [(case, py_backend.render(case.ir, module_name(case))) for case in grid_cases]


@pytest.fixture(scope="module")
def cpython_runs(rendered, tmp_path_factory):
    """predict() and (streamable models) Stream.step() of every grid case, one subprocess."""
    jobs = [py_runner.Job(case.ir, files, module_name(case), case.x) for case, files in rendered]
    streamable = [(case, files) for case, files in rendered if case.ir.streamable]
    jobs += [
        py_runner.Job(case.ir, files, module_name(case), case.x, steps=True)
        for case, files in streamable
    ]
    result = py_runner.run_batch(jobs, tmp_path_factory.mktemp("cpython"))
    n = len(rendered)
    steps = {case.spec.id: y for (case, _), y in zip(streamable, result.outputs[n:])}
    return result.outputs[:n], steps


@pytest.fixture(scope="module")
def micropython():
    require_tool("micropython")
    return py_runner.micropython_command()


@pytest.fixture(scope="module")
def micropython_runs(rendered, tmp_path_factory):
    """The grid under MicroPython: predict on the first sequences of every case, and
    Stream.step on a few streamable ones. One process imports all 26 modules one after
    the other, which fragments the heap more than any one model does, so this run gets a
    larger heap; the default heap is tested on its own below."""
    require_tool("micropython")
    micropython = py_runner.micropython_command(heapsize="16M")
    jobs = [
        py_runner.Job(case.ir, files, module_name(case), case.x[:MICROPYTHON_SEQUENCES])
        for case, files in rendered
    ]
    stepped = [
        (case, files)
        for case, files in rendered
        if case.ir.streamable and _macs(case.ir) * case.spec.timesteps < 200_000
    ]
    jobs += [
        py_runner.Job(case.ir, files, module_name(case), case.x[:2], steps=True)
        for case, files in stepped
    ]
    result = py_runner.run_batch(jobs, tmp_path_factory.mktemp("micropython"), micropython)
    n = len(rendered)
    return result.outputs[:n], [(case, y) for (case, _), y in zip(stepped, result.outputs[n:])]


# ------------------------------------------------------------------ differential --


def test_predict_matches_keras(rendered, cpython_runs):
    outputs, _ = cpython_runs
    worst = []
    for (case, _), got in zip(rendered, outputs):
        _, rel = error_metrics(got, case.expected)
        worst.append((float(rel.max()), case.spec.id))
    failures = [w for w in worst if not w[0] <= TOLERANCE]
    assert not failures, f"max relative error above {TOLERANCE}: {failures}"
    print(f"\nCPython vs Keras: max relative error {max(worst)[0]:.3g} ({max(worst)[1]})")


def test_predict_matches_numpy_reference(rendered, cpython_runs):
    outputs, _ = cpython_runs
    worst = 0.0
    for (case, _), got in zip(rendered, outputs):
        _, rel = error_metrics(got, forward(case.ir, case.x))
        assert rel.max() <= REFERENCE_TOLERANCE, case.spec.id
        worst = max(worst, float(rel.max()))
    print(f"\nCPython vs float64 reference: max relative error {worst:.3g}")


def test_stream_steps_like_keras(rendered, cpython_runs):
    """step() after t inputs equals the model on the first t inputs."""
    _, steps = cpython_runs
    checked = 0
    for case, files in rendered:
        if not case.ir.streamable:
            assert "class Stream" not in files[f"{module_name(case)}.py"]
            continue
        got = steps[case.spec.id]
        if case.ir.returns_sequences:  # Keras gives the output of every step
            _, rel = error_metrics(got, case.expected)
            assert rel.max() <= TOLERANCE, case.spec.id
        else:
            _, rel = error_metrics(got[:, -1], case.expected)
            assert rel.max() <= TOLERANCE, case.spec.id
            for t in range(1, case.x.shape[1]):
                _, rel = error_metrics(got[:, t - 1], forward(case.ir, case.x[:, :t]))
                assert rel.max() <= REFERENCE_TOLERANCE, (case.spec.id, t)
        checked += 1
    assert checked >= 10


def test_stream_prefix_against_keras(rendered, cpython_runs, keras):
    """For a last-step model, step() halfway equals Keras on the truncated sequences."""
    _, steps = cpython_runs
    case = next(c for c, _ in rendered if c.spec.id == "g12")  # T = 13, last step
    assert case.ir.streamable and not case.ir.returns_sequences
    t = 6
    model = keras.models.clone_model(
        case.keras_model, input_tensors=keras.Input((t, case.spec.input_size))
    )
    model.set_weights(case.keras_model.get_weights())
    _, rel = error_metrics(steps["g12"][:, t - 1], model.predict(case.x[:, :t], verbose=0))
    assert rel.max() <= TOLERANCE


def test_micropython_grid_matches_keras(rendered, micropython_runs):
    outputs, stepped = micropython_runs
    worst, worst_ref = [], 0.0
    for (case, _), got in zip(rendered, outputs):
        _, rel = error_metrics(got, case.expected[:MICROPYTHON_SEQUENCES])
        _, rel_ref = error_metrics(got, forward(case.ir, case.x[:MICROPYTHON_SEQUENCES]))
        assert rel_ref.max() <= REFERENCE_TOLERANCE, case.spec.id
        worst.append((float(rel.max()), case.spec.id))
        worst_ref = max(worst_ref, float(rel_ref.max()))
    failures = [w for w in worst if not w[0] <= TOLERANCE]
    assert not failures, f"max relative error above {TOLERANCE}: {failures}"
    print(
        f"\nMicroPython vs Keras: max relative error {max(worst)[0]:.3g} ({max(worst)[1]}); "
        f"vs float64 reference: {worst_ref:.3g}"
    )
    # the subset ran covers what matters: backwards, buffered, no bias, every activation
    specs = [c.spec for c, _ in rendered]
    assert any(l.go_backwards for s in specs for l in s.lstms)
    assert any(not l.use_bias for s in specs for l in s.lstms)
    assert len(stepped) >= 5
    assert {case.ir.returns_sequences for case, _ in stepped} == {True, False}
    for case, got in stepped:
        if case.ir.returns_sequences:
            expected = case.expected[:2]
        else:
            got, expected = got[:, -1], case.expected[:2]
        _, rel = error_metrics(got, expected)
        assert rel.max() <= TOLERANCE, case.spec.id


def test_micropython_fits_a_47k_weight_model_in_its_default_heap(keras, micropython, tmp_path):
    """15 -> LSTM(101) -> Dense(5): 47,778 weights, under MicroPython's default 2 MB heap."""
    from grid import LSTMSpec, Spec, build_keras

    import lstmgen

    spec = Spec("heap", 15, 8, [LSTMSpec(101)], [(5, "linear")])
    model = build_keras(spec, seed=7)
    x = np.random.default_rng(7).standard_normal((2, 8, 15)).astype(np.float32)
    expected = model.predict(x, verbose=0)
    ir = lstmgen.load(model)
    assert ir.parameter_count() == 47778
    files = py_backend.render(ir, "big")
    result = py_runner.run_batch([py_runner.Job(ir, files, "big", x)], tmp_path, micropython)
    _, rel = error_metrics(result.outputs[0], expected)
    assert rel.max() <= TOLERANCE
    stats = result.stats[0]
    print(
        f"\nMicroPython heap after importing 47k weights: {stats['heap_alloc_after_import']} "
        f"bytes used, {stats['heap_free_after_import']} free"
    )
    assert stats["heap_alloc_after_import"] < 1_000_000


# ----------------------------------------------- every activation, overflow, no bias --


def _activation_models() -> list[Model]:
    """IR models (no Keras needed) covering every activation in every role, with weights
    large enough that pre-activations reach +-1000 (exp overflow territory)."""
    rng = np.random.default_rng(3)

    def arr(*shape, scale=0.5):
        return (rng.uniform(-scale, scale, shape)).astype(np.float32)

    acts = list(ELEMENTWISE_ACTIVATIONS)
    models = []
    for k, act in enumerate(acts):
        d, h = 3, 4
        # bounded gates keep the state finite; `act` is tried as gate where it is bounded
        gate = (
            act
            if act in ("sigmoid", "tanh", "softsign", "hard_sigmoid_keras3", "hard_sigmoid_0.2")
            else "sigmoid"
        )
        layers = [
            LSTM(
                "lstm_a",
                arr(4 * h, d, scale=300.0),
                arr(4 * h, h),
                arr(4 * h) if k % 2 else None,
                gate_activation=gate,
                cell_activation=act,
                output_activation=act,
                return_sequences=True,
                go_backwards=bool(k % 3 == 1),
            ),
            Dense("dense", arr(5, h, scale=200.0), arr(5), activation=act),
            Activation("act", 5, "softmax" if k % 2 else act),
            LSTM(
                "lstm_b",
                arr(8, 5),
                arr(8, 2),
                None,
                cell_activation=act,
                return_sequences=bool(k % 2),
                go_backwards=bool(k % 4 == 2),
            ),
            Dense("head", arr(3, 2), None, activation="softmax"),
        ]
        models.append(Model(d, layers, name=f"acts_{k}", source="test"))
    return models


def _run_both(models, tmp_path, x, micropython=None):
    jobs = [
        py_runner.Job(m, py_backend.render(m, f"m{k}"), f"m{k}", x) for k, m in enumerate(models)
    ]
    runs = [py_runner.run_batch(jobs, tmp_path / "cpython").outputs]
    if micropython:
        runs.append(py_runner.run_batch(jobs, tmp_path / "micropython", micropython).outputs)
    return runs


def test_every_activation_and_extreme_inputs_match_reference(tmp_path, micropython):
    models = _activation_models()
    x = np.random.default_rng(4).standard_normal((2, 5, 3)).astype(np.float32) * 3
    x[0, 0] = [1000.0, -1000.0, 1000.0]
    x[1, 2] = [-1000.0, 1000.0, -1000.0]
    for outputs in _run_both(models, tmp_path, x, micropython):
        for model, got in zip(models, outputs):
            ref = forward(model, x)
            assert np.all(np.isfinite(got)), model.name
            _, rel = error_metrics(got, ref)
            assert rel.max() <= 1e-9, model.name


def _exec_without_fast_math(text: str) -> dict:
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


def test_fallback_kernels_under_cpython(tmp_path):
    """The MicroPython code path (no math.dist, log1p, expm1), run by CPython in-process."""
    models = _activation_models()
    x = np.random.default_rng(5).standard_normal((2, 4, 3)).astype(np.float32)
    for k, model in enumerate(models):
        text = py_backend.render(model, "fb")["fb.py"]
        namespace = _exec_without_fast_math(text)
        assert namespace["dist"] is None
        if "def log1p" in text:
            assert namespace["log1p"].__module__ == "fb"
        got = np.array([namespace["predict"](seq.tolist()) for seq in x])
        _, rel = error_metrics(got, forward(model, x))
        assert rel.max() <= 1e-9, model.name


def test_sigmoid_softplus_never_overflow(tmp_path):
    """A gate at -1000 gives exactly 0 (no OverflowError), softplus(1000) = 1000."""
    h = 1
    w = np.array([[-1000.0]] * 4, np.float32)  # z = -1000 x for every gate
    model = Model(
        1,
        [
            LSTM(
                "l",
                w,
                np.zeros((4, 1), np.float32),
                None,
                cell_activation="softplus",
                output_activation="softplus",
                return_sequences=True,
            )
        ],
        source="test",
    )
    module = _import(py_backend.render(model, "ovf"), "ovf", tmp_path)
    # x = 1: gates sigmoid(-1000) = 0 -> c = 0, h = 0; x = -1: gates 1, g = softplus(1000)
    assert module.predict([[1.0]]) == [[0.0]]
    out = module.predict([[-1.0]])
    assert out[0][0] == pytest.approx(math.log1p(math.exp(-1000.0)) + 1000.0)


# ------------------------------------------------------------------ the file itself --


def _import(files, name, folder):
    for filename, text in files.items():
        (folder / filename).write_text(text, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"{name}_{id(files)}", folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_imports_only_math_and_array(rendered):
    for case, files in rendered:
        tree = ast.parse(files[f"{module_name(case)}.py"])
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0
                imported.add(node.module.split(".")[0])
        assert imported <= {"math", "array"}, (case.spec.id, imported)
        if hasattr(sys, "stdlib_module_names"):
            assert imported <= set(sys.stdlib_module_names)


def test_rendering_is_deterministic(grid_cases):
    for case in grid_cases[:8] + [c for c in grid_cases if c.spec.id == "buffered"]:
        assert py_backend.render(case.ir, "net") == py_backend.render(case.ir, "net")


def _literal_matrices(text: str) -> dict[str, list[tuple[int, list]]]:
    """{matrix name: [(width, literal strings or None) per part]} from a generated file."""
    matrices = {}
    for node in ast.parse(text).body:
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Call)
            and getattr(node.value.func, "id", "") == "_matrix"
        ):
            parts = ast.literal_eval(node.value.args[1])
            matrices[node.targets[0].id] = [
                (width, None if lines is None else " ".join(lines).split())
                for width, lines in parts
            ]
    return matrices


def test_float_literals_read_back_to_the_ir_weights_exactly(rendered):
    for case, files in rendered:
        matrices = _literal_matrices(files[f"{module_name(case)}.py"])
        layers = [l for l in case.ir.layers if isinstance(l, (LSTM, Dense))]
        assert len(matrices) == len(layers)
        for layer, parts in zip(layers, matrices.values()):
            arrays = (
                [layer.input_weights, layer.recurrent_weights, layer.bias]
                if isinstance(layer, LSTM)
                else [layer.weights, layer.bias]
            )
            for array, (width, texts) in zip(arrays, parts):
                if array is None:
                    assert texts is None
                    continue
                assert width == (array.shape[1] if array.ndim == 2 else 1)
                # Python's float() then rounding to float32, as array('f') does
                got = np.array([float(t) for t in texts], np.float64).astype(np.float32)
                assert got.tobytes() == array.ravel().tobytes(), (case.spec.id, layer.name)


def test_micropython_reads_the_literals_back_exactly(rendered, micropython, tmp_path):
    """MicroPython's own float parsing + array('f') gives the very same float32 bits."""
    names = []
    for case, files in rendered:
        name = module_name(case)
        (tmp_path / f"{name}.py").write_text(files[f"{name}.py"], encoding="utf-8")
        context = py_backend.render_context(case.ir, name)
        idents = [l.const for l in context.layers if l.kind in ("lstm", "dense")]
        names.append((name, idents))
    script = (
        "import sys, gc\n"
        f"for name, idents in {names!r}:\n"
        "    m = __import__(name)\n"
        "    with open(name + '.bin', 'wb') as f:\n"
        "        for ident in idents:\n"
        "            for row in getattr(m, ident)[0]:  # (rows, result array)\n"
        "                f.write(bytes(row))\n"
        "    del sys.modules[name]\n"
        "    gc.collect()\n"
    )
    (tmp_path / "dump.py").write_text(script)
    proc = subprocess.run(
        py_runner.micropython_command(heapsize="16M") + ["dump.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"MICROPYPATH": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for case, _ in rendered:
        expected = []
        for layer in case.ir.layers:
            if isinstance(layer, LSTM):
                b = layer.bias if layer.bias is not None else np.zeros(4 * layer.units, np.float32)
                expected.append(
                    np.hstack([layer.input_weights, layer.recurrent_weights, b[:, None]])
                )
            elif isinstance(layer, Dense):
                b = (
                    layer.bias
                    if layer.bias is not None
                    else np.zeros(layer.output_size, np.float32)
                )
                expected.append(np.hstack([layer.weights, b[:, None]]))
        blob = (tmp_path / f"{module_name(case)}.bin").read_bytes()
        assert blob == b"".join(e.astype("<f4").tobytes() for e in expected), case.spec.id


def test_module_api_and_input_validation(grid_cases, tmp_path):
    case = next(c for c in grid_cases if c.ir.streamable and not c.ir.returns_sequences)
    module = _import(py_backend.render(case.ir, "api"), "api", tmp_path)
    d, o = case.ir.input_size, case.ir.output_size
    assert (module.INPUT_SIZE, module.OUTPUT_SIZE, module.RETURNS_SEQUENCES) == (d, o, False)
    seq = case.x[0].tolist()
    y = module.predict(seq)
    assert isinstance(y, list) and len(y) == o and all(isinstance(v, float) for v in y)
    assert module.predict(tuple(tuple(r) for r in seq)) == y
    assert module.predict(case.x[0]) == y  # numpy rows work too
    stream = module.Stream()
    for row in seq:
        last = stream.step(row)
    assert last == pytest.approx(y, rel=1e-12, abs=1e-12)
    stream.reset()
    assert stream.step(seq[0]) == pytest.approx(module.predict(seq[:1]), rel=1e-12, abs=1e-12)
    for bad in ([], [[0.0] * (d + 1)], [0.0] * d, 3.0, "abc", None, [[None] * d]):
        with pytest.raises(ValueError):
            module.predict(bad)
    with pytest.raises(ValueError):
        stream.step([0.0] * (d + 1))


def test_non_streamable_model_has_no_stream(grid_cases, tmp_path):
    case = next(c for c in grid_cases if c.spec.id == "buffered")
    assert not case.ir.streamable
    module = _import(py_backend.render(case.ir, "back"), "back", tmp_path)
    assert not hasattr(module, "Stream")
    assert "no streaming class" in module.__doc__


def test_banner_and_file_recognised_by_the_writer(grid_cases, tmp_path):
    from lstmgen.output import _written_by_lstmgen, write_files
    from lstmgen.targets.common import GENERATED_MARK

    case = grid_cases[0]
    files = py_backend.render(case.ir, "net")
    text = files["net.py"]
    assert GENERATED_MARK in text[:4096]
    assert case.ir.source.split(",")[0] in text[:4096]
    write_files(files, tmp_path)
    assert _written_by_lstmgen(tmp_path / "net.py")
    write_files(files, tmp_path)  # overwriting its own file is allowed


def test_names_and_options_are_checked(grid_cases):
    ir = grid_cases[0].ir
    for bad in ("1net", "net-1", "import", "math", "array", ""):
        with pytest.raises(LstmgenError):
            py_backend.render(ir, bad)
    with pytest.raises(LstmgenError):
        py_backend.render(ir, "net", precision="double")


def test_awkward_layer_names_stay_valid_python(tmp_path):
    rng = np.random.default_rng(0)
    f32 = lambda *s: rng.uniform(-0.5, 0.5, s).astype(np.float32)  # noqa: E731
    layers = [
        LSTM('l"""\\ 1\nx', f32(8, 2), f32(8, 2), f32(8)),
        Dense("one", f32(2, 2), f32(2)),
        Dense("ONE", f32(2, 2), f32(2)),
    ]
    model = Model(2, layers, source='C:\\models\\"odd"\nname.keras')
    module = _import(py_backend.render(model, "odd"), "odd", tmp_path)
    x = rng.standard_normal((1, 3, 2)).astype(np.float32)
    _, rel = error_metrics(np.array([module.predict(x[0].tolist())]), forward(model, x))
    assert rel.max() <= 1e-12


def test_other_cpython_versions(grid_cases, tmp_path):
    """The same module under every other CPython >= 3.8 installed here (pyenv), if any."""
    pattern = str(Path.home() / ".pyenv" / "versions" / "3.*" / "bin" / "python3.*[0-9]")
    found = sorted(set(glob.glob(pattern)))
    found = [p for p in found if _version(p) >= (3, 8) and _version(p) != sys.version_info[:2]]
    if not found:
        pytest.skip("no other CPython >= 3.8 installed")
    cases = [c for c in grid_cases if c.spec.id in ("g13", "g20", "buffered", "g05")]
    print(f"\nalso ran under: {', '.join(found)}")
    for python in found:
        jobs = [
            py_runner.Job(c.ir, py_backend.render(c.ir, module_name(c)), module_name(c), c.x[:2])
            for c in cases
        ]
        outputs = py_runner.run_batch(
            jobs, tmp_path / Path(python).name, [python, "-I", "-S"]
        ).outputs
        for case, got in zip(cases, outputs):
            _, rel = error_metrics(got, case.expected[:2])
            assert rel.max() <= TOLERANCE, (python, case.spec.id)
        kinds = [
            (key, model, _kinds_inputs(model, k))
            for k, (key, model) in enumerate(_kinds_models().items())
            if key in ("gru_before", "bi_merges", "projection")
        ]
        jobs = [
            py_runner.Job(m, py_backend.render(m, f"k_{key}"), f"k_{key}", x) for key, m, x in kinds
        ]
        outputs = py_runner.run_batch(
            jobs, tmp_path / f"{Path(python).name}_kinds", [python, "-I", "-S"]
        ).outputs
        for (key, model, x), got in zip(kinds, outputs):
            _, rel = error_metrics(got, forward(model, x))
            assert rel.max() <= REFERENCE_TOLERANCE, (python, key)


def _version(python: str) -> tuple[int, int]:
    name = Path(python).name.replace("python", "")
    return tuple(int(p) for p in name.split(".")[:2])


def test_generate_and_verify_end_to_end(example_model_path, tmp_path):
    import lstmgen

    written = lstmgen.generate(example_model_path, target="python", name="sine", out=tmp_path)
    assert written == [tmp_path / "sine.py"]
    report = lstmgen.verify(example_model_path, target="python", sequences=4)
    assert report.passed, report.summary()
    assert report.reference_max_abs <= 1e-12


def test_memory_report(grid_cases):
    text = py_backend.memory_report(grid_cases[0].ir)
    assert "MicroPython" in text and "default 2 MB heap" in text


# ------------------------------------------- GRU, SimpleRNN, Bidirectional, projection --


def _kinds_models() -> dict[str, Model]:
    """IR models (no Keras needed) of the other recurrent kinds: both GRU variants with and
    without biases, SimpleRNN, Bidirectional over every inner kind with every merge mode,
    stacked, with and without return_sequences, and LSTM projections (with the other
    optional features too)."""
    rng = np.random.default_rng(11)

    def u(*shape, scale=0.6):
        return rng.uniform(-scale, scale, shape).astype(np.float32)

    def gru(name, d, h, reset_after=True, bias=True, recurrent_bias=True, **kw):
        return GRU(
            name,
            u(3 * h, d),
            u(3 * h, h),
            u(3 * h) if bias else None,
            u(3 * h) if reset_after and recurrent_bias else None,
            reset_after=reset_after,
            **kw,
        )

    def rnn(name, d, h, bias=True, **kw):
        return SimpleRNN(name, u(h, d), u(h, h), u(h) if bias else None, **kw)

    def lstm(name, d, h, p=None, **kw):
        return LSTM(
            name,
            u(4 * h, d),
            u(4 * h, p or h),
            u(4 * h),
            projection=None if p is None else u(p, h),
            **kw,
        )

    def bi(name, make, d, h, merge="concat", sequences=True, **kw):
        return Bidirectional(
            name,
            make(f"{name}.forward", d, h, return_sequences=sequences, **kw),
            make(f"{name}.backward", d, h, return_sequences=sequences, go_backwards=True, **kw),
            merge_mode=merge,
        )

    # o gate = hard_sigmoid(-100) = 0 at every step: the projected vector m is all zeros
    closed = lstm(
        "closed",
        3,
        4,
        p=2,
        gate_activation="hard_sigmoid_0.2",
        output_activation="relu",
        return_sequences=True,
    )
    closed.bias[12:] = -100.0
    return {
        "gru_after": Model(
            3,
            [
                gru("g1", 3, 7, return_sequences=True),
                gru("g2", 7, 4, recurrent_bias=False),
                Dense("head", u(2, 4), u(2), activation="softmax"),
            ],
        ),
        "gru_before": Model(
            4,
            [
                gru(
                    "g1",
                    4,
                    5,
                    reset_after=False,
                    return_sequences=True,
                    gate_activation="hard_sigmoid_0.2",
                    cell_activation="relu",
                ),
                gru(
                    "g2",
                    5,
                    3,
                    reset_after=False,
                    bias=False,
                    return_sequences=True,
                    cell_activation="elu",
                ),
            ],
        ),
        "gru_backwards": Model(
            2,
            [
                gru(
                    "g1",
                    2,
                    4,
                    bias=False,
                    go_backwards=True,
                    return_sequences=True,
                    gate_activation="softsign",
                    cell_activation="softplus",
                ),
                gru("g2", 4, 3, reset_after=False, go_backwards=True),
            ],
        ),
        "simple_rnn": Model(
            3,
            [
                rnn("s1", 3, 6, activation="relu", return_sequences=True),
                rnn("s2", 6, 3, bias=False, activation="linear"),
                Activation("act", 3, "tanh"),
            ],
        ),
        "simple_rnn_seq": Model(
            2,
            [
                rnn("s1", 2, 5, activation="softsign", return_sequences=True),
                Dense("d", u(2, 5), None, activation="elu"),
            ],
        ),
        "bi_stacked": Model(
            4,
            [bi("b1", lstm, 4, 3), bi("b2", gru, 6, 2, "ave", False), Dense("head", u(1, 2), None)],
        ),
        "bi_merges": Model(
            3,
            [
                bi("b1", rnn, 3, 4, "mul", activation="tanh"),
                bi("b2", gru, 4, 3, "sum", reset_after=False),
                bi("b3", gru, 3, 2, "concat", False),
            ],
        ),
        "bi_after_backwards": Model(
            2,
            [
                gru("g", 2, 3, go_backwards=True, return_sequences=True),
                bi("b", rnn, 3, 2, "sum", False, bias=False),
                Dense("d", u(2, 2), u(2)),
            ],
        ),
        "bi_projection": Model(
            3,
            [
                bi("b", lstm, 3, 5, "concat", True, p=2),
                bi("c", lstm, 4, 3, "mul", False, p=1, peephole=u(3, 3), clip=2.5),
            ],
        ),
        "projection": Model(
            3,
            [
                lstm("p1", 3, 6, p=2, return_sequences=True),
                lstm(
                    "p2",
                    2,
                    5,
                    p=3,
                    peephole=u(3, 5),
                    clip=1.0,
                    input_forget=True,
                    initial_h=u(3),
                    initial_c=u(5),
                    return_sequences=True,
                ),
                lstm("p3", 3, 4, p=2, initial_c=u(4)),
            ],
        ),
        "projection_closed": Model(3, [closed, Dense("d", u(2, 2), u(2))]),
    }


def _kinds_inputs(model: Model, seed: int) -> np.ndarray:
    return (
        np.random.default_rng(seed).standard_normal((3, 6, model.input_size)).astype(np.float32) * 2
    )


def _steps_reference(model: Model, x: np.ndarray) -> np.ndarray:
    """What Stream.step gives after every timestep: the model on each prefix of x."""
    if model.returns_sequences:
        return forward(model, x)
    return np.stack([forward(model, x[:, :t]) for t in range(1, x.shape[1] + 1)], axis=1)


@pytest.fixture(scope="module")
def kinds_runs(tmp_path_factory):
    """Every _kinds_models() model rendered, then run by CPython and MicroPython (predict,
    and Stream.step where streamable), one subprocess each."""
    models = _kinds_models()
    rendered = {key: py_backend.render(m, f"k_{key}") for key, m in models.items()}
    jobs = []
    for seed, (key, model) in enumerate(models.items()):
        x = _kinds_inputs(model, seed)
        jobs.append(py_runner.Job(model, rendered[key], f"k_{key}", x))
        if model.streamable:
            jobs.append(py_runner.Job(model, rendered[key], f"k_{key}", x, steps=True))
    runs = {"cpython": py_runner.run_batch(jobs, tmp_path_factory.mktemp("kinds_cp"))}
    if shutil.which("micropython"):
        runs["micropython"] = py_runner.run_batch(
            jobs, tmp_path_factory.mktemp("kinds_mp"), py_runner.micropython_command()
        )
    return models, rendered, jobs, runs


def test_other_kinds_match_the_reference(kinds_runs):
    """predict() and Stream.step() under CPython and MicroPython (default heap) against
    the float64 reference, for every model of _kinds_models()."""
    models, rendered, jobs, runs = kinds_runs
    if "micropython" not in runs:
        require_tool("micropython")
    worst: dict[str, float] = {}
    for interpreter, result in runs.items():
        for job, got in zip(jobs, result.outputs):
            expected = (
                _steps_reference(job.model, job.x) if job.steps else forward(job.model, job.x)
            )
            _, rel = error_metrics(got, expected)
            assert rel.max() <= REFERENCE_TOLERANCE, (interpreter, job.name, job.steps)
            for kind in (job.model.kinds() - {"dense", "activation"}) | set(job.model.features()):
                worst[kind] = max(worst.get(kind, 0.0), float(rel.max()))
    stepped = {job.name for job in jobs if job.steps}
    # every GRU variant and the SimpleRNN stream; no Bidirectional or go_backwards model does
    assert stepped == {
        "k_gru_after",
        "k_gru_before",
        "k_simple_rnn",
        "k_simple_rnn_seq",
        "k_projection",
        "k_projection_closed",
    }
    for key, files in rendered.items():
        assert ("class Stream" in files[f"k_{key}.py"]) == models[key].streamable, key
    print(
        "\nmax relative error vs float64 reference: "
        + ", ".join(f"{k} {v:.3g}" for k, v in sorted(worst.items()))
    )


def test_other_kinds_fallback_kernels_under_cpython():
    """The MicroPython code path of every _kinds_models() model, in-process."""
    for seed, (key, model) in enumerate(_kinds_models().items()):
        namespace = _exec_without_fast_math(py_backend.render(model, "fb")["fb.py"])
        assert namespace["dist"] is None
        x = _kinds_inputs(model, seed)
        got = np.array([namespace["predict"](seq.tolist()) for seq in x])
        _, rel = error_metrics(got, forward(model, x))
        assert rel.max() <= REFERENCE_TOLERANCE, key


def test_other_kinds_files_are_plain_deterministic_ascii(kinds_runs):
    models, rendered, _, _ = kinds_runs
    for key, files in rendered.items():
        text = files[f"k_{key}.py"]
        assert text.isascii(), key
        assert py_backend.render(models[key], f"k_{key}") == files, key
        imported = set()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom):
                imported.add(node.module)
            assert not isinstance(node, ast.Import), key
        assert imported <= {"math", "array"}, key


def _expected_matrices(layer) -> list[list[np.ndarray | None]]:
    """The parts of the matrices a recurrent layer becomes (see lstmgen.targets.python)."""
    if isinstance(layer, Bidirectional):
        return _expected_matrices(layer.forward) + _expected_matrices(layer.backward)
    w, u, b = layer.input_weights, layer.recurrent_weights, layer.bias
    if isinstance(layer, GRU) and layer.reset_after:
        return [[w, b], [u, layer.recurrent_bias]]
    if isinstance(layer, GRU):
        h2 = 2 * layer.units
        cut = lambda a, rows: None if a is None else a[rows]  # noqa: E731
        return [[w[:h2], u[:h2], cut(b, slice(0, h2))], [w[h2:], u[h2:], cut(b, slice(h2, None))]]
    matrices = [[w, u, b]]
    if isinstance(layer, LSTM) and layer.projection is not None:
        matrices.append([layer.projection, None])  # the zero column
    return matrices


def test_other_kinds_float_literals_are_the_ir_weights_exactly(kinds_runs):
    models, rendered, _, _ = kinds_runs
    for key, model in models.items():
        found = list(_literal_matrices(rendered[key][f"k_{key}.py"]).values())
        expected = []
        for layer in model.layers:
            expected += (
                [[layer.weights, layer.bias]]
                if isinstance(layer, Dense)
                else []
                if isinstance(layer, Activation)
                else _expected_matrices(layer)
            )
        assert len(found) == len(expected), key
        for parts, arrays in zip(found, expected):
            assert len(parts) == len(arrays), key
            for array, (width, texts) in zip(arrays, parts):
                if array is None:
                    assert texts is None and width == 1, key
                    continue
                assert width == (array.shape[1] if array.ndim == 2 else 1), key
                got = np.array([float(t) for t in texts], np.float64).astype(np.float32)
                assert got.tobytes() == array.ravel().tobytes(), key


def test_stream_of_gru_and_simple_rnn_modules(tmp_path):
    """Stream in-process: step() after t rows is predict() of those rows, reset() starts
    over, and the returned list is a copy of the state."""
    models = _kinds_models()
    for key in ("gru_after", "gru_before", "simple_rnn_seq"):
        model = models[key]
        module = _import(py_backend.render(model, f"s_{key}"), f"s_{key}", tmp_path)
        seq = _kinds_inputs(model, 3)[0].tolist()
        for _ in range(2):  # the second round after reset()
            stream = module.Stream()
            outputs = [stream.step(row) for row in seq]
            for t, y in enumerate(outputs):
                expected = module.predict(seq[: t + 1])
                assert y == pytest.approx(
                    expected[-1] if model.returns_sequences else expected, rel=1e-12, abs=1e-12
                ), (key, t)
            stream.reset()
        if model.layers[-1].recurrent:  # changing the output must not change the state
            stream = module.Stream()
            first = stream.step(seq[0])
            first[:] = [1e6] * len(first)
            expected = module.predict(seq[:2])
            assert stream.step(seq[1]) == pytest.approx(
                expected[-1] if model.returns_sequences else expected, rel=1e-12, abs=1e-12
            )


def test_keras_gru_and_bidirectional_under_micropython(keras, micropython, tmp_path):
    """Keras models through the extractor: a GRU/SimpleRNN stack run by Stream.step, and
    a Bidirectional model, under CPython and MicroPython, against model.predict."""
    import lstmgen

    L = keras.layers
    specs = {
        "kgru": (
            7,
            3,
            [
                L.GRU(6, return_sequences=True),
                L.GRU(
                    4, reset_after=False, return_sequences=True, recurrent_activation="hard_sigmoid"
                ),
                L.SimpleRNN(3, activation="relu", return_sequences=True),
            ],
        ),
        "kbi": (
            6,
            4,
            [
                L.Bidirectional(L.GRU(5, return_sequences=True)),
                L.Bidirectional(L.LSTM(3), merge_mode="ave"),
                L.Dense(2, activation="softmax"),
            ],
        ),
    }
    jobs, expected = [], []
    for n, (name, (t_len, d, layers)) in enumerate(specs.items()):
        model = keras.Sequential([keras.Input((t_len, d)), *layers])
        rng = np.random.default_rng(40 + n)
        for layer in model.layers:
            layer.set_weights(
                [rng.uniform(-0.6, 0.6, w.shape).astype(np.float32) for w in layer.get_weights()]
            )
        x = rng.standard_normal((2, t_len, d)).astype(np.float32)
        ir = lstmgen.load(model)
        files = py_backend.render(ir, name)
        jobs.append(py_runner.Job(ir, files, name, x))
        expected.append(model.predict(x, verbose=0))
        if ir.streamable:
            jobs.append(py_runner.Job(ir, files, name, x, steps=True))
            expected.append(expected[-1])  # returns sequences: the output of every step
    assert [j.steps for j in jobs] == [False, True, False]
    for interpreter in (None, micropython):
        outputs = py_runner.run_batch(
            jobs, tmp_path / ("mp" if interpreter else "cp"), interpreter
        ).outputs
        for job, got, want in zip(jobs, outputs, expected):
            _, rel = error_metrics(got, want)
            assert rel.max() <= TOLERANCE, (job.name, job.steps, interpreter)


def test_generated_names_never_collide(tmp_path):
    """Layers named like another layer's helper names (its Bidirectional halves, its
    peephole or initial-state constants, its GRU's second matrix) keep their own."""
    rng = np.random.default_rng(2)

    def u(*shape):
        return rng.uniform(-0.6, 0.6, shape).astype(np.float32)

    layers = [
        LSTM(
            "a",
            u(8, 2),
            u(8, 2),
            u(8),
            return_sequences=True,
            peephole=u(3, 2),
            initial_h=u(2),
            initial_c=u(2),
        ),
        Dense("a_peep_i", u(2, 2), u(2)),
        Dense("a h0", u(2, 2), u(2)),
        GRU("g", u(6, 2), u(6, 2), u(6), u(6), return_sequences=True),
        Dense("g r", u(2, 2), u(2)),
        Bidirectional(
            "b",
            GRU("b_f", u(6, 2), u(6, 2), u(6), None, return_sequences=True),
            GRU("b", u(6, 2), u(6, 2), u(6), None, return_sequences=True, go_backwards=True),
        ),
        Dense("b_f", u(2, 4), u(2)),
        Dense("b_2", u(2, 2), u(2)),
        SimpleRNN("b.backward", u(2, 2), u(2, 2), u(2)),
    ]
    model = Model(2, layers, name="collide").validate()
    files = py_backend.render(model, "collide")
    module = _import(files, "collide", tmp_path)
    x = rng.standard_normal((2, 4, 2)).astype(np.float32)
    got = np.array([module.predict(seq.tolist()) for seq in x])
    _, rel = error_metrics(got, forward(model, x))
    assert rel.max() <= REFERENCE_TOLERANCE
    # every module-level name is bound once
    tree = ast.parse(files["collide.py"])
    bound = [
        t.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name)
    ]
    bound += [node.name for node in tree.body if isinstance(node, ast.FunctionDef)]
    assert len(bound) == len(set(bound)), sorted(b for b in bound if bound.count(b) > 1)


# ------------------------------- Masking, Normalize, LayerNorm, Flatten, Conv1D, Pool1D --


def _shaping_models() -> dict[str, Model]:
    """IR models (no Keras needed) of the sequence-shaping layers: Masking in front of
    every recurrent kind (forward, go_backwards, Bidirectional, initial state), Normalize,
    LayerNorm with and without gamma/beta on sequences and on vectors, Flatten, Conv1D
    with every padding, strides and dilations, odd and even kernels, with and without
    bias, and both poolings with both paddings."""
    rng = np.random.default_rng(21)

    def u(*shape, scale=0.6):
        return rng.uniform(-scale, scale, shape).astype(np.float32)

    def lstm(name, d, h, p=None, **kw):
        return LSTM(
            name,
            u(4 * h, d),
            u(4 * h, p or h),
            u(4 * h),
            projection=None if p is None else u(p, h),
            **kw,
        )

    def gru(name, d, h, **kw):
        return GRU(name, u(3 * h, d), u(3 * h, h), u(3 * h), u(3 * h), **kw)

    def rnn(name, d, h, **kw):
        return SimpleRNN(name, u(h, d), u(h, h), u(h), **kw)

    def conv(name, f, k, d, bias=True, **kw):
        return Conv1D(name, u(f, k, d), u(f) if bias else None, **kw)

    def norm(name, d):
        return Normalize(name, u(d, scale=2.0), rng.uniform(0.3, 3.0, d).astype(np.float32))

    return {
        "mask_sequence": Model(
            3,
            [
                Masking("mask", 3, 0.0),
                norm("norm", 3),
                lstm("l1", 3, 4, return_sequences=True),
                LayerNorm("ln", 4, u(4), u(4), epsilon=1e-3),
                Dense("d", u(2, 4), u(2)),
            ],
        ),
        "mask_last": Model(
            3,
            [
                Masking("mask", 3, -1.0),
                gru("g", 3, 5, return_sequences=True),
                rnn("s", 5, 3, activation="relu"),
                LayerNorm("ln", 3, None, None, epsilon=0.01),
                Dense("d", u(2, 3), u(2), activation="softmax"),
            ],
        ),
        "mask_backwards": Model(
            3,
            [
                Masking("mask", 3, 0.5),
                lstm("back", 3, 3, go_backwards=True, return_sequences=True),
                Bidirectional(
                    "bi",
                    gru("bi.f", 3, 2, return_sequences=True),
                    gru("bi.b", 3, 2, return_sequences=True, go_backwards=True),
                ),
                Bidirectional(
                    "bi2",
                    rnn("bi2.f", 4, 2),
                    rnn("bi2.b", 4, 2, go_backwards=True),
                    merge_mode="ave",
                ),
            ],
        ),
        "mask_initial_state": Model(
            3,
            [
                Masking("mask", 3, 0.0),
                lstm(
                    "p",
                    3,
                    4,
                    p=2,
                    initial_h=u(2),
                    initial_c=u(4),
                    peephole=u(3, 4),
                    return_sequences=True,
                ),
            ],
        ),
        "mask_flatten": Model(
            3,
            [
                Masking("mask", 3, 0.0),
                lstm("l", 3, 2, return_sequences=True),
                Flatten("flat", 9, 2),
                Dense("d", u(2, 18), u(2)),
            ],
            timesteps=9,
        ),
        "layer_norm_vector": Model(
            2,
            [
                LayerNorm("ln0", 2, u(2), None),
                lstm("l", 2, 5),
                LayerNorm("ln1", 5, None, u(5), epsilon=1e-5),
                Dense("d", u(3, 5), None),
                LayerNorm("ln2", 3, u(3), u(3)),
            ],
        ),
        "conv_valid_max": Model(
            3,
            [
                conv("c", 4, 3, 3, activation="relu"),
                Pool1D("p", 4, "max", pool_size=2, stride=2, padding="valid"),
                lstm("l", 4, 3),
            ],
        ),
        "conv_same_stride_avg": Model(
            2,
            [
                conv("c", 3, 4, 2, stride=3, padding="same", activation="tanh"),
                Pool1D("p", 3, "avg", pool_size=3, stride=2, padding="same"),
                gru("g", 3, 2, return_sequences=True),
            ],
        ),
        "conv_causal_dilated": Model(
            2,
            [
                conv(
                    "c",
                    3,
                    3,
                    2,
                    bias=False,
                    stride=2,
                    dilation=2,
                    padding="causal",
                    activation="elu",
                ),
                Pool1D("p", 3, "max", pool_size=3, stride=1, padding="same"),
                rnn("s", 3, 2, return_sequences=True),
                Dense("d", u(1, 2), u(1)),
            ],
        ),
        "conv_same_dilated": Model(
            2,
            [
                norm("norm", 2),
                conv("c1", 3, 3, 2, dilation=3, padding="same", activation="softplus"),
                conv("c2", 2, 2, 3, stride=2, padding="valid"),
                Pool1D("p", 2, "avg", pool_size=2, stride=1, padding="valid"),
                lstm("l", 2, 3),
                Dense("d", u(2, 3), u(2)),
            ],
        ),
        "conv_flatten": Model(
            2,
            [
                conv("c", 3, 2, 2, padding="valid", stride=2),
                gru("g", 3, 2, return_sequences=True),
                Flatten("flat", 4, 2),
                Dense("d", u(2, 8), u(2), activation="sigmoid"),
            ],
            timesteps=9,
        ),
    }


def _shaping_inputs(model: Model, seed: int, t_len: int = 9) -> np.ndarray:
    """Four sequences; with Masking: masked steps at the end, at the start, in the middle
    and a fully masked sequence."""
    x = np.random.default_rng(seed).standard_normal((4, t_len, model.input_size)).astype(np.float32)
    if model.layers[0].kind == "masking":
        value = model.layers[0].mask_value
        x[0, 6:] = value
        x[1, :3] = value
        x[2, 2:3] = value
        x[2, 4:6] = value
        x[3, :] = value
    return x


@pytest.fixture(scope="module")
def shaping_runs(tmp_path_factory):
    """Every _shaping_models() model rendered, then run by CPython and MicroPython
    (predict, and Stream.step where streamable); models without Flatten also at the
    shortest T they take and at a longer T. One subprocess per interpreter."""
    models = _shaping_models()
    rendered = {key: py_backend.render(m, f"sh_{key}") for key, m in models.items()}
    jobs = []
    for seed, (key, model) in enumerate(models.items()):
        shortest = py_backend.min_timesteps(model)
        lengths = [9] if model.timesteps else sorted({shortest, shortest + 1, 9, 17})
        for t_len in lengths:
            x = _shaping_inputs(model, seed, t_len)
            jobs.append(py_runner.Job(model, rendered[key], f"sh_{key}", x))
            if model.streamable:
                jobs.append(py_runner.Job(model, rendered[key], f"sh_{key}", x, steps=True))
    runs = {"cpython": py_runner.run_batch(jobs, tmp_path_factory.mktemp("shaping_cp"))}
    if shutil.which("micropython"):
        runs["micropython"] = py_runner.run_batch(
            jobs, tmp_path_factory.mktemp("shaping_mp"), py_runner.micropython_command()
        )
    return models, rendered, jobs, runs


def test_shaping_layers_match_the_reference(shaping_runs):
    """predict() and Stream.step() under CPython and MicroPython (default heap) against
    the float64 reference, masked steps and every padding mode included."""
    models, rendered, jobs, runs = shaping_runs
    if "micropython" not in runs:
        require_tool("micropython")
    worst: dict[str, float] = {}
    for interpreter, result in runs.items():
        for job, got in zip(jobs, result.outputs):
            expected = (
                _steps_reference(job.model, job.x) if job.steps else forward(job.model, job.x)
            )
            assert got.shape == expected.shape, (job.name, job.x.shape)
            _, rel = error_metrics(got, expected)
            assert rel.max() <= REFERENCE_TOLERANCE, (interpreter, job.name, job.x.shape, job.steps)
            for kind in job.model.kinds() - {"dense", "activation"}:
                worst[kind] = max(worst.get(kind, 0.0), float(rel.max()))
    stepped = {job.name for job in jobs if job.steps}
    assert stepped == {
        "sh_mask_sequence",
        "sh_mask_last",
        "sh_mask_initial_state",
        "sh_layer_norm_vector",
    }
    for key, files in rendered.items():
        assert ("class Stream" in files[f"sh_{key}.py"]) == models[key].streamable, key
    # the runs reached an output of one timestep and a valid convolution's shortest input
    lengths = {(job.name, job.model.output_timesteps(job.x.shape[1])) for job in jobs}
    assert ("sh_conv_valid_max", 1) in lengths and ("sh_conv_same_dilated", 1) in lengths
    print(
        "\nmax relative error vs float64 reference: "
        + ", ".join(f"{k} {v:.3g}" for k, v in sorted(worst.items()))
    )


def test_shaping_layers_fallback_kernels_under_cpython():
    """The MicroPython code path (no math.dist) of every _shaping_models() model."""
    for seed, (key, model) in enumerate(_shaping_models().items()):
        namespace = _exec_without_fast_math(py_backend.render(model, "fb")["fb.py"])
        assert namespace["dist"] is None
        x = _shaping_inputs(model, seed)
        got = np.array([namespace["predict"](seq.tolist()) for seq in x])
        _, rel = error_metrics(got, forward(model, x))
        assert rel.max() <= REFERENCE_TOLERANCE, key


def test_shaping_files_are_plain_deterministic_ascii(shaping_runs):
    models, rendered, _, _ = shaping_runs
    for key, files in rendered.items():
        text = files[f"sh_{key}.py"]
        assert text.isascii(), key
        assert py_backend.render(models[key], f"sh_{key}") == files, key
        tree = ast.parse(text)
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert not any(isinstance(node, ast.Import) for node in ast.walk(tree)), key
        assert imported <= {"math", "array"}, key
        bound = [
            t.id
            for node in tree.body
            if isinstance(node, ast.Assign)
            for t in node.targets
            if isinstance(t, ast.Name)
        ]
        bound += [node.name for node in tree.body if isinstance(node, ast.FunctionDef)]
        assert len(bound) == len(set(bound)), key


def _literal_vectors(text: str) -> dict[str, list[str]]:
    """{vector name: its literal strings} from a generated file."""
    vectors = {}
    for node in ast.parse(text).body:
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Call)
            and getattr(node.value.func, "id", "") == "_vector"
        ):
            vectors[node.targets[0].id] = " ".join(ast.literal_eval(node.value.args[0])).split()
    return vectors


def test_shaping_float_literals_are_the_ir_values_exactly(shaping_runs):
    """Conv1D matrices [W[f] flattened, bias[f]] and the Normalize/LayerNorm vectors read
    back to the IR's float32 values, bit for bit."""
    models, rendered, _, _ = shaping_runs
    for key, model in models.items():
        text = rendered[key][f"sh_{key}.py"]
        matrices = _literal_matrices(text)
        vectors = _literal_vectors(text)
        expected_vectors = []
        for layer in model.layers:
            if isinstance(layer, Conv1D):
                parts = matrices[f"_{layer.name.upper()}"]
                f, k, d = layer.weights.shape
                assert [w for w, _ in parts] == [k * d, 1], key
                for array, (_, texts) in zip([layer.weights, layer.bias], parts):
                    if array is None:
                        assert texts is None, key
                        continue
                    got = np.array([float(t) for t in texts]).astype(np.float32)
                    assert got.tobytes() == array.ravel().tobytes(), (key, layer.name)
            elif isinstance(layer, Normalize):
                expected_vectors += [layer.mean, layer.std]
            elif isinstance(layer, LayerNorm):
                expected_vectors += [a for a in (layer.gamma, layer.beta) if a is not None]
        assert len(vectors) == len(expected_vectors), key
        for texts, array in zip(vectors.values(), expected_vectors):
            got = np.array([float(t) for t in texts]).astype(np.float32)
            assert got.tobytes() == array.tobytes(), key


def test_masked_stream_steps_keep_the_state(tmp_path):
    """Stream.step() of a masked row returns the previous output and changes no state:
    the steps after it equal a stream that never saw it; a masked first row gives what
    predict() gives for that row alone; predict of a sequence padded at the end equals
    predict of the sequence (exactly); every returned list is a copy."""
    models = _shaping_models()
    for key in ("mask_sequence", "mask_last", "mask_initial_state"):
        model = models[key]
        module = _import(py_backend.render(model, f"ms_{key}"), f"ms_{key}", tmp_path)
        value = model.layers[0].mask_value
        masked = [value] * model.input_size
        seq = np.random.default_rng(5).standard_normal((5, model.input_size)).tolist()
        seq[2] = list(masked)  # a hole in the middle
        for t_hole in range(len(seq)):
            assert module._is_real(seq[t_hole]) == (t_hole != 2)
        stream, plain = module.Stream(), module.Stream()
        first = stream.step(masked)
        last = predict = module.predict([masked])
        assert first == (predict[-1] if model.returns_sequences else predict), key
        for t, row in enumerate(seq):
            y = stream.step(row)
            if t == 2:
                assert y == last, key  # the previous output, again
                y[:] = [1e9] * len(y)  # a copy: changing it changes nothing
                continue
            assert y == plain.step(row), (key, t)
            last = y
        full = module.predict(seq)
        padded = module.predict(seq + [list(masked)] * 3)
        if model.returns_sequences:
            assert padded[: len(seq)] == full and padded[len(seq) :] == [full[-1]] * 3, key
        else:
            assert padded == full, key
        # all masked: the recurrent layers give zeros (not the initial state)
        expected = forward(model, np.full((1, 4, model.input_size), value, np.float32))[0]
        got = module.predict([list(masked)] * 4)
        assert np.allclose(got, expected, rtol=0, atol=1e-12), key


def test_short_and_wrong_length_sequences_are_refused(tmp_path):
    """A sequence too short for the Conv1D/pooling windows, or not of the length a Flatten
    layer needs, is a ValueError naming the limit; the shortest allowed one runs."""
    models = _shaping_models()
    model = models["conv_same_dilated"]  # valid conv (span 2, stride 2), valid pool of 2
    assert py_backend.min_timesteps(model) == 4
    assert model.output_timesteps(3) == 0 and model.output_timesteps(4) == 1
    module = _import(py_backend.render(model, "too_short"), "too_short", tmp_path)
    assert module.MIN_TIMESTEPS == 4
    x = _shaping_inputs(model, 1, 4)
    for t_len in (1, 3):
        with pytest.raises(ValueError, match="at least 4 timesteps"):
            module.predict(x[0, :t_len].tolist())
    _, rel = error_metrics(np.array([module.predict(x[0].tolist())]), forward(model, x[:1]))
    assert rel.max() <= REFERENCE_TOLERANCE
    assert "MIN_TIMESTEPS (4)" in module.__doc__
    for key in ("conv_flatten", "mask_flatten"):
        model = models[key]
        module = _import(py_backend.render(model, f"fl_{key}"), f"fl_{key}", tmp_path)
        assert module.TIMESTEPS == 9 and not hasattr(module, "Stream")
        x = _shaping_inputs(model, 2)[0].tolist()
        for bad in (x[:8], x + x[:1]):
            with pytest.raises(ValueError, match="exactly 9 timesteps"):
                module.predict(bad)
    # same and causal padding give an output for any T >= 1: no limit
    for key in ("conv_same_stride_avg", "conv_causal_dilated"):
        assert py_backend.min_timesteps(models[key]) == 1
        text = py_backend.render(models[key], "any")["any.py"]
        assert "MIN_TIMESTEPS = 1" in text and "if len(y) < MIN_TIMESTEPS" not in text


def test_shaping_docstrings(shaping_runs):
    """Masking models document variable-length input; windowed models say why they have
    no Stream and how T changes."""
    models, rendered, _, _ = shaping_runs
    masked = rendered["mask_last"]["sh_mask_last.py"]
    doc = ast.get_docstring(ast.parse(masked))
    assert "Variable-length sequences (Masking, MASK_VALUE = -1.0)" in doc
    assert "predict() takes sequences of any length" in doc
    assert "Stream.step() of a masked row leaves the state unchanged" in doc
    assert "MASK_VALUE = -1.0\n" in masked
    doc = ast.get_docstring(ast.parse(rendered["conv_valid_max"]["sh_conv_valid_max.py"]))
    assert "no streaming class: Conv1D and pooling layers need a window" in " ".join(doc.split())
    assert 'Conv1D "c" (window of 3 steps), valid padding: T -> max(0, (T - 3) // 1 + 1)' in doc
    doc = ast.get_docstring(ast.parse(rendered["mask_backwards"]["sh_mask_backwards.py"]))
    assert "Stream.step()" not in doc and "no streaming class" in doc


def test_shaping_under_the_oldest_other_cpython(tmp_path):
    """The shaping models under the oldest other CPython >= 3.8 installed here, if any."""
    pattern = str(Path.home() / ".pyenv" / "versions" / "3.*" / "bin" / "python3.*[0-9]")
    found = sorted(
        (
            p
            for p in set(glob.glob(pattern))
            if _version(p) >= (3, 8) and _version(p) != sys.version_info[:2]
        ),
        key=_version,
    )
    if not found:
        pytest.skip("no other CPython >= 3.8 installed")
    models = _shaping_models()
    jobs = [
        py_runner.Job(m, py_backend.render(m, f"o_{key}"), f"o_{key}", _shaping_inputs(m, k))
        for k, (key, m) in enumerate(models.items())
    ]
    outputs = py_runner.run_batch(jobs, tmp_path, [found[0], "-I", "-S"]).outputs
    for job, got in zip(jobs, outputs):
        _, rel = error_metrics(got, forward(job.model, job.x))
        assert rel.max() <= REFERENCE_TOLERANCE, (found[0], job.name)


def test_awkward_names_in_shaping_layers(tmp_path):
    """Names with quotes, backslashes and newlines on the shaping layers stay comments."""
    rng = np.random.default_rng(8)

    def u(*shape):
        return rng.uniform(-0.5, 0.5, shape).astype(np.float32)

    models = [
        Model(
            2,
            [
                Conv1D('c"""\\ 1\nx', u(3, 2, 2), u(3)),
                Pool1D("p'''\\", 3, "max", 2, 1, "same"),
                LSTM("l", u(8, 3), u(8, 2), u(8), return_sequences=True),
                Flatten('f"', 4, 2),
                Dense("d", u(1, 8), u(1)),
            ],
            timesteps=5,
        ),
        Model(
            2,
            [
                Masking('m"""', 2, 0.0),
                Normalize('n\\"', u(2), u(2) + 1.0),
                LayerNorm("ln'''\n", 2, u(2), u(2)),
                LSTM("l", u(8, 2), u(8, 2), u(8)),
            ],
        ),
    ]
    x = rng.standard_normal((1, 5, 2)).astype(np.float32)
    for k, model in enumerate(models):
        module = _import(py_backend.render(model.validate(), f"odd{k}"), f"odd{k}", tmp_path)
        _, rel = error_metrics(np.array([module.predict(x[0].tolist())]), forward(model, x))
        assert rel.max() <= REFERENCE_TOLERANCE
