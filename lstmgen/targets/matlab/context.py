"""The typed render context of the MATLAB target: what the templates get about the model
and each of its layers.

Layers are `LayerContext`s: the IR layer itself (the templates read its fields and arrays),
its identifier, and how data flows through the generated code: the variable holding its
input (`src`) and its output (`out`), the number of timesteps of its input and output in
NAME_predict (`T`, `T_out`: `T`, or `T_IDENT` after a layer that changes it), whether it
sees a sequence, the mask of its input's timesteps, its persistent state. A Bidirectional
layer's forward and backward layers are its `parts`. Everything the help texts state about
the model is a field of `RenderContext`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from ...ir import Layer, Model
from ...literals import float_literal
from ...naming import MAX_LENGTH, unique_identifiers, unique_name
from ..common import banner_facts, display_text
from .kinds import BACKWARDS, NoStepReason, StateVar, rules
from .options import Precision

PART_SIDES = (("forward", "fw"), ("backward", "bw"))


@dataclass
class LayerContext:
    """One layer (or one part of a Bidirectional layer) as the templates see it."""

    layer: Any  # the IR layer (any kind of lstmgen.ir)
    ident: str
    name: str  # the layer's name, safe for a comment
    position: int  # 1-based place in the model (a part: its Bidirectional layer's)
    count: int  # layers in the model
    src: str = "x0"  # variable holding the input
    T: str = "T"  # NAME_predict: variable holding the input's number of timesteps
    T_out: str = "T"  # ... and the output's
    sequence_in: bool = True  # NAME_predict: the input is a sequence (else one column)
    sequence_out: bool = True
    mask: str | None = None  # variable flagging the input's masked timesteps, if any
    mask_out: str | None = None
    states: list[StateVar] = field(default_factory=list)
    parts: list[LayerContext] = field(default_factory=list)  # a Bidirectional's layers
    part: str = ""  # "forward" or "backward" for a part

    @property
    def kind(self) -> str:
        return str(self.layer.kind)

    @property
    def out(self) -> str:
        """The variable holding the output."""
        return f"y_{self.ident}"


@dataclass
class RenderContext:
    """Everything the file templates state about the model."""

    name: str
    NAME: str
    precision: Precision
    banner: dict[str, object]  # lstmgen.targets.common.banner_facts
    layers: list[LayerContext]
    state_layers: list[LayerContext]  # the layers with persistent state in NAME_step
    input_size: int
    output_size: int
    returns_sequences: bool
    streamable: bool
    step_per_timestep: bool  # NAME_step returns predict's output column of its timestep
    final: str  # the variable holding the model's output
    token_vocabulary: int | None  # the input is token ids in [0, vocabulary)
    mask_zero: bool  # token id 0 masks its timestep
    masked: bool  # a Masking layer flags timesteps
    mask_value: str | None
    initial_state: bool  # a layer starts from a constant state of its own
    processing_order: bool  # a go_backwards layer emits its outputs in processing order
    model_kind: str
    state_what: str
    state_whose: str
    x_shape: str
    y_shape: str
    windows: bool
    min_t: int
    limited_by: str  # what gives no timestep for T < min_t: "windows", "slice" or ""
    fixed_t: int | None
    no_step: list[str]  # what needs the whole sequence: why there is no NAME_step ...
    backwards_reason: str  # ... unless the only reason is reading time backwards
    example_t: int
    example_t_out: int
    weight_bytes: int
    state_values: int
    state_bytes: int

    def variables(self) -> dict[str, Any]:
        """The fields as template variables."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def min_timesteps(model: Model) -> int:
    """The fewest input timesteps that leave every sequence layer at least one."""
    t_len = 1
    while not model.accepts_timesteps(t_len):
        t_len += 1
    return t_len


def _limited_by(model: Model, t_len: int) -> str:
    """What leaves no timestep for an input of `t_len` steps: the limiting layer's rule."""
    sequence = True
    for layer in model.layers:
        out = layer.output_timesteps(t_len)
        sequence_out = layer.returns_sequence(sequence)
        if sequence and (out < 1 or t_len < 1):
            return rules(layer).limits
        t_len, sequence = out, sequence_out
    return ""


def _part_identifiers(model: Model, outer: list[str]) -> dict[int, list[str]]:
    """Identifiers of the parts of every layer that has some (a Bidirectional's forward
    and backward layer): its own identifier + `_fw` / `_bw`, with a numeric suffix where
    that is taken by a layer (the layers' identifiers stay what they are without them)."""
    seen = set(outer)
    parts: dict[int, list[str]] = {}
    for k, layer in enumerate(model.layers):
        inner = layer.parts()[1:]
        if inner:
            parts[k] = [
                unique_name(f"{outer[k][: MAX_LENGTH - 3]}_{side}", seen)
                for (_, side), _ in zip(PART_SIDES, inner)
            ]
    return parts


