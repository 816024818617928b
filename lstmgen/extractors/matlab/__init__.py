"""MATLAB front end: `.mat` files written by `matlab/lstmgen_export.m` into the IR.

MATLAB's network objects cannot be read outside MATLAB, so the export script writes a
plain v7 `.mat` file: a cell array `layers`, one struct per layer with a `Type` field
('sequenceInput', 'lstm', 'fullyConnected', 'relu', 'tanh', 'sigmoid', 'softmax',
'dropout') and the layer's own MATLAB property names and shapes. Everything lstmgen knows
about MATLAB lives here: lstmLayer's InputWeights (4H x D), RecurrentWeights (4H x H) and
Bias (4H x 1) have row blocks i, f, g, o -- the IR layout as is; 'hard-sigmoid' is
clip(0.2x + 0.5, 0, 1); StateActivationFunction applies to the cell candidate and to c
before the output gate; `predict` starts from a zero state. sequenceInputLayer's 'zscore'
and 'center' normalization become a Normalize layer, (x - Mean) ./ StandardDeviation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...errors import MissingDependencyError, ModelError, UnsupportedLayerError
from ...ir import LSTM, Activation, Dense, Layer, Model, Normalize, float32
from ...limits import check_layers
from .. import Loaded
from .scan import check_mat_file

SUPPORTED = (
    "sequenceInput (Normalization none/zscore/center), lstm (OutputMode sequence/"
    "last; StateActivationFunction tanh/softsign/relu; GateActivationFunction "
    "sigmoid/hard-sigmoid), fullyConnected, relu, tanh, sigmoid, softmax, dropout"
)
#: IR layer kind -> the MATLAB layers that become it (for the README's support table).
PRODUCES = {
    "lstm": "lstmLayer",
    "dense": "fullyConnectedLayer",
    "activation": "reluLayer, tanhLayer, sigmoidLayer, softmaxLayer",
    "normalize": "sequenceInputLayer zscore/center",
}
STATE_ACTIVATIONS = {"tanh": "tanh", "softsign": "softsign", "relu": "relu"}
GATE_ACTIVATIONS = {"sigmoid": "sigmoid", "hard-sigmoid": "hard_sigmoid_0.2"}
LSTM_ORIGIN = (
    "MATLAB lstmLayer: InputWeights (4H, D) rows i,f,g,o -> input_weights as is; "
    "RecurrentWeights (4H, H) -> recurrent_weights as is; Bias (4H, 1) -> bias; "
    "GateActivationFunction -> gate, StateActivationFunction -> cell and output"
)


def open_file(path: Path) -> Loaded:
    try:
        import scipy.io
    except ImportError:
        raise MissingDependencyError(
            "reading .mat files needs scipy: pip install 'lstmgen[matlab]'"
        ) from None
    check_mat_file(path)  # every declared size within the limits, before scipy reads it
    try:
        contents = scipy.io.loadmat(str(path), squeeze_me=False, struct_as_record=True)
    except Exception as exc:  # scipy raises ValueError, TypeError, MatReadError, ...
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelError(f"{path}: not a readable MATLAB .mat file ({first})") from None
    cells = contents.get("layers")
    if not isinstance(cells, np.ndarray) or cells.dtype != object:
        objects = _matlab_objects(contents)
        if objects:
            raise ModelError(
                f"{path}: holds MATLAB object {objects[0]}, which only MATLAB can read; "
                "export the network in MATLAB with matlab/lstmgen_export.m and convert "
                "the file it writes"
            )
        raise ModelError(
            f"{path}: no cell array 'layers'; write the file with matlab/lstmgen_export.m"
        )
    check_layers(f"{path}: the cell array 'layers'", cells.size)
    records = [_record(cell, k, path) for k, cell in enumerate(cells.ravel(order="F"))]
    try:
        ir = extract(records, name=path.stem, source=f"MATLAB export, file {path.name}")
    except ModelError as exc:  # the same error, naming the file
        raise type(exc)(f"{path}: {exc}") from None
    return Loaded(ir, None, "")


def _matlab_objects(contents: dict) -> list[str]:
    """The MATLAB class objects saved in the file (opaque outside MATLAB), e.g. "'net'
    (SeriesNetwork)": what `save(file, 'net')` writes after trainNetwork."""
    found = []
    for value in contents.values():
        if type(value).__name__ != "MatlabOpaque" or value.dtype.names is None:
            continue
        for item in np.asarray(value).ravel():
            fields = [
                bytes(item[n]).decode("utf-8", "replace") if isinstance(item[n], bytes) else ""
                for n in ("s0", "s2")
                if n in value.dtype.names
            ]
            if len(fields) == 2 and all(fields):
                found.append(f"'{fields[0]}' ({fields[1]})")
    return found


