"""The oracle of `lstmgen verify` for ONNX files: onnxruntime running the file itself on
one thread, fed and read through the plan. onnxruntime's CPU provider has no layout=1
recurrent operators: such files run rewritten as Transpose + layout 0 + Transpose."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ...errors import MissingDependencyError
from .plan import Plan, from_onnx_output, to_onnx_input, zero_feeds
from .spec import RECURRENT_OPS, STATE_INPUTS, STATE_OUTPUTS


def import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise MissingDependencyError(
            "running an ONNX model (the oracle of lstmgen verify) "
            "needs onnxruntime: pip install 'lstmgen[onnx]'"
        ) from None
    return onnxruntime


def oracle_name(rewritten: bool) -> str:
    try:
        import onnxruntime

        version = onnxruntime.__version__
    except ImportError:
        version = "(not installed)"
    how = (
        "the ONNX file with its layout=1 recurrent operators rewritten as Transpose + "
        "layout=0 operator (onnxruntime's CPU LSTM/GRU/RNN have no layout=1)"
        if rewritten
        else "the ONNX file"
    )
    return f"onnxruntime {version} running {how} (1 thread)"


def runnable_by_onnxruntime(proto: Any) -> Any | None:
    """onnxruntime's CPU provider refuses LSTM, GRU and RNN with layout=1: a copy of
    `proto` where every such operator runs in layout 0 between Transposes (the same
    function), or None when none needs it."""
    from onnx import helper

    def batchwise(n: Any) -> bool:
        return n.op_type in RECURRENT_OPS and any(
            a.name == "layout" and a.i == 1 for a in n.attribute
        )

    if not any(batchwise(n) for n in proto.graph.node):
        return None
    out = type(proto)()
    out.CopyFrom(proto)
    nodes = []
    for k, node in enumerate(proto.graph.node):
        if not batchwise(node):
            nodes.append(node)
            continue
        prefix = f"lstmgen_layout0_{k}"
        new = type(node)()
        new.CopyFrom(node)
        del new.attribute[:]
        new.attribute.extend(a for a in node.attribute if a.name != "layout")
        inputs = list(node.input)
        for index in STATE_INPUTS[node.op_type]:
            perm = [1, 0, 2]
            if index < len(inputs) and inputs[index]:
                moved = f"{prefix}_in{index}"
                nodes.append(
                    helper.make_node(
                        "Transpose", [inputs[index]], [moved], name=f"{moved}_T", perm=perm
                    )
                )
                inputs[index] = moved
        del new.input[:]
        new.input.extend(inputs)
        after = []
        outputs = list(node.output)
        for index in STATE_OUTPUTS[node.op_type]:
            perm = [2, 0, 1, 3] if index == 0 else [1, 0, 2]
            if index < len(outputs) and outputs[index]:
                moved = f"{prefix}_out{index}"
                after.append(
                    helper.make_node(
                        "Transpose", [moved], [outputs[index]], name=f"{moved}_T", perm=perm
                    )
                )
                outputs[index] = moved
        del new.output[:]
        new.output.extend(outputs)
        nodes.append(new)
        nodes.extend(after)
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    del out.graph.value_info[:]  # inferred shapes of renamed tensors no longer hold
    return out


def session(source: Any) -> Any:
    """An onnxruntime session on `source` (a path or serialised bytes), one thread."""
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def predictor(source: Any, plan: Plan) -> Callable[[np.ndarray], np.ndarray]:
    """The oracle's predict on [N, T, D]: the session opens on first use; a graph fixed
    to a batch size runs in chunks of it (the last one padded with zeros); inputs that are
    initial states get zeros (the IR's start, as in predict)."""
    opened = None

    def predict(x: np.ndarray) -> np.ndarray:
        nonlocal opened
        if opened is None:
            opened = session(source)
        x = np.asarray(x, np.float32)
        n = x.shape[0]
        chunk = plan.batch or n
        results = []
        for start in range(0, n, chunk):
            part = x[start : start + chunk]
            real = part.shape[0]
            if real < chunk:
                part = np.concatenate(
                    [part, np.zeros((chunk - real,) + part.shape[1:], np.float32)]
                )
            feeds = {plan.input_name: to_onnx_input(plan, part), **zero_feeds(plan, chunk)}
            y = opened.run([plan.output_name], feeds)[0]
            results.append(from_onnx_output(plan, np.asarray(y), chunk)[:real])
        return np.concatenate(results)

    return predict
