"""Keras 3 extractor: `.keras` files and live `keras.Model`s into the IR.

Everything lstmgen knows about Keras lives here: class names, weight layouts (kernel
D x 4H with gate columns i, f, c, o), activation identities (Keras 3 `hard_sigmoid` is
relu6(x + 3) / 6), and which layers are inference no-ops. Files are loaded with
`safe_mode=True`, so a Lambda layer's code is never deserialised or run.
"""

from __future__ import annotations

import contextvars
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MissingDependencyError, ModelError, UnsupportedLayerError
from ..ir import (
    GRU,
    LSTM,
    Activation,
    BatchNorm,
    Bidirectional,
    Conv1D,
    Dense,
    Embedding,
    Flatten,
    GlobalPool,
    Layer,
    LayerNorm,
    Masking,
    Model,
    Normalize,
    Pool1D,
    RepeatVector,
    SimpleRNN,
    TimeSlice,
    float32,
)
from . import Loaded

SUPPORTED = (
    "InputLayer, LSTM, GRU, SimpleRNN, Bidirectional (concat/sum/mul/ave), Dense, "
    "Activation, ReLU, Softmax, TimeDistributed(Dense), Masking (first), "
    "Normalization, LayerNormalization, Flatten/Reshape after a sequence, Conv1D, "
    "MaxPooling1D, AveragePooling1D, Dropout, SpatialDropout1D, GaussianNoise, "
    "GaussianDropout, AlphaDropout, BatchNormalization, Embedding (first), RepeatVector, "
    "GlobalAveragePooling1D, GlobalMaxPooling1D, Cropping1D"
)
#: IR layer kind -> the Keras layers that become it (for the README's support table).
PRODUCES = {
    "lstm": "LSTM",
    "gru": "GRU",
    "simple_rnn": "SimpleRNN",
    "bidirectional": "Bidirectional",
    "dense": "Dense, TimeDistributed(Dense)",
    "activation": "Activation, ReLU, Softmax",
    "masking": "Masking",
    "normalize": "Normalization",
    "layer_norm": "LayerNormalization",
    "flatten": "Flatten, Reshape",
    "conv1d": "Conv1D",
    "pool1d": "MaxPooling1D, AveragePooling1D",
    "batch_norm": "BatchNormalization",
    "embedding": "Embedding",
    "repeat_vector": "RepeatVector",
    "global_pool": "GlobalAveragePooling1D, GlobalMaxPooling1D",
    "time_slice": "Cropping1D",
}
NO_OP_LAYERS = {"Dropout", "SpatialDropout1D", "GaussianNoise", "GaussianDropout", "AlphaDropout"}
# Keras activation name -> IR activation name (Keras 3 semantics).
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
}
LSTM_ORIGIN = (
    "Keras LSTM: kernel (D, 4H) columns i,f,c,o -> input_weights = kernel.T "
    "(rows i,f,g,o); recurrent_kernel (H, 4H) -> recurrent_weights = "
    "recurrent_kernel.T; bias (4H,) as is; recurrent_activation -> gate, "
    "activation -> cell and output"
)
GRU_ORIGIN = (
    "Keras GRU: kernel (D, 3H) columns z,r,h -> input_weights = kernel.T (rows "
    "z,r,n); recurrent_kernel (H, 3H) -> recurrent_weights = recurrent_kernel.T; "
    "bias (2, 3H) with reset_after -> bias = bias[0], recurrent_bias = bias[1] "
    "(without: bias (3H,)); recurrent_activation -> gate, activation -> cell"
)
SIMPLE_RNN_ORIGIN = (
    "Keras SimpleRNN: kernel (D, H) -> input_weights = kernel.T; "
    "recurrent_kernel (H, H) -> recurrent_weights = recurrent_kernel.T"
)


def import_keras() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import keras  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            "the Keras extractor needs TensorFlow/Keras 3: pip install 'lstmgen[keras]' "
            "(or pip install tensorflow-cpu)"
        ) from None
    if int(keras.__version__.split(".")[0]) < 3:
        raise MissingDependencyError(
            f"Keras {keras.__version__} found; lstmgen reads Keras 3 "
            "models (pip install 'tensorflow-cpu>=2.16')"
        )
    return keras


