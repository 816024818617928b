"""What `NAME_selftest.c` embeds (`--selftest`): input sequences and the framework's
outputs on them, checked against the model and written as C literals (exact floats, or
Q-format integers for fixed16, token ids for an Embedding model)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import LstmgenError
from ...ir import Model
from ...literals import c_float, wrap_values
from ..common import array_text
from .context import SelftestContext
from .options import SELFTEST_TOL
from .quant import FixedPlan, to_fixed


def selftest_data(model: Model, selftest: Any) -> Any:
    """SelftestData as given, or (selftest=True from a direct render call) seeded inputs
    with the float64 reference's outputs."""
    if selftest is True:
        from ...sampling import reference_selftest

        return reference_selftest(model)
    return selftest


def _integers(values: np.ndarray) -> str:
    return wrap_values([str(int(v)) for v in values.ravel()], 12, "    ")


def selftest_context(
    model: Model, data: Any, quantize: str | None, fixed: FixedPlan | None
) -> SelftestContext:
    x = np.ascontiguousarray(data.x, dtype=np.float32)
    y = np.asarray(data.y, dtype=np.float32)
    if x.ndim != 3 or x.shape[2] != model.input_size:
        raise LstmgenError(
            f"selftest inputs have shape {x.shape}, expected [N, T, {model.input_size}]"
        )
    n, t_len = x.shape[0], x.shape[1]
    if not model.accepts_timesteps(t_len):
        raise LstmgenError(
            f"selftest inputs of {t_len} timesteps leave no timestep after the windows or time "
            f"slices; they need at least "
            f"{model.min_timesteps()}"
        )
    if any(l.needs_fixed_timesteps for l in model.layers) and t_len != model.timesteps:
        raise LstmgenError(
            f"selftest inputs have {t_len} timesteps; the model's Flatten layer "
            f"needs exactly {model.timesteps}"
        )
    per_seq = (model.output_timesteps(t_len) if model.returns_sequences else 1) * model.output_size
    if y.size != n * per_seq or not np.all(np.isfinite(y)) or not np.all(np.isfinite(x)):
        raise LstmgenError(
            f"selftest outputs have shape {y.shape}, expected {n} x {per_seq} finite values"
        )
    vocabulary = model.token_vocabulary
    if vocabulary is not None and (
        np.any(x != np.round(x)) or np.any(x < 0) or np.any(x >= vocabulary)
    ):
        raise LstmgenError(f"selftest inputs must be token ids in [0, {vocabulary})")
    tol = SELFTEST_TOL[quantize]
    ctx = SelftestContext(
        sequences=n, timesteps=t_len, per_seq=per_seq, oracle=data.oracle, tol=tol, x="", y=""
    )
    if vocabulary is not None:
        ctx.x = _integers(x.astype(np.int64))
    elif fixed is None:
        ctx.x = array_text(x, suffix="f")
    else:
        ctx.x = _integers(to_fixed(x, fixed.input_frac))
    if fixed is None:
        ctx.y, ctx.tol_text = array_text(y, suffix="f"), c_float(tol)
    else:
        ctx.y = _integers(to_fixed(y, fixed.output_frac))
        ctx.tol_q = max(1, int(round(tol * 2**fixed.output_frac)))
        ctx.one_q = 2**fixed.output_frac
    return ctx
