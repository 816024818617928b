"""Speed of the generated pure-Python module against other ways to run the same LSTM.

    python bench/bench_python.py

For three Keras models with random weights (LSTM(H) -> Dense(2)) it times one sequence
through:

* generated  -- the module `lstmgen generate --target python` writes (this CPython)
* numpy      -- a straightforward numpy implementation (matrix-vector products per step)
* keras      -- Keras `model(x)` on a batch of one sequence
* naive      -- nested loops in pure Python (lists of lists, index arithmetic)
* map-mul    -- pure Python with the usual fast dot product sum(map(operator.mul, w, x))
* micropython -- the generated module under MicroPython (heap raised to 32 MB for the
                 large model), if `micropython` is installed

Every implementation is first checked against Keras (max relative error <= 1e-5), then
timed: the best of a few repeats of as many calls as fit in about 0.3 s. Prints
microseconds per sequence and each one's time relative to the generated module.

A second table times the other layer kinds (GRU both ways, SimpleRNN, Bidirectional, an
LSTM with a projection, Masking, LayerNorm, Conv1D with pooling, Flatten) the same way,
against Keras (or, for the projection, which Keras lacks, the float64 numpy reference
`lstmgen.reference.forward`, also timed as `numpy`).
"""

from __future__ import annotations

import importlib.util
import math
import operator
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lstmgen.targets import python as py_backend  # noqa: E402
from lstmgen.verify import error_metrics  # noqa: E402

SIZES = [("small", 3, 5, 4), ("medium", 15, 32, 20), ("large", 9, 256, 50)]  # name, D, H, T
OUTPUTS = 2
# The large model's 272k weights need more than MicroPython's default 2 MB heap.
MICROPYTHON_HEAP = "32M"
TOLERANCE = 1e-5


def build_keras(d: int, h: int, t: int, seed: int):
    """LSTM(h) -> Dense(OUTPUTS) with random weights, scaled as the test grid's."""
    import keras

    model = keras.Sequential(
        [keras.Input((t, d)), keras.layers.LSTM(h), keras.layers.Dense(OUTPUTS)]
    )
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        drawn = []
        for w in layer.get_weights():
            scale = 0.6 if w.ndim == 1 else min(0.6, 1.5 / math.sqrt(w.shape[0]))
            drawn.append(rng.uniform(-scale, scale, w.shape).astype(np.float32))
        layer.set_weights(drawn)
    return model


# ---------------------------------------------------------------- implementations --


def numpy_impl(ir):
    """Straightforward float64 numpy: one matrix-vector product per step."""
    lstm, dense = ir.layers
    w, u = lstm.input_weights.astype(np.float64), lstm.recurrent_weights.astype(np.float64)
    b = lstm.bias.astype(np.float64)
    wd, bd = dense.weights.astype(np.float64), dense.bias.astype(np.float64)
    n = lstm.units

    def sigmoid(v):
        return 0.5 * (1.0 + np.tanh(0.5 * v))

    def predict(x):
        h = np.zeros(n)
        c = np.zeros(n)
        for xt in np.asarray(x, np.float64):
            z = w @ xt + u @ h + b
            c = sigmoid(z[n : 2 * n]) * c + sigmoid(z[:n]) * np.tanh(z[2 * n : 3 * n])
            h = sigmoid(z[3 * n :]) * np.tanh(c)
        return wd @ h + bd

    return predict


def naive_impl(ir):
    """Nested loops over lists of lists: the textbook pure-Python LSTM."""
    lstm, dense = ir.layers
    w, u = lstm.input_weights.tolist(), lstm.recurrent_weights.tolist()
    b = lstm.bias.tolist()
    wd, bd = dense.weights.tolist(), dense.bias.tolist()
    n, d = lstm.units, lstm.input_size

    def sigmoid(v):
        return 1.0 / (1.0 + math.exp(-v)) if v > -700.0 else 0.0

    def predict(x):
        h = [0.0] * n
        c = [0.0] * n
        for xt in x:
            z = [0.0] * (4 * n)
            for r in range(4 * n):
                s = b[r]
                for k in range(d):
                    s += w[r][k] * xt[k]
                for k in range(n):
                    s += u[r][k] * h[k]
                z[r] = s
            for j in range(n):
                c[j] = sigmoid(z[n + j]) * c[j] + sigmoid(z[j]) * math.tanh(z[2 * n + j])
            h = [sigmoid(z[3 * n + j]) * math.tanh(c[j]) for j in range(n)]
        out = []
        for r in range(len(wd)):
            s = bd[r]
            for k in range(n):
                s += wd[r][k] * h[k]
            out.append(s)
        return out

    return predict


