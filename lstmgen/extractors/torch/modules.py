"""The fallback where torch.export cannot capture forward: the module's leaf modules read in
registration order (recurrent modules, then nn.Linear and activation modules).

Whether forward returns the last step or the sequence is taken from the example's output;
the result is checked against forward like any other reading, so a forward wired
differently is refused, not guessed. The IR's notes say that this reading was used and why.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import UnsupportedLayerError
from ...ir import Activation, Dense, Layer, float32
from .recurrent import final_state, stacked_layers
from .values import Axis

SUPPORTED = (
    "nn.LSTM, nn.GRU, nn.RNN (tanh/relu), then nn.Linear, nn.ReLU, nn.Sigmoid, nn.Tanh, "
    "nn.Softsign, nn.Softplus, nn.ELU, nn.Hardsigmoid, nn.Softmax(dim=-1), nn.Identity, "
    "nn.Dropout"
)
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
NO_OPS = ("Dropout", "Identity", "Sequential", "ModuleList", "ModuleDict")


def recurrent_modules(torch: Any) -> tuple:
    return (torch.nn.LSTM, torch.nn.GRU, torch.nn.RNN)


def module_weights(m: Any) -> list[list[dict[str, np.ndarray]]]:
    """Per stacked layer and direction, an nn.LSTM/GRU/RNN's parameters by PyTorch name."""
    names = ["weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr"]
    directions = ["", "_reverse"] if m.bidirectional else [""]
    return [
        [
            {
                name: getattr(m, f"{name}_l{k}{suffix}").detach().cpu().numpy()
                for name in names
                if hasattr(m, f"{name}_l{k}{suffix}")
            }
            for suffix in directions
        ]
        for k in range(m.num_layers)
    ]


def read_leaves(
    torch: Any, module: Any, example: Any
) -> tuple[list[Layer], tuple[Axis, ...], tuple[Axis, ...]]:
    """IR layers from the leaf modules in registration order, the input axes and the
    output axes (see values.py)."""
    leaves = [
        (name or type(m).__name__.lower(), m)
        for name, m in module.named_modules()
        if not list(m.children())
    ]
    first = next(m for _, m in leaves if isinstance(m, recurrent_modules(torch)))
    input_axes: tuple[Axis, ...] = ("B", "T", "F") if first.batch_first else ("T", "B", "F")
    with torch.no_grad():
        out = module(example)
    if not isinstance(out, torch.Tensor):
        raise UnsupportedLayerError(
            f"{type(module).__name__}.forward returns a {type(out).__name__}; lstmgen needs "
            "one output tensor"
        )
    sequence = out.dim() == 3
    layers: list[Layer] = []
    width = 0
    for name, m in leaves:
        kind = type(m).__name__
        if isinstance(m, recurrent_modules(torch)):
            if layers and not layers[-1].recurrent:
                raise UnsupportedLayerError(f"{name} (nn.{kind}) after a non-recurrent layer")
            nonlinearity = getattr(m, "nonlinearity", "tanh")
            layers.extend(stacked_layers(kind, module_weights(m), name, nonlinearity))
            width = layers[-1].output_size
        elif not layers:
            raise UnsupportedLayerError(f"{name} ({kind}) comes before the first recurrent module")
        elif isinstance(m, torch.nn.Linear):
            bias = None if m.bias is None else float32(m.bias.detach().cpu().numpy())
            layers.append(
                Dense(
                    name,
                    float32(m.weight.detach().cpu().numpy()),
                    bias,
                    origin="PyTorch nn.Linear: weight (O, I) and bias as is",
                )
            )
            width = m.out_features
        elif kind in NO_OPS:
            continue
        elif kind in ACTIVATION_MODULES and _plain_activation(m, kind):
            layers.append(
                Activation(name, width, ACTIVATION_MODULES[kind], origin=f"PyTorch nn.{kind}")
            )
        else:
            raise UnsupportedLayerError(f"{name} of type {kind}; supported: {SUPPORTED}")
    if not sequence:
        last = max(k for k, layer in enumerate(layers) if layer.recurrent)
        layers[last] = final_state(layers[last], None)
    output_axes = input_axes if sequence else ("B", "F")
    return layers, input_axes, output_axes


def _plain_activation(m: Any, kind: str) -> bool:
    if kind == "Softmax":
        return m.dim in (-1, 1, 2)
    if kind == "Softplus":
        return float(m.beta) == 1.0
    if kind == "ELU":
        return float(m.alpha) == 1.0
    return True
