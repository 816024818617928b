"""TensorFlow Lite front end: `.tflite` files (float or full-integer) into the IR.

Everything lstmgen knows about TensorFlow Lite lives in this package: `flatbuffer.py` reads
the container with bounds checks, `schema.py` the records lstmgen needs, `graph.py` walks
the operators into IR layers (`layers.py` maps each operator's inputs), `oracle.py` runs
the file itself in TensorFlow Lite's interpreters for `lstmgen verify`. No TensorFlow is
needed to read a file; the oracles need `tensorflow` or `tflite-micro`.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import LstmgenError
from ...ir.int8 import INT8_SOURCE_ATTRIBUTE
from .. import Loaded
from .graph import SUPPORTED
from .schema import read_model

PRODUCES = {
    "lstm": "UNIDIRECTIONAL_SEQUENCE_LSTM",
    "simple_rnn": "UNIDIRECTIONAL_SEQUENCE_RNN",
    "bidirectional": "BIDIRECTIONAL_SEQUENCE_LSTM, REVERSE_V2 + CONCATENATION",
    "dense": "FULLY_CONNECTED",
    "activation": "SOFTMAX, LOGISTIC, TANH, RELU",
}
FEATURES_PRODUCED = {
    "peephole": "cell-to-gate weights (float)",
    "projection": "projection weights (float)",
}

__all__ = ["PRODUCES", "FEATURES_PRODUCED", "SUPPORTED", "open_file", "read_file"]


def read_file(path: Path):  # -> tuple[Model, Int8Model | None]
    """The IR of a `.tflite` file and, for a full-integer model, its integer model."""
    from .graph import Walk

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise LstmgenError(f"{path}: cannot read it ({exc.strerror})") from None
    try:
        model = read_model(data)
        return Walk(model, f"TensorFlow Lite, {Path(path).name}").run()
    except LstmgenError as exc:
        raise type(exc)(f"{path}: {exc}") from None


def open_file(path: Path) -> Loaded:
    from .oracle import oracle_for

    ir, integer = read_file(path)
    if integer is not None:  # for --quantize int8-full: the file's own integer model
        setattr(ir, INT8_SOURCE_ATTRIBUTE, integer)
    predict, name = oracle_for(path, ir, integer)
    return Loaded(ir, predict, name, int8=integer)