# True while extracting a model saved by Keras <= 2, whose 'hard_sigmoid' is 0.2x + 0.5.
_KERAS2_SEMANTICS = contextvars.ContextVar("keras2_semantics", default=False)
LEGACY_CLASSES = {
    "Sequential",
    "Functional",
    "Model",
    "InputLayer",
    "LSTM",
    "GRU",
    "SimpleRNN",
    "Bidirectional",
    "Dense",
    "Activation",
    "ReLU",
    "Softmax",
    "TimeDistributed",
    "Masking",
    "Normalization",
    "LayerNormalization",
    "Flatten",
    "Reshape",
    "BatchNormalization",
    "Embedding",
    "RepeatVector",
    "GlobalAveragePooling1D",
    "GlobalMaxPooling1D",
    "Cropping1D",
    "Conv1D",
    "MaxPooling1D",
    "AveragePooling1D",
    *NO_OP_LAYERS,
}


def open_file(path: Path) -> Loaded:
    keras = import_keras()
    legacy_version = None
    if path.suffix.lower() in (".h5", ".hdf5"):
        legacy_version = _check_legacy_h5(path)
    try:
        if legacy_version is None:
            model = keras.saving.load_model(str(path), compile=False, safe_mode=True)
        else:
            model = _load_legacy_h5(keras, path)
    except Exception as exc:  # Keras raises many types for bad or unsafe files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path}: Keras could not load it safely: {first}") from None
    if legacy_version is None or int(legacy_version.split(".")[0]) >= 3:
        return _loaded(model, f"Keras {keras.__version__}, file {path.name}")
    token = _KERAS2_SEMANTICS.set(True)
    try:
        loaded = _loaded(model, f"Keras {legacy_version} (HDF5), file {path.name}")
    finally:
        _KERAS2_SEMANTICS.reset(token)
    if _uses_hard_sigmoid(loaded.ir):
        # Keras 3 would run this file with its own hard_sigmoid, relu6(x + 3) / 6: its
        # predict is not the model that was trained, so it cannot be the oracle.
        return Loaded(loaded.ir, None, "")
    return loaded


def _check_legacy_h5(path: Path) -> str:
    """The Keras version that wrote an HDF5 model; refuse layers lstmgen cannot compile
    before Keras deserialises anything (a Lambda's bytecode is never unmarshalled)."""
    try:
        import h5py

        with h5py.File(path, "r") as fh:
            version = fh.attrs.get("keras_version", b"")
            config = fh.attrs.get("model_config")
    except Exception as exc:  # h5py raises OSError and others for broken files
        raise ModelError(f"{path}: not a readable HDF5 Keras model ({exc})") from None
    version = version.decode() if isinstance(version, bytes) else str(version)
    if config is None:
        raise ModelError(f"{path}: no model_config (weights-only HDF5 files cannot be compiled)")
    config = config.decode() if isinstance(config, bytes) else str(config)
    for class_name, name in _layer_classes(json.loads(config)):
        if class_name not in LEGACY_CLASSES:
            raise UnsupportedLayerError(
                f"layer '{name}' of type {class_name} is not supported "
                f"(refused before loading {path.name}); supported "
                f"layers: {SUPPORTED}"
            )
    return version or "2"


#: Arguments Keras 2 wrote into layer configs that Keras 3 no longer accepts.
KERAS2_ONLY_ARGUMENTS = ("time_major",)


def _load_legacy_h5(keras: Any, path: Path) -> Any:
    """Load an HDF5 model written by Keras <= 2 with Keras 3: through a temporary copy
    whose model_config lacks the arguments Keras 3 refuses (e.g. GRU's time_major)."""
    import shutil
    import tempfile

    import h5py

    with tempfile.TemporaryDirectory(prefix="lstmgen-h5-") as tmp:
        copy = Path(tmp) / path.name
        shutil.copyfile(path, copy)
        with h5py.File(copy, "r+") as fh:
            raw = fh.attrs["model_config"]
            config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
            _drop_arguments(config, KERAS2_ONLY_ARGUMENTS)
            fh.attrs["model_config"] = json.dumps(config)
        return keras.saving.load_model(str(copy), compile=False, safe_mode=True)


