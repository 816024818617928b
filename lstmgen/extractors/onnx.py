"""ONNX extractor: `.onnx` files with the `LSTM`, `GRU` and `RNN` operators into the IR.

Everything lstmgen knows about ONNX lives here. The recurrent operators store, per
direction (num_directions = 1, or 2 with direction='bidirectional': forward first):

* `LSTM`: W [nd, 4H, D], R [nd, 4H, H], B [nd, 8H] = [Wb, Rb] and peepholes P [nd, 3H],
  with gate blocks in the order **i, o, f, c** (peepholes i, o, f); the IR wants rows
  i, f, g, o, one summed bias and peephole rows i, f, o.
* `GRU`: W [nd, 3H, D], R [nd, 3H, H], B [nd, 6H] = [Wb, Rb], blocks **z, r, h** (the IR's
  z, r, n as they are). `linear_before_reset=1` computes h~ = g(Wh x + Wbh + r * (Rh h +
  Rbh)): the IR's reset_after=True with bias Wb and recurrent_bias Rb;
  `linear_before_reset=0` (the default) computes h~ = g(Wh x + Rh (r * h) + Rbh + Wbh): the
  IR's reset_after=False with bias Wb + Rb. The IR GRU has no clip and no initial state:
  both are refused (an all-zero initial_h is the IR's start and is dropped).
* `RNN`: W [nd, H, D], R [nd, H, H], B [nd, 2H]: the IR's SimpleRNN with bias Wb + Rb
  (no clip, no initial state, as for the GRU).

A bidirectional operator becomes an IR `Bidirectional` (merge_mode concat) when the graph
concatenates its two directions along the features, forward first: Y [T, 2, B, H]
transposed to [T, B, 2, H] and reshaped to [T, B, 2H] (torch.onnx's pattern; the backward
half of ONNX's Y is already in input time order, which is the IR's return_sequences
semantics), or Y_h [2, B, H] transposed to [B, 2, H] and reshaped to [B, 2H] (the final
states; also `torch.cat([h_n[-2], h_n[-1]], -1)`). Any other use of the two directions
(one direction alone, the direction axis kept, the last step of Y, which holds the backward
direction after one step) is refused.

An exporter (torch.onnx.export, tf2onnx, MATLAB's exportONNXNetwork) surrounds the
recurrent nodes with glue: Transposes between layouts, Squeezes of the num_directions axis,
a Gather or Slice of the last step, Gemm or MatMul + Add for Dense layers, activations, and
small computations on the input's shape that build zero initial states. lstmgen does not
pattern-match exporters: it walks the graph symbolically from its single input to its
single output, tracking for every tensor on the way

* for the data path, which axis is time, batch, features, the two directions of a
  bidirectional operator or a singleton (the graph input's axes get their roles from the
  first operator that reveals them: the recurrent operator's `layout`, or the contraction
  axis of a MatMul), and whether the time axis runs in the IR's order or reversed (a reverse
  operator returns Y in the original time order, the IR's go_backwards emits it in
  processing order: the walk tracks the flip instead of inserting one);
* for everything else, its value: constants (initializers, Constant nodes, and whatever
  onnx's reference evaluator folds from them), vectors of symbolic axis sizes (from
  Shape), and tensors filled with one value whose shape depends on the input
  (ConstantOfShape, Expand).

Before the walk, two exporter idioms are rewritten into their equivalent: a Gather or Slice
of one part out of a Concat (PyTorch's `h_n[-1]` over every layer's Y_h), and a Concat along
the last axis of the two items of a size-2 axis (`torch.cat([h_n[-2], h_n[-1]], -1)`) as a
Transpose + Reshape.

Anything the walk cannot prove equivalent to the IR is refused with an
UnsupportedLayerError naming the node, its op_type and what is supported. The oracle for
`lstmgen verify` is onnxruntime running the file itself on one thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np

from ..errors import MissingDependencyError, ModelError, UnsupportedLayerError
from ..ir import GRU, LSTM, Activation, Bidirectional, Dense, Layer, Model, SimpleRNN, float32
from . import Loaded

SUPPORTED = (
    "LSTM, GRU (linear_before_reset 0/1), RNN (forward/reverse/bidirectional with "
    "the two directions concatenated along the features, constant weights; constant "
    "initial state for LSTM only), Transpose, Squeeze, Unsqueeze, Reshape, Flatten "
    "(adding or dropping singleton axes), Gather/Slice of the last step, "
    "Slice/ReverseSequence reversing time, Gemm, MatMul (+ Add), Relu, Sigmoid, Tanh, "
    "Softmax, HardSigmoid, Softsign, Softplus, Elu, Identity, Dropout, Cast"
)
#: IR layer kind -> the ONNX operators that become it (for the README's support table).
PRODUCES = {
    "lstm": "LSTM (forward, reverse)",
    "gru": "GRU (forward, reverse; linear_before_reset 0/1)",
    "simple_rnn": "RNN (forward, reverse)",
    "bidirectional": "LSTM/GRU/RNN direction=bidirectional (directions concatenated)",
    "dense": "Gemm, MatMul+Add",
    "activation": "Relu, Sigmoid, Tanh, Softmax, HardSigmoid, ...",
}
FEATURES_PRODUCED = {
    "peephole": "P",
    "clip": "clip",
    "input_forget": "input_forget",
    "initial_state": "initial_h/c (constants)",
}
#: The recurrent operators: gate blocks and activations per direction, IR kind.
RECURRENT_OPS = {"LSTM": (4, 3, "lstm"), "GRU": (3, 2, "gru"), "RNN": (1, 1, "simple_rnn")}
DEFAULT_ACTIVATIONS = {
    "LSTM": ["Sigmoid", "Tanh", "Tanh"],
    "GRU": ["Sigmoid", "Tanh"],
    "RNN": ["Tanh"],
}
ACTIVATION_SLOTS = {"LSTM": ("f", "g", "h"), "GRU": ("f", "g"), "RNN": ("f",)}
#: Inputs and outputs that carry a state (transposed with layout=1).
STATE_INPUTS = {"LSTM": (0, 5, 6), "GRU": (0, 5), "RNN": (0, 5)}
STATE_OUTPUTS = {"LSTM": (0, 1, 2), "GRU": (0, 1), "RNN": (0, 1)}
#: IR gate blocks i, f, g, o taken from ONNX blocks i, o, f, c.
ONNX_BLOCK_FOR_IR = (0, 2, 3, 1)
#: IR peephole rows i, f, o taken from ONNX peephole blocks i, o, f.
ONNX_PEEPHOLE_FOR_IR = (0, 2, 1)
BIDIRECTIONAL_GLUE = (
    "lstmgen supports the two directions concatenated along the features, "
    "forward first: Y [T, 2, B, H] -> Transpose [T, B, 2, H] -> Reshape "
    "[T, B, 2H], or Y_h [2, B, H] -> Transpose [B, 2, H] -> Reshape [B, 2H] "
    "(torch: torch.cat([h_n[-2], h_n[-1]], -1))"
)
#: Elementwise ONNX operators -> IR activation names (parameterised ones are checked).
SIMPLE_ACTIVATIONS = {
    "Relu": "relu",
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "Softsign": "softsign",
    "Softplus": "softplus",
}
RECURRENT_ACTIVATIONS = (
    "Sigmoid, Tanh, Relu, Softsign, Softplus, Elu (alpha 1), "
    "HardSigmoid (alpha 0.2, beta 0.5; or alpha 1/6, beta 0.5)"
)
#: Activations of the RNN operators that take alpha / beta (onnxruntime consumes
#: activation_alpha and activation_beta in order, only for these).
USES_ALPHA = {"leakyrelu", "thresholdedrelu", "elu", "affine", "scaledtanh", "hardsigmoid"}
USES_BETA = {"affine", "scaledtanh", "hardsigmoid"}
DEFAULT_ALPHA = {"hardsigmoid": 0.2, "elu": 1.0, "leakyrelu": 0.01, "thresholdedrelu": 1.0}
DEFAULT_BETA = {"hardsigmoid": 0.5}
#: Lengths a dynamic time axis is probed with when classifying a Slice or Gather.
PROBE_LENGTHS = (1, 2, 3, 5, 8, 64)
SEQUENCE_OUTPUT = "output Y (every step"


def import_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise MissingDependencyError(
            "the ONNX extractor needs onnx: pip install "
            "'lstmgen[onnx]' (or pip install onnx onnxruntime)"
        ) from None
    return onnx


def import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise MissingDependencyError(
            "running an ONNX model (the oracle of lstmgen verify) "
            "needs onnxruntime: pip install 'lstmgen[onnx]'"
        ) from None
    return onnxruntime


def open_file(path: Path) -> Loaded:
    """The IR of an `.onnx` file, with onnxruntime running the file as the oracle."""
    onnx = import_onnx()
    path = Path(path)
    try:
        proto = onnx.load(str(path))
    except Exception as exc:  # protobuf DecodeError, missing external data, ...
        raise ModelError(f"{path}: not a readable ONNX model ({_first_line(exc)})") from None
    return open_proto(
        proto, path.stem, f"file {path.name}", session_source=str(path), label=str(path)
    )


def open_proto(
    proto: Any,
    name: str = "model",
    where: str = "in-memory model",
    session_source: Any = None,
    label: str | None = None,
) -> Loaded:
    """The IR of an onnx.ModelProto; `session_source` (a path or bytes) is what
    onnxruntime loads for the oracle (the serialised proto by default)."""
    onnx = import_onnx()
    label = label or name
    try:
        onnx.checker.check_model(proto)
    except Exception as exc:
        raise ModelError(
            f"{label}: not a valid ONNX model (onnx.checker: {_first_line(exc)})"
        ) from None
    opset = _default_opset(proto)
    producer = " ".join(p for p in (proto.producer_name, proto.producer_version) if p)
    source = f"ONNX opset {opset}, {where}" + (f", from {producer}" if producer else "")
    walk = _Walk(proto, label)
    ir, plan = walk.run(name, source)
    rewritten = runnable_by_onnxruntime(proto)
    if rewritten is not None:
        session_source = rewritten.SerializeToString()
    elif session_source is None:
        session_source = proto.SerializeToString()
    return Loaded(ir, _predictor(session_source, plan), _oracle_name(rewritten is not None))


def _oracle_name(rewritten: bool) -> str:
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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _default_opset(proto: Any) -> int:
    for entry in proto.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return 1


# ---- abstract values -------------------------------------------------------------------


class Axis:
    """One axis of a data-path tensor. Axes are shared between tensors (a Transpose
    permutes the same objects), so a role learnt late applies to every earlier tensor.

    role: 'T' time, 'B' batch, 'F' features (size = width), '1' a singleton, '?' a graph
    input axis whose role is not known yet, 'M' batch and time folded into one (parts),
    'D' the two directions of a bidirectional operator (size 2; `pair` is its feature axis,
    `owner` names the operator), 'S' an axis of a tensor that only feeds Shape (its size
    is all that is known)."""

    def __init__(
        self,
        role: str,
        size: int | None = None,
        parts: tuple = (),
        input_index: int | None = None,
        pair: Axis | None = None,
        owner: str = "",
    ) -> None:
        self.role = role
        self.size = size
        self.parts = parts
        self.input_index = input_index
        self.pair = pair
        self.owner = owner

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Axis({self.role}, {self.size})"


@dataclass
class Data:
    """A tensor on the data path. `flipped`: its time axis holds the IR's sequence in
    reverse order (index t is IR step T-1-t)."""

    axes: list
    flipped: bool = False


@dataclass
class Const:
    value: np.ndarray


@dataclass
class SymVec:
    """A 1-D int64 vector (or a scalar) whose items are ints or Axis objects (sizes of
    data-path axes, as Shape returns them)."""

    items: tuple
    scalar: bool = False


@dataclass
class Fill:
    """A tensor of input-dependent shape holding one value everywhere (a number, or an
    Axis standing for that axis's size)."""

    value: float | Axis


Value = Union[Data, Const, SymVec, Fill]


@dataclass
class Plan:
    """How the IR's [N, T, D] maps onto the ONNX input and the ONNX output onto the IR's."""

    input_name: str
    output_name: str
    input_roles: list  # per ONNX input axis: 'T', 'B', 'F' or '1'
    output_roles: list  # per ONNX output axis: 'T', 'B', 'F' or '1'
    batch: int | None  # the batch size the graph is fixed to, if any
    sequence: bool
    output_size: int
    input_size: int


@dataclass
class _Pending:
    """The Dense layer an Add (bias) or an activation may still fold into."""

    layer: Dense
    bias_open: bool = True


# ---- the walk --------------------------------------------------------------------------


class _Walk:
    def __init__(self, proto: Any, label: str) -> None:
        import onnx

        self.onnx = onnx
        self.proto = proto
        self.graph = proto.graph
        self.label = label
        self.opset = _default_opset(proto)
        self.values: dict[str, Value] = {}
        self.layers: list[Layer] = []
        self.notes: list[str] = []
        self.pending: _Pending | None = None
        self.width: int | None = None
        self.batch: int | None = None
        self.time_axis: Axis | None = None
        self.batch_axis: Axis | None = None
        self.input_axes: list[Axis] = []
        self.names: set[str] = set()
        self.ranks = self._inferred_ranks()

    # -- set-up ---------------------------------------------------------------------
    def _inferred_ranks(self) -> dict[str, list]:
        """Dims onnx shape inference knows (a cross-check of the tracked axes)."""
        try:
            inferred = self.onnx.shape_inference.infer_shapes(self.proto)
        except Exception:  # inference is only a cross-check; the walk does not need it
            return {}
        dims: dict[str, list] = {}
        for info in list(inferred.graph.value_info) + list(inferred.graph.output):
            t = info.type.tensor_type
            if t.HasField("shape"):
                dims[info.name] = [
                    d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim
                ]
        return dims

    def run(self, name: str, source: str) -> tuple[Model, Plan]:
        graph = self.graph
        initializers = {init.name for init in graph.initializer}
        inputs = [i for i in graph.input if i.name not in initializers]
        if len(inputs) != 1:
            raise UnsupportedLayerError(
                f"{self.label}: the graph has {len(inputs)} inputs "
                f"({', '.join(repr(i.name) for i in inputs)}); lstmgen supports graphs with "
                "one input (the sequence) and weights as initializers or Constant nodes"
            )
        if len(graph.output) != 1:
            raise UnsupportedLayerError(
                f"{self.label}: the graph has {len(graph.output)} outputs "
                f"({', '.join(repr(o.name) for o in graph.output)}); lstmgen supports "
                "single-output graphs"
            )
        graph_input, graph_output = inputs[0], graph.output[0].name
        for init in graph.initializer:
            self.values[init.name] = Const(self.onnx.numpy_helper.to_array(init))
        self._bind_input(graph_input)
        self.nodes = self._pick_from_concat(list(graph.node))
        live = self._live_nodes(graph_output)
        for index, node in live:
            if node.op_type in ("Loop", "Scan", "If"):
                raise self._fail(
                    _describe(node, index),
                    "control flow is not supported (an exporter that does not "
                    "recognise an LSTM writes its recurrence as a Loop or Scan "
                    "instead of an LSTM operator)",
                )
        self.shape_only = self._shape_only(live, graph_output)
        self.consumers = self._data_consumers(live, graph_output)
        readers = self.consumers.get(graph_input.name, [])
        if len(readers) > 1:
            raise UnsupportedLayerError(
                f"{self.label}: graph input '{graph_input.name}' feeds {len(readers)} nodes "
                f"({', '.join(readers)}); lstmgen follows a single chain from the input to "
                "the output (no branches)"
            )
        for index, node in live:
            self._node(index, node)
        out = self.values.get(graph_output)
        if not any(l.recurrent for l in self.layers):
            raise UnsupportedLayerError(
                f"{self.label}: the graph has no LSTM, GRU or RNN "
                "operator on the path from its input to its output; "
                "lstmgen compiles models with at least one"
            )
        if not isinstance(out, Data):
            raise UnsupportedLayerError(
                f"{self.label}: the graph output '{graph_output}' does "
                "not depend on the graph input"
            )
        plan = self._plan(graph_input.name, graph_output, out)
        ir = Model(
            input_size=plan.input_size,
            layers=self.layers,
            name=name,
            source=source,
            timesteps=self.time_axis.size if self.time_axis is not None else None,
            notes=self.notes,
        )
        ir.validate()
        return ir, plan

    def _bind_input(self, info: Any) -> None:
        tensor = info.type.tensor_type
        if not info.type.HasField("tensor_type") or tensor.elem_type != 1:
            raise UnsupportedLayerError(
                f"{self.label}: graph input '{info.name}' must be a float32 tensor"
            )
        if not tensor.HasField("shape") or len(tensor.shape.dim) < 2:
            raise UnsupportedLayerError(
                f"{self.label}: graph input '{info.name}' needs a shape of rank >= 2 (time, "
                "batch and features, in any order)"
            )
        for k, dim in enumerate(tensor.shape.dim):
            size = int(dim.dim_value) if dim.HasField("dim_value") and dim.dim_value > 0 else None
            self.input_axes.append(Axis("?", size, input_index=k))
        self.values[info.name] = Data(list(self.input_axes))

    def _pick_from_concat(self, nodes: list) -> list:
        """Gather(Concat(a_0, ..., a_n-1, axis k), j, axis k) is an item of one a_i, and a
        Slice of Concat along k covering exactly one a_i is that a_i: PyTorch's `h_n[-1]`
        (or `h_n[-2:]`) concatenates every layer's Y_h and picks from the last. Rewriting
        it before the walk leaves the other layers' Y_h unused."""
        producers = {o: node for node in nodes for o in node.output if o}
        out = []
        for position, node in enumerate(nodes):
            concat = (
                producers.get(node.input[0])
                if node.op_type in ("Gather", "Slice") and node.input
                else None
            )
            if concat is None or concat.op_type != "Concat":
                out.append(node)
                continue
            where = _describe(node, position)
            replacement = self._part_of_concat(node, concat, producers, where)
            out.extend(replacement if replacement is not None else [node])
        return self._concat_of_pair(out)

    def _part_of_concat(self, node: Any, concat: Any, producers: dict, where: str) -> list | None:
        from onnx import helper

        c_axis = int(next((a.i for a in concat.attribute if a.name == "axis"), 0))
        parts = list(concat.input)
        dims = [self.ranks.get(p) for p in parts]
        rank = len(dims[0]) if dims[0] else 0
        if rank == 0 or any(d is None or len(d) != rank or not d[c_axis % rank] for d in dims):
            return None
        c_axis %= rank
        sizes = [int(d[c_axis]) for d in dims]
        offsets = [int(v) for v in np.cumsum([0] + sizes)]
        total = offsets[-1]
        note = f"{where} picks '{{}}' out of the Concat '{concat.name or concat.output[0]}'"
        if node.op_type == "Slice":
            if self.opset < 10:
                attrs = {a.name: _attribute(a) for a in node.attribute}
                starts, ends = attrs.get("starts"), attrs.get("ends")
                axes, steps = attrs.get("axes", [0]), [1]
            else:
                got = [
                    self._static_value(node.input[k], producers)
                    if len(node.input) > k and node.input[k]
                    else None
                    for k in range(1, 5)
                ]
                starts, ends = got[0], got[1]
                axes = [0] if got[2] is None else got[2]
                steps = [1] if got[3] is None else got[3]
            if starts is None or ends is None:
                return None
            starts, ends, axes, steps = (
                list(np.asarray(v).ravel()) for v in (starts, ends, axes, steps)
            )
            if (
                not (len(starts) == len(ends) == len(axes) == 1 and len(steps) == 1)
                or int(axes[0]) % rank != c_axis
                or int(steps[0]) != 1
            ):
                return None
            picked = list(range(*slice(int(starts[0]), int(ends[0])).indices(total)))
            for k, part in enumerate(parts):
                if picked == list(range(offsets[k], offsets[k + 1])):
                    self.notes.append(note.format(part))
                    return [helper.make_node("Identity", [part], [node.output[0]], name=node.name)]
            return None
        axis = int(next((a.i for a in node.attribute if a.name == "axis"), 0))
        index = self._static_value(node.input[1], producers)
        if index is None or index.size != 1 or index.ndim > 1 or axis % rank != c_axis:
            return None
        j = int(index.ravel()[0])
        if not -total <= j < total:
            return None
        j %= total
        k = int(np.searchsorted(offsets, j, side="right")) - 1
        picked, offset = parts[k], j - offsets[k]
        self.notes.append(note.format(picked))
        if sizes[k] > 1:  # an item of a part: Gather from the part
            index_name = f"{node.output[0]}__lstmgen_index"
            self.values[index_name] = Const(np.array(offset, np.int64).reshape(index.shape))
            return [
                helper.make_node(
                    "Gather", [picked, index_name], [node.output[0]], name=node.name, axis=c_axis
                )
            ]
        if index.ndim == 1:
            return [helper.make_node("Identity", [picked], [node.output[0]], name=node.name)]
        if self.opset < 13:
            return [
                helper.make_node(
                    "Squeeze", [picked], [node.output[0]], name=node.name, axes=[c_axis]
                )
            ]
        axes_name = f"{node.output[0]}__lstmgen_axes"
        self.values[axes_name] = Const(np.array([c_axis], np.int64))
        return [helper.make_node("Squeeze", [picked, axes_name], [node.output[0]], name=node.name)]

    def _concat_of_pair(self, nodes: list) -> list:
        """Concat(Gather(X, 0, axis a), Gather(X, 1, axis a)) along the last axis, where
        X's axis a has size 2, is X with axis a moved just before the last axis and the two
        merged: `torch.cat([h_n[-2], h_n[-1]], -1)` over a bidirectional Y_h."""
        from onnx import helper

        producers = {o: node for node in nodes for o in node.output if o}
        out = []
        for position, node in enumerate(nodes):
            gathers = [producers.get(i) for i in node.input] if node.op_type == "Concat" else []
            if (
                len(gathers) != 2
                or any(g is None or g.op_type != "Gather" for g in gathers)
                or gathers[0].input[0] != gathers[1].input[0]
            ):
                out.append(node)
                continue
            source = gathers[0].input[0]
            dims = self.ranks.get(source)
            rank = len(dims) if dims else 0
            axes = (
                {
                    int(next((a.i for a in g.attribute if a.name == "axis"), 0)) % rank
                    for g in gathers
                }
                if rank
                else set()
            )
            indices = [self._static_value(g.input[1], producers) for g in gathers]
            c_axis = int(next((a.i for a in node.attribute if a.name == "axis"), 0))
            if (
                rank < 2
                or len(axes) != 1
                or dims[next(iter(axes))] != 2
                or any(i is None or i.ndim != 0 for i in indices)
                or [int(i) % 2 for i in indices] != [0, 1]
                or c_axis % (rank - 1) != rank - 2
            ):
                out.append(node)
                continue
            a = next(iter(axes))
            others = [k for k in range(rank) if k != a]
            perm = others[:-1] + [a] + others[-1:]
            moved = f"{node.output[0]}__lstmgen_moved"
            out.append(
                helper.make_node(
                    "Transpose",
                    [source],
                    [moved],
                    name=f"{node.name or node.output[0]}_transpose",
                    perm=perm,
                )
            )
            target = [0] * (rank - 2) + [-1]
            if self.opset < 5:
                out.append(
                    helper.make_node(
                        "Reshape", [moved], [node.output[0]], name=node.name, shape=target
                    )
                )
            else:
                shape_name = f"{node.output[0]}__lstmgen_shape"
                self.values[shape_name] = Const(np.array(target, np.int64))
                out.append(
                    helper.make_node(
                        "Reshape", [moved, shape_name], [node.output[0]], name=node.name
                    )
                )
            self.notes.append(
                f"{_describe(node, position)} concatenates items 0 and 1 of "
                f"axis {a} of '{source}' along the last axis: rewritten as a "
                "Transpose + Reshape"
            )
        return out

    def _static_value(self, name: str, producers: dict) -> np.ndarray | None:
        value = self.values.get(name)
        if isinstance(value, Const):
            return np.asarray(value.value)
        node = producers.get(name)
        if node is not None and node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    return np.asarray(self.onnx.numpy_helper.to_array(attr.t))
                if attr.name in ("value_int", "value_ints"):
                    return np.asarray(_attribute(attr), np.int64)
        return None

    def _live_nodes(self, output: str) -> list:
        needed = {output}
        live = []
        for index in range(len(self.nodes) - 1, -1, -1):
            node = self.nodes[index]
            if any(o in needed for o in node.output if o):
                live.append((index, node))
                needed.update(i for i in node.input if i)
        return live[::-1]

    def _shape_only(self, live: list, output: str) -> set[int]:
        """Indices of the live Concat nodes whose result only feeds Shape nodes (PyTorch's
        `h_n.shape[1]` over every layer's Y_h): they need no values, only a shape."""
        readers: dict[str, list] = {}
        for _, node in live:
            for name in node.input:
                readers.setdefault(name, []).append(node)
        return {
            index
            for index, node in live
            if node.op_type == "Concat"
            and node.output[0] != output
            and all(r.op_type == "Shape" for r in readers.get(node.output[0], []))
        }

    def _data_consumers(self, live: list, output: str) -> dict[str, list[str]]:
        """Per tensor, the live nodes that read its values (Shape only reads its shape)."""
        consumers: dict[str, list[str]] = {output: ["the graph output"]}
        for index, node in live:
            if node.op_type == "Shape" or index in self.shape_only:
                continue
            for name in set(i for i in node.input if i):
                consumers.setdefault(name, []).append(_describe(node, index))
        return consumers

    # -- helpers --------------------------------------------------------------------
    def _fail(self, where: str, why: str, supported: bool = True) -> UnsupportedLayerError:
        tail = f"; supported: {SUPPORTED}" if supported else ""
        return UnsupportedLayerError(f"{self.label}: {where}: {why}{tail}")

    def _set(self, name: str, value: Value, where: str) -> None:
        if not name:
            return
        if isinstance(value, Data):
            value = Data(
                [
                    Axis("F", 2 * int(a.pair.size))
                    if a.role == "D"
                    and self._is_singleton(a.pair)
                    and not any(b is a.pair for b in value.axes)
                    else a
                    for a in value.axes
                ],
                value.flipped,
            )  # H = 1: nothing to merge
            users = self.consumers.get(name, [])
            if len(users) > 1:
                owner = next((a.owner for a in value.axes if a.role == "D"), None)
                hint = (
                    ""
                    if owner is None
                    else (
                        f" (it holds both directions of bidirectional {owner}, used separately; "
                        f"{BIDIRECTIONAL_GLUE})"
                    )
                )
                raise self._fail(
                    where,
                    f"its output '{name}' feeds {len(users)} consumers "
                    f"({', '.join(users)}); lstmgen follows a single chain "
                    f"from the input to the output (no branches){hint}",
                    supported=False,
                )
            self._check_rank(name, value, where)
        self.values[name] = value

    def _check_rank(self, name: str, value: Data, where: str) -> None:
        dims = self.ranks.get(name)
        if dims is None:
            return
        if len(dims) != len(value.axes) or any(
            d is not None and a.size is not None and a.role in ("F", "1", "D", "S") and d != a.size
            for d, a in zip(dims, value.axes)
        ):
            raise ModelError(
                f"{self.label}: {where}: lstmgen tracked output '{name}' as "
                f"{[a.size for a in value.axes]} but onnx shape inference says "
                f"{dims}; please report this model"
            )

    def _const(
        self, node: Any, index: int, where: str, what: str, optional: bool = False
    ) -> np.ndarray | None:
        name = node.input[index] if index < len(node.input) else ""
        if not name:
            if optional:
                return None
            raise self._fail(where, f"input {what} is missing")
        value = self.values.get(name)
        if isinstance(value, Const):
            return value.value
        kind = (
            "computed from the graph input"
            if isinstance(value, Data)
            else "computed from the input's shape"
            if isinstance(value, (SymVec, Fill))
            else "not a constant"
        )
        raise self._fail(
            where,
            f"input {what} ('{name}') is {kind}; lstmgen needs it to be "
            "a constant (an initializer or a Constant node)",
        )

    def _unique_name(self, node: Any, index: int) -> str:
        base = node.name or f"{node.op_type.lower()}_{index}"
        name, k = base, 2
        while name in self.names:
            name, k = f"{base}_{k}", k + 1
        self.names.add(name)
        return name

    def _is_singleton(self, axis: Axis) -> bool:
        return (
            axis.role == "1"
            or (axis.role in ("?", "F") and axis.size == 1)
            or (axis.role == "B" and self.batch == 1)
        )

    def _fix_batch(self, size: int, where: str, why: str) -> None:
        if self.batch is None:
            self.batch = size
        elif self.batch != size:
            raise self._fail(
                where,
                f"{why} fixes the batch size to {size}, but the graph "
                f"already fixed it to {self.batch}",
                supported=False,
            )

    def _feature(self, d: Data, pos: int, where: str) -> Axis:
        """The feature axis at `pos` (a singleton stands for width 1)."""
        if not d.axes:
            raise self._fail(where, "needs a feature axis, but its input is a scalar")
        axis = d.axes[pos]
        if axis.role == "F" or (axis.role == "1" and self.width == 1):
            return axis
        if axis.role == "?" and self.width is None:  # the input's features, revealed here
            axis.role = "F"
            self.width = axis.size
            return axis
        raise self._fail(
            where,
            f"works on axis {pos % len(d.axes)}, which lstmgen tracked "
            f"as {_role_name(axis)}, not the feature axis",
        )

    def _axes_attr(self, node: Any, attrs: dict, rank: int, where: str) -> list | None:
        """Squeeze/Unsqueeze/ReduceX axes: an attribute before opset 13, an input after."""
        if "axes" in attrs:
            axes = list(attrs["axes"])
        elif len(node.input) > 1 and node.input[1]:
            axes = [int(a) for a in np.asarray(self._const(node, 1, where, "axes")).ravel()]
        else:
            return None
        return [a + rank if a < 0 else a for a in axes]

    # -- dispatch -------------------------------------------------------------------
    def _node(self, index: int, node: Any) -> None:
        where = _describe(node, index)
        if node.domain not in ("", "ai.onnx"):
            raise self._fail(where, f"operators of domain '{node.domain}' are not supported")
        missing = [i for i in node.input if i and i not in self.values]
        if missing:
            raise self._fail(
                where,
                f"input '{missing[0]}' is neither produced by a node, an "
                "initializer nor the graph input",
                supported=False,
            )
        inputs = [self.values[i] if i else None for i in node.input]
        attrs = {a.name: _attribute(a) for a in node.attribute}
        if any(isinstance(v, Data) for v in inputs):
            if index in self.shape_only:
                _shape_only_concat(self, node, where, attrs, inputs)
                return
            handler = DATA_OPS.get(node.op_type)
            if handler is None:
                raise self._fail(
                    where,
                    "this operator is not supported on the path from the graph input to its output",
                )
            owner = next(
                (a.owner for v in inputs if isinstance(v, Data) for a in v.axes if a.role == "D"),
                None,
            )
            if owner is not None and node.op_type not in DIRECTION_AXIS_OPS:
                raise self._fail(
                    where,
                    f"it reads the two directions of bidirectional {owner} "
                    f"as a separate axis; {BIDIRECTIONAL_GLUE}",
                    supported=False,
                )
            handler(self, index, node, where, attrs, inputs)
            return
        if node.op_type in ("If", "Loop", "Scan"):
            raise self._fail(where, "control flow is not supported")
        if node.op_type.startswith("Random") or node.op_type in ("Bernoulli", "Multinomial"):
            raise self._fail(where, "random values are not supported", supported=False)
        if all(v is None or isinstance(v, Const) for v in inputs):
            self._fold(node, where)
            return
        handler = SYMBOLIC_OPS.get(node.op_type)
        if handler is None:
            raise self._fail(
                where,
                "it computes with the input's shape in a way lstmgen does "
                "not follow (supported there: Shape, Gather, Slice, "
                "Concat, Squeeze, Unsqueeze, Reshape, Cast, Identity, "
                "ConstantOfShape, Expand)",
                supported=False,
            )
        handler(self, node, where, attrs, inputs)

    def _fold(self, node: Any, where: str) -> None:
        """Evaluate a node whose inputs are all constants with onnx's reference evaluator."""
        from onnx.reference import ReferenceEvaluator

        feeds = {i: self.values[i].value for i in node.input if i}
        try:
            evaluator = ReferenceEvaluator(node, opsets={"": self.opset})
            results = evaluator.run(None, feeds)
        except Exception as exc:
            raise self._fail(
                where,
                f"could not evaluate this constant computation ({_first_line(exc)})",
                supported=False,
            ) from None
        for name, value in zip(node.output, results):
            if name:
                self.values[name] = Const(np.asarray(value))

    # -- the plan -------------------------------------------------------------------
    def _plan(self, input_name: str, output_name: str, out: Data) -> Plan:
        where = f"graph output '{output_name}'"
        sequence = all(l.return_sequences for l in self.layers if l.recurrent)
        input_roles = []
        for axis in self.input_axes:
            role = axis.role
            if role == "?" and axis.size == 1:
                role = "1"
            if role not in ("T", "B", "F", "1"):
                raise self._fail(
                    f"graph input '{input_name}'",
                    f"axis {axis.input_index} (size "
                    f"{axis.size or 'dynamic'}) is never used as time, batch or "
                    "features",
                )
            input_roles.append(role)
        if "T" not in input_roles:
            raise self._fail(
                f"graph input '{input_name}'",
                "the recurrent operator's time axis is not an axis of the graph input",
            )
        if "B" not in input_roles:
            self._fix_batch(1, f"graph input '{input_name}'", "an input without a batch axis")
        output_roles = []
        for axis in out.axes:
            if axis is self.time_axis:
                role = "T"
            elif axis.role in ("B", "F", "1"):
                role = axis.role
            elif axis.role == "?" and axis.size == 1:
                role = "1"
            elif axis.role == "M":
                raise self._fail(where, "batch and time are still folded into one axis")
            elif axis.role == "D":
                raise self._fail(
                    where,
                    f"it keeps the two directions of bidirectional "
                    f"{axis.owner} as a separate axis; "
                    f"{BIDIRECTIONAL_GLUE}",
                    supported=False,
                )
            else:
                raise self._fail(where, f"axis of role {_role_name(axis)} cannot be mapped")
            output_roles.append(role)
        if sequence and "T" not in output_roles:
            raise self._fail(where, "the output has no time axis although no step was selected")
        if sequence and out.flipped:
            last = [l for l in self.layers if l.recurrent][-1]
            raise self._fail(
                where,
                "the output sequence runs in reverse order relative to "
                f"the IR's (after {_kind_name(last)} '{last.name}'): ONNX "
                "returns a reverse operator's Y in the original time order, "
                "the IR emits a go_backwards layer's sequence in processing "
                "order and has no time flip, so this model cannot be "
                "represented "
                "(use the last state Y_h, or reverse the sequence back in "
                "the graph)",
                supported=False,
            )
        if "B" not in output_roles:
            self._fix_batch(1, where, "an output without a batch axis")
        if "F" not in output_roles and self.width != 1:
            raise self._fail(where, "the output lost its feature axis")
        return Plan(
            input_name=input_name,
            output_name=output_name,
            input_roles=input_roles,
            output_roles=output_roles,
            batch=self.batch,
            sequence=sequence,
            output_size=int(self.width),
            input_size=int(self._input_width()),
        )

    def _input_width(self) -> int:
        for axis in self.input_axes:
            if axis.role == "F":
                return int(axis.size)
        return 1  # features made by an Unsqueeze: one feature


# ---- data-path operators ---------------------------------------------------------------


def _data_input(walk: _Walk, node: Any, inputs: list, where: str, index: int = 0) -> Data:
    data = [k for k, v in enumerate(inputs) if isinstance(v, Data)]
    if data != [index]:
        if len(data) > 1:
            raise walk._fail(
                where,
                "it combines several tensors computed from the graph "
                "input; lstmgen follows a single chain",
                supported=False,
            )
        raise walk._fail(
            where,
            f"the graph input reaches it through input {data[0]}, "
            f"lstmgen supports it only through input {index}",
        )
    return inputs[index]


def _shape_only_concat(walk: _Walk, node: Any, where: str, attrs: dict, inputs: list) -> None:
    """A Concat whose result only feeds Shape: its axes are the first data input's, with
    the concatenated axis known by its size only."""
    first = next(v for v in inputs if isinstance(v, Data))
    rank = len(first.axes)
    axis = int(attrs.get("axis", 0))
    axis = axis + rank if axis < 0 else axis
    if not 0 <= axis < rank:
        raise walk._fail(where, f"axis {attrs.get('axis')} is out of range", supported=False)
    dims = walk.ranks.get(node.output[0])
    size = dims[axis] if dims and len(dims) == rank and dims[axis] else None
    axes = list(first.axes)
    axes[axis] = Axis("S", size)
    walk.values[node.output[0]] = Data(axes, first.flipped)


def _identity(walk: _Walk, index: int, node: Any, where: str, attrs: dict, inputs: list) -> None:
    d = _data_input(walk, node, inputs, where)
    if node.op_type == "Cast" and attrs.get("to") != 1:
        raise walk._fail(
            where, f"casts to ONNX type {attrs.get('to')}; only float32 keeps the model's math"
        )
    if node.op_type == "Dropout":
        if len(node.input) > 2 and node.input[2]:
            mode = walk._const(node, 2, where, "training_mode")
            if bool(np.asarray(mode).ravel()[0]):
                raise walk._fail(where, "training_mode is true")
        if len(node.output) > 1 and node.output[1] and walk.consumers.get(node.output[1]):
            raise walk._fail(where, "its mask output is used")
        walk.notes.append(
            f"dropped {node.op_type} '{node.name or node.output[0]}': identity at inference"
        )
    walk._set(node.output[0], Data(list(d.axes), d.flipped), where)


def _transpose(walk: _Walk, index: int, node: Any, where: str, attrs: dict, inputs: list) -> None:
    d = _data_input(walk, node, inputs, where)
    perm = list(attrs.get("perm", range(len(d.axes) - 1, -1, -1)))
    walk._set(node.output[0], Data([d.axes[p] for p in perm], d.flipped), where)


def _squeeze(walk: _Walk, index: int, node: Any, where: str, attrs: dict, inputs: list) -> None:
    d = _data_input(walk, node, inputs, where)
    axes = walk._axes_attr(node, attrs, len(d.axes), where)
    if axes is None:
        unknown = [k for k, a in enumerate(d.axes) if a.size is None and not walk._is_singleton(a)]
        if unknown:
            raise walk._fail(
                where,
                f"Squeeze without axes on a tensor whose axis {unknown[0]} "
                "has a dynamic size (its result depends on the batch "
                "size)",
            )
        axes = [k for k, a in enumerate(d.axes) if a.size == 1 or walk._is_singleton(a)]
    out = Data(list(d.axes), d.flipped)
    for k in sorted(axes, reverse=True):
        axis = d.axes[k]
        if axis is walk.time_axis and axis.size == 1:  # the only step is the last one
            out = _select_last(walk, out, k, True, where)
            continue
        if walk._is_singleton(axis):
            if axis.role == "?":
                axis.role = "1"
            continue
        if axis.role == "B":
            if axis.size not in (None, 1):
                raise walk._fail(where, f"squeezes the batch axis of size {axis.size}")
            walk._fix_batch(1, where, "squeezing the batch axis")
        elif axis.role == "?" and axis.size is None:
            axis.role = "1"  # the graph only runs when this input axis is 1
        elif axis.role == "F" and axis.size == 1:
            continue
        else:
            raise walk._fail(
                where, f"squeezes axis {k}, which lstmgen tracked as {_role_name(axis)}"
            )
    keep = [a for k, a in enumerate(out.axes) if k not in axes]
    walk._set(node.output[0], Data(keep, out.flipped), where)


def _unsqueeze(walk: _Walk, index: int, node: Any, where: str, attrs: dict, inputs: list) -> None:
    d = _data_input(walk, node, inputs, where)
    rank = len(d.axes)
    n_new = (
        len(attrs["axes"])
        if "axes" in attrs
        else int(np.asarray(walk._const(node, 1, where, "axes")).size)
    )
    axes = sorted(walk._axes_attr(node, attrs, rank + n_new, where))
    out = list(d.axes)
    for k in axes:
        out.insert(k, Axis("1", 1))
    walk._set(node.output[0], Data(out, d.flipped), where)


def _atoms(walk: _Walk, axes: list) -> list:
    """The non-singleton axes in order, folded axes expanded into their parts."""
    out = []
    for a in axes:
        if walk._is_singleton(a):
            continue
        out.extend(a.parts if a.role == "M" else [a])
    return out


def _merge_directions(walk: _Walk, atoms: list) -> list:
    """`atoms` with every directions axis followed by its own feature axis (or whose
    feature axis is a singleton) replaced by the concatenated features [forward, backward]
    (direction-major, as ONNX's Y [.., 2, .., H] reshaped to [.., 2H] holds them)."""
    out, k = [], 0
    while k < len(atoms):
        axis = atoms[k]
        if axis.role == "D":
            if k + 1 < len(atoms) and atoms[k + 1] is axis.pair:
                out.append(Axis("F", 2 * int(axis.pair.size)))
                k += 2
                continue
            if walk._is_singleton(axis.pair):
                out.append(Axis("F", 2 * int(axis.pair.size)))
                k += 1
                continue
        out.append(axis)
        k += 1
    return out


def _fold_axes(walk: _Walk, atoms: list, where: str) -> Axis:
    if not atoms:
        return Axis("1", 1)
    if len(atoms) == 1 and atoms[0].role != "D":
        return atoms[0]
    if any(a.role == "D" for a in atoms):
        merged = _merge_directions(walk, atoms)
        directions = [a for a in merged if a.role == "D"]
        if directions and len(atoms) > 1:
            raise walk._fail(
                where,
                f"it merges the two directions of bidirectional "
                f"{directions[0].owner} with another axis than their own "
                f"features, or in feature-major order; {BIDIRECTIONAL_GLUE}",
                supported=False,
            )
        atoms = merged
        if len(atoms) == 1:
            return atoms[0]
    if any(a.role not in ("B", "T") for a in atoms):
        raise walk._fail(
            where,
            "it merges the feature axis (or an axis whose role is not "
            "known yet) with another axis; only batch and time may be "
            "folded together",
        )
    return Axis("M", None, parts=tuple(atoms))


def _regroup(walk: _Walk, d: Data, entries: list, where: str) -> list:
    """Output axes of a Reshape whose target entries are ('axis', Axis), ('size', n),
    ('one',), ('rest',) or ('copy', k): it may only add or drop singletons, fold batch
    and time into one axis, or split such a fold."""
    atoms = _atoms(walk, d.axes)
    try:
        return _regroup_atoms(walk, d, atoms, entries, where)
    except UnsupportedLayerError:
        merged = _merge_directions(walk, atoms)
        if len(merged) == len(atoms):
            raise
        try:  # the two directions concatenated along the features by an explicit size
            return _regroup_atoms(walk, d, merged, entries, where)
        except UnsupportedLayerError:
            pass
        raise


def _regroup_atoms(walk: _Walk, d: Data, atoms: list, entries: list, where: str) -> list:
    expanded = []
    for entry in entries:
        if entry[0] == "copy":
            k = entry[1]
            if k >= len(d.axes):
                raise walk._fail(
                    where, f"target entry 0 copies input axis {k}, which does not exist"
                )
            axis = d.axes[k]
            expanded.append(("one",) if walk._is_singleton(axis) else ("copy", axis))
        elif entry[0] == "axis" and walk._is_singleton(entry[1]):
            expanded.append(("one",))
        else:
            expanded.append(entry)

    def need(entry: tuple) -> int:
        if entry[0] == "copy":
            return len(_atoms(walk, [entry[1]]))
        return 1 if entry[0] in ("axis", "size") else 0

    rests = [e for e in expanded if e[0] == "rest"]
    if len(rests) > 1:
        raise walk._fail(where, "its target shape has more than one -1")
    spare = len(atoms) - sum(need(e) for e in expanded)
    if spare < 0 or (spare > 0 and not rests):
        raise walk._fail(
            where,
            "it changes the non-singleton axes (only adding or dropping "
            "singleton axes, or folding batch with time, is supported)",
        )
    out, pos = [], 0
    for entry in expanded:
        kind = entry[0]
        if kind == "one":
            out.append(Axis("1", 1))
        elif kind == "rest":
            out.append(_fold_axes(walk, atoms[pos : pos + spare], where))
            pos += spare
        elif kind == "copy":
            parts = _atoms(walk, [entry[1]])
            if atoms[pos : pos + len(parts)] != parts:
                raise walk._fail(where, "target entry 0 copies an axis out of place")
            out.append(entry[1])
            pos += len(parts)
        elif kind == "axis":
            if pos >= len(atoms) or atoms[pos] is not entry[1]:
                raise walk._fail(where, "its target shape reorders or merges the input's axes")
            out.append(entry[1])
            pos += 1
        elif kind == "size":
            axis = atoms[pos] if pos < len(atoms) else None
            if axis is None or axis.size != entry[1]:
                what = (
                    "nothing"
                    if axis is None
                    else f"{_role_name(axis)} of size {axis.size or 'dynamic'}"
                )
                raise walk._fail(
                    where,
                    f"its target size {entry[1]} lands on {what}; only "
                    "adding or dropping singleton axes, or folding batch "
                    "with time, is supported",
                )
            out.append(axis)
            pos += 1
    return out


def _reshape(walk: _Walk, index: int, node: Any, where: str, attrs: dict, inputs: list) -> None:
    d = _data_input(walk, node, inputs, where)
    if "shape" in attrs:  # opset 1-4
        target: list = [int(v) for v in attrs["shape"]]
    else:
        value = inputs[1] if len(inputs) > 1 else None
        if isinstance(value, Const):
            target = [int(v) for v in np.asarray(value.value).ravel()]
        elif isinstance(value, SymVec) and not value.scalar:
            target = list(value.items)
        else:
            raise walk._fail(
                where, "its target shape is neither a constant nor built from the input's shape"
            )
    allowzero = bool(attrs.get("allowzero", 0))
    entries = []
    for k, item in enumerate(target):
        if isinstance(item, Axis):
            entries.append(("axis", item))
        elif item == -1:
            entries.append(("rest",))
        elif item == 0 and not allowzero:
            entries.append(("copy", k))
        elif item == 1:
            entries.append(("one",))
        elif item > 1:
            entries.append(("size", item))
        else:
            raise walk._fail(where, f"target shape entry {item} is not supported")
    walk._set(node.output[0], Data(_regroup(walk, d, entries, where), d.flipped), where)


def _flatten(walk: _Walk, index: int, node: Any, where: str, attrs: dict, inputs: list) -> None:
    d = _data_input(walk, node, inputs, where)
    axis = int(attrs.get("axis", 1))
    axis = axis + len(d.axes) if axis < 0 else axis
    out = [
        _fold_axes(walk, _atoms(walk, d.axes[:axis]), where),
        _fold_axes(walk, _atoms(walk, d.axes[axis:]), where),
    ]
    walk._set(node.output[0], Data(out, d.flipped), where)


def _time_labels(select: Callable[[int], list], static: int | None) -> set:
    """Which of 'all', 'last', 'first', 'reverse' an index selection is, for every
    length the time axis can have (its static size, or a few probes when dynamic)."""
    labels = None
    for t_len in [static] if static else PROBE_LENGTHS:
        idx = select(t_len)
        found = set()
        if idx == list(range(t_len)):
            found.add("all")
        if idx == [t_len - 1]:
            found.add("last")
        if idx == [0]:
            found.add("first")
        if idx == list(range(t_len - 1, -1, -1)):
            found.add("reverse")
        labels = found if labels is None else labels & found
    return labels or set()


def _select_last(walk: _Walk, d: Data, pos: int, keep: bool, where: str) -> Data:
    """The last processed step of the current sequence: the last recurrent layer returns
    its state."""
    recurrent = [l for l in walk.layers if l.recurrent]
    if not recurrent:
        raise walk._fail(where, "it selects a timestep before any recurrent operator")
    last = recurrent[-1]
    if isinstance(last, Bidirectional) and walk.time_axis.size != 1:
        raise walk._fail(
            where,
            f"it takes the last step of the output Y of bidirectional "
            f"'{last.name}', whose backward half there is the backward "
            "direction after ONE step (it reads the sequence from the "
            "end); the IR's Bidirectional without return_sequences merges "
            "the final states of both directions: use Y_h (torch: "
            "torch.cat([h_n[-2], h_n[-1]], -1))",
            supported=False,
        )
    for layer in ([last.forward, last.backward] if isinstance(last, Bidirectional) else []) + [
        last
    ]:
        if not isinstance(layer, Bidirectional):
            layer.return_sequences = False
        head, _, _ = layer.origin.partition(SEQUENCE_OUTPUT)
        layer.origin = (
            f"{head}output Y, of which {where} takes the last processed step "
            "(-> return_sequences False)"
        )
    axes = list(d.axes)
    if keep:
        axes[pos] = Axis("1", 1)
    else:
        del axes[pos]
    return Data(axes, False)


def _gather(walk: _Walk, index: int, node: Any, where: str, attrs: dict, inputs: list) -> None:
    d = _data_input(walk, node, inputs, where)
    indices = np.asarray(walk._const(node, 1, where, "indices"))
    pos = int(attrs.get("axis", 0))
    pos = pos + len(d.axes) if pos < 0 else pos
    axis = d.axes[pos]
    if indices.size != 1 or indices.ndim > 1:
        raise walk._fail(where, f"gathers {indices.size} indices; only one step is supported")
    k = int(indices.ravel()[0])
    keep = indices.ndim == 1
    if axis is walk.time_axis:
        labels = _time_labels(lambda t: [k + t if k < 0 else k] if -t <= k < t else [], axis.size)
        wanted = "first" if d.flipped else "last"
        if wanted not in labels:
            order = "after a reverse LSTM, index 0" if d.flipped else "index -1 (or T-1)"
            raise walk._fail(
                where,
                f"it gathers timestep {k}; lstmgen supports only the last processed step ({order})",
            )
        walk._set(node.output[0], _select_last(walk, d, pos, keep, where), where)
        return
    if walk._is_singleton(axis) and k in (0, -1):
        axes = list(d.axes)
        if keep:
            axes[pos] = Axis("1", 1)
        else:
            del axes[pos]
        walk._set(node.output[0], Data(axes, d.flipped), where)
        return
    if axis.role == "D":
        raise walk._fail(
            where,
            f"it takes one of the two directions of bidirectional "
            f"{axis.owner}; {BIDIRECTIONAL_GLUE}",
            supported=False,
        )
    raise walk._fail(
        where,
        f"it gathers along axis {pos}, which lstmgen tracked as "
        f"{_role_name(axis)}; only a step of the time axis (or index 0 of a "
        "singleton axis) is supported",
    )


def _slice(walk: _Walk, index: int, node: Any, where: str, attrs: dict, inputs: list) -> None:
    d = _data_input(walk, node, inputs, where)
    rank = len(d.axes)
    if "starts" in attrs:  # opset 1-9
        starts, ends = list(attrs["starts"]), list(attrs["ends"])
        axes = list(attrs.get("axes", range(len(starts))))
        steps = [1] * len(starts)
    else:
        starts = [int(v) for v in walk._const(node, 1, where, "starts").ravel()]
        ends = [int(v) for v in walk._const(node, 2, where, "ends").ravel()]
        got = walk._const(node, 3, where, "axes", optional=True)
        axes = list(range(len(starts))) if got is None else [int(v) for v in got.ravel()]
        got = walk._const(node, 4, where, "steps", optional=True)
        steps = [1] * len(starts) if got is None else [int(v) for v in got.ravel()]
    out = Data(list(d.axes), d.flipped)
    for start, end, pos, step in zip(starts, ends, axes, steps):
        pos = pos + rank if pos < 0 else pos
        axis = d.axes[pos]
        labels = _time_labels(lambda t: list(range(*slice(start, end, step).indices(t))), axis.size)
        if "all" in labels:
            continue
        if axis.role == "D":
            raise walk._fail(
                where,
                f"it slices the two directions of bidirectional {axis.owner}; {BIDIRECTIONAL_GLUE}",
                supported=False,
            )
        if axis is not walk.time_axis:
            raise walk._fail(
                where,
                f"it slices axis {pos} ({_role_name(axis)}); only a slice "
                "of the time axis (its last step, or all steps reversed) "
                "is supported",
            )
        wanted = "first" if out.flipped else "last"
        if wanted in labels:
            out = _select_last(walk, out, pos, True, where)
        elif "reverse" in labels:
            out = Data(out.axes, not out.flipped)
        else:
            raise walk._fail(
                where,
                f"it slices time as [{start}:{end}:{step}]; lstmgen "
                "supports the last processed step or a full reversal",
            )
    walk._set(node.output[0], out, where)


def _reverse_sequence(
    walk: _Walk, index: int, node: Any, where: str, attrs: dict, inputs: list
) -> None:
    d = _data_input(walk, node, inputs, where)
    time_pos = int(attrs.get("time_axis", 0))
    batch_pos = int(attrs.get("batch_axis", 1))
    if time_pos >= len(d.axes) or d.axes[time_pos].role not in ("?", "T"):
        raise walk._fail(where, f"time_axis {time_pos} is not the time axis")
    time = d.axes[time_pos]
    if time.role == "?":
        _bind_time(walk, time, where)
    batch = d.axes[batch_pos]
    if batch.role == "?":
        _bind_batch(walk, batch, where)
    elif batch.role not in ("B",) and not walk._is_singleton(batch):
        raise walk._fail(where, f"batch_axis {batch_pos} is not the batch axis")
    if not _is_full_length(walk, inputs[1], time):
        raise walk._fail(
            where,
            "its sequence_lens are not the full length of every "
            "sequence; only a full reversal of time is supported",
        )
    walk.notes.append(f"{where} reverses time: folded into the next LSTM's go_backwards")
    walk._set(node.output[0], Data(list(d.axes), not d.flipped), where)


def _is_full_length(walk: _Walk, value: Any, time: Axis) -> bool:
    if isinstance(value, Fill):
        return value.value is time or (time.size is not None and value.value == time.size)
    if isinstance(value, SymVec):
        return all(
            item is time or (time.size is not None and item == time.size) for item in value.items
        )
    if isinstance(value, Const):
        arr = np.asarray(value.value).ravel()
        return time.size is not None and arr.size > 0 and bool(np.all(arr == time.size))
    return False


def _bind_time(walk: _Walk, axis: Axis, where: str) -> None:
    if walk.time_axis is None and axis.role == "?":
        axis.role = "T"
        walk.time_axis = axis
        return
    if axis is not walk.time_axis:
        raise walk._fail(
            where,
            f"its time axis is {_role_name(axis)}, not the time axis of "
            "the graph input (lstmgen follows one sequence through the "
            "graph)",
        )


def _bind_batch(walk: _Walk, axis: Axis, where: str) -> None:
    if axis.role == "B" or walk._is_singleton(axis):
        if axis.role == "?":
            axis.role = "1"
        if axis.role == "1":
            walk._fix_batch(1, where, "a batch axis of size 1")
        return
    if axis.role == "?" and walk.batch_axis is None:
        axis.role = "B"
        walk.batch_axis = axis
        if axis.size is not None:
            walk._fix_batch(axis.size, where, "the graph input's static batch size")
        return
    raise walk._fail(
        where, f"its batch axis is {_role_name(axis)}, not the batch axis of the graph input"
    )


def _rnn_activation(
    name: str, alpha: float | None, beta: float | None, where: str, walk: _Walk, slot: str
) -> str:
    key = name.lower()
    simple = {
        "sigmoid": "sigmoid",
        "tanh": "tanh",
        "relu": "relu",
        "softsign": "softsign",
        "softplus": "softplus",
    }
    if key in simple:
        return simple[key]
    a = DEFAULT_ALPHA.get(key) if alpha is None else alpha
    b = DEFAULT_BETA.get(key) if beta is None else beta
    if key == "elu" and _close(a, 1.0):
        return "elu"
    if key == "hardsigmoid" and _close(b, 0.5):
        if _close(a, 0.2):
            return "hard_sigmoid_0.2"
        if _close(a, 1.0 / 6.0):
            return "hard_sigmoid_keras3"
    params = ", ".join(f"{k}={v:g}" for k, v in (("alpha", a), ("beta", b)) if v is not None)
    raise walk._fail(
        where,
        f"activation {slot} is {name}({params}), which has no IR "
        "equivalent; supported activations of the recurrent operators: "
        f"{RECURRENT_ACTIVATIONS}",
        supported=False,
    )


def _close(value: float | None, target: float) -> bool:
    return value is not None and abs(value - target) <= 1e-6 * max(1.0, abs(target))


def _initial_state(
    walk: _Walk,
    node: Any,
    k: int,
    what: str,
    layout: int,
    h: int,
    where: str,
    nd: int,
    direction: int,
) -> np.ndarray | None:
    """Direction `direction`'s constant initial state from input `k`, or None for zero."""
    name = node.input[k] if k < len(node.input) else ""
    if not name:
        return None
    value = walk.values[name]
    if isinstance(value, Fill):
        if isinstance(value.value, Axis):
            raise walk._fail(where, f"{what} is filled with an axis size")
        if value.value == 0:
            return None
        return np.full(h, value.value, np.float32)
    if not isinstance(value, Const):
        walk._const(node, k, where, what)  # raises with the reason
    arr = np.asarray(value.value, np.float32)
    if arr.ndim != 3 or arr.shape[2] != h or arr.shape[layout] != nd:
        raise walk._fail(
            where,
            f"{what} has shape {list(arr.shape)}, expected "
            f"{[f'[{nd}, batch, H]', f'[batch, {nd}, H]'][layout]} with "
            f"H = {h}",
            supported=False,
        )
    rows = arr[direction] if layout == 0 else arr[:, direction]
    walk._fix_batch(rows.shape[0], where, f"the constant {what} of batch {rows.shape[0]}")
    if np.any(rows != rows[0]):
        raise walk._fail(
            where,
            f"{what} differs between batch rows; the IR starts every sequence from one state",
            supported=False,
        )
    if not np.any(rows[0]):
        return None
    return float32(rows[0])


def _recurrent_op(
    walk: _Walk, index: int, node: Any, where: str, attrs: dict, inputs: list
) -> None:
    """An LSTM, GRU or RNN operator: one IR layer, or a Bidirectional of two."""
    op = node.op_type
    gates, per_direction, _ = RECURRENT_OPS[op]
    d = _data_input(walk, node, inputs, where)
    direction = attrs.get("direction", "forward")
    if direction not in ("forward", "reverse", "bidirectional"):
        raise walk._fail(where, f"unknown direction '{direction}'")
    nd = 2 if direction == "bidirectional" else 1
    if nd == 2 and d.flipped:
        raise walk._fail(
            where,
            "a bidirectional operator reads a time-reversed sequence: its "
            "forward direction would be the IR's backward one and the two "
            "halves of its output would swap; reverse the sequence back "
            "before it",
            supported=False,
        )
    layout = int(attrs.get("layout", 0))
    if layout not in (0, 1):
        raise walk._fail(where, f"unknown layout {layout}")
    if len(d.axes) != 3:
        raise walk._fail(where, f"X has rank {len(d.axes)}, expected 3")
    w = walk._const(node, 1, where, "W")
    r = walk._const(node, 2, where, "R")
    b = walk._const(node, 3, where, "B", optional=True)
    p = walk._const(node, 7, where, "P", optional=True) if op == "LSTM" else None
    h = int(attrs.get("hidden_size", r.shape[-1] if r.ndim == 3 else 0))
    time_pos, batch_pos = (0, 1) if layout == 0 else (1, 0)
    _bind_time(walk, d.axes[time_pos], where)
    _bind_batch(walk, d.axes[batch_pos], where)
    feature = d.axes[2]
    if feature.role == "?":
        feature.role = "F"
        if feature.size is None:
            feature.size = int(w.shape[-1]) if w.ndim == 3 else None
        walk.width = feature.size
    elif feature.role == "1" and walk.width is None:
        walk.width = 1
    walk._feature(d, 2, where)
    dim = int(walk.width)
    expected = {"W": (w, (nd, gates * h, dim)), "R": (r, (nd, gates * h, h))}
    if b is not None:
        expected["B"] = (b, (nd, 2 * gates * h))
    if p is not None:
        expected["P"] = (p, (nd, 3 * h))
    for what, (arr, shape) in expected.items():
        if tuple(arr.shape) != shape:
            raise walk._fail(
                where,
                f"{what} has shape {list(arr.shape)}, expected {list(shape)} (H = {h}, D = {dim})",
                supported=False,
            )
    seq_name = node.input[4] if len(node.input) > 4 else ""
    if seq_name:
        if not _is_full_length(walk, walk.values[seq_name], walk.time_axis):
            raise walk._fail(
                where,
                "sequence_lens is given; lstmgen runs every sequence over "
                "all T steps (sequence_lens is only accepted when it is a "
                "constant equal to the static sequence length)",
                supported=False,
            )
        walk.notes.append(f"{where}: sequence_lens is the full length of every sequence (dropped)")
    acts = _activations(walk, op, attrs, nd, where)
    clip = attrs.get("clip")
    if clip is not None and op != "LSTM":
        raise walk._fail(
            where,
            f"clip = {clip:g}: the IR's {_kind_name_of(op)} has no clip "
            "(only the LSTM has one); export the model without clip",
            supported=False,
        )
    if clip is not None and not (0.0 < float(clip) < float("inf")):
        raise walk._fail(where, f"clip = {clip} is not a positive finite number", supported=False)
    states = _initial_states(walk, node, op, layout, h, where, nd)

    outputs = list(node.output) + [""] * (3 - len(node.output))
    y_name, yh_name, yc_name = outputs[:3]
    used = [n for n in (y_name, yh_name) if n and walk.consumers.get(n)]
    if op == "LSTM" and yc_name and walk.consumers.get(yc_name):
        raise walk._fail(
            where,
            f"its cell state output Y_c ('{yc_name}') is used; the IR's "
            "output is the hidden state h",
            supported=False,
        )
    if len(used) > 1:
        raise walk._fail(
            where,
            "both its sequence output Y and its last state Y_h are used; "
            "lstmgen follows a single chain",
            supported=False,
        )
    sequence = bool(used) and used[0] == y_name
    name = walk._unique_name(node, index)
    facts = dict(
        op=op,
        h=h,
        dim=dim,
        nd=nd,
        direction=direction,
        layout=layout,
        flipped=d.flipped,
        sequence=sequence,
        clip=clip,
        attrs=attrs,
    )
    parts = []
    for k in range(nd):
        backwards = direction == "reverse" or k == 1
        part_name = name if nd == 1 else f"{name}.{'backward' if k else 'forward'}"
        parts.append(
            _direction_layer(
                node, part_name, k, w, r, b, p, acts[k], states[k], backwards != d.flipped, facts
            )
        )
    if nd == 1:
        layer: Layer = parts[0]
    else:
        layer = Bidirectional(
            name,
            parts[0],
            parts[1],
            merge_mode="concat",
            origin=f"ONNX {op} direction=bidirectional: W, R, B [2, ...] "
            "index 0 -> forward, index 1 -> backward (go_backwards); "
            f"the graph concatenates the two directions of "
            f"{'Y' if sequence else 'Y_h'} along the features "
            "(forward first) -> merge_mode concat",
        )
    walk.layers.append(layer)
    walk.pending = None
    walk.width = nd * h
    time, batch = d.axes[time_pos], d.axes[batch_pos]
    features = Axis("F", h)
    directions = Axis("D", 2, pair=features, owner=f"'{name}' ({op})") if nd == 2 else Axis("1", 1)
    if layout == 0:
        y_axes = [time, directions, batch, features]
        state_axes = [directions, batch, features]
    else:
        y_axes = [batch, time, directions, features]
        state_axes = [batch, directions, features]
    walk._set(y_name, Data(y_axes, direction == "reverse"), where)
    walk._set(yh_name, Data(state_axes, False), where)
    if yc_name and op == "LSTM":
        walk.values[yc_name] = Data(list(state_axes), False)


def _kind_name_of(op: str) -> str:
    return {"LSTM": "LSTM", "GRU": "GRU", "RNN": "SimpleRNN"}[op]


def _activations(walk: _Walk, op: str, attrs: dict, nd: int, where: str) -> list:
    """The IR activations of each direction (onnxruntime consumes activation_alpha and
    activation_beta in order over the whole list, for the activations that take them)."""
    per_direction = RECURRENT_OPS[op][1]
    names = [
        a.decode() if isinstance(a, bytes) else a
        for a in attrs.get("activations", DEFAULT_ACTIVATIONS[op] * nd)
    ]
    slots = ACTIVATION_SLOTS[op]
    if len(names) != per_direction * nd:
        raise walk._fail(
            where,
            f"{len(names)} activations given, expected "
            f"{per_direction * nd} ({', '.join(slots)}"
            f"{' for each direction' if nd == 2 else ''})",
        )
    alphas = list(attrs.get("activation_alpha", []))
    betas = list(attrs.get("activation_beta", []))
    ir_acts = []
    for k, act in enumerate(names):
        key = act.lower()
        alpha = alphas.pop(0) if key in USES_ALPHA and alphas else None
        beta = betas.pop(0) if key in USES_BETA and betas else None
        slot = slots[k % per_direction] + (f" of direction {k // per_direction}" if nd == 2 else "")
        ir_acts.append(_rnn_activation(act, alpha, beta, where, walk, slot))
    return [
        (
            names[k * per_direction : (k + 1) * per_direction],
            ir_acts[k * per_direction : (k + 1) * per_direction],
        )
        for k in range(nd)
    ]


def _initial_states(
    walk: _Walk, node: Any, op: str, layout: int, h: int, where: str, nd: int
) -> list:
    """Per direction, {'initial_h': array or None, 'initial_c': ...}; a non-zero initial
    state of a GRU/RNN is refused (the IR's has none)."""
    wanted = ((5, "initial_h"), (6, "initial_c")) if op == "LSTM" else ((5, "initial_h"),)
    states = [
        {
            what: _initial_state(walk, node, k, what, layout, h, where, nd, direction)
            for k, what in wanted
        }
        for direction in range(nd)
    ]
    if op != "LSTM" and any(s["initial_h"] is not None for s in states):
        raise walk._fail(
            where,
            f"initial_h is not zero; the IR's {_kind_name_of(op)} always "
            "starts from zero (only the LSTM has an initial state)",
            supported=False,
        )
    zeros = [
        what
        for k, what in wanted
        if all(s[what] is None for s in states) and len(node.input) > k and node.input[k]
    ]
    if zeros:
        walk.notes.append(
            f"{where}: {' and '.join(zeros)} {'is' if len(zeros) == 1 else 'are'} zero (dropped)"
        )
    return states


def _direction_layer(
    node: Any,
    name: str,
    k: int,
    w: np.ndarray,
    r: np.ndarray,
    b: np.ndarray | None,
    p: np.ndarray | None,
    acts: tuple,
    state: dict,
    go_backwards: bool,
    facts: dict,
) -> Layer:
    """The IR layer of direction `k` of a recurrent operator."""
    op, h = facts["op"], facts["h"]
    names, ir_acts = acts
    origin = _origin(node, k, b is not None, p is not None, names, state, facts)
    common = dict(return_sequences=facts["sequence"], go_backwards=go_backwards, origin=origin)
    if op == "LSTM":

        def rows(a: np.ndarray) -> np.ndarray:
            return float32(np.concatenate([a[g * h : (g + 1) * h] for g in ONNX_BLOCK_FOR_IR]))

        bias = None if b is None else rows(float32(b[k, : 4 * h]) + float32(b[k, 4 * h :]))
        peephole = (
            None
            if p is None
            else float32(np.stack([p[k, g * h : (g + 1) * h] for g in ONNX_PEEPHOLE_FOR_IR]))
        )
        clip = facts["clip"]
        return LSTM(
            name=name,
            input_weights=rows(w[k]),
            recurrent_weights=rows(r[k]),
            bias=bias,
            gate_activation=ir_acts[0],
            cell_activation=ir_acts[1],
            output_activation=ir_acts[2],
            peephole=peephole,
            clip=None if clip is None else float(clip),
            input_forget=bool(facts["attrs"].get("input_forget", 0)),
            initial_h=state["initial_h"],
            initial_c=state["initial_c"],
            **common,
        )
    if op == "GRU":
        reset_after = bool(facts["attrs"].get("linear_before_reset", 0))
        bias = recurrent_bias = None
        if b is not None:
            wb, rb = float32(b[k, : 3 * h]), float32(b[k, 3 * h :])
            if reset_after:
                bias, recurrent_bias = wb, rb
            else:
                bias = float32(wb + rb)
        return GRU(
            name,
            float32(w[k]),
            float32(r[k]),
            bias,
            recurrent_bias=recurrent_bias,
            reset_after=reset_after,
            gate_activation=ir_acts[0],
            cell_activation=ir_acts[1],
            **common,
        )
    bias = None if b is None else float32(float32(b[k, :h]) + float32(b[k, h:]))
    return SimpleRNN(name, float32(w[k]), float32(r[k]), bias, activation=ir_acts[0], **common)


def _origin(
    node: Any, k: int, has_b: bool, has_p: bool, acts: list, state: dict, facts: dict
) -> str:
    op, h, dim, nd = facts["op"], facts["h"], facts["dim"], facts["nd"]
    direction, attrs = facts["direction"], facts["attrs"]
    at = f"[{k}]" if nd == 2 else ""

    def named(i: int, label: str) -> str:
        return f"{label} '{node.input[i]}'{at}"

    head = (
        f"ONNX {op} {direction}"
        + (f" ({'backward' if k else 'forward'} half)" if nd == 2 else "")
        + f", layout {facts['layout']}"
    )
    if op == "LSTM":
        parts = [
            f"{head}: {named(1, 'W')} [{nd}, 4H={4 * h}, D={dim}] blocks i,o,f,c -> "
            "input_weights rows i,f,g,o",
            f"{named(2, 'R')} [{nd}, 4H, H={h}] blocks i,o,f,c -> recurrent_weights rows i,f,g,o",
        ]
        parts.append(
            f"{named(3, 'B')} [{nd}, 8H] = [Wb, Rb] -> bias = Wb + Rb (summed in "
            "float32), rows i,f,g,o"
            if has_b
            else "no B -> no bias"
        )
        if has_p:
            parts.append(f"{named(7, 'P')} [{nd}, 3H] blocks i,o,f -> peephole rows i,f,o")
        parts.append(f"activations f,g,h = {','.join(acts)} -> gate, cell, output")
        if facts["clip"] is not None:
            parts.append(f"clip {facts['clip']:g}")
        if attrs.get("input_forget", 0):
            parts.append("input_forget=1 -> input_forget")
        for what in ("initial_h", "initial_c"):
            if state.get(what) is not None:
                parts.append(f"{what} [.., H] (same for every batch row) -> {what} (H,)")
    elif op == "GRU":
        lbr = int(bool(attrs.get("linear_before_reset", 0)))
        parts = [
            f"{head}, linear_before_reset {lbr}: {named(1, 'W')} [{nd}, 3H={3 * h}, "
            f"D={dim}] blocks z,r,h -> input_weights rows z,r,n as is",
            f"{named(2, 'R')} [{nd}, 3H, H={h}] blocks z,r,h -> recurrent_weights as is",
        ]
        if not has_b:
            parts.append("no B -> no bias")
        elif lbr:
            parts.append(
                f"{named(3, 'B')} [{nd}, 6H] = [Wb, Rb] -> bias = Wb, recurrent_bias "
                "= Rb (reset_after: h~ = g(Wh x + Wbh + r * (Rh h + Rbh)))"
            )
        else:
            parts.append(
                f"{named(3, 'B')} [{nd}, 6H] = [Wb, Rb] -> bias = Wb + Rb (summed in "
                "float32; reset_after False: h~ = g(Wh x + Rh (r * h) + Rbh + Wbh))"
            )
        if not has_b:
            parts.append(f"reset_after {bool(lbr)}")
        parts.append(f"activations f,g = {','.join(acts)} -> gate, cell")
    else:
        parts = [
            f"{head}: {named(1, 'W')} [{nd}, H={h}, D={dim}] -> input_weights as is",
            f"{named(2, 'R')} [{nd}, H, H] -> recurrent_weights as is",
            f"{named(3, 'B')} [{nd}, 2H] = [Wb, Rb] -> bias = Wb + Rb (summed in float32)"
            if has_b
            else "no B -> no bias",
            f"activation f = {acts[0]}",
        ]
    flipped = facts["flipped"]
    if nd == 2:
        parts.append("reads backward -> go_backwards" if k else "reads forward")
    elif direction == "reverse" and not flipped:
        parts.append("direction reverse -> go_backwards")
    elif direction == "reverse":
        parts.append("direction reverse over a time-reversed input -> forward")
    elif flipped:
        parts.append("forward over a time-reversed input -> go_backwards")
    if facts["sequence"]:
        parts.append(
            SEQUENCE_OUTPUT
            + (
                ", emitted in processing order)"
                if direction == "reverse"
                else ", in input time order)"
                if k
                else ")"
            )
        )
    else:
        parts.append("output Y_h (last state)")
    return "; ".join(parts)


def _gemm(walk: _Walk, index: int, node: Any, where: str, attrs: dict, inputs: list) -> None:
    d = _data_input(walk, node, inputs, where)
    if int(attrs.get("transA", 0)):
        raise walk._fail(where, "transA=1 (the data must be the left operand, untransposed)")
    if len(d.axes) != 2:
        raise walk._fail(where, f"its input A has rank {len(d.axes)}, expected 2")
    walk._feature(d, 1, where)
    bmat = walk._const(node, 1, where, "B")
    c = walk._const(node, 2, where, "C", optional=True)
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    trans_b = int(attrs.get("transB", 0))
    weights = np.asarray(bmat, np.float64) if trans_b else np.asarray(bmat, np.float64).T
    if weights.ndim != 2 or weights.shape[1] != walk.width:
        raise walk._fail(
            where,
            f"B has shape {list(bmat.shape)}, which does not take {walk.width} features",
            supported=False,
        )
    out_size = weights.shape[0]
    weights = float32(weights * alpha) if alpha != 1.0 else float32(weights)
    bias = None
    if c is not None:
        bias = _bias_vector(
            walk, np.asarray(c), [d.axes[0], Axis("F", out_size)], out_size, where, "C"
        )
        if beta != 1.0:
            bias = float32(bias.astype(np.float64) * beta)
    origin = (
        f"ONNX Gemm: B '{node.input[1]}' {list(bmat.shape)} (transB={trans_b}) -> "
        f"weights {'as is' if trans_b else '= B.T'}"
        + (f" x alpha {alpha:g}" if alpha != 1.0 else "")
        + (
            f"; C '{node.input[2]}' -> bias" + (f" x beta {beta:g}" if beta != 1.0 else "")
            if c is not None
            else "; no C -> no bias"
        )
    )
    _add_dense(walk, node, index, weights, bias, origin)
    walk._set(node.output[0], Data([d.axes[0], Axis("F", out_size)], d.flipped), where)


def _matmul(walk: _Walk, index: int, node: Any, where: str, attrs: dict, inputs: list) -> None:
    d = _data_input(walk, node, inputs, where)
    walk._feature(d, -1, where)
    bmat = np.asarray(walk._const(node, 1, where, "B"))
    if bmat.ndim != 2 or bmat.shape[0] != walk.width:
        raise walk._fail(
            where,
            f"B has shape {list(bmat.shape)}; a Dense needs a 2-D [{walk.width}, O] constant",
            supported=False,
        )
    origin = f"ONNX MatMul: B '{node.input[1]}' [I, O] = {list(bmat.shape)} -> weights = B.T"
    _add_dense(walk, node, index, float32(bmat.T), None, origin)
    walk._set(
        node.output[0], Data(list(d.axes[:-1]) + [Axis("F", bmat.shape[1])], d.flipped), where
    )


def _add_dense(
    walk: _Walk, node: Any, index: int, weights: np.ndarray, bias: np.ndarray | None, origin: str
) -> None:
    layer = Dense(walk._unique_name(node, index), weights, bias, "linear", origin=origin)
    walk.layers.append(layer)
    walk.width = layer.output_size
    walk.pending = _Pending(layer)


def _bias_vector(
    walk: _Walk, c: np.ndarray, axes: list, size: int, where: str, what: str
) -> np.ndarray:
    """A constant added to data with `axes` (numpy broadcasting aligns trailing axes), as
    a (size,) bias: it may vary only along the feature axis."""
    c = np.asarray(c, np.float32)
    if c.ndim > len(axes):
        raise walk._fail(
            where, f"{what} of shape {list(c.shape)} adds axes to the data", supported=False
        )
    along = None
    for j in range(1, c.ndim + 1):
        axis, n = axes[-j], c.shape[-j]
        if n == 1:
            continue
        if axis.role != "F" or axis.size != n:
            raise walk._fail(
                where,
                f"{what} of shape {list(c.shape)} varies along axis "
                f"{len(axes) - j} ({_role_name(axis)}); a bias may only "
                "vary along the features",
                supported=False,
            )
        along = n
    if along is None:
        return float32(np.full(size, c.reshape(-1)[0] if c.size else 0.0, np.float32))
    return float32(c.reshape(-1))


def _add(walk: _Walk, index: int, node: Any, where: str, attrs: dict, inputs: list) -> None:
    data = [k for k, v in enumerate(inputs) if isinstance(v, Data)]
    if len(data) != 1 or len(inputs) != 2:
        raise walk._fail(
            where,
            "it adds two tensors computed from the graph input "
            "(residual connections are not supported)",
            supported=False,
        )
    d = inputs[data[0]]
    other = 1 - data[0]
    pending = walk.pending
    if pending is None or not pending.bias_open or walk.layers[-1] is not pending.layer:
        raise walk._fail(
            where,
            "an Add of a constant is only supported as the bias of a preceding MatMul or Gemm",
        )
    c = np.asarray(walk._const(node, other, where, "addend"))
    layer = pending.layer
    bias = _bias_vector(walk, c, d.axes, layer.output_size, where, "the addend")
    layer.bias = bias if layer.bias is None else float32(layer.bias + bias)
    layer.origin += f"; Add '{node.input[other]}' {list(c.shape)} -> bias"
    walk._set(node.output[0], Data(list(d.axes), d.flipped), where)


def _activation(walk: _Walk, index: int, node: Any, where: str, attrs: dict, inputs: list) -> None:
    d = _data_input(walk, node, inputs, where)
    op = node.op_type
    if op in SIMPLE_ACTIVATIONS:
        act = SIMPLE_ACTIVATIONS[op]
    elif op == "Elu":
        if not _close(float(attrs.get("alpha", 1.0)), 1.0):
            raise walk._fail(where, f"Elu with alpha={attrs['alpha']:g}; only alpha=1")
        act = "elu"
    elif op == "HardSigmoid":
        a, b = float(attrs.get("alpha", 0.2)), float(attrs.get("beta", 0.5))
        if _close(a, 0.2) and _close(b, 0.5):
            act = "hard_sigmoid_0.2"
        elif _close(a, 1.0 / 6.0) and _close(b, 0.5):
            act = "hard_sigmoid_keras3"
        else:
            raise walk._fail(
                where,
                f"HardSigmoid(alpha={a:g}, beta={b:g}); supported: alpha "
                "0.2, beta 0.5 or alpha 1/6, beta 0.5",
            )
    elif op == "Softmax":
        rank = len(d.axes)
        axis = int(attrs.get("axis", -1 if walk.opset >= 13 else 1))
        axis = axis + rank if axis < 0 else axis
        over = d.axes[axis:] if walk.opset < 13 else [d.axes[axis]]
        others = [a for a in over if a.role != "F" and not walk._is_singleton(a)]
        if others or (walk.width != 1 and not any(a.role == "F" for a in over)):
            raise walk._fail(where, f"softmax over axis {axis}, which is not the feature axis")
        act = "softmax"
    else:  # pragma: no cover - DATA_OPS only routes the operators above here
        raise walk._fail(where, "unknown activation")
    pending = walk.pending
    if (
        pending is not None
        and walk.layers[-1] is pending.layer
        and pending.layer.activation == "linear"
    ):
        pending.layer.activation = act
        pending.layer.origin += f"; {op} -> activation {act}"
        pending.bias_open = False
    else:
        walk.layers.append(
            Activation(walk._unique_name(node, index), int(walk.width), act, origin=f"ONNX {op}")
        )
        walk.pending = None
    walk._set(node.output[0], Data(list(d.axes), d.flipped), where)


#: The operators that may see the separate directions axis of a bidirectional operator
#: (to concatenate the two directions along the features; the others refuse it).
DIRECTION_AXIS_OPS = {
    "Transpose",
    "Reshape",
    "Flatten",
    "Identity",
    "Dropout",
    "Cast",
    "Squeeze",
    "Unsqueeze",
    "Slice",
    "Gather",
}
DATA_OPS: dict[str, Callable] = {
    "LSTM": _recurrent_op,
    "GRU": _recurrent_op,
    "RNN": _recurrent_op,
    "Transpose": _transpose,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "Reshape": _reshape,
    "Flatten": _flatten,
    "Gather": _gather,
    "Slice": _slice,
    "ReverseSequence": _reverse_sequence,
    "Gemm": _gemm,
    "MatMul": _matmul,
    "Add": _add,
    "Identity": _identity,
    "Dropout": _identity,
    "Cast": _identity,
    "Relu": _activation,
    "Sigmoid": _activation,
    "Tanh": _activation,
    "Softsign": _activation,
    "Softplus": _activation,
    "Elu": _activation,
    "HardSigmoid": _activation,
    "Softmax": _activation,
    "Shape": lambda walk, index, node, where, attrs, inputs: _sym_shape(
        walk, node, where, attrs, inputs
    ),
}


# ---- shape arithmetic (values that depend on the input's shape, not its data) -----------


def _sym_items(walk: _Walk, value: Any, where: str) -> tuple:
    if isinstance(value, SymVec):
        return value.items
    if isinstance(value, Const):
        return tuple(int(v) for v in np.asarray(value.value).ravel())
    raise walk._fail(
        where, "a shape computation mixes in a value lstmgen does not follow", supported=False
    )


def _sym_shape(walk: _Walk, node: Any, where: str, attrs: dict, inputs: list) -> None:
    d = inputs[0]
    if not isinstance(d, Data):
        raise walk._fail(where, "Shape of a shape-dependent value", supported=False)
    items = []
    for axis in d.axes:
        if axis.role in ("F", "1", "D", "S") and axis.size is not None:
            items.append(int(axis.size))
        elif axis.role == "?" and axis.size == 1:
            items.append(1)
        else:
            items.append(axis)
    start = int(attrs.get("start", 0))
    end = attrs.get("end")
    items = items[start : None if end is None else int(end)]
    walk.values[node.output[0]] = SymVec(tuple(items))


def _sym_pass(walk: _Walk, node: Any, where: str, attrs: dict, inputs: list) -> None:
    value = inputs[0]
    if node.op_type == "Cast" and isinstance(value, Fill) and not isinstance(value.value, Axis):
        value = Fill(float(value.value))
    walk.values[node.output[0]] = value


def _sym_gather(walk: _Walk, node: Any, where: str, attrs: dict, inputs: list) -> None:
    value = inputs[0]
    if isinstance(value, Fill):
        walk.values[node.output[0]] = value
        return
    items = _sym_items(walk, value, where)
    indices = np.asarray(walk._const(node, 1, where, "indices"))
    picked = tuple(items[int(k)] for k in indices.ravel())
    walk.values[node.output[0]] = SymVec(picked, scalar=indices.ndim == 0)


def _sym_slice(walk: _Walk, node: Any, where: str, attrs: dict, inputs: list) -> None:
    value = inputs[0]
    if isinstance(value, Fill):
        walk.values[node.output[0]] = value
        return
    items = _sym_items(walk, value, where)
    if "starts" in attrs:
        start, end, step = attrs["starts"][0], attrs["ends"][0], 1
    else:
        start = int(walk._const(node, 1, where, "starts").ravel()[0])
        end = int(walk._const(node, 2, where, "ends").ravel()[0])
        got = walk._const(node, 4, where, "steps", optional=True)
        step = 1 if got is None else int(got.ravel()[0])
    walk.values[node.output[0]] = SymVec(tuple(items[slice(start, end, step)]))


def _sym_concat(walk: _Walk, node: Any, where: str, attrs: dict, inputs: list) -> None:
    if any(isinstance(v, Fill) for v in inputs):
        fills = {v.value if isinstance(v, Fill) else None for v in inputs}
        if len(fills) == 1 and all(isinstance(v, Fill) for v in inputs):
            walk.values[node.output[0]] = inputs[0]
            return
        raise walk._fail(
            where,
            "it concatenates tensors of different values along a shape-dependent axis",
            supported=False,
        )
    items: list = []
    for v in inputs:
        items.extend(_sym_items(walk, v, where))
    walk.values[node.output[0]] = SymVec(tuple(items))


def _sym_unsqueeze(walk: _Walk, node: Any, where: str, attrs: dict, inputs: list) -> None:
    value = inputs[0]
    if isinstance(value, SymVec):
        value = SymVec(value.items, scalar=False)
    walk.values[node.output[0]] = value


def _sym_squeeze(walk: _Walk, node: Any, where: str, attrs: dict, inputs: list) -> None:
    value = inputs[0]
    if isinstance(value, SymVec):
        if len(value.items) != 1:
            raise walk._fail(where, "squeezes a shape vector of several items", supported=False)
        value = SymVec(value.items, scalar=True)
    walk.values[node.output[0]] = value


def _sym_reshape(walk: _Walk, node: Any, where: str, attrs: dict, inputs: list) -> None:
    value = inputs[0]
    if isinstance(value, SymVec):
        value = SymVec(value.items, scalar=False)
    walk.values[node.output[0]] = value


def _sym_fill(walk: _Walk, node: Any, where: str, attrs: dict, inputs: list) -> None:
    """ConstantOfShape, Expand, Tile: the result holds one value wherever its shape."""
    source = inputs[0]
    if node.op_type == "ConstantOfShape":
        fill = attrs.get("value")
        number = (
            0.0
            if fill is None
            else float(np.asarray(walk.onnx.numpy_helper.to_array(fill)).ravel()[0])
        )
        walk.values[node.output[0]] = Fill(number)
        return
    if isinstance(source, Fill):
        walk.values[node.output[0]] = source
    elif isinstance(source, Const):
        arr = np.asarray(source.value).ravel()
        if arr.size == 0 or np.any(arr != arr[0]):
            raise walk._fail(
                where,
                "it expands a constant that is not one value everywhere "
                "over a shape computed from the input",
                supported=False,
            )
        walk.values[node.output[0]] = Fill(float(arr[0]))
    elif isinstance(source, SymVec) and len(source.items) == 1:
        item = source.items[0]
        walk.values[node.output[0]] = Fill(item if isinstance(item, Axis) else float(item))
    else:
        raise walk._fail(where, "it expands a shape vector", supported=False)


SYMBOLIC_OPS: dict[str, Callable] = {
    "Shape": _sym_shape,
    "Cast": _sym_pass,
    "Identity": _sym_pass,
    "Gather": _sym_gather,
    "Slice": _sym_slice,
    "Concat": _sym_concat,
    "Unsqueeze": _sym_unsqueeze,
    "Squeeze": _sym_squeeze,
    "Reshape": _sym_reshape,
    "ConstantOfShape": _sym_fill,
    "Expand": _sym_fill,
    "Tile": _sym_fill,
    "Transpose": _sym_pass,
}


# ---- small helpers ---------------------------------------------------------------------


def _describe(node: Any, index: int) -> str:
    if node.name:
        return f"node '{node.name}' ({node.op_type})"
    out = next((o for o in node.output if o), "")
    return f"node #{index} ({node.op_type}, output '{out}')"


def _attribute(attr: Any) -> Any:
    from onnx import helper

    value = helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def _role_name(axis: Axis) -> str:
    return {
        "T": "time",
        "B": "batch",
        "F": f"features ({axis.size})",
        "1": "a singleton",
        "?": "an input axis of unknown role",
        "M": "batch and time folded",
        "D": f"the two directions of bidirectional {axis.owner}",
        "S": "an axis known by its size only",
    }[axis.role]


def _kind_name(layer: Layer) -> str:
    if isinstance(layer, Bidirectional):
        return f"bidirectional {_kind_name(layer.forward)}"
    return {"lstm": "LSTM", "gru": "GRU", "simple_rnn": "RNN"}.get(layer.kind, layer.kind)


# ---- the oracle ------------------------------------------------------------------------


def _session(source: Any) -> Any:
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def to_onnx_input(plan: Plan, x: np.ndarray) -> np.ndarray:
    """x [n, T, D] as the graph input's layout."""
    n, t_len, d = x.shape
    sizes = {"B": n, "T": t_len, "F": d}
    present = [r for r in plan.input_roles if r in sizes]
    kept = [r for r in ("B", "T", "F") if r in present]
    arr = x.reshape([sizes[r] for r in kept]).transpose([kept.index(r) for r in present])
    return np.ascontiguousarray(
        arr.reshape([sizes.get(r, 1) for r in plan.input_roles]), dtype=np.float32
    )


def from_onnx_output(plan: Plan, y: np.ndarray, n: int, t_len: int) -> np.ndarray:
    """The graph output as the IR's [n, T, O] or [n, O]."""
    sizes = {"B": n, "T": t_len, "F": plan.output_size}
    present = [r for r in plan.output_roles if r in sizes]
    arr = y.reshape([sizes[r] for r in present])
    kept = [r for r in ("B", "T", "F") if r in present]
    arr = arr.transpose([present.index(r) for r in kept])
    shape = [n] + ([t_len] if plan.sequence else []) + [plan.output_size]
    return arr.reshape(shape)


def _predictor(source: Any, plan: Plan) -> Callable[[np.ndarray], np.ndarray]:
    session = None

    def predict(x: np.ndarray) -> np.ndarray:
        nonlocal session
        if session is None:
            session = _session(source)
        x = np.asarray(x, np.float32)
        n, t_len, _ = x.shape
        chunk = plan.batch or n
        results = []
        for start in range(0, n, chunk):
            part = x[start : start + chunk]
            real = part.shape[0]
            if real < chunk:
                part = np.concatenate(
                    [part, np.zeros((chunk - real,) + part.shape[1:], np.float32)]
                )
            y = session.run([plan.output_name], {plan.input_name: to_onnx_input(plan, part)})[0]
            results.append(from_onnx_output(plan, np.asarray(y), chunk, t_len)[:real])
        return np.concatenate(results)

    return predict
