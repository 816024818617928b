"""PyTorch front end: a live `nn.Module` (with an example input) or a saved state_dict into
the IR. Everything lstmgen knows about PyTorch lives in this package:

* `export.py` captures forward with torch.export and walks its aten graph; the op handlers
  are in `aten.py` (what computes) and `shapes.py` (what moves axes), registered by op
  name in `context.py`; `values.py` is what each tensor of the graph is to lstmgen;
* `recurrent.py` maps nn.LSTM/GRU/RNN parameters to IR layers, for every path;
* `state_dict.py` reads state_dict files (recurrent modules recognised from the shapes,
  the rest stated as assumptions); `load.py` loads files safely;
* `oracle.py` wraps forward as the oracle and checks every IR against it;
* `modules.py` is the fallback where torch.export cannot capture forward: leaf modules in
  registration order.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import numpy as np

from ...errors import LstmgenError, ModelError, UnsupportedLayerError
from ...ir import Layer, Model
from .. import Loaded
from . import export
from .context import SUPPORTED
from .load import import_torch
from .oracle import check, module_predict

__all__ = ["FEATURES_PRODUCED", "PRODUCES", "SUPPORTED", "open_file", "open_live"]

#: IR layer kind -> what PyTorch code becomes it (for the README's support table).
PRODUCES = {
    "lstm": "nn.LSTM",
    "gru": "nn.GRU",
    "simple_rnn": "nn.RNN",
    "bidirectional": "bidirectional=True",
    "dense": "nn.Linear, x @ W + b",
    "activation": "relu, sigmoid, tanh, softmax, log_softmax, ...",
    "normalize": "(x - mean) / std on the input",
    "layer_norm": "nn.LayerNorm",
    "flatten": "flatten/view of [B, T, F] to [B, T*F]",
    "batch_norm": "nn.BatchNorm1d",
    "embedding": "nn.Embedding",
    "global_pool": "mean/max over time",
    "time_slice": "out[:, -1], out[:, a:b]",
}
FEATURES_PRODUCED = {"projection": "proj_size", "initial_state": "constant h0/c0 (LSTM)"}


def open_live(module: Any, example_input: Any = None) -> Loaded:
    """The IR of a live nn.Module. `example_input` is what forward takes: [B, T, D] (or
    [T, B, D] when the recurrent module is not batch_first), or integer token ids [B, T]
    for a module that starts with an nn.Embedding."""
    torch = import_torch()
    if example_input is None:
        raise ModelError(
            "a live PyTorch module needs example_input (a tensor [B, T, D], or [T, B, D] when "
            "not batch_first): lstmgen captures forward on it and checks what it read"
        )
    module = copy.deepcopy(module).eval()  # inference mode without touching the caller's
    example = _as_tensor(torch, module, example_input)
    if export.capture_steps(torch, module, example) is not None:
        try:  # captured on fewer timesteps first: export's time grows with them
            return _read_live(torch, module, example, short=True)
        except (export.CaptureFailed, LstmgenError):
            pass  # read again on the whole example, which says what is wrong
    return _read_live(torch, module, example, short=False)


def _read_live(torch: Any, module: Any, example: Any, short: bool) -> Loaded:
    label = type(module).__name__
    notes: list[str] = []
    try:
        reading = export.read_module(torch, module, example, short)
        layers, input_axes = list(reading.flow.layers), reading.input_axes
        output_axes = reading.flow.axes
        timesteps = reading.timesteps if reading.fixed_timesteps else None
        notes += reading.notes
    except export.CaptureFailed as failure:
        if short:
            raise
        from .modules import read_leaves

        try:
            layers, input_axes, output_axes = read_leaves(torch, module, example)
        except UnsupportedLayerError as exc:
            raise UnsupportedLayerError(
                f"torch.export cannot capture {label}.forward ({failure}), and its modules in "
                f"registration order do not describe it: {exc}"
            ) from None
        timesteps = None
        notes.append(
            f"torch.export could not capture forward ({failure}); lstmgen read the leaf "
            "modules in registration order instead (checked against forward)"
        )
    ids = not example.dtype.is_floating_point
    ir = Model(
        input_size=1 if ids else int(example.shape[-1]),
        layers=unique_names(layers),
        name=label,
        source=f"PyTorch {torch.__version__}, live module {label}",
        timesteps=timesteps,
        notes=notes,
    )
    ir.validate()
    predict = module_predict(torch, module, ir, input_axes, output_axes)
    check(ir, predict, _lstmgen_layout(example, input_axes), f"{label}.forward")
    return Loaded(ir, predict, f"PyTorch {torch.__version__} module forward")


def open_file(
    path: Path,
    head: Sequence[str] | None = None,
    output: str = "last",
    nonlinearity: str | None = None,
) -> Loaded:
    """A state_dict file (see `state_dict.py`): `head` names what follows the recurrent
    module (Linear/LayerNorm/BatchNorm1d prefixes and activation names, in order);
    `output` says what forward reads from it ("last" = out[:, -1], "sequence", "h_n");
    `nonlinearity` is an nn.RNN's (tanh or relu)."""
    from .state_dict import open_file as open_state_dict

    return open_state_dict(Path(path), head, output, nonlinearity)


def _as_tensor(torch: Any, module: Any, example: Any) -> Any:
    tensor = example if isinstance(example, torch.Tensor) else torch.as_tensor(np.asarray(example))
    if tensor.dtype.is_floating_point:
        dtype = next(
            (p.dtype for p in module.parameters() if p.dtype.is_floating_point), torch.float32
        )
        return tensor.detach().to(dtype)
    return tensor.detach().to(torch.int64)


def _lstmgen_layout(example: Any, input_axes: tuple) -> np.ndarray:
    """The example as lstmgen's input: [N, T, D] float32 (token ids: [N, T, 1])."""
    x = example.detach().cpu().numpy()
    if input_axes[0] == "T":
        x = np.swapaxes(x, 0, 1)
    if not example.dtype.is_floating_point:
        x = x[..., None]
    return np.ascontiguousarray(x.astype(np.float32))


def unique_names(layers: list[Layer]) -> list[Layer]:
    """The layers, a repeated name (a module called twice) numbered: relu, relu_2, ..."""
    taken = {layer.name for layer in layers}
    seen: set[str] = set()
    result = []
    for layer in layers:
        name, count = layer.name, 1
        while name in seen:
            count += 1
            name = f"{layer.name}_{count}"
            name = name if name not in taken else f"{name}_"
        seen.add(name)
        result.append(layer if name == layer.name else replace(cast(Any, layer), name=name))
    return result
