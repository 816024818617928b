"""The graph's inputs and outputs: which output lstmgen compiles, which input is the
sequence, and which inputs are initial states of the recurrent operators.

* Output: a single-output graph compiles its output. A graph with several (an LSTM's Y,
  Y_h and Y_c) compiles the one the user names: `--output NAME` on the command line,
  `lstmgen.load(path, output=NAME)` in Python; the other outputs are ignored. An output
  that keeps the two directions of a bidirectional operator as an axis (Y [T, 2, B, H],
  Y_h [2, B, H]) is compiled with the directions concatenated along the features, forward
  first ([T, 2H], [2H]), which is the IR's Bidirectional.
* Inputs: besides the sequence, a graph may take the initial states of its recurrent
  operators as inputs: PyTorch's `forward(x, (h0, c0))` exports h0 and c0 as graph inputs
  feeding initial_h / initial_c, directly or through Slice, Gather, Squeeze, Unsqueeze,
  Reshape, Transpose, Identity or Cast (one slice per layer). lstmgen compiles the model's
  `predict` semantics, in which every sequence starts from a zero state: such an input is
  the IR's zero initial state, and the oracle feeds zeros for it. The generated code's
  streaming state (C `net_state` after `net_reset`, the Python `Stream`, MATLAB's
  persistent state) is that state: it starts at zero and is where a caller who wants to
  start from other values writes them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...errors import ModelError, UnsupportedLayerError
from .spec import RECURRENT_OPS, STATE_INPUTS
from .values import Axis, Data, Fill

if TYPE_CHECKING:
    from .walk import Walk

#: Operators an initial state may pass through between its graph input and the recurrent
#: operator (input 0 only): they select, reshape or relabel it, never mix it with data.
STATE_GLUE = {"Slice", "Gather", "Squeeze", "Unsqueeze", "Reshape", "Transpose", "Identity", "Cast"}


def pick_output(walk: Walk, wanted: str | None) -> str:
    """The name of the graph output to compile."""
    names = [o.name for o in walk.graph.output]
    listed = ", ".join(repr(n) for n in names)
    if wanted is None:
        if len(names) != 1:
            raise UnsupportedLayerError(
                f"{walk.label}: the graph has {len(names)} outputs ({listed}); name the one "
                "to compile with --output NAME (Python: lstmgen.load(path, output=NAME))"
            )
        return names[0]
    if wanted not in names:
        raise ModelError(
            f"{walk.label}: --output '{wanted}' is not an output of the graph; its outputs: "
            f"{listed}"
        )
    return wanted


def split_inputs(walk: Walk, live: list) -> tuple[Any, list[tuple[Any, bool]]]:
    """(the sequence input, [(an input that is an initial state, True) or (an unused
    input, False)]): the graph's non-initializer inputs, told apart by what the nodes in
    `live` do with them."""
    initializers = {init.name for init in walk.graph.initializer}
    inputs = [i for i in walk.graph.input if i.name not in initializers]
    readers: dict[str, list] = {}
    for _, node in live:
        for k, name in enumerate(node.input):
            if name:
                readers.setdefault(name, []).append((node, k))

    def only_states(name: str) -> bool:
        for node, k in readers.get(name, []):
            if node.op_type in RECURRENT_OPS:
                if k == 0 or k not in STATE_INPUTS[node.op_type]:
                    return False
            elif node.op_type not in STATE_GLUE or k != 0:
                return False
            elif not all(only_states(o) for o in node.output if o):
                return False
        return True

    unused = [i for i in inputs if i.name not in readers]
    states = [i for i in inputs if i.name in readers and only_states(i.name)]
    sequences = [i for i in inputs if i not in unused and i not in states]
    if len(sequences) == 0 and len(unused) == 1 and not states:
        sequences, unused = unused, []
    if len(sequences) != 1:
        raise UnsupportedLayerError(
            f"{walk.label}: the graph has {len(inputs)} inputs "
            f"({', '.join(repr(i.name) for i in inputs)}); lstmgen supports graphs with "
            "one input (the sequence), the initial states of recurrent operators as further "
            "inputs (zero, as in predict), and weights as initializers or Constant nodes"
        )
    return sequences[0], [(i, True) for i in states] + [(i, False) for i in unused]


def bind_sequence(walk: Walk, info: Any) -> None:
    """The sequence input: a float32 tensor of rank >= 2 whose axes' roles are learnt later."""
    tensor = info.type.tensor_type
    if not info.type.HasField("tensor_type") or tensor.elem_type != 1:
        raise UnsupportedLayerError(
            f"{walk.label}: graph input '{info.name}' must be a float32 tensor"
        )
    if not tensor.HasField("shape") or len(tensor.shape.dim) < 2:
        raise UnsupportedLayerError(
            f"{walk.label}: graph input '{info.name}' needs a shape of rank >= 2 (time, "
            "batch and features, in any order)"
        )
    for k, dim in enumerate(tensor.shape.dim):
        size = int(dim.dim_value) if dim.HasField("dim_value") and dim.dim_value > 0 else None
        walk.input_axes.append(Axis("?", size, input_index=k))
    walk.values[info.name] = Data(list(walk.input_axes))


def bind_zero_input(walk: Walk, info: Any, used: bool) -> tuple[str, list, Any]:
    """An initial-state input (`used`) or an unused one: zero everywhere. Returns what the
    oracle feeds it: (name, dims with None for a dynamic one, numpy dtype)."""
    from onnx import helper

    tensor = info.type.tensor_type
    if not info.type.HasField("tensor_type") or not tensor.HasField("shape"):
        raise UnsupportedLayerError(
            f"{walk.label}: graph input '{info.name}' has no tensor shape; lstmgen feeds it "
            "zeros (an initial state) and needs its shape"
        )
    dims = [
        int(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else None
        for d in tensor.shape.dim
    ]
    walk.values[info.name] = Fill(0.0)
    walk.notes.append(
        f"graph input '{info.name}' feeds only initial states of recurrent operators: "
        "compiled as a zero start, as in predict (the oracle feeds zeros); the generated "
        "code's streaming state holds that state"
        if used
        else f"graph input '{info.name}' does not reach the output (the oracle feeds zeros)"
    )
    return info.name, dims, helper.tensor_dtype_to_np_dtype(tensor.elem_type)
