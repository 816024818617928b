"""The IR layer kinds, one module each (see `lstmgen.ir.base` for what a kind owns).

Importing this package registers every kind in `lstmgen.ir.base.LAYER_TYPES`, in the
order below (the order of the README's support table)."""

# the registration order is the support table's order
# isort: off
from .lstm import LSTM
from .gru import GRU
from .simple_rnn import SimpleRNN
from .bidirectional import Bidirectional
from .dense import Dense
from .activation import Activation
from .masking import Masking
from .normalize import Normalize
from .layer_norm import LayerNorm
from .flatten import Flatten
from .conv1d import Conv1D
from .pool1d import Pool1D
from .batch_norm import BatchNorm
from .embedding import Embedding
from .repeat_vector import RepeatVector
from .global_pool import GlobalPool
from .time_slice import TimeSlice

# isort: on

__all__ = [
    "LSTM",
    "GRU",
    "SimpleRNN",
    "Bidirectional",
    "Dense",
    "Activation",
    "Masking",
    "Normalize",
    "LayerNorm",
    "Flatten",
    "Conv1D",
    "Pool1D",
    "BatchNorm",
    "Embedding",
    "RepeatVector",
    "GlobalPool",
    "TimeSlice",
]
