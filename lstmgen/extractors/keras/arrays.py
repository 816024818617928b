"""Arrays in hand -> the IR: a model built from a framework's own arrays without a file
(a `get_weights()` dump pasted from a notebook, weights from a paper's appendix).

The caller names each layer's Keras class and config (the layer's constructor arguments,
in the vocabulary of the Keras that trained it) and gives its arrays as Keras keeps them;
the mapping to the IR (transposes, gate order, Keras 1's per-gate arrays, which
`hard_sigmoid`) stays lstmgen's job.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...errors import ModelError
from ...ir import Model
from .build import build_ir
from .config import model_spec, snake_case
from .weights import ListStore, Weights


def from_arrays(
    layers: Sequence[tuple[str, dict[str, Any], Sequence[Any]]],
    *,
    input_shape: Sequence[int | None],
    keras_version: int | str,
    name: str = "model",
) -> Model:
    """The IR of a Sequential model given as arrays.

    `layers`: one `(class_name, config, arrays)` per layer, e.g.
    `("LSTM", {"units": 50, "return_sequences": False}, [kernel, recurrent_kernel, bias])`
    (Keras 2/3: kernel (D, 4H) with gate columns i, f, c, o) or, for Keras 1,
    `("LSTM", {"output_dim": 50}, [W_i, U_i, b_i, W_c, U_c, b_c, W_f, U_f, b_f, W_o, U_o,
    b_o])`; `arrays` in the order `layer.get_weights()` returns them (a Bidirectional: the
    forward layer's, then the backward layer's). Settings left out take that Keras
    version's defaults (Keras 1 and 2: `recurrent_activation='hard_sigmoid'`, which is
    0.2x + 0.5 there). Wrappers give the wrapped layer as Keras serializes it:
    `("Bidirectional", {"layer": {"class_name": "LSTM", "config": {...}}}, [...])`.

    `input_shape`: (timesteps, features) with timesteps None when free, or (timesteps,)
    for a model whose first layer is an Embedding (token ids).
    `keras_version`: the Keras that trained the arrays, e.g. 1, 2, 3 or "2.2.4".
    """
    version = str(keras_version)
    if not version[:1].isdigit():
        raise ModelError(f"keras_version {keras_version!r}: expected e.g. 1, 2, 3 or '2.2.4'")
    configs: list[dict[str, Any]] = [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, *input_shape]}}
    ]
    arrays: dict[str, list[Any]] = {}
    for index, entry in enumerate(layers):
        if not (isinstance(entry, (tuple, list)) and len(entry) == 3):
            raise ModelError(f"layers[{index}]: expected (class_name, config, arrays)")
        class_name, config, values = entry
        if not isinstance(class_name, str) or not isinstance(config, dict):
            raise ModelError(f"layers[{index}]: expected (class_name, config, arrays)")
        layer_name = config.get("name") or f"{snake_case(class_name)}_{index}"
        if layer_name in arrays:
            raise ModelError(f"layers[{index}]: a second layer named '{layer_name}'")
        configs.append({"class_name": class_name, "config": {**config, "name": layer_name}})
        arrays[layer_name] = list(values)
    top = {"class_name": "Sequential", "config": {"name": name, "layers": configs}}
    spec = model_spec(top, version, "the layers given")
    weights = Weights(ListStore(arrays), spec.keras_major)
    return build_ir(spec, weights, f"Keras {version} arrays", "the arrays given")
