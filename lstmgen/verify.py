"""The verification harness: generated code against the framework's own predictions.

It renders the model for a target into a temporary folder, runs it through that target's
runner on seeded random (or given) input sequences, runs the original framework on the
same inputs, and reports the error per output. Models with no framework at hand (an IR
`.npz` file) are checked against the float64 numpy reference instead, and say so.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import limits
from .console import phase
from .errors import LstmgenError
from .extractors import Loaded, open_model
from .ir import Model
from .reference import forward
from .safe_read import NpyHeader, read_npy, refused_dtype
from .sampling import (  # noqa: F401 (re-exported for callers)
    DEFAULT_TIMESTEPS,
    SelftestData,
    default_timesteps,
    make_inputs,
    sample_inputs,
)
from .targets import check_options, get_backend, get_runner, render


def error_metrics(got: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Max absolute and max relative error per output (last axis).

    Relative error is |got - ref| / max(|ref|, 1): relative for large values, absolute
    for values under 1 (so outputs near zero do not inflate it).
    Non-finite values compare the way the framework produces them: NaN where the oracle
    gives NaN, and an infinity where it gives the same infinity, count as equal (error 0);
    anything else against a NaN or an infinity is an infinite error.
    """
    got = np.asarray(got, np.float64)
    ref = np.asarray(ref, np.float64)
    if got.shape != ref.shape:
        raise LstmgenError(f"output shape {got.shape} differs from the oracle's {ref.shape}")
    with np.errstate(invalid="ignore", over="ignore"):
        same = (got == ref) | (np.isnan(got) & np.isnan(ref))
        diff = np.where(same, 0.0, np.abs(got - ref))
        diff = np.where(np.isnan(diff), np.inf, diff)
        rel = np.where(same, 0.0, diff / np.maximum(np.abs(ref), 1.0))
        rel = np.where(np.isnan(rel), np.inf, rel)
    axes = tuple(range(got.ndim - 1))
    return diff.max(axis=axes), rel.max(axis=axes)


@dataclass
class VerifyReport:
    target: str
    oracle: str
    sequences: int
    timesteps: int
    atol: float
    max_abs: np.ndarray  # per output
    max_rel: np.ndarray  # per output
    reference_max_abs: float  # generated code vs the float64 numpy reference
    extra: dict[str, float] = field(default_factory=dict)
    # what the comparison saw (for `lstmgen.report`): the inputs [N, T, D], the generated
    # code's outputs and the oracle's ([N, T_out, O] or [N, O]), the model, the options
    inputs: np.ndarray | None = None
    outputs: np.ndarray | None = None
    expected: np.ndarray | None = None
    model: Model | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(np.all(self.max_abs <= self.atol))

    def summary(self) -> str:
        lines = [
            f"target {self.target}: {self.sequences} sequences x {self.timesteps} "
            f"timesteps against {self.oracle}"
        ]
        for k, (a, r) in enumerate(zip(self.max_abs, self.max_rel)):
            lines.append(f"  output[{k}]: max abs error {a:.3g}, max rel error {r:.3g}")
        lines.append(
            f"  against the float64 numpy reference: max abs error {self.reference_max_abs:.3g}"
        )
        for key, value in self.extra.items():
            shown = f"{int(value)}" if float(value).is_integer() else f"{value:.3g}"
            lines.append(f"  {key}: {shown}")
        verdict = "PASS" if self.passed else "FAIL"
        lines.append(
            f"{verdict}: max abs error {float(np.max(self.max_abs)):.3g} "
            f"{'<=' if self.passed else '>'} atol {self.atol:g}"
        )
        return "\n".join(lines)


def read_inputs(path: str | Path, input_size: int) -> np.ndarray:
    """An `.npy` file of inputs [N, T, input_size]: real floating-point or integer values
    (complex, structured, text, object arrays are refused by name), its header's shape
    within the limits and its data as long as the header says, all before it is read."""
    where = f"--inputs {path}"
    if Path(path).is_file():  # (anything else is refused by read_npy without opening it)
        with open(path, "rb") as fh:
            magic = fh.read(6)
        if magic != b"\x93NUMPY":  # numpy would talk of pickled data and trusting it
            raise LstmgenError(
                f"{where}: not an .npy file (write one with numpy.save, shape [N, T, D])"
            )

    def check(header: NpyHeader) -> None:
        shape = header.shape
        if len(shape) != 3 or shape[2] != input_size or shape[0] < 1 or shape[1] < 1:
            raise LstmgenError(f"{where}: shape {shape}, expected [N, T, {input_size}]")
        limits.check_inputs(where, *shape)

    x = read_npy(Path(path), where, check)
    return np.ascontiguousarray(x, dtype=np.float32)


def check_inputs(inputs: Any, input_size: int) -> np.ndarray:
    """Inputs given to `verify` as an array: [N, T, input_size] real numbers, as float32."""
    x = np.asarray(inputs)
    why = refused_dtype(x.dtype)
    if why is not None:
        raise LstmgenError(f"inputs hold {why}; expected real floating-point or integer values")
    if x.ndim != 3 or x.shape[2] != input_size or x.shape[0] < 1 or x.shape[1] < 1:
        raise LstmgenError(f"inputs have shape {x.shape}, expected [N, T, {input_size}]")
    limits.check_inputs("inputs", *x.shape)
    return np.ascontiguousarray(x, dtype=np.float32)


