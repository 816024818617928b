"""The op registry and what an op handler knows while a captured graph is read.

Handlers are registered by aten op name (``@op("aten.relu.default", ...)``) and called with
the op's own arguments, tensors that depend on the input replaced by the values of
`values.py`. A handler that cannot map its op raises `ctx.refuse(reason)`: one line naming
the op and, where torch.export recorded it, the line of the user's forward that called it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ...errors import UnsupportedLayerError

Handler = Callable[..., Any]
#: aten op name (e.g. "aten.relu.default") -> its handler.
OPS: dict[str, Handler] = {}

#: What the PyTorch front end reads, for error messages and the README.
SUPPORTED = (
    "nn.LSTM/nn.GRU/nn.RNN (stacked, bidirectional, proj_size, batch_first or not) and "
    "their output sequence, out[:, -1], out[:, a:b], h_n[k] or torch.cat([h_n[-2], "
    "h_n[-1]], 1); nn.Linear / matmul; relu, sigmoid, tanh, softsign, softplus, elu, "
    "hardsigmoid, softmax and log_softmax over the features; LayerNorm, BatchNorm1d, "
    "Embedding (first), dropout; mean/max over time; view/reshape/flatten/permute/"
    "squeeze of these"
)


class InputLayoutMismatch(Exception):
    """The input reaches a recurrent op with batch and time swapped from what was assumed:
    read the graph again with the other input layout."""


def op(*names: str) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of the aten ops `names`."""

    def register(handler: Handler) -> Handler:
        for name in names:
            OPS[name] = handler
        return handler

    return register


def op_name(target: Any) -> str:
    """The registry key of a graph node's target (e.g. "aten.select.int", "getitem")."""
    name = getattr(target, "__name__", None)
    if getattr(target, "__module__", "") == "_operator" and name:
        return name
    return str(target)


@dataclass
class Context:
    """The facts every handler may need: the captured example's batch size, the node
    being read (for layer names and error lines), and notes for `inspect`."""

    batch: int
    torch_dir: str
    node: Any = None
    notes: list[str] = field(default_factory=list)
    #: set by a Flatten: the model then has the captured example's number of timesteps
    fixed_timesteps: bool = False

    @property
    def op(self) -> str:
        return op_name(self.node.target) if self.node is not None else "?"

    def refuse(self, reason: str) -> UnsupportedLayerError:
        """An error naming the op being read, `reason`, and the user's source line."""
        where = source_line(self.node, self.torch_dir) if self.node is not None else ""
        at = f" (at {where})" if where else ""
        return UnsupportedLayerError(f"{self.op}{at}: {reason}")

    def unsupported(self) -> UnsupportedLayerError:
        return self.refuse(f"not supported; lstmgen reads {SUPPORTED}")

    def layer_name(self) -> str:
        """The IR name of a layer made from the current node: the path of the nn module
        that ran it (e.g. "head.0"), else the graph node's name (e.g. "relu")."""
        stack = (self.node.meta.get("nn_module_stack") or {}) if self.node is not None else {}
        if stack:
            path, type_name = list(stack.values())[-1]
            type_text = (
                type_name if isinstance(type_name, str) else getattr(type_name, "__module__", "")
            )
            if path and str(type_text).startswith("torch.nn.modules"):
                return str(path)
        return str(self.node.name) if self.node is not None else "layer"


_FRAME = re.compile(
    r'File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<func>\S+)\n(?P<code>[^\n]*)'
)


#: lstmgen's own files, which are not the user's code
LSTMGEN_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def source_line(node: Any, torch_dir: str) -> str:
    """'file.py:12: code' of the innermost frame of the user's code in the node's
    recorded stack trace, or "" when export recorded none."""
    trace = node.meta.get("stack_trace") or ""
    ours = (torch_dir, LSTMGEN_DIR + os.sep)
    frames = [m for m in _FRAME.finditer(trace) if not m["file"].startswith(ours)]
    if not frames:
        return ""
    last = frames[-1]
    return f"{os.path.basename(last['file'])}:{last['line']}: {last['code'].strip()}"
