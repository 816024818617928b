"""A model spec + its weights -> the IR: every layer class is checked against the
mappings first (a Lambda or unknown class is refused by name before any weight is read),
then each layer is mapped in order, with the width, sequence-ness and timesteps of the
data that reaches it."""

from __future__ import annotations

from ...errors import ModelError, UnsupportedLayerError
from ...ir import Model
from . import keras1, recurrent, shaping  # noqa: F401 (they register their mappings)
from .config import ModelSpec
from .layers import CONVERTERS, SUPPORTED, Context
from .masks import MaskState
from .weights import Weights


def check_classes(spec: ModelSpec, where: str) -> None:
    """Refuse the first layer no mapping knows, naming it (before any weight is read)."""
    for layer in spec.all_layers():
        known = layer.class_name in CONVERTERS
        if spec.keras_major == 1 and layer.class_name not in keras1.CLASSES:
            raise UnsupportedLayerError(
                f"layer '{layer.name}' of type {layer.class_name} in a Keras 1 model is not "
                f"supported (refused before reading {where}); Keras 1 layers supported: "
                f"{', '.join(c for c in keras1.CLASSES if c not in ('Sequential', 'Model'))}"
            )
        if not known:
            why = (
                ": its Python code is never deserialised or run"
                if layer.class_name == "Lambda"
                else ""
            )
            raise UnsupportedLayerError(
                f"layer '{layer.name}' of type {layer.class_name} is not supported{why} "
                f"(refused before loading {where}); supported layers: {SUPPORTED}"
            )


def build_ir(spec: ModelSpec, weights: Weights, source: str, where: str) -> Model:
    check_classes(spec, where)
    shape = spec.input_shape
    ids = len(shape) == 2
    first = spec.layers[0].class_name if spec.layers else None
    if ids and first != "Embedding":
        raise UnsupportedLayerError(
            f"model '{spec.name}' takes input of shape {list(shape)} (token ids) but its "
            f"first layer is {first}, not an Embedding; expected (batch, timesteps, features)"
        )
    if not ids and first == "Embedding":
        raise UnsupportedLayerError(
            f"layer '{spec.layers[0].name}' (Embedding) needs token ids of shape "
            f"(batch, timesteps); the model's input is {list(shape)}"
        )
    steps = shape[1]
    ctx = Context(
        weights,
        spec.keras_major,
        width=1 if ids else int(shape[2] or 0),
        sequence=True,
        steps=steps,
    )
    layers = []
    mask = MaskState()
    for layer in spec.layers:
        mask.before(layer)
        ctx.masked = mask.masked
        converted = CONVERTERS[layer.class_name](layer, ctx)
        mask.after(
            layer,
            converted,
            converted.returns_sequence(ctx.sequence) if converted else ctx.sequence,
        )
        if converted is None:
            continue
        layers.append(converted)
        sequence = converted.returns_sequence(ctx.sequence)
        if not sequence:
            ctx.steps = None
        elif not ctx.sequence:  # a vector became a sequence (RepeatVector)
            ctx.steps = converted.output_timesteps(1)
        elif ctx.steps:
            ctx.steps = converted.output_timesteps(ctx.steps)
        ctx.sequence = sequence
        ctx.width = converted.output_size
    if not layers:
        raise ModelError(f"model '{spec.name}' has no layer lstmgen can compile")
    ctx.notes.extend(mask.notes(ctx.sequence))
    return Model(
        input_size=1 if ids else int(shape[2] or 0),
        layers=layers,
        name=spec.name,
        source=source,
        timesteps=int(steps) if steps else None,
        notes=ctx.notes,
    ).validate()
