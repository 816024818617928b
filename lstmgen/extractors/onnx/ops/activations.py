"""Elementwise activations, Softmax and LogSoftmax (over the features) on the data path:
folded into the Dense layer just before them, else an IR Activation layer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ....ir import Activation
from ..registry import data_op
from ..values import Data, close

if TYPE_CHECKING:
    from ..walk import Walk

#: Elementwise ONNX operators -> IR activation names (parameterised ones are checked).
SIMPLE_ACTIVATIONS = {
    "Relu": "relu",
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "Softsign": "softsign",
    "Softplus": "softplus",
}


def _elu(walk: Walk, d: Data, where: str, attrs: dict) -> str:
    if not close(float(attrs.get("alpha", 1.0)), 1.0):
        raise walk.fail(where, f"Elu with alpha={attrs['alpha']:g}; only alpha=1")
    return "elu"


def _hard_sigmoid(walk: Walk, d: Data, where: str, attrs: dict) -> str:
    a, b = float(attrs.get("alpha", 0.2)), float(attrs.get("beta", 0.5))
    if close(a, 0.2) and close(b, 0.5):
        return "hard_sigmoid_0.2"
    if close(a, 1.0 / 6.0) and close(b, 0.5):
        return "hard_sigmoid_keras3"
    raise walk.fail(
        where,
        f"HardSigmoid(alpha={a:g}, beta={b:g}); supported: alpha "
        "0.2, beta 0.5 or alpha 1/6, beta 0.5",
    )


def _over_features(walk: Walk, d: Data, where: str, attrs: dict, name: str) -> str:
    """Softmax / LogSoftmax: only over the feature axis (before opset 13 the input is
    coerced to 2-D at `axis`, default 1: every axis from `axis` on must be the features or
    a singleton)."""
    rank = len(d.axes)
    axis = int(attrs.get("axis", -1 if walk.opset >= 13 else 1))
    axis = axis + rank if axis < 0 else axis
    over = d.axes[axis:] if walk.opset < 13 else [d.axes[axis]]
    others = [a for a in over if a.role != "F" and not walk.is_singleton(a)]
    if others or (walk.width != 1 and not any(a.role == "F" for a in over)):
        raise walk.fail(where, f"{name} over axis {axis}, which is not the feature axis")
    return name


def _softmax(walk: Walk, d: Data, where: str, attrs: dict) -> str:
    return _over_features(walk, d, where, attrs, "softmax")


def _log_softmax(walk: Walk, d: Data, where: str, attrs: dict) -> str:
    return _over_features(walk, d, where, attrs, "log_softmax")


#: Parameterised or axis-bound activations: op_type -> the IR name after the checks.
CHECKED_ACTIVATIONS = {
    "Elu": _elu,
    "HardSigmoid": _hard_sigmoid,
    "Softmax": _softmax,
    "LogSoftmax": _log_softmax,
}


@data_op(*SIMPLE_ACTIVATIONS, *CHECKED_ACTIVATIONS)
def activation(walk: Walk, index: int, node: Any, where: str, attrs: dict, inputs: list) -> None:
    d = walk.data_input(node, inputs, where)
    op = node.op_type
    if op in SIMPLE_ACTIVATIONS:
        act = SIMPLE_ACTIVATIONS[op]
    else:
        act = CHECKED_ACTIVATIONS[op](walk, d, where, attrs)
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
            Activation(
                walk.unique_name(node, index), int(walk.width or 0), act, origin=f"ONNX {op}"
            )
        )
        walk.pending = None
    walk.assign(node.output[0], Data(list(d.axes), d.flipped), where)
