"""Keras 1 specifics: its config vocabulary and its weight layout.

Config: `output_dim` (units), `inner_activation` (recurrent_activation; default
`hard_sigmoid`, which is 0.2x + 0.5), `bias` (use_bias), `p` (Dropout rate),
`consume_less`; regularizer/initializer keys (`W_regularizer`, `init`, ...) mean nothing at
inference. `translate` turns a Keras 1 layer config into the Keras 2 vocabulary the layer
mappings read.

Weights: with `consume_less` 'cpu' or 'mem' an LSTM keeps twelve per-gate arrays
W_i, U_i, b_i, W_c, U_c, b_c, W_f, U_f, b_f, W_o, U_o, b_o (stored in the order i, c, f, o),
a GRU nine (W_z, U_z, b_z, W_r, U_r, b_r, W_h, U_h, b_h); with 'gpu' one fused W, U, b in
Keras 2's gate order (LSTM i, f, c, o; GRU z, r, h). A Keras 1 GRU applies the reset gate
before the recurrent product (Keras 2's reset_after=False). SimpleRNN keeps W, U, b;
Dense W, b; Embedding W. Names carry the layer name (`lstm_1_W_i`), with TensorFlow's
`:0` suffix or without (Theano). `stack` assembles them into Keras 2's arrays.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from ...errors import ModelError

#: The Keras 1 layers lstmgen reads.
CLASSES = (
    "LSTM",
    "GRU",
    "SimpleRNN",
    "Bidirectional",
    "Embedding",
    "Dense",
    "Activation",
    "Dropout",
    "TimeDistributed",
    "InputLayer",
    "Sequential",
    "Model",
)
#: Config keys only Keras 1 wrote.
KERAS1_KEYS = frozenset(
    {
        "inner_activation",
        "consume_less",
        "W_regularizer",
        "U_regularizer",
        "b_regularizer",
        "W_constraint",
        "inner_init",
        "forget_bias_init",
        "dropout_W",
        "dropout_U",
        "input_dtype",
    }
)
RECURRENT = ("LSTM", "GRU", "SimpleRNN")
#: Per-gate arrays, in the order Keras 1 stored them, and Keras 2's fused gate order.
STORED_GATES = {"LSTM": "icfo", "GRU": "zrh"}
FUSED_GATES = {"LSTM": "ifco", "GRU": "zrh"}


def looks_like_keras1(obj: dict) -> bool:
    """True for a layer object whose config uses Keras 1 keys."""
    config = obj.get("config")
    if not isinstance(config, dict):
        return False
    if KERAS1_KEYS.intersection(config):
        return True
    # Keras 2 kept `output_dim` only on Embedding
    return obj.get("class_name") in ("Dense", *RECURRENT) and "output_dim" in config


def translate(class_name: str, config: dict) -> tuple[str, dict]:
    """A Keras 1 layer config in the Keras 2 vocabulary (unknown keys are kept)."""
    config = dict(config)
    if class_name in ("Dense", *RECURRENT) and "output_dim" in config:
        config["units"] = config.pop("output_dim")
    if class_name in RECURRENT:
        config.setdefault("activation", "tanh")
        if class_name != "SimpleRNN":
            config["recurrent_activation"] = config.pop("inner_activation", "hard_sigmoid")
        config.setdefault("use_bias", True)
        if class_name == "GRU":
            config["reset_after"] = False
    if class_name == "Dense":
        config["use_bias"] = bool(config.pop("bias", True))
        config.setdefault("activation", "linear")
    if class_name == "Dropout" and "p" in config:
        config["rate"] = config.pop("p")
    return class_name, config


# ---- weights ----------------------------------------------------------------------------
#: One array as a weight store gives it: (name or None, shape, read it).
Entry = tuple[str | None, tuple[int, ...], Callable[[], np.ndarray]]


def stack(
    class_name: str, config: dict, entries: list[Entry], roles: list[tuple[str, Any]], where: str
) -> dict[str, np.ndarray]:
    """Keras 2's arrays (`roles`: kernel, recurrent_kernel, bias, ...) from a Keras 1
    layer's arrays."""
    if class_name in STORED_GATES and len(entries) != 3:
        return _per_gate(class_name, entries, roles, where)
    expected = {
        "Dense": ["W", "b"],
        "SimpleRNN": ["W", "U", "b"],
        "LSTM": ["W", "U", "b"],
        "GRU": ["W", "U", "b"],
        "Embedding": ["W"],
    }.get(class_name)
    if expected is None:
        raise ModelError(f"{where}: Keras 1 weights of a {class_name} are not supported")
    expected = expected[: len(roles)]
    if len(entries) != len(roles):
        raise ModelError(
            f"{where}: the weights hold {len(entries)} arrays, a Keras 1 {class_name} has "
            f"{len(roles)} ({', '.join(expected)})"
        )
    ordered = _by_suffix(entries, expected, where) or entries
    arrays = {}
    for (role, shape), (name, found, read) in zip(roles, ordered):
        _check_shape(found, shape, f"{where}: {name or role}")
        arrays[role] = read()
    return arrays


def _per_gate(
    class_name: str, entries: list[Entry], roles: list[tuple[str, Any]], where: str
) -> dict[str, np.ndarray]:
    stored, fused = STORED_GATES[class_name], FUSED_GATES[class_name]
    kinds = "WUb" if len(roles) == 3 else "WU"
    expected = [f"{kind}_{gate}" for gate in stored for kind in kinds]
    if len(entries) != len(expected):
        raise ModelError(
            f"{where}: the weights hold {len(entries)} arrays; a Keras 1 {class_name} has "
            f"{len(expected)} per-gate arrays ({', '.join(expected)}) or 3 fused ones"
        )
    ordered = _by_suffix(entries, expected, where) or entries
    by_key = dict(zip(expected, ordered))
    arrays = {}
    for role, shape in roles:
        kind = {"kernel": "W", "recurrent_kernel": "U", "bias": "b"}[role]
        gate_shape = None
        if shape is not None:
            gate_shape = (*shape[:-1], shape[-1] // len(fused))
        parts = []
        for gate in fused:
            name, found, read = by_key[f"{kind}_{gate}"]
            _check_shape(found, gate_shape, f"{where}: {name or kind + '_' + gate}")
            parts.append(read())
        arrays[role] = np.concatenate(parts, axis=-1)
    return arrays


def _by_suffix(entries: list[Entry], expected: list[str], where: str) -> list[Entry] | None:
    """`entries` in the order of `expected` (suffixes like W_i) when their names say so."""
    found: dict[str, Entry] = {}
    for entry in entries:
        name = entry[0]
        if name is None:
            return None
        base = name.split("/")[-1]
        base = re.sub(r":\d+$", "", base)
        match = re.search(r"(?:^|_)([WUb](?:_[a-z])?)$", base)
        if match is None or match.group(1) not in expected or match.group(1) in found:
            return None
        found[match.group(1)] = entry
    if set(found) != set(expected):
        return None
    return [found[key] for key in expected]


def _check_shape(found: tuple[int, ...], expected: Any, where: str) -> None:
    if expected is not None and tuple(found) != tuple(expected):
        raise ModelError(f"{where} has shape {tuple(found)}, expected {tuple(expected)}")
