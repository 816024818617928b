"""What lstmgen shows a person at a terminal while it works: progress lines, and no framework
log noise.

* `reporting()` turns progress lines on (the CLI does, unless `--quiet`); `phase(text)`
  marks a step of the work. A phase that lasts longer than `after` seconds (about one) gets
  one line on stderr, `lstmgen: TEXT ...`, completed with its duration when it ends; shorter
  phases print nothing. Library code calls `phase` freely: without `reporting` it is silent.
* `native_output_silenced()` keeps what frameworks print on their own out of the terminal
  (TensorFlow's absl/oneDNN/CUDA lines, which come from C++ straight to file descriptor 2 and
  ignore Python's logging): it points descriptor 2 at a temporary file for its duration and
  sets the frameworks' quiet environment variables. When an unexpected exception escapes
  (a crash, not an `LstmgenError`), the captured text is written out after all, so nothing
  that explains a failure is lost. Progress lines keep their own copy of the terminal's
  descriptor, so they still show while it is silenced.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import IO

from .errors import LstmgenError

#: Environment variables that make the frameworks log less (they are read at import time).
QUIET_ENVIRONMENT = {
    "TF_CPP_MIN_LOG_LEVEL": "3",  # TensorFlow's C++ logging: errors only
    "GRPC_VERBOSITY": "ERROR",
    "GLOG_minloglevel": "2",
}

#: Seconds a phase runs before its progress line appears (the environment variable
#: LSTMGEN_PROGRESS_AFTER overrides it, e.g. 0 to see every phase).
DEFAULT_AFTER = 1.0


def progress_after() -> float:
    try:
        return float(os.environ.get("LSTMGEN_PROGRESS_AFTER", DEFAULT_AFTER))
    except ValueError:
        return DEFAULT_AFTER


class Progress:
    """Progress lines on `stream`: one per phase that lasts longer than `after` seconds."""

    def __init__(self, stream: IO[str], after: float = DEFAULT_AFTER) -> None:
        self.stream = stream
        self.after = after
        self._lock = threading.Lock()
        self._open: str | None = None  # the phase whose line waits for its ending

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed terminal must not stop the work
            pass

    def _end_open_line(self) -> None:
        if self._open is not None:
            self._write("\n")
            self._open = None

    @contextlib.contextmanager
    def phase(self, text: str) -> Iterator[None]:
        start = time.monotonic()
        state = {"shown": False, "done": False}

        def show() -> None:
            with self._lock:
                if state["done"]:
                    return
                self._end_open_line()
                self._write(f"lstmgen: {text} ...")
                self._open = text
                state["shown"] = True

        timer = threading.Timer(self.after, show) if self.after > 0 else None
        if timer is None:
            show()
        else:
            timer.daemon = True
            timer.start()
        ended = "failed"
        try:
            yield
            ended = f"{time.monotonic() - start:.1f} s"
        finally:
            if timer is not None:
                timer.cancel()
            with self._lock:
                state["done"] = True
                if state["shown"]:
                    if self._open == text:
                        self._write(f" {ended}\n")
                    else:
                        self._write(f"lstmgen: {text}: {ended}\n")
                    self._open = None


_progress: Progress | None = None


@contextlib.contextmanager
def reporting(
    stream: IO[str] | None = None, after: float | None = None, enabled: bool = True
) -> Iterator[Progress | None]:
    """Show progress lines on `stream` (default: a copy of the terminal's stderr descriptor,
    which `native_output_silenced` leaves alone) while the block runs; nothing when not
    `enabled`."""
    global _progress
    if not enabled:
        previous, _progress = _progress, None
        try:
            yield None
        finally:
            _progress = previous
        return
    own = False
    if stream is None:
        stream = sys.stderr
        try:
            stream.flush()
            stream = os.fdopen(os.dup(stream.fileno()), "w", encoding="utf-8", errors="replace")
            own = True
        except (OSError, ValueError, AttributeError):  # no descriptor (captured, embedded)
            pass
    previous, _progress = _progress, Progress(stream, progress_after() if after is None else after)
    try:
        yield _progress
    finally:
        _progress = previous
        if own:
            stream.close()


def phase(text: str) -> contextlib.AbstractContextManager[None]:
    """Mark a step of the work (see the module docstring); silent unless `reporting`."""
    return _progress.phase(text) if _progress is not None else contextlib.nullcontext()


@contextlib.contextmanager
def native_output_silenced(enabled: bool = True) -> Iterator[None]:
    """Keep what frameworks write to stderr (descriptor 2) out of the terminal while the
    block runs; replay it if an unexpected exception escapes (see the module docstring)."""
    if not enabled:
        yield
        return
    for key, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2 at all (a detached process): nothing to silence
        yield
        return
    captured = tempfile.TemporaryFile()
    os.dup2(captured.fileno(), 2)
    # Python-level writes (warnings, absl's Python logging) go there too, even where
    # sys.stderr is not descriptor 2 (an embedding program, a test's capture)
    python_stderr, sys.stderr = (
        sys.stderr,
        os.fdopen(os.dup(captured.fileno()), "w", encoding="utf-8", errors="replace"),
    )
    failed = True
    try:
        yield
        failed = False
    except (LstmgenError, KeyboardInterrupt):
        failed = False  # a user error explains itself in one line; ^C is no crash
        raise
    finally:
        sys.stderr.close()
        sys.stderr = python_stderr
        os.dup2(saved, 2)
        os.close(saved)
        if failed:
            captured.seek(0)
            text = captured.read().decode("utf-8", "replace")
            if text.strip():
                sys.stderr.write(text)
                sys.stderr.flush()
        captured.close()
