"""The error boundary: what the user sees when something goes wrong, always one line.

* `front_end` wraps the front-end dispatch (`extractors.open_model`): an exception a reader
  did not anticipate (a library's TypeError on a malformed file, a RecursionError on deep
  nesting, a MemoryError) becomes a `FrontEndFault` naming the file and what is wrong:
  reading a model file is handling user input, so any failure there is the input's.
* `error_line` is the CLI's one line for an `LstmgenError` (multi-line texts, such as a
  compiler's output, are joined); `internal_line` is its line for any other exception
  escaping a target, a runner or lstmgen itself: a genuine internal fault, which says so
  and points to `--debug` for the traceback.
* `OneLineParser` is the CLI's argument parser: a usage mistake (a missing argument, a value
  of the wrong type) is one line too, pointing to `--help` for the usage.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from .errors import FrontEndFault, LstmgenError

F = TypeVar("F", bound=Callable[..., Any])
#: Longest error line printed (a compiler's output can be long; --debug shows it all).
MAX_LINE = 2000


def front_end(function: F) -> F:
    """Decorate a reader taking the source first: anything but an LstmgenError escaping
    it is re-raised as a FrontEndFault naming the source (the original is its cause)."""

    @functools.wraps(function)
    def guarded(source: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(source, *args, **kwargs)
        except LstmgenError:
            raise
        except Exception as exc:  # noqa: BLE001 - the boundary: every failure is reported
            raise FrontEndFault(f"{source_label(source)}: {describe(exc)}") from exc

    return guarded  # type: ignore[return-value]


def source_label(source: Any) -> str:
    if isinstance(source, (str, Path)):
        return str(source)
    return f"the {type(source).__name__} object"


def describe(exc: BaseException) -> str:
    """What an unanticipated exception says about the input, in a few words."""
    detail = first_line(exc)
    if isinstance(exc, MemoryError):
        return (
            "ran out of memory reading it (it declares sizes beyond this machine's memory; "
            "see SECURITY.md for the resource limits)"
        )
    if isinstance(exc, RecursionError):
        return "nested too deeply to read"
    if isinstance(exc, json.JSONDecodeError):
        return f"holds text that is not valid JSON ({detail})"
    if isinstance(exc, UnicodeDecodeError):
        return "holds text that is not valid UTF-8"
    if isinstance(exc, zipfile.BadZipFile):
        return f"a damaged zip archive ({detail})"
    if isinstance(exc, OSError) and not type(exc).__module__.startswith(("h5py", "onnx")):
        return f"cannot be read ({exc.strerror or detail})"
    return f"malformed or unsupported content ({type(exc).__name__}: {detail})"


def error_line(exc: LstmgenError) -> str:
    """The CLI's line for an LstmgenError: its lines joined, capped in length."""
    return "lstmgen: error: " + one_line(str(exc))


def internal_line(exc: BaseException, model: str | None) -> str:
    """The CLI's line for an exception lstmgen did not anticipate (not the input's fault)."""
    where = f" while handling {model}" if model else ""
    if isinstance(exc, MemoryError):
        return (
            f"lstmgen: error: out of memory{where} (see SECURITY.md for the resource limits; "
            "--debug shows the traceback)"
        )
    return (
        f"lstmgen: error: internal error{where}: {type(exc).__name__}: "
        f"{one_line(first_line(exc))} (a bug in lstmgen; --debug shows the traceback)"
    )


def one_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    joined = " | ".join(lines) or "(no message)"
    return joined if len(joined) <= MAX_LINE else joined[: MAX_LINE - 3] + "..."


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


class OneLineParser(argparse.ArgumentParser):
    """argparse with one error line instead of the usage block (exit code 2)."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.split(" ", 1)[1] + ": " if " " in self.prog else ""
        sys.stderr.write(f"lstmgen: error: {command}{one_line(message)} (see {self.prog} --help)\n")
        sys.exit(2)
