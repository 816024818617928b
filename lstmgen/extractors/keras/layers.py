"""Keras layer -> IR layer mappings: a registry keyed by Keras class name, the context a
mapping sees (input width, whether a sequence arrives, its timesteps, the weights), the
activation identities (Keras <= 2 `hard_sigmoid` is 0.2x + 0.5, Keras 3's is
relu6(x + 3) / 6), and the mappings of Dense, TimeDistributed(Dense), Activation, ReLU,
Softmax and the layers that are identities at inference. Recurrent layers live in
`recurrent.py`, the others in `shaping.py`; both register here.

A mapping reads the layer's config (Keras 2/3 vocabulary; `keras1` translated older
ones), asks `ctx.arrays` for its weights with the shapes the config implies, and returns
an IR layer, or None for a layer that does nothing at inference.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from ...errors import UnsupportedLayerError
from ...ir import Activation, Dense, Layer, float32
from .config import MAX_DIM, LayerSpec
from .weights import Role, Weights

SUPPORTED = (
    "InputLayer, LSTM, GRU, SimpleRNN, Bidirectional (concat/sum/mul/ave), Dense, "
    "Activation, ReLU, Softmax, TimeDistributed(Dense), Masking (first), "
    "Normalization, LayerNormalization, Flatten/Reshape after a sequence, Conv1D, "
    "MaxPooling1D, AveragePooling1D, Dropout, SpatialDropout1D, GaussianNoise, "
    "GaussianDropout, AlphaDropout, BatchNormalization, Embedding (first), RepeatVector, "
    "GlobalAveragePooling1D, GlobalMaxPooling1D, Cropping1D"
)
NO_OP_LAYERS = ("Dropout", "SpatialDropout1D", "GaussianNoise", "GaussianDropout", "AlphaDropout")
#: Keras activation name -> IR activation name (`hard_sigmoid` depends on the version).
ACTIVATIONS = {
    "linear": "linear",
    "relu": "relu",
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "softsign": "softsign",
    "softplus": "softplus",
    "elu": "elu",
    "hard_sigmoid": "hard_sigmoid_keras3",
    "softmax": "softmax",
    "log_softmax": "log_softmax",  # Keras 3
}


@dataclass
class Context:
    """What a mapping knows about the data arriving at its layer."""

    weights: Weights
    keras_major: int
    width: int  # features per timestep (or of the vector)
    sequence: bool  # a sequence arrives (else one vector)
    steps: int | None  # its timesteps, when fixed
    notes: list[str] = field(default_factory=list)
    masked: bool = False  # a mask reaches this layer (see masks.py)

    def arrays(self, spec: LayerSpec, roles: list[Role]) -> dict[str, np.ndarray]:
        return self.weights.get(spec, roles)


Converter = Callable[[LayerSpec, Context], "Layer | None"]
CONVERTERS: dict[str, Converter] = {}
F = TypeVar("F", bound=Callable[..., Any])


def converts(*class_names: str) -> Callable[[F], F]:
    """Register a mapping for the Keras classes `class_names`."""

    def register(function: F) -> F:
        for class_name in class_names:
            CONVERTERS[class_name] = function
        return function

    return register


# ---- helpers for mappings -------------------------------------------------------------
def unsupported(spec: LayerSpec, why: str = "") -> UnsupportedLayerError:
    detail = f": {why}" if why else ""
    return UnsupportedLayerError(
        f"layer '{spec.name}' of type {spec.class_name} is not supported{detail}; "
        f"supported layers: {SUPPORTED}"
    )


def setting(spec: LayerSpec, key: str, default: Any = None) -> Any:
    value = spec.config.get(key, default)
    return default if value is None and default is not None else value


def flag(spec: LayerSpec, key: str, default: bool) -> bool:
    value = spec.config.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise unsupported(spec, f"{key}={value!r} is not true or false")
    return value


def count(spec: LayerSpec, key: str, default: Any = None, minimum: int = 1) -> int:
    """A size from the config (units, filters, n, ...): an integer in [minimum, MAX_DIM];
    a one-element list (Keras writes kernel_size=[3]) counts as its element."""
    value = spec.config.get(key, default)
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= MAX_DIM:
        raise unsupported(spec, f"{key}={value!r} (expected an integer {minimum}..{MAX_DIM})")
    return value


def last_axis(spec: LayerSpec, ctx: Context, key: str = "axis") -> bool:
    """True when the config's axis is the feature axis (-1, or 2 of a sequence / 1 of a
    vector, also as a one-element list)."""
    axis = spec.config.get(key, -1)
    if isinstance(axis, (list, tuple)) and len(axis) == 1:
        axis = axis[0]
    return axis in (-1, 2 if ctx.sequence else 1)


def activation(spec: LayerSpec, ctx: Context, key: str, default: str = "linear") -> str:
    """The IR name of a layer's activation (a name, or Keras 3's serialized function)."""
    value = spec.config.get(key, default)
    if value is None:
        value = "linear"
    if isinstance(value, dict) and value.get("class_name") == "function":
        value = value.get("config")
    if isinstance(value, str) and value in ACTIVATIONS:
        if value == "hard_sigmoid" and ctx.keras_major <= 2:
            return "hard_sigmoid_0.2"  # Keras 1/2: clip(0.2x + 0.5, 0, 1)
        return ACTIVATIONS[value]
    label = value if isinstance(value, str) else type(value).__name__
    raise UnsupportedLayerError(
        f"layer '{spec.name}' ({spec.class_name}): {key} '{label}' is not supported; "
        f"supported: {', '.join(ACTIVATIONS)}"
    )


def check_dtype_policy(spec: LayerSpec) -> None:
    """Refuse quantized layers (Keras 3 int8/int4/float8 policies)."""
    policy = spec.config.get("dtype")
    name = policy
    if isinstance(policy, dict):
        inner = policy.get("config")
        name = inner.get("name") if isinstance(inner, dict) else None
        if "Quantized" in str(policy.get("class_name")):
            name = name or "quantized"
    if isinstance(name, str) and name.startswith(("int", "float8", "quantized", "gptq")):
        raise unsupported(spec, f"quantized weights (dtype policy '{name}')")
    for key in ("lora_rank", "quantization_config"):
        if spec.config.get(key):
            raise unsupported(spec, f"{key}={spec.config[key]!r}")


# ---- Dense and activations --------------------------------------------------------------
@converts("Dense")
def dense(spec: LayerSpec, ctx: Context, name: str | None = None) -> Dense:
    check_dtype_policy(spec)
    units = count(spec, "units")
    act = activation(spec, ctx, "activation")
    roles: list[Role] = [("kernel", (ctx.width, units))]
    if flag(spec, "use_bias", True):
        roles.append(("bias", (units,)))
    weights = ctx.arrays(spec, roles)
    return Dense(
        name=name or spec.name,
        weights=float32(weights["kernel"].T),
        bias=float32(weights["bias"]) if "bias" in weights else None,
        activation=act,
        origin="Keras Dense: kernel (I, O) -> weights = kernel.T; bias as is",
    )


@converts("TimeDistributed")
def time_distributed(spec: LayerSpec, ctx: Context) -> Dense:
    inner = spec.inner[0]
    if inner.class_name != "Dense":
        raise unsupported(spec, f"TimeDistributed wraps {inner.class_name}, only Dense")
    if not ctx.sequence:
        raise unsupported(spec, "TimeDistributed needs a sequence")
    return dense(inner, ctx, name=spec.name)


@converts("Activation")
def activation_layer(spec: LayerSpec, ctx: Context) -> Activation:
    return Activation(
        spec.name, ctx.width, activation(spec, ctx, "activation"), origin="Keras Activation"
    )


@converts("ReLU")
def relu(spec: LayerSpec, ctx: Context) -> Activation:
    slope = setting(spec, "negative_slope", 0.0)
    threshold = setting(spec, "threshold", 0.0)
    if spec.config.get("max_value") is not None or slope != 0 or threshold != 0:
        raise unsupported(spec, "only the plain ReLU (no max_value, negative_slope, threshold)")
    return Activation(spec.name, ctx.width, "relu", origin="Keras ReLU")


@converts("Softmax")
def softmax(spec: LayerSpec, ctx: Context) -> Activation:
    if not last_axis(spec, ctx):
        raise unsupported(spec, f"softmax over axis {spec.config.get('axis')}; only the last axis")
    return Activation(spec.name, ctx.width, "softmax", origin="Keras Softmax")


@converts(*NO_OP_LAYERS)
def no_op(spec: LayerSpec, ctx: Context) -> None:
    ctx.notes.append(f"dropped '{spec.name}' ({spec.class_name}): identity at inference")
    return None
