"""Benchmark: streaming inference, one sample per `NAME_step` call with the state carried,
of one LSTM or GRU layer (D = H = 4, 8, 16, 32, 64) in the generated C (gcc and clang),
against onnxruntime (one ONNX LSTM/GRU timestep per call, state in/out) and named peers in
the same run; and many independent streams (`NAME_step_n`, or n calls of `NAME_step`)
against onnxruntime with batch n.

Every implementation's output on a 2,000-step sequence is first checked against Keras
(max relative error 1e-5); then 480,000 calls are timed in chunks and the best chunk counts.

Peers outside this repository (e.g. RTNeural, the C++ library audio developers use for
real-time RNNs) plug in with --peer LABEL=COMMAND: a program the user builds, run as
  COMMAND WDIR T_CHECK CALLS RUNS OUT
with {kind} (lstm or gru) and {units} replaced in COMMAND. WDIR holds the layer's Keras
weights as float32 files in Keras layout (W.bin [D][G], U.bin [H][G], b.bin: LSTM [4H], GRU
[2][3H]; G = 4H or 3H, gates in Keras order) and x.bin (T_CHECK rows of D floats). It must
write its outputs (h after each of the T_CHECK steps from a zero state) to OUT, time CALLS
further steps RUNS times, and print the best nanoseconds per step. A peer whose command is
missing is skipped with a note.

Run: python bench/bench_streaming.py [--quick] [--streams] [--peer LABEL=CMD ...] [--realtime]
         [--sizes 4,8,...] [--stream-sizes 16,32,...] [--streams-only] [--stream-rounds R]
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import lstmgen  # noqa: E402
from lstmgen.targets import get_backend  # noqa: E402

HERE = Path(__file__).resolve().parent
SIZES = [4, 8, 16, 32, 64]
T_CHECK = 2000
CALLS = 480_000
STREAMS = [1, 8, 32]
# label: (compiler, flags); a compiler not installed is skipped with a note
C_BUILDS = {
    "C -O3 native": ("gcc", ["-O3", "-march=native"]),
    "C clang -O3 native": ("clang", ["-O3", "-march=native"]),
}
REFERENCE = "C -O3 native"
ORT_LABEL = "onnxruntime"
ORT_CALLS = 20_000  # one Python call per step: fewer calls than the C harness


@dataclass
class Layer:
    kind: str  # "lstm" or "gru"
    units: int

    @property
    def name(self) -> str:
        return f"{self.kind.upper()} {self.units}"

    @property
    def gates(self) -> int:
        return 4 if self.kind == "lstm" else 3

    def macs_per_step(self) -> int:
        return self.gates * self.units * 2 * self.units  # D = H: input and recurrent rows


def build_keras(layer: Layer, seed: int = 0):
    """One recurrent layer, D = H, return_sequences; weights uniform in +-1/sqrt(H)."""
    import keras

    cls = keras.layers.LSTM if layer.kind == "lstm" else keras.layers.GRU
    rnn = cls(layer.units, return_sequences=True)
    model = keras.Sequential([keras.Input((None, layer.units)), rnn])
    rng = np.random.default_rng(seed)
    rnn.set_weights(
        [
            rng.uniform(-1, 1, w.shape).astype(np.float32) / np.sqrt(max(w.shape[0], layer.units))
            for w in rnn.get_weights()
        ]
    )
    return model, rnn


def max_error(got: np.ndarray, expected: np.ndarray) -> float:
    got = np.asarray(got, np.float64).reshape(expected.shape)
    return float(np.max(np.abs(got - expected) / np.maximum(np.abs(expected), 1.0)))


def check(name: str, got: np.ndarray, expected: np.ndarray) -> None:
    err = max_error(got, expected)
    if not err <= 1e-5:
        raise SystemExit(f"{name}: output differs from Keras (max rel error {err:.3g})")


class Runner:
    """Builds and runs executables; with realtime, timed programs run under `chrt -f 1`."""

    def __init__(self, workdir: Path, realtime: bool) -> None:
        self.workdir = workdir
        self.realtime = realtime and shutil.which("chrt") is not None
        self.prefix = ["chrt", "-f", "1"] if self.realtime else []

    @contextmanager
    def scheduled(self) -> Iterator[None]:
        """This thread under SCHED_FIFO 1 while in-process peers (onnxruntime) are timed."""
        if not self.realtime:
            yield
            return
        before = os.sched_getscheduler(0), os.sched_getparam(0)
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        try:
            yield
        finally:
            os.sched_setscheduler(0, before[0], before[1])

    def run(self, cmd: list[str]) -> str:
        out = subprocess.run([*self.prefix, *cmd], check=True, capture_output=True, text=True)
        return out.stdout

    def build_c(
        self, files: dict[str, str], tag: str, flags: list[str], compiler: str = "gcc"
    ) -> tuple[Path, bool]:
        """The generated files with stream_harness.c; True when the model has net_step_n."""
        d = self.workdir / tag
        d.mkdir(parents=True, exist_ok=True)
        for filename, text in files.items():
            (d / filename).write_text(text)
        has_step_n = re.search(r"\bnet_step_n\s*\(", (d / "net.h").read_text()) is not None
        exe = d / "stream"
        subprocess.run(
            [
                compiler,
                "-std=c99",
                *flags,
                *(["-DNET_HAS_STEP_N"] if has_step_n else []),
                "-I",
                str(d),
                str(HERE / "stream_harness.c"),
                str(d / "net.c"),
                "-lm",
                "-o",
                str(exe),
            ],
            check=True,
        )
        return exe, has_step_n

    def stream(
        self, exe: Path, x: np.ndarray, calls: int, mode: str = "single"
    ) -> tuple[float, np.ndarray]:
        """ns per timestep of all streams, and the outputs of the check pass [n][T][out]."""
        n, t_len = x.shape[:2]
        xin, yout = self.workdir / "x_streams.bin", self.workdir / "y_streams.bin"
        x.astype(np.float32).tofile(xin)
        out = self.run([str(exe), str(xin), str(n), str(t_len), str(calls), str(yout), mode])
        return float(out.split()[0]), np.fromfile(yout, np.float32).reshape(n, t_len, -1)


def fma_peak(runner: Runner) -> float:
    """GMAC/s of this core's FMA units (bench/fma_peak.c)."""
    exe = runner.workdir / "fma_peak"
    subprocess.run(
        [
            "gcc",
            "-O3",
            "-march=native",
            "-ffp-contract=fast",
            str(HERE / "fma_peak.c"),
            "-o",
            str(exe),
        ],
        check=True,
    )
    return float(runner.run([str(exe)]).split()[0])


