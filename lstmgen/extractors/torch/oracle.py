"""The module's own forward as lstmgen's oracle, and the check of an extracted IR against it.

`module_predict` wraps forward so it takes and returns lstmgen's layout ([N, T, D] in,
[N, O] or [N, T, O] out; token ids as floats [N, T, 1]), whatever the module's axes are.
`check` compares the IR's float64 reference with forward on the user's example and on
inputs of another batch size and length (a few steps longer, or shorter for a long
example): an IR that differs is refused, not guessed; a forward that only agrees at the
example's length fixes the model's timesteps to it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ...errors import UnsupportedLayerError
from ...ir import Model
from ...sampling import sample_inputs
from .values import Axis, components

CHECK_TOLERANCE = 1e-4
Predict = Callable[[np.ndarray], np.ndarray]


def module_predict(
    torch: Any,
    module: Any,
    model: Model,
    input_axes: tuple[Axis, ...],
    output_axes: tuple[Axis, ...],
) -> Predict:
    """forward in lstmgen's layout (see the module docstring)."""
    ids = model.token_vocabulary is not None
    time_first = input_axes[0] == "T"
    dtype = next((p.dtype for p in module.parameters() if p.dtype.is_floating_point), torch.float32)

    def predict(xs: np.ndarray) -> np.ndarray:
        xs = np.asarray(xs)
        xt = (
            torch.as_tensor(xs[..., 0].astype(np.int64))
            if ids
            else torch.as_tensor(xs, dtype=dtype)
        )
        if time_first:
            xt = xt.transpose(0, 1)
        with torch.no_grad():
            y = module(xt)
        if not isinstance(y, torch.Tensor):
            raise UnsupportedLayerError(f"forward returns a {type(y).__name__}, not one tensor")
        n, t_len = xs.shape[0], xs.shape[1]
        steps = model.output_timesteps(t_len) if model.returns_sequences else 1
        return to_lstmgen_layout(y.detach().cpu().numpy().astype(np.float32), output_axes, n, steps)

    return predict


def to_lstmgen_layout(y: np.ndarray, axes: tuple[Axis, ...], n: int, steps: int) -> np.ndarray:
    """`y` with axes `axes` (see values.py) as [N, O] or [N, T, O]."""
    labels = [c for axis in axes for c in components(axis)]
    sizes = {"B": n, "T": steps, "1": 1}
    width = y.size // int(np.prod([sizes.get(c, 1) for c in labels]))
    y = y.reshape([sizes.get(c, width) for c in labels])
    keep = [k for k, c in enumerate(labels) if c != "1"]
    y = y.reshape([y.shape[k] for k in keep])
    labels = [labels[k] for k in keep]
    if "F" not in labels:
        y, labels = y[..., None], [*labels, "F"]
    order = [labels.index(c) for c in ("B", "T", "F") if c in labels]
    return np.transpose(y, order)


def _max_error(got: np.ndarray, expected: np.ndarray) -> float:
    if got.shape != expected.shape:
        return float("inf")
    rel = np.abs(got - expected) / np.maximum(np.abs(expected), 1.0)
    return float(np.max(rel)) if rel.size else 0.0


def _error_at(model: Model, predict: Predict, x: np.ndarray) -> float:
    from ...reference import forward

    return _max_error(forward(model, x).astype(np.float32), predict(x))


def check(model: Model, predict: Predict, example: np.ndarray, forward_name: str) -> None:
    """Refuse `model` unless its reference matches forward (called `forward_name` in
    messages) on `example` (lstmgen layout); then try another batch size and length (see
    the module docstring)."""
    error = _error_at(model, predict, example)
    if not error <= CHECK_TOLERANCE:
        raise UnsupportedLayerError(
            f"{forward_name} and the IR lstmgen read disagree on "
            f"example_input (max relative error {error:.3g}); the IR: "
            + "; ".join(layer.describe() for layer in model.layers)
        )
    n, t_len = example.shape[0] + 1, example.shape[1]
    other = t_len + 3 if t_len <= 12 else max(t_len - 7, model.min_timesteps())
    lengths = [t_len] if model.timesteps or other == t_len else [other, t_len]
    for length in lengths:
        x = sample_inputs(model, n, length, seed=length)
        try:
            error = _error_at(model, predict, x)
        except Exception:  # forward itself fails on other lengths
            error = float("inf")
        if error <= CHECK_TOLERANCE:
            return
        if length == t_len:
            raise UnsupportedLayerError(
                f"{forward_name} and the IR lstmgen read disagree on a "
                f"batch of {n} (max relative error {error:.3g}); forward treats the "
                "sequences of a batch differently"
            )
        model.timesteps = t_len
        model.notes.append(
            f"forward computes something else (or fails) for {length} timesteps than the IR "
            f"does; the model is read for the example's {t_len} timesteps only"
        )
