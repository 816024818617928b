"""The Python API: `load`, `generate`, `verify` (thin wrappers over the parts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .console import phase
from .ir import Model
from .naming import validate_model_name
from .output import write_files
from .targets import check_options, render
from .verify import VerifyReport, load_model, selftest_vectors
from .verify import verify as _verify


def load(source: Any, **options: Any) -> Model:
    """The IR of a model: a `.keras` / `.h5` / `.pt` / `.npz` path, a Keras architecture
    `.json` with `weights="weights.h5"`, a live keras.Model, a torch nn.Module
    (`example_input=` required), or an IR Model."""
    return load_model(source, **options).ir


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
    loaded = load_model(source, **(load_options or {}))
    if options.get("selftest"):
        with phase("running the framework on the self-test's sequences"):
            options["selftest"] = selftest_vectors(loaded)
    with phase(f"generating the {target} code"):
        files = render(target, loaded.ir, name, **options)
    return write_files(files, out, force=force)


def verify(source: Any, target: str = "c", **kwargs: Any) -> VerifyReport:
    """See `lstmgen.verify.verify`: a report with the max absolute error per output."""
    return _verify(source, target, **kwargs)