def _drop_arguments(config: Any, names: tuple[str, ...]) -> None:
    if isinstance(config, dict):
        for name in names:
            config.pop(name, None)
        for value in config.values():
            _drop_arguments(value, names)
    elif isinstance(config, list):
        for value in config:
            _drop_arguments(value, names)


def _layer_classes(config) -> list[tuple[str, str]]:
    """(class_name, name) of every layer config nested anywhere in `config`."""
    found = []
    if isinstance(config, dict):
        if "class_name" in config:
            inner = config.get("config", {})
            found.append(
                (config["class_name"], inner.get("name", "?") if isinstance(inner, dict) else "?")
            )
        for value in config.values():
            found.extend(_layer_classes(value))
    elif isinstance(config, list):
        for value in config:
            found.extend(_layer_classes(value))
    return [
        (c, n)
        for c, n in found
        if c
        not in (
            "GlorotUniform",
            "Orthogonal",
            "Zeros",
            "Ones",
            "RandomUniform",
            "RandomNormal",
            "Constant",
            "HeNormal",
            "HeUniform",
            "LecunNormal",
            "LecunUniform",
            "TruncatedNormal",
            "VarianceScaling",
            "L1",
            "L2",
            "L1L2",
            "DTypePolicy",
            "Policy",
            "__tuple__",
        )
    ]


def _uses_hard_sigmoid(model: Model) -> bool:
    def acts(layer) -> set:
        if hasattr(layer, "forward"):
            return acts(layer.forward) | acts(layer.backward)
        return {
            getattr(layer, a, None)
            for a in ("gate_activation", "cell_activation", "output_activation", "activation")
        }

    return any("hard_sigmoid_0.2" in acts(layer) for layer in model.layers)


def open_live(model: Any) -> Loaded:
    keras = import_keras()
    if not isinstance(model, keras.Model):
        raise ModelError(f"{type(model).__name__} is not a keras.Model")
    return _loaded(model, f"Keras {keras.__version__}, live model '{model.name}'")


def _loaded(model: Any, source: str) -> Loaded:
    keras = import_keras()
    ir = extract(model, source)
    stateful = any(getattr(l, "stateful", False) for l in model.layers)

    def predict(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32)
        if len(model.inputs[0].shape) == 2:  # token ids [N, T, 1] -> [N, T]
            x = x[..., 0].astype(np.int32)
        if not stateful:
            return np.asarray(model.predict(x, verbose=0, batch_size=256))
        # a stateful model has a fixed batch size and carries state across calls: run each
        # sequence alone, from a zero state, as the generated predict() does
        batch = model.inputs[0].shape[0] or 1
        outputs = []
        for sequence in x:
            _reset_states(model)
            y = model.predict(np.repeat(sequence[None], batch, axis=0), verbose=0, batch_size=batch)
            outputs.append(y[0])
        _reset_states(model)
        return np.stack(outputs)

    return Loaded(ir, predict, f"Keras {keras.__version__} model.predict")


def _reset_states(model: Any) -> None:
    for layer in model.layers:
        if getattr(layer, "stateful", False):
            layer.reset_states()


def extract(model: Any, source: str) -> Model:
    """The IR of a Sequential or single-path functional Keras model."""
    keras = import_keras()
    input_shape = _input_shape(model)
    layers = _single_path_layers(model, keras)
    width = 1 if len(input_shape) == 2 else int(input_shape[-1])
    ir_layers: list[Layer] = []
    notes: list[str] = []
    steps = input_shape[1]
    for layer in layers:
        converted = _convert(layer, width, notes, steps)
        if converted is not None:
            ir_layers.append(converted)
            width = converted.output_size
            if steps:
                steps = converted.output_timesteps(int(steps))
    if not ir_layers:
        raise ModelError(f"model '{model.name}' has no layer lstmgen can compile")
    timesteps = input_shape[1]
    ir = Model(
        input_size=1 if len(input_shape) == 2 else int(input_shape[-1]),
        layers=ir_layers,
        name=model.name,
        source=source,
        timesteps=int(timesteps) if timesteps else None,
        notes=notes,
    )
    return ir.validate()


