"""Live Keras models (Keras 3 `keras.Model`, tf_keras `Model`): their own config and
variables go through the same mappings as a file's, and the model predicts for itself."""

from __future__ import annotations

import json
from typing import Any

from ...errors import ModelError, UnsupportedLayerError
from .. import Loaded
from .build import build_ir
from .config import model_spec
from .oracle import LiveOracle
from .weights import LiveStore, Weights


def framework_of(model: Any) -> tuple[str, Any]:
    """('keras' | 'tf_keras', the framework module) of a live model object."""
    import importlib

    root = type(model).__module__.split(".")[0]
    package = "tf_keras" if root == "tf_keras" else "keras"
    if root == "tensorflow":  # tf.keras: Keras 3 (TF >= 2.16) or tf_keras behind it
        package = "tf_keras" if "tf_keras" in type(model).__mro__[0].__module__ else "keras"
    try:
        framework = importlib.import_module(package)
    except ImportError:
        raise ModelError(f"{type(model).__name__} is not a keras.Model") from None
    return package, framework


def model_config(model: Any, framework: Any) -> Any:
    """The architecture of a Sequential or functional model, as a file would hold it
    (`model.to_json()`)."""
    if not isinstance(model, framework.Model):
        raise ModelError(f"{type(model).__name__} is not a keras.Model")
    if not isinstance(model, framework.Sequential) and not _is_functional(model):
        raise UnsupportedLayerError(
            f"model '{model.name}' is a subclassed keras.Model whose "
            "call() is arbitrary Python; use Sequential or functional"
        )
    try:
        return json.loads(model.to_json())
    except Exception as exc:  # Keras raises NotImplementedError, TypeError and others
        raise UnsupportedLayerError(
            f"model '{model.name}': Keras cannot describe it ({exc}); use Sequential or functional"
        ) from None


def _is_functional(model: Any) -> bool:
    if getattr(model, "_is_graph_network", False):  # tf_keras
        return True
    return any(c.__name__ == "Functional" for c in type(model).__mro__)


def open_live(model: Any) -> Loaded:
    package, framework = framework_of(model)
    version = str(framework.__version__)
    label = "Keras" if package == "keras" else "tf_keras"
    where = f"model '{getattr(model, 'name', '?')}'"
    spec = model_spec(model_config(model, framework), version, where)
    weights = Weights(LiveStore(model), spec.keras_major)
    ir = build_ir(spec, weights, f"{label} {version}, live model '{model.name}'", where)
    stateful = any(layer.config.get("stateful") for layer in spec.all_layers())
    predict = LiveOracle(model, spec.input_shape, stateful)
    return Loaded(ir, predict, f"{label} {version} model.predict")
