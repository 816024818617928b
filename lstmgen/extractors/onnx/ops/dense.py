"""Gemm, MatMul and Add on the data path: an IR Dense layer (the constant operand is the
weights), with an Add of a constant folded into the Dense before it as its bias."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ....ir import Dense, float32
from ..registry import data_op
from ..values import Axis, Data, Pending, role_name

if TYPE_CHECKING:
    from ..walk import Walk


@data_op("Gemm")
def gemm(walk: Walk, index: int, node: Any, where: str, attrs: dict, inputs: list) -> None:
    d = walk.data_input(node, inputs, where)
    if int(attrs.get("transA", 0)):
        raise walk.fail(where, "transA=1 (the data must be the left operand, untransposed)")
    if len(d.axes) != 2:
        raise walk.fail(where, f"its input A has rank {len(d.axes)}, expected 2")
    walk.feature(d, 1, where)
    bmat = walk.const(node, 1, where, "B")
    c = walk.optional_const(node, 2, where, "C")
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    trans_b = int(attrs.get("transB", 0))
    weights = np.asarray(bmat, np.float64) if trans_b else np.asarray(bmat, np.float64).T
    if weights.ndim != 2 or weights.shape[1] != walk.width:
        raise walk.fail(
            where,
            f"B has shape {list(bmat.shape)}, which does not take {walk.width} features",
            supported=False,
        )
    out_size = weights.shape[0]
    weights = float32(weights * alpha) if alpha != 1.0 else float32(weights)
    bias = None
    if c is not None:
        bias = bias_vector(
            walk, np.asarray(c), [d.axes[0], Axis("F", out_size)], out_size, where, "C"
        )
        if beta != 1.0:
            bias = float32(bias.astype(np.float64) * beta)
    origin = (
        f"ONNX Gemm: B '{node.input[1]}' {list(bmat.shape)} (transB={trans_b}) -> "
        f"weights {'as is' if trans_b else '= B.T'}"
        + (f" x alpha {alpha:g}" if alpha != 1.0 else "")
        + (
            f"; C '{node.input[2]}' -> bias" + (f" x beta {beta:g}" if beta != 1.0 else "")
            if c is not None
            else "; no C -> no bias"
        )
    )
    _add_dense(walk, node, index, weights, bias, origin)
    walk.assign(node.output[0], Data([d.axes[0], Axis("F", out_size)], d.flipped), where)


@data_op("MatMul")
def matmul(walk: Walk, index: int, node: Any, where: str, attrs: dict, inputs: list) -> None:
    d = walk.data_input(node, inputs, where)
    walk.feature(d, -1, where)
    bmat = np.asarray(walk.const(node, 1, where, "B"))
    if bmat.ndim != 2 or bmat.shape[0] != walk.width:
        raise walk.fail(
            where,
            f"B has shape {list(bmat.shape)}; a Dense needs a 2-D [{walk.width}, O] constant",
            supported=False,
        )
    origin = f"ONNX MatMul: B '{node.input[1]}' [I, O] = {list(bmat.shape)} -> weights = B.T"
    _add_dense(walk, node, index, float32(bmat.T), None, origin)
    walk.assign(
        node.output[0], Data(list(d.axes[:-1]) + [Axis("F", bmat.shape[1])], d.flipped), where
    )


def _add_dense(
    walk: Walk, node: Any, index: int, weights: np.ndarray, bias: np.ndarray | None, origin: str
) -> None:
    layer = Dense(walk.unique_name(node, index), weights, bias, "linear", origin=origin)
    walk.layers.append(layer)
    walk.width = layer.output_size
    walk.pending = Pending(layer)


def bias_vector(
    walk: Walk, c: np.ndarray, axes: list, size: int, where: str, what: str
) -> np.ndarray:
    """A constant added to data with `axes` (numpy broadcasting aligns trailing axes), as
    a (size,) bias: it may vary only along the feature axis."""
    c = np.asarray(c, np.float32)
    if c.ndim > len(axes):
        raise walk.fail(
            where, f"{what} of shape {list(c.shape)} adds axes to the data", supported=False
        )
    along = None
    for j in range(1, c.ndim + 1):
        axis, n = axes[-j], c.shape[-j]
        if n == 1:
            continue
        if axis.role != "F" or axis.size != n:
            raise walk.fail(
                where,
                f"{what} of shape {list(c.shape)} varies along axis "
                f"{len(axes) - j} ({role_name(axis)}); a bias may only "
                "vary along the features",
                supported=False,
            )
        along = n
    if along is None:
        return float32(np.full(size, c.reshape(-1)[0] if c.size else 0.0, np.float32))
    return float32(c.reshape(-1))


@data_op("Add")
def add(walk: Walk, index: int, node: Any, where: str, attrs: dict, inputs: list) -> None:
    data = [k for k, v in enumerate(inputs) if isinstance(v, Data)]
    if len(data) != 1 or len(inputs) != 2:
        raise walk.fail(
            where,
            "it adds two tensors computed from the graph input "
            "(residual connections are not supported)",
            supported=False,
        )
    d = inputs[data[0]]
    other = 1 - data[0]
    pending = walk.pending
    if pending is None or not pending.bias_open or walk.layers[-1] is not pending.layer:
        raise walk.fail(
            where,
            "an Add of a constant is only supported as the bias of a preceding MatMul or Gemm",
        )
    c = np.asarray(walk.const(node, other, where, "addend"))
    layer = pending.layer
    bias = bias_vector(walk, c, d.axes, layer.output_size, where, "the addend")
    layer.bias = bias if layer.bias is None else float32(layer.bias + bias)
    layer.origin += f"; Add '{node.input[other]}' {list(c.shape)} -> bias"
    walk.assign(node.output[0], Data(list(d.axes), d.flipped), where)
