"""The Keras front end: `.keras` archives, `.h5` files (Keras 1, 2, tf.keras 2.x, Keras 3),
architecture JSON + weights pairs, live models, and arrays in hand -> the IR.

Files are read directly (zipfile, json, h5py): no Keras class is instantiated to convert,
so `inspect` and `generate` need no TensorFlow, and no Lambda or custom layer code is ever
deserialised (such layers are refused by name before any weight is read). Everything
lstmgen knows about Keras lives in this package:

- `files`: zip archives and JSON, with the size limits of every read;
- `hdf5`: HDF5 read in a forked child under a memory cap and a deadline (the HDF5
  library's crashes and endless loops on hostile files become one error line);
- `config`: the config dialects of Keras 1/2/3 -> one chain of layer specs;
- `keras1`: Keras 1's config vocabulary and per-gate weight layout;
- `weights`: where each layer's arrays live (legacy HDF5, Keras 3 weights files, live
  models, arrays in hand) and their roles;
- `layers`, `recurrent`, `shaping`: the layer -> IR mappings, keyed by Keras class name;
  `masks`: where Keras's masks part from the IR's;
- `build`: spec + weights -> IR; `reader`: files -> IR + oracle; `live`: live models;
  `arrays`: `from_arrays`; `oracle`: Keras 3 / tf_keras / reference, TensorFlow imported
  only when an oracle runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import Loaded
from .arrays import from_arrays
from .layers import SUPPORTED

__all__ = ["open_file", "open_live", "from_arrays", "SUPPORTED", "PRODUCES"]

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


def open_file(path: Path, weights: str | Path | None = None) -> Loaded:
    """A `.keras`/`.h5` model, or an architecture `.json` with its `weights` file."""
    from .reader import open_file as read

    return read(Path(path), weights)


def open_live(model: Any) -> Loaded:
    """A live Keras 3 or tf_keras model (Sequential or single-path functional)."""
    from .live import open_live as convert

    return convert(model)
