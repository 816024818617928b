"""Resource limits for untrusted input: the one place that says how large a model, an
archive member or a verification run may be, their defaults, and how a user raises them.

Every reader checks what a file *declares* (shapes in configs, array headers, tensor
metadata, zip member sizes) against these limits before it allocates or inflates
anything, so a tiny hostile file cannot claim gigabytes of memory or hours of CPU.

Raise a limit, from the most local to the most global:
  * CLI:    `lstmgen generate model.pt --limit parameters=200000000` (repeatable);
  * Python: `with lstmgen.limits.raised(parameters=200_000_000): ...` (this context) or
            `lstmgen.limits.configure(parameters=200_000_000)` (the whole process);
  * environment: `LSTMGEN_LIMIT_PARAMETERS=200000000` (read whenever no `configure` or
            `raised` is in force).
The names on the command line and in the environment are the field names below with
`-` (CLI) or upper case (environment): `array-elements`, `LSTMGEN_LIMIT_ARRAY_ELEMENTS`.

A reader uses the check functions (`check_array`, `check_layers`, `ParameterBudget`,
`check_inputs`, ...); they raise `LimitError` (a `ModelError`: one line, exit code 2)
naming the file and field, the size found, the limit, and how to raise it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass

from .errors import LimitError, LstmgenError

ENV_PREFIX = "LSTMGEN_LIMIT_"
#: Archive members and headers smaller than this are never called compression bombs
#: (small, regular arrays such as zero biases compress very well).
SMALL_MEMBER_BYTES = 2**20
#: The largest header of one `.npy` array (numpy's own default limit).
MAX_NPY_HEADER_BYTES = 10_000


@dataclass(frozen=True)
class Limits:
    """The limits in force. Sizes count values (array elements), not bytes, unless the
    name says bytes."""

    #: All weights of one model together (IR parameter count; tensors a file declares).
    parameters: int = 20_000_000
    #: One array: a weight, a tensor a file declares (by its declared shape, so a
    #: stride-0 or overlapping view counts at its full size), a folded ONNX constant.
    array_elements: int = 20_000_000
    #: Layers of one model (IR layers, stacked recurrent layers, layers of a config).
    layers: int = 1_000
    #: Uncompressed / compressed size of one archive member (zip, npz, .mat), for
    #: members over 1 MiB.
    compression_ratio: int = 200
    #: Bytes of one architecture/metadata text (Keras config.json, IR metadata JSON).
    config_bytes: int = 64 * 2**20
    #: Timesteps of a verification run or a model's fixed sequence length.
    timesteps: int = 100_000
    #: Sequences of a verification run.
    sequences: int = 100_000
    #: Values of the verification inputs (sequences x timesteps x features).
    input_values: int = 10_000_000
    #: Seconds the C compiler may take on generated code when `verify` builds it.
    compile_seconds: int = 600

    @property
    def member_bytes(self) -> int:
        """Bytes of one archive member once inflated: room for every allowed parameter
        as float64 twice over, plus 64 MiB of structure (follows `parameters`)."""
        return 16 * max(self.parameters, self.array_elements) + 64 * 2**20

    @property
    def folded_values(self) -> int:
        """Values all constant folding of one model may produce (follows `parameters`)."""
        return 4 * max(self.parameters, self.array_elements)


DEFAULTS = Limits()
NAMES = tuple(f.name for f in dataclasses.fields(Limits))
_active: ContextVar[Limits | None] = ContextVar("lstmgen_limits", default=None)
_configured: Limits | None = None


def current() -> Limits:
    """The limits in force: a `raised(...)` context, else `configure(...)`, else the
    environment (LSTMGEN_LIMIT_*), else the defaults."""
    return _active.get() or _configured or from_environment()


def from_environment(environ: Mapping[str, str] | None = None) -> Limits:
    """The defaults with every LSTMGEN_LIMIT_<NAME> of the environment applied."""
    environ = os.environ if environ is None else environ
    changes = {
        name: _positive(environ[ENV_PREFIX + name.upper()], ENV_PREFIX + name.upper())
        for name in NAMES
        if ENV_PREFIX + name.upper() in environ
    }
    return dataclasses.replace(DEFAULTS, **changes)


def configure(**changes: int) -> Limits:
    """Change limits for the whole process (from what is in force now); returns them.
    `configure()` with no arguments goes back to the environment and the defaults."""
    global _configured
    _configured = dataclasses.replace(current(), **_checked(changes)) if changes else None
    return current()


@contextlib.contextmanager
def raised(**changes: int) -> Iterator[Limits]:
    """Limits changed for the code inside the `with` block (this thread/context only)."""
    token = _active.set(dataclasses.replace(current(), **_checked(changes)))
    try:
        yield current()
    finally:
        _active.reset(token)


def parse_assignments(items: Iterable[str]) -> dict[str, int]:
    """`["parameters=2e8", "array-elements=1000000"]` -> {name: value} (the CLI's
    `--limit NAME=VALUE`); a bad name or value is an LstmgenError naming it."""
    changes: dict[str, int] = {}
    for item in items:
        name, sep, value = item.partition("=")
        key = name.strip().lower().replace("-", "_")
        if not sep or key not in NAMES:
            raise LstmgenError(
                f"--limit {item!r}: expected NAME=VALUE with NAME one of "
                f"{', '.join(n.replace('_', '-') for n in NAMES)}"
            )
        changes[key] = _positive(value, f"--limit {name.strip()}")
    return changes


# ---- checks a reader makes before it allocates ----------------------------------------
def how_to_raise(name: str) -> str:
    return (
        f"raise it with --limit {name.replace('_', '-')}=N, LSTMGEN_LIMIT_{name.upper()}=N "
        f"or lstmgen.limits.configure({name}=N)"
    )


def refuse(where: str, found: str, name: str) -> LimitError:
    """The error for `found` (e.g. "a tensor of 1,600,000,000 values") over limit `name`."""
    limit = getattr(current(), name)
    return LimitError(f"{where}: {found}, over the limit of {limit:,} ({how_to_raise(name)})")


def check_array(where: str, shape: Iterable[object], what: str = "an array") -> int:
    """The number of values of a declared `shape` (non-negative integers; no overflow:
    Python integers), at most `array_elements`. Checked before the array exists."""
    dims = []
    for dim in shape:
        try:
            value = _as_int(dim)
        except (TypeError, ValueError):
            raise LimitError(f"{where}: {what} has a dimension {dim!r}") from None
        if value < 0:
            raise LimitError(f"{where}: {what} has a negative dimension {value}")
        dims.append(value)
    count = math.prod(dims)
    if count > current().array_elements:
        raise refuse(
            where, f"{what} of shape {tuple(dims)} declares {count:,} values", "array_elements"
        )
    return count


def check_layers(where: str, count: int) -> None:
    """A model (or a stacked module, or a config) of `count` layers."""
    if count > current().layers:
        raise refuse(where, f"{count:,} layers", "layers")


def check_parameters(where: str, count: int) -> None:
    """All weights of one model: `count` values."""
    if count > current().parameters:
        raise refuse(where, f"{count:,} parameters in all", "parameters")


class ParameterBudget:
    """Values still allowed for one model: `take(count, where)` for every array read."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.total = 0

    def take(self, count: int, where: str | None = None) -> None:
        self.total += count
        check_parameters(where or self.where, self.total)


