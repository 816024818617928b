"""What the ONNX specification fixes about the recurrent operators LSTM, GRU and RNN, and
what lstmgen supports of ONNX overall (the text every refusal ends with).

Per direction (num_directions = 1, or 2 with direction='bidirectional': forward first):

* `LSTM`: W [nd, 4H, D], R [nd, 4H, H], B [nd, 8H] = [Wb, Rb] and peepholes P [nd, 3H],
  with gate blocks in the order **i, o, f, c** (peepholes i, o, f); the IR wants rows
  i, f, g, o, one summed bias and peephole rows i, f, o.
* `GRU`: W [nd, 3H, D], R [nd, 3H, H], B [nd, 6H] = [Wb, Rb], blocks **z, r, h** (the IR's
  z, r, n as they are).
* `RNN`: W [nd, H, D], R [nd, H, H], B [nd, 2H].
"""

from __future__ import annotations

SUPPORTED = (
    "LSTM, GRU (linear_before_reset 0/1), RNN (forward/reverse/bidirectional with "
    "the two directions concatenated along the features, constant weights; constant "
    "initial state for LSTM only, or a graph input starting at zero), Transpose, Squeeze, "
    "Unsqueeze, Reshape, Flatten (adding or dropping singleton axes), Gather/Slice of the "
    "last step, Slice of consecutive steps, Slice/ReverseSequence reversing time, Gemm, "
    "MatMul (+ Add), Relu, Sigmoid, Tanh, Softmax, LogSoftmax, HardSigmoid, Softsign, "
    "Softplus, Elu, Identity, Dropout, Cast"
)
BIDIRECTIONAL_GLUE = (
    "lstmgen supports the two directions concatenated along the features, "
    "forward first: Y [T, 2, B, H] -> Transpose [T, B, 2, H] -> Reshape "
    "[T, B, 2H], or Y_h [2, B, H] -> Transpose [B, 2, H] -> Reshape [B, 2H] "
    "(torch: torch.cat([h_n[-2], h_n[-1]], -1))"
)
#: The recurrent operators: gate blocks and activations per direction, IR kind.
RECURRENT_OPS = {"LSTM": (4, 3, "lstm"), "GRU": (3, 2, "gru"), "RNN": (1, 1, "simple_rnn")}
DEFAULT_ACTIVATIONS = {
    "LSTM": ["Sigmoid", "Tanh", "Tanh"],
    "GRU": ["Sigmoid", "Tanh"],
    "RNN": ["Tanh"],
}
ACTIVATION_SLOTS = {"LSTM": ("f", "g", "h"), "GRU": ("f", "g"), "RNN": ("f",)}
#: Inputs and outputs that carry a state (transposed with layout=1).
STATE_INPUTS = {"LSTM": (0, 5, 6), "GRU": (0, 5), "RNN": (0, 5)}
STATE_OUTPUTS = {"LSTM": (0, 1, 2), "GRU": (0, 1), "RNN": (0, 1)}
#: IR gate blocks i, f, g, o taken from ONNX blocks i, o, f, c.
ONNX_BLOCK_FOR_IR = (0, 2, 3, 1)
#: IR peephole rows i, f, o taken from ONNX peephole blocks i, o, f.
ONNX_PEEPHOLE_FOR_IR = (0, 2, 1)
RECURRENT_ACTIVATIONS = (
    "Sigmoid, Tanh, Relu, Softsign, Softplus, Elu (alpha 1), "
    "HardSigmoid (alpha 0.2, beta 0.5; or alpha 1/6, beta 0.5)"
)
#: Activations of the RNN operators that take alpha / beta (onnxruntime consumes
#: activation_alpha and activation_beta in order, only for these).
USES_ALPHA = {"leakyrelu", "thresholdedrelu", "elu", "affine", "scaledtanh", "hardsigmoid"}
USES_BETA = {"affine", "scaledtanh", "hardsigmoid"}
DEFAULT_ALPHA = {"hardsigmoid": 0.2, "elu": 1.0, "leakyrelu": 0.01, "thresholdedrelu": 1.0}
DEFAULT_BETA = {"hardsigmoid": 0.5}
