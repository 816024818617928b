"""Test models in TensorFlow Lite's format, shared by the `.tflite` tests.

Two sources:

* `convert_keras`: TensorFlow Lite Micro's own recipe -- a tf_keras model, a tf.function
  with a fixed [1, T, D] input, `TFLiteConverter.from_concrete_functions` -- float, or full
  integer with a representative dataset (int8 in and out, or float in and out around the
  int8 graph). This is what users bring.
* `Graph` + `write_tflite`: small flatbuffers written here with the `flatbuffers` package,
  for operators the converter does not write from Keras (BIDIRECTIONAL_SEQUENCE_LSTM,
  UNIDIRECTIONAL_SEQUENCE_RNN, LSTM peepholes/projection/layer norm) and for hostile files.
  TensorFlow Lite's reference interpreter runs them, so they are checked against it, not
  against lstmgen.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

TYPES = {"float32": 0, "int32": 2, "int16": 7, "int8": 9, "float16": 1}
OPCODES = {
    "FULLY_CONNECTED": 9,
    "RESHAPE": 22,
    "UNIDIRECTIONAL_SEQUENCE_RNN": 35,
    "GATHER": 36,
    "UNIDIRECTIONAL_SEQUENCE_LSTM": 44,
    "STRIDED_SLICE": 45,
    "BIDIRECTIONAL_SEQUENCE_LSTM": 52,
    "REVERSE_V2": 105,
    "WHILE": 119,
    "ADD": 0,
}
#: BuiltinOptions union index of each operator's options table, and the table's fields
#: as (slot, kind) in schema order
OPTIONS = {
    "FULLY_CONNECTED": 8,
    "UNIDIRECTIONAL_SEQUENCE_RNN": 31,
    "UNIDIRECTIONAL_SEQUENCE_LSTM": 71,
    "BIDIRECTIONAL_SEQUENCE_LSTM": 69,
    "STRIDED_SLICE": 32,
    "GATHER": 23,
}


@dataclass
class Graph:
    """A one-subgraph model: tensors (dicts), operators, the graph's inputs and outputs."""

    tensors: list[dict] = field(default_factory=list)
    operators: list[dict] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)

    def tensor(
        self,
        shape: tuple[int, ...],
        dtype: str = "float32",
        data: np.ndarray | None = None,
        name: str = "",
        variable: bool = False,
        scale: list[float] | None = None,
        zero_point: list[int] | None = None,
    ) -> int:
        self.tensors.append(
            dict(
                shape=list(shape),
                dtype=dtype,
                data=data,
                name=name or f"t{len(self.tensors)}",
                variable=variable,
                scale=scale,
                zero_point=zero_point,
            )
        )
        return len(self.tensors) - 1

    def const(self, array: np.ndarray, name: str = "") -> int:
        array = np.ascontiguousarray(array)
        return self.tensor(array.shape, str(array.dtype), array, name)

    def op(
        self,
        opcode: str,
        inputs: list[int],
        outputs: list[int],
        options: list[tuple[int, str, Any]] | None = None,
    ) -> None:
        self.operators.append(
            dict(opcode=opcode, inputs=inputs, outputs=outputs, options=options or [])
        )


