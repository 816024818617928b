"""Keras recurrent layers -> IR: LSTM, GRU, SimpleRNN and Bidirectional around them.

Layouts (Keras 2/3; Keras 1 arrays arrive restacked by `keras1`): LSTM kernel (D, 4H) and
recurrent_kernel (H, 4H) with gate columns i, f, c, o, bias (4H); GRU columns z, r, h,
bias (2, 3H) with reset_after (input and recurrent bias), else (3H); SimpleRNN kernel
(D, H). The IR keeps rows per gate, so every matrix is transposed.
"""

from __future__ import annotations

from collections.abc import Callable

from ...ir import GRU, LSTM, Bidirectional, SimpleRNN, float32
from ...ir.activations import VECTOR_ACTIVATIONS
from .config import LayerSpec
from .layers import Context, activation, check_dtype_policy, converts, count, flag, unsupported
from .weights import Role

LSTM_ORIGIN = (
    "Keras LSTM: kernel (D, 4H) columns i,f,c,o -> input_weights = kernel.T "
    "(rows i,f,g,o); recurrent_kernel (H, 4H) -> recurrent_weights = "
    "recurrent_kernel.T; bias (4H,) as is; recurrent_activation -> gate, "
    "activation -> cell and output"
)
GRU_ORIGIN = (
    "Keras GRU: kernel (D, 3H) columns z,r,h -> input_weights = kernel.T (rows "
    "z,r,n); recurrent_kernel (H, 3H) -> recurrent_weights = recurrent_kernel.T; "
    "bias (2, 3H) with reset_after -> bias = bias[0], recurrent_bias = bias[1] "
    "(without: bias (3H,)); recurrent_activation -> gate, activation -> cell"
)
SIMPLE_RNN_ORIGIN = (
    "Keras SimpleRNN: kernel (D, H) -> input_weights = kernel.T; "
    "recurrent_kernel (H, H) -> recurrent_weights = recurrent_kernel.T"
)
RECURRENT_CLASSES = ("LSTM", "GRU", "SimpleRNN")


def _check_flags(spec: LayerSpec, ctx: Context) -> None:
    check_dtype_policy(spec)
    if flag(spec, "return_state", False):
        raise unsupported(spec, "return_state=True")
    if flag(spec, "time_major", False):
        raise unsupported(spec, "time_major=True")
    if (
        spec.part is None
        and ctx.masked
        and flag(spec, "zero_output_for_mask", False)
        and flag(spec, "return_sequences", False)
    ):
        raise unsupported(spec, "zero_output_for_mask=True after a mask")
    if spec.part is None and flag(spec, "stateful", False):
        ctx.notes.append(
            f"'{spec.name}' is stateful: Keras carries its state from one "
            "predict call to the next; the generated predict starts every call "
            "from zero (as after reset_states), the streaming step carries it"
        )


def _gate_default(ctx: Context) -> str:
    """Keras 1 and 2 (standalone) default to hard_sigmoid; tf.keras and Keras 3 to
    sigmoid; the configs both write say which."""
    return "hard_sigmoid" if ctx.keras_major == 1 else "sigmoid"


def _activations(spec: LayerSpec, ctx: Context, gated: bool) -> tuple[str, str]:
    act = activation(spec, ctx, "activation", "tanh")
    gate = activation(spec, ctx, "recurrent_activation", _gate_default(ctx)) if gated else act
    vector = sorted({act, gate} & VECTOR_ACTIVATIONS.keys())
    if vector:
        raise unsupported(spec, f"{vector[0]} as a recurrent activation")
    return gate, act


def _roles(spec: LayerSpec, ctx: Context, gates: int, units: int, bias: tuple) -> list[Role]:
    roles: list[Role] = [
        ("kernel", (ctx.width, gates * units)),
        ("recurrent_kernel", (units, gates * units)),
    ]
    if flag(spec, "use_bias", True):
        roles.append(("bias", bias))
    return roles


