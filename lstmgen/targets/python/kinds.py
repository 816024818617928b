"""The layer kinds of the Python target: one template per kind, and how to reach its macros.

Every IR kind this target implements has one template, `templates/python/layers/<kind>.j2`,
that holds all of that kind's generated Python as Jinja macros; the target implements
exactly the kinds that have one (`implemented_kinds`). The model template composes the
macros, and `context` reads a few facts from them. Each macro takes the layer's context `l`
(`context.LayerContext`, the IR layer being `l.layer`) and, where it needs it, the model's
`m` (`context.ModelContext`). A kind defines only the macros it needs; a missing one renders
as nothing. The macros:

Facts (read while the model's context is built):
    math(l)          the names the layer's code imports from `math`, space-separated
    activations(l)   the activations its code applies, space-separated (their code and
                     helper functions: `templates/python/activations.j2`)
    traits(l)        space-separated flags the model's code depends on: `mask` (the layer
                     makes the timestep mask), `vectors` (it stores float32 vectors: the
                     module defines `_vector`), `two_matrices` (a step multiplies two
                     matrices), `go_backwards`, `backward_half` (it reads time backwards)
    summary(l)       a short description for docstrings and comments
    no_stream(l, m)  why the model has no Stream class, when this layer is a reason
    timesteps(l, m)  how the layer changes the number of timesteps (a docstring line)
    timesteps_note(l, m)  a note after those lines (once per model)
    shaper(l, m)     how docstrings call the layers that change T ("Conv1D/pooling")
    min_cause(l, m)  what needs more than one timestep ("Conv1D/pooling windows")

Code (composed by `templates/python/model.py.j2`):
    doc(l, m)        its section of the module docstring
    constants(l, m)  its module-level constants after INPUT_SIZE and OUTPUT_SIZE
    functions(l, m)  its functions and small constants (the "layers" section)
    predict(l, m)    its lines in predict()
    predict_doc(l, m), step_doc(l, m)  its lines in the docstrings of predict and step
    stream_reset(l, m), stream_step(l, m)  its lines in Stream.reset() and Stream.step()
    weights(l, m)    its weight constants (the "weights" section)
"""

from __future__ import annotations

#: Where the kinds' templates are, under the templates folder
#: (read through `lstmgen.targets.kind_templates`).
KIND_FOLDER = "python/layers"
