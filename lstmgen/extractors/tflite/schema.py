"""The part of the TensorFlow Lite schema lstmgen reads, as plain checked records.

`read_model` turns the bytes of a `.tflite` file into a `TfliteModel`: its operator codes,
and for the main subgraph its tensors (shape, element type, constant contents, quantization)
and operators (builtin name, inputs, outputs, options table). Slot numbers are those of the
schema (`schema.fbs`: a union field takes two slots, its type then its value). Everything
that would make a later step index out of range is refused here with one error naming the
tensor or operator: a tensor index outside the tensor list, a buffer index outside the
buffer list, constant data whose size disagrees with the tensor's shape, a quantization
whose scale/zero-point vectors disagree with each other or with the shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ... import limits
from .flatbuffer import FlatbufferError, Reader, Table
from .opcodes import BUILTIN_OPERATORS

FILE_IDENTIFIER = b"TFL3"
SCHEMA_VERSION = 3
#: TensorType -> numpy dtype (the types a model lstmgen reads can hold).
TENSOR_TYPES: dict[int, str] = {
    0: "float32",
    1: "float16",
    2: "int32",
    3: "uint8",
    4: "int64",
    6: "bool",
    7: "int16",
    9: "int8",
    10: "float64",
}
TENSOR_TYPE_NAMES = {
    5: "string",
    8: "complex64",
    11: "complex128",
    12: "uint64",
    13: "resource",
    14: "variant",
    15: "uint32",
    16: "uint16",
    17: "int4",
    18: "bfloat16",
}
#: ActivationFunctionType
FUSED_ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}
CUSTOM = 32
MAX_DIMENSION = 1 << 31


class Slots:
    """Field slots of the tables read here (schema.fbs order)."""

    MODEL_VERSION, MODEL_OPCODES, MODEL_SUBGRAPHS, MODEL_DESCRIPTION, MODEL_BUFFERS = range(5)
    SUBGRAPH_TENSORS, SUBGRAPH_INPUTS, SUBGRAPH_OUTPUTS, SUBGRAPH_OPERATORS = range(4)
    TENSOR_SHAPE, TENSOR_TYPE, TENSOR_BUFFER, TENSOR_NAME, TENSOR_QUANT, TENSOR_VARIABLE = range(6)
    TENSOR_SPARSITY = 6
    QUANT_SCALE, QUANT_ZERO_POINT, QUANT_DETAILS_TYPE, QUANT_DIMENSION = 2, 3, 4, 6
    OPCODE_DEPRECATED, OPCODE_CUSTOM, OPCODE_VERSION, OPCODE_BUILTIN = range(4)
    OP_OPCODE, OP_INPUTS, OP_OUTPUTS, OP_OPTIONS_TYPE, OP_OPTIONS = range(5)
    OP_INTERMEDIATES = 8
    BUFFER_DATA, BUFFER_OFFSET, BUFFER_SIZE = range(3)


@dataclass
class Tensor:
    """One tensor of the main subgraph."""

    index: int
    name: str
    dtype: str  # numpy name, e.g. "float32", "int8"
    shape: tuple[int, ...]
    data: np.ndarray | None  # constant contents in `shape`, None for activations
    scale: np.ndarray | None  # float32, one per tensor or per channel; None if not quantized
    zero_point: np.ndarray | None  # int64, as many as `scale`
    quantized_dimension: int = 0
    is_variable: bool = False

    @property
    def label(self) -> str:
        return f"tensor {self.index} '{self.name}'"

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1


@dataclass
class Operator:
    """One operator of the main subgraph (inputs of -1 are absent optional inputs)."""

    index: int
    opcode: str  # builtin name, or "CUSTOM:<code>"
    version: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options_type: int
    options: Table | None
    #: its first output tensor's name up to any ';' (the converter names it after the
    #: Keras/TF layer, e.g. 'sequential/dense/MatMul'), printable; '' when unnamed
    output_name: str = ""

    @property
    def label(self) -> str:
        named = f", output '{self.output_name}'" if self.output_name else ""
        return f"operator {self.index} ({self.opcode}{named})"

    def option(self, slot: int, kind: str, default: Any = 0) -> Any:
        return default if self.options is None else self.options.scalar(slot, kind, default)


@dataclass
class TfliteModel:
    version: int
    description: str
    subgraph_count: int
    tensors: list[Tensor]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    operators: list[Operator]
    opcodes: list[str] = field(default_factory=list)


def read_model(data: bytes) -> TfliteModel:
    """Parse and check a `.tflite` file's bytes (FlatbufferError on anything malformed)."""
    if len(data) < 8:
        raise FlatbufferError(f"only {len(data)} bytes: not a TensorFlow Lite flatbuffer")
    if bytes(data[4:8]) != FILE_IDENTIFIER:
        raise FlatbufferError(
            f"file identifier {bytes(data[4:8])!r} is not {FILE_IDENTIFIER!r}: "
            "not a TensorFlow Lite flatbuffer"
        )
    reader = Reader(data)
    root = reader.root("model")
    version = int(root.scalar(Slots.MODEL_VERSION, "uint32"))
    if version != SCHEMA_VERSION:
        raise FlatbufferError(f"schema version {version}; lstmgen reads version {SCHEMA_VERSION}")
    opcodes = [_opcode(t) for t in root.tables(Slots.MODEL_OPCODES, "operator code")]
    versions = [
        int(t.scalar(Slots.OPCODE_VERSION, "int32", 1))
        for t in root.tables(Slots.MODEL_OPCODES, "operator code")
    ]
    buffers = root.tables(Slots.MODEL_BUFFERS, "buffer")
    subgraphs = root.tables(Slots.MODEL_SUBGRAPHS, "subgraph")
    if not subgraphs:
        raise FlatbufferError("the model has no subgraph")
    main = subgraphs[0]
    tensor_tables = main.tables(Slots.SUBGRAPH_TENSORS, "tensor")
    tensors = [_tensor(k, t, buffers, reader) for k, t in enumerate(tensor_tables)]
    count = len(tensors)
    inputs = _indices(main.numbers(Slots.SUBGRAPH_INPUTS, "int32", "subgraph inputs"), count, "")
    outputs = _indices(main.numbers(Slots.SUBGRAPH_OUTPUTS, "int32", "subgraph outputs"), count, "")
    operators = []
    for k, table in enumerate(main.tables(Slots.SUBGRAPH_OPERATORS, "operator")):
        op = _operator(k, table, opcodes, versions, count)
        if op.outputs:
            op.output_name = printable(tensors[op.outputs[0]].name.split(";")[0])
        operators.append(op)
    return TfliteModel(
        version=version,
        description=root.string(Slots.MODEL_DESCRIPTION, "model description"),
        subgraph_count=len(subgraphs),
        tensors=tensors,
        inputs=inputs,
        outputs=outputs,
        operators=operators,
        opcodes=opcodes,
    )


