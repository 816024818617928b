"""PyTorch extractor: a live `nn.Module` (or a saved state_dict plus a head description)
into the IR.

Everything lstmgen knows about PyTorch lives here. `nn.LSTM` stores weight_ih_l{k}
(4H x D) and weight_hh_l{k} (4H x H) with row blocks i, f, g, o -- already the IR layout --
and two biases, bias_ih and bias_hh, which are added here into one. A module's forward is
arbitrary Python, so lstmgen reads its leaf modules in registration order (LSTM, then
Linear and activation modules), decides from `example_input` whether the forward returns
the last step or the whole sequence, and then checks the resulting IR against the
module's own forward on that input: a forward wired differently is refused, not guessed.
Files are loaded with `torch.load(weights_only=True)`: no pickled code runs.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MissingDependencyError, ModelError, UnsupportedLayerError
from ..ir import GRU, LSTM, Activation, Bidirectional, Dense, Layer, Model, SimpleRNN, float32
from . import Loaded

SUPPORTED = (
    "nn.LSTM (any num_layers, bias or not, batch_first or not, bidirectional, "
    "proj_size), nn.GRU, nn.RNN (tanh/relu), nn.Linear, nn.ReLU, nn.Sigmoid, "
    "nn.Tanh, nn.Softsign, nn.Softplus, nn.ELU, nn.Hardsigmoid, nn.Softmax(dim=-1), "
    "nn.Identity, nn.Dropout"
)
#: IR layer kind -> the PyTorch modules that become it (for the README's support table).
PRODUCES = {
    "lstm": "nn.LSTM",
    "gru": "nn.GRU",
    "simple_rnn": "nn.RNN",
    "bidirectional": "bidirectional=True",
    "dense": "nn.Linear",
    "activation": "nn.ReLU, Sigmoid, Tanh, ...",
}
FEATURES_PRODUCED = {"projection": "proj_size"}
ACTIVATION_MODULES = {
    "ReLU": "relu",
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "Softsign": "softsign",
    "Softplus": "softplus",
    "ELU": "elu",
    "Hardsigmoid": "hard_sigmoid_keras3",
    "Softmax": "softmax",
}
LSTM_ORIGIN = (
    "PyTorch nn.LSTM: weight_ih_l{k} (4H, D) rows i,f,g,o -> input_weights as is; "
    "weight_hh_l{k} (4H, H) -> recurrent_weights as is; bias_ih_l{k} + bias_hh_l{k} "
    "-> bias (summed in float32)"
)
PROJECTION_ORIGIN = "; weight_hr_l{k} (P, H) -> projection as is"
GRU_ORIGIN = (
    "PyTorch nn.GRU: weight_ih_l{k} (3H, D) rows r,z,n -> input_weights rows z,r,n; "
    "weight_hh_l{k} likewise -> recurrent_weights; bias_ih_l{k} -> bias, "
    "bias_hh_l{k} -> recurrent_bias (reset_after: n = tanh(W_in x + b_in + "
    "r * (W_hn h + b_hn)))"
)
RNN_ORIGIN = (
    "PyTorch nn.RNN: weight_ih_l{k} (H, D), weight_hh_l{k} (H, H) as is; "
    "bias_ih_l{k} + bias_hh_l{k} -> bias"
)
RZN = [1, 0, 2]  # PyTorch GRU row blocks r, z, n -> IR z, r, n
CHECK_TOLERANCE = 1e-4


def import_torch() -> Any:
    try:
        import torch
    except ImportError:
        raise MissingDependencyError(
            "the PyTorch extractor needs torch: pip install "
            "'lstmgen[torch]' (CPU build: pip install torch)"
        ) from None
    return torch


def open_live(module: Any, example_input: Any = None) -> Loaded:
    """The IR of a live nn.Module; `example_input` ([B, T, D], or [T, B, D] when the
    LSTM is not batch_first) decides the output kind and checks the extraction."""
    torch = import_torch()
    module = copy.deepcopy(module).eval()  # inference mode without touching the caller's
    leaves = [
        (name or type(m).__name__.lower(), m)
        for name, m in module.named_modules()
        if not list(m.children())
    ]
    lstms = [m for _, m in leaves if isinstance(m, RNN_MODULES(torch))]
    if not lstms:
        raise UnsupportedLayerError(
            f"module {type(module).__name__} has no nn.LSTM, nn.GRU "
            f"or nn.RNN; supported: {SUPPORTED}"
        )
    batch_first = bool(lstms[0].batch_first)
    if example_input is None:
        raise ModelError(
            "a live PyTorch module needs example_input (a tensor [B, T, D], "
            "or [T, B, D] when not batch_first): its forward is arbitrary "
            "Python, so lstmgen checks what it extracted against it"
        )
    x = torch.as_tensor(np.asarray(example_input, np.float32))
    with torch.no_grad():
        out = module(x)
    if isinstance(out, (tuple, list)):
        raise UnsupportedLayerError(
            f"{type(module).__name__}.forward returns a "
            f"{type(out).__name__}; lstmgen needs one output tensor"
        )
    sequence_output = out.dim() == 3
    layers = _convert_leaves(leaves, torch, sequence_output)
    ir = Model(
        input_size=int(x.shape[-1]),
        layers=layers,
        name=type(module).__name__,
        source=f"PyTorch {torch.__version__}, live module {type(module).__name__}",
    )
    ir.validate()

    def predict(xs: np.ndarray) -> np.ndarray:
        xt = torch.as_tensor(np.asarray(xs, np.float32))
        if not batch_first:
            xt = xt.transpose(0, 1)
        with torch.no_grad():
            y = module(xt).numpy()
        return np.swapaxes(y, 0, 1) if (sequence_output and not batch_first) else y

    batch_x = np.asarray(x.numpy() if batch_first else x.transpose(0, 1).numpy())
    _check_against(ir, predict, batch_x, type(module).__name__)
    return Loaded(ir, predict, f"PyTorch {torch.__version__} module forward")


def open_file(path: Path, head: Sequence[str] | None = None, output: str = "last") -> Loaded:
    """A saved state_dict (`torch.save(module.state_dict(), path)`), with `head` naming
    what follows the LSTM in order: Linear layers by their state_dict prefix and
    activations by name (relu, sigmoid, tanh, softmax, ...); `output` "last" or
    "sequence" says whether the LSTM's last step or every step feeds the head."""
    torch = import_torch()
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, zip errors, unsafe globals
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelError(f"{path}: torch.load(weights_only=True) failed: {first}") from None
    if not isinstance(state, dict) or not all(hasattr(v, "shape") for v in state.values()):
        raise ModelError(
            f"{path}: expected a state_dict (a dict of tensors); save it with "
            "torch.save(module.state_dict(), path)"
        )
    if output not in ("last", "sequence"):
        raise ModelError(f"output must be 'last' or 'sequence', got {output!r}")
    module = _module_from_state(torch, state, list(head or []), output, path)
    lstm = module.lstm
    d = lstm.input_size
    example = np.zeros((1, 2, d), np.float32)
    loaded = open_live(module, example)
    loaded.ir.name = path.stem
    loaded.ir.source = f"PyTorch {torch.__version__}, state_dict {path.name}"
    loaded.oracle_name = f"PyTorch {torch.__version__} nn.LSTM/nn.Linear rebuilt from the file"
    return loaded


