"""The render context of the Python target: typed facts about the model and each layer.

`build_context(model, name)` gives a `ModelContext` with one `LayerContext` per layer (a
Bidirectional's two directions as its `halves`). The templates read the IR layer itself
(`l.layer`) for its fields and arrays; the context adds what needs the whole model: the
identifiers, whether a layer sees a sequence or a mask, the math names and activation
helpers the module needs, and the docstring facts. Per-kind facts come from the kinds'
templates (`kinds`), never from checks of the kind here.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Any

from ...ir import LAYER_TYPES, Model
from ..common import banner_facts, display_text
from ..kind_templates import LayerContextBase, layer_contexts, used_activations
from . import activations
from .kinds import KIND_FOLDER
from .weights import LINES_PER_STRING, PER_LINE, weight_source


def comment_text(text: str) -> str:
    """`text` on one line of printable ASCII (safe in a # comment)."""
    return display_text(text)


def doc_text(text: str) -> str:
    """`text` on one line, safe inside a docstring (backslashes and quotes escaped)."""
    return comment_text(text).replace("\\", "\\\\").replace('"', '\\"')


@dataclass
class LayerContext(LayerContextBase):
    """One layer of the generated module: its functions are `_step_IDENT`, `_run_IDENT`,
    `_apply_IDENT`; its (first) matrix is `const` (`_IDENT`)."""

    @property
    def name_doc(self) -> str:
        return doc_text(self.layer.name)

    @property
    def name_comment(self) -> str:
        return comment_text(self.layer.name)

    @property
    def summary(self) -> str:
        return self.code.text("summary", self)


@dataclass
class ModelContext:
    """The whole module: model facts, its layers, and what its code needs."""

    name: str
    banner: dict[str, Any]  # lstmgen.targets.common.banner_facts, made docstring-safe
    title: str  # the recurrent kinds, e.g. "LSTM/GRU"
    layers: list[LayerContext]
    kinds: set[str]
    input_size: int
    output_size: int
    returns_sequences: bool
    streamable: bool
    vocabulary: int | None  # the number of token ids, when the input is token ids
    initial_state: bool  # some recurrent layer starts from a constant state, not zeros
    traits: set[str]  # the union of the layers' traits
    math_names: list[str]  # imported from math (log1p and expm1 have fallbacks)
    uses_log1p: bool
    uses_expm1: bool
    helpers: list[str]  # activations defined as helper functions, in order
    masked: bool  # some layer makes a timestep mask
    mask_tail: list[LayerContext]  # the layers after the last recurrent one
    mask_zeros: int  # the output size of the last recurrent layer
    min_timesteps: int
    fixed_timesteps: int | None  # the one T the model takes (Flatten), else None
    timesteps_doc: list[str]
    timesteps_notes: list[str]
    shapers: str  # the layers that change T, e.g. "Conv1D/pooling"
    min_causes: str  # what needs more than one timestep, e.g. "Conv1D/pooling windows"
    no_stream_lines: list[str] | None
    stream_copy: bool  # Stream.step returns a layer's state: it must return a copy
    per_line: int = PER_LINE
    lines_per_string: int = LINES_PER_STRING

    def has(self, trait: str) -> bool:
        return trait in self.traits

    @staticmethod
    def strings(values: Any) -> list[str]:
        """The source lines of a float32 array's exact literal strings (`weights`)."""
        return weight_source(values)


def _title(model: Model) -> str:
    """The single recurrent kinds of the model, e.g. "LSTM/GRU" (in the IR's order)."""
    titles: dict[str, str] = {}
    for layer in model.layers:
        for part in layer.parts():
            if part.recurrent and part.parts() == [part]:
                titles[part.kind] = part.title
    return "/".join(titles[kind] for kind in LAYER_TYPES if kind in titles)


def _no_stream_lines(layers: list[LayerContext], m: ModelContext) -> list[str] | None:
    """The module docstring's lines on why there is no Stream class, when a layer other than
    a recurrent one is a reason (recurrent reasons alone: the model template words them)."""
    blocking = [ctx for ctx in layers if not ctx.layer.streamable]
    reasons: list[str] = []
    # the other layers' reasons first, then the recurrent layers'
    for ctx in sorted(blocking, key=lambda ctx: bool(ctx.layer.recurrent)):
        reason = ctx.code.text("no_stream", ctx, m)
        if reason and reason not in reasons:
            reasons.append(reason)
    if not any(ctx.code.text("no_stream", ctx, m) for ctx in blocking if not ctx.layer.recurrent):
        return None
    return textwrap.wrap(
        "There is no streaming class: " + "; ".join(reasons) + "; so no output exists "
        "before the whole sequence is known.",
        88,
    )


def _stream_copy(layers: list[LayerContext], m: ModelContext) -> bool:
    """Whether Stream.step's result is a recurrent layer's state (then it returns a copy):
    the last layer whose step computes something is a recurrent one."""
    for ctx in reversed(layers):
        if ctx.code.stream_step(ctx, m).strip():
            return bool(ctx.layer.recurrent)
    return False


def _add(found: list[str], text: str) -> None:
    if text and text not in found:
        found.append(text)


def build_context(model: Model, name: str) -> ModelContext:
    """Everything the templates need (also used by tests to find the generated names)."""
    layers = layer_contexts(model, KIND_FOLDER, LayerContext)
    traits = set().union(*(ctx.traits() for ctx in layers))
    used = used_activations(layers)
    activations.check_activations(used)
    math = activations.math_names(used)
    for ctx in layers:
        for part in (ctx, *ctx.halves):
            math.update(part.code.words("math", part))
    facts = banner_facts(model)
    for key in ("source", "model_name"):
        facts[key] = doc_text(str(facts[key]))
    for key in ("layer_lines", "notes"):
        facts[key] = [doc_text(line) for line in facts[key]]  # type: ignore[attr-defined]
    recurrent = [k for k, layer in enumerate(model.layers) if layer.recurrent]
    last = recurrent[-1] if recurrent else len(layers) - 1
    fixed = any(layer.needs_fixed_timesteps for layer in model.layers)
    m = ModelContext(
        name=name,
        banner=facts,
        title=_title(model),
        layers=layers,
        kinds=model.kinds(),
        input_size=model.input_size,
        output_size=model.output_size,
        returns_sequences=model.returns_sequences,
        streamable=model.streamable,
        vocabulary=model.token_vocabulary,
        initial_state="initial_state" in model.features(),
        traits=traits,
        math_names=sorted(math - {"log1p", "expm1"}),
        uses_log1p="log1p" in math,
        uses_expm1="expm1" in math,
        helpers=activations.helpers(used),
        masked="mask" in traits,
        mask_tail=layers[last + 1 :],
        mask_zeros=model.layers[last].output_size,
        min_timesteps=1 if fixed else model.min_timesteps(),
        fixed_timesteps=model.timesteps if fixed else None,
        timesteps_doc=[],
        timesteps_notes=[],
        shapers="",
        min_causes="",
        no_stream_lines=None,
        stream_copy=False,
    )
    shapers: list[str] = []
    causes: list[str] = []
    for ctx in layers:
        line = ctx.code.text("timesteps", ctx, m)
        if line:
            m.timesteps_doc.append(line)
        for macro, found in (("shaper", shapers), ("min_cause", causes)):
            _add(found, ctx.code.text(macro, ctx, m))
        _add(m.timesteps_notes, ctx.code.text("timesteps_note", ctx, m))
    m.shapers = "/".join(shapers)
    m.min_causes = " and ".join(causes)
    if not model.streamable:
        m.no_stream_lines = _no_stream_lines(layers, m)
    m.stream_copy = _stream_copy(layers, m)
    return m
