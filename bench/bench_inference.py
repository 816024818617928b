"""Benchmark: one-sequence inference (batch 1, one thread) of the same model in the
generated C (-O2 portable and -O3 -march=native), onnxruntime, TensorFlow (`model(x)` and
`model.predict`), a plain numpy loop and the generated pure-Python module.

Every implementation's output is first checked against Keras `model.predict`; then each is
timed, and the table gives microseconds per sequence, GMAC/s, and each peer's time divided
by the generated C's (-O3 -march=native), and this core's FMA peak (GMAC/s) for scale; with
--streams also n = 1, 8, 32 independent streams (bench_streaming.py's section).
Run: python bench/bench_inference.py [--quick] [--streams] [--realtime] [--no-tensorflow]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import lstmgen  # noqa: E402
from lstmgen.ir import LSTM, Model  # noqa: E402
from lstmgen.targets import get_backend  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_streaming  # noqa: E402
from onnx_peer import session as onnx_session  # noqa: E402

C_FLAGS = {"C -O2": ["-O2"], "C -O3 native": ["-O3", "-march=native"]}
REFERENCE = "C -O3 native"


@dataclass
class BenchModel:
    name: str
    input_size: int
    timesteps: int
    units: list[int]
    head: tuple[int, str] | None


MODELS = [
    BenchModel("small 3-LSTM(5)-1, T=4", 3, 4, [5], (1, "linear")),
    BenchModel("medium 15-LSTM(101)-5 softmax, T=20", 15, 20, [101], (5, "softmax")),
    BenchModel("large 9-LSTM(256)-1, T=50", 9, 50, [256], (1, "linear")),
    BenchModel("stacked 16-2xLSTM(128)-1, T=100", 16, 100, [128, 128], (1, "linear")),
]


def build_keras(spec: BenchModel, seed: int = 0):
    import keras

    layers = [keras.Input((spec.timesteps, spec.input_size))]
    for k, units in enumerate(spec.units):
        layers.append(keras.layers.LSTM(units, return_sequences=k < len(spec.units) - 1))
    if spec.head:
        layers.append(keras.layers.Dense(spec.head[0], activation=spec.head[1]))
    model = keras.Sequential(layers)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        w = layer.get_weights()
        if w:
            layer.set_weights(
                [rng.uniform(-1, 1, a.shape).astype(np.float32) / np.sqrt(a.shape[0]) for a in w]
            )
    return model


def macs(model: Model, timesteps: int) -> int:
    total = 0
    for layer in model.layers:
        if isinstance(layer, LSTM):
            total += timesteps * 4 * layer.units * (layer.input_size + layer.units)
        else:
            total += layer.parameter_count()
    return total


def time_call(fn: Callable[[], object], min_seconds: float) -> float:
    """Best microseconds per call over 5 runs, after calibrating the repetition count."""
    reps = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        if time.perf_counter() - t0 > min_seconds / 5 or reps > 1 << 20:
            break
        reps *= 2
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        best = min(best, (time.perf_counter() - t0) / reps)
    return best * 1e6


def time_generated_c(
    model: Model,
    x: np.ndarray,
    flags: list[str],
    workdir: Path,
    min_seconds: float,
    runner: bench_streaming.Runner,
) -> tuple[float, np.ndarray]:
    for filename, text in get_backend("c").render(model, "net").items():
        (workdir / filename).write_text(text)
    exe = workdir / "bench"
    subprocess.run(
        [
            "gcc",
            "-std=c99",
            *flags,
            "-I",
            str(workdir),
            str(HERE / "harness.c"),
            str(workdir / "net.c"),
            "-lm",
            "-o",
            str(exe),
        ],
        check=True,
    )
    x.astype(np.float32).tofile(workdir / "x.bin")
    out = runner.run(
        [
            str(exe),
            str(workdir / "x.bin"),
            str(workdir / "y.bin"),
            str(x.shape[0]),
            str(x.shape[1]),
            str(min_seconds),
        ]
    ).split()
    y = np.fromfile(workdir / "y.bin", np.float32).reshape(x.shape[0], -1)
    return float(out[0]), y


def numpy_loop(model: Model) -> Callable[[np.ndarray], np.ndarray]:
    """A straightforward float32 numpy forward pass (sigmoid/tanh LSTMs, Dense)."""
    params = []
    for layer in model.layers:
        if isinstance(layer, LSTM):
            params.append(
                (
                    "lstm",
                    layer.input_weights.T.copy(),
                    layer.recurrent_weights.T.copy(),
                    layer.bias,
                    layer.units,
                    layer.return_sequences,
                )
            )
        else:
            params.append(("dense", layer.weights.T.copy(), layer.bias, layer.activation))

    def sigmoid(v):
        return 1.0 / (1.0 + np.exp(-v))

    def run(x: np.ndarray) -> np.ndarray:
        seq = x
        for p in params:
            if p[0] == "lstm":
                _, wt, ut, b, h_units, rs = p
                h = np.zeros(h_units, np.float32)
                c = np.zeros(h_units, np.float32)
                xw = seq @ wt + b
                outs = []
                for t in range(seq.shape[0]):
                    z = xw[t] + h @ ut
                    i, f, g, o = np.split(z, 4)
                    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
                    h = sigmoid(o) * np.tanh(c)
                    outs.append(h)
                seq = np.stack(outs) if rs else h
            else:
                _, wt, b, act = p
                seq = seq @ wt + b
                if act == "softmax":
                    e = np.exp(seq - seq.max())
                    seq = e / e.sum()
        return seq

    return run


def generated_python(model: Model, workdir: Path) -> Callable[[list], list] | None:
    try:
        files = get_backend("python").render(model, "netpy")
    except lstmgen.LstmgenError:
        return None
    for filename, text in files.items():
        (workdir / filename).write_text(text)
    sys.path.insert(0, str(workdir))
    try:
        import importlib

        module = importlib.import_module("netpy")
        module = importlib.reload(module)
    finally:
        sys.path.pop(0)
    return module.predict


def check(name: str, got: np.ndarray, expected: np.ndarray) -> None:
    got = np.asarray(got, np.float64).reshape(expected.shape)
    err = float(np.max(np.abs(got - expected) / np.maximum(np.abs(expected), 1.0)))
    if not err <= 1e-5:
        raise SystemExit(f"{name}: output differs from Keras (max rel error {err:.3g})")


def bench_model(
    spec: BenchModel, min_seconds: float, with_python: bool, with_tensorflow: bool, realtime: bool
) -> dict[str, float]:
    keras_model = build_keras(spec)
    model = lstmgen.load(keras_model)
    x = (
        np.random.default_rng(1)
        .standard_normal((8, spec.timesteps, spec.input_size))
        .astype(np.float32)
    )
    expected = keras_model.predict(x, verbose=0)
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        runner = bench_streaming.Runner(Path(tmp), realtime)
        for label, flags in C_FLAGS.items():
            us, y = time_generated_c(model, x, flags, Path(tmp), min_seconds, runner)
            check(label, y, expected)
            results[label] = us
        ort_run = onnx_session(model, spec.timesteps)
        check("onnxruntime", np.stack([ort_run(s) for s in x]), expected)
        with runner.scheduled():
            results["onnxruntime"] = time_call(lambda: ort_run(x[0]), min_seconds)
        x0 = x[:1]
        if with_tensorflow:
            check("TF model(x)", np.asarray(keras_model(x)), expected)
            results["TF model(x)"] = time_call(lambda: keras_model(x0), min_seconds)
            results["TF predict"] = time_call(
                lambda: keras_model.predict(x0, verbose=0), min_seconds
            )
        np_run = numpy_loop(model)
        check("numpy loop", np.stack([np_run(s) for s in x]), expected)
        results["numpy loop"] = time_call(lambda: np_run(x[0]), min_seconds)
        if with_python:
            predict = generated_python(model, Path(tmp))
            if predict is not None:
                rows = [s.tolist() for s in x]
                check("generated Python", np.array([predict(r) for r in rows]), expected)
                results["generated Python"] = time_call(lambda: predict(rows[0]), min_seconds)
    return results


def l2_read_bandwidth(workdir: Path) -> float:
    """GB/s of repeatedly summing a 1 MiB float buffer (L2-resident) on one core."""
    src = workdir / "bw.c"
    src.write_text(r"""
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <time.h>
#define N (256 * 1024)
static float buf[N];
int main(void) {
    struct timespec a, b; float acc[64] = {0}; int r, i, j; double best = 1e9, s = 0;
    for (i = 0; i < N; ++i) buf[i] = (float)(i & 7);
    for (r = 0; r < 2000; ++r) {   /* 64 independent sums: limited by loads only */
        clock_gettime(CLOCK_MONOTONIC, &a);
        for (i = 0; i < N; i += 64) for (j = 0; j < 64; ++j) acc[j] += buf[i + j];
        clock_gettime(CLOCK_MONOTONIC, &b);
        double dt = (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
        if (dt < best) best = dt;
    }
    for (j = 0; j < 64; ++j) s += acc[j];
    printf("%f %f\n", (double)N * 4 / best / 1e9, s);
    return 0;
}
""")
    subprocess.run(["gcc", "-O3", "-march=native", str(src), "-o", str(workdir / "bw")], check=True)
    out = subprocess.run([str(workdir / "bw")], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter timing runs")
    parser.add_argument("--no-python", action="store_true", help="skip the pure-Python peer")
    parser.add_argument(
        "--no-tensorflow", action="store_true", help="skip timing TensorFlow (model(x), predict)"
    )
    parser.add_argument(
        "--streams",
        action="store_true",
        help="also n = 1, 8, 32 streams (NAME_step_n / n x NAME_step) against onnxruntime batch n",
    )
    parser.add_argument(
        "--realtime",
        action="store_true",
        help="time the generated C and onnxruntime under SCHED_FIFO 1 (chrt; root)",
    )
    args = parser.parse_args()
    min_seconds = 0.3 if args.quick else 1.0
    print(f"lstmgen {lstmgen.__version__}; one sequence, batch 1, single thread; best of 5")
    all_results = {}
    for spec in MODELS:
        results = bench_model(
            spec, min_seconds, not args.no_python, not args.no_tensorflow, args.realtime
        )
        all_results[spec.name] = results
        model = lstmgen.load(build_keras(spec))
        gmac = macs(model, spec.timesteps) / 1e3  # MAC per µs = 1e-3 GMAC/s
        ref = results[REFERENCE]
        print(f"\n{spec.name}: {macs(model, spec.timesteps):,} MAC per sequence")
        print(f"  {'implementation':<18} {'µs/seq':>11} {'GMAC/s':>8} {'time / lstmgen':>15}")
        for label, us in results.items():
            print(f"  {label:<18} {us:>11.2f} {gmac / us:>8.3f} {us / ref:>14.2f}x")
    large = next(s for s in MODELS if s.name.startswith("large"))
    with tempfile.TemporaryDirectory() as tmp:
        bw = l2_read_bandwidth(Path(tmp))
        runner = bench_streaming.Runner(Path(tmp), args.realtime)
        peak = bench_streaming.fma_peak(runner)
        print(f"\nthis core's FMA peak (bench/fma_peak.c): {peak:.1f} GMAC/s")
        if args.streams:
            for layer in (bench_streaming.Layer("lstm", 64), bench_streaming.Layer("gru", 64)):
                bench_streaming.bench_streams(runner, layer, peak, 3)
    weights = 4 * 4 * 256 * (9 + 256)
    us = all_results[large.name][REFERENCE]
    reached = weights * large.timesteps / (us * 1e-6) / 1e9
    print(
        f"\nlarge model: weights {weights / 1e6:.2f} MB read every step; generated C reads "
        f"{reached:.1f} GB/s = {100 * reached / bw:.0f}% of this core's measured "
        f"L2-resident read bandwidth ({bw:.1f} GB/s)"
    )


if __name__ == "__main__":
    main()