def map_mul_impl(ir):
    """Pure Python with sum(map(operator.mul, row, v)) dot products on tuples."""
    lstm, dense = ir.layers
    n = lstm.units
    rows = [
        tuple(r)
        for r in np.hstack(
            [lstm.input_weights, lstm.recurrent_weights, lstm.bias[:, None]]
        ).tolist()
    ]
    dense_rows = [tuple(r) for r in np.hstack([dense.weights, dense.bias[:, None]]).tolist()]
    mul, tanh = operator.mul, math.tanh

    def predict(x):
        h = [0.0] * n
        c = [0.0] * n
        for xt in x:
            v = list(xt) + h + [1.0]
            z = [sum(map(mul, r, v)) for r in rows]
            c = [
                0.5 * (1.0 + tanh(0.5 * zf)) * cj + 0.5 * (1.0 + tanh(0.5 * zi)) * tanh(zg)
                for zi, zf, zg, cj in zip(z[:n], z[n : 2 * n], z[2 * n : 3 * n], c)
            ]
            h = [0.5 * (1.0 + tanh(0.5 * zo)) * tanh(cj) for zo, cj in zip(z[3 * n :], c)]
        v = h + [1.0]
        return [sum(map(mul, r, v)) for r in dense_rows]

    return predict


def generated_module(ir, name: str, folder: Path):
    text = py_backend.render(ir, name)[f"{name}.py"]
    path = folder / f"{name}.py"
    path.write_text(text, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, path


def keras_impl(model):
    def predict(x):
        return np.asarray(model(x[None], training=False))[0]

    return predict


# -------------------------------------------------------------------------- timing --


def time_call(fn, arg, budget: float = 0.3, repeats: int = 3) -> float:
    """Best seconds per call over `repeats` runs of as many calls as fit in `budget`."""
    start = time.perf_counter()
    fn(arg)
    once = time.perf_counter() - start
    number = max(1, int(budget / max(once, 1e-7)))
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn(arg)
        best = min(best, (time.perf_counter() - start) / number)
    return best


MICROPYTHON_TIMER = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
m = __import__(sys.argv[2])
seq = [[((t * 7 + k * 3) % 11) / 11.0 - 0.5 for k in range(m.INPUT_SIZE)]
       for t in range(int(sys.argv[3]))]
m.predict(seq)
best = None
for _ in range(3):
    n = 0
    t0 = time.ticks_us()
    while True:
        m.predict(seq)
        n += 1
        dt = time.ticks_diff(time.ticks_us(), t0)
        if dt > 300000:
            break
    per = dt / n
    best = per if best is None or per < best else best
print(best)
"""


def time_micropython(path: Path, name: str, t_len: int) -> float:
    micropython = shutil.which("micropython")
    script = path.parent / "mp_timer.py"
    script.write_text(MICROPYTHON_TIMER, encoding="utf-8")
    proc = subprocess.run(
        [
            micropython,
            "-X",
            f"heapsize={MICROPYTHON_HEAP}",
            str(script),
            str(path.parent),
            name,
            str(t_len),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MICROPYPATH": str(path.parent)},
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr)
    return float(proc.stdout.strip()) * 1e-6


#: The other layer kinds: name, D, T, Keras layers (a function of keras.layers) or, for
#: the projection, None (an IR model, built by `projection_model`).
KINDS = [
    ("GRU(32)", 15, 20, lambda L: [L.GRU(32), L.Dense(OUTPUTS)]),
    ("GRU(32) reset before", 15, 20, lambda L: [L.GRU(32, reset_after=False), L.Dense(OUTPUTS)]),
    ("SimpleRNN(64)", 15, 20, lambda L: [L.SimpleRNN(64), L.Dense(OUTPUTS)]),
    ("Bi-LSTM(32) concat", 15, 20, lambda L: [L.Bidirectional(L.LSTM(32)), L.Dense(OUTPUTS)]),
    ("LSTM(32) proj 16", 15, 20, None),
    # the sequence-shaping layers (the Masking input ends in 5 masked rows)
    ("Masking+LSTM(32)", 15, 20, lambda L: [L.Masking(0.0), L.LSTM(32), L.Dense(OUTPUTS)]),
    (
        "LayerNorm+LSTM(32)",
        15,
        20,
        lambda L: [L.LayerNormalization(), L.LSTM(32), L.Dense(OUTPUTS)],
    ),
    (
        "Conv1D+MaxPool+LSTM(32)",
        15,
        20,
        lambda L: [
            L.Conv1D(32, 5, activation="relu"),
            L.MaxPooling1D(2),
            L.LSTM(32),
            L.Dense(OUTPUTS),
        ],
    ),
    (
        "LSTM(16)+Flatten",
        15,
        20,
        lambda L: [L.LSTM(16, return_sequences=True), L.Flatten(), L.Dense(OUTPUTS)],
    ),
]


def build_kind(layers, d: int, t: int, seed: int):
    """A Keras model of `layers` with random weights, scaled as in build_keras."""
    import keras

    model = keras.Sequential([keras.Input((t, d)), *layers(keras.layers)])
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        drawn = []
        for w in layer.get_weights():
            scale = 0.6 if w.ndim == 1 else min(0.6, 1.5 / math.sqrt(w.shape[0]))
            drawn.append(rng.uniform(-scale, scale, w.shape).astype(np.float32))
        layer.set_weights(drawn)
    return model


def projection_model(d: int, seed: int):
    """LSTM(32) with a projection to 16 (PyTorch proj_size) -> Dense(OUTPUTS), an IR model."""
    from lstmgen.ir import LSTM, Dense, Model

    rng = np.random.default_rng(seed)

    def u(*shape, scale=0.25):
        return rng.uniform(-scale, scale, shape).astype(np.float32)

    return Model(
        d,
        [
            LSTM("lstm", u(128, d), u(128, 16), u(128), projection=u(16, 32)),
            Dense("dense", u(OUTPUTS, 16), u(OUTPUTS)),
        ],
        name="projection",
    )


def bench_kinds(folder: Path, has_micropython: bool) -> int:
    """The second table: the other layer kinds."""
    import lstmgen
    from lstmgen.reference import forward
    from lstmgen.targets.python import runner as py_runner

    columns = ["generated", "numpy", "keras"] + (["micropython"] if has_micropython else [])
    print("\nother layer kinds, D = 15, T = 20 (numpy = lstmgen.reference.forward)\n")
    header = f"{'model':<24}" + "".join(f"{c:>22}" for c in columns)
    print(header)
    print("-" * len(header))
    for k, (label, d, t_len, layers) in enumerate(KINDS):
        if layers is None:
            keras_model, ir = None, projection_model(d, seed=10 + k)
        else:
            keras_model = build_kind(layers, d, t_len, seed=10 + k)
            ir = lstmgen.load(keras_model)
        x = np.random.default_rng(k).standard_normal((t_len, d)).astype(np.float32)
        if ir.layers[0].kind == "masking":
            x[-5:] = ir.layers[0].mask_value
        expected = (
            forward(ir, x[None])[0]
            if keras_model is None
            else keras_model.predict(x[None], verbose=0)[0]
        )
        module, path = generated_module(ir, f"kind{k}", folder)
        impls = {
            "generated": (module.predict, x.tolist()),
            "numpy": (lambda v, ir=ir: forward(ir, v[None])[0], x),
        }
        if keras_model is not None:
            impls["keras"] = (keras_impl(keras_model), x)
        times = {}
        for key, (fn, arg) in impls.items():
            _, rel = error_metrics(np.asarray(fn(arg), np.float64)[None], expected[None])
            if not rel.max() <= TOLERANCE:
                print(f"{label}/{key}: max relative error {rel.max():.3g}", file=sys.stderr)
                return 1
            times[key] = time_call(fn, arg)
        if has_micropython:
            got = py_runner.run_batch(
                [py_runner.Job(ir, {path.name: path.read_text()}, path.stem, x[None])],
                folder / f"mp_kind{k}",
                py_runner.micropython_command(),
            ).outputs[0]
            _, rel = error_metrics(got, expected[None])
            if not rel.max() <= TOLERANCE:
                print(f"{label}/micropython: max relative error {rel.max():.3g}", file=sys.stderr)
                return 1
            times["micropython"] = time_micropython(path, path.stem, t_len)
        line = f"{label:<24}"
        for c in columns:
            if c not in times:
                line += f"{'-':>22}"
                continue
            cell = f"{times[c] * 1e6:,.1f}" + (
                "" if c == "generated" else f" ({times[c] / times['generated']:.2f}x)"
            )
            line += f"{cell:>22}"
        print(line)
    return 0


def main() -> int:
    import lstmgen
    from lstmgen.targets.python import runner as py_runner

    has_micropython = shutil.which("micropython") is not None
    columns = ["generated", "numpy", "keras", "naive", "map-mul"]
    if has_micropython:
        columns.append("micropython")
    results = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lstmgen-bench-") as tmp:
        folder = Path(tmp)
        for k, (label, d, h, t_len) in enumerate(SIZES):
            model = build_keras(d, h, t_len, seed=k)
            ir = lstmgen.load(model)
            x = np.random.default_rng(k).standard_normal((t_len, d)).astype(np.float32)
            expected = model.predict(x[None], verbose=0)[0]
            module, path = generated_module(ir, f"bench_{label}", folder)
            rows = x.tolist()
            impls = {
                "generated": (module.predict, rows),
                "numpy": (numpy_impl(ir), x),
                "keras": (keras_impl(model), x),
                "naive": (naive_impl(ir), rows),
                "map-mul": (map_mul_impl(ir), rows),
            }
            times = {}
            for key, (fn, arg) in impls.items():
                _, rel = error_metrics(np.asarray(fn(arg), np.float64)[None], expected[None])
                if not rel.max() <= TOLERANCE:
                    print(
                        f"{label}/{key}: max relative error {rel.max():.3g} against Keras",
                        file=sys.stderr,
                    )
                    return 1
                times[key] = time_call(fn, arg)
            if has_micropython:
                got = py_runner.run_batch(
                    [py_runner.Job(ir, {path.name: path.read_text()}, path.stem, x[None])],
                    folder / f"mp_{label}",
                    py_runner.micropython_command(MICROPYTHON_HEAP),
                ).outputs[0]
                _, rel = error_metrics(got, expected[None])
                if not rel.max() <= TOLERANCE:
                    print(
                        f"{label}/micropython: max relative error {rel.max():.3g}", file=sys.stderr
                    )
                    return 1
                times["micropython"] = time_micropython(path, path.stem, t_len)
            results[(label, d, h, t_len, ir.parameter_count())] = times

    print(
        f"CPython {sys.version.split()[0]}, numpy {np.__version__}; "
        "microseconds per sequence (x = time relative to the generated module)\n"
    )
    header = f"{'model':<24}" + "".join(f"{c:>22}" for c in columns)
    print(header)
    print("-" * len(header))
    for (label, d, h, t_len, _params), times in results.items():
        line = f"{label + f' D={d} H={h} T={t_len}':<24}"
        base = times["generated"]
        for c in columns:
            cell = f"{times[c] * 1e6:,.1f}" + (
                "" if c == "generated" else f" ({times[c] / base:.2f}x)"
            )
            line += f"{cell:>22}"
        print(line)
    with tempfile.TemporaryDirectory(prefix="lstmgen-bench-") as tmp:
        if bench_kinds(Path(tmp), has_micropython):
            return 1
    print(
        f"\nall outputs checked against Keras, the projection against the reference (max "
        f"relative error <= {TOLERANCE:g}); "
        f"{time.perf_counter() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
