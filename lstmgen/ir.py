"""The framework-neutral intermediate representation (IR) of a recurrent model.

This module owns the one canonical layout that every extractor writes and every backend
reads. Nothing here knows any framework.

Canonical layout
----------------
A model is an input size D and an ordered list of layers. Data flows as a sequence of
T rows (one per timestep) until a recurrent layer with ``return_sequences=False`` turns it
into one vector (its state after the last step); layers after that see a single vector.

``LSTM`` (H units, input size D):

* ``input_weights``      float32, shape (4H, D), row-major
* ``recurrent_weights``  float32, shape (4H, H)
* ``bias``               float32, shape (4H,), or ``None`` for a layer without bias
* rows are four blocks of H in gate order **i, f, g, o** (input, forget, cell candidate,
  output) -- the PyTorch / MATLAB order, the transpose of Keras's columns.

One step, with z = input_weights @ x + recurrent_weights @ h + bias split into i, f, g, o::

    c' = gate(f) * c + gate(i) * cell(g)
    h' = gate(o) * output(c')

with ``gate = gate_activation``, ``cell = cell_activation``,
``output = output_activation``. The state starts at zero for every sequence (as the
frameworks' ``predict`` does). ``go_backwards`` reads the input from the last step to
the first; with ``return_sequences`` its outputs are emitted in that processing order
(Keras semantics).

Optional LSTM features (ONNX has them; each backend declares which it supports, see
``Model.features``), all absent by default:

* ``peephole`` (3, H), rows p_i, p_f, p_o: z_i += p_i * c, z_f += p_f * c (the previous c),
  and z_o += p_o * c' (the new c);
* ``clip``: every gate pre-activation (after bias and peephole) is clipped to
  [-clip, clip] before its activation; c itself is not clipped;
* ``input_forget``: f = 1 - gate(i) instead of gate(z_f);
* ``initial_h``, ``initial_c`` (H,): the state every sequence starts from, instead of 0;
* ``projection`` (P, H) (PyTorch ``proj_size``): h' = projection @ (gate(o) * output(c')),
  so h has P values and ``recurrent_weights`` is (4H, P).

``GRU`` (H units): ``input_weights`` (3H, D) and ``recurrent_weights`` (3H, H) with row
blocks **z, r, n** (update, reset, candidate: the Keras / ONNX order), ``bias`` (3H,) and,
with ``reset_after``, a separate ``recurrent_bias`` (3H,)::

    z = gate(Wz x + Uz h + bz [+ rbz]);   r = gate(Wr x + Ur h + br [+ rbr])
    n = cell(Wn x + bn + r * (Un h + rbn))      reset_after=True  (Keras 2/3, PyTorch)
    n = cell(Wn x + bn + Un (r * h))            reset_after=False (ONNX default)
    h' = z * h + (1 - z) * n

``SimpleRNN`` (H units): h' = activation(input_weights @ x + recurrent_weights @ h + bias).

``Bidirectional``: a ``forward`` and a ``backward`` recurrent layer of one kind over the
same input; the backward one reads the sequence from the last step to the first. With
``return_sequences`` the backward outputs are put back in input time order before the
two are merged (``merge_mode`` concat, sum, mul or ave), otherwise the two final states are
merged. It needs the whole sequence, so a model with one has no streaming step.

Per-timestep and sequence-shaping layers:

* ``Masking`` (first layer only): timestep t is masked when every feature equals
  ``mask_value``; its features become 0, and every recurrent layer skips it: the state is
  unchanged and the output repeats the previous step's (zeros before any step). Backward
  reading and Bidirectional use the same mask, in their reading order.
* ``Normalize``: y = (x - mean) / std per feature (Keras Normalization with std =
  max(sqrt(variance), 1e-7); MATLAB zscore/center).
* ``LayerNorm``: y = (x - mean(x)) / sqrt(var(x) + epsilon) * gamma + beta over the
  features of each timestep (gamma/beta optional).
* ``Flatten``: a sequence of the model's fixed T timesteps becomes one vector of T*F values,
  timestep-major (Keras Flatten / Reshape((T*F,))).
* ``Conv1D``: weights (F, K, D), y[t, f] = act(bias[f] + sum_k,d W[f, k, d] x[t*stride +
  k*dilation - pad, d]) with zero padding: ``valid`` (none), ``same`` (TF rule: output
  ceil(T/stride) steps, pad_left = total // 2), ``causal`` (pad_left = dilation*(K-1)).
* ``Pool1D``: ``max`` or ``avg`` over windows of ``size`` steps every ``stride`` steps,
  ``valid`` or ``same`` padding (padding never counts: max ignores it, avg divides by the
  number of real steps in the window).

Conv1D and Pool1D change the number of timesteps; ``Model.output_timesteps(T)`` says how
many a sequence output has.

``Dense``: ``weights`` (O, I), ``bias`` (O,) or ``None``, y = act(weights @ x + bias),
applied to every timestep when it sees a sequence.

``Activation``: a standalone activation over the last axis.

Activation names are explicit: no name means two different functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

import numpy as np

from .errors import ModelError

#: Elementwise activations, with their exact definition (float math on x).
ELEMENTWISE_ACTIVATIONS: dict[str, str] = {
    "linear": "x",
    "relu": "max(x, 0)",
    "sigmoid": "1 / (1 + exp(-x))",
    "tanh": "tanh(x)",
    "softsign": "x / (1 + |x|)",
    "softplus": "log(1 + exp(x))",
    "elu": "x if x > 0 else exp(x) - 1",
    "hard_sigmoid_keras3": "min(max(x + 3, 0), 6) / 6  (Keras 3, PyTorch Hardsigmoid)",
    "hard_sigmoid_0.2": "min(max(0.2 x + 0.5, 0), 1)  (Keras 1/2, ONNX default, MATLAB)",
}
#: Activations over a whole vector (only for Dense / Activation layers).
VECTOR_ACTIVATIONS: dict[str, str] = {
    "softmax": "exp(x - max x) / sum(exp(x - max x))",
}
ALL_ACTIVATIONS: dict[str, str] = {**ELEMENTWISE_ACTIVATIONS, **VECTOR_ACTIVATIONS}

GATES = ("i", "f", "g", "o")


class _Layer:
    """What every layer shares: its parameter count is the size of its arrays."""

    recurrent = False

    def arrays(self) -> dict[str, np.ndarray | None]:
        return {}

    def parameter_count(self) -> int:
        return sum(a.size for a in self.arrays().values() if a is not None)


class _Recurrent(_Layer):
    """LSTM, GRU and SimpleRNN: `gates` row blocks of H rows in input_weights (D columns)."""

    recurrent = True
    gates = 1

    @property
    def units(self) -> int:
        """H, the size of the state (the cell state c of an LSTM)."""
        return int(self.input_weights.shape[0]) // self.gates

    @property
    def input_size(self) -> int:
        return int(self.input_weights.shape[1])

    @property
    def output_size(self) -> int:
        return self.units

    def features(self) -> set[str]:
        return set()


@dataclass
class LSTM(_Recurrent):
    """A unidirectional LSTM layer in the canonical layout (see the module docstring)."""

    name: str
    input_weights: np.ndarray
    recurrent_weights: np.ndarray
    bias: np.ndarray | None
    gate_activation: str = "sigmoid"
    cell_activation: str = "tanh"
    output_activation: str = "tanh"
    return_sequences: bool = False
    go_backwards: bool = False
    origin: str = ""  # how the framework's arrays were mapped, for `lstmgen inspect`
    peephole: np.ndarray | None = None
    clip: float | None = None
    input_forget: bool = False
    initial_h: np.ndarray | None = None
    initial_c: np.ndarray | None = None
    projection: np.ndarray | None = None

    kind = "lstm"
    gates = 4

    @property
    def output_size(self) -> int:
        """The size of h: P with a projection, else H."""
        return self.units if self.projection is None else int(self.projection.shape[0])

    def arrays(self) -> dict[str, np.ndarray | None]:
        return {
            "input_weights": self.input_weights,
            "recurrent_weights": self.recurrent_weights,
            "bias": self.bias,
            "peephole": self.peephole,
            "initial_h": self.initial_h,
            "initial_c": self.initial_c,
            "projection": self.projection,
        }

    def features(self) -> set[str]:
        """The optional features this layer uses (see the module docstring)."""
        used = set()
        if self.peephole is not None:
            used.add("peephole")
        if self.clip is not None:
            used.add("clip")
        if self.input_forget:
            used.add("input_forget")
        if self.initial_h is not None or self.initial_c is not None:
            used.add("initial_state")
        if self.projection is not None:
            used.add("projection")
        return used

    def gate_rows(self, gate: str) -> slice:
        """Rows of the weight matrices that belong to `gate` (one of i, f, g, o)."""
        k = GATES.index(gate)
        return slice(k * self.units, (k + 1) * self.units)


@dataclass
class GRU(_Recurrent):
    """A unidirectional GRU layer (row blocks z, r, n; see the module docstring)."""

    name: str
    input_weights: np.ndarray
    recurrent_weights: np.ndarray
    bias: np.ndarray | None
    recurrent_bias: np.ndarray | None = None
    reset_after: bool = True
    gate_activation: str = "sigmoid"
    cell_activation: str = "tanh"
    return_sequences: bool = False
    go_backwards: bool = False
    origin: str = ""

    kind = "gru"
    gates = 3

    def arrays(self) -> dict[str, np.ndarray | None]:
        return {
            "input_weights": self.input_weights,
            "recurrent_weights": self.recurrent_weights,
            "bias": self.bias,
            "recurrent_bias": self.recurrent_bias,
        }


@dataclass
class SimpleRNN(_Recurrent):
    """A fully recurrent layer: h' = activation(W x + U h + b)."""

    name: str
    input_weights: np.ndarray
    recurrent_weights: np.ndarray
    bias: np.ndarray | None
    activation: str = "tanh"
    return_sequences: bool = False
    go_backwards: bool = False
    origin: str = ""

    kind = "simple_rnn"

    def arrays(self) -> dict[str, np.ndarray | None]:
        return {
            "input_weights": self.input_weights,
            "recurrent_weights": self.recurrent_weights,
            "bias": self.bias,
        }