@converts("LSTM")
def lstm(spec: LayerSpec, ctx: Context) -> LSTM:
    _check_flags(spec, ctx)
    units = count(spec, "units")
    gate, act = _activations(spec, ctx, gated=True)
    weights = ctx.arrays(spec, _roles(spec, ctx, 4, units, (4 * units,)))
    return LSTM(
        name=spec.name,
        input_weights=float32(weights["kernel"].T),
        recurrent_weights=float32(weights["recurrent_kernel"].T),
        bias=float32(weights["bias"]) if "bias" in weights else None,
        gate_activation=gate,
        cell_activation=act,
        output_activation=act,
        return_sequences=flag(spec, "return_sequences", False),
        go_backwards=flag(spec, "go_backwards", False),
        origin=LSTM_ORIGIN,
    )


@converts("GRU")
def gru(spec: LayerSpec, ctx: Context) -> GRU:
    _check_flags(spec, ctx)
    units = count(spec, "units")
    gate, act = _activations(spec, ctx, gated=True)
    reset_after = flag(spec, "reset_after", ctx.keras_major >= 3)
    bias_shape = (2, 3 * units) if reset_after else (3 * units,)
    weights = ctx.arrays(spec, _roles(spec, ctx, 3, units, bias_shape))
    bias = recurrent_bias = None
    if "bias" in weights:
        b = float32(weights["bias"])
        bias, recurrent_bias = (float32(b[0]), float32(b[1])) if reset_after else (b, None)
    return GRU(
        name=spec.name,
        input_weights=float32(weights["kernel"].T),
        recurrent_weights=float32(weights["recurrent_kernel"].T),
        bias=bias,
        recurrent_bias=recurrent_bias,
        reset_after=reset_after,
        gate_activation=gate,
        cell_activation=act,
        return_sequences=flag(spec, "return_sequences", False),
        go_backwards=flag(spec, "go_backwards", False),
        origin=GRU_ORIGIN,
    )


@converts("SimpleRNN")
def simple_rnn(spec: LayerSpec, ctx: Context) -> SimpleRNN:
    _check_flags(spec, ctx)
    units = count(spec, "units")
    _, act = _activations(spec, ctx, gated=False)
    weights = ctx.arrays(spec, _roles(spec, ctx, 1, units, (units,)))
    return SimpleRNN(
        name=spec.name,
        input_weights=float32(weights["kernel"].T),
        recurrent_weights=float32(weights["recurrent_kernel"].T),
        bias=float32(weights["bias"]) if "bias" in weights else None,
        activation=act,
        return_sequences=flag(spec, "return_sequences", False),
        go_backwards=flag(spec, "go_backwards", False),
        origin=SIMPLE_RNN_ORIGIN,
    )


RECURRENT_CONVERTERS: dict[str, Callable[[LayerSpec, Context], LSTM | GRU | SimpleRNN]] = {
    "LSTM": lstm,
    "GRU": gru,
    "SimpleRNN": simple_rnn,
}


@converts("Bidirectional")
def bidirectional(spec: LayerSpec, ctx: Context) -> Bidirectional:
    merge_mode = spec.config.get("merge_mode", "concat")
    if merge_mode not in ("concat", "sum", "mul", "ave"):
        raise unsupported(spec, f"merge_mode={merge_mode!r} (two outputs)")
    for inner in spec.inner:
        if inner.class_name not in RECURRENT_CONVERTERS:
            raise unsupported(spec, f"it wraps {inner.class_name}; supported: LSTM, GRU, SimpleRNN")
    check_dtype_policy(spec)
    forward, backward = (RECURRENT_CONVERTERS[inner.class_name](inner, ctx) for inner in spec.inner)
    if forward.go_backwards:
        raise unsupported(spec, "its forward layer has go_backwards=True")
    forward.name, backward.name = f"{spec.name}.forward", f"{spec.name}.backward"
    return Bidirectional(
        spec.name,
        forward,
        backward,
        merge_mode=merge_mode,
        origin=f"Keras Bidirectional(merge_mode={merge_mode!r}): "
        "forward_layer and backward_layer as below; the backward "
        "outputs are flipped back to input time order",
    )