def _record(cell: Any, k: int, path: Path) -> dict[str, Any]:
    if not isinstance(cell, np.ndarray) or cell.dtype.names is None or cell.size != 1:
        raise ModelError(f"{path}: layers{{{k + 1}}} is not a struct")
    return {name: _value(cell[name].ravel()[0]) for name in cell.dtype.names}


class Unreadable:
    """A field value that is neither text nor real numbers (a function handle, an object,
    a struct, a cell array, complex numbers): every use of it is an error naming it."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __str__(self) -> str:
        return self.what

    __repr__ = __str__


def _value(v: Any) -> Any:
    """A field's value: text as str, real numbers as a float64 array, else Unreadable."""
    if isinstance(v, np.ndarray) and v.dtype.kind == "U":
        return str(v.ravel()[0]) if v.size else ""
    if isinstance(v, np.ndarray) and v.dtype.kind in "fiub" and v.dtype.names is None:
        return np.asarray(v, dtype=np.float64)
    kind = type(v).__name__
    if kind == "MatlabFunction":
        return Unreadable("a function handle")
    if kind == "MatlabObject":
        return Unreadable(f"a MATLAB object of class {getattr(v, 'classname', '?')!r}")
    if kind == "MatlabOpaque":
        return Unreadable("an opaque MATLAB object")
    if isinstance(v, np.ndarray) and v.dtype.names is not None:
        return Unreadable("a struct")
    if isinstance(v, np.ndarray) and v.dtype.kind == "c":
        return Unreadable("complex numbers")
    if isinstance(v, np.ndarray) and v.dtype == object:
        return Unreadable("a cell array")
    return Unreadable(f"a {kind}")


def extract(records: list[dict[str, Any]], name: str = "matlab", source: str = "") -> Model:
    """The IR of the layer records (dicts with MATLAB's field names)."""
    layers: list[Layer] = []
    notes: list[str] = []
    input_size: int | None = None
    width = 0
    sequence = True
    for k, rec in enumerate(records):
        kind = rec.get("Type")
        given = rec.get("Name")
        lname = given if isinstance(given, str) and given else f"layer{k + 1}"
        where = f"layer {k + 1} '{lname}' ({kind})"
        if not isinstance(kind, str):
            raise ModelError(f"layer {k + 1} '{lname}': field Type holds {kind}, not text")
        if k == 0 and kind != "sequenceInput":
            raise UnsupportedLayerError(
                f"{where}: the first layer must be sequenceInput; supported: {SUPPORTED}"
            )
        if kind == "sequenceInput":
            if k != 0:
                raise UnsupportedLayerError(f"{where}: only as the first layer")
            input_size = width = _int(rec, "InputSize", where)
            layers.extend(_normalization(rec, lname, width, where))
        elif kind == "lstm":
            layer = _lstm(rec, lname, width, where)
            if not sequence:
                raise UnsupportedLayerError(f"{where}: follows an lstm with OutputMode 'last'")
            sequence = layer.return_sequences
            layers.append(layer)
            width = layer.units
        elif kind == "fullyConnected":
            w = _matrix(rec, "Weights", where)
            b = _matrix(rec, "Bias", where).reshape(-1)
            if w.shape[1] != width or b.shape != (w.shape[0],):
                raise ModelError(
                    f"{where}: Weights {w.shape} / Bias {b.shape} do not fit an "
                    f"input of size {width}"
                )
            layers.append(
                Dense(
                    lname,
                    float32(w),
                    float32(b),
                    origin="MATLAB fullyConnectedLayer: Weights (O, I) and Bias (O, 1) as is",
                )
            )
            width = w.shape[0]
        elif kind in ("relu", "tanh", "sigmoid", "softmax"):
            layers.append(Activation(lname, width, kind, origin=f"MATLAB {kind}Layer"))
        elif kind == "dropout":
            notes.append(f"dropped '{lname}' (dropout): identity at inference")
        else:
            raise UnsupportedLayerError(
                f"{where}: layer type {kind!r} is not supported; supported: {SUPPORTED}"
            )
    if input_size is None:
        raise ModelError("no sequenceInput layer")
    return Model(
        input_size=input_size, layers=layers, name=name, source=source, notes=notes
    ).validate()


