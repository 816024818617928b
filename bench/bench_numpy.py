"""Benchmark: the generated numpy module (float32 and float64) against onnxruntime,
TensorFlow and the generated pure-Python module on the same models, at batch 1 and batch 64,
one thread each.

Every implementation's output is first checked against Keras `model.predict` (max relative
error 1e-5); then each is timed (best of 5 runs), and the table gives microseconds per call
(a whole batch) and each peer's time divided by the generated float32 module's: above 1
means the generated module is faster. The pure-Python module (one call per sequence) is
timed where a call of the batch costs under PYTHON_MAX_WEIGHT_STEPS weight-steps (about a
second), else shown as "-". Run: python bench/bench_numpy.py [--quick] [--no-python]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

# one thread everywhere: numpy's BLAS, onnxruntime and TensorFlow alike
for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import lstmgen  # noqa: E402
from lstmgen.targets import render  # noqa: E402
from lstmgen.verify import error_metrics  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_inference import MODELS, build_keras, generated_python, time_call  # noqa: E402
from onnx_peer import batch_session  # noqa: E402

BATCHES = (1, 64)
REFERENCE = "numpy f32"
PYTHON = "generated Python"
#: the pure-Python module is timed on a batch when weights x timesteps x batch is below this
PYTHON_MAX_WEIGHT_STEPS = 20_000_000


def generated_module(model, name: str, folder: Path, precision: str):
    import importlib.util

    files = render("numpy", model, name, precision=precision)
    for filename, text in files.items():
        (folder / filename).write_text(text, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def peers(keras_model, ir, folder: Path, with_python: bool) -> dict:
    import tensorflow as tf

    single = generated_module(ir, "bench_f32", folder, "single")
    double = generated_module(ir, "bench_f64", folder, "double")
    onnx_run = batch_session(ir, keras_model.input_shape[1])
    graph = tf.function(lambda x: keras_model(x, training=False))
    run = {
        "numpy f32": single.predict,
        "numpy f64": double.predict,
        "onnxruntime": onnx_run,
        "TF tf.function": lambda x: graph(x).numpy(),
        "TF model(x)": lambda x: keras_model(x, training=False).numpy(),
    }
    python_predict = generated_python(ir, folder) if with_python else None
    if python_predict is not None:
        run[PYTHON] = lambda x: np.array([python_predict(s.tolist()) for s in x])
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter timing runs")
    parser.add_argument("--no-python", action="store_true", help="skip the pure-Python peer")
    args = parser.parse_args()
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    min_seconds = 0.2 if args.quick else 1.0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in MODELS:
            keras_model = build_keras(spec)
            ir = lstmgen.load(keras_model)
            run = peers(keras_model, ir, Path(tmp), not args.no_python)
            for batch in BATCHES:
                x = (
                    np.random.default_rng(batch)
                    .standard_normal((batch, spec.timesteps, spec.input_size))
                    .astype(np.float32)
                )
                expected = keras_model.predict(x, verbose=0)
                times = {}
                for peer, fn in run.items():
                    weight_steps = ir.parameter_count() * spec.timesteps * batch
                    if peer == PYTHON and weight_steps > PYTHON_MAX_WEIGHT_STEPS:
                        continue
                    worst = float(error_metrics(fn(x), expected)[1].max())
                    if not worst <= 1e-5:
                        raise SystemExit(f"{peer} on {spec.name}: max rel error {worst:.3g}")
                    times[peer] = time_call(lambda fn=fn, x=x: fn(x), min_seconds)
                rows.append((spec.name, batch, times))
                print(
                    f"{spec.name}, batch {batch}: "
                    + ", ".join(f"{k} {v:,.0f} us" for k, v in times.items()),
                    flush=True,
                )
    names = list(dict.fromkeys(peer for _, _, times in rows for peer in times))
    print()
    print("| model | batch | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for model_name, batch, times in rows:
        cells = []
        for peer in names:
            if peer not in times:
                cells.append("-")
                continue
            text = _us(times[peer])
            if peer == REFERENCE:
                cells.append(f"**{text}**")
            else:
                cells.append(f"{text} ({times[peer] / times[REFERENCE]:.2f}x)")
        print(f"| {model_name} | {batch} | " + " | ".join(cells) + " |")


def _us(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:,.1f} ms"
    return f"{value:,.0f} µs" if value >= 10 else f"{value:.1f} µs"


if __name__ == "__main__":
    main()
