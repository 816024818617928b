"""ONNX front end: LSTM, GRU and RNN graphs, unidirectional and bidirectional (hand-built,
the onnx package's operator cases, torch and tf2onnx exports) against onnxruntime running
the file, the float64 reference and every backend that implements the model's layers and
features."""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import lstmgen
from lstmgen.cli import main
from lstmgen.errors import LstmgenError, ModelError, UnsupportedLayerError
from lstmgen.extractors import open_model
from lstmgen.reference import forward
from lstmgen.targets import TARGETS, get_backend, render
from lstmgen.verify import error_metrics

TOLERANCE = 1e-5
SEQUENCES = 5
DYNAMIC_T = 6
INT_MAX = np.iinfo(np.int64).max
INT_MIN = np.iinfo(np.int64).min
#: The largest relative error seen per category, printed at the end (pytest -s).
MAX_ERRORS: dict[str, float] = {}


@pytest.fixture(scope="module")
def onnx():
    from support import require_module

    require_module("onnxruntime")
    return require_module("onnx")


def _session(model: Any):
    """onnxruntime on `model` (its CPU LSTM has no layout=1: such LSTMs run rewritten as
    Transpose + layout 0, which onnx's reference evaluator cross-checks below)."""
    import onnxruntime as ort

    from lstmgen.extractors.onnx import runnable_by_onnxruntime

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    source = (runnable_by_onnxruntime(model) or model).SerializeToString()
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def record(category: str, got: np.ndarray, ref: np.ndarray, what: str) -> float:
    _, rel = error_metrics(got, ref)
    worst = float(rel.max())
    MAX_ERRORS[category] = max(MAX_ERRORS.get(category, 0.0), worst)
    assert worst <= TOLERANCE, f"{what}: max relative error {worst:.3g}"
    return worst


# ---- hand-built ONNX graphs ------------------------------------------------------------


