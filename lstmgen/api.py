"""The Python API: `load`, `generate`, `verify` (thin wrappers over the parts)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Union

from .backends import get_backend
from .errors import LstmgenError
from .extractors import open_model
from .ir import Model
from .naming import validate_model_name
from .output import write_files
from .verify import VerifyReport
from .verify import verify as _verify


def load(source: Any) -> Model:
    """The IR of a model: a `.keras` / `.npz` path, a live keras.Model, or an IR Model."""
    return open_model(source).ir


def generate(source: Any, target: str = "c", name: str = "model",
             out: Union[str, Path] = ".", force: bool = False, **options: Any) -> list[Path]:
    """Render `source` for `target` and write the files into folder `out`."""
    validate_model_name(name)
    backend = get_backend(target)
    check_options(target, options)
    model = source if isinstance(source, Model) else load(source)
    files = backend.render(model, name, **options)
    return write_files(files, out, force=force)


def check_options(target: str, options: dict[str, Any]) -> None:
    """Refuse options the target's backend does not take (e.g. --precision for C)."""
    accepted = get_backend(target).OPTIONS
    for key in options:
        if key not in accepted:
            raise LstmgenError(f"option '{key}' does not apply to target '{target}'; it takes: "
                               f"{', '.join(accepted) or 'no options'}")


def verify(source: Any, target: str = "c", **kwargs: Any) -> VerifyReport:
    """See `lstmgen.verify.verify`: a report with the max absolute error per output."""
    return _verify(source, target, **kwargs)
