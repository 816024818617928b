"""MATLAB target (MATLAB Coder / Simulink): `NAME_predict.m`, `NAME_step.m` and
`NAME_weights.m`.

`NAME_predict(x)` runs a whole sequence, x being D x T (features by time, MATLAB's
`sequenceInputLayer` convention; for a model whose first layer is an Embedding, 1 x T token
ids), layer by layer over whole D x T arrays; the output is O x 1, or O x T when the model
returns sequences (O x T' after layers that change the number of timesteps).
`NAME_step(x, reset)` runs one timestep with the recurrent state in `persistent` variables,
for a Simulink MATLAB Function block; it exists only for streamable models
(`lstmgen.ir.Model.streamable`). Both take the weights from `NAME_weights()`, one struct of
constant arrays (field `W_lstm` is layer "lstm"'s W), written once.

Masking (the first layer only), or an Embedding with mask_zero, computes `masked(t)`:
every recurrent layer then skips the state update at a masked timestep and repeats its
previous output. Layers that change the number of timesteps (Conv1D, pooling, TimeSlice,
RepeatVector) compute `T_NAME` from their input's; an input too short to leave every layer
a timestep is refused by an assert at the top of NAME_predict that names the minimum T; a
model with Flatten asserts the model's fixed T.

The code uses only fixed-size arrays (in predict only T varies), built-in functions that
MATLAB Coder supports, no toolbox and no `coder.*` call, so Octave runs it as it is.

Weights keep the IR's canonical layout as MATLAB matrices (see the kinds' templates,
`templates/matlab/layers/<kind>.j2`). Literals are exact float32 text wrapped in
`single([...])`; with `precision="double"` in `double(single([...]))`, the same float32
values computed with in double precision.

Modules: `options` (precision), `literals` (value text), `kinds` (what the renderer must
know about a kind beyond the IR), `context` (the typed render context), `renderer` (the
files), `runner` (GNU Octave).
"""

from __future__ import annotations

from typing import Any

from ...ir import Model
from ...naming import validate_model_name
from ..kind_templates import implemented_kinds
from .context import min_timesteps
from .options import OPTIONS, PRECISIONS, precision_from
from .renderer import LAYER_TEMPLATES, activation_names, render_files

#: Layer kinds (see lstmgen.ir) this target implements: those with a template.
LAYERS: frozenset[str] = implemented_kinds(LAYER_TEMPLATES)
#: Activations (see lstmgen.ir.activations) this target implements: those in the table of
#: templates/matlab/activations.j2.
ACTIVATIONS: frozenset[str] = activation_names()
#: Optional IR features (see lstmgen.ir) this target implements.
FEATURES: frozenset[str] = frozenset(
    {"peephole", "clip", "input_forget", "initial_state", "projection"}
)


def render(model: Model, name: str, precision: str = "single", **options: Any) -> dict[str, str]:
    """{filename: text} of the MATLAB files of `model` called `name`."""
    validate_model_name(name)
    chosen = precision_from(precision, options)
    model.validate()
    return render_files(model, name, chosen)


__all__ = [
    "ACTIVATIONS",
    "FEATURES",
    "LAYERS",
    "OPTIONS",
    "PRECISIONS",
    "min_timesteps",
    "render",
]
