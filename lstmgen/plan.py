"""The execution plan of an IR model: which layers run per timestep, in which order.

Backends share this so that they agree on time order. The sequence part of a model (the
layers up to the first LSTM that returns only its last state) runs time-major, one step
through all of its layers at a time, in *stages*. A new stage starts at a `go_backwards`
(or Bidirectional) layer that has another recurrent layer before it: that layer needs the whole output
sequence of the stage before it, read from the last step to the first, so the earlier
stage's outputs are buffered. A `go_backwards` LSTM that is the first recurrent layer
needs no buffer: its stage just reads the input from the last step to the first
(per-timestep layers before it commute with the reversal). The *tail* (layers after the
sequence collapsed to one vector) runs once, on the last step's output.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .ir import Model


@dataclass
class Stage:
    layers: list[int] = field(default_factory=list)  # indices into model.layers
    reverse: bool = False   # reads its input from the last timestep to the first
    buffered: bool = False  # input is the previous stage's buffered outputs, not x

    def input_size(self, model: Model) -> int:
        return model.layers[self.layers[0]].input_size

    def output_size(self, model: Model) -> int:
        return model.layers[self.layers[-1]].output_size


@dataclass
class Plan:
    stages: list[Stage]
    tail: list[int]

    @property
    def needs_buffer(self) -> bool:
        return len(self.stages) > 1


def make_plan(model: Model) -> Plan:
    n_seq = model.sequence_layer_count()
    stages = [Stage()]
    seen_recurrent = False
    for k, layer in enumerate(model.layers[:n_seq]):
        if layer.recurrent and (layer.go_backwards or layer.kind == "bidirectional"):
            if seen_recurrent:
                stages.append(Stage(reverse=True, buffered=True))
            else:
                stages[-1].reverse = True
        seen_recurrent = seen_recurrent or layer.recurrent
        stages[-1].layers.append(k)
    return Plan(stages=stages, tail=list(range(n_seq, len(model.layers))))
