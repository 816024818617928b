"""ONNX as exporters wrote it over the years (issue 14): constant subgraphs computed from
the input's shape at opsets 7-9 (PyTorch 1.x), LogSoftmax, one output of a multi-output
graph (`--output`), initial states as graph inputs (zero, as in predict), a Slice of the
last k steps and a bidirectional `out[:, -1]`. Each model against onnxruntime running the
file (and PyTorch's forward where it comes from PyTorch), the float64 reference, and the
generated code of every target."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from support import require_module, targets_match_oracles

from lstmgen.cli import main
from lstmgen.errors import UnsupportedLayerError
from lstmgen.extractors import open_model
from lstmgen.reference import forward
from lstmgen.verify import error_metrics

TOLERANCE = 1e-5
SEQUENCES = 5
T_LEN = 6


@pytest.fixture(scope="module")
def onnx():
    require_module("onnxruntime")
    return require_module("onnx")


def close(got: np.ndarray, want: np.ndarray, what: str) -> None:
    _, rel = error_metrics(np.asarray(got), np.asarray(want))
    assert rel.max() <= TOLERANCE, (what, float(rel.max()))
    print(f"\n{what}: {float(rel.max()):.2g}", end="")


def report(errors: dict) -> None:
    """The max relative error per target and model (shown with pytest -s)."""
    for target, by_label in errors.items():
        print(f"\n{target}:", ", ".join(f"{k} {v:.2g}" for k, v in by_label.items()), end="")


def sequences(seed: int, d: int = 3, t_len: int = T_LEN) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((SEQUENCES, t_len, d)).astype(np.float32)


def checked(path, x: np.ndarray, torch_forward: Any = None, **options: Any) -> tuple:
    """Load `path`; its reference matches onnxruntime (and `torch_forward(x)`); returns the
    case (ir, x, onnxruntime's output) for the targets."""
    loaded = open_model(path, **options)
    expected = loaded.predict(x)
    close(forward(loaded.ir, x), expected, f"{path.name}: reference vs onnxruntime")
    if torch_forward is not None:
        close(expected, torch_forward(x), f"{path.name}: onnxruntime vs torch")
    return loaded.ir, x, expected


# ---- PyTorch 1.x at opsets 7-9, written by hand ------------------------------------------


def torch1x_graph(onnx, opset: int, log_softmax: bool, seed: int) -> Any:
    """An LSTM classifier as PyTorch 1.x's exporter wrote it at `opset` (7, 8 or 9): W, R
    and B reordered from PyTorch's gate blocks i, f, g, o to ONNX's i, o, f, c by Slice
    (starts/ends attributes) + Concat + Unsqueeze (axes attribute); the zero initial state
    built from the input's batch size by Shape -> Gather -> Cast -> Unsqueeze -> Concat and
    ConstantOfShape (opset 9), Expand (opset 8) or Tile (opset 7); the last step by Squeeze
    + Gather; Gemm; LogSoftmax (axis 1) if asked. IR version 3 (4 at opset 9), initializers
    listed as graph inputs."""
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    rng = np.random.default_rng(seed)
    h, d, o = 4, 3, 5
    inits: list = []
    nodes: list = []

    def init(name: str, arr: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def node(op: str, inputs: list, out: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def constant(name: str, value: Any) -> str:
        return node("Constant", [], name, value=numpy_helper.from_array(np.asarray(value)))

    def weights(*shape: int) -> np.ndarray:
        return rng.uniform(-0.6, 0.6, shape).astype(np.float32)

    def iofc(src: str) -> str:  # PyTorch blocks i, f, g, o -> ONNX blocks i, o, f, c
        parts = [
            node("Slice", [src], f"{src}_{k}", axes=[0], starts=[a * h], ends=[(a + 1) * h])
            for k, a in enumerate((0, 3, 1, 2))
        ]
        return node("Concat", parts, f"{src}_iofc", axis=0)

    w = node("Unsqueeze", [iofc(init("weight_ih", weights(4 * h, d)))], "W", axes=[0])
    r = node("Unsqueeze", [iofc(init("weight_hh", weights(4 * h, h)))], "R", axes=[0])
    biases = [iofc(init("bias_ih", weights(4 * h))), iofc(init("bias_hh", weights(4 * h)))]
    b = node("Unsqueeze", [node("Concat", biases, "b_cat", axis=0)], "B", axes=[0])
    batch = node("Gather", [node("Shape", ["x"], "shape"), constant("k1", 1)], "batch", axis=0)
    batch = node("Cast", [batch], "batch_i64", to=onnx.TensorProto.INT64)
    one = node("Unsqueeze", [constant("c1", 1)], "one", axes=[0])
    dims = [one, node("Unsqueeze", [batch], "batch_v", axes=[0])]
    hidden = node("Unsqueeze", [constant("ch", h)], "hv", axes=[0])
    zeros = np.zeros((1, 1, h), np.float32)
    if opset >= 9:
        size = node("Concat", [*dims, hidden], "size", axis=0)
        zero = numpy_helper.from_array(np.zeros(1, np.float32))
        state = node("ConstantOfShape", [size], "state", value=zero)
    elif opset == 8:
        size = node("Concat", [*dims, hidden], "size", axis=0)
        state = node("Expand", [init("zeros", zeros), size], "state")
    else:
        repeats = node("Concat", [*dims, one], "repeats", axis=0)
        state = node("Tile", [init("zeros", zeros), repeats], "state")
    nodes.append(
        helper.make_node("LSTM", ["x", w, r, b, "", state, state], ["y", "y_h"], hidden_size=h)
    )
    last = node("Gather", [node("Squeeze", ["y"], "y3", axes=[1]), constant("k", -1)], "last")
    fc = [last, init("fc_w", weights(o, h)), init("fc_b", weights(o))]
    out = node("Gemm", fc, "fc", transB=1)
    if log_softmax:
        out = node("LogSoftmax", [out], "log_probs", axis=1)
    # the weights are initializers listed as graph inputs too, as PyTorch 1.x wrote them
    # (and IR version 3 requires)
    weights_in = [helper.make_tensor_value_info(i.name, i.data_type, list(i.dims)) for i in inits]
    graph = helper.make_graph(
        nodes,
        f"torch1x_opset{opset}",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["t", "b", d]), *weights_in],
        [helper.make_tensor_value_info(out, onnx.TensorProto.FLOAT, ["b", o])],
        inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset)],
        ir_version=3 if opset < 9 else 4,
        producer_name="pytorch-1.x-like",
    )
    onnx.checker.check_model(model)
    return model