def check_member(
    where: str, declared_bytes: int, stored_bytes: int, limit: int | None = None
) -> None:
    """An archive member that declares `declared_bytes` once inflated and stores
    `stored_bytes`: at most `limit` (default: `member_bytes`) and, above 1 MiB, at most
    `compression_ratio` times what it stores. Checked before a byte is inflated."""
    active = current()
    limit = active.member_bytes if limit is None else limit
    if declared_bytes < 0 or stored_bytes < 0:
        raise LimitError(f"{where}: declares a negative size")
    if declared_bytes > limit:
        raise LimitError(
            f"{where}: declares {declared_bytes:,} bytes, over the limit of {limit:,} "
            f"(it follows the parameters limit: {how_to_raise('parameters')})"
        )
    ratio = declared_bytes / max(stored_bytes, 1)
    if declared_bytes > SMALL_MEMBER_BYTES and ratio > active.compression_ratio:
        raise refuse(
            where,
            f"expands {stored_bytes:,} stored bytes to {declared_bytes:,} (a compression "
            f"bomb?): ratio {ratio:,.0f}",
            "compression_ratio",
        )


def check_config_bytes(where: str, size: int) -> None:
    """An architecture/metadata text of `size` bytes."""
    if size > current().config_bytes:
        raise refuse(where, f"a text of {size:,} bytes", "config_bytes")


def check_timesteps(where: str, timesteps: int) -> None:
    if timesteps > current().timesteps:
        raise refuse(where, f"{timesteps:,} timesteps", "timesteps")


def check_inputs(where: str, sequences: int, timesteps: int, features: int) -> None:
    """Verification inputs [sequences, timesteps, features], before they are made or read."""
    if sequences > current().sequences:
        raise refuse(where, f"{sequences:,} sequences", "sequences")
    check_timesteps(where, timesteps)
    values = sequences * timesteps * features
    if values > current().input_values:
        raise refuse(
            where,
            f"{sequences:,} sequences x {timesteps:,} timesteps x {features:,} features = "
            f"{values:,} input values",
            "input_values",
        )


# ---- helpers ---------------------------------------------------------------------------
def _checked(changes: Mapping[str, object]) -> dict[str, int]:
    unknown = sorted(set(changes) - set(NAMES))
    if unknown:
        raise LstmgenError(f"unknown limit(s) {unknown}; known: {', '.join(NAMES)}")
    return {name: _positive(value, name) for name, value in changes.items()}


def _positive(value: object, what: str) -> int:
    try:
        number = _as_int(value)
    except (TypeError, ValueError):
        raise LstmgenError(f"{what}: expected a positive integer, got {value!r}") from None
    if number < 1:
        raise LstmgenError(f"{what}: expected a positive integer, got {value!r}")
    return number


def _as_int(value: object) -> int:
    """An integer from an int, an integral float, a numpy integer or a text like '2e8'
    or '200_000_000'."""
    if isinstance(value, bool):
        raise TypeError(value)
    if isinstance(value, str):
        text = value.strip().replace("_", "")
        try:
            return int(text)
        except ValueError:
            value = float(text)
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise ValueError(value)
        return int(value)
    if hasattr(value, "__index__"):
        return int(value.__index__())
    raise TypeError(value)
