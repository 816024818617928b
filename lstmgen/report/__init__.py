"""`lstmgen verify --report FILE.html`: one self-contained page about a verification.

The page (`templates/report/report.html.j2`) needs no other file and no network: styles and
charts (inline SVG) are inside it. It shows the verdict; per output, the framework's values
against the generated code's over the test sequences (traces over time for sequence
outputs, a scatter for last-step outputs) and the distribution of the absolute errors with
the tolerance; the layer table with how each framework layout was mapped (the gate order);
and the target's memory report. It is built from a `VerifyReport` (which carries the
inputs, both outputs and the IR) and the target's own `memory_report`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from .. import __version__
from ..console import phase
from ..errors import LstmgenError, OutputError
from ..ir import GATES, Model
from ..targets import get_backend
from ..targets.common import templates_dir
from ..verify import VerifyReport
from . import charts

TEMPLATE = "report/report.html.j2"


@dataclass
class LayerRow:
    index: int
    name: str
    kind: str
    parameters: int
    details: str
    origins: list[str]


@dataclass
class OutputSection:
    index: int
    max_abs: float
    max_rel: float
    passed: bool
    values: charts.Chart
    errors: charts.Chart


def check_report_path(path: str | Path) -> Path:
    """Refuse, before any work, a report path that cannot be written."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"--report {path} is a folder; give a file name such as report.html")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"--report {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"--report {path}: cannot write into {folder}")
    return path


def layer_rows(model: Model) -> list[LayerRow]:
    rows = []
    for k, layer in enumerate(model.layers):
        origins = [
            f"{part.name}: {part.origin}" if part is not layer else part.origin
            for part in layer.parts()
            if part.origin
        ]
        rows.append(
            LayerRow(
                k,
                layer.name,
                layer.title,
                layer.parameter_count(),
                layer.describe().split(": ", 1)[-1],
                origins,
            )
        )
    return rows


def ir_layout(model: Model) -> list[str]:
    """The canonical layouts the model's recurrent kinds use (what the origins map to)."""
    kinds = model.kinds()
    lines = []
    if "lstm" in kinds:
        lines.append(
            f"LSTM weights: rows in gate blocks {', '.join(GATES)} "
            "(4H x D input, 4H x H recurrent, 4H bias)"
        )
    if "gru" in kinds:
        lines.append("GRU weights: rows in gate blocks z, r, n (3H x D input, 3H x H recurrent)")
    return lines


def output_sections(report: VerifyReport) -> list[OutputSection]:
    got = np.asarray(report.outputs, np.float64)
    ref = np.asarray(report.expected, np.float64)
    sections = []
    for k in range(got.shape[-1]):
        if got.ndim == 3:
            values = charts.traces(f"values{k}", f"output[{k}] over time", ref[..., k], got[..., k])
        else:
            values = charts.scatter(
                f"values{k}", f"output[{k}] after the last timestep", ref[:, k], got[:, k]
            )
        errors = charts.error_histogram(
            f"errors{k}",
            f"output[{k}]: absolute errors",
            np.abs(got[..., k] - ref[..., k]),
            report.atol,
        )
        sections.append(
            OutputSection(
                k,
                float(report.max_abs[k]),
                float(report.max_rel[k]),
                bool(report.max_abs[k] <= report.atol),
                values,
                errors,
            )
        )
    return sections


def memory_text(report: VerifyReport) -> str:
    """The target's own memory report (flash/RAM per layer for C), or a plain count."""
    model = report.model
    assert model is not None
    backend = get_backend(report.target)
    memory = getattr(backend, "memory_report", None)
    if memory is None:
        return (
            f"target {report.target}: {model.parameter_count()} weights "
            f"({4 * model.parameter_count()} bytes as float32); no memory report of its own"
        )
    options = {k: v for k, v in report.options.items() if k not in ("selftest", "arduino")}
    with phase(f"measuring the {report.target} code's memory"):
        return str(memory(model, **options))


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        autoescape=True,  # model and layer names are the user's text
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_report(report: VerifyReport) -> str:
    """The HTML page of a verification (`VerifyReport` from `lstmgen.verify`)."""
    if report.model is None or report.outputs is None or report.expected is None:
        raise LstmgenError("this VerifyReport carries no outputs; run lstmgen.verify again")
    model = report.model
    context: dict[str, Any] = {
        "version": __version__,
        "report": report,
        "model": model,
        "passed": report.passed,
        "worst": float(np.max(report.max_abs)),
        "sequences_output": np.asarray(report.outputs).ndim == 3,
        "outputs": output_sections(report),
        "layers": layer_rows(model),
        "layout": ir_layout(model),
        "notes": list(model.notes),
        "memory": memory_text(report),
        "options": ", ".join(f"--{k} {v}" for k, v in sorted(report.options.items())),
    }
    return _environment().get_template(TEMPLATE).render(**context)


def write_report(report: VerifyReport, path: str | Path) -> Path:
    """Write the page to `path` (through a temporary file: never half a page)."""
    path = check_report_path(path)
    text = render_report(report)
    staging = path.with_name(f".{path.name}.lstmgen-tmp")
    try:
        staging.write_text(text, encoding="utf-8")
        os.replace(staging, path)
    except OSError as exc:
        staging.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path