Recurrent = Union[LSTM, GRU, SimpleRNN]
MERGE_MODES = ("concat", "sum", "mul", "ave")


@dataclass
class Bidirectional(_Layer):
    """Two recurrent layers over one sequence, the backward one reading it reversed."""

    name: str
    forward: Recurrent
    backward: Recurrent
    merge_mode: str = "concat"
    origin: str = ""

    kind = "bidirectional"
    recurrent = True

    @property
    def return_sequences(self) -> bool:
        return self.forward.return_sequences

    @property
    def go_backwards(self) -> bool:
        return False

    @property
    def input_size(self) -> int:
        return self.forward.input_size

    @property
    def output_size(self) -> int:
        size = self.forward.output_size
        return 2 * size if self.merge_mode == "concat" else size

    def parameter_count(self) -> int:
        return self.forward.parameter_count() + self.backward.parameter_count()

    def features(self) -> set[str]:
        return self.forward.features() | self.backward.features()


@dataclass
class Masking(_Layer):
    """Skip timesteps whose features all equal `mask_value` (see the module docstring)."""

    name: str
    size: int
    mask_value: float = 0.0
    origin: str = ""

    kind = "masking"

    @property
    def input_size(self) -> int:
        return self.size

    @property
    def output_size(self) -> int:
        return self.size


