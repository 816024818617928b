"""The framework-neutral intermediate representation (IR) of a recurrent model.

This package owns the one canonical layout that every extractor writes and every target
reads. Nothing here knows any framework.

* `model` -- `Model`: the input size and the ordered layers; validation; derived facts.
* `base` -- what a layer kind declares (`Layer`) and the registry `LAYER_TYPES`.
* `layers/` -- one module per layer kind: its fields and canonical array layout (each
  module's docstring gives the exact semantics), validation, description, float64
  reference and facts. LSTM rows are in gate order **i, f, g, o**, GRU rows **z, r, n**.
* `activations` -- the activation names and their exact definitions.

A model is an input size D and an ordered list of layers. Data flows as a sequence of T
rows until a layer returns one vector (see `model`). Every state starts at zero for every
sequence (as the frameworks' `predict` does) unless a layer says otherwise. All arrays are
float32, C order.
"""

from .activations import (
    ACTIVATIONS,
    ALL_ACTIVATIONS,
    ELEMENTWISE_ACTIVATIONS,
    VECTOR_ACTIVATIONS,
    activate,
)
from .base import LAYER_TYPES, Layer
from .checks import float32
from .layers import (
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
    LayerNorm,
    Masking,
    Normalize,
    Pool1D,
    RepeatVector,
    SimpleRNN,
    TimeSlice,
)
from .layers.bidirectional import MERGE_MODES, Recurrent
from .layers.lstm import FEATURE_TITLES, GATES
from .layers.windows import PADDINGS, window_padding
from .model import Model

RECURRENT_TYPES = (LSTM, GRU, SimpleRNN, Bidirectional)

__all__ = [
    "ACTIVATIONS",
    "ALL_ACTIVATIONS",
    "ELEMENTWISE_ACTIVATIONS",
    "FEATURE_TITLES",
    "GATES",
    "GRU",
    "LAYER_TYPES",
    "LSTM",
    "MERGE_MODES",
    "PADDINGS",
    "RECURRENT_TYPES",
    "VECTOR_ACTIVATIONS",
    "Activation",
    "BatchNorm",
    "Bidirectional",
    "Conv1D",
    "Dense",
    "Embedding",
    "Flatten",
    "GlobalPool",
    "Layer",
    "LayerNorm",
    "Masking",
    "Model",
    "Normalize",
    "Pool1D",
    "Recurrent",
    "RepeatVector",
    "SimpleRNN",
    "TimeSlice",
    "activate",
    "float32",
    "window_padding",
]