@pytest.mark.parametrize("opset", [7, 8, 9])
def test_pytorch_1x_shape_subgraphs_fold(onnx, opset, tmp_path):
    path = tmp_path / f"torch1x_{opset}.onnx"
    onnx.save(torch1x_graph(onnx, opset, False, seed=opset), str(path))
    ir, x, expected = checked(path, sequences(opset))
    assert [l.kind for l in ir.layers] == ["lstm", "dense"]
    assert ir.layers[0].initial_h is None and not ir.layers[0].return_sequences
    assert any("initial_h and initial_c are zero" in note for note in ir.notes), ir.notes
    report(targets_match_oracles({f"opset{opset}": (ir, x, expected)}, tmp_path))


# ---- multi-output graphs and initial states as graph inputs -----------------------------


def three_outputs(onnx, path) -> None:
    """One LSTM whose Y, Y_h and Y_c are all graph outputs (as the onnx2c test models)."""
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    rng = np.random.default_rng(3)
    h, d = 3, 2
    inits = [
        numpy_helper.from_array(rng.uniform(-0.7, 0.7, shape).astype(np.float32), name)
        for name, shape in (("W", (1, 4 * h, d)), ("R", (1, 4 * h, h)), ("B", (1, 8 * h)))
    ]
    lstm = helper.make_node("LSTM", ["x", "W", "R", "B"], ["Y", "Y_h", "Y_c"], hidden_size=h)
    floats = onnx.TensorProto.FLOAT
    graph = helper.make_graph(
        [lstm],
        "three_outputs",
        [helper.make_tensor_value_info("x", floats, ["t", "b", d])],
        [
            helper.make_tensor_value_info("Y", floats, ["t", 1, "b", h]),
            helper.make_tensor_value_info("Y_h", floats, [1, "b", h]),
            helper.make_tensor_value_info("Y_c", floats, [1, "b", h]),
        ],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_output_picks_one_output_of_a_multi_output_graph(onnx, tmp_path, capsys):
    path = tmp_path / "three.onnx"
    three_outputs(onnx, path)
    out = tmp_path / "out"
    for args, message in [
        ([], "the graph has 3 outputs ('Y', 'Y_h', 'Y_c'); name the one to compile with --output"),
        (["--output", "Y_c"], "cell state output Y_c ('Y_c')"),
        (["--output", "Z"], "--output 'Z' is not an output of the graph; its outputs: 'Y'"),
        (["--output", "Y", "--lstm-output", "last"], "cannot be combined"),
    ]:
        assert main(["generate", str(path), "--out", str(out), *args]) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (args, err)
        assert not out.exists(), args
    for output in ("Y", "Y_h"):
        assert main(["verify", str(path), "--output", output, "--target", "python"]) == 0
        assert "PASS" in capsys.readouterr().out
    cases = {o: checked(path, sequences(4, d=2), output=o) for o in ("Y", "Y_h")}
    assert cases["Y"][0].returns_sequences and not cases["Y_h"][0].returns_sequences
    report(targets_match_oracles(cases, tmp_path))


def export(torch, net: Any, path, args: tuple, names: list, outputs: list, axes: dict) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            args,
            str(path),
            input_names=names,
            output_names=outputs,
            dynamic_axes=axes,
            dynamo=False,
        )