class GraphBuilder:
    """Builds an ONNX graph node by node; knows how the data tensor is laid out."""

    def __init__(self, onnx: Any, rng: np.random.Generator) -> None:
        self.onnx = onnx
        self.rng = rng
        self.nodes: list = []
        self.inits: list = []
        self.count = itertools.count()

    def name(self, prefix: str) -> str:
        return f"{prefix}_{next(self.count)}"

    def const(self, value: Any, prefix: str = "c") -> str:
        name = self.name(prefix)
        self.inits.append(self.onnx.numpy_helper.from_array(np.asarray(value), name))
        return name

    def ints(self, values: list) -> str:
        return self.const(np.array(values, np.int64), "i")

    def weights(self, *shape: int, scale: float = 0.5) -> np.ndarray:
        return self.rng.uniform(-scale, scale, shape).astype(np.float32)

    def node(self, op: str, inputs: list, n_out: int = 1, **attrs: Any) -> Any:
        outs = [self.name(op.lower()) for _ in range(n_out)]
        self.nodes.append(self.onnx.helper.make_node(op, inputs, outs, name=self.name(op), **attrs))
        return outs[0] if n_out == 1 else outs

    def model(
        self, x_name: str, x_shape: list, y_name: str, opset: int = 17, extra_inputs: tuple = ()
    ) -> Any:
        helper, tp = self.onnx.helper, self.onnx.TensorProto
        graph = helper.make_graph(
            self.nodes,
            "g",
            [helper.make_tensor_value_info(x_name, tp.FLOAT, x_shape)]
            + [helper.make_tensor_value_info(n, tp.FLOAT, shape) for n, shape in extra_inputs],
            [helper.make_tensor_value_info(y_name, tp.FLOAT, None)],
            self.inits,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        model.ir_version = 8
        model = self.onnx.shape_inference.infer_shapes(model)  # gives the output a shape
        self.onnx.checker.check_model(model)
        return model


LSTM_ACTIVATIONS = [  # (ONNX names or None for the default, alpha, beta)
    (None, [], []),
    (["Sigmoid", "Tanh", "Tanh"], [], []),
    (["HardSigmoid", "Tanh", "Tanh"], [0.2], [0.5]),
    (["Sigmoid", "Softsign", "Softsign"], [], []),
    (["Sigmoid", "Relu", "Tanh"], [], []),
    (["HardSigmoid", "Elu", "Softplus"], [1.0 / 6.0, 1.0], [0.5]),
    (["Sigmoid", "Tanh", "Elu"], [], []),
]
HEAD_ACTIVATIONS = [
    None,
    "Relu",
    "Sigmoid",
    "Tanh",
    "Softmax",
    "HardSigmoid",
    "Softsign",
    "Softplus",
    "Elu",
]


def random_spec(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    plain = seed % 3 == 0  # features every backend implements today
    n_lstm = int(rng.integers(1, 4))
    lstms = []
    for k in range(n_lstm):
        lstms.append(
            dict(
                h=int(rng.integers(1, 7)),
                direction=str(rng.choice(["forward", "reverse"])),
                layout=int(rng.integers(0, 2)),
                bias=bool(rng.random() < 0.7),
                peephole=not plain and bool(rng.random() < 0.4),
                clip=None if plain or rng.random() < 0.6 else float(rng.choice([0.5, 2.0])),
                input_forget=not plain and bool(rng.random() < 0.3),
                init="zero"
                if plain and rng.random() < 0.5
                else ("none" if plain else str(rng.choice(["none", "zero", "const", "fill"]))),
                acts=int(rng.integers(0, 2))
                if plain
                else int(rng.integers(0, len(LSTM_ACTIVATIONS))),
                reverse_after=bool(rng.random() < 0.25) and k < n_lstm - 1,
            )
        )
    head = [
        (int(rng.integers(1, 5)), HEAD_ACTIVATIONS[int(rng.integers(0, 9))])
        for _ in range(int(rng.integers(0, 3)))
    ]
    return dict(
        seed=seed,
        d=int(rng.integers(1, 5)),
        t=None if rng.random() < 0.5 else int(rng.integers(1, 7)),
        batch=None if rng.random() < 0.6 else int(rng.integers(1, 4)),
        input_layout=str(rng.choice(["tbd", "btd"])),
        lstms=lstms,
        output=str(rng.choice(["yh", "gather", "slice", "sequence"])),
        yh_glue=str(rng.choice(["squeeze", "flatten", "reshape"])),
        head=head,
    )


def build(onnx: Any, spec: dict) -> tuple[Any, Callable, Callable]:
    """The ONNX model of `spec`, plus functions mapping IR-layout inputs [N, T, D] to the
    graph input and the graph output back to [N, (T,) O] (independent of the extractor)."""
    g = GraphBuilder(onnx, np.random.default_rng(1000 + spec["seed"]))
    d, t, batch = spec["d"], spec["t"], spec["batch"]
    layout = spec["input_layout"]
    x_shape = [t or "T", batch or "B", d] if layout == "tbd" else [batch or "B", t or "T", d]
    cur, width, flipped = "x", d, False
    lstms = spec["lstms"]
    for k, ls in enumerate(lstms):
        h = ls["h"]
        want = "tbd" if ls["layout"] == 0 else "btd"
        if layout != want:
            cur, layout = g.node("Transpose", [cur], perm=[1, 0, 2]), want
        w, r = g.weights(1, 4 * h, width), g.weights(1, 4 * h, h)
        inputs = [
            cur,
            g.const(w, "W"),
            g.const(r, "R"),
            g.const(g.weights(1, 8 * h), "B") if ls["bias"] else "",
            "",
        ]
        state_shape = [1, batch, h] if ls["layout"] == 0 else [batch, 1, h]
        if ls["init"] in ("const", "zero") and batch is not None:
            for _ in range(2):
                row = g.weights(h) if ls["init"] == "const" else np.zeros(h, np.float32)
                inputs.append(g.const(np.broadcast_to(row, state_shape).copy(), "S"))
        elif ls["init"] in ("const", "zero", "fill"):  # shape from the input: one value
            shape = g.node("Shape", [cur])
            bdim = g.node("Gather", [shape, g.ints([1 if ls["layout"] == 0 else 0])])
            parts = [g.ints([1]), bdim] if ls["layout"] == 0 else [bdim, g.ints([1])]
            full = g.node("Concat", parts + [g.ints([h])], axis=0)
            value = 0.0 if ls["init"] == "zero" else float(g.rng.uniform(-0.5, 0.5))
            state = g.node(
                "ConstantOfShape",
                [full],
                value=onnx.helper.make_tensor("v", onnx.TensorProto.FLOAT, [1], [value]),
            )
            inputs += [state, state]
        else:
            inputs += ["", ""]
        if ls["peephole"]:
            inputs.append(g.const(g.weights(1, 3 * h), "P"))
        while inputs and inputs[-1] == "":
            inputs.pop()
        attrs: dict = dict(hidden_size=h, direction=ls["direction"])
        if ls["layout"]:
            attrs["layout"] = 1
        if ls["clip"] is not None:
            attrs["clip"] = ls["clip"]
        if ls["input_forget"]:
            attrs["input_forget"] = 1
        names, alpha, beta = LSTM_ACTIVATIONS[ls["acts"]]
        if names:
            attrs["activations"] = names
        if alpha:
            attrs["activation_alpha"] = alpha
        if beta:
            attrs["activation_beta"] = beta
        last = k == len(lstms) - 1
        if last and spec["output"] == "yh":
            _, yh = g.node("LSTM", inputs, n_out=2, **attrs)
            glue = spec["yh_glue"]
            nd_axis = 0 if ls["layout"] == 0 else 1
            if glue == "squeeze":
                cur = g.node("Squeeze", [yh, g.ints([nd_axis])])
            elif glue == "flatten":
                if ls["layout"] == 0:
                    yh = g.node("Transpose", [yh], perm=[1, 0, 2])
                cur = g.node("Flatten", [yh], axis=1)
            else:
                cur = g.node("Reshape", [yh, g.ints([-1, h])])
            flipped, width, layout = False, h, "bd"
            break
        y = g.node("LSTM", inputs, **attrs)
        cur = g.node("Squeeze", [y, g.ints([1 if ls["layout"] == 0 else 2])])
        flipped, width = ls["direction"] == "reverse", h
        cur, flipped, layout = step_glue(g, spec, cur, layout, flipped, ls["reverse_after"], last)
    return finish(g, spec, cur, width, layout, x_shape)


def step_glue(
    g: GraphBuilder,
    spec: dict,
    cur: str,
    layout: str,
    flipped: bool,
    reverse_after: bool,
    last: bool,
) -> tuple[str, bool, str]:
    """After a recurrent layer's sequence [T, B, F] or [B, T, F]: an optional time flip,
    then for the last layer the last processed step (Gather or Slice) or the sequence
    back in the IR's order."""
    time_pos = 0 if layout == "tbd" else 1
    if reverse_after:  # a time flip between layers: Slice with step -1
        cur = g.node(
            "Slice", [cur, g.ints([-1]), g.ints([INT_MIN]), g.ints([time_pos]), g.ints([-1])]
        )
        flipped = not flipped
    if last and spec["output"] in ("gather", "slice"):
        step = 0 if flipped else -1
        if spec["output"] == "gather":
            cur = g.node("Gather", [cur, g.const(np.array(step, np.int64))], axis=time_pos)
        else:
            end = 1 if flipped else INT_MAX
            cur = g.node("Slice", [cur, g.ints([step]), g.ints([end]), g.ints([time_pos])])
            cur = g.node("Squeeze", [cur, g.ints([time_pos])])
        layout = "bd"
    elif last and flipped:  # give the sequence back in the IR's order
        lens_shape = g.node("Shape", [cur])
        t_len = g.node("Gather", [lens_shape, g.const(np.array(time_pos, np.int64))])
        b_len = g.node("Gather", [lens_shape, g.ints([1 - time_pos])])
        lens = g.node("Expand", [t_len, b_len])
        cur = g.node("ReverseSequence", [cur, lens], time_axis=time_pos, batch_axis=1 - time_pos)
    return cur, flipped, layout


def finish(
    g: GraphBuilder, spec: dict, cur: str, width: int, layout: str, x_shape: list
) -> tuple[Any, Callable, Callable]:
    """The Dense head of `spec`, the model, and the IR-layout <-> graph layout maps."""
    for units, act in spec["head"]:
        if layout == "bd" and g.rng.random() < 0.7:
            trans_b = int(g.rng.integers(0, 2))
            wd = g.weights(units, width) if trans_b else g.weights(width, units)
            ins = [cur, g.const(wd, "D")]
            if g.rng.random() < 0.7:
                ins.append(g.const(g.weights(units), "Db"))
            cur = g.node("Gemm", ins, transB=trans_b, alpha=1.0, beta=1.0)
        else:
            cur = g.node("MatMul", [cur, g.const(g.weights(width, units), "D")])
            if g.rng.random() < 0.7:
                cur = g.node("Add", [g.const(g.weights(units), "Db"), cur])
        width = units
        if act == "Softmax":
            cur = g.node("Softmax", [cur], axis=-1)
        elif act == "HardSigmoid":
            cur = g.node("HardSigmoid", [cur], alpha=0.2, beta=0.5)
        elif act is not None:
            cur = g.node(act, [cur])
    y = g.node("Identity", [cur])
    model = g.model("x", x_shape, y)
    sequence = layout in ("tbd", "btd")

    def to_input(x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.swapaxes(x, 0, 1) if spec["input_layout"] == "tbd" else x)

    def from_output(out: np.ndarray) -> np.ndarray:
        return np.swapaxes(out, 0, 1) if sequence and layout == "tbd" else out

    return model, to_input, from_output


def run_graph(
    model: Any,
    batch: int | None,
    to_input: Callable,
    from_output: Callable,
    x: np.ndarray,
    engine: str = "onnxruntime",
) -> np.ndarray:
    """The graph on x, in chunks of its fixed batch size: onnxruntime, or onnx's
    reference evaluator (which ignores activations, clip and input_forget)."""
    if engine == "onnxruntime":
        sess = _session(model)
        run = lambda feed: sess.run(None, feed)[0]  # noqa: E731
    else:
        from onnx.reference import ReferenceEvaluator

        evaluator = ReferenceEvaluator(model)
        run = lambda feed: evaluator.run(None, feed)[0]  # noqa: E731
    chunk = batch or len(x)
    outs = []
    for start in range(0, len(x), chunk):
        part = x[start : start + chunk]
        real = len(part)
        part = np.concatenate([part, np.zeros((chunk - real,) + part.shape[1:], np.float32)])
        outs.append(from_output(np.asarray(run({"x": to_input(part)})))[:real])
    return np.concatenate(outs)


# ---- backends --------------------------------------------------------------------------


def check_backends(
    cases: list, tmp_path: Path, oracle: str = "onnxruntime"
) -> dict[str, list[str]]:
    """Every backend on every (label, ir, x, oracle) it implements the features of; the
    others must refuse naming a feature. Returns target -> labels that ran."""
    ran: dict[str, list[str]] = {}
    for target in TARGETS:
        try:
            get_backend(target)
        except LstmgenError:
            continue  # a backend not in this version
        jobs = []
        for label, ir, x, expected in cases:
            try:
                files = render(target, ir, "m")
            except LstmgenError as exc:
                used = sorted(ir.features())
                kinds = sorted(ir.kinds())
                assert any(f"does not implement LSTM {f}" in str(exc) for f in used) or any(
                    f"does not implement {k} layers" in str(exc) for k in kinds
                ), (target, label, str(exc))
                continue
            assert not set(ir.features()) - set(getattr(get_backend(target), "FEATURES", ())), (
                target,
                label,
                "rendered a feature it does not declare",
            )
            jobs.append((label, ir, files, x, expected))
        if not jobs:
            continue
        outputs = _run_target(target, jobs, tmp_path / target)
        for (label, ir, _files, x, expected), got in zip(jobs, outputs):
            record(f"{target} backend vs {oracle}", got, expected, f"{target} {label}")
            record(f"{target} backend vs reference", got, forward(ir, x), f"{target} {label}")
        ran[target] = [job[0] for job in jobs]
    print(f"\nbackends vs {oracle}:", {t: len(v) for t, v in ran.items()}, "of", len(cases))
    return ran


def _run_target(target: str, jobs: list, workdir: Path) -> list:
    if target == "c":
        from lstmgen.targets.c import runner as c_runner

        return [
            c_runner.run(ir, files, "m", x, workdir / f"j{k}")
            for k, (_, ir, files, x, _) in enumerate(jobs)
        ]
    if target == "python":
        from lstmgen.targets.python import runner as py_runner

        return py_runner.run_batch(
            [py_runner.Job(ir, files, "m", x) for _, ir, files, x, _ in jobs], workdir
        ).outputs
    if target == "matlab":
        from lstmgen.targets.matlab import runner as m_runner

        try:
            m_runner.octave_path()
        except LstmgenError:
            from support import missing

            missing("tool 'octave-cli'")
        batch = [
            m_runner.Job(ir, files, "m", x, workdir / f"j{k}")
            for k, (_, ir, files, x, _) in enumerate(jobs)
        ]
        return [r.check(j).predict for r, j in zip(m_runner.run_batch(batch), batch)]
    from lstmgen.targets import get_runner  # a future target: its generic run()

    runner = get_runner(target)
    return [
        runner.run(ir, files, "m", x, workdir / f"j{k}")
        for k, (_, ir, files, x, _) in enumerate(jobs)
    ]


# ---- tests: random hand-built graphs ---------------------------------------------------

GRID = 18


def test_random_graphs_match_onnxruntime(onnx, tmp_path):
    specs = [random_spec(seed) for seed in range(GRID)]
    lstm_specs = [ls for s in specs for ls in s["lstms"]]
    for key, options in (
        ("direction", {"forward", "reverse"}),
        ("layout", {0, 1}),
        ("bias", {True, False}),
        ("peephole", {True, False}),
        ("input_forget", {True, False}),
        ("init", {"none", "zero", "const", "fill"}),
    ):
        assert {ls[key] for ls in lstm_specs} >= options, key
    assert {s["output"] for s in specs} == {"yh", "gather", "slice", "sequence"}
    assert any(ls["clip"] for ls in lstm_specs) and any(ls["reverse_after"] for ls in lstm_specs)
    assert any(len(s["lstms"]) > 1 for s in specs) and any(s["head"] for s in specs)
    cases, checked_by_onnx = [], []
    for spec in specs:
        model, to_input, from_output = build(onnx, spec)
        path = tmp_path / f"g{spec['seed']}.onnx"
        onnx.save(model, str(path))
        loaded = open_model(path)
        ir = loaded.ir
        label = f"graph {spec['seed']}"
        assert [l.kind for l in ir.layers].count("lstm") == len(spec["lstms"]), label
        for ls, layer in zip(spec["lstms"], [l for l in ir.layers if l.kind == "lstm"]):
            assert (layer.peephole is not None) == ls["peephole"], label
            assert (layer.bias is not None) == ls["bias"], label
            assert layer.input_forget == ls["input_forget"] and layer.clip == ls["clip"]
            assert (layer.initial_h is not None) == (ls["init"] in ("const", "fill")), label
            assert "blocks i,o,f,c" in layer.origin
        t_len = spec["t"] or DYNAMIC_T
        assert ir.timesteps == spec["t"]
        assert ("layout=1" in loaded.oracle_name) == any(ls["layout"] for ls in spec["lstms"])
        x = (
            np.random.default_rng(spec["seed"])
            .standard_normal((SEQUENCES, t_len, spec["d"]))
            .astype(np.float32)
        )
        oracle = loaded.predict(x)
        direct = run_graph(model, spec["batch"], to_input, from_output, x)
        assert oracle.shape == direct.shape and np.array_equal(oracle, direct), label
        record("random graphs: reference vs onnxruntime", forward(ir, x), oracle, label)
        if all(
            ls["acts"] < 2 and ls["clip"] is None and not ls["input_forget"] for ls in spec["lstms"]
        ):  # what onnx's reference evaluator implements
            by_onnx = run_graph(model, spec["batch"], to_input, from_output, x, "onnx")
            record("random graphs: reference vs onnx.reference", forward(ir, x), by_onnx, label)
            checked_by_onnx.append(spec)
        cases.append((label, ir, x, oracle))
    assert any(ls["layout"] == 1 for s in checked_by_onnx for ls in s["lstms"])
    ran = check_backends(cases, tmp_path)
    assert len(ran.get("c", [])) >= GRID // 3  # the plain third at least


# ---- tests: random GRU, RNN and bidirectional graphs -------------------------------------

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
#: Per operator, activations of one direction: (ONNX names or None for the default,
#: alpha, beta).
RNN_ACTIVATIONS = {
    "LSTM": [(None, [], []), (["HardSigmoid", "Tanh", "Softsign"], [0.2], [0.5])],
    "GRU": [
        (None, [], []),
        (["Sigmoid", "Tanh"], [], []),
        (["HardSigmoid", "Softsign"], [1.0 / 6.0], [0.5]),
        (["Sigmoid", "Relu"], [], []),
    ],
    "RNN": [
        (None, [], []),
        (["Relu"], [], []),
        (["Sigmoid"], [], []),
        (["Softsign"], [], []),
        (["Elu"], [1.0], []),
    ],
}
RNN_GRID = 18


def random_rnn_spec(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 4))
    layers = []
    for k in range(n):
        op = ["GRU", "RNN", "LSTM"][
            k % 3 if seed % 4 == 3 else int(rng.choice(3, p=[0.4, 0.35, 0.25]))
        ]
        layers.append(
            dict(
                op=op,
                h=int(rng.integers(1, 6)),
                direction=str(
                    rng.choice(["forward", "reverse", "bidirectional"], p=[0.3, 0.25, 0.45])
                ),
                layout=int(rng.integers(0, 2)),
                bias=bool(rng.random() < 0.7),
                lbr=int(rng.integers(0, 2)),
                acts=[int(rng.integers(0, len(RNN_ACTIVATIONS[op]))) for _ in range(2)],
                init=str(
                    rng.choice(
                        ["none", "zero", "fill", "const"]
                        if op == "LSTM"
                        else ["none", "zero", "fill"]
                    )
                ),
                reverse_after=False,
                explicit_width=bool(rng.random() < 0.3),
                peephole=op == "LSTM" and bool(rng.random() < 0.5),
                clip=2.0 if op == "LSTM" and rng.random() < 0.3 else None,
            )
        )
    if seed % 6 == 5:  # a bidirectional LSTM with every per-direction array
        layers[0].update(
            op="LSTM",
            direction="bidirectional",
            init="const",
            peephole=True,
            acts=[a % len(RNN_ACTIVATIONS["LSTM"]) for a in layers[0]["acts"]],
        )
    for k in range(n - 1):  # a bidirectional layer needs its input in time order
        if layers[k + 1]["direction"] == "bidirectional":
            layers[k]["reverse_after"] = layers[k]["direction"] == "reverse"
        else:
            layers[k]["reverse_after"] = bool(rng.random() < 0.25)
    bidi_last = layers[-1]["direction"] == "bidirectional"
    head = [
        (int(rng.integers(1, 5)), HEAD_ACTIVATIONS[int(rng.integers(0, 9))])
        for _ in range(int(rng.integers(0, 3)))
    ]
    return dict(
        seed=seed,
        d=int(rng.integers(1, 5)),
        t=None if rng.random() < 0.5 else int(rng.integers(1, 7)),
        batch=None if rng.random() < 0.6 else int(rng.integers(1, 4)),
        input_layout=str(rng.choice(["tbd", "btd"])),
        layers=layers,
        output=str(
            rng.choice(["yh", "sequence"] if bidi_last else ["yh", "gather", "slice", "sequence"])
        ),
        yh_glue=str(
            rng.choice(
                ["reshape", "flatten", "cat"] if bidi_last else ["squeeze", "flatten", "reshape"]
            )
        ),
        head=head,
    )


def recurrent_attrs(ls: dict) -> dict:
    op, nd = ls["op"], 2 if ls["direction"] == "bidirectional" else 1
    attrs: dict = dict(hidden_size=ls["h"], direction=ls["direction"])
    if ls["layout"]:
        attrs["layout"] = 1
    if op == "GRU" and (ls["lbr"] or ls["bias"]):
        attrs["linear_before_reset"] = ls["lbr"]
    if ls["clip"] is not None:
        attrs["clip"] = ls["clip"]
    chosen = [RNN_ACTIVATIONS[op][a] for a in ls["acts"][:nd]]
    if any(names for names, _, _ in chosen):  # the defaults spelled out where not chosen
        default = {
            "LSTM": ["Sigmoid", "Tanh", "Tanh"],
            "GRU": ["Sigmoid", "Tanh"],
            "RNN": ["Tanh"],
        }[op]
        attrs["activations"] = [a for names, _, _ in chosen for a in (names or default)]
        alpha = [a for _, al, _ in chosen for a in al]
        beta = [b for _, _, be in chosen for b in be]
        if alpha:
            attrs["activation_alpha"] = alpha
        if beta:
            attrs["activation_beta"] = beta
    return attrs


def build_rnn(onnx: Any, spec: dict) -> tuple[Any, Callable, Callable]:
    """The ONNX graph of `random_rnn_spec`: stacked LSTM/GRU/RNN operators, bidirectional
    ones with their directions concatenated the way torch.onnx does (or from Y_h)."""
    g = GraphBuilder(onnx, np.random.default_rng(2000 + spec["seed"]))
    d, t, batch = spec["d"], spec["t"], spec["batch"]
    layout = spec["input_layout"]
    x_shape = [t or "T", batch or "B", d] if layout == "tbd" else [batch or "B", t or "T", d]
    cur, width, flipped = "x", d, False
    layers = spec["layers"]
    for k, ls in enumerate(layers):
        op, h = ls["op"], ls["h"]
        nd = 2 if ls["direction"] == "bidirectional" else 1
        rows = GATES[op] * h
        want = "tbd" if ls["layout"] == 0 else "btd"
        if layout != want:
            cur, layout = g.node("Transpose", [cur], perm=[1, 0, 2]), want
        inputs = [
            cur,
            g.const(g.weights(nd, rows, width), "W"),
            g.const(g.weights(nd, rows, h), "R"),
            g.const(g.weights(nd, 2 * rows), "B") if ls["bias"] else "",
            "",
        ]
        n_states = 2 if op == "LSTM" else 1
        state_shape = [nd, batch, h] if ls["layout"] == 0 else [batch, nd, h]
        if ls["init"] in ("zero", "const") and batch is not None:
            for _ in range(n_states):
                rows_ = g.weights(nd, h) if ls["init"] == "const" else np.zeros((nd, h), np.float32)
                value = rows_[:, None, :] if ls["layout"] == 0 else rows_[None, :, :]
                inputs.append(g.const(np.broadcast_to(value, state_shape).copy(), "S"))
        elif ls["init"] != "none":  # shape from the input: one value
            shape = g.node("Shape", [cur])
            bdim = g.node("Gather", [shape, g.ints([1 if ls["layout"] == 0 else 0])])
            parts = [g.ints([nd]), bdim] if ls["layout"] == 0 else [bdim, g.ints([nd])]
            full = g.node("Concat", parts + [g.ints([h])], axis=0)
            value = float(g.rng.uniform(-0.5, 0.5)) if ls["init"] == "const" else 0.0
            state = g.node(
                "ConstantOfShape",
                [full],
                value=onnx.helper.make_tensor("v", onnx.TensorProto.FLOAT, [1], [value]),
            )
            inputs += [state] * n_states
        if ls["peephole"]:
            inputs += [""] * (7 - len(inputs)) + [g.const(g.weights(nd, 3 * h), "P")]
        while inputs and inputs[-1] == "":
            inputs.pop()
        attrs = recurrent_attrs(ls)
        last = k == len(layers) - 1
        if last and spec["output"] == "yh":
            _, yh = g.node(op, inputs, n_out=2, **attrs)
            glue = spec["yh_glue"]
            nd_axis = 0 if ls["layout"] == 0 else 1
            if glue == "cat":  # torch.cat([h_n[-2], h_n[-1]], -1)
                parts = [
                    g.node("Gather", [yh, g.const(np.array(i, np.int64))], axis=nd_axis)
                    for i in (-2, -1)
                ]
                cur = g.node("Concat", parts, axis=-1)
            elif glue == "squeeze":
                cur = g.node("Squeeze", [yh, g.ints([nd_axis])])
            elif glue == "flatten":
                if ls["layout"] == 0:
                    yh = g.node("Transpose", [yh], perm=[1, 0, 2])
                cur = g.node("Flatten", [yh], axis=1)
            else:
                if ls["layout"] == 0 and nd == 2:
                    yh = g.node("Transpose", [yh], perm=[1, 0, 2])
                cur = g.node(
                    "Reshape",
                    [
                        yh,
                        g.ints(
                            [-1, nd * h]
                            if ls["explicit_width"]
                            else [0, -1]
                            if nd == 2
                            else [-1, h]
                        ),
                    ],
                )
            width, layout = nd * h, "bd"
            break
        y = g.node(op, inputs, **attrs)
        if nd == 1:
            cur = g.node("Squeeze", [y, g.ints([1 if ls["layout"] == 0 else 2])])
        else:  # torch.onnx: [T, 2, B, H] -> [T, B, 2, H] -> [T, B, 2H]
            if ls["layout"] == 0:
                y = g.node("Transpose", [y], perm=[0, 2, 1, 3])
            cur = g.node(
                "Reshape", [y, g.ints([0, 0, 2 * h] if ls["explicit_width"] else [0, 0, -1])]
            )
        flipped, width = ls["direction"] == "reverse", nd * h
        cur, flipped, layout = step_glue(g, spec, cur, layout, flipped, ls["reverse_after"], last)
    return finish(g, spec, cur, width, layout, x_shape)


def test_random_gru_rnn_bidirectional_graphs(onnx, tmp_path):
    """GRU (both linear_before_reset), RNN and bidirectional LSTM/GRU/RNN operators,
    stacked, every direction and layout, against onnxruntime."""
    specs = [random_rnn_spec(seed) for seed in range(RNN_GRID)]
    layer_specs = [ls for s in specs for ls in s["layers"]]
    for key, options in (
        ("op", {"LSTM", "GRU", "RNN"}),
        ("direction", {"forward", "reverse", "bidirectional"}),
        ("layout", {0, 1}),
        ("bias", {True, False}),
        ("init", {"none", "zero", "fill", "const"}),
    ):
        assert {ls[key] for ls in layer_specs} >= options, key
    grus = [ls for ls in layer_specs if ls["op"] == "GRU"]
    assert {(ls["lbr"], ls["bias"]) for ls in grus} == {
        (0, True),
        (1, True),
        (0, False),
        (1, False),
    }
    assert {
        (ls["op"], ls["layout"]) for ls in layer_specs if ls["direction"] == "bidirectional"
    } >= {("GRU", 0), ("GRU", 1), ("RNN", 0), ("RNN", 1), ("LSTM", 0)}
    bidi_last = [s for s in specs if s["layers"][-1]["direction"] == "bidirectional"]
    assert {s["output"] for s in bidi_last} == {"yh", "sequence"}
    assert {s["yh_glue"] for s in bidi_last if s["output"] == "yh"} == {"reshape", "flatten", "cat"}
    assert {s["output"] for s in specs} == {"yh", "gather", "slice", "sequence"}
    assert any(len(s["layers"]) > 1 for s in specs)
    assert any(ls["reverse_after"] for ls in layer_specs)
    assert any(ls["peephole"] and ls["direction"] == "bidirectional" for ls in layer_specs)
    assert any(ls["init"] == "const" and ls["direction"] == "bidirectional" for ls in layer_specs)
    assert {a for ls in layer_specs if ls["op"] != "LSTM" for a in ls["acts"]} == set(range(5))
    cases = []
    for spec in specs:
        model, to_input, from_output = build_rnn(onnx, spec)
        path = tmp_path / f"r{spec['seed']}.onnx"
        onnx.save(model, str(path))
        loaded = open_model(path)
        ir = loaded.ir
        label = f"rnn graph {spec['seed']}"
        recurrent = [l for l in ir.layers if l.recurrent]
        assert len(recurrent) == len(spec["layers"]), label
        for ls, layer in zip(spec["layers"], recurrent):
            bidi = ls["direction"] == "bidirectional"
            assert (layer.kind == "bidirectional") == bidi, label
            parts = [layer.forward, layer.backward] if bidi else [layer]
            kind = {"LSTM": "lstm", "GRU": "gru", "RNN": "simple_rnn"}[ls["op"]]
            assert [p.kind for p in parts] == [kind] * len(parts), label
            if bidi:
                assert not parts[0].go_backwards and parts[1].go_backwards, label
            for part in parts:
                assert (part.bias is not None) == ls["bias"], label
                assert part.output_size == ls["h"], label
                if ls["op"] == "GRU":
                    assert part.reset_after == bool(ls["lbr"]), label
                    assert (part.recurrent_bias is not None) == (ls["bias"] and bool(ls["lbr"])), (
                        label
                    )
                if ls["op"] == "LSTM":
                    assert (part.initial_h is not None) == (ls["init"] == "const"), label
                    assert (part.peephole is not None) == ls["peephole"], label
                    assert part.clip == ls["clip"], label
        t_len = spec["t"] or DYNAMIC_T
        assert ir.timesteps == spec["t"]
        x = (
            np.random.default_rng(spec["seed"])
            .standard_normal((SEQUENCES, t_len, spec["d"]))
            .astype(np.float32)
        )
        oracle = loaded.predict(x)
        direct = run_graph(model, spec["batch"], to_input, from_output, x)
        assert oracle.shape == direct.shape and np.array_equal(oracle, direct), label
        record("rnn graphs: reference vs onnxruntime", forward(ir, x), oracle, label)
        cases.append((label, ir, x, oracle))
    ran = check_backends(cases, tmp_path, "onnxruntime (GRU/RNN/bidirectional graphs)")
    assert len(ran.get("c", [])) == RNN_GRID


# ---- tests: the onnx package's operator cases ------------------------------------------


def recurrent_testcases(onnx) -> list:
    """The onnx package's LSTM, GRU and RNN operator cases."""
    import warnings

    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [c for c in collect_testcases() if any(k in c.name for k in ("lstm", "gru", "rnn"))]


def single_output_variant(onnx, case, output: str) -> tuple[Any, dict, np.ndarray]:
    """The case's model with X the only input (every other input an initializer holding
    the case's data) and `output` the only output."""
    model = copy.deepcopy(case.model)
    inputs, outputs = case.data_sets[0]
    feeds = dict(zip([i.name for i in model.graph.input], inputs))
    expected = dict(zip([o.name for o in model.graph.output], outputs))[output]
    graph = model.graph
    for info in list(graph.input):
        if info.name != "X":
            graph.initializer.append(
                onnx.numpy_helper.from_array(np.asarray(feeds[info.name]), info.name)
            )
            graph.input.remove(info)
    for info in list(graph.output):
        if info.name != output:
            graph.output.remove(info)
    return model, feeds, expected


def concatenated_variant(
    onnx, model: Any, output: str, expected: np.ndarray
) -> tuple[Any, np.ndarray]:
    """A bidirectional layout-0 case with its two directions concatenated along the
    features, as torch.onnx exports them: Y [T, 2, B, H] -> [T, B, 2H], Y_h [2, B, H] ->
    [B, 2H]; and the expected output rearranged the same way."""
    helper = onnx.helper
    model = copy.deepcopy(model)
    graph = model.graph
    perm = [0, 2, 1, 3] if output == "Y" else [1, 0, 2]
    target = [0, 0, -1] if output == "Y" else [0, -1]
    graph.initializer.append(onnx.numpy_helper.from_array(np.array(target, np.int64), "cat_shape"))
    graph.node.extend(
        [
            helper.make_node("Transpose", [output], ["cat_t"], perm=perm),
            helper.make_node("Reshape", ["cat_t", "cat_shape"], ["cat"]),
        ]
    )
    moved = np.transpose(expected, perm)
    moved = moved.reshape(moved.shape[:-2] + (-1,))
    del graph.output[:]
    graph.output.append(
        helper.make_tensor_value_info("cat", onnx.TensorProto.FLOAT, list(moved.shape))
    )
    onnx.checker.check_model(model)
    return model, moved


def expected_refusal(case, output: str) -> str | None:
    """What the front end must refuse in a single-output variant of `case`, or None."""
    node = case.model.graph.node[0]
    attrs = {a.name: onnx_attr(a) for a in node.attribute}
    inputs = dict(zip([i.name for i in case.model.graph.input], case.data_sets[0][0]))
    if output == "Y_c":
        return "Y_c"
    if attrs.get("direction") == "reverse" and output == "Y":
        return "reverse operator's Y in the original time order"
    if len(node.input) > 4 and node.input[4]:
        x = inputs[node.input[0]]
        t_len = x.shape[1 if attrs.get("layout", 0) else 0]
        if np.any(np.asarray(inputs[node.input[4]]) != t_len):
            return "sequence_lens"
    if (
        node.op_type != "LSTM"
        and len(node.input) > 5
        and node.input[5]
        and np.any(inputs[node.input[5]])
    ):
        return "initial_h is not zero"
    if node.op_type != "LSTM" and "clip" in attrs:
        return "clip"
    return None


def onnx_attr(attr: Any) -> Any:
    from onnx import helper

    value = helper.get_attribute_value(attr)
    return value.decode() if isinstance(value, bytes) else value


def test_onnx_operator_testcases(onnx, tmp_path):
    cases = recurrent_testcases(onnx)
    names = {c.name for c in cases}
    assert {
        "test_lstm_defaults",
        "test_lstm_with_initial_bias",
        "test_lstm_with_peepholes",
        "test_lstm_batchwise",
        "test_lstm_reverse",
        "test_lstm_bidirectional",
        "test_gru_defaults",
        "test_gru_with_initial_bias",
        "test_gru_batchwise",
        "test_gru_bidirectional",
        "test_simple_rnn_defaults",
        "test_simple_rnn_bidirectional",
        "test_rnn_seq_length",
    } <= names, names
    outcome, backend_cases = {}, []
    for case in cases:
        full_inputs, full_outputs = case.data_sets[0]
        names = [i.name for i in case.model.graph.input]
        direct = _session(case.model).run(None, dict(zip(names, full_inputs)))
        for got, want in zip(direct, full_outputs):  # the case data, as onnxruntime sees it
            record("onnx cases: onnxruntime vs expected", got, want, case.name)
        node = case.model.graph.node[0]
        layout = next((a.i for a in node.attribute if a.name == "layout"), 0)
        for output in [o.name for o in case.model.graph.output]:
            label = f"{case.name}:{output}"
            model, feeds, expected = single_output_variant(onnx, case, output)
            path = tmp_path / f"{case.name}_{output}.onnx"
            onnx.save(model, str(path))
            refusal = expected_refusal(case, output)
            if refusal is not None:
                with pytest.raises(UnsupportedLayerError, match=re.escape(refusal)):
                    open_model(path)
                outcome[label] = f"refused ({refusal})"
                continue
            x = feeds["X"] if layout else np.swapaxes(feeds["X"], 0, 1)
            if next((a.s for a in node.attribute if a.name == "direction"), b"") == (
                b"bidirectional"
            ):
                # the directions axis kept (Y [T, 2, B, H], Y_h [2, B, H]): compiled as the
                # directions concatenated along the features, forward first
                assert layout == 0, label  # the operator cases' bidirectional ones
                loaded = open_model(path)
                _, want = concatenated_variant(onnx, model, output, expected)
                want = np.swapaxes(want, 0, 1) if output == "Y" else want
                ref = forward(loaded.ir, x)
                record("onnx cases: reference vs expected", ref, want, label)
                record("onnx cases: reference vs onnxruntime", ref, loaded.predict(x), label)
                outcome[label] = "reference (directions axis kept)"
                model, expected = concatenated_variant(onnx, model, output, expected)
                label += " concatenated"
                path = tmp_path / f"{case.name}_{output}_cat.onnx"
                onnx.save(model, str(path))
            loaded = open_model(path)
            sequence = output == "Y"
            if sequence:  # [T, (nd,) B, H] or [B, T, nd, H] -> [B, T, O]
                want = (
                    expected[:, :, 0]
                    if layout
                    else np.swapaxes(expected[:, 0] if expected.ndim == 4 else expected, 0, 1)
                )
            else:
                want = (
                    expected[:, 0] if layout else (expected[0] if expected.ndim == 3 else expected)
                )
            kinds = {"LSTM": "lstm", "GRU": "gru", "RNN": "simple_rnn"}
            assert loaded.ir.kinds() >= {kinds[node.op_type]}, label
            ref = forward(loaded.ir, x)
            record("onnx cases: reference vs expected", ref, want, label)
            record("onnx cases: reference vs onnxruntime", ref, loaded.predict(x), label)
            backend_cases.append((label, loaded.ir, np.asarray(x, np.float32), want))
            outcome[label] = "reference"
    ran = check_backends(backend_cases, tmp_path, "the onnx cases' expected outputs")
    for target, labels in ran.items():
        for label in labels:
            outcome[label] += f" + {target}"
    print("\nonnx operator cases:", *(f"  {k}: {v}" for k, v in sorted(outcome.items())), sep="\n")
    assert "test_lstm_defaults:Y_h" in ran.get("c", [])
    assert outcome["test_lstm_with_peepholes:Y_h"].startswith("reference")
    for label in (
        "test_gru_defaults:Y_h",
        "test_gru_batchwise:Y",
        "test_simple_rnn_reverse:Y_h",
        "test_gru_bidirectional:Y concatenated",
        "test_simple_rnn_bidirectional:Y_h concatenated",
        "test_lstm_bidirectional:Y_h concatenated",
    ):
        assert outcome[label].startswith("reference"), (label, outcome.get(label))
    assert outcome["test_lstm_bidirectional:Y_h"] == "reference (directions axis kept)"


# ---- tests: exporters --------------------------------------------------------------------


def torch_net(torch, batch_first: bool, sequence: bool, head_act: bool, use_hn: bool):
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(3, 6, num_layers=2, batch_first=batch_first)
            self.fc = torch.nn.Linear(6, 4)
            self.act = torch.nn.Hardsigmoid() if head_act else torch.nn.Identity()

        def forward(self, x):
            y, (h_n, _) = self.lstm(x)
            if use_hn:  # the last layer's final state, as h_n[-1]
                y = h_n[-1]
            elif not sequence:
                y = y[:, -1] if batch_first else y[-1]
            return self.act(self.fc(y))

    torch.manual_seed(int(batch_first) * 2 + int(sequence))
    net = Net().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.uniform_(-0.5, 0.5)
    return net


def test_torch_onnx_exports(onnx, tmp_path):
    from support import require_module

    torch = require_module("torch")
    import warnings

    cases = []
    for batch_first, sequence, dynamic, use_hn in (
        (True, False, True, False),
        (False, False, True, False),
        (True, True, True, False),
        (False, True, True, False),
        (True, False, False, False),
        (False, False, True, True),
    ):
        net = torch_net(torch, batch_first, sequence, not sequence, use_hn)
        t_len = 7
        example = torch.zeros((2, t_len, 3) if batch_first else (t_len, 2, 3))
        axes = {0: "b", 1: "t"} if batch_first else {0: "t", 1: "b"}
        path = tmp_path / (
            f"torch_{int(batch_first)}{int(sequence)}{int(dynamic)}{'_hn' if use_hn else ''}.onnx"
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                net,
                (example,),
                str(path),
                input_names=["x"],
                output_names=["y"],
                dynamo=False,
                dynamic_axes={
                    "x": axes,
                    "y": {0: "b"}
                    if not sequence
                    else ({0: "b", 1: "t"} if batch_first else {0: "t", 1: "b"}),
                }
                if dynamic
                else None,
            )
        loaded = open_model(path)
        ir = loaded.ir
        label = path.stem
        assert [l.kind for l in ir.layers][:2] == ["lstm", "lstm"]
        assert ir.timesteps == (None if dynamic else t_len)
        assert ir.returns_sequences == sequence
        x = (
            np.random.default_rng(len(cases))
            .standard_normal((SEQUENCES, t_len, 3))
            .astype(np.float32)
        )
        with torch.no_grad():
            xt = torch.as_tensor(x if batch_first else np.swapaxes(x, 0, 1).copy())
            expected = net(xt).numpy()
        if sequence and not batch_first:
            expected = np.swapaxes(expected, 0, 1)
        record("torch exports: onnxruntime vs torch", loaded.predict(x), expected, label)
        record("torch exports: reference vs torch", forward(ir, x), expected, label)
        cases.append((label, ir, x, expected))
    ran = check_backends(cases, tmp_path, "torch")
    assert len(ran.get("c", [])) == len(cases)


def torch_rnn_net(
    torch,
    kind: str,
    bidirectional: bool,
    batch_first: bool,
    output: str,
    nonlinearity: str = "tanh",
):
    """A 2-layer nn.GRU / nn.RNN / nn.LSTM and a Linear, on the whole sequence
    ("sequence"), the last step ("last"), or h_n: the last layer's final state ("hn":
    h_n[-1], or torch.cat([h_n[-2], h_n[-1]], -1) when bidirectional; "hn_t":
    h_n[-2:].transpose(0, 1).reshape(B, -1))."""
    extra = {"nonlinearity": nonlinearity} if kind == "RNN" else {}

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = getattr(torch.nn, kind)(
                3, 5, num_layers=2, batch_first=batch_first, bidirectional=bidirectional, **extra
            )
            self.fc = torch.nn.Linear(10 if bidirectional else 5, 4)

        def forward(self, x):
            y, h_n = self.rnn(x)
            if kind == "LSTM":
                h_n = h_n[0]
            if output == "last":
                y = y[:, -1] if batch_first else y[-1]
            elif output == "hn":
                y = torch.cat([h_n[-2], h_n[-1]], dim=-1) if bidirectional else h_n[-1]
            elif output == "hn_t":
                y = h_n[-2:].transpose(0, 1).reshape(h_n.shape[1], -1)
            return self.fc(y)

    torch.manual_seed(len(kind) + 2 * int(bidirectional) + 4 * int(batch_first))
    net = Net().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.uniform_(-0.5, 0.5)
    return net


TORCH_RNN_CASES = [  # kind, bidirectional, batch_first, output, dynamic axes, nonlinearity
    ("GRU", False, True, "last", True, "tanh"),
    ("GRU", False, False, "hn", True, "tanh"),
    ("GRU", False, True, "sequence", False, "tanh"),
    ("GRU", True, False, "sequence", True, "tanh"),
    ("GRU", True, True, "hn", False, "tanh"),
    ("RNN", False, True, "sequence", True, "tanh"),
    ("RNN", False, False, "hn", True, "relu"),
    ("RNN", True, True, "hn_t", True, "relu"),
    ("LSTM", True, True, "sequence", True, "tanh"),
    ("LSTM", True, False, "hn", True, "tanh"),
    ("LSTM", True, True, "hn_t", False, "tanh"),
]


def test_torch_onnx_exports_gru_rnn_bidirectional(onnx, tmp_path):
    from support import require_module

    torch = require_module("torch")
    import warnings

    cases = []
    kinds = {"GRU": "gru", "RNN": "simple_rnn", "LSTM": "lstm"}
    for kind, bidi, batch_first, output, dynamic, act in TORCH_RNN_CASES:
        net = torch_rnn_net(torch, kind, bidi, batch_first, output, act)
        t_len = 6
        example = torch.zeros((2, t_len, 3) if batch_first else (t_len, 2, 3))
        axes = {0: "b", 1: "t"} if batch_first else {0: "t", 1: "b"}
        sequence = output == "sequence"
        out_axes = ({0: "b", 1: "t"} if batch_first else {0: "t", 1: "b"}) if sequence else {0: "b"}
        path = tmp_path / (
            f"torch_{kind}_{'bi' if bidi else 'uni'}_{int(batch_first)}_"
            f"{output}_{int(dynamic)}_{act}.onnx"
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                net,
                (example,),
                str(path),
                input_names=["x"],
                output_names=["y"],
                dynamo=False,
                dynamic_axes={"x": axes, "y": out_axes} if dynamic else None,
            )
        loaded = open_model(path)
        ir = loaded.ir
        label = path.stem
        want = ["bidirectional" if bidi else kinds[kind]] * 2 + ["dense"]
        assert [l.kind for l in ir.layers] == want, label
        assert ir.kinds() >= {kinds[kind]}, label
        assert ir.returns_sequences == sequence, label
        assert ir.timesteps == (None if dynamic else t_len), label
        x = (
            np.random.default_rng(len(cases))
            .standard_normal((SEQUENCES, t_len, 3))
            .astype(np.float32)
        )
        with torch.no_grad():
            xt = torch.as_tensor(x if batch_first else np.swapaxes(x, 0, 1).copy())
            expected = net(xt).numpy()
        if sequence and not batch_first:
            expected = np.swapaxes(expected, 0, 1)
        record(
            "torch GRU/RNN/bidirectional exports: onnxruntime vs torch",
            loaded.predict(x),
            expected,
            label,
        )
        record(
            "torch GRU/RNN/bidirectional exports: reference vs torch",
            forward(ir, x),
            expected,
            label,
        )
        cases.append((label, ir, x, expected))
    ran = check_backends(cases, tmp_path, "torch (GRU/RNN/bidirectional exports)")
    assert len(ran.get("c", [])) == len(cases)
    # a bidirectional module's y[:, -1] (the backward direction after one step) is an IR
    # TimeSlice: test_onnx_exporter_forms.py


def test_tf2onnx_keras_exports(onnx, tmp_path):
    from support import require_module

    tf2onnx = require_module("tf2onnx")  # in the test extra
    keras = require_module("keras")
    import tensorflow as tf

    cases = []
    for sequence, backwards in ((False, True), (True, False), (True, True)):
        model = keras.Sequential(
            [
                keras.Input((6, 3)),
                keras.layers.LSTM(5, return_sequences=sequence, go_backwards=backwards),
                keras.layers.Dense(2, activation="softmax", bias_initializer="random_uniform"),
            ]
        )
        spec = (tf.TensorSpec((None, 6, 3), tf.float32, name="x"),)
        fn = tf.function(lambda v, model=model: model(v), input_signature=spec)
        proto, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=17)
        path = tmp_path / f"keras_{int(sequence)}{int(backwards)}.onnx"
        onnx.save(proto, str(path))
        loaded = open_model(path)
        assert loaded.ir.layers[0].go_backwards == backwards
        x = np.random.default_rng(7).standard_normal((SEQUENCES, 6, 3)).astype(np.float32)
        expected = model.predict(x, verbose=0)
        record("tf2onnx exports: onnxruntime vs keras", loaded.predict(x), expected, path.stem)
        record("tf2onnx exports: reference vs keras", forward(loaded.ir, x), expected, path.stem)
        cases.append((path.stem, loaded.ir, x, expected))
    check_backends(cases, tmp_path, "keras")