def RNN_MODULES(torch: Any) -> tuple:
    return (torch.nn.LSTM, torch.nn.GRU, torch.nn.RNN)


def _convert_leaves(leaves: list, torch: Any, sequence_output: bool) -> list[Layer]:
    layers: list[Layer] = []
    width: int | None = None
    seen_lstm = False
    for name, m in leaves:
        kind = type(m).__name__
        if isinstance(m, RNN_MODULES(torch)):
            if seen_lstm and layers and not layers[-1].recurrent:
                raise UnsupportedLayerError(
                    f"{name} (nn.{kind}) after a non-recurrent layer; supported: {SUPPORTED}"
                )
            layers.extend(_recurrent_layers(m, name, torch))
            seen_lstm = True
            width = layers[-1].output_size
        elif not seen_lstm:
            raise UnsupportedLayerError(
                f"{name} ({kind}) comes before the first recurrent module; supported: {SUPPORTED}"
            )
        elif isinstance(m, torch.nn.Linear):
            layers.append(
                Dense(
                    name,
                    float32(m.weight.detach().numpy()),
                    None if m.bias is None else float32(m.bias.detach().numpy()),
                    origin="PyTorch nn.Linear: weight (O, I) and bias as is",
                )
            )
            width = m.out_features
        elif kind in ("Dropout", "Identity", "Sequential", "ModuleList", "ModuleDict"):
            continue  # no-ops at inference, and empty containers
        elif kind in ACTIVATION_MODULES:
            _check_activation_module(m, kind, name)
            layers.append(
                Activation(name, int(width), ACTIVATION_MODULES[kind], origin=f"PyTorch nn.{kind}")
            )
        else:
            raise UnsupportedLayerError(
                f"{name} of type {kind} is not supported; supported: {SUPPORTED}"
            )
    recurrent = [l for l in layers if l.recurrent]
    for layer in recurrent[:-1]:
        _set_return_sequences(layer, True)
    _set_return_sequences(recurrent[-1], sequence_output)
    return layers


