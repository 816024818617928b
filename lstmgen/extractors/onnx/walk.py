"""The symbolic walk of an ONNX graph from its sequence input to the output it compiles.

`Walk.run` picks the output and tells the sequence input from initial-state inputs
(`graph_io`), binds the sequence input (its axes get their roles from the first operator
that reveals them), applies the exporter-idiom rewrites (`rewrites`), keeps the nodes the
output depends on, and visits them in order: a node with an input computed from the graph input
goes to its data-path handler (`registry.DATA_OPS`), a node of constants is folded
(`folding`), and a node computing with the input's shape goes to `registry.SHAPE_OPS`.
The handlers append IR layers to `Walk.layers`; `plan` then maps the IR's [N, T, D] onto
the graph's input and output.

The methods below are the interface the operator handlers use: `fail` (a one-line
refusal naming the node), `assign` (record a node's output, checking the single chain and
onnx's inferred shapes), `const`, `data_input`, the axis-role helpers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import ModelError, UnsupportedLayerError
from ...ir import Layer, Model
from . import ops, shapes  # noqa: F401  (importing them registers their handlers)
from .folding import fold
from .graph_io import bind_sequence, bind_zero_input, pick_output, split_inputs
from .ops.shaping import shape_only_concat
from .plan import Plan, build_plan
from .registry import DATA_OPS, DIRECTION_AXIS_OPS, SHAPE_OPS
from .rewrites import rewrite_idioms
from .spec import BIDIRECTIONAL_GLUE, SUPPORTED
from .values import (
    Axis,
    Const,
    Data,
    Fill,
    Pending,
    SymVec,
    Value,
    attribute,
    default_opset,
    describe_node,
    first_line,
    role_name,
)


class Walk:
    """The state of one walk: tracked values, the IR layers made so far, the axes."""

    def __init__(self, proto: Any, label: str) -> None:
        import onnx

        self.onnx = onnx
        self.proto = proto
        self.graph = proto.graph
        self.label = label
        self.opset = default_opset(proto)
        self.values: dict[str, Value] = {}
        self.layers: list[Layer] = []
        self.notes: list[str] = []
        self.pending: Pending | None = None
        self.width: int | None = None
        self.batch: int | None = None
        self.time_axis: Axis | None = None
        self.batch_axis: Axis | None = None
        self.input_axes: list[Axis] = []
        self.names: set[str] = set()
        self.nodes: list = []
        self.shape_only: set[int] = set()
        self.consumers: dict[str, list[str]] = {}
        self.folded_values = 0  # values constant folding has made (sizes.check_fold)
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

    def run(self, name: str, source: str, output: str | None = None) -> tuple[Model, Plan]:
        """The IR of the graph from its sequence input to `output` (a graph output's name;
        None for the only one), and the plan mapping the IR onto the graph."""
        graph_output = pick_output(self, output)
        for init in self.graph.initializer:
            try:
                self.values[init.name] = Const(self.onnx.numpy_helper.to_array(init))
            except Exception as exc:  # data that does not fit its dims or type
                raise ModelError(
                    f"{self.label}: initializer '{init.name}' cannot be read ({first_line(exc)})"
                ) from None
        self.nodes = rewrite_idioms(self, list(self.graph.node))
        live = self._live_nodes(graph_output)
        graph_input, others = split_inputs(self, live)
        bind_sequence(self, graph_input)
        zero_inputs = [bind_zero_input(self, info, used) for info, used in others]
        for index, node in live:
            if node.op_type in ("Loop", "Scan", "If"):
                raise self.fail(
                    describe_node(node, index),
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
        plan = build_plan(self, graph_input.name, graph_output, out, zero_inputs)
        ir = Model(
            input_size=plan.input_size,
            layers=self.layers,
            name=name,
            source=source,
            timesteps=next((a.size for a in self.input_axes if a.role == "T"), None),
            notes=self.notes,
        )
        ir.validate()
        return ir, plan

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
                consumers.setdefault(name, []).append(describe_node(node, index))
        return consumers

    # -- the interface of the operator handlers ----------------------------------------
    def fail(self, where: str, why: str, supported: bool = True) -> UnsupportedLayerError:
        """The refusal of `where`: one line, with the supported list unless told not to."""
        tail = f"; supported: {SUPPORTED}" if supported else ""
        return UnsupportedLayerError(f"{self.label}: {where}: {why}{tail}")

    def assign(self, name: str, value: Value, where: str) -> None:
        """Record `value` as tensor `name` (a data tensor may feed one consumer only)."""
        if not name:
            return
        if isinstance(value, Data):
            value = Data(
                [
                    Axis("F", 2 * int(a.pair.size))
                    if a.role == "D"
                    and a.pair is not None
                    and self.is_singleton(a.pair)
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
                raise self.fail(
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

    def const(self, node: Any, index: int, where: str, what: str) -> np.ndarray:
        """Input `index` of `node` as a constant array, or a refusal saying what it is."""
        got = self.optional_const(node, index, where, what)
        if got is None:
            raise self.fail(where, f"input {what} is missing")
        return got

    def optional_const(self, node: Any, index: int, where: str, what: str) -> np.ndarray | None:
        """Input `index` of `node` as a constant array, None when the input is absent."""
        name = node.input[index] if index < len(node.input) else ""
        if not name:
            return None
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
        raise self.fail(
            where,
            f"input {what} ('{name}') is {kind}; lstmgen needs it to be "
            "a constant (an initializer or a Constant node)",
        )

    def data_input(self, node: Any, inputs: list, where: str, index: int = 0) -> Data:
        """The node's one input computed from the graph input, which must be input `index`."""
        data = [k for k, v in enumerate(inputs) if isinstance(v, Data)]
        if data != [index]:
            if len(data) > 1:
                raise self.fail(
                    where,
                    "it combines several tensors computed from the graph "
                    "input; lstmgen follows a single chain",
                    supported=False,
                )
            raise self.fail(
                where,
                f"the graph input reaches it through input {data[0]}, "
                f"lstmgen supports it only through input {index}",
            )
        return inputs[index]

    def unique_name(self, node: Any, index: int) -> str:
        base = node.name or f"{node.op_type.lower()}_{index}"
        name, k = base, 2
        while name in self.names:
            name, k = f"{base}_{k}", k + 1
        self.names.add(name)
        return name

    def is_singleton(self, axis: Axis) -> bool:
        return (
            axis.role == "1"
            or (axis.role in ("?", "F") and axis.size == 1)
            or (axis.role == "B" and self.batch == 1)
        )

    def fix_batch(self, size: int, where: str, why: str) -> None:
        if self.batch is None:
            self.batch = size
        elif self.batch != size:
            raise self.fail(
                where,
                f"{why} fixes the batch size to {size}, but the graph "
                f"already fixed it to {self.batch}",
                supported=False,
            )

    def feature(self, d: Data, pos: int, where: str) -> Axis:
        """The feature axis at `pos` (a singleton stands for width 1)."""
        if not d.axes:
            raise self.fail(where, "needs a feature axis, but its input is a scalar")
        axis = d.axes[pos]
        if axis.role == "F" or (axis.role == "1" and self.width == 1):
            return axis
        if axis.role == "?" and self.width is None:  # the input's features, revealed here
            axis.role = "F"
            self.width = axis.size
            return axis
        raise self.fail(
            where,
            f"works on axis {pos % len(d.axes)}, which lstmgen tracked "
            f"as {role_name(axis)}, not the feature axis",
        )

    def axes_attr(self, node: Any, attrs: dict, rank: int, where: str) -> list | None:
        """Squeeze/Unsqueeze/ReduceX axes: an attribute before opset 13, an input after."""
        if "axes" in attrs:
            axes = list(attrs["axes"])
        elif len(node.input) > 1 and node.input[1]:
            axes = [int(a) for a in np.asarray(self.const(node, 1, where, "axes")).ravel()]
        else:
            return None
        return [a + rank if a < 0 else a for a in axes]

    def bind_time(self, axis: Axis, where: str) -> None:
        """`axis` is the time axis: the graph input's, learnt here, or the known one."""
        if self.time_axis is None and axis.role == "?":
            axis.role = "T"
            self.time_axis = axis
            return
        if axis is not self.time_axis:
            raise self.fail(
                where,
                f"its time axis is {role_name(axis)}, not the time axis of "
                "the graph input (lstmgen follows one sequence through the "
                "graph)",
            )

    def bind_batch(self, axis: Axis, where: str) -> None:
        """`axis` is the batch axis (or a singleton standing for a batch of 1)."""
        if axis.role == "B" or self.is_singleton(axis):
            if axis.role == "?":
                axis.role = "1"
            if axis.role == "1":
                self.fix_batch(1, where, "a batch axis of size 1")
            return
        if axis.role == "?" and self.batch_axis is None:
            axis.role = "B"
            self.batch_axis = axis
            if axis.size is not None:
                self.fix_batch(axis.size, where, "the graph input's static batch size")
            return
        raise self.fail(
            where, f"its batch axis is {role_name(axis)}, not the batch axis of the graph input"
        )

    # -- dispatch -------------------------------------------------------------------
    def _node(self, index: int, node: Any) -> None:
        where = describe_node(node, index)
        if node.domain not in ("", "ai.onnx"):
            raise self.fail(where, f"operators of domain '{node.domain}' are not supported")
        missing = [i for i in node.input if i and i not in self.values]
        if missing:
            raise self.fail(
                where,
                f"input '{missing[0]}' is neither produced by a node, an "
                "initializer nor the graph input",
                supported=False,
            )
        inputs = [self.values[i] if i else None for i in node.input]
        attrs = {a.name: attribute(a) for a in node.attribute}
        if any(isinstance(v, Data) for v in inputs):
            if index in self.shape_only:
                shape_only_concat(self, node, where, attrs, inputs)
                return
            handler = DATA_OPS.get(node.op_type)
            if handler is None:
                raise self.fail(
                    where,
                    "this operator is not supported on the path from the graph input to its output",
                )
            owner = next(
                (a.owner for v in inputs if isinstance(v, Data) for a in v.axes if a.role == "D"),
                None,
            )
            if owner is not None and node.op_type not in DIRECTION_AXIS_OPS:
                raise self.fail(
                    where,
                    f"it reads the two directions of bidirectional {owner} "
                    f"as a separate axis; {BIDIRECTIONAL_GLUE}",
                    supported=False,
                )
            handler(self, index, node, where, attrs, inputs)
            return
        if node.op_type in ("If", "Loop", "Scan"):
            raise self.fail(where, "control flow is not supported")
        if node.op_type.startswith("Random") or node.op_type in ("Bernoulli", "Multinomial"):
            raise self.fail(where, "random values are not supported", supported=False)
        if all(v is None or isinstance(v, Const) for v in inputs):
            fold(self, node, where)
            return
        shape_handler = SHAPE_OPS.get(node.op_type)
        if shape_handler is None:
            raise self.fail(
                where,
                "it computes with the input's shape in a way lstmgen does "
                "not follow (supported there: Shape, Gather, Slice, "
                "Concat, Squeeze, Unsqueeze, Reshape, Cast, Identity, "
                "ConstantOfShape, Expand)",
                supported=False,
            )
        shape_handler(self, node, where, attrs, inputs)