def _input_shape(model: Any) -> tuple:
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs:
        raise ModelError(
            f"model '{model.name}' has no defined input; build it with "
            "keras.Input(shape=(timesteps, features)) first"
        )
    if len(inputs) != 1:
        raise UnsupportedLayerError(
            f"model '{model.name}' has {len(inputs)} inputs; lstmgen supports single-input models"
        )
    shape = tuple(inputs[0].shape)
    if len(shape) == 2:  # token ids (batch, timesteps): an Embedding must come first
        return shape
    if len(shape) != 3 or shape[-1] is None:
        raise UnsupportedLayerError(
            f"model '{model.name}' input shape {shape}: expected "
            "(batch, timesteps, features) with known features"
        )
    return shape


def _single_path_layers(model: Any, keras: Any) -> list:
    if len(model.outputs) != 1:
        raise UnsupportedLayerError(
            f"model '{model.name}' has {len(model.outputs)} outputs; "
            "lstmgen supports single-output models"
        )
    if isinstance(model, keras.Sequential):
        return list(model.layers)
    if not hasattr(model, "_operations") and not hasattr(model, "operations"):
        raise UnsupportedLayerError(
            f"model '{model.name}' is a subclassed keras.Model whose "
            "call() is arbitrary Python; use Sequential or functional"
        )
    layers = [l for l in model.layers if type(l).__name__ != "InputLayer"]
    expected = model.inputs[0]
    for layer in layers:
        nodes = getattr(layer, "_inbound_nodes", [])
        if len(nodes) != 1 or layer.input is not expected:
            raise UnsupportedLayerError(
                f"layer '{layer.name}' ({type(layer).__name__}): model '{model.name}' is not a "
                "single chain of layers (branches, merges, shared layers or nested models); "
                "lstmgen supports Sequential and single-path functional models"
            )
        expected = layer.output
    if layers and model.outputs[0] is not expected:
        raise UnsupportedLayerError(
            f"model '{model.name}': its output is not the last layer's "
            "output; only single-path models are supported"
        )
    return layers


def _activation_name(fn: Any, layer: Any, field: str) -> str:
    keras = import_keras()
    for keras_name, ir_name in ACTIVATIONS.items():
        if fn is keras.activations.get(keras_name):
            if ir_name == "hard_sigmoid_keras3" and _KERAS2_SEMANTICS.get():
                return "hard_sigmoid_0.2"  # the file was saved by Keras <= 2
            return ir_name
    label = getattr(fn, "__name__", repr(fn))
    raise UnsupportedLayerError(
        f"layer '{layer.name}' ({type(layer).__name__}): {field} '{label}' is not supported; "
        f"supported: {', '.join(ACTIVATIONS)}"
    )


def _unsupported(layer: Any, why: str = "") -> UnsupportedLayerError:
    kind = type(layer).__name__
    detail = f": {why}" if why else ""
    return UnsupportedLayerError(
        f"layer '{layer.name}' of type {kind} is not supported{detail}; "
        f"supported layers: {SUPPORTED}"
    )