@dataclass
class Normalize(_Layer):
    """y = (x - mean) / std, per feature."""

    name: str
    mean: np.ndarray
    std: np.ndarray
    origin: str = ""

    kind = "normalize"

    @property
    def input_size(self) -> int:
        return int(self.mean.shape[0])

    @property
    def output_size(self) -> int:
        return self.input_size

    def arrays(self) -> dict[str, np.ndarray | None]:
        return {"mean": self.mean, "std": self.std}


@dataclass
class LayerNorm(_Layer):
    """Normalization over the features of each timestep, then gamma * y + beta."""

    name: str
    size: int
    gamma: np.ndarray | None
    beta: np.ndarray | None
    epsilon: float = 1e-3
    origin: str = ""

    kind = "layer_norm"

    @property
    def input_size(self) -> int:
        return self.size

    @property
    def output_size(self) -> int:
        return self.size

    def arrays(self) -> dict[str, np.ndarray | None]:
        return {"gamma": self.gamma, "beta": self.beta}


@dataclass
class Flatten(_Layer):
    """A sequence of `timesteps` rows of `size` features -> one vector, timestep-major."""

    name: str
    timesteps: int
    size: int
    origin: str = ""

    kind = "flatten"

    @property
    def input_size(self) -> int:
        return self.size

    @property
    def output_size(self) -> int:
        return self.timesteps * self.size