def write_tflite(graph: Graph) -> bytes:
    """The graph as `.tflite` bytes (schema version 3)."""
    import flatbuffers

    b = flatbuffers.Builder(1024)

    def int_vector(values: list[int]) -> int:
        return b.CreateNumpyVector(np.asarray(values, np.int32))

    codes = sorted({o["opcode"] for o in graph.operators})
    # buffers: 0 is the empty sentinel, then one per constant tensor
    buffer_offsets = []
    for data in [None] + [t["data"] for t in graph.tensors if t["data"] is not None]:
        if data is not None:
            raw = np.ascontiguousarray(data).tobytes()
            b.StartVector(1, len(raw), 16)
            for byte in reversed(raw):
                b.PrependUint8(byte)
            vec = b.EndVector()
        b.StartObject(3)
        if data is not None:
            b.PrependUOffsetTRelativeSlot(0, vec, 0)
        buffer_offsets.append(b.EndObject())
    tensor_offsets = []
    next_buffer = 1
    for t in graph.tensors:
        name = b.CreateString(t["name"])
        shape = int_vector(t["shape"])
        quant = None
        if t["scale"] is not None:
            scale = b.CreateNumpyVector(np.asarray(t["scale"], np.float32))
            zero = b.CreateNumpyVector(np.asarray(t["zero_point"], np.int64))
            b.StartObject(7)
            b.PrependUOffsetTRelativeSlot(2, scale, 0)
            b.PrependUOffsetTRelativeSlot(3, zero, 0)
            quant = b.EndObject()
        b.StartObject(8)
        b.PrependUOffsetTRelativeSlot(0, shape, 0)
        b.PrependInt8Slot(1, TYPES[t["dtype"]], 0)
        if t["data"] is not None:
            b.PrependUint32Slot(2, next_buffer, 0)
            next_buffer += 1
        b.PrependUOffsetTRelativeSlot(3, name, 0)
        if quant is not None:
            b.PrependUOffsetTRelativeSlot(4, quant, 0)
        b.PrependBoolSlot(5, t["variable"], False)
        tensor_offsets.append(b.EndObject())
    op_offsets = []
    for o in graph.operators:
        ins, outs = int_vector(o["inputs"]), int_vector(o["outputs"])
        options = None
        if o["opcode"] in OPTIONS:
            b.StartObject(8)
            for slot, kind, value in o["options"]:
                getattr(b, f"Prepend{kind}Slot")(slot, value, not value)
            options = b.EndObject()
        b.StartObject(9)
        b.PrependUint32Slot(0, codes.index(o["opcode"]), 0)
        b.PrependUOffsetTRelativeSlot(1, ins, 0)
        b.PrependUOffsetTRelativeSlot(2, outs, 0)
        if options is not None:
            b.PrependUint8Slot(3, OPTIONS[o["opcode"]], 0)
            b.PrependUOffsetTRelativeSlot(4, options, 0)
        op_offsets.append(b.EndObject())

    def table_vector(offsets: list[int]) -> int:
        b.StartVector(4, len(offsets), 4)
        for off in reversed(offsets):
            b.PrependUOffsetTRelative(off)
        return b.EndVector()

    tensors, operators = table_vector(tensor_offsets), table_vector(op_offsets)
    inputs, outputs = int_vector(graph.inputs), int_vector(graph.outputs)
    b.StartObject(5)
    b.PrependUOffsetTRelativeSlot(0, tensors, 0)
    b.PrependUOffsetTRelativeSlot(1, inputs, 0)
    b.PrependUOffsetTRelativeSlot(2, outputs, 0)
    b.PrependUOffsetTRelativeSlot(3, operators, 0)
    subgraph = b.EndObject()
    code_offsets = []
    for code in codes:
        b.StartObject(4)
        b.PrependInt8Slot(0, min(OPCODES[code], 127), 0)
        b.PrependInt32Slot(2, 1, 1)
        b.PrependInt32Slot(3, OPCODES[code], 0)
        code_offsets.append(b.EndObject())
    opcodes, subgraphs = table_vector(code_offsets), table_vector([subgraph])
    buffers = table_vector(buffer_offsets)
    b.StartObject(5)
    b.PrependUint32Slot(0, 3, 0)
    b.PrependUOffsetTRelativeSlot(1, opcodes, 0)
    b.PrependUOffsetTRelativeSlot(2, subgraphs, 0)
    b.PrependUOffsetTRelativeSlot(4, buffers, 0)
    b.Finish(b.EndObject(), file_identifier=b"TFL3")
    return bytes(b.Output())


# ------------------------------------------------------------------- crafted models --


def _weights(rng: np.random.Generator, *shape: int, scale: float = 0.5) -> np.ndarray:
    return rng.uniform(-scale, scale, shape).astype(np.float32)


def lstm_cell_inputs(
    g: Graph,
    rng: np.random.Generator,
    d: int,
    h: int,
    p: int | None = None,
    peephole: bool = False,
    cifg: bool = False,
    layer_norm: bool = False,
    projection_bias: bool = False,
) -> list[int]:
    """Tensors for inputs 1-17 of an LSTM cell (weights, peepholes, biases, projection),
    -1 for absent ones."""
    p = p or h
    ids = []
    for gate in range(4):
        ids.append(-1 if (cifg and gate == 0) else g.const(_weights(rng, h, d)))
    for gate in range(4):
        ids.append(-1 if (cifg and gate == 0) else g.const(_weights(rng, h, p)))
    for gate in range(3):
        present = peephole and not (cifg and gate == 0)
        ids.append(g.const(_weights(rng, h)) if present else -1)
    for gate in range(4):
        ids.append(-1 if (cifg and gate == 0) else g.const(_weights(rng, h, scale=1.0)))
    ids.append(g.const(_weights(rng, p, h)) if p != h else -1)
    ids.append(g.const(_weights(rng, p)) if projection_bias else -1)
    return ids