def printable(text: str, limit: int = 60) -> str:
    """A name from the file made safe for a one-line message: printable ASCII, shortened."""
    clean = "".join(c if " " <= c <= "~" else "?" for c in text)
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


def _opcode(table: Table) -> str:
    code = max(
        int(table.scalar(Slots.OPCODE_DEPRECATED, "int8")),
        int(table.scalar(Slots.OPCODE_BUILTIN, "int32")),
    )
    if code == CUSTOM:
        return "CUSTOM:" + printable(table.string(Slots.OPCODE_CUSTOM, "custom operator name"))
    return BUILTIN_OPERATORS.get(code, f"builtin operator #{code}")


def _indices(values: np.ndarray | None, count: int, what: str, optional: bool = False) -> tuple:
    if values is None:
        return ()
    out = tuple(int(v) for v in values)
    for v in out:
        if not (0 <= v < count or (optional and v == -1)):
            raise FlatbufferError(f"{what or 'subgraph'}: tensor index {v} is out of range")
    return out


def _operator(
    index: int, table: Table, opcodes: list[str], versions: list[int], count: int
) -> Operator:
    what = f"operator {index}"
    code = int(table.scalar(Slots.OP_OPCODE, "uint32"))
    if code >= len(opcodes):
        raise FlatbufferError(f"{what}: operator code index {code} is out of range")
    name = opcodes[code]
    label = f"{what} ({name})"
    options_type = int(table.scalar(Slots.OP_OPTIONS_TYPE, "uint8"))
    options = table.table(Slots.OP_OPTIONS, f"{label} options") if options_type else None
    return Operator(
        index=index,
        opcode=name,
        version=versions[code],
        inputs=_indices(table.numbers(Slots.OP_INPUTS, "int32", label), count, label, True),
        outputs=_indices(table.numbers(Slots.OP_OUTPUTS, "int32", label), count, label),
        options_type=options_type,
        options=options,
    )


