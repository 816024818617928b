"""Keras architectures in every dialect -> one chain of layer specs.

Dialects: Keras 1 (a Sequential config is a list; functional `Model` with inbound nodes
`[[["name", 0, 0]]]`; `output_dim`, `inner_activation`, ... translated by `keras1`),
Keras 2 / tf.keras 2.x (`batch_input_shape` on an InputLayer or on the first layer;
nodes `[[["name", 0, 0, {}]]]`), Keras 3 (`module` keys, `batch_shape`, nodes
`{"args": [keras tensors]}`). Nested Sequential/functional models are spliced into the
chain; Bidirectional and TimeDistributed keep their wrapped layers as `inner` specs.

Each spec records where its weights live: its layer names from the top model down (legacy
HDF5 files, live models) and its path in a Keras 3 weights file, which Keras derives from
class names (`layers/lstm_1`), not layer names. Nothing here reads a weight.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ...errors import ModelError, UnsupportedLayerError
from . import keras1
from .files import major_version

MODEL_CLASSES = ("Sequential", "Functional", "Model")
WRAPPER_CLASSES = ("Bidirectional", "TimeDistributed")
#: Nesting of models and wrappers, and layers in all, read at most.
MAX_DEPTH = 16
MAX_LAYERS = 10_000
#: The largest size a config may give a dimension (timesteps, features, units).
MAX_DIM = 10**8


@dataclass
class LayerSpec:
    """One Keras layer of the chain, in Keras 2/3 vocabulary."""

    class_name: str
    name: str
    config: dict[str, Any]
    names: tuple[str, ...]  # layer names from the top model down to this layer
    v3_path: str  # where a Keras 3 weights file keeps it, e.g. "layers/lstm_1"
    part: str | None = None  # "forward"/"backward" in a Bidirectional, "layer" in TimeDistributed
    inner: list[LayerSpec] = field(default_factory=list)  # wrapped layers

    @property
    def where(self) -> str:
        return f"layer '{self.name}' ({self.class_name})"


@dataclass
class ModelSpec:
    """A single-path model: its input shape (batch, T, D), or (batch, T) for token ids,
    its layers in order, and the Keras major version whose semantics apply."""

    name: str
    input_shape: tuple[int | None, ...]
    layers: list[LayerSpec]
    keras_major: int

    def all_layers(self) -> list[LayerSpec]:
        found: list[LayerSpec] = []
        stack = list(reversed(self.layers))
        while stack:
            spec = stack.pop()
            found.append(spec)
            stack.extend(reversed(spec.inner))
        return found


def snake_case(class_name: str) -> str:
    """Keras's own name for a class in weights-file paths: LSTM -> lstm,
    GlobalAveragePooling1D -> global_average_pooling1d, ReLU -> re_lu."""
    name = re.sub(r"\W+", "", class_name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def model_spec(raw: Any, version: str | None, where: str) -> ModelSpec:
    """The layer chain of a model architecture (`model.to_json()`, a `.keras`
    config.json, an HDF5 model_config)."""
    top = as_dict(raw, f"{where}: the architecture")
    class_name = top.get("class_name")
    if class_name not in MODEL_CLASSES:
        raise UnsupportedLayerError(
            f"{where}: the architecture is a {class_name!r}, not a Sequential or functional "
            "model (subclassed models are arbitrary Python)"
        )
    major = detect_major(top, version)
    reader = _Reader(major, where)
    shape, layers = reader.model(top, (), "", 0)
    shape = shape or _build_shape(top, where)
    if shape is None:
        raise ModelError(
            f"{where}: the model has no defined input shape; build it with "
            "keras.Input(shape=(timesteps, features)) first"
        )
    name = top["config"].get("name") if isinstance(top["config"], dict) else None
    return ModelSpec(str(name or "sequential"), shape, layers, major)


def detect_major(top: dict, version: str | None) -> int:
    """Keras 1 by its config keys (whatever a file claims), else the version that wrote
    the file, else Keras 3 by its serialization markers, else 2."""
    objects = _layer_objects(top)
    if any(keras1.looks_like_keras1(obj) for obj in objects):
        return 1
    major = major_version(version)
    if major is not None:
        return major
    if "module" in top or any(isinstance(o, dict) and "module" in o for o in objects):
        return 3
    return 2


def _layer_objects(top: Any, limit: int = MAX_LAYERS) -> list[dict]:
    """Every {"class_name", "config"} object nested in `top` (bounded)."""
    found: list[dict] = []
    stack: list[tuple[Any, int]] = [(top, 0)]
    while stack and len(found) < limit:
        node, depth = stack.pop()
        if depth > 2 * MAX_DEPTH + 8:
            continue
        if isinstance(node, dict):
            if isinstance(node.get("class_name"), str) and isinstance(node.get("config"), dict):
                found.append(node)
            stack.extend((v, depth + 1) for v in node.values() if isinstance(v, (dict, list)))
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node if isinstance(v, (dict, list)))
    return found


class _Reader:
    def __init__(self, major: int, where: str) -> None:
        self.major = major
        self.where = where
        self.count = 0

    # ---- models ---------------------------------------------------------------------
    def model(
        self, obj: dict, names: tuple[str, ...], path: str, depth: int
    ) -> tuple[tuple | None, list[LayerSpec]]:
        if depth > MAX_DEPTH:
            raise ModelError(f"{self.where}: models are nested more than {MAX_DEPTH} deep")
        config = obj.get("config")
        if obj.get("class_name") == "Sequential":
            if isinstance(config, dict):
                config = config.get("layers")
            layers = as_list(config, f"{self.where}: Sequential layers")
            return self._sequential(layers, names, path, depth)
        config = as_dict(config, f"{self.where}: the functional model's config")
        return self._functional(config, names, path, depth)

    def _sequential(
        self, layers: list, names: tuple[str, ...], path: str, depth: int
    ) -> tuple[tuple | None, list[LayerSpec]]:
        shape = None
        specs: list[LayerSpec] = []
        used: dict[str, int] = {}
        for index, obj in enumerate(layers):
            class_name, config, name = self._header(obj)
            if class_name == "InputLayer":
                if index != 0:
                    raise UnsupportedLayerError(
                        f"{self.where}: InputLayer '{name}' in the middle of a Sequential"
                    )
                shape = input_layer_shape(config, f"{self.where}: InputLayer '{name}'")
                continue
            if not specs and shape is None:
                shape = first_layer_shape(config, self.major, f"{self.where}: layer '{name}'")
            v3 = join(path, "layers", unique(snake_case(self._python_class(class_name)), used))
            specs.extend(self._layer(class_name, config, name, names + (name,), v3, depth))
        return shape, specs

    def _functional(
        self, config: dict, names: tuple[str, ...], path: str, depth: int
    ) -> tuple[tuple | None, list[LayerSpec]]:
        layers = as_list(config.get("layers"), f"{self.where}: functional model layers")
        headers, paths, by_name = [], {}, {}
        used: dict[str, int] = {}
        for obj in layers:
            class_name, layer_config, name = self._header(obj)
            if name in by_name:
                raise UnsupportedLayerError(f"{self.where}: two layers are named '{name}'")
            by_name[name] = (obj, class_name, layer_config)
            paths[name] = join(
                path, "layers", unique(snake_case(self._python_class(class_name)), used)
            )
            headers.append(name)
        first = _single_endpoint(config.get("input_layers"), "input", self.where)
        last = _single_endpoint(config.get("output_layers"), "output", self.where)
        chain = self._chain(by_name, headers, first, last)
        _, class_name, input_config = by_name[first]
        shape = None
        if class_name == "InputLayer":
            shape = input_layer_shape(input_config, f"{self.where}: InputLayer '{first}'")
        specs: list[LayerSpec] = []
        for name in chain:
            _, class_name, layer_config = by_name[name]
            if class_name == "InputLayer":
                continue
            if shape is None and not specs:
                shape = first_layer_shape(layer_config, self.major, f"{self.where}: '{name}'")
            specs.extend(
                self._layer(class_name, layer_config, name, names + (name,), paths[name], depth)
            )
        return shape, specs

    def _chain(self, by_name: dict, order: list[str], first: str, last: str) -> list[str]:
        """The layer names from input to output, when the model is one chain."""
        if first not in by_name or last not in by_name:
            raise ModelError(f"{self.where}: the model's input or output layer is missing")
        consumers: dict[str, list[str]] = {}
        for name in order:
            obj = by_name[name][0]
            sources = inbound_layers(obj.get("inbound_nodes"), name, self.where)
            if name == first:
                if sources:
                    raise UnsupportedLayerError(f"{self.where}: input layer '{name}' has inputs")
                continue
            if len(sources) != 1:
                raise UnsupportedLayerError(
                    f"layer '{name}' ({by_name[name][1]}): the model is not a single chain of "
                    "layers (branches, merges, shared layers or several inputs); lstmgen "
                    "supports Sequential and single-path functional models"
                )
            consumers.setdefault(sources[0], []).append(name)
        chain, current = [first], first
        while current != last:
            following = consumers.get(current, [])
            if len(following) != 1:
                raise UnsupportedLayerError(
                    f"layer '{current}': the model is not a single chain of layers "
                    f"({len(following)} layers read its output); lstmgen supports "
                    "Sequential and single-path functional models"
                )
            current = following[0]
            chain.append(current)
            if len(chain) > len(order):
                raise ModelError(f"{self.where}: the layer graph has a cycle")
        if len(chain) != len(order):
            unused = sorted(set(order) - set(chain))
            raise UnsupportedLayerError(
                f"layer '{unused[0]}': not on the path from the input to the output; lstmgen "
                "supports single-path models"
            )
        return chain

    # ---- layers ---------------------------------------------------------------------
    def _header(self, obj: Any) -> tuple[str, dict, str]:
        self.count += 1
        if self.count > MAX_LAYERS:
            raise ModelError(f"{self.where}: more than {MAX_LAYERS} layers")
        obj = as_dict(obj, f"{self.where}: a layer entry")
        class_name = obj.get("class_name")
        if not isinstance(class_name, str) or not class_name:
            raise ModelError(f"{self.where}: a layer entry has no class_name")
        config = as_dict(obj.get("config", {}), f"{self.where}: the config of a {class_name}")
        name = config.get("name", obj.get("name"))
        if not isinstance(name, str) or not name:
            name = snake_case(class_name)
        if self.major == 1:
            class_name, config = keras1.translate(class_name, config)
        registered = obj.get("registered_name")
        module = obj.get("module")
        custom = (registered not in (None, class_name) and not _builtin_name(registered)) or (
            isinstance(module, str) and not module.startswith(("keras", "tf_keras"))
        )
        if custom:
            raise UnsupportedLayerError(
                f"layer '{name}' of type {registered or class_name} (module {module}) is a "
                "custom layer class: its Python code is never loaded or run"
            )
        return class_name, config, name

    def _layer(
        self,
        class_name: str,
        config: dict,
        name: str,
        names: tuple[str, ...],
        v3_path: str,
        depth: int,
        part: str | None = None,
    ) -> list[LayerSpec]:
        if class_name in MODEL_CLASSES:
            _, specs = self.model(
                {"class_name": class_name, "config": config}, names, v3_path, depth + 1
            )
            return specs
        spec = LayerSpec(class_name, name, config, names, v3_path, part)
        if class_name == "TimeDistributed":
            inner = self._wrapped(config.get("layer"), spec, "layer", depth)
            spec.inner = [inner]
        elif class_name == "Bidirectional":
            forward = self._wrapped(config.get("layer"), spec, "forward", depth)
            backward_config = config.get("backward_layer")
            if backward_config is None:  # Keras 1/2 without one: a copy reading backwards
                backward = LayerSpec(
                    forward.class_name,
                    f"backward_{forward.name}",
                    {**forward.config, "go_backwards": not forward.config.get("go_backwards")},
                    spec.names,
                    join(spec.v3_path, "backward_layer"),
                    "backward",
                )
            else:
                backward = self._wrapped(backward_config, spec, "backward", depth)
            spec.inner = [forward, backward]
        return [spec]

    def _wrapped(self, obj: Any, wrapper: LayerSpec, part: str, depth: int) -> LayerSpec:
        if depth + 1 > MAX_DEPTH:
            raise ModelError(f"{self.where}: layers are nested more than {MAX_DEPTH} deep")
        class_name, config, name = self._header(obj)
        if class_name in MODEL_CLASSES or class_name in WRAPPER_CLASSES:
            raise UnsupportedLayerError(
                f"{wrapper.where} wraps a {class_name}; supported: LSTM, GRU, SimpleRNN in "
                "Bidirectional, Dense in TimeDistributed"
            )
        attribute = {"layer": "layer", "forward": "forward_layer", "backward": "backward_layer"}
        return LayerSpec(
            class_name,
            name,
            config,
            wrapper.names,
            join(wrapper.v3_path, attribute[part]),
            part,
        )

    def _python_class(self, class_name: str) -> str:
        """The class Keras instantiates for a config class name (a functional `Model`
        becomes `Functional` in Keras 3 and tf.keras >= 2.4)."""
        return "Functional" if class_name == "Model" else class_name


def _builtin_name(registered: Any) -> bool:
    return isinstance(registered, str) and registered.startswith(("keras.", "keras>"))


# ---- inputs -------------------------------------------------------------------------------
def input_layer_shape(config: dict, where: str) -> tuple:
    for key in ("batch_shape", "batch_input_shape"):
        if config.get(key) is not None:
            return check_shape(config[key], where)
    if config.get("shape") is not None:  # Keras 3 InputLayer(shape=...) without batch
        return check_shape([None, *as_list(config["shape"], where)], where)
    raise ModelError(f"{where}: no input shape")


def first_layer_shape(config: dict, major: int, where: str) -> tuple | None:
    """The input shape a first layer declares (Keras 1/2 put it there)."""
    if config.get("batch_input_shape") is not None:
        return check_shape(config["batch_input_shape"], where)
    if major == 1 and config.get("input_dim") is not None:
        if config.get("input_dtype") == "int32" or "mask_zero" in config:
            return check_shape([None, config.get("input_length")], where)
        return check_shape([None, config.get("input_length"), config["input_dim"]], where)
    return None


def _build_shape(top: dict, where: str) -> tuple | None:
    config = top.get("config")
    candidates = [
        config.get("build_input_shape") if isinstance(config, dict) else None,
        (top.get("build_config") or {}).get("input_shape")
        if isinstance(top.get("build_config"), dict)
        else None,
    ]
    for shape in candidates:
        if shape is not None:
            return check_shape(shape, f"{where}: build input shape")
    return None


def check_shape(value: Any, where: str) -> tuple:
    if isinstance(value, dict) and value.get("class_name") == "__tuple__":
        value = value.get("config", {}).get("value")
    dims = as_list(value, f"{where}: input shape")
    if len(dims) not in (2, 3):
        raise UnsupportedLayerError(
            f"{where}: input shape {dims}: expected (batch, timesteps, features), or "
            "(batch, timesteps) of token ids"
        )
    checked: list[int | None] = []
    for k, dim in enumerate(dims):
        if dim is None:
            checked.append(None)
            continue
        if not isinstance(dim, int) or isinstance(dim, bool) or not 1 <= dim <= MAX_DIM:
            raise ModelError(f"{where}: input shape {dims}: dimension {k} is {dim!r}")
        checked.append(dim)
    if len(checked) == 3 and checked[2] is None:
        raise UnsupportedLayerError(f"{where}: input shape {dims}: the features must be known")
    return tuple(checked)


def inbound_layers(nodes: Any, name: str, where: str) -> list[str]:
    """The layers feeding `name`, from its inbound nodes in any Keras dialect."""
    if nodes is None or nodes == []:
        return []
    nodes = as_list(nodes, f"{where}: inbound nodes of '{name}'")
    if len(nodes) != 1:
        raise UnsupportedLayerError(
            f"layer '{name}' is called {len(nodes)} times (a shared layer); lstmgen supports "
            "single-path models"
        )
    node = nodes[0]
    sources: list[str] = []
    if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
        _keras_histories(node.get("args"), sources, 0)
        _keras_histories(node.get("kwargs"), sources, 0)
    else:  # Keras 1/2: [["name", node, tensor, (kwargs)], ...]
        for entry in as_list(node, f"{where}: inbound node of '{name}'"):
            entry = as_list(entry, f"{where}: inbound node of '{name}'")
            if not entry or not isinstance(entry[0], str):
                raise ModelError(f"{where}: inbound node of '{name}' is malformed")
            sources.append(entry[0])
            if len(entry) > 3 and isinstance(entry[3], dict):
                _keras_histories(entry[3], sources, 0)
    return sources


def _keras_histories(value: Any, found: list[str], depth: int) -> None:
    if depth > 32 or len(found) > 64:
        return
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            history = (value.get("config") or {}).get("keras_history")
            if isinstance(history, list) and history and isinstance(history[0], str):
                found.append(history[0])
            return
        for item in value.values():
            _keras_histories(item, found, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _keras_histories(item, found, depth + 1)


def _single_endpoint(value: Any, what: str, where: str) -> str:
    entries = as_list(value, f"{where}: the model's {what} layers")
    if entries and isinstance(entries[0], str):  # Keras 3 writes one endpoint unwrapped
        entries = [entries]
    if len(entries) != 1:
        raise UnsupportedLayerError(
            f"{where}: the model has {len(entries)} {what}s; lstmgen supports single-{what} models"
        )
    entry = as_list(entries[0], f"{where}: the model's {what} layer")
    if not entry or not isinstance(entry[0], str):
        raise ModelError(f"{where}: the model's {what} layer is malformed")
    return entry[0]


# ---- typed access ---------------------------------------------------------------------
def as_dict(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise ModelError(f"{what} is not a JSON object")
    return value


def as_list(value: Any, what: str) -> list:
    if not isinstance(value, list):
        raise ModelError(f"{what} is not a list")
    return value


def join(*parts: str) -> str:
    return "/".join(p for p in parts if p)


def unique(name: str, used: dict[str, int]) -> str:
    """Keras's container naming: lstm, lstm_1, lstm_2, ..."""
    if name in used:
        used[name] += 1
        return f"{name}_{used[name]}"
    used[name] = 0
    return name
