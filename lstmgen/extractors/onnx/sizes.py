"""What an ONNX model may make lstmgen allocate, checked before it happens (the limits of
`lstmgen.limits`):

* `check_declared_tensors`: every tensor the file declares -- initializers, sparse
  initializers, Constant and other tensor attributes, in subgraphs and functions too --
  by its declared dims (a sparse tensor by its dense size) and, for external data, its
  declared byte length; before any data is converted or an external file read.
* `check_fold`: the outputs of a constant computation (a node of constants the walk
  evaluates at load time) by the shapes onnx shape inference gives them from the constant
  inputs, before the node runs; a node whose output size cannot be known is folded only
  when it cannot produce more values than its inputs hold together (elementwise,
  reshaping, slicing, gathering operators), and the values all folding produces in one
  model stay within `folded_values`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from ... import limits
from ...errors import LimitError, ModelError

if TYPE_CHECKING:
    from .walk import Walk

#: Constant inputs up to this many values become initializers of the inference model
#: (shape inference reads their values: shapes, repeats, pads); larger ones only their
#: shape (no operator's output shape depends on the values of a large input).
VALUE_INPUT_LIMIT = 4096
#: Operators whose output holds at most the product of their inputs' sizes, whatever the
#: values: the only ones folded when shape inference cannot give the output shape.
BOUNDED_BY_INPUTS = frozenset(
    "Abs Add And Cast CastLike Ceil Clip Concat Cos Div Equal Erf Exp Flatten Floor Gather "
    "GatherElements GatherND Gemm Greater GreaterOrEqual Identity Less LessOrEqual Log "
    "LogSoftmax MatMul Max Mean Min Mod Mul Neg Not Or Pow Reciprocal ReduceL2 ReduceMax "
    "ReduceMean ReduceMin ReduceProd ReduceSum Relu Reshape Round Shape Sigmoid Sign Sin "
    "Size Slice Softmax Split Sqrt Squeeze Sub Sum Tanh Transpose Unsqueeze Where Xor".split()
)


# ---- declared tensors -----------------------------------------------------------------
def check_declared_tensors(proto: Any, label: str) -> None:
    """Every tensor the model declares is within the limits (dims, external lengths)."""
    budget = limits.ParameterBudget(f"{label}: the model's tensors")
    for where, tensor, dims in _tensors(proto, label):
        count = limits.check_array(where, dims, "the tensor")
        budget.take(count, where)
        for entry in getattr(tensor, "external_data", []):
            if entry.key in ("length", "offset"):
                try:
                    value = int(entry.value)
                except ValueError:
                    raise ModelError(
                        f"{where}: external data {entry.key} {entry.value!r}"
                    ) from None
                if entry.key == "length":
                    limits.check_member(f"{where} (external data)", value, value)


def _tensors(proto: Any, label: str) -> Iterator[tuple[str, Any, list[int]]]:
    graphs = [(f"{label}: graph", proto.graph)]
    for function in proto.functions:
        yield from _node_tensors(f"{label}: function '{function.name}'", function.node, graphs)
    while graphs:
        where, graph = graphs.pop()
        for tensor in graph.initializer:
            yield f"{where}: initializer '{tensor.name}'", tensor, list(tensor.dims)
        for sparse in graph.sparse_initializer:
            yield from _sparse(f"{where}: sparse initializer '{sparse.values.name}'", sparse)
        yield from _node_tensors(where, graph.node, graphs)


def _node_tensors(where: str, nodes: Any, graphs: list) -> Iterator[tuple[str, Any, list[int]]]:
    for node in nodes:
        here = f"{where}: node '{node.name or node.op_type}' ({node.op_type})"
        for attr in node.attribute:
            at = f"{here} attribute '{attr.name}'"
            if attr.HasField("t"):
                yield at, attr.t, list(attr.t.dims)
            for tensor in attr.tensors:
                yield at, tensor, list(tensor.dims)
            if attr.HasField("sparse_tensor"):
                yield from _sparse(at, attr.sparse_tensor)
            for sparse in attr.sparse_tensors:
                yield from _sparse(at, sparse)
            if attr.HasField("g"):
                graphs.append((f"{at} subgraph", attr.g))
            graphs.extend((f"{at} subgraph", g) for g in attr.graphs)


def _sparse(where: str, sparse: Any) -> Iterator[tuple[str, Any, list[int]]]:
    """A sparse tensor counts at its dense size (what converting it makes)."""
    yield where, sparse.values, list(sparse.dims)
    yield f"{where} values", sparse.values, list(sparse.values.dims)
    yield f"{where} indices", sparse.indices, list(sparse.indices.dims)


# ---- constant folding -----------------------------------------------------------------
def check_fold(walk: Walk, node: Any, feeds: dict[str, np.ndarray], where: str) -> None:
    """Raise unless evaluating `node` on `feeds` stays within the limits."""
    from onnx import AttributeProto

    if any(a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS) for a in node.attribute):
        raise walk.fail(where, "a constant computation with a subgraph is not evaluated")
    where = f"{walk.label}: {where}"
    shapes = _inferred_output_shapes(walk, node, feeds)
    if shapes is not None:
        counts = [limits.check_array(where, shape, "its output") for shape in shapes]
        produced = sum(counts)
    elif node.op_type in BOUNDED_BY_INPUTS:
        produced = math.prod(max(int(v.size), 1) for v in feeds.values()) if feeds else 1
        if produced > limits.current().array_elements:
            raise limits.refuse(
                where,
                f"onnx cannot tell the size of this constant computation, and its inputs "
                f"allow {produced:,} values",
                "array_elements",
            )
    else:
        raise LimitError(
            f"{where}: onnx shape inference cannot tell the size of this constant "
            f"computation before it runs, and {node.op_type} can make arrays of any size; "
            "not evaluated"
        )
    walk.folded_values += produced
    if walk.folded_values > limits.current().folded_values:
        raise LimitError(
            f"{where}: constant folding has made {walk.folded_values:,} values, over the "
            f"limit of {limits.current().folded_values:,} (it follows the parameters "
            f"limit: {limits.how_to_raise('parameters')})"
        )


def _inferred_output_shapes(
    walk: Walk, node: Any, feeds: dict[str, np.ndarray]
) -> list[list[int]] | None:
    """The static output shapes onnx shape inference gives `node` on these constants (small
    ones by value), or None where it cannot give every one."""
    from onnx import helper, numpy_helper, shape_inference

    try:
        initializers, inputs = [], []
        for name, value in feeds.items():
            if value.size <= VALUE_INPUT_LIMIT:
                initializers.append(numpy_helper.from_array(value, name))
            else:
                inputs.append(
                    helper.make_tensor_value_info(
                        name, helper.np_dtype_to_tensor_dtype(value.dtype), list(value.shape)
                    )
                )
        outputs = [helper.make_empty_tensor_value_info(o) for o in node.output if o]
        graph = helper.make_graph([node], "lstmgen_size", inputs, outputs, initializers)
        model = helper.make_model(
            graph, opset_imports=list(walk.proto.opset_import), ir_version=walk.proto.ir_version
        )
        inferred = shape_inference.infer_shapes(model, strict_mode=True)
    except Exception:  # inference refuses the node: its size stays unknown
        return None
    shapes = []
    for info in inferred.graph.output:
        tensor = info.type.tensor_type
        if not tensor.HasField("shape"):
            return None
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
        if any(d is None for d in dims):
            return None
        shapes.append([int(d) for d in dims])  # type: ignore[arg-type]
    return shapes if len(shapes) == len([o for o in node.output if o]) else None