def matlab_like(onnx, opset: int) -> tuple[Any, np.ndarray]:
    """The shape of an exportONNXNetwork sequence classifier: input [T, 1, D], the
    network's stored state as initial_h / initial_c initializers, the last step by a
    Slice, a Reshape to [1, H], Gemm and Softmax (opset 11: attribute-style Squeeze)."""
    g = GraphBuilder(onnx, np.random.default_rng(5))
    d, h, t = 2, 4, 5
    h0, c0 = g.weights(1, 1, h), g.weights(1, 1, h)
    y = g.node(
        "LSTM",
        [
            "x",
            g.const(g.weights(1, 4 * h, d)),
            g.const(g.weights(1, 4 * h, h)),
            g.const(g.weights(1, 8 * h)),
            "",
            g.const(h0),
            g.const(c0),
        ],
        hidden_size=h,
    )
    if opset < 13:
        y = g.node("Squeeze", [y], axes=[1])
    else:
        y = g.node("Squeeze", [y, g.ints([1])])
    last = g.node("Slice", [y, g.ints([-1]), g.ints([INT_MAX]), g.ints([0])])
    flat = g.node("Reshape", [last, g.ints([1, h])])
    fc = g.node("Gemm", [flat, g.const(g.weights(h, 3)), g.const(g.weights(1, 3))])
    out = g.node("Softmax", [fc], axis=1)
    return g.model("x", [t, 1, d], out, opset=opset), h0.reshape(h)


