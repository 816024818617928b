"""The walk over a `.tflite` graph that turns its operators into a chain of IR layers.

lstmgen does not pattern-match converters: it follows the main subgraph's operators in
order from its single input, tracking for every tensor computed from that input a `Flow`:
the IR layers applied so far (and, for a full-integer model, the integer layers), whether it
is a sequence or one vector, its width, its number of timesteps, and whether its time axis
runs reversed with respect to the IR's order (a REVERSE_V2 flips it; a recurrent layer that
reads a reversed sequence is the IR's go_backwards layer, whose outputs come in processing
order). The shapes of the tensors are checked at every step, so a reshape that mixes time
and features, or a slice that is not the last step, is refused by name.

What becomes what:

* `UNIDIRECTIONAL_SEQUENCE_LSTM` / `_RNN`, `BIDIRECTIONAL_SEQUENCE_LSTM`: recurrent layers
  returning sequences (see `layers.py` for their inputs);
* `STRIDED_SLICE` or `GATHER` of the last timestep: the last recurrent layer before it
  returns its last step instead (return_sequences=False), the layers in between being per
  timestep;
* `CONCATENATION` along the features of a forward and a backward layer over one input (the
  backward output put back in input order for sequences): an IR Bidirectional;
* `FULLY_CONNECTED`: Dense; `SOFTMAX` (beta 1), `LOGISTIC`, `TANH`, `RELU`: the activation
  of the Dense before them, or an Activation layer;
* `RESHAPE`, `SQUEEZE`, `EXPAND_DIMS` adding or dropping singleton axes: nothing;
* `QUANTIZE` of the float input and `DEQUANTIZE` of the output (a full-integer model with a
  float interface), `DEQUANTIZE` of a constant (float16 weights): folded.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ...errors import ModelError, UnsupportedLayerError
from ...ir import Activation, Bidirectional, Dense, Layer, Model
from ...ir.int8 import ActivationInt8, Int8Model, LayerInt8, Quant
from . import layers as L
from . import shaping
from .schema import Operator, Tensor, TfliteModel

SUPPORTED = (
    "UNIDIRECTIONAL_SEQUENCE_LSTM, BIDIRECTIONAL_SEQUENCE_LSTM (float), "
    "UNIDIRECTIONAL_SEQUENCE_RNN (float), FULLY_CONNECTED, STRIDED_SLICE/GATHER of the last "
    "step, REVERSE_V2 and CONCATENATION of a bidirectional layer, RESHAPE, SQUEEZE, "
    "EXPAND_DIMS, SOFTMAX, LOGISTIC, TANH, RELU, QUANTIZE, DEQUANTIZE"
)
WHILE_EXPLAINED = (
    "the graph computes its recurrence with a WHILE loop (what TensorFlow's converter writes "
    "for a Keras 3 model, or without a fixed batch size); lstmgen reads the fused "
    "UNIDIRECTIONAL_SEQUENCE_LSTM op. Convert a tf_keras model the way TensorFlow Lite Micro "
    "does: tf.function(lambda x: model(x)).get_concrete_function(tf.TensorSpec([1, T, D])), "
    "then tf.lite.TFLiteConverter.from_concrete_functions"
)
ACTIVATION_OPS = {"SOFTMAX": "softmax", "LOGISTIC": "sigmoid", "TANH": "tanh", "RELU": "relu"}


@dataclass(frozen=True)
class Flow:
    """A tensor computed from the model input (see the module docstring)."""

    layers: tuple[Layer, ...]
    int8: tuple[LayerInt8, ...]
    sequence: bool
    width: int
    timesteps: int
    integer: bool  # int8 data
    reversed: bool = False
    dequantized: bool = False  # an int8 result turned back into float (the model's end)


class Walk:
    """One pass over the operators; `run` returns the float IR and the integer model."""

    def __init__(self, model: TfliteModel, source: str) -> None:
        self.model, self.source = model, source
        self.tensors = model.tensors
        self.flows: dict[int, Flow] = {}
        self.folded: dict[int, np.ndarray] = {}
        self.names: dict[str, int] = {}
        self.input_quant: Quant | None = None
        self.output_quant: Quant | None = None
        self.clipped: dict[str, float] = {}  # op label -> its cell_clip
        self.handlers: dict[str, Callable[[Operator], None]] = {
            "UNIDIRECTIONAL_SEQUENCE_LSTM": self._lstm,
            "BIDIRECTIONAL_SEQUENCE_LSTM": self._bidirectional_lstm,
            "UNIDIRECTIONAL_SEQUENCE_RNN": self._rnn,
            "FULLY_CONNECTED": self._dense,
            "STRIDED_SLICE": lambda op: shaping.strided_slice(self, op),
            "GATHER": lambda op: shaping.gather(self, op),
            "RESHAPE": lambda op: shaping.reshape(self, op),
            "SQUEEZE": lambda op: shaping.reshape(self, op),
            "EXPAND_DIMS": lambda op: shaping.reshape(self, op),
            "REVERSE_V2": lambda op: shaping.reverse(self, op),
            "CONCATENATION": lambda op: shaping.concatenation(self, op),
            "QUANTIZE": self._quantize,
            "DEQUANTIZE": self._dequantize,
            **{op: self._activation for op in ACTIVATION_OPS},
        }

    # ---- the walk --------------------------------------------------------------------
    def run(self) -> tuple[Model, Int8Model | None]:
        m = self.model
        loops = [op for op in m.operators if op.opcode in ("WHILE", "CALL_ONCE", "IF")]
        if loops:
            raise UnsupportedLayerError(f"{loops[0].label}: {WHILE_EXPLAINED}")
        if m.subgraph_count > 1:
            raise UnsupportedLayerError(
                f"the model has {m.subgraph_count} subgraphs: " + WHILE_EXPLAINED
            )
        if len(m.inputs) != 1 or len(m.outputs) != 1:
            raise UnsupportedLayerError(
                f"the graph has {len(m.inputs)} inputs and {len(m.outputs)} outputs; lstmgen "
                "reads models with one input sequence and one output"
            )
        x = self.tensors[m.inputs[0]]
        self.flows[x.index] = self._input_flow(x)
        for op in m.operators:
            handler = self.handlers.get(op.opcode)
            if handler is None:
                raise UnsupportedLayerError(f"{op.label} is not supported; supported: {SUPPORTED}")
            handler(op)
        out = self.tensors[m.outputs[0]]
        flow = self.flows.get(out.index)
        if flow is None:
            raise UnsupportedLayerError(f"the output ({out.label}) is not computed from the input")
        return self._finish(x, out, flow)

    def _input_flow(self, x: Tensor) -> Flow:
        if x.dtype not in ("float32", "int8"):
            raise UnsupportedLayerError(
                f"the input ({x.label}) is {x.dtype}; lstmgen reads float32 or int8 inputs"
            )
        if len(x.shape) != 3 or 1 not in x.shape[:2] or x.shape[2] < 1 or min(x.shape) < 1:
            raise UnsupportedLayerError(
                f"the input ({x.label}) has shape {list(x.shape)}; lstmgen reads one sequence "
                "of shape [1, T, D] (batch 1; or [T, 1, D] time-major)"
            )
        t_len = x.shape[1] if x.shape[0] == 1 else x.shape[0]
        integer = x.dtype == "int8"
        if integer:
            self.input_quant = L.quant_of(x, _pseudo_op("the model input"), "input")
        return Flow((), (), True, int(x.shape[2]), int(t_len), integer)

    def _finish(self, x: Tensor, out: Tensor, flow: Flow) -> tuple[Model, Int8Model | None]:
        if not any(l.recurrent for l in flow.layers):
            raise UnsupportedLayerError("the graph has no recurrent operator")
        if flow.sequence and flow.reversed:
            raise UnsupportedLayerError(
                "the output sequence runs backwards in time; lstmgen's models emit "
                "sequences in processing order"
            )
        self.check_shape(out, flow, _pseudo_op("the model output"))
        model = Model(
            input_size=int(x.shape[2]),
            layers=list(flow.layers),
            name="model",
            source=self.source,
            timesteps=flow.timesteps,
            notes=self._notes(),
        ).validate()
        if not (flow.integer or flow.dequantized):
            return model, None
        if not flow.dequantized:
            self.output_quant = L.quant_of(out, _pseudo_op("the model output"), "output")
        assert self.input_quant is not None and self.output_quant is not None
        integer = Int8Model(
            input_size=model.input_size,
            layers=list(flow.int8),
            input=self.input_quant,
            output=self.output_quant,
            name="model",
            source=self.source,
            timesteps=flow.timesteps,
        ).validate()
        model.notes.append(
            "full-integer model: the IR holds its weights dequantized (float targets "
            "approximate it); --quantize int8-full generates its integer kernel, bit-exact "
            "with TensorFlow Lite Micro"
        )
        return model, integer

    def _notes(self) -> list[str]:
        if not self.clipped:
            return []
        clips = sorted(set(self.clipped.values()))
        return [
            f"{', '.join(self.clipped)} clip the cell state to +-"
            f"{'/'.join(f'{c:g}' for c in clips)} (cell_clip: the converter sets it on every "
            "Keras LSTM); the float IR has no cell-state clip, so float targets agree with "
            "the file while |c| stays below it (the int8-full kernel applies the clip)"
        ]

    # ---- helpers ---------------------------------------------------------------------
    def new_name(self, base: str) -> str:
        k = self.names.get(base, 0)
        self.names[base] = k + 1
        return base if k == 0 else f"{base}_{k}"

    def constant(self, index: int) -> np.ndarray | None:
        t = self.tensors[index]
        return t.data if t.data is not None else self.folded.get(index)

    def flow(self, op: Operator, k: int = 0) -> Flow:
        if k >= len(op.inputs) or op.inputs[k] < 0:
            raise ModelError(f"{op.label}: input {k} is missing")
        flow = self.flows.get(op.inputs[k])
        if flow is None:
            t = self.tensors[op.inputs[k]]
            raise UnsupportedLayerError(
                f"{op.label}: input {k} ({t.label}) is not computed from the model input; "
                "lstmgen follows one data path from the input to the output"
            )
        if flow.dequantized:
            raise UnsupportedLayerError(
                f"{op.label}: computes in float after a DEQUANTIZE; lstmgen reads float "
                "models and full-integer models"
            )
        return flow

    def output(self, op: Operator, k: int = 0) -> Tensor:
        if k >= len(op.outputs):
            raise ModelError(f"{op.label}: output {k} is missing")
        return self.tensors[op.outputs[k]]

    def put(self, op: Operator, flow: Flow, k: int = 0) -> None:
        out = self.output(op, k)
        self.check_shape(out, flow, op)
        expected = "int8" if flow.integer else "float32"
        if out.dtype != expected:
            raise UnsupportedLayerError(
                f"{op.label}: output ({out.label}) is {out.dtype} where {expected} was "
                "expected (lstmgen reads float models and full-integer int8 models)"
            )
        self.flows[out.index] = flow

    def check_shape(self, t: Tensor, flow: Flow, op: Operator) -> None:
        shape = t.shape
        ok = len(shape) >= 1 and shape[-1] == flow.width
        lead = [d for d in shape[:-1] if d != 1]
        if flow.sequence:
            ok = ok and (lead == [flow.timesteps] or (flow.timesteps == 1 and not lead))
        else:
            ok = ok and not lead
        if not ok:
            what = f"[T={flow.timesteps}, {flow.width}]" if flow.sequence else f"[{flow.width}]"
            raise ModelError(
                f"{op.label}: {t.label} has shape {list(shape)}, where the data path holds "
                f"{what} (batch 1)"
            )

    def time_axis(self, t: Tensor, flow: Flow) -> int:
        for axis, d in enumerate(t.shape[:-1]):
            if d == flow.timesteps and d != 1:
                return axis
        return 1 if len(t.shape) >= 3 else 0

    def ints(self, op: Operator, k: int, what: str) -> np.ndarray:
        value = self.constant(op.inputs[k]) if k < len(op.inputs) and op.inputs[k] >= 0 else None
        if value is None or value.dtype not in (np.int32, np.int64):
            raise UnsupportedLayerError(f"{op.label}: {what} (input {k}) must be an int constant")
        return np.asarray(value, np.int64).reshape(-1)

    def integer_quants(self, op: Operator, flow: Flow) -> tuple[Quant, Quant] | None:
        if not flow.integer:
            return None
        return (
            L.quant_of(self.tensors[op.inputs[0]], op, "input"),
            L.quant_of(self.output(op), op, "output"),
        )

    def _check_weights_float(self, op: Operator, flow: Flow, slots: range) -> None:
        """A float data path needs float weights (int8 weights there: dynamic range)."""
        if flow.integer:
            return
        for k in slots:
            if k < len(op.inputs) and op.inputs[k] >= 0:
                value = self.constant(op.inputs[k])
                if value is not None and value.dtype in (np.int8, np.uint8):
                    raise UnsupportedLayerError(
                        f"{op.label}: int8 weights with float activations (dynamic-range "
                        "quantization) are not supported; lstmgen reads float models and "
                        "full-integer models (converted with a representative_dataset)"
                    )

    # ---- recurrent operators -----------------------------------------------------------
    def _recurrent_input(self, op: Operator, time_major: bool) -> Flow:
        x = self.flow(op)
        if not x.sequence:
            raise UnsupportedLayerError(f"{op.label}: its input is not a sequence")
        t = self.tensors[op.inputs[0]]
        want = (x.timesteps, 1, x.width) if time_major else (1, x.timesteps, x.width)
        if t.shape != want:
            raise ModelError(
                f"{op.label}: input ({t.label}) has shape {list(t.shape)}, expected "
                f"{list(want)} ({'time-major' if time_major else 'batch-major'}, batch 1)"
            )
        return x

    def _states(self, op: Operator, slots: tuple[int, ...]) -> tuple[Tensor, ...]:
        states = []
        for k in slots:
            if k >= len(op.inputs) or op.inputs[k] < 0:
                raise ModelError(f"{op.label}: state input {k} is missing")
            t = self.tensors[op.inputs[k]]
            if t.data is not None and np.any(t.data != 0):
                raise UnsupportedLayerError(
                    f"{op.label}: state {t.label} has a constant nonzero initial value; "
                    "lstmgen's recurrent layers start from zero"
                )
            states.append(t)
        return tuple(states)

    def _lstm_options(self, op: Operator, x: Flow, states: tuple[Tensor, ...]) -> dict:
        ops = L.Operands(op, self.tensors, self.constant)
        input_quant = L.quant_of(self.tensors[op.inputs[0]], op, "input") if x.integer else None
        cell_clip = float(op.option(1, "float32", 0.0))
        if not np.isfinite(cell_clip) or cell_clip < 0:
            raise ModelError(f"{op.label}: cell_clip {cell_clip} must be a finite value >= 0")
        if cell_clip > 0:
            self.clipped[op.label] = cell_clip
        return {
            "activation": ops.option_activation(0),
            "cell_clip": cell_clip,
            "proj_clip": float(op.option(2, "float32", 0.0)),
            "diagonal_recurrent": bool(op.option(5, "bool", False)),
            "states": states,
            "input_quant": input_quant,
        }

    def _lstm(self, op: Operator) -> None:
        time_major = bool(op.option(3, "bool", False))
        x = self._recurrent_input(op, time_major)
        if any(op.inputs[k] >= 0 for k in range(20, min(24, len(op.inputs)))):
            raise UnsupportedLayerError(
                f"{op.label}: layer normalization coefficients (inputs 20-23) are not in the IR"
            )
        if len(op.inputs) != 24:
            raise ModelError(f"{op.label}: has {len(op.inputs)} inputs, expected 24")
        self._check_weights_float(op, x, range(1, 18))
        options = self._lstm_options(op, x, self._states(op, (18, 19)))
        ops = L.Operands(op, self.tensors, self.constant)
        layer, integer = L.lstm_cell(ops, 1, x.width, self.new_name("lstm"), x.integer, options)
        layer.go_backwards = x.reversed
        if integer is not None:
            integer.go_backwards = x.reversed
            if self.tensors[op.inputs[18]].shape[-1:] != (layer.output_size,):
                raise ModelError(f"{op.label}: the hidden state's size is not {layer.output_size}")
        self.put(op, self._append(x, layer, integer, layer.output_size))

    def _append(self, x: Flow, layer: Layer, integer: LayerInt8 | None, width: int) -> Flow:
        """x through one more layer; a recurrent layer emits its outputs in processing
        order (the IR's go_backwards), so its output is never reversed."""
        return dataclasses.replace(
            x,
            layers=x.layers + (layer,),
            int8=x.int8 + ((integer,) if integer is not None else ()),
            width=width,
            reversed=x.reversed and not layer.recurrent,
        )

    def _bidirectional_lstm(self, op: Operator) -> None:
        time_major = bool(op.option(4, "bool", True))
        x = self._recurrent_input(op, time_major)
        if x.integer:
            raise UnsupportedLayerError(
                f"{op.label}: the integer kernel reads two UNIDIRECTIONAL_SEQUENCE_LSTM ops "
                "(what the converter writes for Keras Bidirectional), not this fused op"
            )
        if x.reversed:
            raise UnsupportedLayerError(f"{op.label}: reads a time-reversed sequence")
        if len(op.inputs) != 48:
            raise ModelError(f"{op.label}: has {len(op.inputs)} inputs, expected 48")
        if any(op.inputs[k] >= 0 for k in range(39, 48)):
            raise UnsupportedLayerError(
                f"{op.label}: an auxiliary input (inputs 39-47) is not in the IR"
            )
        self._check_weights_float(op, x, range(1, 35))
        options = self._lstm_options(op, x, self._states(op, (35, 36, 37, 38)))
        ops = L.Operands(op, self.tensors, self.constant)
        name = self.new_name("bidirectional")
        forward, _ = L.lstm_cell(ops, 1, x.width, f"{name}.forward", False, options)
        backward, _ = L.lstm_cell(ops, 18, x.width, f"{name}.backward", False, options)
        backward.go_backwards = True
        if bool(op.option(3, "bool", False)):  # merge_outputs: one output, concatenated
            both = Bidirectional(name, forward, backward, "concat", origin=L.LSTM_ORIGIN)
            self.put(op, self._append(x, both, None, both.output_size))
            return
        self.put(op, self._append(x, forward, None, forward.output_size), 0)
        bw = dataclasses.replace(
            self._append(x, backward, None, backward.output_size), reversed=True
        )
        self.put(op, bw, 1)

    def _rnn(self, op: Operator) -> None:
        time_major = bool(op.option(0, "bool", False))
        x = self._recurrent_input(op, time_major)
        if x.integer:
            raise UnsupportedLayerError(f"{op.label}: the integer kernel has no SimpleRNN")
        self._check_weights_float(op, x, range(1, 4))
        self._states(op, (4,))
        ops = L.Operands(op, self.tensors, self.constant)
        activation = ops.option_activation(1)
        layer = L.simple_rnn(ops, x.width, self.new_name("simple_rnn"), activation)
        layer.go_backwards = x.reversed
        self.put(op, self._append(x, layer, None, layer.output_size))

    # ---- dense and activations -------------------------------------------------------
    def _dense(self, op: Operator) -> None:
        x = self.flow(op)
        self._check_weights_float(op, x, range(1, 3))
        ops = L.Operands(op, self.tensors, self.constant)
        layer, integer = L.dense(
            ops, x.width, self.new_name("dense"), x.integer, self.integer_quants(op, x)
        )
        self.put(op, self._append(x, layer, integer, layer.output_size))

    def _activation(self, op: Operator) -> None:
        x = self.flow(op)
        name = ACTIVATION_OPS[op.opcode]
        beta = float(op.option(0, "float32", 1.0)) if op.opcode == "SOFTMAX" else 1.0
        if beta != 1.0:
            raise UnsupportedLayerError(f"{op.label}: softmax with beta {beta} is not in the IR")
        last = x.layers[-1] if x.layers else None
        if isinstance(last, Dense) and last.activation == "linear":
            layers = x.layers[:-1] + (dataclasses.replace(last, activation=name),)
        else:
            layers = x.layers + (Activation(self.new_name("activation"), x.width, name),)
        int8 = x.int8
        if x.integer:
            q_in, q_out = self.integer_quants(op, x) or (None, None)
            assert q_in is not None and q_out is not None
            int8 = int8 + (ActivationInt8(self.new_name(name), x.width, name, q_in, q_out, beta),)
        self.put(op, dataclasses.replace(x, layers=layers, int8=int8))

    # ---- shaping -----------------------------------------------------------------------

    def _quantize(self, op: Operator) -> None:
        x = self.flow(op)
        out = self.output(op)
        if x.integer or x.layers or out.dtype != "int8":
            raise UnsupportedLayerError(
                f"{op.label}: only the quantization of the float model input to int8 is "
                "supported (no requantization inside the graph)"
            )
        self.input_quant = L.quant_of(out, op, "output")
        self.put(op, dataclasses.replace(x, integer=True))

    def _dequantize(self, op: Operator) -> None:
        source = op.inputs[0] if op.inputs else -1
        value = self.constant(source) if source >= 0 else None
        if value is not None:  # a constant, e.g. float16 weights
            t = self.tensors[source]
            ops = L.Operands(op, self.tensors, self.constant)
            if value.dtype == np.float16:
                real = value.astype(np.float32)
            else:
                real = ops.real(0, tuple(value.shape), f"constant {t.label}")
            self.folded[self.output(op).index] = real
            return
        x = self.flow(op)
        if not x.integer:
            raise UnsupportedLayerError(f"{op.label}: dequantizes a float tensor")
        self.output_quant = L.quant_of(self.tensors[source], op, "input")
        flow = dataclasses.replace(x, integer=False, dequantized=True)
        out = self.output(op)
        self.check_shape(out, flow, op)
        self.flows[out.index] = flow


def _pseudo_op(label: str) -> Operator:
    return Operator(-1, label, 1, (), (), 0, None)
