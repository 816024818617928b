"""A saved state_dict (`torch.save(module.state_dict(), path)`) into the IR.

A state_dict holds weights, not forward. The recurrent modules are recognised from the
shapes: keys `<prefix>weight_hh_l0` of shape (G*H, H) -- G = 4 is an nn.LSTM, 3 an nn.GRU,
1 an nn.RNN -- with proj_size, bias, bidirectional and num_layers read from the other keys.
What the file cannot say is assumed and stated in the IR's notes (which `inspect` prints):
nn.RNN's nonlinearity (tanh unless `nonlinearity="relu"`), what forward reads from the
recurrent output (`output`: "last" = out[:, -1], "sequence", or "h_n" = the final states,
both directions concatenated), and the head (`head`: Linear/LayerNorm/BatchNorm1d prefixes
and activation names in order; by default the file's Linear layers in order). Several
recurrent modules are chained in file order.

The oracle is PyTorch itself: the nn.LSTM/GRU/RNN and head modules rebuilt from the file
and run with the forward those assumptions describe.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ModelError
from ...ir import Activation, BatchNorm, Dense, Layer, LayerNorm, Model, TimeSlice, float32
from ...limits import check_layers
from .. import Loaded
from .load import import_torch, load_state_dict
from .oracle import check, module_predict
from .recurrent import GATE_BLOCKS, NONLINEARITIES, final_state, stacked_layers

OUTPUTS = ("last", "sequence", "h_n")
HEAD_ACTIVATIONS = {
    "relu": ("relu", "ReLU"),
    "sigmoid": ("sigmoid", "Sigmoid"),
    "tanh": ("tanh", "Tanh"),
    "softsign": ("softsign", "Softsign"),
    "softplus": ("softplus", "Softplus"),
    "elu": ("elu", "ELU"),
    "hardsigmoid": ("hard_sigmoid_keras3", "Hardsigmoid"),
    "softmax": ("softmax", "Softmax"),
    "log_softmax": ("log_softmax", "LogSoftmax"),
}
_KEY = re.compile(
    r"^(?P<prefix>(?:.*\.)?)(?P<name>weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)"
    r"_l(?P<k>\d{1,9})(?P<reverse>_reverse)?$"
)
MODULE_BY_GATES = {blocks: module for module, blocks in GATE_BLOCKS.items()}


@dataclass
class RecurrentEntry:
    """One nn.LSTM / nn.GRU / nn.RNN recognised in the file."""

    prefix: str
    module: str
    input_size: int
    hidden_size: int
    num_layers: int
    bias: bool
    bidirectional: bool
    proj_size: int
    keys: list[str] = field(default_factory=list)

    def describe(self) -> str:
        extra = "".join(
            f", {text}"
            for text, on in [
                (f"num_layers={self.num_layers}", self.num_layers > 1),
                ("bias=False", not self.bias),
                ("bidirectional=True", self.bidirectional),
                (f"proj_size={self.proj_size}", self.proj_size > 0),
            ]
            if on
        )
        return f"nn.{self.module}({self.input_size}, {self.hidden_size}{extra})"


def open_file(
    path: Path,
    head: Sequence[str] | None = None,
    output: str = "last",
    nonlinearity: str | None = None,
) -> Loaded:
    """The IR of a state_dict file, with the oracle rebuilt from it (see the module
    docstring for `head`, `output` and `nonlinearity`)."""
    torch = import_torch()
    if output not in OUTPUTS:
        raise ModelError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
    if nonlinearity not in (None, *NONLINEARITIES):
        raise ModelError(f"nonlinearity must be tanh or relu, got {nonlinearity!r}")
    state, notes = load_state_dict(path)
    entries = recognise(state, path)
    modules = [_rebuild(torch, state, entry, nonlinearity or "tanh", path) for entry in entries]
    layers: list[Layer] = []
    for entry, module in zip(entries, modules):
        name = entry.prefix.rstrip(".") or entry.module.lower()
        nonlinear = getattr(module, "nonlinearity", "tanh")
        layers.extend(stacked_layers(entry.module, _module_weights(module), name, nonlinear))
        notes.append(f"recognised from the shapes: '{entry.prefix}' holds {entry.describe()}")
        if entry.module == "RNN":
            notes.append(
                f"assumed: nn.RNN nonlinearity {module.nonlinearity!r} (the file does not "
                "record it; --rnn-nonlinearity tanh|relu)"
            )
    _read_output(layers, entries[-1], output, notes)
    used = {key for entry in entries for key in entry.keys}
    head_layers, head_modules = _head(torch, state, head, layers[-1].output_size, used, notes, path)
    unread = [key for key in state if key not in used and not key.endswith("num_batches_tracked")]
    if unread:
        notes.append(f"keys not read: {', '.join(unread)}")
    ir = Model(
        input_size=entries[0].input_size,
        layers=layers + head_layers,
        name=path.stem,
        source=f"PyTorch {torch.__version__}, state_dict {path.name}",
        notes=notes,
    )
    ir.validate()
    rebuilt = _oracle_module(torch, modules, head_modules, output, entries[-1].bidirectional).eval()
    output_axes = ("B", "T", "F") if output == "sequence" else ("B", "F")
    predict = module_predict(torch, rebuilt, ir, ("B", "T", "F"), output_axes)
    example = np.random.default_rng(0).standard_normal((2, 5, ir.input_size)).astype(np.float32)
    check(ir, predict, example, f"the forward rebuilt from {path.name}")
    oracle = (
        f"PyTorch {torch.__version__} nn.{entries[-1].module}/head modules rebuilt from the file"
    )
    return Loaded(ir, predict, oracle)


def recognise(state: dict[str, Any], path: Path) -> list[RecurrentEntry]:
    """The recurrent modules of a state_dict, in file order, from their parameter shapes."""
    groups: dict[str, list[str]] = {}
    for key in state:
        match = _KEY.match(key)
        if match:
            groups.setdefault(match["prefix"], []).append(key)
    if not groups:
        raise ModelError(
            f"{path}: no recurrent module in the state_dict (no keys like lstm.weight_ih_l0); "
            f"keys: {', '.join(list(state)[:8])}"
        )
    return [_entry(state, prefix, keys, path) for prefix, keys in groups.items()]


def _entry(state: dict[str, Any], prefix: str, keys: list[str], path: Path) -> RecurrentEntry:
    where = f"{path}: '{prefix or '(top level)'}'"
    for key in keys:
        dims = 2 if _KEY.match(key)["name"].startswith("weight") else 1  # type: ignore[index]
        if state[key].dim() != dims:
            raise ModelError(
                f"{path}: '{key}' has shape {list(state[key].shape)}; a recurrent module's "
                f"{'weights are matrices' if dims == 2 else 'biases are vectors'}"
            )
    try:
        w_ih, w_hh = state[f"{prefix}weight_ih_l0"], state[f"{prefix}weight_hh_l0"]
    except KeyError as missing:
        raise ModelError(f"{where} has no {missing.args[0]}") from None
    projection = state.get(f"{prefix}weight_hr_l0")
    hidden = int(projection.shape[1]) if projection is not None else int(w_hh.shape[1])
    gates = int(w_hh.shape[0]) // max(hidden, 1)
    module = MODULE_BY_GATES.get(gates) if gates * hidden == int(w_hh.shape[0]) else None
    if module is None or (projection is not None and module != "LSTM"):
        raise ModelError(
            f"{where}: weight_hh_l0 of shape {list(w_hh.shape)} is neither an nn.LSTM "
            "(4H x H), an nn.GRU (3H x H) nor an nn.RNN (H x H)"
        )
    layers = 1 + max(int(_KEY.match(k)["k"]) for k in keys)  # type: ignore[index]
    check_layers(f"{where}: stacked layers numbered up to _l{layers - 1}", layers)
    entry = RecurrentEntry(
        prefix=prefix,
        module=module,
        input_size=int(w_ih.shape[1]),
        hidden_size=hidden,
        num_layers=layers,
        bias=f"{prefix}bias_ih_l0" in state,
        bidirectional=f"{prefix}weight_ih_l0_reverse" in state,
        proj_size=0 if projection is None else int(projection.shape[0]),
        keys=keys,
    )
    _check_shapes(state, entry, where)
    return entry


def _check_shapes(state: dict[str, Any], entry: RecurrentEntry, where: str) -> None:
    """Every parameter the module has is in the file with the shape the module gives it
    (so rebuilding the module allocates no more than the file declares), and no other."""
    expected = expected_shapes(entry)
    for key, shape in expected.items():
        if key not in state:
            raise ModelError(
                f"{where}: holds {entry.describe()} but has no '{key}' (stacked layers are "
                "numbered from 0 without gaps)"
            )
        if tuple(state[key].shape) != shape:
            raise ModelError(
                f"{where}: '{key}' has shape {list(state[key].shape)}; {entry.describe()} "
                f"needs {list(shape)}"
            )
    extra = sorted(set(entry.keys) - set(expected))
    if extra:
        raise ModelError(f"{where}: '{extra[0]}' does not belong to {entry.describe()}")


def expected_shapes(entry: RecurrentEntry) -> dict[str, tuple[int, ...]]:
    """The parameter shapes of the nn.LSTM/GRU/RNN an entry describes, by state_dict key."""
    rows = GATE_BLOCKS[entry.module] * entry.hidden_size
    out = entry.proj_size or entry.hidden_size
    directions = ["", "_reverse"] if entry.bidirectional else [""]
    shapes: dict[str, tuple[int, ...]] = {}
    for k in range(entry.num_layers):
        width = entry.input_size if k == 0 else out * len(directions)
        for suffix in directions:
            name = f"{entry.prefix}{{}}_l{k}{suffix}"
            shapes[name.format("weight_ih")] = (rows, width)
            shapes[name.format("weight_hh")] = (rows, out)
            if entry.bias:
                shapes[name.format("bias_ih")] = (rows,)
                shapes[name.format("bias_hh")] = (rows,)
            if entry.proj_size:
                shapes[name.format("weight_hr")] = (entry.proj_size, entry.hidden_size)
    return shapes


def _rebuild(
    torch: Any, state: dict[str, Any], entry: RecurrentEntry, nonlinearity: str, path: Path
) -> Any:
    """The nn.LSTM/GRU/RNN the entry describes, with the file's parameters loaded."""
    options: dict[str, Any] = dict(
        num_layers=entry.num_layers,
        bias=entry.bias,
        batch_first=True,
        bidirectional=entry.bidirectional,
    )
    if entry.module == "LSTM":
        options["proj_size"] = entry.proj_size
    if entry.module == "RNN":
        options["nonlinearity"] = nonlinearity
    module = getattr(torch.nn, entry.module)(entry.input_size, entry.hidden_size, **options)
    try:
        module.load_state_dict({key[len(entry.prefix) :]: state[key] for key in entry.keys})
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ModelError(
            f"{path}: the parameters under '{entry.prefix}' do not fit one "
            f"{entry.describe()} ({first})"
        ) from None
    return module.float().eval()


