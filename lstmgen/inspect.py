"""`lstmgen inspect`: a readable account of a model's IR, its mapping and its memory."""

from __future__ import annotations

from .ir import GATES, Model
from .targets.c.memory import estimate


def describe(model: Model, target: str | None = None, options: dict | None = None) -> str:
    """The report `lstmgen inspect` prints; with a target, also its memory report
    (a backend may define `memory_report(model, **options) -> str`)."""
    out = [f"model '{model.name}' ({model.source or 'lstmgen IR'})"]
    t = f" (built for T = {model.timesteps})" if model.timesteps else " (any T)"
    kind = "per timestep" if model.returns_sequences else "after the last timestep"
    out.append(f"input [T][{model.input_size}]{t}; output [{model.output_size}] {kind}")
    out.append("")
    out.append(f"{'#':>2}  {'layer':<24} {'params':>9}  details")
    for k, layer in enumerate(model.layers):
        summary = layer.describe().split(": ", 1)[1]
        out.append(f"{k:>2}  {layer.name:<24} {layer.parameter_count():>9}  {summary}")
    out.append(f"    {'total':<24} {model.parameter_count():>9}")
    mem = estimate(model)
    out.append("")
    out.append(
        f"C target: {mem.weight_bytes} bytes of const weights (flash); RAM "
        f"{mem.state_bytes} bytes of state + about {mem.scratch_bytes} bytes of stack"
        + (
            f" + {mem.sequence_buffer_bytes} bytes of sequence buffer in predict"
            if mem.sequence_buffer_bytes
            else ""
        )
    )
    out.append(
        "streaming step API: "
        + ("yes" if model.streamable else "no (go_backwards or Bidirectional)")
    )
    out.append("")
    kinds = model.kinds()
    if "lstm" in kinds:
        out.append(
            f"IR layout: LSTM weights are rows in gate order {', '.join(GATES)} "
            "(4H x D input, 4H x H recurrent, 4H bias)"
        )
    if "gru" in kinds:
        out.append(
            "IR layout: GRU weights are rows in gate order z, r, n (3H x D input, "
            "3H x H recurrent, 3H bias [+ 3H recurrent bias with reset_after])"
        )
    for layer in model.layers:
        parts = [layer] + [getattr(layer, p) for p in ("forward", "backward") if hasattr(layer, p)]
        for part in parts:
            if part.origin:
                out.append(f"  {part.name}: {part.origin}")
            if part.recurrent and getattr(part, "bias", 0) is None:
                out.append(f"  {part.name}: no bias (use_bias=False)")
    for note in model.notes:
        out.append(f"  note: {note}")
    if target is not None:
        from .targets import check_options, get_backend

        check_options(target, options or {})
        backend = get_backend(target)
        report = getattr(backend, "memory_report", None)
        out.append("")
        out.append(
            report(model, **(options or {})) if report else f"target {target}: no memory report"
        )
    return "\n".join(out)
