"""The activation functions of the IR: each name, its exact definition and its float64
reference.

Names are explicit: no name means two different functions (Keras 2's `hard_sigmoid` is
`hard_sigmoid_0.2`, Keras 3's is `hard_sigmoid_keras3`). Elementwise activations can sit
anywhere (gates, cells, Dense, Conv1D, standalone); vector activations work over the last
axis of a whole vector and exist only on Dense and Activation layers.

Adding an activation: an entry here (definition and reference), its code in one template
per target (`templates/<target>/activations*`), the front ends that produce it, a test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ActivationSpec:
    """One activation: its IR name, the exact definition, and the float64 reference."""

    name: str
    definition: str
    elementwise: bool
    reference: Callable[[np.ndarray], np.ndarray]


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


def _log_softmax(x: np.ndarray) -> np.ndarray:
    shifted = x - np.max(x, axis=-1, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


_SPECS = [
    ActivationSpec("linear", "x", True, lambda x: x),
    ActivationSpec("relu", "max(x, 0)", True, lambda x: np.maximum(x, 0.0)),
    # the overflow-free logistic
    ActivationSpec("sigmoid", "1 / (1 + exp(-x))", True, lambda x: 0.5 * (1.0 + np.tanh(0.5 * x))),
    ActivationSpec("tanh", "tanh(x)", True, np.tanh),
    ActivationSpec("softsign", "x / (1 + |x|)", True, lambda x: x / (1.0 + np.abs(x))),
    ActivationSpec("softplus", "log(1 + exp(x))", True, lambda x: np.logaddexp(0.0, x)),
    ActivationSpec(
        "elu",
        "x if x > 0 else exp(x) - 1",
        True,
        lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
    ),
    ActivationSpec(
        "hard_sigmoid_keras3",
        "min(max(x + 3, 0), 6) / 6  (Keras 3, PyTorch Hardsigmoid)",
        True,
        lambda x: np.clip(x + 3.0, 0.0, 6.0) / 6.0,
    ),
    ActivationSpec(
        "hard_sigmoid_0.2",
        "min(max(0.2 x + 0.5, 0), 1)  (Keras 1/2, ONNX default, MATLAB)",
        True,
        lambda x: np.clip(0.2 * x + 0.5, 0.0, 1.0),
    ),
    ActivationSpec("softmax", "exp(x - max x) / sum(exp(x - max x))", False, _softmax),
    ActivationSpec("log_softmax", "x - max x - log(sum(exp(x - max x)))", False, _log_softmax),
]

ACTIVATIONS: dict[str, ActivationSpec] = {spec.name: spec for spec in _SPECS}
#: Elementwise activations, with their exact definition (float math on x).
ELEMENTWISE_ACTIVATIONS: dict[str, str] = {s.name: s.definition for s in _SPECS if s.elementwise}
#: Activations over a whole vector (only for Dense / Activation layers).
VECTOR_ACTIVATIONS: dict[str, str] = {s.name: s.definition for s in _SPECS if not s.elementwise}
ALL_ACTIVATIONS: dict[str, str] = {**ELEMENTWISE_ACTIVATIONS, **VECTOR_ACTIVATIONS}


def activate(name: str, x: np.ndarray) -> np.ndarray:
    """Apply the activation called `name` (an IR name) over the last axis of `x`, in float64."""
    spec = ACTIVATIONS.get(name)
    if spec is None:
        raise ValueError(f"unknown activation {name!r}")
    return spec.reference(np.asarray(x, np.float64))
