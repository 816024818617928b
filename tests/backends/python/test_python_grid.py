"""Generated pure Python for the Keras grid: against Keras and the float64 reference under
CPython -I -S and MicroPython; the module file itself (imports, determinism, exact
literals, API, banner, names), other CPython versions, generate/verify end to end.

Interpreter start-up dominates small runs, so the differential tests share a few batch
subprocesses (module-scoped fixtures): one CPython run for the whole grid (predict and
Stream.step), one MicroPython run for the grid.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from support import (
    import_generated,
    imported_modules,
    literal_calls,
    missing,
    other_cpythons,
    require_tool,
)

from lstmgen.errors import LstmgenError
from lstmgen.ir import LSTM, Dense, Model
from lstmgen.reference import forward
from lstmgen.targets import python as py_backend
from lstmgen.targets.python import runner as py_runner
from lstmgen.verify import error_metrics

TOLERANCE = 1e-5  # max relative error against Keras, |got - ref| / max(|ref|, 1)
REFERENCE_TOLERANCE = 1e-9  # against the float64 reference: both compute in double
MICROPYTHON_SEQUENCES = 3  # MicroPython is ~25x slower: fewer sequences per grid case


def literal_matrices(text: str) -> dict:
    return literal_calls(text, "_matrix")


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


def test_imports_only_math_and_array(rendered):
    for case, files in rendered:
        imported = imported_modules(files[f"{module_name(case)}.py"])
        assert imported <= {"math", "array"}, (case.spec.id, imported)
        if hasattr(sys, "stdlib_module_names"):
            assert imported <= set(sys.stdlib_module_names)


def test_rendering_is_deterministic(grid_cases):
    for case in grid_cases[:8] + [c for c in grid_cases if c.spec.id == "buffered"]:
        assert py_backend.render(case.ir, "net") == py_backend.render(case.ir, "net")


def test_float_literals_read_back_to_the_ir_weights_exactly(rendered):
    for case, files in rendered:
        matrices = literal_matrices(files[f"{module_name(case)}.py"])
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
    module = import_generated(py_backend.render(case.ir, "api"), "api", tmp_path)
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
    module = import_generated(py_backend.render(case.ir, "back"), "back", tmp_path)
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


@pytest.mark.parametrize("bad", ["1net", "net-1", "import", "math", "array", ""])
def test_bad_module_names_are_refused(grid_cases, bad):
    with pytest.raises(LstmgenError):
        py_backend.render(grid_cases[0].ir, bad)


def test_options_are_refused(grid_cases):
    ir = grid_cases[0].ir
    with pytest.raises(LstmgenError):
        py_backend.render(ir, "net", precision="double")


def test_other_cpython_versions(grid_cases, tmp_path):
    """The same module under every other CPython >= 3.8 installed here (pyenv), if any."""
    found = other_cpythons()
    if not found:
        missing("another CPython >= 3.8 (pyenv)")
    cases = [c for c in grid_cases if c.spec.id in ("g13", "g20", "buffered", "g05")]
    print(f"\nalso ran under: {', '.join(found)}")
    for python in found:
        jobs = [
            py_runner.Job(c.ir, py_backend.render(c.ir, module_name(c)), module_name(c), c.x[:2])
            for c in cases
        ]
        outputs = py_runner.run_batch(
            jobs, tmp_path / python.replace("/", "_"), [python, "-I", "-S"]
        ).outputs
        for case, got in zip(cases, outputs):
            _, rel = error_metrics(got, case.expected[:2])
            assert rel.max() <= TOLERANCE, (python, case.spec.id)


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
