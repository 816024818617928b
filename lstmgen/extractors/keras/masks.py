"""Keras masks along the chain, where they part from the IR's.

A mask (from Masking or Embedding(mask_zero)) reaches the IR's layers as it reaches
Keras's, with two exceptions the IR cannot express, refused by name where they would
change a result:
- Keras's Cropping1D does not support masking and drops the mask; the IR's time slice
  keeps it. A later layer that uses the mask (recurrent, GlobalAveragePooling1D) would
  differ.
- Keras's Bidirectional with return_sequences forces zero outputs at masked steps; the
  IR's repeats the last real step there. Recurrent layers and average pooling skip those
  steps; a layer that reads them (GlobalMaxPooling1D, Flatten, Conv1D, pooling) would
  differ. A sequence output keeps them at the masked steps only: `inspect` notes it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...ir import Layer
from .config import LayerSpec
from .layers import unsupported

#: Layers that use the mask: they skip masked steps (their values do not matter).
USES_MASK = ("LSTM", "GRU", "SimpleRNN", "Bidirectional", "GlobalAveragePooling1D")
#: Layers that read the values of masked steps into real results.
READS_MASKED_VALUES = (
    "GlobalMaxPooling1D",
    "Flatten",
    "Reshape",
    "Conv1D",
    "MaxPooling1D",
    "AveragePooling1D",
)


@dataclass
class MaskState:
    masked: bool = False  # a mask reaches this layer, in Keras and in the IR
    dropped_at: str | None = None  # Keras dropped it here; the IR kept it
    zeroed_by: str | None = None  # masked steps hold Keras's zeros from this Bidirectional

    def before(self, spec: LayerSpec) -> None:
        """Refuse a layer whose result would differ from Keras's."""
        if self.dropped_at and spec.class_name in USES_MASK:
            raise unsupported(
                spec,
                f"Keras drops the mask at Cropping1D '{self.dropped_at}' (it does not "
                "support masking), lstmgen's time slice keeps it, so this layer would skip "
                "the masked timesteps where Keras does not",
            )
        if self.zeroed_by and spec.class_name in READS_MASKED_VALUES:
            raise unsupported(
                spec,
                f"it reads the masked timesteps, where Keras's Bidirectional "
                f"'{self.zeroed_by}' (return_sequences) puts zeros and lstmgen repeats the "
                "last real step",
            )

    def after(self, spec: LayerSpec, layer: Layer | None, sequence: bool) -> None:
        """Follow the mask past `spec` (converted to `layer`, None when dropped)."""
        name = spec.class_name
        if name in ("Masking",) or (name == "Embedding" and spec.config.get("mask_zero")):
            self.masked = True
        if name in USES_MASK:
            self.zeroed_by = None
            if name == "Bidirectional" and sequence and self.masked and not self.dropped_at:
                self.zeroed_by = spec.name
        if name == "Cropping1D" and self.masked:
            self.dropped_at = spec.name
        if not sequence or name in ("Conv1D", "MaxPooling1D", "AveragePooling1D"):
            self.masked, self.dropped_at, self.zeroed_by = False, None, None

    def notes(self, sequence_output: bool) -> list[str]:
        if self.zeroed_by and sequence_output:
            return [
                f"masked timesteps of the output: Keras's Bidirectional '{self.zeroed_by}' "
                "gives zeros there (before later layers), the generated code repeats its "
                "last real step; unmasked timesteps are the same"
            ]
        return []
