"""The layer kinds of the numpy target: one template per kind, and how to reach its macros.

Every IR kind this target implements has one template, `templates/numpy/layers/<kind>.j2`,
holding all of that kind's generated code as Jinja macros; the target implements exactly
the kinds that have one (`implemented_kinds`). Each macro takes the layer's context `l`
(`context.LayerContext`; the IR layer is `l.layer`) and the model's `m`
(`context.ModelContext`). A kind defines only the macros it needs; a missing one renders as
nothing. The macros:

Facts (read while the model's context is built):
    activations(l)   the activations its code applies, space-separated
    traits(l)        space-separated flags: `mask` (the layer makes the timestep mask)

Code (composed by `templates/numpy/model.py.j2`):
    functions(l, m)  its functions (the "layers" section): a function over a whole batch
                     of sequences, and for recurrent kinds one timestep of it
    predict(l, m)    its lines in predict() (`y` is the batch, `mask` the timestep mask)
    stream_reset(l, m), stream_step(l, m)  its lines in Stream.reset() and Stream.step()
                     (`y` is the batch's current timestep, `keep` its mask row)
    weights(l, m)    its weight constants (the "weights" section)
"""

from __future__ import annotations

#: Where the kinds' templates are, under the templates folder
#: (read through `lstmgen.targets.kind_templates`).
KIND_FOLDER = "numpy/layers"
