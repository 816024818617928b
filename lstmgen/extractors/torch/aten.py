"""Handlers of the aten ops that compute: recurrent ops (aten.lstm/gru/rnn_tanh/rnn_relu),
linear maps (linear, addmm, mm, matmul), constant adds and multiplies folded into the layer
before them, activations, LayerNorm, BatchNorm, Embedding, mean/max over time, and the cat
that joins a bidirectional layer's two final states.

Each handler gets the op's own arguments (see `context.py`) and returns the value of
`values.py` its result is; anything it cannot map is refused naming the op.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from ...errors import LstmgenError
from ...ir import (
    Activation,
    BatchNorm,
    Dense,
    Embedding,
    GlobalPool,
    LayerNorm,
    Normalize,
    float32,
)
from .context import Context, InputLayoutMismatch, op
from .recurrent import stacked_layers
from .shapes import axis_name, flow_of
from .values import FinalState, Flow, Pending, RecurrentRun, StateStack, Unusable, is_abstract


def _array(ctx: Context, value: Any, what: str) -> np.ndarray:
    """A constant tensor as a numpy array; an input-dependent one is refused."""
    if is_abstract(value):
        raise ctx.refuse(f"its {what} is computed from the input; lstmgen needs a constant")
    return np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value)


def _features_last(ctx: Context, flow: Flow) -> Flow:
    """`flow` with its feature axis last (a size-1 axis stands for a squeezed width 1)."""
    if flow.ids:
        raise ctx.refuse("token ids are used as features; an nn.Embedding must read them first")
    if flow.axes and flow.axes[-1] == "F":
        return flow
    if flow.axes and flow.axes[-1] == "1" and flow.width == 1 and "F" not in flow.labels:
        return replace(flow, axes=(*flow.axes[:-1], "F"))
    last = axis_name(flow.axes[-1]) if flow.axes else "no"
    raise ctx.refuse(f"works on the last axis, which holds {last}, not the features")


def _feature_dim(ctx: Context, flow: Flow, dim: int) -> None:
    """Refuse unless `dim` of `flow` is its feature axis."""
    try:
        axis = flow.axes[flow.dim(dim)]
    except IndexError:
        raise ctx.refuse(f"dimension {dim} of a {len(flow.axes)}-d tensor") from None
    if axis != "F":
        raise ctx.refuse(f"works over the {axis_name(axis)} axis; lstmgen applies it over features")


# ---- recurrent ops --------------------------------------------------------------------
#: aten recurrent op -> the PyTorch module it comes from and its nonlinearity.
RECURRENT_OPS = {
    "aten.lstm.input": ("LSTM", "tanh"),
    "aten.gru.input": ("GRU", "tanh"),
    "aten.rnn_tanh.input": ("RNN", "tanh"),
    "aten.rnn_relu.input": ("RNN", "relu"),
}


@op(*RECURRENT_OPS)
def recurrent(
    ctx: Context,
    x: Any,
    hx: Any,
    params: list,
    has_biases: bool,
    num_layers: int,
    dropout: float,
    train: bool,
    bidirectional: bool,
    batch_first: bool,
) -> tuple:
    """(output, h_n[, c_n]) of an nn.LSTM/GRU/RNN: a RecurrentRun's output flow and its
    stacked final states."""
    module, nonlinearity = RECURRENT_OPS[ctx.op]
    flow = flow_of(ctx, x)
    if flow.ids:
        raise ctx.refuse("token ids go into a recurrent layer; an nn.Embedding must read them")
    expected = ("B", "T", "F") if batch_first else ("T", "B", "F")
    if flow.axes != expected:
        if not flow.layers and flow.axes == (expected[1], expected[0], "F"):
            raise InputLayoutMismatch()
        held = ", ".join(axis_name(a) for a in flow.axes)
        raise ctx.refuse(
            f"nn.{module}(batch_first={batch_first}) reads a tensor whose axes hold {held}"
        )
    directions = 2 if bidirectional else 1
    arrays = [_array(ctx, p, "weights") for p in params]
    per = len(arrays) // (num_layers * directions)
    names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if has_biases else [])
    if per == len(names) + 1 and module == "LSTM":
        names.append("weight_hr")
    if per != len(names) or per * num_layers * directions != len(arrays):
        raise ctx.refuse(f"{len(arrays)} parameters for {num_layers} x {directions} layers")
    weights = [
        [
            dict(zip(names, arrays[(k * directions + d) * per : (k * directions + d + 1) * per]))
            for d in range(directions)
        ]
        for k in range(num_layers)
    ]
    initial = _initial_states(ctx, module, hx, num_layers, directions)
    try:
        stack = stacked_layers(module, weights, ctx.layer_name(), nonlinearity, initial)
    except LstmgenError as exc:
        raise ctx.refuse(str(exc)) from None
    run = RecurrentRun(flow, tuple(stack), batch_first, module)
    if module == "LSTM":
        return run.output(), StateStack(run), StateStack(run, cell=True)
    return run.output(), StateStack(run)


def _initial_states(ctx: Context, module: str, hx: Any, layers: int, directions: int) -> Any:
    """None for zero initial states, else per layer and direction (h0, c0) of an LSTM
    (the same for every sequence of the batch)."""
    states = [_array(ctx, h, "initial state") for h in (hx if isinstance(hx, list) else [hx])]
    if all(not np.any(s) for s in states):
        return None
    if module != "LSTM":
        raise ctx.refuse(
            f"a non-zero initial state of nn.{module}; the IR has constant initial states "
            "for LSTM layers only"
        )
    if any(not np.array_equal(s, np.broadcast_to(s[:, :1], s.shape)) for s in states):
        raise ctx.refuse("an initial state that differs between the sequences of a batch")
    h0, c0 = states
    return [
        [(h0[k * directions + d, 0], c0[k * directions + d, 0]) for d in range(directions)]
        for k in range(layers)
    ]


@op("aten.lstm.data", "aten.gru.data", "aten.rnn_tanh.data", "aten.rnn_relu.data")
def packed(ctx: Context, *args: Any) -> Any:
    raise ctx.refuse("packed sequences (pack_padded_sequence); pass padded [B, T, D] tensors")


@op("aten.cat.default")
def cat(ctx: Context, tensors: list, dim: int = 0) -> Any:
    if len(tensors) == 1:
        return tensors[0]
    if len(tensors) == 2 and all(isinstance(t, FinalState) for t in tensors):
        forward, backward = tensors
        same = forward.run is backward.run and forward.layer == backward.layer
        if same and (forward.direction, backward.direction) == (0, 1) and dim in (1, -1):
            return forward.run.final(forward.layer, None)
    raise ctx.refuse(
        "joins tensors; lstmgen joins the two directions' final states of one layer, "
        "forward first: torch.cat([h_n[-2], h_n[-1]], dim=1)"
    )


# ---- linear maps and constant arithmetic ----------------------------------------------
def _dense(ctx: Context, x: Any, weights: np.ndarray, bias: np.ndarray | None, origin: str) -> Flow:
    flow = _features_last(ctx, flow_of(ctx, x))
    if weights.ndim != 2:
        raise ctx.refuse(f"a weight of shape {list(weights.shape)}; lstmgen needs a matrix")
    if bias is not None:
        bias = (
            np.broadcast_to(bias, (weights.shape[0],))
            if bias.size in (1, weights.shape[0])
            else bias
        )
    layer = Dense(
        ctx.layer_name(),
        float32(weights),
        None if bias is None else float32(np.reshape(bias, -1)),
        origin=f"PyTorch {origin}",
    )
    return flow.then(layer)


@op("aten.linear.default")
def linear(ctx: Context, x: Any, weight: Any, bias: Any = None) -> Flow:
    w = _array(ctx, weight, "weight")
    b = None if bias is None else _array(ctx, bias, "bias")
    return _dense(ctx, x, w, b, "nn.Linear: weight (O, I) and bias as is")


@op("aten.addmm.default")
def addmm(ctx: Context, bias: Any, x: Any, mat2: Any, beta: float = 1, alpha: float = 1) -> Flow:
    if beta != 1 or alpha != 1:
        raise ctx.refuse(f"addmm with beta={beta}, alpha={alpha}")
    w = _array(ctx, mat2, "weight")
    return _dense(ctx, x, w.T, _array(ctx, bias, "bias"), "x @ W + b: W (I, O) transposed")


@op("aten.mm.default", "aten.matmul.default")
def matmul(ctx: Context, x: Any, other: Any) -> Flow:
    if not is_abstract(x):
        raise ctx.refuse("multiplies the input from the left; lstmgen maps x @ W")
    w = _array(ctx, other, "weight")
    return _dense(ctx, x, w.T, None, "x @ W: W (I, O) transposed")


def _per_feature(ctx: Context, flow: Flow, value: Any) -> np.ndarray:
    """A constant scalar or per-feature vector as float64 [width]."""
    a = np.asarray(_array(ctx, value, "operand"), np.float64)
    if a.size == 1:
        return np.full(flow.width, float(a.reshape(-1)[0]))
    if a.shape[-1:] == (flow.width,) and a.size == flow.width and flow.axes[-1] == "F":
        return a.reshape(-1)
    raise ctx.refuse(f"a constant of shape {list(a.shape)}; lstmgen folds per-feature constants")


def _affine(ctx: Context, x: Any, scale: np.ndarray, shift: np.ndarray) -> Flow:
    """scale * x + shift (per feature), folded into the layer before: a Linear, or an
    input normalization (x - mean) / std."""
    flow = flow_of(ctx, x)
    if flow.ids:
        raise ctx.refuse("arithmetic on token ids")
    last = flow.layers[-1] if flow.layers else None
    if isinstance(last, Dense) and last.activation == "linear":
        w = last.weights.astype(np.float64) * scale[:, None]
        b = (0.0 if last.bias is None else last.bias.astype(np.float64)) * scale + shift
        folded = replace(last, weights=float32(w), bias=float32(b))
        return replace(flow, layers=(*flow.layers[:-1], folded))
    if last is None or isinstance(last, Normalize):
        mean = np.zeros(flow.width) if last is None else last.mean.astype(np.float64)
        std = np.ones(flow.width) if last is None else last.std.astype(np.float64)
        if np.any(scale <= 0):
            raise ctx.refuse("scales the input by a non-positive constant")
        layer = Normalize(
            "input_normalization" if last is None else last.name,
            float32(mean - shift * std / scale),
            float32(std / scale),
            origin="PyTorch constant arithmetic on the input: (x - mean) / std",
        )
        return replace(flow, layers=(*flow.layers[:-1], layer) if last else (layer,))
    raise ctx.refuse(
        f"constant arithmetic after the {last.kind} layer '{last.name}'; lstmgen folds it "
        "into a Linear "
        "before it, or into a normalization of the input"
    )


def _scalar(value: Any) -> float:
    """A constant scalar as a float; NaN for anything else."""
    if is_abstract(value):
        return float("nan")
    a = np.asarray(value.detach().numpy() if hasattr(value, "detach") else value)
    return float(a.reshape(-1)[0]) if a.size == 1 else float("nan")


def _is_one(value: float) -> bool:
    return value == 1.0


@op("aten.add.Tensor", "aten.sub.Tensor")
def add(ctx: Context, a: Any, b: Any, alpha: float = 1) -> Any:
    sign = -1.0 if ctx.op == "aten.sub.Tensor" else 1.0
    if isinstance(a, Pending) and a.step == "abs" and _is_one(sign * alpha * _scalar(b)):
        return Pending(a.flow, "abs_plus_one", "|x| + 1")
    if is_abstract(a) and is_abstract(b):
        raise ctx.refuse(
            "adds two tensors computed from the input (a residual or skip connection); "
            "the IR is a chain of layers"
        )
    if not is_abstract(a):
        if sign < 0:
            raise ctx.refuse("subtracts the input from a constant")
        a, b = b, a
    flow = flow_of(ctx, a)
    shift = sign * alpha * _per_feature(ctx, flow, b)
    return _affine(ctx, flow, np.ones(flow.width), shift)


@op("aten.mul.Tensor", "aten.div.Tensor")
def mul(ctx: Context, a: Any, b: Any) -> Any:
    dividing = ctx.op == "aten.div.Tensor"
    if dividing and isinstance(b, Pending) and b.step == "abs_plus_one" and a is b.flow:
        return _activation(ctx, a, "softsign", "x / (|x| + 1): softsign")
    if is_abstract(a) and is_abstract(b):
        raise ctx.refuse("multiplies two tensors computed from the input")
    if not is_abstract(a):
        if dividing:
            raise ctx.refuse("divides a constant by the input")
        a, b = b, a
    flow = flow_of(ctx, a)
    factor = _per_feature(ctx, flow, b)
    if dividing and np.any(factor == 0):
        raise ctx.refuse("divides by zero")
    return _affine(ctx, flow, 1.0 / factor if dividing else factor, np.zeros(flow.width))


@op("aten.abs.default")
def abs_(ctx: Context, x: Any) -> Pending:
    return Pending(flow_of(ctx, x), "abs", "torch.abs of a tensor")


# ---- activations ----------------------------------------------------------------------
def _activation(ctx: Context, x: Any, name: str, origin: str) -> Flow:
    flow = flow_of(ctx, x)
    if flow.ids:
        raise ctx.refuse("an activation of token ids")
    layer = Activation(ctx.layer_name(), flow.width, name, origin=f"PyTorch {origin}")
    return flow.then(layer)


ELEMENTWISE = {
    "relu": "relu",
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "hardsigmoid": "hard_sigmoid_keras3",
}


def _elementwise(torch_name: str, ir_name: str) -> None:
    @op(f"aten.{torch_name}.default", f"aten.{torch_name}_.default")
    def handler(ctx: Context, x: Any) -> Flow:
        return _activation(ctx, x, ir_name, torch_name)


for _torch_name, _ir_name in ELEMENTWISE.items():
    _elementwise(_torch_name, _ir_name)


@op("aten.elu.default", "aten.elu_.default")
def elu(ctx: Context, x: Any, alpha: float = 1.0, scale: float = 1, input_scale: float = 1) -> Flow:
    if (float(alpha), float(scale), float(input_scale)) != (1.0, 1.0, 1.0):
        raise ctx.refuse(f"elu with alpha={alpha}; lstmgen has elu with alpha 1")
    return _activation(ctx, x, "elu", "elu")


@op("aten.softplus.default")
def softplus(ctx: Context, x: Any, beta: float = 1, threshold: float = 20) -> Flow:
    if float(beta) != 1.0:
        raise ctx.refuse(f"softplus with beta={beta}; lstmgen has softplus with beta 1")
    return _activation(ctx, x, "softplus", "softplus (linear above threshold 20: < 3e-9 apart)")


@op("aten.softmax.int", "aten._softmax.default")
def softmax(ctx: Context, x: Any, dim: int, *rest: Any) -> Flow:
    _feature_dim(ctx, flow_of(ctx, x), dim)
    return _activation(ctx, x, "softmax", "softmax over the features")


@op("aten.log_softmax.int", "aten._log_softmax.default")
def log_softmax(ctx: Context, x: Any, dim: int, *rest: Any) -> Flow:
    _feature_dim(ctx, flow_of(ctx, x), dim)
    return _activation(ctx, x, "log_softmax", "log_softmax over the features")


# ---- normalization, embedding, pooling ------------------------------------------------
@op("aten.layer_norm.default")
def layer_norm(
    ctx: Context,
    x: Any,
    normalized_shape: list,
    weight: Any = None,
    bias: Any = None,
    eps: float = 1e-5,
    cudnn_enable: bool = True,
) -> Flow:
    flow = _features_last(ctx, flow_of(ctx, x))
    if list(normalized_shape) != [flow.width]:
        raise ctx.refuse(
            f"LayerNorm over {list(normalized_shape)}; lstmgen normalizes the features"
        )
    gamma = None if weight is None else float32(_array(ctx, weight, "weight"))
    beta = None if bias is None else float32(_array(ctx, bias, "bias"))
    layer = LayerNorm(
        ctx.layer_name(),
        flow.width,
        gamma,
        beta,
        float(eps),
        origin="PyTorch nn.LayerNorm: weight -> gamma, bias -> beta",
    )
    return flow.then(layer)


@op("aten.batch_norm.default")
def batch_norm(
    ctx: Context,
    x: Any,
    weight: Any,
    bias: Any,
    running_mean: Any,
    running_var: Any,
    training: bool,
    momentum: float,
    eps: float,
    cudnn_enabled: bool = True,
) -> Flow:
    if training or running_mean is None:
        raise ctx.refuse("batch normalization with batch statistics; lstmgen needs eval mode")
    return _batch_norm(ctx, x, weight, bias, running_mean, running_var, eps)


@op("aten._native_batch_norm_legit_no_training.default")
def batch_norm_no_training(
    ctx: Context,
    x: Any,
    weight: Any,
    bias: Any,
    running_mean: Any,
    running_var: Any,
    momentum: float,
    eps: float,
) -> tuple:
    out = _batch_norm(ctx, x, weight, bias, running_mean, running_var, eps)
    return out, Unusable("batch-norm statistics"), Unusable("batch-norm statistics")


def _batch_norm(
    ctx: Context, x: Any, weight: Any, bias: Any, mean: Any, var: Any, eps: float
) -> Flow:
    flow = flow_of(ctx, x)
    if len(flow.axes) < 2 or flow.axes[1] != "F":
        raise ctx.refuse("batch normalization of a tensor whose axis 1 does not hold the features")
    layer = BatchNorm(
        ctx.layer_name(),
        float32(_array(ctx, mean, "running_mean")),
        float32(_array(ctx, var, "running_var")),
        None if weight is None else float32(_array(ctx, weight, "weight")),
        None if bias is None else float32(_array(ctx, bias, "bias")),
        float(eps),
        origin="PyTorch nn.BatchNorm1d (eval): running_mean, running_var; weight -> gamma, "
        "bias -> beta",
    )
    return flow.then(layer)


@op("aten.embedding.default")
def embedding(
    ctx: Context,
    weight: Any,
    indices: Any,
    padding_idx: int = -1,
    scale_grad_by_freq: bool = False,
    sparse: bool = False,
) -> Flow:
    flow = flow_of(ctx, indices)
    if not flow.ids or flow.layers:
        raise ctx.refuse("an nn.Embedding that does not read the model's token ids")
    table = float32(_array(ctx, weight, "weight"))
    layer = Embedding(ctx.layer_name(), table, origin="PyTorch nn.Embedding: weight (V, E) as is")
    return flow.then(layer, axes=(*flow.axes, "F"), ids=False)


def _pool(ctx: Context, x: Any, dims: Any, keepdim: bool, pool_type: str) -> Flow:
    flow = flow_of(ctx, x)
    dims = [dims] if isinstance(dims, int) else list(dims or [])
    if len(dims) != 1 or flow.axes[flow.dim(dims[0])] != "T":
        raise ctx.refuse("reduces other axes than time; lstmgen pools over the timesteps")
    d = flow.dim(dims[0])
    axes = flow.axes[:d] + (("1",) if keepdim else ()) + flow.axes[d + 1 :]
    what = "mean" if pool_type == "avg" else "max"
    layer = GlobalPool(ctx.layer_name(), flow.width, pool_type, origin=f"PyTorch {what} over time")
    return flow.then(layer, axes=axes)


@op("aten.mean.dim")
def mean(ctx: Context, x: Any, dim: Any, keepdim: bool = False, dtype: Any = None) -> Flow:
    return _pool(ctx, x, dim, keepdim, "avg")


@op("aten.amax.default")
def amax(ctx: Context, x: Any, dim: Any = (), keepdim: bool = False) -> Flow:
    return _pool(ctx, x, dim, keepdim, "max")


@op("aten.max.dim")
def max_dim(ctx: Context, x: Any, dim: int, keepdim: bool = False) -> tuple:
    return _pool(ctx, x, dim, keepdim, "max"), Unusable("the indices torch.max returns")