def _set_return_sequences(layer: Layer, value: bool) -> None:
    for part in [layer.forward, layer.backward] if isinstance(layer, Bidirectional) else [layer]:
        part.return_sequences = value


def _check_activation_module(m: Any, kind: str, name: str) -> None:
    if kind == "Softmax" and m.dim not in (-1, 1, 2):
        raise UnsupportedLayerError(f"{name} (nn.Softmax dim={m.dim}): only the feature axis")
    if kind == "Softplus" and (float(m.beta) != 1.0):
        raise UnsupportedLayerError(f"{name} (nn.Softplus beta={m.beta}): only beta=1")
    if kind == "ELU" and float(m.alpha) != 1.0:
        raise UnsupportedLayerError(f"{name} (nn.ELU alpha={m.alpha}): only alpha=1")


def _recurrent_layers(m: Any, name: str, torch: Any) -> list[Layer]:
    """One IR layer per stacked layer of an nn.LSTM / nn.GRU / nn.RNN module."""
    kind = type(m).__name__
    if kind == "RNN" and m.nonlinearity not in ("tanh", "relu"):
        raise UnsupportedLayerError(f"{name} (nn.RNN nonlinearity={m.nonlinearity!r})")
    result: list[Layer] = []
    for k in range(m.num_layers):
        label = f"{name}.l{k}" if m.num_layers > 1 else name
        directions = [_direction(m, kind, k, "", label, torch)]
        if m.bidirectional:
            directions.append(_direction(m, kind, k, "_reverse", label, torch))
            directions[0].name, directions[1].name = f"{label}.forward", f"{label}.backward"
            result.append(
                Bidirectional(
                    label,
                    directions[0],
                    directions[1],
                    merge_mode="concat",
                    origin=f"PyTorch nn.{kind}(bidirectional=True): "
                    "outputs [forward, backward] concatenated; "
                    "parameters with suffix _reverse run backward",
                )
            )
        else:
            result.append(directions[0])
    return result


def _direction(m: Any, kind: str, k: int, suffix: str, name: str, torch: Any):
    def param(stem: str) -> np.ndarray:
        return float32(getattr(m, f"{stem}_l{k}{suffix}").detach().numpy())

    w_ih, w_hh = param("weight_ih"), param("weight_hh")
    backwards = suffix == "_reverse"
    origin_k = str(k) + suffix
    if kind == "LSTM":
        bias = param("bias_ih") + param("bias_hh") if m.bias else None
        projection = param("weight_hr") if getattr(m, "proj_size", 0) else None
        origin = LSTM_ORIGIN + (PROJECTION_ORIGIN if projection is not None else "")
        return LSTM(
            name,
            w_ih,
            w_hh,
            None if bias is None else float32(bias),
            projection=projection,
            return_sequences=True,
            go_backwards=backwards,
            origin=origin.replace("{k}", origin_k),
        )
    if kind == "GRU":
        h = m.hidden_size

        def rzn(a: np.ndarray) -> np.ndarray:
            return float32(np.concatenate([a[g * h : (g + 1) * h] for g in RZN]))

        return GRU(
            name,
            rzn(w_ih),
            rzn(w_hh),
            rzn(param("bias_ih")) if m.bias else None,
            recurrent_bias=rzn(param("bias_hh")) if m.bias else None,
            reset_after=True,
            return_sequences=True,
            go_backwards=backwards,
            origin=GRU_ORIGIN.replace("{k}", origin_k),
        )
    bias = float32(param("bias_ih") + param("bias_hh")) if m.bias else None
    return SimpleRNN(
        name,
        w_ih,
        w_hh,
        bias,
        activation=m.nonlinearity,
        return_sequences=True,
        go_backwards=backwards,
        origin=RNN_ORIGIN.replace("{k}", origin_k),
    )


