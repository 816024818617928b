"""ONNX extractor: `.onnx` files with the `LSTM`, `GRU` and `RNN` operators into the IR.

Everything lstmgen knows about ONNX lives here. The recurrent operators store, per
direction (num_directions = 1, or 2 with direction='bidirectional': forward first):

* `LSTM`: W [nd, 4H, D], R [nd, 4H, H], B [nd, 8H] = [Wb, Rb] and peepholes P [nd, 3H],
  with gate blocks in the order **i, o, f, c** (peepholes i, o, f); the IR wants rows
  i, f, g, o, one summed bias and peephole rows i, f, o.
* `GRU`: W [nd, 3H, D], R [nd, 3H, H], B [nd, 6H] = [Wb, Rb], blocks **z, r, h** (the IR's
  z, r, n as they are). `linear_before_reset=1` computes h~ = g(Wh x + Wbh + r * (Rh h +
  Rbh)): the IR's reset_after=True with bias Wb and recurrent_bias Rb;
  `linear_before_reset=0` (the default) computes h~ = g(Wh x + Rh (r * h) + Rbh + Wbh): the
  IR's reset_after=False with bias Wb + Rb. The IR GRU has no clip and no initial state:
  both are refused (an all-zero initial_h is the IR's start and is dropped).
* `RNN`: W [nd, H, D], R [nd, H, H], B [nd, 2H]: the IR's SimpleRNN with bias Wb + Rb
  (no clip, no initial state, as for the GRU).

A bidirectional operator becomes an IR `Bidirectional` (merge_mode concat) when the graph
concatenates its two directions along the features, forward first: Y [T, 2, B, H]
transposed to [T, B, 2, H] and reshaped to [T, B, 2H] (torch.onnx's pattern; the backward
half of ONNX's Y is already in input time order, which is the IR's return_sequences
semantics), or Y_h [2, B, H] transposed to [B, 2, H] and reshaped to [B, 2H] (the final
states; also `torch.cat([h_n[-2], h_n[-1]], -1)`), or when the graph output keeps the
directions axis (read as that concatenation). The last step of the concatenated Y
(PyTorch's `out[:, -1]`, whose backward half is the backward direction after one step) is
an IR TimeSlice of the last step after the Bidirectional sequence. Any other use of the two
directions (one direction alone, in feature-major order, mixed with another axis) is
refused.

An exporter (torch.onnx.export, tf2onnx, MATLAB's exportONNXNetwork) surrounds the
recurrent nodes with glue: Transposes between layouts, Squeezes of the num_directions axis,
a Gather or Slice of the last step, Gemm or MatMul + Add for Dense layers, activations, and
small computations on the input's shape that build zero initial states. lstmgen does not
pattern-match exporters: it walks the graph symbolically from its sequence input to the
output it compiles (the only one, or the one named with `output=`; initial states given
as further graph inputs start at zero, see `graph_io`), tracking for every tensor on the
way

* for the data path, which axis is time, batch, features, the two directions of a
  bidirectional operator or a singleton (the graph input's axes get their roles from the
  first operator that reveals them: the recurrent operator's `layout`, or the contraction
  axis of a MatMul), and whether the time axis runs in the IR's order or reversed (a reverse
  operator returns Y in the original time order, the IR's go_backwards emits it in
  processing order: the walk tracks the flip instead of inserting one);
* for everything else, its value: constants (initializers, Constant nodes, and whatever
  onnx's reference evaluator folds from them at the graph's own opset), vectors of
  symbolic axis sizes (from Shape), and tensors filled with one value whose shape depends
  on the input (ConstantOfShape, Expand, Tile).

Before the walk, two exporter idioms are rewritten into their equivalent: a Gather or Slice
of one part out of a Concat (PyTorch's `h_n[-1]` over every layer's Y_h), and a Concat along
the last axis of the two items of a size-2 axis (`torch.cat([h_n[-2], h_n[-1]], -1)`) as a
Transpose + Reshape.

Anything the walk cannot prove equivalent to the IR is refused with an
UnsupportedLayerError naming the node, its op_type and what is supported. The oracle for
`lstmgen verify` is onnxruntime running the file itself on one thread.

The package, by job: `loading` (open a file or proto), `graph_io` (which output, which
input is the sequence, initial states as inputs), `walk` (the symbolic walk and the
interface handlers use), `values` (the abstract values: Axis, Data, Const, SymVec, Fill),
`rewrites` (exporter idioms rewritten before the walk), `folding` (constant folding),
`shapes` (shape arithmetic), `ops/` (one module per operator family, registered by
op_type in `registry`), `spec` (what ONNX fixes about the recurrent operators), `plan` and
`oracle` (onnxruntime as the oracle of `lstmgen verify`).
"""

from __future__ import annotations

from .loading import import_onnx, open_file, open_proto
from .oracle import import_onnxruntime, runnable_by_onnxruntime
from .plan import Plan, from_onnx_output, to_onnx_input
from .spec import SUPPORTED

#: IR layer kind -> the ONNX operators that become it (for the README's support table).
PRODUCES = {
    "lstm": "LSTM (forward, reverse)",
    "gru": "GRU (forward, reverse; linear_before_reset 0/1)",
    "simple_rnn": "RNN (forward, reverse)",
    "bidirectional": "LSTM/GRU/RNN direction=bidirectional (directions concatenated)",
    "dense": "Gemm, MatMul+Add",
    "activation": "Relu, Sigmoid, Tanh, Softmax, LogSoftmax, HardSigmoid, ...",
    "time_slice": "Slice of consecutive steps (the last k); the last step of a bidirectional Y",
}
FEATURES_PRODUCED = {
    "peephole": "P",
    "clip": "clip",
    "input_forget": "input_forget",
    "initial_state": "initial_h/c (constants)",
}

__all__ = [
    "FEATURES_PRODUCED",
    "PRODUCES",
    "SUPPORTED",
    "Plan",
    "from_onnx_output",
    "import_onnx",
    "import_onnxruntime",
    "open_file",
    "open_proto",
    "runnable_by_onnxruntime",
    "to_onnx_input",
]