def test_glue_patterns(onnx, tmp_path):
    """Exporter glue not in the random grid: MATLAB-style state and Slice, opset 11
    attribute forms, a univariate [B, T] input, Dense on a sequence through a Reshape
    that folds batch with time (tf2onnx's Tensordot), and a Dense before the LSTM."""
    models = []
    for opset in (11, 17):
        model, h0 = matlab_like(onnx, opset)
        models.append((f"matlab_like_opset{opset}", model, 5, True))
    # univariate: x [B, T] -> Unsqueeze(-1) -> LSTM layout 1 -> Y_h -> Squeeze -> Dense -> [B]
    g = GraphBuilder(onnx, np.random.default_rng(6))
    x3 = g.node("Unsqueeze", ["x", g.ints([-1])])
    _, yh = g.node(
        "LSTM",
        [x3, g.const(g.weights(1, 12, 1)), g.const(g.weights(1, 12, 3))],
        n_out=2,
        hidden_size=3,
        layout=1,
    )
    v = g.node("Squeeze", [yh, g.ints([1])])
    v = g.node("Gemm", [v, g.const(g.weights(1, 3)), g.const(g.weights(1))], transB=1)
    v = g.node("Squeeze", [v, g.ints([1])])
    models.append(("univariate", g.model("x", ["B", "T"], v), None, False))
    # Dense -> LSTM -> sequence -> Reshape [-1, H] -> MatMul -> Reshape back -> Add
    g = GraphBuilder(onnx, np.random.default_rng(7))
    pre = g.node("MatMul", ["x", g.const(g.weights(3, 4))])
    pre = g.node("Tanh", [pre])
    tb = g.node("Transpose", [pre], perm=[1, 0, 2])
    y = g.node(
        "LSTM", [tb, g.const(g.weights(1, 20, 4)), g.const(g.weights(1, 20, 5))], hidden_size=5
    )
    seq = g.node("Transpose", [g.node("Squeeze", [y, g.ints([1])])], perm=[1, 0, 2])
    shape = g.node("Shape", [seq])
    bt = g.node("Slice", [shape, g.ints([0]), g.ints([2])])
    target = g.node("Concat", [bt, g.ints([2])], axis=0)
    flat = g.node("Reshape", [seq, g.ints([-1, 5])])
    mm = g.node("MatMul", [flat, g.const(g.weights(5, 2))])
    back = g.node("Reshape", [mm, target])
    out = g.node("Add", [back, g.const(g.weights(2))])
    out = g.node("Dropout", [out])
    models.append(("tensordot", g.model("x", ["B", "T", 3], out), None, False))
    cases = []
    for label, model, t_fixed, _ in models:
        path = tmp_path / f"{label}.onnx"
        onnx.save(model, str(path))
        loaded = open_model(path)
        t_len = t_fixed or DYNAMIC_T
        d = loaded.ir.input_size
        x = np.random.default_rng(3).standard_normal((SEQUENCES, t_len, d)).astype(np.float32)
        oracle = loaded.predict(x)
        record("glue patterns: reference vs onnxruntime", forward(loaded.ir, x), oracle, label)
        cases.append((label, loaded.ir, x, oracle))
    matlab_ir = cases[0][1]
    assert np.array_equal(matlab_ir.layers[0].initial_h, h0)
    assert matlab_ir.layers[-1].activation == "softmax"
    assert [l.kind for l in cases[3][1].layers] == ["dense", "lstm", "dense"]
    # direct onnxruntime check of the univariate mapping ([B, T] in, [B] out)
    uni = cases[2]
    sess = _session(models[2][1])
    direct = sess.run(None, {"x": uni[2][:, :, 0]})[0]
    assert np.array_equal(direct[:, None], uni[3])
    check_backends(cases, tmp_path)


