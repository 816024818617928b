"""IR recurrent layers from the parameters of a PyTorch nn.LSTM / nn.GRU / nn.RNN.

Every path into the IR (torch.export graphs, state_dict files, the registration-order
fallback) hands this module the same thing: for each stacked layer k and direction, the
parameter arrays under their PyTorch names (weight_ih, weight_hh, bias_ih, bias_hh and,
for an LSTM with proj_size, weight_hr). The layers it returns all return sequences; the
caller decides what is read from them (a last step, the final states, the sequence).

Layouts: nn.LSTM stores rows i, f, g, o (the IR order) and two biases, summed here;
nn.GRU stores rows r, z, n (the IR wants z, r, n) and computes n = tanh(W_in x + b_in +
r * (W_hn h + b_hn)), which is the IR's reset_after GRU with bias_hh as recurrent_bias;
nn.RNN stores one block, biases summed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ...errors import ModelError
from ...ir import GRU, LSTM, Bidirectional, Layer, SimpleRNN, float32

#: PyTorch module name -> the IR layer kind its layers become.
KINDS = {"LSTM": "lstm", "GRU": "gru", "RNN": "simple_rnn"}
#: Row blocks per gate group, by PyTorch module name.
GATE_BLOCKS = {"LSTM": 4, "GRU": 3, "RNN": 1}
NONLINEARITIES = ("tanh", "relu")

LSTM_ORIGIN = (
    "PyTorch nn.LSTM: weight_ih_l{k} (4H, D) rows i,f,g,o -> input_weights as is; "
    "weight_hh_l{k} (4H, H) -> recurrent_weights as is; bias_ih_l{k} + bias_hh_l{k} "
    "-> bias (summed in float32)"
)
PROJECTION_ORIGIN = "; weight_hr_l{k} (P, H) -> projection as is"
GRU_ORIGIN = (
    "PyTorch nn.GRU: weight_ih_l{k} (3H, D) rows r,z,n -> input_weights rows z,r,n; "
    "weight_hh_l{k} likewise -> recurrent_weights; bias_ih_l{k} -> bias, "
    "bias_hh_l{k} -> recurrent_bias (reset_after: n = tanh(W_in x + b_in + "
    "r * (W_hn h + b_hn)))"
)
RNN_ORIGIN = (
    "PyTorch nn.RNN({act}): weight_ih_l{k} (H, D), weight_hh_l{k} (H, H) as is; "
    "bias_ih_l{k} + bias_hh_l{k} -> bias"
)
BIDIRECTIONAL_ORIGIN = (
    "PyTorch nn.{kind}(bidirectional=True): outputs [forward, backward] concatenated; "
    "parameters with suffix _reverse run backward"
)
RZN = [1, 0, 2]  # PyTorch GRU row blocks r, z, n -> IR z, r, n

#: One direction of one stacked layer: PyTorch parameter name (without _l{k}) -> array.
Weights = Mapping[str, np.ndarray]


def direction_layer(
    kind: str,
    weights: Weights,
    name: str,
    index: int,
    reverse: bool,
    nonlinearity: str = "tanh",
    initial: tuple[np.ndarray, np.ndarray] | None = None,
) -> LSTM | GRU | SimpleRNN:
    """The IR layer (returning sequences) of stacked layer `index` of an nn.`kind`, one
    direction; `initial` is an LSTM's constant (h0, c0), None for zeros."""
    w_ih, w_hh = float32(weights["weight_ih"]), float32(weights["weight_hh"])
    has_bias = "bias_ih" in weights
    tag = f"{index}_reverse" if reverse else str(index)
    if kind == "LSTM":
        bias = float32(weights["bias_ih"] + weights["bias_hh"]) if has_bias else None
        projection = weights.get("weight_hr")
        origin = LSTM_ORIGIN + (PROJECTION_ORIGIN if projection is not None else "")
        return LSTM(
            name,
            w_ih,
            w_hh,
            bias,
            projection=None if projection is None else float32(projection),
            return_sequences=True,
            go_backwards=reverse,
            initial_h=None if initial is None else float32(initial[0]),
            initial_c=None if initial is None else float32(initial[1]),
            origin=origin.replace("{k}", tag),
        )
    if initial is not None:
        raise ModelError(
            f"{name}: a non-zero initial state of nn.{kind}; the IR has constant initial "
            "states for LSTM layers only"
        )
    if kind == "GRU":
        h = w_hh.shape[1]

        def rzn(a: np.ndarray) -> np.ndarray:
            return float32(np.concatenate([a[g * h : (g + 1) * h] for g in RZN]))

        return GRU(
            name,
            rzn(w_ih),
            rzn(w_hh),
            rzn(weights["bias_ih"]) if has_bias else None,
            recurrent_bias=rzn(weights["bias_hh"]) if has_bias else None,
            reset_after=True,
            return_sequences=True,
            go_backwards=reverse,
            origin=GRU_ORIGIN.replace("{k}", tag),
        )
    if kind != "RNN" or nonlinearity not in NONLINEARITIES:
        raise ModelError(f"{name}: nn.{kind} with nonlinearity {nonlinearity!r} is not supported")
    bias = float32(weights["bias_ih"] + weights["bias_hh"]) if has_bias else None
    return SimpleRNN(
        name,
        w_ih,
        w_hh,
        bias,
        activation=nonlinearity,
        return_sequences=True,
        go_backwards=reverse,
        origin=RNN_ORIGIN.replace("{k}", tag).replace("{act}", nonlinearity),
    )


def stacked_layers(
    kind: str,
    weights: Sequence[Sequence[Weights]],
    name: str,
    nonlinearity: str = "tanh",
    initial: Sequence[Sequence[tuple[np.ndarray, np.ndarray] | None]] | None = None,
) -> list[Layer]:
    """One IR layer per stacked layer of an nn.`kind` module called `name`: `weights[k]`
    holds one Weights per direction (two: a Bidirectional). All return sequences."""
    layers: list[Layer] = []
    for k, directions in enumerate(weights):
        label = f"{name}.l{k}" if len(weights) > 1 else name
        states = initial[k] if initial is not None else [None] * len(directions)
        if len(directions) == 1:
            layers.append(
                direction_layer(kind, directions[0], label, k, False, nonlinearity, states[0])
            )
            continue
        forward, backward = (
            direction_layer(
                kind, directions[d], f"{label}.{part}", k, d == 1, nonlinearity, states[d]
            )
            for d, part in enumerate(("forward", "backward"))
        )
        layers.append(
            Bidirectional(
                label,
                forward,
                backward,
                merge_mode="concat",
                origin=BIDIRECTIONAL_ORIGIN.replace("{kind}", kind),
            )
        )
    return layers


def final_state(layer: Any, direction: int | None) -> Layer:
    """`layer` (returning sequences) reduced to its final state: one direction of a
    Bidirectional (0 forward, 1 backward) or, with None, the whole layer (a Bidirectional
    then merges its two directions' final states)."""
    if isinstance(layer, Bidirectional):
        if direction is None:
            return replace(
                layer,
                forward=replace(layer.forward, return_sequences=False),
                backward=replace(layer.backward, return_sequences=False),
            )
        return replace(layer.forward if direction == 0 else layer.backward, return_sequences=False)
    return replace(layer, return_sequences=False)
