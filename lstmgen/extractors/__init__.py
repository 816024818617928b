"""Front ends: each framework's extractor turns a trained model into the IR.

`open_model` picks the extractor for a source (a path or a live framework object) and
returns a `Loaded`: the IR plus, when the framework is at hand, its own forward pass,
which the verification harness uses as the oracle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..boundary import front_end
from ..errors import LstmgenError
from ..ir import Model

Predict = Callable[[np.ndarray], np.ndarray]


@dataclass
class Loaded:
    ir: Model
    predict: Predict | None  # the framework's own forward on [N, T, D]; None for IR files
    oracle_name: str  # e.g. "Keras 3.15.1 model.predict"
    int8: Any = None  # a full-integer source's own integer model (lstmgen.ir.int8.Int8Model)


@front_end  # any exception a reader did not anticipate: one error line naming the file
def open_model(source: Any, **options: Any) -> Loaded:
    """Extract `source`: a `.keras` / `.npz` / `.pt` path, a keras.Model, a torch
    nn.Module (with `example_input=`), or an IR Model. `options` go to the extractor
    (PyTorch: example_input; state_dict files: head, output; ONNX: output, the name of
    the graph output to compile)."""
    if isinstance(source, Model):
        return Loaded(source.validate(), None, "")
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():  # a folder, a FIFO or a device is no model file
            raise LstmgenError(
                f"{path}: {'not a regular file' if path.exists() else 'no such file'}"
            )
        suffix = path.suffix.lower()
        if suffix == ".npz":
            from ..ir_io import load_ir

            return Loaded(load_ir(path), None, "")
        if suffix in (".keras", ".h5", ".hdf5", ".h5py", ".json") or "weights" in options:
            from . import keras as keras_extractor

            return keras_extractor.open_file(path, options.get("weights"))
        if suffix in (".pt", ".pth"):
            from . import torch as torch_extractor

            return torch_extractor.open_file(path, **options)
        if suffix == ".onnx":
            from . import onnx as onnx_extractor

            return onnx_extractor.open_file(path, output=options.get("output"))
        if suffix == ".tflite":
            from .tflite import open_file as open_tflite

            return open_tflite(path)
        if suffix == ".mat":
            from . import matlab as matlab_extractor

            return matlab_extractor.open_file(path)
        raise LstmgenError(
            f"{path}: unknown model file type '{suffix}'; supported: "
            ".keras/.h5 (Keras), .json + --weights (Keras architecture and weights), "
            ".pt/.pth (PyTorch state_dict), .onnx, .tflite, .mat (from "
            "matlab/lstmgen_export.m), .npz (lstmgen IR)"
        )
    module = type(source).__module__
    if (
        module.startswith("keras")
        or module.startswith("tf_keras")
        or module.startswith("tensorflow")
    ):
        from . import keras as keras_extractor

        return keras_extractor.open_live(source)
    if module.startswith("torch") or _is_torch_module(source):
        from . import torch as torch_extractor

        return torch_extractor.open_live(source, **options)
    raise LstmgenError(
        f"cannot load a {type(source).__name__}; pass a .keras, .pt or .npz "
        "path, a keras.Model, a torch nn.Module, or an lstmgen IR Model"
    )


def _is_torch_module(obj: Any) -> bool:
    return any(c.__module__.startswith("torch.nn") for c in type(obj).__mro__)
