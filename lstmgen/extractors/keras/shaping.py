"""Keras layers that shape or normalize the data around the recurrent ones -> IR:
Masking, Normalization, LayerNormalization, BatchNormalization (inference: moving
statistics), Embedding (token ids in), Conv1D, Max/AveragePooling1D, Flatten/Reshape,
RepeatVector, GlobalAverage/MaxPooling1D, Cropping1D."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...ir import (
    BatchNorm,
    Conv1D,
    Embedding,
    Flatten,
    GlobalPool,
    LayerNorm,
    Masking,
    Normalize,
    Pool1D,
    RepeatVector,
    TimeSlice,
    float32,
)
from ...ir.activations import VECTOR_ACTIVATIONS
from .config import MAX_DIM, LayerSpec
from .layers import (
    Context,
    activation,
    check_dtype_policy,
    converts,
    count,
    flag,
    last_axis,
    setting,
    unsupported,
)
from .weights import Role


def _number(spec: LayerSpec, key: str, default: float) -> float:
    value = spec.config.get(key, default)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not np.isfinite(value):
        raise unsupported(spec, f"{key}={value!r} is not a number")
    return float(value)


def _channels_last(spec: LayerSpec) -> None:
    if setting(spec, "data_format", "channels_last") != "channels_last":
        raise unsupported(spec, "only channels_last")


def _sequence(spec: LayerSpec, ctx: Context) -> None:
    if not ctx.sequence:
        raise unsupported(spec, f"{spec.class_name} needs a sequence, it gets one vector")


@converts("Masking")
def masking(spec: LayerSpec, ctx: Context) -> Masking:
    # Keras compares float32 inputs with the mask value as a float32 (0.1 is 0.100000001)
    return Masking(
        spec.name,
        ctx.width,
        float(np.float32(_number(spec, "mask_value", 0.0))),
        origin="Keras Masking: steps whose features all equal mask_value are "
        "zeroed and skipped by the recurrent layers",
    )


@converts("Normalization")
def normalization(spec: LayerSpec, ctx: Context) -> Normalize:
    if flag(spec, "invert", False):
        raise unsupported(spec, "invert=True")
    if not last_axis(spec, ctx):
        raise unsupported(spec, f"axis {spec.config.get('axis')!r}; only the feature axis")
    if spec.config.get("mean") is not None:
        mean = _values(spec, "mean")
        variance = _values(spec, "variance")
    else:
        stats = ctx.arrays(spec, [("mean", None), ("variance", None), ("count", None)])
        mean = np.asarray(stats["mean"], np.float32).reshape(-1)
        variance = np.asarray(stats["variance"], np.float32).reshape(-1)
    if mean.size == 1:
        mean = np.full(ctx.width, mean[0], np.float32)
    if variance.size == 1:
        variance = np.full(ctx.width, variance[0], np.float32)
    if mean.size != ctx.width or variance.size != ctx.width:
        raise unsupported(
            spec, f"normalizes an axis of {mean.size} values, not the {ctx.width} features"
        )
    std = np.maximum(np.sqrt(variance), np.float32(1e-7))  # Keras: max(sqrt(var), epsilon)
    return Normalize(
        spec.name,
        float32(mean),
        float32(std),
        origin="Keras Normalization: (x - mean) / max(sqrt(variance), 1e-7)",
    )


def _values(spec: LayerSpec, key: str) -> np.ndarray:
    value = spec.config.get(key)
    try:
        array = np.asarray(value, np.float32).reshape(-1)
    except (TypeError, ValueError):
        raise unsupported(spec, f"{key} is not a list of numbers") from None
    if array.size == 0 or array.size > MAX_DIM:
        raise unsupported(spec, f"{key} holds {array.size} values")
    return array


@converts("LayerNormalization")
def layer_normalization(spec: LayerSpec, ctx: Context) -> LayerNorm:
    if not last_axis(spec, ctx) or flag(spec, "rms_scaling", False):
        raise unsupported(spec, "only the feature axis, without rms_scaling")
    scale, center = flag(spec, "scale", True), flag(spec, "center", True)
    roles: list[Role] = [("gamma", (ctx.width,))] if scale else []
    roles += [("beta", (ctx.width,))] if center else []
    weights = ctx.arrays(spec, roles)
    return LayerNorm(
        spec.name,
        ctx.width,
        float32(weights["gamma"]) if scale else None,
        float32(weights["beta"]) if center else None,
        epsilon=_number(spec, "epsilon", 1e-3),
        origin="Keras LayerNormalization over the features",
    )


@converts("BatchNormalization")
def batch_normalization(spec: LayerSpec, ctx: Context) -> BatchNorm:
    check_dtype_policy(spec)
    if not last_axis(spec, ctx):
        raise unsupported(spec, "only the feature (last) axis")
    if flag(spec, "renorm", False):
        raise unsupported(spec, "renorm=True")
    scale, center = flag(spec, "scale", True), flag(spec, "center", True)
    shape = (ctx.width,)
    roles: list[Role] = [("gamma", shape)] if scale else []
    roles += [("beta", shape)] if center else []
    roles += [("moving_mean", shape), ("moving_variance", shape)]
    weights = ctx.arrays(spec, roles)
    return BatchNorm(
        spec.name,
        float32(weights["moving_mean"]),
        float32(weights["moving_variance"]),
        float32(weights["gamma"]) if scale else None,
        float32(weights["beta"]) if center else None,
        epsilon=_number(spec, "epsilon", 1e-3),
        origin="Keras BatchNormalization at inference: moving_mean, moving_variance, "
        "gamma (scale), beta (center), epsilon",
    )


@converts("Embedding")
def embedding(spec: LayerSpec, ctx: Context) -> Embedding:
    check_dtype_policy(spec)
    vocabulary, size = count(spec, "input_dim"), count(spec, "output_dim")
    mask_zero = flag(spec, "mask_zero", False)
    weights = ctx.arrays(spec, [("embeddings", (vocabulary, size))])
    return Embedding(
        spec.name,
        float32(weights["embeddings"]),
        mask_zero=mask_zero,
        origin="Keras Embedding: embeddings (vocabulary, E) as is; the model's input is "
        "token ids" + ("; id 0 masks its timestep (mask_zero)" if mask_zero else ""),
    )


@converts("Conv1D")
def conv1d(spec: LayerSpec, ctx: Context) -> Conv1D:
    check_dtype_policy(spec)
    _sequence(spec, ctx)
    _channels_last(spec)
    if count(spec, "groups", 1) != 1:
        raise unsupported(spec, "only groups=1, channels_last")
    filters, size = count(spec, "filters"), count(spec, "kernel_size")
    act = activation(spec, ctx, "activation")
    if act in VECTOR_ACTIVATIONS:
        raise unsupported(spec, f"{act} activation")
    padding = setting(spec, "padding", "valid")
    if padding not in ("valid", "same", "causal"):
        raise unsupported(spec, f"padding={padding!r}")
    roles: list[Role] = [("kernel", (size, ctx.width, filters))]
    if flag(spec, "use_bias", True):
        roles.append(("bias", (filters,)))
    weights = ctx.arrays(spec, roles)
    return Conv1D(
        spec.name,
        float32(np.transpose(np.asarray(weights["kernel"], np.float32), (2, 0, 1))),
        float32(weights["bias"]) if "bias" in weights else None,
        stride=count(spec, "strides", 1),
        dilation=count(spec, "dilation_rate", 1),
        padding=padding,
        activation=act,
        origin="Keras Conv1D: kernel (K, D, F) -> weights (F, K, D)",
    )


@converts("MaxPooling1D", "AveragePooling1D")
def pool1d(spec: LayerSpec, ctx: Context) -> Pool1D:
    _sequence(spec, ctx)
    _channels_last(spec)
    size = count(spec, "pool_size", 2)
    stride = count(spec, "strides", size) if spec.config.get("strides") is not None else size
    padding = setting(spec, "padding", "valid")
    if padding not in ("valid", "same"):
        raise unsupported(spec, f"padding={padding!r}")
    kind = "max" if spec.class_name == "MaxPooling1D" else "avg"
    return Pool1D(
        spec.name, ctx.width, kind, size, stride, padding, origin=f"Keras {spec.class_name}"
    )


@converts("Flatten", "Reshape")
def flatten(spec: LayerSpec, ctx: Context) -> Flatten | None:
    _channels_last(spec)
    if not ctx.sequence:
        target = spec.config.get("target_shape")
        if spec.class_name == "Reshape" and _shape_of(target) != (ctx.width,):
            raise unsupported(spec, f"Reshape({target!r}) of a vector of {ctx.width}")
        ctx.notes.append(f"dropped '{spec.name}' ({spec.class_name}): identity on a vector")
        return None
    if not ctx.steps:
        raise unsupported(spec, f"{spec.class_name} needs a fixed number of timesteps in the Input")
    size = ctx.steps * ctx.width
    if spec.class_name == "Reshape" and _shape_of(spec.config.get("target_shape")) != (size,):
        raise unsupported(spec, f"only Reshape(({size},)) (a flatten)")
    return Flatten(
        spec.name,
        ctx.steps,
        ctx.width,
        origin=f"Keras {spec.class_name}: [T={ctx.steps}][{ctx.width}] -> [{size}]",
    )


def _shape_of(value: Any) -> tuple | None:
    if isinstance(value, dict) and value.get("class_name") == "__tuple__":
        value = value.get("config", {}).get("value")
    return tuple(value) if isinstance(value, (list, tuple)) else None


@converts("RepeatVector")
def repeat_vector(spec: LayerSpec, ctx: Context) -> RepeatVector:
    return RepeatVector(spec.name, ctx.width, count(spec, "n"), origin="Keras RepeatVector")


@converts("GlobalAveragePooling1D", "GlobalMaxPooling1D")
def global_pool(spec: LayerSpec, ctx: Context) -> GlobalPool:
    _sequence(spec, ctx)
    _channels_last(spec)
    if flag(spec, "keepdims", False):
        raise unsupported(spec, "only channels_last without keepdims")
    kind = "avg" if "Average" in spec.class_name else "max"
    return GlobalPool(spec.name, ctx.width, kind, origin=f"Keras {spec.class_name}")


@converts("Cropping1D")
def cropping(spec: LayerSpec, ctx: Context) -> TimeSlice:
    _sequence(spec, ctx)
    value = spec.config.get("cropping", (1, 1))
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
    ):
        raise unsupported(spec, f"cropping={value!r} (expected two counts >= 0)")
    start, end = (int(v) for v in value)
    return TimeSlice(
        spec.name,
        ctx.width,
        start,
        -end if end else None,
        origin=f"Keras Cropping1D(({start}, {end})): timesteps [{start}:{-end if end else ''}]",
    )