PADDINGS = ("valid", "same", "causal")


class _Windowed(_Layer):
    """Conv1D and Pool1D: each output step reads a window of `span` input steps."""

    def padding_left(self, t_len: int) -> int:
        return window_padding(t_len, self.span, self.stride, self.padding)[0]

    def output_timesteps(self, t_len: int) -> int:
        return window_padding(t_len, self.span, self.stride, self.padding)[1]


@dataclass
class Conv1D(_Windowed):
    """A 1-D convolution over time (see the module docstring)."""

    name: str
    weights: np.ndarray  # (F, K, D)
    bias: np.ndarray | None
    stride: int = 1
    dilation: int = 1
    padding: str = "valid"
    activation: str = "linear"
    origin: str = ""

    kind = "conv1d"

    @property
    def kernel_size(self) -> int:
        return int(self.weights.shape[1])

    @property
    def input_size(self) -> int:
        return int(self.weights.shape[2])

    @property
    def output_size(self) -> int:
        return int(self.weights.shape[0])

    def arrays(self) -> dict[str, np.ndarray | None]:
        return {"weights": self.weights, "bias": self.bias}

    @property
    def span(self) -> int:
        """Timesteps one output step looks at."""
        return self.dilation * (self.kernel_size - 1) + 1


@dataclass
class Pool1D(_Windowed):
    """Max or average pooling over time."""

    name: str
    size: int  # features (unchanged)
    pool_type: str = "max"
    pool_size: int = 2
    stride: int = 2
    padding: str = "valid"
    origin: str = ""

    kind = "pool1d"

    @property
    def input_size(self) -> int:
        return self.size

    @property
    def output_size(self) -> int:
        return self.size

    @property
    def span(self) -> int:
        return self.pool_size