def _module_weights(module: Any) -> list[list[dict[str, np.ndarray]]]:
    from .modules import module_weights

    return module_weights(module)


def _read_output(layers: list[Layer], entry: RecurrentEntry, output: str, notes: list[str]) -> None:
    """Make the last recurrent layer give what forward reads from it (in place)."""
    last = layers[-1]
    if output == "sequence":
        what = "the output sequence"
    elif output == "h_n" or not entry.bidirectional:
        layers[-1] = final_state(last, None)
        what = (
            "h_n, both directions' final states concatenated (torch.cat([h_n[-2], h_n[-1]], 1))"
            if entry.bidirectional
            else "out[:, -1], the last step (= h_n[-1])"
        )
    else:
        layers.append(
            TimeSlice(
                f"{last.name}_last_step",
                last.output_size,
                start=-1,
                squeeze=True,
                origin="PyTorch out[:, -1] of a bidirectional layer",
            )
        )
        what = (
            "out[:, -1]: the forward direction after T steps and the backward direction "
            "after one step"
        )
    notes.append(
        f"assumed: forward reads {what} (the file does not record forward; "
        "--lstm-output last|sequence|h_n)"
    )


def _head(
    torch: Any,
    state: dict[str, Any],
    head: Sequence[str] | None,
    width: int,
    used: set[str],
    notes: list[str],
    path: Path,
) -> tuple[list[Layer], list[Any]]:
    """IR layers and torch modules of the head; marks the keys it reads as used."""
    if head is None:
        head = _default_head(state, width, used)
        notes.append(
            "assumed: the head is "
            + (", ".join(head) if head else "nothing")
            + " (the Linear layers in file order; the file does not record activations or "
            "other operations of forward: --head names them, e.g. --head fc,relu,out)"
        )
    layers: list[Layer] = []
    modules: list[Any] = []
    for item in head:
        layer, module = _head_item(torch, state, item, width, used, notes, path)
        layers.append(layer)
        modules.append(module)
        width = layer.output_size
    return layers, modules


