"""Flash and RAM estimates of the generated C, from the IR and the plan alone.

Flash counts the float32 weights (code size is not estimated here). RAM counts the
recurrent state (h and c of every LSTM) and the largest stack scratch of one call.
"""
from __future__ import annotations

from dataclasses import dataclass

from .ir import LSTM, Model
from .plan import make_plan

FLOAT_BYTES = 4
DEFAULT_MAX_TIMESTEPS = 100


@dataclass
class MemoryEstimate:
    weight_bytes: int
    state_bytes: int
    scratch_bytes: int
    sequence_buffer_bytes: int  # only for plans with buffered stages, per max timesteps

    @property
    def ram_bytes(self) -> int:
        return self.state_bytes + self.scratch_bytes + self.sequence_buffer_bytes


def max_width(model: Model) -> int:
    return max([model.input_size] + [layer.output_size for layer in model.layers])


def max_timesteps(model: Model) -> int:
    return model.timesteps or DEFAULT_MAX_TIMESTEPS


def estimate(model: Model) -> MemoryEstimate:
    plan = make_plan(model)
    state = sum(2 * l.units for l in model.layers if isinstance(l, LSTM))
    # one LSTM's gate pre-activations (4H), two layer buffers in a step, and the sequence
    # part's last output in predict
    gates = max(4 * l.units for l in model.layers if isinstance(l, LSTM))
    scratch = gates + 3 * max_width(model)
    buffers = 0
    if plan.needs_buffer:
        widths = [s.output_size(model) for s in plan.stages[:-1]]
        buffers = min(2, len(widths)) * max(widths) * max_timesteps(model)
    return MemoryEstimate(weight_bytes=model.parameter_count() * FLOAT_BYTES,
                          state_bytes=state * FLOAT_BYTES, scratch_bytes=scratch * FLOAT_BYTES,
                          sequence_buffer_bytes=buffers * FLOAT_BYTES)