def _convert(layer: Any, width: int, notes: list[str], steps: int | None) -> Layer | None:
    kind = type(layer).__name__
    if kind in SHAPING_CONVERTERS:
        return SHAPING_CONVERTERS[kind](layer, width, steps)
    if kind == "InputLayer":
        return None
    if kind in NO_OP_LAYERS:
        notes.append(f"dropped '{layer.name}' ({kind}): identity at inference")
        return None
    if kind in RECURRENT_CONVERTERS:
        if layer.stateful:
            notes.append(
                f"'{layer.name}' is stateful: Keras carries its state from one "
                "predict call to the next; the generated predict starts every call "
                "from zero (as after reset_states), the streaming step carries it"
            )
        return RECURRENT_CONVERTERS[kind](layer)
    if kind == "Bidirectional":
        return _bidirectional(layer)
    if kind == "Dense":
        return _dense(layer)
    if kind == "TimeDistributed":
        inner = layer.layer
        if type(inner).__name__ != "Dense":
            raise _unsupported(layer, f"TimeDistributed wraps {type(inner).__name__}, only Dense")
        return _dense(inner, name=layer.name)
    if kind == "Activation":
        return Activation(
            layer.name,
            width,
            _activation_name(layer.activation, layer, "activation"),
            origin="Keras Activation",
        )
    if kind == "ReLU":
        if (
            layer.max_value is not None
            or float(layer.negative_slope) != 0.0
            or float(layer.threshold) != 0.0
        ):
            raise _unsupported(
                layer, "only the plain ReLU (no max_value, negative_slope, threshold)"
            )
        return Activation(layer.name, width, "relu", origin="Keras ReLU")
    if kind == "Softmax":
        if layer.axis not in (-1, 2):
            raise _unsupported(layer, f"softmax over axis {layer.axis}; only the last axis")
        return Activation(layer.name, width, "softmax", origin="Keras Softmax")
    raise _unsupported(layer)


def _check_recurrent_flags(layer: Any) -> None:
    if layer.return_state:
        raise _unsupported(layer, "return_state=True")


def _lstm(layer: Any) -> LSTM:
    _check_recurrent_flags(layer)
    cell = layer.cell
    gate = _activation_name(cell.recurrent_activation, layer, "recurrent_activation")
    act = _activation_name(cell.activation, layer, "activation")
    if act == "softmax" or gate == "softmax":
        raise _unsupported(layer, "softmax as a recurrent activation")
    kernel = float32(cell.kernel.numpy())
    recurrent = float32(cell.recurrent_kernel.numpy())
    bias = float32(cell.bias.numpy()) if cell.use_bias else None
    return LSTM(
        name=layer.name,
        input_weights=float32(kernel.T),
        recurrent_weights=float32(recurrent.T),
        bias=bias,
        gate_activation=gate,
        cell_activation=act,
        output_activation=act,
        return_sequences=bool(layer.return_sequences),
        go_backwards=bool(layer.go_backwards),
        origin=LSTM_ORIGIN,
    )


def _gru(layer: Any) -> GRU:
    _check_recurrent_flags(layer)
    cell = layer.cell
    gate = _activation_name(cell.recurrent_activation, layer, "recurrent_activation")
    act = _activation_name(cell.activation, layer, "activation")
    if "softmax" in (act, gate):
        raise _unsupported(layer, "softmax as a recurrent activation")
    bias = recurrent_bias = None
    if cell.use_bias:
        b = float32(cell.bias.numpy())
        bias, recurrent_bias = (float32(b[0]), float32(b[1])) if cell.reset_after else (b, None)
    return GRU(
        name=layer.name,
        input_weights=float32(cell.kernel.numpy().T),
        recurrent_weights=float32(cell.recurrent_kernel.numpy().T),
        bias=bias,
        recurrent_bias=recurrent_bias,
        reset_after=bool(cell.reset_after),
        gate_activation=gate,
        cell_activation=act,
        return_sequences=bool(layer.return_sequences),
        go_backwards=bool(layer.go_backwards),
        origin=GRU_ORIGIN,
    )


def _simple_rnn(layer: Any) -> SimpleRNN:
    _check_recurrent_flags(layer)
    cell = layer.cell
    act = _activation_name(cell.activation, layer, "activation")
    if act == "softmax":
        raise _unsupported(layer, "softmax as a recurrent activation")
    return SimpleRNN(
        name=layer.name,
        input_weights=float32(cell.kernel.numpy().T),
        recurrent_weights=float32(cell.recurrent_kernel.numpy().T),
        bias=float32(cell.bias.numpy()) if cell.use_bias else None,
        activation=act,
        return_sequences=bool(layer.return_sequences),
        go_backwards=bool(layer.go_backwards),
        origin=SIMPLE_RNN_ORIGIN,
    )


RECURRENT_CONVERTERS = {"LSTM": _lstm, "GRU": _gru, "SimpleRNN": _simple_rnn}