def _default_head(state: dict[str, Any], width: int, used: set[str]) -> list[str]:
    chosen = []
    for key, value in state.items():
        prefix = key[: -len(".weight")]
        if (
            key.endswith(".weight")
            and key not in used
            and value.dim() == 2
            and value.shape[1] == width
        ):
            chosen.append(prefix)
            width = int(value.shape[0])
    return chosen


def _head_item(
    torch: Any,
    state: dict[str, Any],
    item: str,
    width: int,
    used: set[str],
    notes: list[str],
    path: Path,
) -> tuple[Layer, Any]:
    if item.lower() in HEAD_ACTIVATIONS:
        name, cls = HEAD_ACTIVATIONS[item.lower()]
        kwargs = {"dim": -1} if cls in ("Softmax", "LogSoftmax") else {}
        return Activation(
            item.lower(), width, name, origin=f"PyTorch nn.{cls} (named in --head)"
        ), getattr(torch.nn, cls)(**kwargs)
    params = {k[len(item) + 1 :]: v for k, v in state.items() if k.startswith(item + ".")}
    weight = params.get("weight")
    if weight is None:
        raise ModelError(
            f"head item {item!r}: neither a layer in {path} (no '{item}.weight') nor an "
            f"activation ({', '.join(HEAD_ACTIVATIONS)})"
        )
    used.update(f"{item}.{k}" for k in params)
    _check_head_params(item, params, path)
    if weight.dim() == 2:
        module = torch.nn.Linear(int(weight.shape[1]), int(weight.shape[0]), bias="bias" in params)
        layer: Layer = Dense(
            item,
            float32(weight.numpy()),
            float32(params["bias"].numpy()) if "bias" in params else None,
            origin="PyTorch nn.Linear: weight (O, I) and bias as is",
        )
    elif "running_mean" in params:
        module = torch.nn.BatchNorm1d(int(weight.shape[0]))
        layer = BatchNorm(
            item,
            float32(params["running_mean"].numpy()),
            float32(params["running_var"].numpy()),
            float32(weight.numpy()),
            float32(params["bias"].numpy()),
            1e-5,
            origin="PyTorch nn.BatchNorm1d (eval), eps 1e-5 assumed",
        )
        notes.append(
            f"assumed: {item} is nn.BatchNorm1d with eps 1e-5 (the file does not record eps)"
        )
    else:
        module = torch.nn.LayerNorm(int(weight.shape[0]))
        layer = LayerNorm(
            item,
            int(weight.shape[0]),
            float32(weight.numpy()),
            float32(params["bias"].numpy()) if "bias" in params else None,
            1e-5,
            origin="PyTorch nn.LayerNorm, eps 1e-5 assumed",
        )
        notes.append(
            f"assumed: {item} is nn.LayerNorm with eps 1e-5 (the file does not record eps)"
        )
    try:
        module.load_state_dict(params)
    except RuntimeError as exc:
        raise ModelError(
            f"{path}: head item {item!r}: {str(exc).strip().splitlines()[0]}"
        ) from None
    return layer, module