def seeded(torch, net: Any, seed: int) -> Any:
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.uniform_(-0.5, 0.5)
    return net.eval()


def test_initial_states_as_graph_inputs_start_at_zero(onnx, tmp_path):
    """PyTorch's forward(x, (h0, c0)) exports h0 and c0 as graph inputs: the model's
    predict semantics (zero states) are compiled, and onnxruntime is fed zeros for them."""
    torch = require_module("torch")

    class WithStates(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(3, 5, num_layers=2, batch_first=True)
            self.fc = torch.nn.Linear(5, 2)

        def forward(self, x, h0, c0):
            out, (h_n, c_n) = self.lstm(x, (h0, c0))
            return self.fc(out[:, -1]), h_n, c_n

    class BidirectionalGRU(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = torch.nn.GRU(3, 4, bidirectional=True)

        def forward(self, x, h0):
            _, h_n = self.gru(x, h0)
            return torch.cat([h_n[-2], h_n[-1]], -1)

    lstm, gru = seeded(torch, WithStates(), 1), seeded(torch, BidirectionalGRU(), 2)
    zeros = torch.zeros
    export(
        torch,
        lstm,
        tmp_path / "lstm_h0.onnx",
        (zeros(2, T_LEN, 3), zeros(2, 2, 5), zeros(2, 2, 5)),
        ["x", "h0", "c0"],
        ["y", "h_n", "c_n"],
        {"x": {0: "b", 1: "t"}, "h0": {1: "b"}, "c0": {1: "b"}, "y": {0: "b"}},
    )
    export(
        torch,
        gru,
        tmp_path / "gru_h0.onnx",
        (zeros(T_LEN, 2, 3), zeros(2, 2, 4)),
        ["x", "h0"],
        ["y"],
        {"x": {0: "t", 1: "b"}, "h0": {1: "b"}, "y": {0: "b"}},
    )

    def torch_lstm(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            state = zeros(2, len(x), 5)
            return lstm(torch.as_tensor(x), state, state)[0].numpy()

    def torch_gru(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return gru(torch.as_tensor(np.swapaxes(x, 0, 1).copy()), zeros(2, len(x), 4)).numpy()

    cases = {
        "lstm_h0_c0": checked(tmp_path / "lstm_h0.onnx", sequences(5), torch_lstm, output="y"),
        "gru_h0": checked(tmp_path / "gru_h0.onnx", sequences(6), torch_gru),
    }
    assert [l.kind for l in cases["lstm_h0_c0"][0].layers] == ["lstm", "lstm", "dense"]
    assert [l.kind for l in cases["gru_h0"][0].layers] == ["bidirectional"]
    for label, name in (("lstm_h0_c0", "h0"), ("lstm_h0_c0", "c0"), ("gru_h0", "h0")):
        notes = cases[label][0].notes
        assert any(f"graph input '{name}' feeds only initial states" in n for n in notes), notes
    report(targets_match_oracles(cases, tmp_path))


def test_a_state_input_used_otherwise_is_refused(onnx, tmp_path):
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.uniform(-1, 1, shape).astype(np.float32), name)
        for name, shape in (("W", (1, 8, 2)), ("R", (1, 8, 2)))
    ]
    nodes = [
        helper.make_node("LSTM", ["x", "W", "R", "", "", "h0"], ["", "y_h"], hidden_size=2),
        helper.make_node("Add", ["y_h", "h0"], ["out"]),
    ]
    floats = onnx.TensorProto.FLOAT
    graph = helper.make_graph(
        nodes,
        "h0_added",
        [
            helper.make_tensor_value_info("x", floats, [4, 1, 2]),
            helper.make_tensor_value_info("h0", floats, [1, 1, 2]),
        ],
        [helper.make_tensor_value_info("out", floats, [1, 1, 2])],
        inits,
    )
    path = tmp_path / "h0_added.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(UnsupportedLayerError, match="the graph has 2 inputs .'x', 'h0'.") as info:
        open_model(path)
    assert "initial states of recurrent operators as further inputs" in str(info.value)


# ---- LogSoftmax and time slices: IR layers the targets implement in their own branches --


@pytest.fixture(scope="module")
def new_layer_cases(onnx, tmp_path_factory) -> dict:
    """LogSoftmax after a PyTorch-1.x-style classifier (opset 9, over axis 1) and after a
    per-timestep Linear (opset 17, dim -1); PyTorch's out[:, -3:] of a 2-layer LSTM and
    out[:, -1] of a bidirectional LSTM (the must-show model). Each: (ir, x, onnxruntime's
    output), the reference and PyTorch already checked."""
    torch = require_module("torch")
    folder = tmp_path_factory.mktemp("onnx_new_layers")

    class SequenceLogSoftmax(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(3, 5, batch_first=True)
            self.fc = torch.nn.Linear(5, 4)

        def forward(self, x):
            out, _ = self.lstm(x)
            return torch.log_softmax(self.fc(out), dim=-1)

    class LastSteps(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(3, 5, num_layers=2, batch_first=True)
            self.fc = torch.nn.Linear(5, 2)

        def forward(self, x):
            out, _ = self.lstm(x)
            return self.fc(out[:, -3:])

    class BidirectionalLast(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(3, 6, bidirectional=True, batch_first=True)
            self.fc = torch.nn.Linear(12, 2)

        def forward(self, x):
            out, _ = self.lstm(x)
            return self.fc(out[:, -1])

    cases = {}
    path = folder / "torch1x_log_softmax.onnx"
    onnx.save(torch1x_graph(onnx, 9, True, seed=11), str(path))
    cases["opset9_log_softmax"] = checked(path, sequences(11))
    axes = {"x": {0: "b", 1: "t"}, "y": {0: "b", 1: "t"}}
    for seed, (label, module, out_axes) in enumerate(
        [
            ("sequence_log_softmax", SequenceLogSoftmax, axes["y"]),
            ("last_3_steps", LastSteps, axes["y"]),
            ("bidirectional_out_last", BidirectionalLast, {0: "b"}),
        ]
    ):
        net = seeded(torch, module(), 20 + seed)
        path = folder / f"{label}.onnx"
        example = (torch.zeros(2, T_LEN, 3),)
        export(torch, net, path, example, ["x"], ["y"], {"x": axes["x"], "y": out_axes})

        def torch_forward(x: np.ndarray, net: Any = net) -> np.ndarray:
            with torch.no_grad():
                return net(torch.as_tensor(x)).numpy()

        cases[label] = checked(path, sequences(30 + seed), torch_forward)
    return cases


def test_log_softmax_and_time_slices_map_to_the_ir(new_layer_cases):
    """What each model becomes (the reference and onnxruntime were compared on loading)."""
    layers = {label: ir.layers for label, (ir, _, _) in new_layer_cases.items()}
    assert [l.kind for l in layers["opset9_log_softmax"]] == ["lstm", "dense"]
    assert layers["opset9_log_softmax"][1].activation == "log_softmax"
    assert layers["sequence_log_softmax"][-1].activation == "log_softmax"
    assert new_layer_cases["sequence_log_softmax"][0].returns_sequences
    last3 = layers["last_3_steps"]
    assert [l.kind for l in last3] == ["lstm", "lstm", "time_slice", "dense"]
    assert (last3[2].start, last3[2].stop, last3[2].squeeze) == (-3, None, False)
    assert new_layer_cases["last_3_steps"][2].shape == (SEQUENCES, 3, 2)
    bidi = layers["bidirectional_out_last"]
    assert [l.kind for l in bidi] == ["bidirectional", "time_slice", "dense"]
    assert bidi[0].return_sequences and (bidi[1].start, bidi[1].squeeze) == (-1, True)


def test_log_softmax_and_time_slices_through_targets(new_layer_cases, tmp_path):
    """Waits on the targets' log_softmax and time_slice branches (they refuse or lack
    them until merged)."""
    report(targets_match_oracles(new_layer_cases, tmp_path))


def test_time_slices_lstmgen_cannot_represent_are_refused(onnx, tmp_path):
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    rng = np.random.default_rng(0)
    floats = onnx.TensorProto.FLOAT
    for label, (starts, ends, steps), message in [
        ("every_second", ([0], [6], [2]), "it slices time as [0:6:2]"),
        ("nothing", ([4], [2], [1]), "it slices time as [4:2], which keeps no timestep"),
    ]:
        inits = [
            numpy_helper.from_array(rng.uniform(-1, 1, shape).astype(np.float32), name)
            for name, shape in (("W", (1, 8, 2)), ("R", (1, 8, 2)))
        ]
        inits += [
            numpy_helper.from_array(np.array(v, np.int64), name)
            for name, v in (("starts", starts), ("ends", ends), ("axes", [0]), ("steps", steps))
        ]
        nodes = [
            helper.make_node("LSTM", ["x", "W", "R"], ["y"], hidden_size=2),
            helper.make_node("Slice", ["y", "starts", "ends", "axes", "steps"], ["out"]),
        ]
        graph = helper.make_graph(
            nodes,
            label,
            [helper.make_tensor_value_info("x", floats, [6, 1, 2])],
            [helper.make_tensor_value_info("out", floats, ["k", 1, 1, 2])],
            inits,
        )
        path = tmp_path / f"{label}.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
        with pytest.raises(UnsupportedLayerError, match="(Slice)") as info:
            open_model(path)
        assert message in str(info.value), str(info.value)