def _layer_contexts(model: Model) -> list[LayerContext]:
    """Every layer's context, in model order, with the flow of data between them."""
    count = len(model.layers)
    outer = unique_identifiers([l.name for l in model.layers])
    inner = _part_identifiers(model, outer)
    flags = model.sequence_flags()
    contexts: list[LayerContext] = []
    src, tvar, mask, sequence = "x" if model.token_vocabulary else "x0", "T", None, True
    for k, layer in enumerate(model.layers):
        rule = rules(layer)
        ctx = LayerContext(
            layer,
            outer[k],
            display_text(layer.name),
            position=k + 1,
            count=count,
            src=src,
            T=tvar,
            T_out=tvar,
            sequence_in=sequence,
            sequence_out=flags[k],
            mask=mask,
        )
        for (side, _), part, ident in zip(PART_SIDES, layer.parts()[1:], inner.get(k, [])):
            states = rules(part).states(part, ident, mask is not None)
            name = display_text(part.name)
            ctx.parts.append(
                replace(ctx, layer=part, ident=ident, name=name, part=side, states=states, parts=[])
            )
        ctx.states = rule.states(layer, ctx.ident, mask is not None) + [
            s for part_ctx in ctx.parts for s in part_ctx.states
        ]
        if rule.new_timesteps and flags[k]:
            ctx.T_out = f"T_{ctx.ident}"
        ctx.mask_out = rule.mask_out(layer, ctx.ident, mask, flags[k])
        contexts.append(ctx)
        src, tvar, mask, sequence = ctx.out, ctx.T_out, ctx.mask_out, flags[k]
    return contexts


def _state_words(cells: list[Layer]) -> tuple[str, str, str]:
    """(model kind for the title, what the state is, whose state it is) for the help, from
    the unidirectional recurrent layers: h of each, and c of those with a cell state."""
    titles = {c.kind: c.title for c in cells}
    with_c = sorted({c.kind for c in cells if rules(c).cell_state})
    names = " and ".join(titles[k] for k in sorted(titles))
    title = names if len(titles) == 1 else "recurrent"
    if with_c and len(with_c) == len(titles):
        return title, f"{title} state (h and c)", f"h and c of every {names} layer"
    if not with_c:
        return title, "recurrent state (h)", f"h of every {names} layer"
    c_names = " and ".join(titles[k] for k in with_c)
    return (
        "recurrent",
        f"recurrent state (h, and c of {c_names} layers)",
        f"h of every recurrent layer, c of every {c_names} layer",
    )


def _no_step(model: Model) -> tuple[list[str], str]:
    """Why there is no NAME_step: (what the model does that needs the whole sequence, one
    phrase per reason, for the help text; the reason when it is only reading time
    backwards, which the template words itself)."""
    reasons = sorted(
        {r for layer in model.layers if (r := rules(layer).no_step(layer)) is not None}
    )
    groups: dict[int, list[NoStepReason]] = {}
    for reason in reasons:
        groups.setdefault(reason.group, []).append(reason)
    if len(groups) == 1 and reasons[0].group == BACKWARDS[0]:
        return [], " or ".join(r.name for r in reasons)
    what = []
    for members in groups.values():
        names = [r.name for r in members if r.name]
        joined = members[0].joiner.join(names)
        what.append(f"{members[0].phrase} ({joined})" if names else members[0].phrase)
    return what, ""


def build(model: Model, name: str, precision: Precision) -> RenderContext:
    """The render context of `model` (validated) for the files NAME_*.m."""
    layers = _layer_contexts(model)
    cells = [part for layer in model.layers for part in layer.parts() if part.recurrent]
    cells = [c for c in cells if not c.parts()[1:]]  # a Bidirectional counts as its parts
    model_kind, state_what, state_whose = _state_words(cells)
    if any(s.held_output for l in layers for s in l.states):
        state_what += " and held outputs (o)"
    state_values = sum(s.size for l in layers for s in l.states)
    first = model.layers[0]  # Masking and Embedding are first layers only
    mask_value = getattr(first, "mask_value", None)
    windows = any(getattr(l, "windowed", False) for l in model.layers)
    fixed = model.timesteps if any(l.needs_fixed_timesteps for l in model.layers) else None
    min_t = min_timesteps(model)
    example_t = model.timesteps or max(min_t, 10)
    no_step, backwards_reason = _no_step(model)
    y_shape = f"{model.output_size} x 1"
    if model.returns_sequences:
        changed = any(rules(l).new_timesteps for l in model.layers)
        y_shape = f"{model.output_size} x " + ("T'" if changed else "T")
    return RenderContext(
        name=name,
        NAME=name.upper(),
        precision=precision,
        banner=banner_facts(model),
        layers=layers,
        state_layers=[l for l in layers if l.states and not l.parts],
        input_size=model.input_size,
        output_size=model.output_size,
        returns_sequences=model.returns_sequences,
        streamable=model.streamable,
        step_per_timestep=model.returns_sequences and model.output_timesteps(2) == 2,
        final=layers[-1].out,
        token_vocabulary=model.token_vocabulary,
        mask_zero=bool(
            getattr(first, "consumes_ids", False) and getattr(first, "mask_zero", False)
        ),
        masked=mask_value is not None,
        mask_value=None if mask_value is None else float_literal(mask_value),
        initial_state="initial_state" in model.features(),
        processing_order=any(getattr(l, "go_backwards", False) for l in model.layers),
        model_kind=model_kind,
        state_what=state_what,
        state_whose=state_whose,
        x_shape=f"{model.input_size} x T",
        y_shape=y_shape,
        windows=windows,
        min_t=min_t,
        limited_by=_limited_by(model, min_t - 1) if min_t > 1 else "",
        fixed_t=fixed,
        no_step=no_step,
        backwards_reason=backwards_reason,
        example_t=example_t,
        example_t_out=model.output_timesteps(example_t),
        weight_bytes=model.parameter_count() * precision.bytes,
        state_values=state_values,
        state_bytes=state_values * precision.bytes,
    )


__all__ = ["LayerContext", "Layer", "RenderContext", "build", "min_timesteps"]
