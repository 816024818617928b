"""The `.tflite` file itself as the oracle of `lstmgen verify`.

A float model runs in TensorFlow Lite's interpreter with its reference kernels
(`experimental_op_resolver_type=BUILTIN_REF`: without it XNNPACK computes the float ops);
a full-integer model runs in TensorFlow Lite Micro's interpreter (`pip install
tflite-micro`, TFLM's own kernels on the host), whose results the int8-full build
reproduces bit for bit. Each falls back on the other interpreter when only that one is
installed. Both take one sequence at a time (batch 1, the file's T) and start every sequence
from a zero state. Float inputs of an int8 model are quantized and its outputs dequantized
as TensorFlow Lite's QUANTIZE and DEQUANTIZE operators do.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import LstmgenError
from ...ir import Model
from ...ir.int8 import Int8Model, dequantize_values, quantize_values

Predict = Callable[[np.ndarray], np.ndarray]


def tflm_interpreter(path: Path) -> Any:
    from tflite_micro.python.tflite_micro import runtime

    return runtime.Interpreter.from_file(str(path))


def reference_interpreter(path: Path) -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    kind = tf.lite.experimental.OpResolverType.BUILTIN_REF
    with warnings.catch_warnings():  # its deprecation notice (LiteRT) is not the user's concern
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_path=str(path), experimental_op_resolver_type=kind)
    interpreter.allocate_tensors()
    return interpreter


def run_tflm(interpreter: Any, x: np.ndarray) -> list[np.ndarray]:
    """The output tensor for each sequence of x [N, T, D] (in the input tensor's dtype)."""
    shape = interpreter.get_input_details(0)["shape"]
    outputs = []
    for sequence in x:
        interpreter.set_input(sequence.reshape(shape), 0)
        interpreter.invoke()
        outputs.append(np.array(interpreter.get_output(0)))
        interpreter.reset()
    return outputs


def run_reference(interpreter: Any, x: np.ndarray) -> list[np.ndarray]:
    source = interpreter.get_input_details()[0]
    target = interpreter.get_output_details()[0]
    outputs = []
    for sequence in x:
        interpreter.reset_all_variables()  # LSTM states persist across invokes otherwise
        interpreter.set_tensor(source["index"], sequence.reshape(source["shape"]))
        interpreter.invoke()
        outputs.append(np.array(interpreter.get_tensor(target["index"])))
    return outputs


Runner = Callable[[Any, np.ndarray], list[np.ndarray]]


def oracle_for(path: Path, model: Model, integer: Int8Model | None) -> tuple[Predict | None, str]:
    """The file's own forward pass on float inputs [N, T, D] (outputs shaped as the IR's:
    [N, T, O] or [N, O]), and its name. The interpreter starts on the first call."""
    makers: list[tuple[str, str, Callable[[Path], Any], Runner]] = [
        (
            "TensorFlow Lite reference kernels (BUILTIN_REF)",
            "tensorflow",
            reference_interpreter,
            run_reference,
        ),
        ("TensorFlow Lite Micro interpreter", "tflite_micro", tflm_interpreter, run_tflm),
    ]
    if integer is not None:
        makers.reverse()
    for name, module, make, run in makers:
        if importlib.util.find_spec(module) is not None:
            oracle = f"{name} on {Path(path).name}"
            return _predict(path, oracle, make, run, model, integer), oracle
    return None, ""


def _predict(
    path: Path,
    name: str,
    make: Callable[[Path], Any],
    run: Runner,
    model: Model,
    integer: Int8Model | None,
) -> Predict:
    started: list[Any] = []

    def predict(x: np.ndarray) -> np.ndarray:
        if not started:
            try:
                started.append(make(path))
            except Exception as exc:  # the interpreter's own refusal of the file
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise LstmgenError(f"{path}: {name} cannot run it ({first})") from None
        interpreter = started[0]
        x = np.asarray(x, np.float32)
        fed = x if integer is None else _interface_input(interpreter, x, integer)
        shape: tuple[int, ...] = (model.output_size,)
        if model.returns_sequences:
            shape = (model.output_timesteps(x.shape[1]), model.output_size)
        raw = np.stack([y.reshape(shape) for y in run(interpreter, fed)])
        if integer is None or raw.dtype == np.float32:
            return raw
        return dequantize_values(raw, integer.output)

    return predict


def _interface_input(interpreter: Any, x: np.ndarray, integer: Int8Model) -> np.ndarray:
    """x as the file's input tensor takes it: float, or int8 quantized by the caller."""
    if hasattr(interpreter, "reset_all_variables"):  # tf.lite.Interpreter
        dtype = interpreter.get_input_details()[0]["dtype"]
    else:  # TFLite Micro's
        dtype = interpreter.get_input_details(0)["dtype"]
    return x if dtype == np.float32 else quantize_values(x, integer.input)