def check_atol(atol: float) -> None:
    """A tolerance is a finite number >= 0 (NaN or a negative one would fail every run)."""
    if not (isinstance(atol, (int, float)) and math.isfinite(atol) and atol >= 0):
        raise LstmgenError(f"atol must be a finite number >= 0, got {atol!r}")


def check_run(sequences: int, timesteps: int | None, atol: float | None = None) -> None:
    """`--sequences`, `--timesteps` within the limits and `--atol` a finite number >= 0
    (before anything is loaded)."""
    if atol is not None:
        check_atol(atol)
    if sequences > limits.current().sequences:
        raise limits.refuse("--sequences", f"{sequences:,} sequences", "sequences")
    if timesteps is not None:
        limits.check_timesteps("--timesteps", timesteps)


def source_text(source: Any) -> str:
    """How progress lines name a model: its file name, or its type."""
    if isinstance(source, (str, Path)):
        return Path(source).name
    return f"the {type(source).__name__} model"


def load_model(source: Any, **options: Any) -> Loaded:
    """`open_model` as one progress phase (importing a framework takes seconds)."""
    with phase(f"loading {source_text(source)}"):
        return open_model(source, **options)


def verify(
    source: Any,
    target: str = "c",
    *,
    inputs: np.ndarray | None = None,
    sequences: int = 16,
    timesteps: int | None = None,
    seed: int = 0,
    atol: float | None = None,
    name: str = "model",
    options: dict | None = None,
    loaded: Loaded | None = None,
    load_options: dict | None = None,
) -> VerifyReport:
    """Generate `target` code for `source`, run it and compare with the framework."""
    loaded = loaded or load_model(source, **(load_options or {}))
    model = loaded.ir
    if inputs is None:
        t_len = timesteps or default_timesteps(model)
        limits.check_inputs("verify", sequences, t_len, model.input_size)
        inputs = sample_inputs(model, sequences, t_len, seed)
    inputs = check_inputs(inputs, model.input_size)
    if model.timesteps and inputs.shape[1] != model.timesteps and loaded.predict is not None:
        raise LstmgenError(
            f"the model was built for T = {model.timesteps} timesteps; "
            f"inputs have T = {inputs.shape[1]}"
        )
    options = dict(options or {})
    check_options(target, options)
    given = dict(options)  # as the user gave them (selftest vectors replace True below)
    backend = get_backend(target)
    if atol is None:  # a backend may document a looser default, e.g. for quantized weights
        atol = getattr(backend, "default_atol", lambda **_: 1e-5)(**options)
    check_atol(atol)
    if options.get("selftest"):
        options["selftest"] = selftest_vectors(loaded)
    with phase(f"generating the {target} code"):
        files = render(target, model, name, **options)
    runner = get_runner(target)
    count = f"{inputs.shape[0]} sequences of {inputs.shape[1]} timesteps"
    # the oracle first: a framework that is missing or refuses the inputs is reported
    # before any time goes into compiling the generated code
    if loaded.predict is not None:
        with phase(f"running {loaded.oracle_name} on {count}"):
            expected, oracle = loaded.predict(inputs), loaded.oracle_name
    else:
        expected, oracle = forward(model, inputs), "the float64 numpy reference (no framework)"
    with phase(f"building and running the generated {target} code on {count}"):
        with tempfile.TemporaryDirectory(prefix="lstmgen-verify-") as tmp:
            got = runner.run(model, files, name, inputs, Path(tmp))
    with phase(f"comparing {count}"):
        max_abs, max_rel = error_metrics(got, expected)
        ref_abs, _ = error_metrics(got, forward(model, inputs))
    # a backend may add figures of its own, e.g. the flash a quantized build saves
    extra: dict[str, float] = getattr(backend, "verify_extra", lambda m, **_: {})(model, **options)
    return VerifyReport(
        target=target,
        oracle=oracle,
        sequences=inputs.shape[0],
        timesteps=inputs.shape[1],
        atol=atol,
        max_abs=max_abs,
        max_rel=max_rel,
        reference_max_abs=float(np.max(ref_abs)),
        extra=dict(extra),
        inputs=inputs,
        outputs=np.asarray(got),
        expected=np.asarray(expected),
        model=model,
        options=given,
    )


def selftest_vectors(loaded: Loaded, sequences: int = 3) -> SelftestData:
    """Seeded inputs and the framework's own outputs on them, for an on-target self-test
    (the float64 reference stands in when no framework is at hand, e.g. an IR file)."""
    model = loaded.ir
    x = sample_inputs(model, sequences, default_timesteps(model), seed=1)
    if loaded.predict is not None:
        y, oracle = loaded.predict(x), loaded.oracle_name
    else:
        y, oracle = forward(model, x), "the lstmgen float64 reference"
    return SelftestData(x=x, y=np.asarray(y, np.float32), oracle=oracle)
