"""The layer contexts of the C target: each IR layer, and each direction of a
Bidirectional, with its C identifier, its arrays (in the build's stored form, as C
literals) and the facts its template needs (kernel variant, activations, Q formats)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...ir import Model
from ...literals import wrap_values
from ...naming import unique_identifiers
from ..common import array_text, display_text
from .context import CArray, LayerContext
from .kinds import Stored, kind_of, recurrent_cells
from .quant import FixedPlan, layer_arrays


def act_ident(name: str) -> str:
    """An activation's name as part of a C identifier."""
    return name.replace(".", "_")


def c_array(ident: str, data: Stored) -> CArray:
    values = np.asarray(data.values)
    if data.ctype == "float":
        text = array_text(values, suffix="f")
    else:
        per_line = 12 if values.dtype.itemsize <= 2 else 8
        text = wrap_values([str(int(v)) for v in values.ravel()], per_line, "    ")
    return CArray(ident=ident, ctype=data.ctype, size=int(values.size), text=text)


def layer_contexts(
    model: Model, name: str, quantize: str | None, fixed: FixedPlan | None
) -> list[LayerContext]:
    """One context per layer of `model`; a Bidirectional's directions as its fw and bw."""
    directional = [l for l in model.layers if kind_of(l.kind).role == "bidirectional"]
    # layer identifiers first (unchanged by the rest), then one per direction
    idents = unique_identifiers(
        [l.name for l in model.layers]
        + [f"{l.name} {d}" for l in directional for d in ("fw", "bw")]
    )
    directions = iter(zip(idents[len(model.layers) :: 2], idents[len(model.layers) + 1 :: 2]))
    out = []
    for k, (layer, ident) in enumerate(zip(model.layers, idents)):
        fl = fixed.layers[k] if fixed is not None else None
        ctx = _context(layer, ident, f"{name}_{ident}", quantize, fl)
        if layer in directional:
            fw_ident, bw_ident = next(directions)
            cells = recurrent_cells(layer)
            ctx.fw, ctx.bw = (
                _context(cell, d, f"{name}_{d}", quantize, None, direction)
                for cell, d, direction in zip(cells, (fw_ident, bw_ident), ("forward", "backward"))
            )
            for cell in (ctx.fw, ctx.bw):
                cell.name = ctx.name
        out.append(ctx)
    return out


def _context(
    layer: Any,
    ident: str,
    base: str,
    quantize: str | None,
    fixed: Any,
    direction: str | None = None,
) -> LayerContext:
    kind = kind_of(layer.kind)
    arrays = {} if kind.role == "bidirectional" else layer_arrays(layer, quantize, fixed)
    ctx = LayerContext(
        layer=layer,
        kind=layer.kind,
        ident=ident,
        name=display_text(layer.name),
        a={key: c_array(f"{base}_{key}", data) for key, data in arrays.items()},
        direction=direction,
        fixed=fixed,
        reads_ids=bool(getattr(layer, "consumes_ids", False)),
    )
    if kind.role == "recurrent":
        ctx.acts = tuple(act_ident(a) for a in layer.activations())
        ctx.flags = kind.flags(layer)
        ctx.variant = kind.variant(layer, ctx.acts)
    activation = getattr(layer, "activation", None)
    if isinstance(activation, str) and kind.role != "recurrent":
        ctx.act = act_ident(activation)
    return ctx


def cells_of(layers: list[LayerContext]) -> list[LayerContext]:
    """The recurrent cells (a Bidirectional's two directions), in model order."""
    out = []
    for ctx in layers:
        if ctx.fw is not None and ctx.bw is not None:
            out += [ctx.fw, ctx.bw]
        elif kind_of(ctx.kind).role == "recurrent":
            out.append(ctx)
    return out