def lstm_graph(
    t_len: int = 6,
    d: int = 3,
    h: int = 4,
    p: int | None = None,
    seed: int = 0,
    last_step: bool = True,
    **features: bool,
) -> bytes:
    """x [1, T, D] -> UNIDIRECTIONAL_SEQUENCE_LSTM -> (last step) -> FULLY_CONNECTED(2)."""
    rng = np.random.default_rng(seed)
    g = Graph()
    out_size = p or h
    x = g.tensor((1, t_len, d), name="x")
    cell = lstm_cell_inputs(g, rng, d, h, p, **features)
    h_state = g.tensor((1, out_size), variable=True, name="h")
    c_state = g.tensor((1, h), variable=True, name="c")
    norms = (
        [g.const(_weights(rng, h, scale=1.0)) for _ in range(4)]
        if features.get("layer_norm")
        else [-1] * 4
    )
    seq = g.tensor((1, t_len, out_size), name="lstm")
    g.op(
        "UNIDIRECTIONAL_SEQUENCE_LSTM",
        [x, *cell, h_state, c_state, *norms],
        [seq],
        [(0, "Int8", 4)],
    )
    last = seq
    if last_step:
        last = g.tensor((1, out_size), name="last")
        g.op(
            "STRIDED_SLICE",
            [
                seq,
                g.const(np.array([0, -1, 0], np.int32)),
                g.const(np.array([0, 0, 0], np.int32)),
                g.const(np.array([1, 1, 1], np.int32)),
            ],
            [last],
            [(0, "Int32", 5), (1, "Int32", 5), (4, "Int32", 2)],
        )
    y = g.tensor((1, 2) if last_step else (1, t_len, 2), name="y")
    g.op(
        "FULLY_CONNECTED",
        [last, g.const(_weights(rng, 2, out_size)), g.const(_weights(rng, 2))],
        [y],
        [(2, "Bool", not last_step)],
    )
    g.inputs, g.outputs = [x], [y]
    return write_tflite(g)


def bidirectional_lstm_graph(
    t_len: int = 5, d: int = 3, h: int = 4, seed: int = 1, merge_outputs: bool = True
) -> bytes:
    """x [T, 1, D] (time-major) -> BIDIRECTIONAL_SEQUENCE_LSTM, outputs merged or not."""
    rng = np.random.default_rng(seed)
    g = Graph()
    x = g.tensor((t_len, 1, d), name="x")
    fw = lstm_cell_inputs(g, rng, d, h)
    bw = lstm_cell_inputs(g, rng, d, h)
    states = [g.tensor((1, h), variable=True, name=f"s{k}") for k in range(4)]
    if merge_outputs:
        outs = [g.tensor((t_len, 1, 2 * h), name="y")]
    else:
        outs = [g.tensor((t_len, 1, h), name="fw"), g.tensor((t_len, 1, h), name="bw")]
    g.op(
        "BIDIRECTIONAL_SEQUENCE_LSTM",
        [x, *fw, *bw, *states, *([-1] * 9)],
        outs,
        [(0, "Int8", 4), (3, "Bool", merge_outputs), (4, "Bool", True)],
    )
    g.inputs, g.outputs = [x], [outs[0]]
    return write_tflite(g)


def rnn_graph(t_len: int = 6, d: int = 3, h: int = 5, seed: int = 2, relu: bool = False) -> bytes:
    """x [1, T, D] -> UNIDIRECTIONAL_SEQUENCE_RNN (sequence output)."""
    rng = np.random.default_rng(seed)
    g = Graph()
    x = g.tensor((1, t_len, d), name="x")
    w, u, b = g.const(_weights(rng, h, d)), g.const(_weights(rng, h, h)), g.const(_weights(rng, h))
    state = g.tensor((1, h), variable=True, name="h")
    y = g.tensor((1, t_len, h), name="y")
    g.op("UNIDIRECTIONAL_SEQUENCE_RNN", [x, w, u, b, state], [y], [(1, "Int8", 1 if relu else 4)])
    g.inputs, g.outputs = [x], [y]
    return write_tflite(g)


# ------------------------------------------------------------- the converter's recipe --