def _check_head_params(item: str, params: dict[str, Any], path: Path) -> None:
    """A head item's parameters have the shapes of what they are taken for: nn.Linear
    (weight O x I, bias O), nn.BatchNorm1d (weight, bias, running_mean, running_var: all
    N) or nn.LayerNorm (weight N, bias N)."""
    weight = params["weight"]
    if weight.dim() == 2:
        needed = {"weight": tuple(weight.shape), "bias": (int(weight.shape[0]),)}
        what = "an nn.Linear"
    elif weight.dim() == 1:
        n = (int(weight.shape[0]),)
        batch_norm = "running_mean" in params
        needed = {"weight": n, "bias": n}
        if batch_norm:
            needed.update(running_mean=n, running_var=n)
        what = "an nn.BatchNorm1d" if batch_norm else "an nn.LayerNorm"
    else:
        raise ModelError(
            f"{path}: head item {item!r}: '{item}.weight' has shape {list(weight.shape)}; "
            "expected an nn.Linear (2-D weight), nn.LayerNorm or nn.BatchNorm1d (1-D)"
        )
    optional = {"bias"} if weight.dim() == 2 or "running_mean" not in params else set()
    for name, shape in needed.items():
        if name not in params:
            if name in optional:
                continue
            raise ModelError(f"{path}: head item {item!r} ({what}) has no '{item}.{name}'")
        if tuple(params[name].shape) != shape or not params[name].dtype.is_floating_point:
            raise ModelError(
                f"{path}: head item {item!r} ({what}): '{item}.{name}' has shape "
                f"{list(params[name].shape)} ({params[name].dtype}), expected {list(shape)} "
                "floating-point"
            )


def _oracle_module(
    torch: Any, recurrent: list[Any], head: list[Any], output: str, bidirectional: bool
) -> Any:
    """The forward the assumptions describe, made of the modules rebuilt from the file."""

    class Rebuilt(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.recurrent = torch.nn.ModuleList(recurrent)
            self.head = torch.nn.Sequential(*head)

        def forward(self, x: Any) -> Any:
            state: Any = None
            for module in self.recurrent:
                x, state = module(x)
            if output == "last":
                x = x[:, -1]
            elif output == "h_n":
                h_n = state[0] if isinstance(state, tuple) else state
                x = torch.cat([h_n[-2], h_n[-1]], dim=1) if bidirectional else h_n[-1]
            return self.head(x)

    return Rebuilt()