def _bidirectional(layer: Any) -> Bidirectional:
    if layer.merge_mode not in ("concat", "sum", "mul", "ave"):
        raise _unsupported(layer, f"merge_mode={layer.merge_mode!r} (two outputs)")
    parts = []
    for inner in (layer.forward_layer, layer.backward_layer):
        kind = type(inner).__name__
        if kind not in RECURRENT_CONVERTERS:
            raise _unsupported(layer, f"it wraps {kind}; supported: LSTM, GRU, SimpleRNN")
        parts.append(RECURRENT_CONVERTERS[kind](inner))
    forward, backward = parts
    if forward.go_backwards:
        raise _unsupported(layer, "its forward layer has go_backwards=True")
    forward.name, backward.name = f"{layer.name}.forward", f"{layer.name}.backward"
    return Bidirectional(
        layer.name,
        forward,
        backward,
        merge_mode=layer.merge_mode,
        origin=f"Keras Bidirectional(merge_mode={layer.merge_mode!r}): "
        "forward_layer and backward_layer as below; the backward "
        "outputs are flipped back to input time order",
    )


def _masking(layer: Any, width: int, steps: int | None) -> Masking:
    # Keras compares float32 inputs with the mask value as a float32 (0.1 is 0.100000001)
    return Masking(
        layer.name,
        width,
        float(np.float32(layer.mask_value)),
        origin="Keras Masking: steps whose features all equal mask_value are "
        "zeroed and skipped by the recurrent layers",
    )


def _normalization(layer: Any, width: int, steps: int | None) -> Normalize:
    if getattr(layer, "invert", False):
        raise _unsupported(layer, "invert=True")
    mean = np.asarray(layer.mean, np.float32).reshape(-1)
    variance = np.asarray(layer.variance, np.float32).reshape(-1)
    if mean.size == 1:
        mean, variance = (
            np.full(width, mean[0], np.float32),
            np.full(width, variance[0], np.float32),
        )
    if mean.size != width:
        raise _unsupported(
            layer, f"normalizes an axis of {mean.size} values, not the {width} features"
        )
    std = np.maximum(np.sqrt(variance), np.float32(1e-7))  # Keras: max(sqrt(var), epsilon)
    return Normalize(
        layer.name,
        float32(mean),
        float32(std),
        origin="Keras Normalization: (x - mean) / max(sqrt(variance), 1e-7)",
    )


def _layer_normalization(layer: Any, width: int, steps: int | None) -> LayerNorm:
    axis = layer.axis if isinstance(layer.axis, int) else tuple(layer.axis)
    if axis not in (-1, 2, (-1,), (2,)) or getattr(layer, "rms_scaling", False):
        raise _unsupported(layer, "only the feature axis, without rms_scaling")
    return LayerNorm(
        layer.name,
        width,
        float32(layer.gamma.numpy()) if layer.scale else None,
        float32(layer.beta.numpy()) if layer.center else None,
        epsilon=float(layer.epsilon),
        origin="Keras LayerNormalization over the features",
    )


def _flatten(layer: Any, width: int, steps: int | None) -> Flatten:
    kind = type(layer).__name__
    if not steps:
        raise _unsupported(layer, f"{kind} needs a fixed number of timesteps in the Input")
    if kind == "Reshape" and tuple(layer.target_shape) != (int(steps) * width,):
        raise _unsupported(layer, f"only Reshape(({int(steps) * width},)) (a flatten)")
    return Flatten(
        layer.name,
        int(steps),
        width,
        origin=f"Keras {kind}: [T={steps}][{width}] -> [{int(steps) * width}]",
    )


def _conv1d(layer: Any, width: int, steps: int | None) -> Conv1D:
    if (
        getattr(layer, "groups", 1) != 1
        or getattr(layer, "data_format", "channels_last") != "channels_last"
    ):
        raise _unsupported(layer, "only groups=1, channels_last")
    activation = _activation_name(layer.activation, layer, "activation")
    if activation == "softmax":
        raise _unsupported(layer, "softmax activation")
    kernel = np.asarray(layer.kernel.numpy(), np.float32)  # (K, D, F)
    return Conv1D(
        layer.name,
        float32(np.transpose(kernel, (2, 0, 1))),
        float32(layer.bias.numpy()) if layer.use_bias else None,
        stride=int(np.ravel(layer.strides)[0]),
        dilation=int(np.ravel(layer.dilation_rate)[0]),
        padding=layer.padding,
        activation=activation,
        origin="Keras Conv1D: kernel (K, D, F) -> weights (F, K, D)",
    )