def window_padding(t_len: int, span: int, stride: int, padding: str) -> tuple[int, int]:
    """(left padding, output timesteps) of a window of `span` steps every `stride`."""
    if padding == "valid":
        return 0, max(0, (t_len - span) // stride + 1)
    if padding == "causal":
        return span - 1, (t_len - 1) // stride + 1
    out = -(-t_len // stride)  # same: ceil(T / stride), TF's rule
    total = max((out - 1) * stride + span - t_len, 0)
    return total // 2, out


@dataclass
class Dense(_Layer):
    """A fully connected layer: y = activation(weights @ x + bias)."""

    name: str
    weights: np.ndarray
    bias: np.ndarray | None
    activation: str = "linear"
    origin: str = ""

    kind = "dense"

    @property
    def input_size(self) -> int:
        return int(self.weights.shape[1])

    @property
    def output_size(self) -> int:
        return int(self.weights.shape[0])

    def arrays(self) -> dict[str, np.ndarray | None]:
        return {"weights": self.weights, "bias": self.bias}


@dataclass
class Activation(_Layer):
    """A standalone activation over the last axis (size unchanged)."""

    name: str
    size: int
    activation: str
    origin: str = ""

    kind = "activation"

    @property
    def input_size(self) -> int:
        return self.size

    @property
    def output_size(self) -> int:
        return self.size


Layer = Union[
    LSTM,
    GRU,
    SimpleRNN,
    Bidirectional,
    Dense,
    Activation,
    Masking,
    Normalize,
    LayerNorm,
    Flatten,
    Conv1D,
    Pool1D,
]
LAYER_TYPES: dict[str, type] = {
    "lstm": LSTM,
    "gru": GRU,
    "simple_rnn": SimpleRNN,
    "bidirectional": Bidirectional,
    "dense": Dense,
    "activation": Activation,
    "masking": Masking,
    "normalize": Normalize,
    "layer_norm": LayerNorm,
    "flatten": Flatten,
    "conv1d": Conv1D,
    "pool1d": Pool1D,
}
RECURRENT_TYPES = (LSTM, GRU, SimpleRNN, Bidirectional)


@dataclass
class Model:
    """A whole model: input size, ordered layers, and where it came from."""

    input_size: int
    layers: list[Layer]
    name: str = "model"
    source: str = ""  # human-readable provenance, e.g. "Keras 3.15.1, sine.keras"
    timesteps: int | None = None  # fixed sequence length of the source model, if any
    notes: list[str] = field(default_factory=list)  # what the extractor dropped/folded

    # ---- derived facts -------------------------------------------------------------
    @property
    def output_size(self) -> int:
        return self.layers[-1].output_size if self.layers else self.input_size

    @property
    def returns_sequences(self) -> bool:
        """True when the output has one row per timestep."""
        return (
            self.sequence_layer_count() == len(self.layers)
            and not any(l.kind == "flatten" for l in self.layers)
            and all(l.return_sequences for l in self.layers if l.recurrent)
        )

    @property
    def streamable(self) -> bool:
        """True when one-step-at-a-time inference means something: no reversed time, no
        layer that needs a window of timesteps or the whole sequence."""
        return not any(
            (l.recurrent and (l.go_backwards or isinstance(l, Bidirectional)))
            or l.kind in ("conv1d", "pool1d", "flatten")
            for l in self.layers
        )

    def output_timesteps(self, t_len: int) -> int:
        """Timesteps of a sequence output for an input of `t_len` steps."""
        for layer in self.layers:
            if layer.kind in ("conv1d", "pool1d"):
                t_len = layer.output_timesteps(t_len)
        return t_len

    def kinds(self) -> set[str]:
        """The layer kinds in use (a Bidirectional counts with its inner kind)."""
        used = set()
        for layer in self.layers:
            used.add(layer.kind)
            if isinstance(layer, Bidirectional):
                used.add(layer.forward.kind)
        return used

    def parameter_count(self) -> int:
        return sum(l.parameter_count() for l in self.layers)

    def features(self) -> dict[str, list[str]]:
        """Optional IR features in use -> the names of the layers using them."""
        used: dict[str, list[str]] = {}
        for layer in self.layers:
            for feature in sorted(getattr(layer, "features", lambda: set())()):
                used.setdefault(feature, []).append(layer.name)
        return used

    def sequence_layer_count(self) -> int:
        """How many leading layers see a sequence (the rest see one vector)."""
        for k, layer in enumerate(self.layers):
            if (layer.recurrent and not layer.return_sequences) or layer.kind == "flatten":
                return k + 1
        return len(self.layers)

    # ---- validation ----------------------------------------------------------------
    def validate(self) -> Model:
        """Check shapes, values and structure; raise ModelError naming the culprit."""
        if not isinstance(self.input_size, int) or self.input_size <= 0:
            raise ModelError(
                f"model input size must be a positive integer, got {self.input_size!r}"
            )
        if not any(l.recurrent for l in self.layers):
            raise ModelError(
                "model has no recurrent layer; lstmgen compiles models with at "
                "least one LSTM, GRU or SimpleRNN"
            )
        names = [l.name for l in self.layers]
        if len(set(names)) != len(names):
            raise ModelError(f"layer names must be unique, got {names}")
        width = self.input_size
        sequence = True
        for index, layer in enumerate(self.layers):
            where = f"layer '{layer.name}' ({layer.kind})"
            if layer.input_size != width:
                raise ModelError(
                    f"{where}: expects input size {layer.input_size} "
                    f"but the previous layer gives {width}"
                )
            if layer.recurrent:
                if not sequence:
                    raise ModelError(
                        f"{where}: a recurrent layer needs a sequence, but an earlier "
                        "one has return_sequences=False"
                    )
                _check_recurrent(layer, where)
                sequence = layer.return_sequences
            elif isinstance(layer, Dense):
                _check_array(layer.weights, (layer.output_size, layer.input_size), where, "weights")
                if layer.output_size <= 0:
                    raise ModelError(f"{where}: needs at least one unit")
                if layer.bias is not None:
                    _check_array(layer.bias, (layer.output_size,), where, "bias")
                _check_activation(layer.activation, ALL_ACTIVATIONS, where, "activation")
            elif isinstance(layer, Activation):
                if layer.size <= 0:
                    raise ModelError(f"{where}: size must be positive")
                _check_activation(layer.activation, ALL_ACTIVATIONS, where, "activation")
            elif isinstance(layer, (Masking, Normalize, LayerNorm, Flatten, Conv1D, Pool1D)):
                sequence = _check_shaping(self, layer, where, sequence, index)
            else:
                raise ModelError(f"unknown layer object {layer!r}")
            width = layer.output_size
        return self


def _check_shaping(model: Model, layer: Layer, where: str, sequence: bool, index: int) -> bool:
    """Validate a masking/normalization/shaping layer; return whether a sequence follows."""
    if isinstance(layer, Masking):
        if index != 0:
            raise ModelError(f"{where}: Masking is supported as the first layer only")
        if not np.isfinite(layer.mask_value):
            raise ModelError(f"{where}: mask_value must be finite")
        if any(l.kind in ("conv1d", "pool1d") for l in model.layers):
            raise ModelError(f"{where}: Masking cannot be combined with Conv1D/pooling")
    elif isinstance(layer, Normalize):
        _check_array(layer.mean, (layer.input_size,), where, "mean")
        _check_array(layer.std, (layer.input_size,), where, "std")
        if np.any(layer.std <= 0):
            raise ModelError(f"{where}: std must be positive")
    elif isinstance(layer, LayerNorm):
        for name in ("gamma", "beta"):
            if getattr(layer, name) is not None:
                _check_array(getattr(layer, name), (layer.size,), where, name)
        if not layer.epsilon > 0:
            raise ModelError(f"{where}: epsilon must be positive")
    elif isinstance(layer, Flatten):
        if not sequence:
            raise ModelError(f"{where}: Flatten needs a sequence")
        if model.timesteps is None or model.output_timesteps(model.timesteps) != layer.timesteps:
            raise ModelError(
                f"{where}: Flatten needs the model's fixed number of timesteps "
                f"({layer.timesteps}); the model has T = {model.timesteps}"
            )
        return False
    elif isinstance(layer, (Conv1D, Pool1D)):
        if not sequence:
            raise ModelError(f"{where}: needs a sequence")
        if any(l.recurrent for l in model.layers[:index]):
            raise ModelError(
                f"{where}: Conv1D/pooling is supported in front of the recurrent layers only"
            )
        if layer.padding not in PADDINGS or (
            isinstance(layer, Pool1D) and layer.padding == "causal"
        ):
            raise ModelError(f"{where}: padding {layer.padding!r} is not supported")
        if isinstance(layer, Conv1D):
            if layer.weights.ndim != 3 or min(layer.weights.shape) < 1:
                raise ModelError(f"{where}: weights must be (filters, kernel, input)")
            _check_array(layer.weights, layer.weights.shape, where, "weights")
            if layer.bias is not None:
                _check_array(layer.bias, (layer.output_size,), where, "bias")
            if layer.stride < 1 or layer.dilation < 1:
                raise ModelError(f"{where}: stride and dilation must be at least 1")
            _check_activation(layer.activation, ELEMENTWISE_ACTIVATIONS, where, "activation")
        else:
            if layer.pool_type not in ("max", "avg") or layer.pool_size < 1 or layer.stride < 1:
                raise ModelError(f"{where}: pool_type max/avg, pool_size and stride >= 1")
    return sequence


def _check_recurrent(layer: Layer, where: str) -> None:
    if isinstance(layer, Bidirectional):
        inner = (layer.forward, layer.backward)
        if type(inner[0]) is not type(inner[1]) or not isinstance(inner[0], (LSTM, GRU, SimpleRNN)):
            raise ModelError(f"{where}: forward and backward must be recurrent layers of one kind")
        if inner[0].go_backwards or not inner[1].go_backwards:
            raise ModelError(
                f"{where}: the forward layer must read forward and the backward "
                "layer backward (go_backwards)"
            )
        if inner[0].return_sequences != inner[1].return_sequences:
            raise ModelError(f"{where}: forward and backward disagree on return_sequences")
        if (
            inner[0].output_size != inner[1].output_size
            or inner[0].input_size != inner[1].input_size
        ):
            raise ModelError(f"{where}: forward and backward differ in size")
        if layer.merge_mode not in MERGE_MODES:
            raise ModelError(
                f"{where}: merge_mode {layer.merge_mode!r} is not supported; "
                f"supported: {', '.join(MERGE_MODES)}"
            )
        for part in inner:
            _check_recurrent(part, f"{where} {part.name!r}")
        return
    if isinstance(layer, LSTM):
        _check_lstm(layer, where)
        return
    gates = layer.gates
    h = layer.input_weights.shape[0] // gates if layer.input_weights.ndim == 2 else 0
    if h <= 0:
        raise ModelError(
            f"{where}: needs at least one unit, got input_weights of shape "
            f"{getattr(layer.input_weights, 'shape', None)}"
        )
    _check_array(layer.input_weights, (gates * h, layer.input_size), where, "input_weights")
    _check_array(layer.recurrent_weights, (gates * h, h), where, "recurrent_weights")
    if layer.bias is not None:
        _check_array(layer.bias, (gates * h,), where, "bias")
    if isinstance(layer, GRU):
        if layer.recurrent_bias is not None:
            if not layer.reset_after:
                raise ModelError(
                    f"{where}: recurrent_bias only exists with reset_after=True "
                    "(fold it into bias otherwise)"
                )
            _check_array(layer.recurrent_bias, (gates * h,), where, "recurrent_bias")
        _check_activation(layer.gate_activation, ELEMENTWISE_ACTIVATIONS, where, "gate_activation")
        _check_activation(layer.cell_activation, ELEMENTWISE_ACTIVATIONS, where, "cell_activation")
    else:
        _check_activation(layer.activation, ELEMENTWISE_ACTIVATIONS, where, "activation")


def _check_lstm(layer: LSTM, where: str) -> None:
    h = layer.input_weights.shape[0] // 4 if getattr(layer.input_weights, "ndim", 0) == 2 else 0
    if h <= 0:
        raise ModelError(
            f"{where}: needs at least one unit, got input_weights of shape "
            f"{getattr(layer.input_weights, 'shape', None)}"
        )
    p = h
    if layer.projection is not None:
        if getattr(layer.projection, "ndim", 0) != 2 or layer.projection.shape[0] < 1:
            raise ModelError(f"{where}: projection must be a (P, {h}) matrix")
        p = int(layer.projection.shape[0])
        _check_array(layer.projection, (p, h), where, "projection")
    _check_array(layer.input_weights, (4 * h, layer.input_size), where, "input_weights")
    _check_array(layer.recurrent_weights, (4 * h, p), where, "recurrent_weights")
    if layer.bias is not None:
        _check_array(layer.bias, (4 * h,), where, "bias")
    if layer.peephole is not None:
        _check_array(layer.peephole, (3, h), where, "peephole")
    for name, size in (("initial_h", p), ("initial_c", h)):
        if getattr(layer, name) is not None:
            _check_array(getattr(layer, name), (size,), where, name)
    if layer.clip is not None and not (
        isinstance(layer.clip, (int, float)) and 0.0 < float(layer.clip) < float("inf")
    ):
        raise ModelError(f"{where}: clip must be a positive finite number, got {layer.clip!r}")
    _check_activation(layer.gate_activation, ELEMENTWISE_ACTIVATIONS, where, "gate_activation")
    _check_activation(layer.cell_activation, ELEMENTWISE_ACTIVATIONS, where, "cell_activation")
    _check_activation(layer.output_activation, ELEMENTWISE_ACTIVATIONS, where, "output_activation")


def _check_array(a: object, shape: tuple[int, ...], where: str, what: str) -> None:
    if not isinstance(a, np.ndarray) or a.dtype != np.float32:
        raise ModelError(
            f"{where}: {what} must be a float32 numpy array, got "
            f"{getattr(a, 'dtype', type(a).__name__)}"
        )
    if a.shape != shape:
        raise ModelError(f"{where}: {what} has shape {a.shape}, expected {shape}")
    if not np.all(np.isfinite(a)):
        bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
        raise ModelError(
            f"{where}: {what} holds {bad} NaN/Inf value(s); only finite weights can be compiled"
        )


def _check_activation(name: str, allowed: dict[str, str], where: str, what: str) -> None:
    if name not in allowed:
        raise ModelError(
            f"{where}: {what} '{name}' is not supported; supported: {', '.join(allowed)}"
        )


def float32(a: object) -> np.ndarray:
    """A C-contiguous float32 copy of `a` (what every IR array must be)."""
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32))
