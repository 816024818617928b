"""Builds the ONNX-Runtime peer for the benchmarks: an IR model as ONNX `LSTM` operators.

Only what the benchmark models need: sigmoid/tanh LSTMs (stacked, last output or not)
followed by Dense layers with linear/softmax activation. ONNX gate order is i, o, f, c.
"""

from __future__ import annotations

import numpy as np

from lstmgen.ir import LSTM, Dense, Model

IR_TO_ONNX_GATES = [0, 3, 1, 2]  # IR i,f,g,o -> ONNX i,o,f,c


def to_onnx(model: Model, timesteps: int, batch: int | str = 1):
    """The model as an ONNX graph: x [T, batch, D] -> y [batch, O] (`batch` may be a name,
    for any batch size)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []
    current = "x"  # [T, 1, D]
    for k, layer in enumerate(model.layers):
        if isinstance(layer, LSTM):
            assert (layer.gate_activation, layer.cell_activation) == ("sigmoid", "tanh")
            h = layer.units

            def reorder(a: np.ndarray, h: int = h) -> np.ndarray:
                return np.concatenate([a[g * h : (g + 1) * h] for g in IR_TO_ONNX_GATES])

            bias = np.zeros(4 * h, np.float32) if layer.bias is None else layer.bias
            inits += [
                numpy_helper.from_array(reorder(layer.input_weights)[None], f"W{k}"),
                numpy_helper.from_array(reorder(layer.recurrent_weights)[None], f"R{k}"),
                numpy_helper.from_array(
                    np.concatenate([reorder(bias), np.zeros(4 * h, np.float32)])[None], f"B{k}"
                ),
            ]
            nodes.append(
                helper.make_node(
                    "LSTM", [current, f"W{k}", f"R{k}", f"B{k}"], [f"Y{k}", f"Yh{k}"], hidden_size=h
                )
            )
            if layer.return_sequences:  # Y [T, 1, batch, H] -> [T, batch, H]
                inits.append(numpy_helper.from_array(np.array([1], np.int64), f"ax{k}"))
                nodes.append(helper.make_node("Squeeze", [f"Y{k}", f"ax{k}"], [f"S{k}"]))
                current = f"S{k}"
            else:  # Yh [1, batch, H] -> [batch, H]
                inits.append(numpy_helper.from_array(np.array([-1, h], np.int64), f"shape{k}"))
                nodes.append(helper.make_node("Reshape", [f"Yh{k}", f"shape{k}"], [f"S{k}"]))
                current = f"S{k}"
        elif isinstance(layer, Dense):
            inits += [
                numpy_helper.from_array(layer.weights, f"DW{k}"),
                numpy_helper.from_array(layer.bias, f"Db{k}"),
            ]
            nodes.append(
                helper.make_node("Gemm", [current, f"DW{k}", f"Db{k}"], [f"G{k}"], transB=1)
            )
            current = f"G{k}"
            if layer.activation == "softmax":
                nodes.append(helper.make_node("Softmax", [current], [f"A{k}"], axis=-1))
                current = f"A{k}"
            else:
                assert layer.activation == "linear"
        else:
            raise ValueError(f"bench peer does not build {layer.kind}")
    nodes.append(helper.make_node("Identity", [current], ["y"]))
    graph = helper.make_graph(
        nodes,
        "bench",
        [
            helper.make_tensor_value_info(
                "x", TensorProto.FLOAT, [timesteps, batch, model.input_size]
            )
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, model.output_size])],
        initializer=inits,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(proto)
    return proto


def session(model: Model, timesteps: int):
    """A single-threaded onnxruntime session and a function running one sequence [T, D]."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(
        to_onnx(model, timesteps).SerializeToString(), options, providers=["CPUExecutionProvider"]
    )

    def run(x: np.ndarray) -> np.ndarray:
        return sess.run(["y"], {"x": x[:, None, :]})[0].reshape(-1)

    return run


def batch_session(model: Model, timesteps: int):
    """A single-threaded onnxruntime session and a function running a batch x [N, T, D]."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    proto = to_onnx(model, timesteps, batch="N")
    sess = ort.InferenceSession(
        proto.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )

    def run(x: np.ndarray) -> np.ndarray:
        return sess.run(["y"], {"x": np.ascontiguousarray(np.swapaxes(x, 0, 1))})[0]

    return run