def _pool1d(layer: Any, width: int, steps: int | None) -> Pool1D:
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise _unsupported(layer, "only channels_last")
    size = int(np.ravel(layer.pool_size)[0])
    stride = int(np.ravel(layer.strides)[0]) if layer.strides is not None else size
    kind = "max" if type(layer).__name__ == "MaxPooling1D" else "avg"
    return Pool1D(
        layer.name, width, kind, size, stride, layer.padding, origin=f"Keras {type(layer).__name__}"
    )


def _batch_normalization(layer: Any, width: int, steps: int | None) -> BatchNorm:
    axis = layer.axis if isinstance(layer.axis, int) else tuple(layer.axis)
    if axis not in (-1, 2, (-1,), (2,)) and not (axis in (1, (1,)) and steps is None):
        raise _unsupported(layer, "only the feature (last) axis")
    if getattr(layer, "renorm", False):
        raise _unsupported(layer, "renorm=True")
    return BatchNorm(
        layer.name,
        float32(layer.moving_mean.numpy()),
        float32(layer.moving_variance.numpy()),
        float32(layer.gamma.numpy()) if layer.scale else None,
        float32(layer.beta.numpy()) if layer.center else None,
        epsilon=float(layer.epsilon),
        origin="Keras BatchNormalization at inference: moving_mean, moving_variance, "
        "gamma (scale), beta (center), epsilon",
    )


def _embedding(layer: Any, width: int, steps: int | None) -> Embedding:
    return Embedding(
        layer.name,
        float32(layer.embeddings.numpy()),
        mask_zero=bool(layer.mask_zero),
        origin="Keras Embedding: embeddings (vocabulary, E) as is; the model's input is "
        "token ids" + ("; id 0 masks its timestep (mask_zero)" if layer.mask_zero else ""),
    )


def _repeat_vector(layer: Any, width: int, steps: int | None) -> RepeatVector:
    return RepeatVector(layer.name, width, int(layer.n), origin="Keras RepeatVector")


def _global_pool(layer: Any, width: int, steps: int | None) -> GlobalPool:
    if getattr(layer, "data_format", "channels_last") != "channels_last" or getattr(
        layer, "keepdims", False
    ):
        raise _unsupported(layer, "only channels_last without keepdims")
    kind = "avg" if "Average" in type(layer).__name__ else "max"
    return GlobalPool(layer.name, width, kind, origin=f"Keras {type(layer).__name__}")


def _cropping(layer: Any, width: int, steps: int | None) -> TimeSlice:
    start, end = (int(v) for v in layer.cropping)
    return TimeSlice(
        layer.name,
        width,
        start,
        -end if end else None,
        origin=f"Keras Cropping1D(({start}, {end})): timesteps [{start}:{-end if end else ''}]",
    )


SHAPING_CONVERTERS = {
    "Masking": _masking,
    "Normalization": _normalization,
    "LayerNormalization": _layer_normalization,
    "Flatten": _flatten,
    "Reshape": _flatten,
    "Conv1D": _conv1d,
    "MaxPooling1D": _pool1d,
    "AveragePooling1D": _pool1d,
    "BatchNormalization": _batch_normalization,
    "Embedding": _embedding,
    "RepeatVector": _repeat_vector,
    "GlobalAveragePooling1D": _global_pool,
    "GlobalMaxPooling1D": _global_pool,
    "Cropping1D": _cropping,
}


def _dense(layer: Any, name: str | None = None) -> Dense:
    kernel = float32(layer.kernel.numpy())
    bias = float32(layer.bias.numpy()) if layer.use_bias else None
    return Dense(
        name=name or layer.name,
        weights=float32(kernel.T),
        bias=bias,
        activation=_activation_name(layer.activation, layer, "activation"),
        origin="Keras Dense: kernel (I, O) -> weights = kernel.T; bias as is",
    )
