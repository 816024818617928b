"""The render context of the numpy target: typed facts about the model and each layer.

`build_context(model, name, precision)` gives a `ModelContext` with one `LayerContext` per
layer (a Bidirectional's two directions as its `halves`). Templates read the IR layer itself
(`l.layer`) for its fields and arrays; the context adds what needs the whole model: the
identifiers, whether a layer's input comes with the timestep mask, the activations the
module defines, the number type, and the weights' text. Per-kind facts come from the kinds'
templates (`kinds`), never from checks of the kind here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import LstmgenError
from ...ir import ALL_ACTIVATIONS, Model
from ..common import banner_facts, display_text, environment
from ..kind_templates import LayerContextBase, layer_contexts, used_activations
from .kinds import KIND_FOLDER

ACTIVATIONS_TEMPLATE = "numpy/activations.j2"
#: Weights are the float32 values' bytes (IEEE 754, little-endian) in hex: HEX_PER_LINE
#: values (8 hex digits each) to a line of the generated module.
HEX_PER_LINE = 11
#: precision option -> numpy type of the arithmetic
DTYPES = {"single": "float32", "double": "float64"}


def doc_text(text: object) -> str:
    """`text` on one line, safe inside a docstring or a comment."""
    return display_text(text).replace("\\", "\\\\").replace('"', '\\"')


def hex_lines(values: Any) -> list[str]:
    """A float32 array, flattened row-major, as string literals of its exact bytes."""
    data = np.ascontiguousarray(values, dtype="<f4").tobytes().hex()
    width = 8 * HEX_PER_LINE
    return [f'"{data[k : k + width]}"' for k in range(0, len(data), width)] or ['""']


@dataclass
class LayerContext(LayerContextBase):
    """One layer of the generated module: its functions are `_run_IDENT` (over a batch) and
    `_step_IDENT` (one timestep)."""

    @property
    def name_doc(self) -> str:
        return doc_text(self.layer.name)

    @property
    def summary(self) -> str:
        return doc_text(self.layer.describe().split(": ", 1)[-1])


@dataclass
class ModelContext:
    """The whole module: model facts, its layers, and what its code needs."""

    name: str
    banner: dict[str, Any]  # lstmgen.targets.common.banner_facts, made docstring-safe
    layers: list[LayerContext]
    input_size: int
    output_size: int
    returns_sequences: bool
    streamable: bool
    vocabulary: int | None  # the number of token ids, when the input is token ids
    traits: set[str]  # the union of the layers' traits
    masked: bool  # some layer makes a timestep mask
    initial_state: bool  # some recurrent layer starts from a constant state, not zeros
    min_timesteps: int
    fixed_timesteps: int | None  # the one T the model takes (Flatten), else None
    dtype: str  # "float32" or "float64"
    activations: list[str]  # the activations the module applies, in the IR's order
    helpers: list[str]  # the code of the activation functions it defines
    hex_per_line: int = HEX_PER_LINE

    def has(self, trait: str) -> bool:
        return trait in self.traits

    @staticmethod
    def hex(values: Any) -> list[str]:
        return hex_lines(values)

    @staticmethod
    def shape(values: Any) -> str:
        """A Python tuple literal of an array's shape."""
        dims = np.shape(values)
        return f"({dims[0]},)" if len(dims) == 1 else f"({', '.join(str(d) for d in dims)})"


def activation_module() -> Any:
    return environment().get_template(ACTIVATIONS_TEMPLATE).module


def _activations(layers: list[LayerContext]) -> list[str]:
    used = used_activations(layers)
    module = activation_module()
    calls: dict[str, str] = vars(module)["CALLS"]
    for name in sorted(used - set(calls)):
        raise LstmgenError(
            f"target 'numpy' does not implement the activation {name!r}; "
            f"it implements: {', '.join(sorted(calls))}"
        )
    return [name for name in ALL_ACTIVATIONS if name in used]


def _helpers(activations: list[str]) -> list[str]:
    """The code of the helper function each activation needs (some need none)."""
    module = activation_module()
    found = []
    for name in activations:
        macro = getattr(module, "def_" + name.replace(".", ""), None)
        text = str(macro()).strip() if macro is not None else ""
        if text and text not in found:
            found.append(text)
    return found


def build_context(model: Model, name: str, precision: str = "single") -> ModelContext:
    """Everything the templates need (also used by tests to find the generated names)."""
    layers = layer_contexts(model, KIND_FOLDER, LayerContext)
    facts = banner_facts(model)
    for key in ("source", "model_name"):
        facts[key] = doc_text(facts[key])
    for key in ("layer_lines", "notes"):
        facts[key] = [doc_text(line) for line in facts[key]]  # type: ignore[attr-defined]
    fixed = any(layer.needs_fixed_timesteps for layer in model.layers)
    used = _activations(layers)
    return ModelContext(
        name=name,
        banner=facts,
        layers=layers,
        input_size=model.input_size,
        output_size=model.output_size,
        returns_sequences=model.returns_sequences,
        streamable=model.streamable,
        vocabulary=model.token_vocabulary,
        traits=set().union(*(ctx.traits() for ctx in layers)),
        masked=any("mask" in ctx.traits() for ctx in layers),
        initial_state="initial_state" in model.features(),
        min_timesteps=1 if fixed else model.min_timesteps(),
        fixed_timesteps=model.timesteps if fixed else None,
        dtype=DTYPES[precision],
        activations=used,
        helpers=_helpers(used),
    )
