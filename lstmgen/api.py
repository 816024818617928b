"""The Python API: `load`, `generate`, `verify` (thin wrappers over the parts)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .backends import get_backend, render
from .errors import LstmgenError
from .extractors import Loaded, open_model
from .ir import Model
from .naming import validate_model_name
from .output import write_files
from .verify import VerifyReport
from .verify import verify as _verify


@dataclass
class SelftestData:
    """What `--selftest` embeds: inputs [N, T, D] and the expected outputs."""

    x: np.ndarray
    y: np.ndarray
    oracle: str


def load(source: Any, **options: Any) -> Model:
    """The IR of a model: a `.keras` / `.pt` / `.npz` path, a live keras.Model, a torch
    nn.Module (`example_input=` required), or an IR Model."""
    return open_model(source, **options).ir


def generate(
    source: Any,
    target: str = "c",
    name: str = "model",
    out: str | Path = ".",
    force: bool = False,
    load_options: dict | None = None,
    **options: Any,
) -> list[Path]:
    """Render `source` for `target` and write the files into folder `out`. `options` go
    to the backend (e.g. precision for matlab), `load_options` to the extractor (e.g.
    example_input for a torch module)."""
    validate_model_name(name)
    check_options(target, options)
    loaded = open_model(source, **(load_options or {}))
    if options.get("selftest"):
        options["selftest"] = selftest_vectors(loaded)
    files = render(target, loaded.ir, name, **options)
    return write_files(files, out, force=force)


def selftest_vectors(loaded: Loaded, sequences: int = 3) -> SelftestData:
    """Seeded inputs and the framework's own outputs on them, for an on-target self-test
    (the float64 reference stands in when no framework is at hand, e.g. an IR file)."""
    from .reference import forward
    from .verify import default_timesteps, make_inputs

    model = loaded.ir
    x = make_inputs(model.input_size, sequences, default_timesteps(model), seed=1)
    if loaded.predict is not None:
        y, oracle = loaded.predict(x), loaded.oracle_name
    else:
        y, oracle = forward(model, x), "the lstmgen float64 reference"
    return SelftestData(x=x, y=np.asarray(y, np.float32), oracle=oracle)


def check_options(target: str, options: dict[str, Any]) -> None:
    """Refuse options the target's backend does not take (e.g. --precision for C)."""
    accepted = get_backend(target).OPTIONS
    for key in options:
        if key not in accepted:
            raise LstmgenError(
                f"option '{key}' does not apply to target '{target}'; it takes: "
                f"{', '.join(accepted) or 'no options'}"
            )


def verify(source: Any, target: str = "c", **kwargs: Any) -> VerifyReport:
    """See `lstmgen.verify.verify`: a report with the max absolute error per output."""
    return _verify(source, target, **kwargs)