def test_bidirectional_glue_variants(onnx, tmp_path):
    """Ways of concatenating the two directions beyond torch.onnx's: H = 1 (the feature
    axis is a singleton), an explicit 2H, a target shape built from the input's shape, a
    Squeeze of Y_h, layout 1 without Transpose, and a time flip after a bidirectional."""
    models = []
    # H = 1: Y [T, 2, B, 1] -> [T, B, 2, 1] -> Reshape [0, 0, 2] -> MatMul
    g = GraphBuilder(onnx, np.random.default_rng(11))
    y = g.node(
        "GRU",
        ["x", g.const(g.weights(2, 3, 2)), g.const(g.weights(2, 3, 1)), g.const(g.weights(2, 6))],
        hidden_size=1,
        direction="bidirectional",
        linear_before_reset=1,
    )
    cat = g.node("Reshape", [g.node("Transpose", [y], perm=[0, 2, 1, 3]), g.ints([0, 0, 2])])
    out = g.node("MatMul", [cat, g.const(g.weights(2, 3))])
    models.append(("h1_sequence", g.model("x", ["T", "B", 2], out), "tbd"))
    # H = 1: Y_h [2, B, 1] -> Squeeze -> [2, B] -> Transpose -> [B, 2]
    g = GraphBuilder(onnx, np.random.default_rng(12))
    _, yh = g.node(
        "RNN",
        ["x", g.const(g.weights(2, 1, 3)), g.const(g.weights(2, 1, 1))],
        n_out=2,
        hidden_size=1,
        direction="bidirectional",
    )
    out = g.node("Transpose", [g.node("Squeeze", [yh, g.ints([2])])], perm=[1, 0])
    models.append(("h1_squeeze", g.model("x", ["T", "B", 3], out), "tbd"))
    # layout 1: Y [B, T, 2, H] -> Reshape to Concat(Shape(x)[0:2], [2H]) -> Tanh
    g = GraphBuilder(onnx, np.random.default_rng(13))
    y = g.node(
        "LSTM",
        ["x", g.const(g.weights(2, 12, 2)), g.const(g.weights(2, 12, 3))],
        hidden_size=3,
        direction="bidirectional",
        layout=1,
    )
    bt = g.node("Slice", [g.node("Shape", ["x"]), g.ints([0]), g.ints([2])])
    target = g.node("Concat", [bt, g.ints([6])], axis=0)
    out = g.node("Tanh", [g.node("Reshape", [y, target])])
    models.append(("layout1_shape", g.model("x", ["B", "T", 2], out), "btd"))
    # a time flip after a bidirectional GRU, then a forward RNN (-> go_backwards) and Y_h
    g = GraphBuilder(onnx, np.random.default_rng(14))
    y = g.node(
        "GRU",
        ["x", g.const(g.weights(2, 6, 2)), g.const(g.weights(2, 6, 2))],
        hidden_size=2,
        direction="bidirectional",
    )
    cat = g.node("Reshape", [g.node("Transpose", [y], perm=[0, 2, 1, 3]), g.ints([0, 0, -1])])
    rev = g.node("Slice", [cat, g.ints([-1]), g.ints([INT_MIN]), g.ints([0]), g.ints([-1])])
    _, yh = g.node(
        "RNN",
        [rev, g.const(g.weights(1, 3, 4)), g.const(g.weights(1, 3, 3))],
        n_out=2,
        hidden_size=3,
    )
    out = g.node("Squeeze", [yh, g.ints([0])])
    models.append(("flip_after", g.model("x", ["T", "B", 2], out), "tbd"))
    cases = []
    for label, model, layout in models:
        path = tmp_path / f"{label}.onnx"
        onnx.save(model, str(path))
        loaded = open_model(path)
        ir = loaded.ir
        assert ir.layers[0].kind == "bidirectional", label
        x = (
            np.random.default_rng(4)
            .standard_normal((SEQUENCES, DYNAMIC_T, ir.input_size))
            .astype(np.float32)
        )
        oracle = loaded.predict(x)
        direct = _session(model).run(
            None, {"x": np.ascontiguousarray(np.swapaxes(x, 0, 1) if layout == "tbd" else x)}
        )[0]
        if ir.returns_sequences and layout == "tbd":
            direct = np.swapaxes(direct, 0, 1)
        assert np.array_equal(oracle, direct), label
        record("bidirectional glue: reference vs onnxruntime", forward(ir, x), oracle, label)
        cases.append((label, ir, x, oracle))
    assert cases[3][1].layers[1].go_backwards
    check_backends(cases, tmp_path, "onnxruntime (bidirectional glue)")