def _tensor(index: int, table: Table, buffers: list[Table], reader: Reader) -> Tensor:
    what = f"tensor {index}"
    name = printable(table.string(Slots.TENSOR_NAME, f"{what} name"))
    label = f"{what} '{name}'"
    type_code = int(table.scalar(Slots.TENSOR_TYPE, "int8"))
    if type_code not in TENSOR_TYPES:
        kind = TENSOR_TYPE_NAMES.get(type_code, f"type #{type_code}")
        dtype = f"unsupported:{kind}"
    else:
        dtype = TENSOR_TYPES[type_code]
    raw_shape = table.numbers(Slots.TENSOR_SHAPE, "int32", f"{label} shape")
    shape = () if raw_shape is None else tuple(int(v) for v in raw_shape)
    if any(d < 0 for d in shape):
        raise FlatbufferError(f"{label}: negative dimension in shape {shape}")
    limits.check_array(label, shape, "the tensor")  # before TensorFlow Lite allocates it
    if table.has(Slots.TENSOR_SPARSITY):
        dtype = "unsupported:sparse"
    buffer_index = int(table.scalar(Slots.TENSOR_BUFFER, "uint32"))
    if buffers and buffer_index >= len(buffers):
        raise FlatbufferError(f"{label}: buffer index {buffer_index} is out of range")
    raw = _buffer_bytes(buffers[buffer_index], reader, label) if buffers else None
    data = None
    if raw is not None and len(raw):
        data = _constant(raw, dtype, shape, label)
    scale, zero_point, qdim = _quantization(table, shape, label)
    return Tensor(
        index=index,
        name=name,
        dtype=dtype,
        shape=shape,
        data=data,
        scale=scale,
        zero_point=zero_point,
        quantized_dimension=qdim,
        is_variable=bool(table.scalar(Slots.TENSOR_VARIABLE, "bool", False)),
    )


def _buffer_bytes(table: Table, reader: Reader, label: str) -> memoryview | None:
    offset = int(table.scalar(Slots.BUFFER_OFFSET, "uint64"))
    size = int(table.scalar(Slots.BUFFER_SIZE, "uint64"))
    if offset > 1:  # data stored after the flatbuffer (models over 2 GB)
        reader.check(offset, size, f"{label} data")
        return reader.data[offset : offset + size]
    return table.raw_bytes(Slots.BUFFER_DATA, f"{label} data")


def _constant(raw: memoryview, dtype: str, shape: tuple[int, ...], label: str) -> np.ndarray:
    if dtype.startswith("unsupported:"):
        raise FlatbufferError(f"{label}: constant of {dtype.split(':', 1)[1]} type")
    item = np.dtype(dtype).itemsize
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if count * item != len(raw):
        raise FlatbufferError(
            f"{label}: shape {list(shape)} of {dtype} needs {count * item} bytes, "
            f"its buffer holds {len(raw)}"
        )
    return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"), count=count).reshape(shape)


def _quantization(
    table: Table, shape: tuple[int, ...], label: str
) -> tuple[np.ndarray | None, np.ndarray | None, int]:
    quant = table.table(Slots.TENSOR_QUANT, f"{label} quantization")
    if quant is None:
        return None, None, 0
    scale = quant.numbers(Slots.QUANT_SCALE, "float32", f"{label} scales")
    zero = quant.numbers(Slots.QUANT_ZERO_POINT, "int64", f"{label} zero points")
    qdim = int(quant.scalar(Slots.QUANT_DIMENSION, "int32"))
    if scale is None or len(scale) == 0:
        return None, None, 0
    if int(quant.scalar(Slots.QUANT_DETAILS_TYPE, "uint8")):
        raise FlatbufferError(f"{label}: custom quantization details are not supported")
    if zero is None or len(zero) != len(scale):
        raise FlatbufferError(
            f"{label}: {len(scale)} scales but {0 if zero is None else len(zero)} zero points"
        )
    if len(scale) > 1 and not (0 <= qdim < len(shape) and shape[qdim] == len(scale)):
        raise FlatbufferError(
            f"{label}: {len(scale)} per-channel scales do not match dimension {qdim} "
            f"of shape {list(shape)}"
        )
    return np.array(scale, np.float32), np.array(zero, np.int64), qdim