def _check_against(ir: Model, predict: Any, x: np.ndarray, label: str) -> None:
    from ..reference import forward

    got = forward(ir, x)
    expected = predict(x)
    if got.shape != expected.shape or not np.allclose(
        got, expected, atol=CHECK_TOLERANCE, rtol=CHECK_TOLERANCE
    ):
        hint = ""
        if any(isinstance(l, Bidirectional) for l in ir.layers) and got.ndim == 2:
            hint = (
                " (a bidirectional module's output[:, -1] holds the backward direction "
                "after ONE step; lstmgen takes both directions' final states, i.e. h_n: "
                "torch.cat([h_n[-2], h_n[-1]], dim=-1))"
            )
        raise UnsupportedLayerError(
            f"{label}.forward does not compute the chain of its modules in registration "
            f"order (recurrent -> Linear/activations, output {got.shape} vs forward's "
            f"{expected.shape}){hint}; lstmgen supports forwards that are exactly that chain"
        )


def _module_from_state(torch: Any, state: dict, head: list[str], output: str, path: Path) -> Any:
    prefixes = sorted({k.rsplit(".", 1)[0] for k in state if k.endswith("weight_ih_l0")})
    if len(prefixes) != 1:
        raise ModelError(
            f"{path}: expected exactly one nn.LSTM (keys ending in "
            f"weight_ih_l0), found {len(prefixes)}"
        )
    prefix = prefixes[0] + "." if prefixes[0] != "weight_ih_l0" else ""
    w0 = state[f"{prefix}weight_ih_l0"]
    hidden, d = int(w0.shape[0]) // 4, int(w0.shape[1])
    layers = 1 + max(
        int(k.rsplit("_l", 1)[1])
        for k in state
        if k.startswith(f"{prefix}weight_ih_l") and "reverse" not in k
    )
    if f"{prefix}weight_hr_l0" in state:
        hidden = int(state[f"{prefix}weight_hr_l0"].shape[1])
    has_bias = f"{prefix}bias_ih_l0" in state
    bidirectional = f"{prefix}weight_ih_l0_reverse" in state
    proj = state.get(f"{prefix}weight_hr_l0")
    proj_size = int(proj.shape[0]) if proj is not None else 0
    lstm = torch.nn.LSTM(
        d,
        hidden,
        num_layers=layers,
        bias=has_bias,
        batch_first=True,
        bidirectional=bidirectional,
        proj_size=proj_size,
    )
    try:
        lstm.load_state_dict(
            {
                k[len(prefix) :]: v
                for k, v in state.items()
                if k.startswith(prefix + "weight_") or k.startswith(prefix + "bias_")
            }
        )
    except RuntimeError as exc:
        raise ModelError(
            f"{path}: the LSTM parameters do not fit one nn.LSTM ({str(exc).splitlines()[0]})"
        ) from None
    parts = []
    for item in head:
        key = item.lower()
        if f"{item}.weight" in state:
            w = state[f"{item}.weight"]
            linear = torch.nn.Linear(int(w.shape[1]), int(w.shape[0]), bias=f"{item}.bias" in state)
            linear.load_state_dict(
                {k.split(".")[-1]: v for k, v in state.items() if k.startswith(item + ".")}
            )
            parts.append(linear)
        elif key in (
            "relu",
            "sigmoid",
            "tanh",
            "softsign",
            "softplus",
            "elu",
            "hardsigmoid",
            "softmax",
        ):
            cls = {
                "relu": "ReLU",
                "sigmoid": "Sigmoid",
                "tanh": "Tanh",
                "softsign": "Softsign",
                "softplus": "Softplus",
                "elu": "ELU",
                "hardsigmoid": "Hardsigmoid",
                "softmax": "Softmax",
            }[key]
            parts.append(getattr(torch.nn, cls)(**({"dim": -1} if cls == "Softmax" else {})))
        else:
            raise ModelError(
                f"head item {item!r}: neither a Linear in {path} (no "
                f"'{item}.weight') nor an activation (relu, sigmoid, tanh, "
                "softsign, softplus, elu, hardsigmoid, softmax)"
            )

    class Rebuilt(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = lstm
            self.head = torch.nn.Sequential(*parts)

        def forward(self, x):  # noqa: D401 - the chain the description names
            y, (h_n, _) = self.lstm(x)
            if output == "sequence":
                return self.head(y)
            if bidirectional:  # both directions' final states (h_n), not y[:, -1]
                return self.head(torch.cat([h_n[-2], h_n[-1]], dim=-1))
            return self.head(y[:, -1, :])

    return Rebuilt()