# ---- tests: refusals ---------------------------------------------------------------------


def simple_lstm(onnx, **lstm_attrs: Any) -> GraphBuilder:
    g = GraphBuilder(onnx, np.random.default_rng(0))
    g.y = g.node(
        "LSTM",
        ["x", g.const(g.weights(1, 8, 2)), g.const(g.weights(1, 8, 2))],
        n_out=3,
        hidden_size=2,
        **lstm_attrs,
    )
    return g


def refuse(onnx, tmp_path, model: Any, error: type, *patterns: str) -> str:
    path = tmp_path / "bad.onnx"
    onnx.save(model, str(path))
    with pytest.raises(error) as info:
        lstmgen.load(path)
    text = str(info.value)
    for pattern in patterns:
        assert pattern in text, (pattern, text)
    return text


def test_clear_errors(onnx, tmp_path):
    helper = onnx.helper
    # an unsupported operator on the data path: named, with its op_type and what is supported
    g = simple_lstm(onnx)
    out = g.node("LeakyRelu", [g.y[1]])
    text = refuse(
        onnx,
        tmp_path,
        g.model("x", [3, 1, 2], out),
        UnsupportedLayerError,
        f"'{g.nodes[-1].name}' (LeakyRelu)",
        "supported:",
    )
    assert "Gemm" in text
    # the cell state Y_c as the output
    g = simple_lstm(onnx)
    refuse(
        onnx,
        tmp_path,
        g.model("x", [3, 1, 2], g.y[2]),
        UnsupportedLayerError,
        f"'{g.nodes[-1].name}' (LSTM)",
        "cell state output Y_c",
        "hidden state h",
    )
    # sequence_lens: as a second graph input, and as a constant shorter than T
    g = GraphBuilder(onnx, np.random.default_rng(0))
    lens = g.const(np.array([2], np.int32))
    _, yh = g.node(
        "LSTM",
        ["x", g.const(g.weights(1, 8, 2)), g.const(g.weights(1, 8, 2)), "", lens],
        n_out=2,
        hidden_size=2,
    )
    refuse(
        onnx,
        tmp_path,
        g.model("x", [3, 1, 2], yh),
        UnsupportedLayerError,
        "(LSTM)",
        "sequence_lens",
    )
    # an activation without an IR equivalent, named with its parameters
    g = simple_lstm(onnx, activations=["Sigmoid", "LeakyRelu", "Tanh"], activation_alpha=[0.1])
    refuse(
        onnx,
        tmp_path,
        g.model("x", [3, 1, 2], g.y[1]),
        UnsupportedLayerError,
        "(LSTM)",
        "LeakyRelu(alpha=0.1)",
    )
    g = simple_lstm(onnx, activations=["Sigmoid", "Elu", "Tanh"], activation_alpha=[0.5])
    refuse(onnx, tmp_path, g.model("x", [3, 1, 2], g.y[1]), UnsupportedLayerError, "Elu(alpha=0.5)")
    # multi-output graphs
    g = simple_lstm(onnx)
    model = g.model("x", [3, 1, 2], g.y[1])
    model.graph.output.append(
        helper.make_tensor_value_info(g.y[0], onnx.TensorProto.FLOAT, [3, 1, 1, 2])
    )
    refuse(onnx, tmp_path, model, UnsupportedLayerError, "2 outputs")
    # the cell state, a branch, a reverse LSTM's full sequence, a wrong step
    g = simple_lstm(onnx)
    refuse(onnx, tmp_path, g.model("x", [3, 1, 2], g.y[2]), UnsupportedLayerError, "Y_c")
    g = simple_lstm(onnx)
    s = g.node("Squeeze", [g.y[0], g.ints([1])])
    out = g.node("Add", [g.node("Relu", [s]), g.node("Tanh", [s])])
    refuse(onnx, tmp_path, g.model("x", [3, 1, 2], out), UnsupportedLayerError, "single chain")
    g = simple_lstm(onnx, direction="reverse")
    refuse(
        onnx,
        tmp_path,
        g.model("x", [3, 1, 2], g.node("Squeeze", [g.y[0], g.ints([1])])),
        UnsupportedLayerError,
        "reverse operator's Y in the original time order",
        "processing order",
    )
    g = simple_lstm(onnx, direction="reverse")
    s = g.node("Squeeze", [g.y[0], g.ints([1])])
    out = g.node("Gather", [s, g.const(np.array(-1, np.int64))], axis=0)
    refuse(
        onnx,
        tmp_path,
        g.model("x", [3, 1, 2], out),
        UnsupportedLayerError,
        "(Gather)",
        "last processed step",
        "index 0",
    )
    # a bias that varies along the batch, and a Dense over the wrong axis
    g = simple_lstm(onnx)
    v = g.node("Gemm", [g.node("Squeeze", [g.y[1], g.ints([0])]), g.const(g.weights(2, 3))])
    out = g.node("Add", [v, g.const(g.weights(4, 1))])
    refuse(
        onnx,
        tmp_path,
        g.model("x", [3, 4, 2], out),
        UnsupportedLayerError,
        "(Add)",
        "batch",
        "may only vary along the features",
    )
    g = simple_lstm(onnx)
    v = g.node("Transpose", [g.node("Squeeze", [g.y[1], g.ints([0])])], perm=[1, 0])
    out = g.node("MatMul", [v, g.const(g.weights(3, 3))])
    refuse(
        onnx,
        tmp_path,
        g.model("x", [3, 3, 2], out),
        UnsupportedLayerError,
        "(MatMul)",
        "not the feature axis",
    )
    # weights that are graph inputs (a second input)
    g = GraphBuilder(onnx, np.random.default_rng(0))
    _, yh = g.node("LSTM", ["x", "w", g.const(g.weights(1, 8, 2))], n_out=2, hidden_size=2)
    model = g.model("x", [3, 1, 2], yh, extra_inputs=(("w", [1, 8, 2]),))
    refuse(onnx, tmp_path, model, UnsupportedLayerError, "2 inputs")
    # corrupt and truncated files: ModelError naming the file
    good = simple_lstm(onnx)
    data = good.model("x", [3, 1, 2], good.y[1]).SerializeToString()
    for label, blob in (
        ("garbage", b"\x08\x07not an onnx file at all\xff\xff"),
        ("truncated", data[: len(data) // 2]),
    ):
        path = tmp_path / f"{label}.onnx"
        path.write_bytes(blob)
        with pytest.raises(ModelError, match=re.escape(str(path))):
            lstmgen.load(path)


def bidirectional(onnx, op: str = "LSTM", h: int = 2, d: int = 2, **attrs: Any) -> GraphBuilder:
    """x [T, B, D] -> a bidirectional operator; g.y holds its outputs."""
    gates = {"LSTM": 4, "GRU": 3, "RNN": 1}[op]
    g = GraphBuilder(onnx, np.random.default_rng(0))
    g.y = g.node(
        op,
        ["x", g.const(g.weights(2, gates * h, d)), g.const(g.weights(2, gates * h, h))],
        n_out=2,
        hidden_size=h,
        direction="bidirectional",
        **attrs,
    )
    return g


def test_clear_errors_gru_rnn_bidirectional(onnx, tmp_path):
    """What GRU, RNN and bidirectional operators cannot map to, named clearly."""
    shape = [3, 2, 2]
    # one direction of Y_h alone
    g = bidirectional(onnx)
    out = g.node("Gather", [g.y[1], g.const(np.array(0, np.int64))], axis=0)
    refuse(
        onnx,
        tmp_path,
        g.model("x", shape, out),
        UnsupportedLayerError,
        "(Gather)",
        "one of the two directions",
        "torch.cat([h_n[-2], h_n[-1]], -1)",
    )
    # the directions concatenated backward first (torch.cat([h_n[-1], h_n[-2]], -1))
    g = bidirectional(onnx)
    parts = [g.node("Gather", [g.y[1], g.const(np.array(k, np.int64))], axis=0) for k in (1, 0)]
    out = g.node("Concat", parts, axis=-1)
    refuse(
        onnx,
        tmp_path,
        g.model("x", shape, out),
        UnsupportedLayerError,
        "both directions",
        "used separately",
    )
    # feature-major interleaving: Y [T, 2, B, H] -> [T, B, H, 2] -> [T, B, 2H]
    g = bidirectional(onnx)
    t = g.node("Transpose", [g.y[0]], perm=[0, 2, 3, 1])
    out = g.node("Reshape", [t, g.ints([0, 0, -1])])
    refuse(
        onnx,
        tmp_path,
        g.model("x", shape, out),
        UnsupportedLayerError,
        "(Reshape)",
        "feature-major",
    )
    # the directions merged with the batch: Y_h [2, B, H] -> Reshape [B, 2H] (no Transpose)
    g = bidirectional(onnx)
    out = g.node("Reshape", [g.y[1], g.ints([2, 4])])
    refuse(
        onnx,
        tmp_path,
        g.model("x", shape, out),
        UnsupportedLayerError,
        "(Reshape)",
        "two directions",
    )
    # a Dense applied to each direction separately
    g = bidirectional(onnx)
    out = g.node("MatMul", [g.y[0], g.const(g.weights(2, 3))])
    refuse(
        onnx,
        tmp_path,
        g.model("x", shape, out),
        UnsupportedLayerError,
        "(MatMul)",
        "as a separate axis",
    )
    # the first step of the concatenated Y (its last step is a TimeSlice, see
    # test_onnx_exporter_forms.py)
    g = bidirectional(onnx, "GRU", linear_before_reset=1)
    t = g.node("Transpose", [g.y[0]], perm=[0, 2, 1, 3])
    cat = g.node("Reshape", [t, g.ints([0, 0, -1])])
    out = g.node("Gather", [cat, g.const(np.array(0, np.int64))], axis=0)
    refuse(
        onnx,
        tmp_path,
        g.model("x", shape, out),
        UnsupportedLayerError,
        "(Gather)",
        "it gathers timestep 0",
        "only the last processed step",
    )
    # a bidirectional operator over a time-reversed sequence
    g = GraphBuilder(onnx, np.random.default_rng(0))
    rev = g.node("ReverseSequence", ["x", g.ints([3, 3])], time_axis=0, batch_axis=1)
    _, yh = g.node(
        "RNN",
        [rev, g.const(g.weights(2, 2, 2)), g.const(g.weights(2, 2, 2))],
        n_out=2,
        hidden_size=2,
        direction="bidirectional",
    )
    out = g.node("Reshape", [g.node("Transpose", [yh], perm=[1, 0, 2]), g.ints([0, -1])])
    refuse(
        onnx,
        tmp_path,
        g.model("x", shape, out),
        UnsupportedLayerError,
        "(RNN)",
        "time-reversed sequence",
    )
    # activations: one per direction is required, and no IR equivalent
    g = bidirectional(onnx, "RNN", activations=["Relu"])
    refuse(
        onnx,
        tmp_path,
        g.model("x", shape, g.y[1]),
        UnsupportedLayerError,
        "(RNN)",
        "1 activations given, expected 2",
    )
    g = GraphBuilder(onnx, np.random.default_rng(0))
    _, yh = g.node(
        "GRU",
        ["x", g.const(g.weights(1, 6, 2)), g.const(g.weights(1, 6, 2))],
        n_out=2,
        hidden_size=2,
        activations=["Sigmoid", "LeakyRelu"],
        activation_alpha=[0.1],
    )
    refuse(
        onnx,
        tmp_path,
        g.model("x", shape, yh),
        UnsupportedLayerError,
        "(GRU)",
        "activation g is LeakyRelu(alpha=0.1)",
    )
    # GRU/RNN: clip, a non-zero initial state, a sequence_lens shorter than T
    g = GraphBuilder(onnx, np.random.default_rng(0))
    _, yh = g.node(
        "GRU",
        ["x", g.const(g.weights(1, 6, 2)), g.const(g.weights(1, 6, 2))],
        n_out=2,
        hidden_size=2,
        clip=1.0,
    )
    refuse(
        onnx,
        tmp_path,
        g.model("x", shape, yh),
        UnsupportedLayerError,
        "(GRU)",
        "clip = 1",
        "the IR's GRU has no clip",
    )
    for op, gates in (("GRU", 3), ("RNN", 1)):
        g = GraphBuilder(onnx, np.random.default_rng(0))
        _, yh = g.node(
            op,
            [
                "x",
                g.const(g.weights(1, 2 * gates, 2)),
                g.const(g.weights(1, 2 * gates, 2)),
                "",
                "",
                g.const(np.full((1, 2, 2), 0.5, np.float32)),
            ],
            n_out=2,
            hidden_size=2,
        )
        refuse(
            onnx,
            tmp_path,
            g.model("x", shape, yh),
            UnsupportedLayerError,
            f"({op})",
            "initial_h is not zero",
            "always starts from zero",
        )
    g = GraphBuilder(onnx, np.random.default_rng(0))
    _, yh = g.node(
        "GRU",
        [
            "x",
            g.const(g.weights(1, 6, 2)),
            g.const(g.weights(1, 6, 2)),
            "",
            g.const(np.array([2, 2], np.int32)),
        ],
        n_out=2,
        hidden_size=2,
    )
    refuse(onnx, tmp_path, g.model("x", shape, yh), UnsupportedLayerError, "(GRU)", "sequence_lens")


def test_cli_inspect_verify_generate(onnx, tmp_path, capsys):
    spec = random_spec(0)  # a plain one
    model, _, _ = build(onnx, spec)
    path = tmp_path / "plain.onnx"
    onnx.save(model, str(path))
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "blocks i,o,f,c -> input_weights rows i,f,g,o" in out and "ONNX LSTM" in out
    assert main(["verify", str(path)]) == 0
    out = capsys.readouterr().out
    assert "onnxruntime" in out and "PASS" in out
    assert main(["generate", str(path), "--out", str(tmp_path / "gen")]) == 0
    assert (tmp_path / "gen").is_dir()
    report = lstmgen.verify(path, "c", sequences=4, timesteps=spec["t"] or 9)
    assert report.passed and "onnxruntime" in report.oracle


def test_report_max_errors():
    """Runs last in this file: prints the worst error per category (pytest -s)."""
    print(
        "\nmax relative errors:",
        *(f"  {k}: {v:.3g}" for k, v in sorted(MAX_ERRORS.items())),
        sep="\n",
    )