def convert_keras(
    model: Any,
    t_len: int,
    d: int,
    integer: bool = False,
    float_interface: bool = False,
    calibration: np.ndarray | None = None,
) -> bytes:
    """TensorFlow Lite Micro's recipe: a fixed [1, T, D] concrete function, converted; with
    `integer`, full-integer quantization calibrated on `calibration` [N, T, D] (the
    converter's calibration is not deterministic: two runs may differ in a few constants)."""
    import tensorflow as tf

    spec = tf.TensorSpec([1, t_len, d], tf.float32)
    concrete = tf.function(lambda v: model(v)).get_concrete_function(spec)
    # The converter saves the trackable object as a SavedModel first: given the Keras model,
    # it traces every layer's serving functions too (most of the time: ~20 s for two small
    # LSTMs). A plain tf.Module holding the model's variables gives the same graph (the
    # float file is byte-identical) in a sixth of the time.
    variables = tf.Module()
    variables.weights = list(model.variables)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], variables)
    if integer:
        assert calibration is not None
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([row[None]] for row in calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if not float_interface:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    return converter.convert()


def save(data: bytes, folder: Path, name: str) -> Path:
    path = Path(folder) / f"{name}.tflite"
    path.write_bytes(data)
    return path


# --------------------------------------------------------- the shared converted suite --

#: name -> (timesteps, layers factory, conversions). Kept small: TensorFlow's converter
#: takes seconds per model, so every test module shares one conversion per session.
SUITE_D = 3


def _suite_specs() -> dict[str, tuple[int, Any, tuple[str, ...]]]:
    import tf_keras as k

    lstm, bi, dense = k.layers.LSTM, k.layers.Bidirectional, k.layers.Dense
    return {
        "single": (12, lambda: [lstm(8), dense(2)], ("float", "int8", "int8_float_io")),
        "stacked": (
            10,
            lambda: [lstm(8, return_sequences=True), lstm(6), dense(1)],
            ("float", "int8"),
        ),
        "bidirectional": (
            10,
            lambda: [bi(lstm(5, return_sequences=True)), bi(lstm(4)), dense(3)],
            ("float", "int8"),
        ),
        "backwards": (
            9,
            lambda: [lstm(6, go_backwards=True, return_sequences=True), lstm(4), dense(1)],
            ("int8",),
        ),
        "classifier": (
            8,
            lambda: [lstm(6), dense(5, activation="relu"), dense(3, activation="softmax")],
            ("float",),
        ),
        "long": (200, lambda: [lstm(16, return_sequences=True), dense(2)], ("int8",)),
    }


class _Conversions(dict):
    """conversion -> .tflite path, each converted on first use (a test reads one or two)."""

    def __init__(self, convert: Any, names: tuple[str, ...]):
        super().__init__()
        self._convert, self._names = convert, names

    def __missing__(self, conversion: str) -> Path:
        if conversion not in self._names:
            raise KeyError(conversion)
        self[conversion] = self._convert(conversion)
        return self[conversion]


@dataclass
class SuiteModel:
    name: str
    timesteps: int
    keras_model: Any
    paths: dict[str, Path]  # conversion -> .tflite, converted when first read


_SUITE: dict[str, SuiteModel] = {}
_FOLDER: list[Path] = []


def suite_model(name: str) -> SuiteModel:
    """One model of the shared suite, built on first use (once per test session); each of
    its conversions is made when a test first reads its path."""
    if name in _SUITE:
        return _SUITE[name]
    import atexit
    import shutil
    import tempfile

    import tf_keras as k

    if not _FOLDER:
        _FOLDER.append(Path(tempfile.mkdtemp(prefix="lstmgen-tflite-")))
        atexit.register(shutil.rmtree, _FOLDER[0], True)
    t_len, layers, conversions = _suite_specs()[name]
    model = k.Sequential([k.Input((t_len, SUITE_D), batch_size=1), *layers()])
    rng = np.random.default_rng(sum(map(ord, name)))
    model.set_weights(
        [rng.uniform(-0.8, 0.8, w.shape).astype(np.float32) for w in model.get_weights()]
    )
    calibration = (
        np.random.default_rng(0)
        .standard_normal((64 if t_len < 100 else 16, t_len, SUITE_D))
        .astype(np.float32)
    )

    def convert(conversion: str) -> Path:
        data = convert_keras(
            model,
            t_len,
            SUITE_D,
            integer=conversion != "float",
            float_interface=conversion == "int8_float_io",
            calibration=calibration,
        )
        return save(data, _FOLDER[0], f"{name}_{conversion}")

    _SUITE[name] = SuiteModel(name, t_len, model, _Conversions(convert, conversions))
    return _SUITE[name]
