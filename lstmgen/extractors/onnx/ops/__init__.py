"""The data-path operators of the ONNX walk, one module per operator family; importing
this package registers every handler in `registry.DATA_OPS`.

* `recurrent` -- LSTM, GRU, RNN (one IR layer, or a Bidirectional of two);
  `recurrent_layers` builds the IR layer of one direction and says where each array went.
* `dense` -- Gemm, MatMul, Add (a bias folded into the Dense before it).
* `activations` -- Relu, Sigmoid, Tanh, Softmax, HardSigmoid, ... (folded into the Dense
  before them, or an IR Activation).
* `shaping` -- Identity/Dropout/Cast, Transpose, Squeeze, Unsqueeze, Reshape, Flatten: they
  move, add or drop axes; no IR layer.
* `time` -- Gather, Slice, ReverseSequence on the time axis: the last step, a reversal.
"""

from . import activations, dense, recurrent, shaping, time

__all__ = ["activations", "dense", "recurrent", "shaping", "time"]
