"""Optional LSTM features (peephole, clip, input_forget, initial state) in every backend
that declares them, against onnxruntime running the same layer as an ONNX LSTM node."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from support import require_module

from lstmgen.errors import LstmgenError
from lstmgen.ir import LSTM, Dense, Model
from lstmgen.reference import forward
from lstmgen.targets import TARGETS, get_backend, get_runner, render
from lstmgen.verify import error_metrics

H, D, T = 5, 3, 25
IR_TO_ONNX = [0, 3, 1, 2]  # IR blocks i, f, g, o -> ONNX i, o, f, c
FEATURE_SETS = [
    {"peephole"},
    {"clip"},
    {"input_forget"},
    {"initial_state"},
    {"peephole", "clip", "input_forget", "initial_state"},
]


def feature_model(features: set[str], seed: int) -> Model:
    rng = np.random.default_rng(seed)

    def u(*shape, scale=1.0):
        return rng.uniform(-scale, scale, shape).astype(np.float32)

    lstm = LSTM(
        "feat",
        u(4 * H, D),
        u(4 * H, H),
        u(4 * H),
        return_sequences=True,
        peephole=u(3, H) if "peephole" in features else None,
        clip=1.25 if "clip" in features else None,
        input_forget="input_forget" in features,
        initial_h=u(H) if "initial_state" in features else None,
        initial_c=u(H, scale=2.0) if "initial_state" in features else None,
    )
    return Model(D, [lstm, Dense("head", u(2, H), u(2))], name="features").validate()


def onnxruntime_oracle(model: Model, x: np.ndarray) -> np.ndarray:
    """The same model as ONNX (LSTM node + MatMul/Add), run by onnxruntime."""
    require_module("onnx")
    ort = require_module("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    lstm, dense = model.layers

    def reorder(a):
        return np.concatenate([a[k * H : (k + 1) * H] for k in IR_TO_ONNX])

    inits = {
        "W": reorder(lstm.input_weights)[None],
        "R": reorder(lstm.recurrent_weights)[None],
        "B": np.concatenate([reorder(lstm.bias), np.zeros(4 * H, np.float32)])[None],
        "Dw": np.ascontiguousarray(dense.weights.T),
        "Db": dense.bias,
    }
    n = x.shape[0]
    inputs = ["x", "W", "R", "B", "", "", "", ""]
    if lstm.initial_h is not None:
        inits["h0"] = np.tile(lstm.initial_h, (1, n, 1))  # [1, N, H]: one copy per sequence
        inits["c0"] = np.tile(lstm.initial_c, (1, n, 1))
        inputs[5:7] = ["h0", "c0"]
    if lstm.peephole is not None:  # IR rows i, f, o -> ONNX i, o, f
        inits["P"] = np.concatenate([lstm.peephole[0], lstm.peephole[2], lstm.peephole[1]])[None]
        inputs[7] = "P"
    attrs = {"hidden_size": H}
    if lstm.clip is not None:
        attrs["clip"] = lstm.clip
    if lstm.input_forget:
        attrs["input_forget"] = 1
    nodes = [
        helper.make_node("LSTM", inputs, ["Y"], **attrs),
        helper.make_node("Squeeze", ["Y", "axes"], ["S"]),  # [T, 1, N, H] -> [T, N, H]
        helper.make_node("MatMul", ["S", "Dw"], ["M"]),
        helper.make_node("Add", ["M", "Db"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "features",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [T, n, D])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [T, n, 2])],
        initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()]
        + [numpy_helper.from_array(np.array([1], np.int64), "axes")],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    y = session.run(["y"], {"x": np.ascontiguousarray(np.swapaxes(x, 0, 1))})[0]
    return np.swapaxes(y, 0, 1)


CASES = [(sorted(f), seed) for seed, f in enumerate(FEATURE_SETS)]


@pytest.mark.parametrize("features,seed", CASES)
def test_reference_matches_onnxruntime(features, seed):
    model = feature_model(set(features), seed)
    x = np.random.default_rng(seed).uniform(-3, 3, (4, T, D)).astype(np.float32)
    _, rel = error_metrics(forward(model, x), onnxruntime_oracle(model, x))
    assert rel.max() <= 1e-5


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_backends_implement_or_refuse_each_feature(target, tmp_path):
    supported = getattr(get_backend(target), "FEATURES", frozenset())
    runner = get_runner(target)
    for features, seed in CASES:
        model = feature_model(set(features), seed)
        if not set(features) <= supported:
            with pytest.raises(LstmgenError, match="does not implement"):
                render(target, model, "net")
            continue
        x = np.random.default_rng(seed).uniform(-3, 3, (4, T, D)).astype(np.float32)
        files = render(target, model, "net")
        workdir = tmp_path / f"{target}_{seed}"
        workdir.mkdir()
        expected = onnxruntime_oracle(model, x)
        _, rel = error_metrics(runner.run(model, files, "net", x, workdir), expected)
        assert rel.max() <= 1e-5, (target, features, rel.max())
        if hasattr(runner, "run_steps") and model.streamable:
            steps = runner.run_steps(model, files, "net", x, workdir)
            assert error_metrics(steps, expected)[1].max() <= 1e-5, (target, features)


def test_every_feature_is_implemented_somewhere():
    declared = set(
        itertools.chain.from_iterable(
            getattr(get_backend(t), "FEATURES", frozenset()) for t in TARGETS
        )
    )
    assert declared == {"peephole", "clip", "input_forget", "initial_state", "projection"}