def run_peer(
    runner: Runner, command: str, layer: Layer, weights: list[np.ndarray], x: np.ndarray, calls: int
) -> tuple[float, np.ndarray] | None:
    argv = shlex.split(command.format(kind=layer.kind, units=layer.units))
    if not argv or shutil.which(argv[0]) is None:
        return None
    wdir = runner.workdir / f"peer_{layer.kind}{layer.units}"
    wdir.mkdir(exist_ok=True)
    for name, array in zip(("W", "U", "b"), weights):
        np.ascontiguousarray(array, np.float32).tofile(wdir / f"{name}.bin")
    x.astype(np.float32).tofile(wdir / "x.bin")
    out = wdir / "y.bin"
    try:
        text = runner.run([*argv, str(wdir), str(len(x)), str(calls), "3", str(out)])
    except subprocess.CalledProcessError as exc:
        message = f"peer {command!r} failed on {layer.name} (exit {exc.returncode})"
        raise SystemExit(message) from exc
    return float(text.split()[0]), np.fromfile(out, np.float32).reshape(len(x), -1)


def time_steps(
    step: Callable[[np.ndarray], np.ndarray], x: np.ndarray, calls: int, chunk: int = 1000
) -> float:
    """Best ns per call of step over chunks of `chunk` calls, cycling through the rows of x."""
    best = float("inf")
    rows = [x[k % len(x)] for k in range(chunk)]
    for _ in range(max(1, calls // chunk)):
        t0 = time.perf_counter()
        for row in rows:
            step(row)
        best = min(best, (time.perf_counter() - t0) / len(rows) * 1e9)
    return best


def bench_layer(
    runner: Runner, layer: Layer, peers: dict[str, str], calls: int, rounds: int
) -> dict[str, float]:
    keras_model, rnn = build_keras(layer)
    model = lstmgen.load(keras_model)
    x = np.random.default_rng(1).standard_normal((T_CHECK, layer.units)).astype(np.float32)
    expected = keras_model.predict(x[None], verbose=0)[0]
    files = get_backend("c").render(model, "net")
    exes = {
        label: runner.build_c(files, f"{layer.kind}{layer.units}_{k}", flags, compiler)[0]
        for k, (label, (compiler, flags)) in enumerate(C_BUILDS.items())
        if shutil.which(compiler)
    }
    ort_step, ort_reset = ort_stream_session(layer.kind, rnn.get_weights(), 1)
    check(ORT_LABEL, np.stack([ort_step(row[None]) for row in x])[:, 0], expected)
    best: dict[str, float] = {}
    skipped: list[str] = []
    for _ in range(rounds):  # interleaved: every implementation once per round
        for label, exe in exes.items():
            ns, y = runner.stream(exe, x[None], calls)
            check(label, y[0], expected)
            best[label] = min(best.get(label, float("inf")), ns)
        ort_reset()
        with runner.scheduled():
            ns = time_steps(ort_step, x[:, None], min(calls, ORT_CALLS))
        best[ORT_LABEL] = min(best.get(ORT_LABEL, float("inf")), ns)
        for label, command in peers.items():
            result = run_peer(runner, command, layer, rnn.get_weights(), x, calls)
            if result is None:
                skipped.append(label)
                continue
            check(label, result[1], expected)
            best[label] = min(best.get(label, float("inf")), result[0])
    for label in sorted(set(skipped)):
        peers.pop(label)
        print(f"  note: peer {label!r} skipped: its command was not found")
    return best


def print_streaming(results: dict[str, dict[str, float]]) -> None:
    labels = list(next(iter(results.values())))
    print(
        "\nns per sample, one NAME_step call per sample (state carried); (x) = the generated C's"
        f" time ({REFERENCE}) / this time: above 1 is faster than it"
    )
    header = f"  {'layer, D=H':<12}" + "".join(f"{label:>28}" for label in labels)
    print(header)
    for name, best in results.items():
        ref = best[REFERENCE]
        cells = []
        for label in labels:
            ns = best.get(label)
            cells.append(
                f"{'-':>28}" if ns is None else f"{ns:>16.1f} ({ref / ns:>6.3g}x)".rjust(28)
            )
        print(f"  {name:<12}" + "".join(cells))


def ort_stream_session(kind: str, weights: list[np.ndarray], batch: int):
    """onnxruntime (one thread) running one ONNX LSTM/GRU timestep for a batch, state in/out."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    w, u, b = (np.asarray(a, np.float32) for a in weights)
    d, g = w.shape
    if kind == "lstm":
        h = g // 4
        order = [0, 3, 1, 2]  # Keras i f c o -> ONNX i o f c

        def reorder(a: np.ndarray) -> np.ndarray:
            return np.concatenate([a[..., k * h : (k + 1) * h] for k in order], axis=-1)

        w_o, r_o = reorder(w).T[None], reorder(u).T[None]
        b_o = np.concatenate([reorder(b), np.zeros(g, np.float32)])[None]
        states, attrs = ["h0", "c0"], {"hidden_size": h}
    else:  # Keras GRU (reset_after) = ONNX GRU with linear_before_reset, gates z r h
        h = g // 3
        w_o, r_o, b_o = w.T[None], u.T[None], np.concatenate([b[0], b[1]])[None]
        states, attrs = ["h0"], {"hidden_size": h, "linear_before_reset": 1}
    inits = [
        numpy_helper.from_array(np.ascontiguousarray(a, np.float32), name)
        for a, name in ((w_o, "W"), (r_o, "R"), (b_o, "B"))
    ]
    outs = ["Y", "Yh", "Yc"][: 1 + len(states)]
    node = helper.make_node(kind.upper(), ["x", "W", "R", "B", "", *states], outs, **attrs)

    def info(name: str, shape: list[int]):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)

    graph = helper.make_graph(
        [node],
        "stream",
        [info("x", [1, batch, d])] + [info(s, [1, batch, h]) for s in states],
        [info("Y", [1, 1, batch, h])] + [info(o, [1, batch, h]) for o in outs[1:]],
        initializer=inits,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(proto)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(
        proto.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    feeds = {s: np.zeros((1, batch, h), np.float32) for s in states}

    def step(x_t: np.ndarray) -> np.ndarray:
        out = sess.run(None, {"x": x_t[None], **feeds})
        for k, s in enumerate(states):
            feeds[s] = out[1 + k]
        return out[1][0]

    def reset() -> None:
        for s in states:
            feeds[s][:] = 0.0

    return step, reset


def bench_streams(runner: Runner, layer: Layer, peak: float, rounds: int) -> None:
    """samples/s of n streams: n x NAME_step, NAME_step_n (when generated), onnxruntime.

    Every round times each implementation once, in turn, so that all of them see the same
    machine; the best round of each is reported, and the ratio of onnxruntime's time to
    lstmgen's within each round, as the median over the rounds (with its range): on a
    shared machine both sides drift, and a ratio of two best times from different moments
    swings more than one taken within a round."""
    keras_model, rnn = build_keras(layer)
    model = lstmgen.load(keras_model)
    t_len = 200
    x = np.random.default_rng(2).standard_normal((max(STREAMS), t_len, layer.units))
    x = x.astype(np.float32)
    expected = keras_model.predict(x, verbose=0)
    exe, has_step_n = runner.build_c(
        get_backend("c").render(model, "net"),
        f"streams_{layer.kind}{layer.units}",
        C_BUILDS[REFERENCE][1],
    )
    modes = {"n x NAME_step": "single"}
    if has_step_n:
        modes["NAME_step_n"] = "many"
    ours = "NAME_step_n" if has_step_n else "n x NAME_step"
    macs = layer.macs_per_step()
    print(
        f"\n{layer.name} (D=H), n independent streams: Msamples/s (GMAC/s; FMA peak {peak:.1f}); "
        f"onnxruntime's time / {ours}'s within each of {rounds} rounds: median (range)"
    )
    if not has_step_n:
        print("  note: this lstmgen generates no NAME_step_n: only n x NAME_step is timed")
    for n in STREAMS:
        best: dict[str, float] = {}
        ratios: list[float] = []
        step, reset = ort_stream_session(layer.kind, rnn.get_weights(), n)
        check("onnxruntime", np.stack([step(x[:n, t]) for t in range(t_len)], 1), expected[:n])
        for _ in range(rounds):
            times: dict[str, float] = {}
            for label, mode in modes.items():
                ns, y = runner.stream(exe, x[:n], max(2000, CALLS // (8 * n)), mode)
                check(f"{label} n={n}", y, expected[:n])
                times[label] = ns
            reset()
            with runner.scheduled():  # best chunk of 25 calls, as the C harness takes its best
                times["onnxruntime batch n"] = time_steps(step, x[:n].transpose(1, 0, 2), 300, 25)
            ratios.append(times["onnxruntime batch n"] / times[ours])
            for label, ns in times.items():
                best[label] = min(best.get(label, float("inf")), ns)
        ref = best[ours]
        cells = "  ".join(
            f"{label} {n / ns * 1e3:.3g} ({macs * n / ns:.1f}; {ns / ref:.2f}x time)"
            for label, ns in best.items()
        )
        print(
            f"  n={n:<3} {cells}  onnxruntime / {ours} {float(np.median(ratios)):.2f}x "
            f"({min(ratios):.2f}-{max(ratios):.2f})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and rounds")
    parser.add_argument("--streams", action="store_true", help="also time n = 1, 8, 32 streams")
    parser.add_argument(
        "--peer", action="append", default=[], metavar="LABEL=COMMAND", help="external peer"
    )
    parser.add_argument(
        "--realtime", action="store_true", help="run the timed programs under chrt -f 1 (root)"
    )
    parser.add_argument(
        "--sizes", default=",".join(map(str, SIZES)), help="units H (= D), comma-separated"
    )
    parser.add_argument(
        "--stream-sizes",
        help="units H (= D) of the --streams section, comma-separated (default: the largest of "
        "--sizes); LSTM and GRU each, a GRU only up to 64",
    )
    parser.add_argument(
        "--streams-only", action="store_true", help="only the --streams section (implies --streams)"
    )
    parser.add_argument(
        "--stream-rounds", type=int, default=7, help="rounds of the --streams section (default 7)"
    )
    args = parser.parse_args()
    sizes = [int(v) for v in args.sizes.split(",")]
    stream_sizes = [int(v) for v in (args.stream_sizes or str(max(sizes))).split(",")]
    peers = dict(p.split("=", 1) for p in args.peer)
    calls, rounds = (48_000, 2) if args.quick else (CALLS, 3)
    print(
        f"lstmgen {lstmgen.__version__}; streaming, {calls:,} calls per run, best chunk of "
        f"{rounds} interleaved runs; outputs checked against Keras first"
    )
    with tempfile.TemporaryDirectory() as tmp:
        runner = Runner(Path(tmp), args.realtime)
        results = {}
        for kind in ("lstm", "gru") if not args.streams_only else ():
            for units in sizes:
                layer = Layer(kind, units)
                results[layer.name] = bench_layer(runner, layer, peers, calls, rounds)
                timings = ", ".join(f"{k} {v:.1f} ns" for k, v in results[layer.name].items())
                print(f"  {layer.name}: {timings}", flush=True)
        if results:
            print_streaming(results)
        if args.streams or args.streams_only:
            peak = fma_peak(runner)
            for kind in ("lstm", "gru"):
                for units in stream_sizes:
                    if kind == "lstm" or units <= 64 or len(stream_sizes) == 1:
                        bench_streams(runner, Layer(kind, units), peak, args.stream_rounds)


if __name__ == "__main__":
    main()