def _int(rec: dict, field: str, where: str) -> int:
    if not isinstance(rec.get(field, np.nan), (float, np.ndarray)):
        raise ModelError(f"{where}: {field} must be a positive integer, got {rec.get(field)}")
    value = np.asarray(rec.get(field, np.nan), dtype=np.float64).ravel()
    if value.size != 1 or not np.isfinite(value[0]) or value[0] < 1 or value[0] % 1:
        raise ModelError(f"{where}: {field} must be a positive integer, got {rec.get(field)!r}")
    return int(value[0])


def _matrix(rec: dict, field: str, where: str) -> np.ndarray:
    value = rec.get(field)
    if not isinstance(value, np.ndarray) or value.ndim != 2:
        raise ModelError(f"{where}: field {field} is missing or not a numeric matrix")
    return value


def _normalization(rec: dict, name: str, d: int, where: str) -> list[Layer]:
    mode = str(rec.get("Normalization", "none")).lower()
    if mode == "none":
        return []
    if mode not in ("zscore", "center"):
        raise UnsupportedLayerError(
            f"{where}: Normalization '{mode}' is not supported; supported: none, zscore, center"
        )
    mean = _matrix(rec, "Mean", where).reshape(-1)
    std = _matrix(rec, "StandardDeviation", where).reshape(-1) if mode == "zscore" else np.ones(1)
    if mean.size not in (1, d) or std.size not in (1, d):
        raise ModelError(f"{where}: Mean/StandardDeviation must have 1 or InputSize={d} values")
    mean, std = np.broadcast_to(mean, (d,)), np.broadcast_to(std, (d,))
    if np.any(std <= 0):
        raise ModelError(f"{where}: StandardDeviation must be positive")
    return [
        Normalize(
            f"{name}_{mode}",
            float32(mean),
            float32(std),
            origin=f"MATLAB sequenceInputLayer Normalization '{mode}': (x - Mean) "
            "./ StandardDeviation",
        )
    ]


def _lstm(rec: dict, name: str, d: int, where: str) -> LSTM:
    w = _matrix(rec, "InputWeights", where)
    u = _matrix(rec, "RecurrentWeights", where)
    b = _matrix(rec, "Bias", where).reshape(-1)
    h = u.shape[1]
    if w.shape != (4 * h, d) or u.shape != (4 * h, h) or b.shape != (4 * h,):
        raise ModelError(
            f"{where}: InputWeights {w.shape}, RecurrentWeights {u.shape}, Bias "
            f"{b.shape} do not fit 4H x D, 4H x H, 4H x 1 with D={d}, H={h}"
        )
    state = str(rec.get("StateActivationFunction", "tanh"))
    gate = str(rec.get("GateActivationFunction", "sigmoid"))
    if state not in STATE_ACTIVATIONS:
        raise UnsupportedLayerError(
            f"{where}: StateActivationFunction '{state}'; supported: {', '.join(STATE_ACTIVATIONS)}"
        )
    if gate not in GATE_ACTIVATIONS:
        raise UnsupportedLayerError(
            f"{where}: GateActivationFunction '{gate}'; supported: {', '.join(GATE_ACTIVATIONS)}"
        )
    mode = str(rec.get("OutputMode", "sequence"))
    if mode not in ("sequence", "last"):
        raise UnsupportedLayerError(f"{where}: OutputMode '{mode}'; supported: sequence, last")
    return LSTM(
        name,
        float32(w),
        float32(u),
        float32(b),
        gate_activation=GATE_ACTIVATIONS[gate],
        cell_activation=STATE_ACTIVATIONS[state],
        output_activation=STATE_ACTIVATIONS[state],
        return_sequences=mode == "sequence",
        origin=LSTM_ORIGIN,
    )
