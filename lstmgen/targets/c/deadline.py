"""cffi's compilation of generated C under a deadline (the `compile_seconds` limit).

A model near the size limits becomes hundreds of megabytes of C literals, which a compiler
may take very long to digest. So, where the platform can fork, the compilation runs in a
child process in a session of its own; the parent waits at most `compile_seconds` and then
kills the whole session (the child and the compiler it started) and reports one error
line. Elsewhere (Windows) it runs in-process without a deadline.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time
from typing import Any

from ... import limits
from ...errors import LimitError, LstmgenError


def compile_module(ffi: Any, workdir: str) -> str:
    """`ffi.compile(tmpdir=workdir)` within the deadline: the path of the built library."""
    if not hasattr(os, "fork"):
        return _compile(ffi, workdir)
    # what ffi.compile imports, imported here once (in cffi's order), not in every child
    import cffi._shimmed_dist_utils  # noqa: F401
    import cffi.recompiler  # noqa: F401
    import setuptools.command.build_ext  # noqa: F401

    seconds = limits.current().compile_seconds
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into the caller's code
        try:
            os.close(read_end)
            os.setsid()  # the compiler joins this session: killed with it
            try:
                message = "ok\n" + _compile(ffi, workdir)
            except LstmgenError as exc:
                message = f"error\n{exc}"
            with os.fdopen(write_end, "w") as out:
                out.write(message)
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        reply = _wait(read_end, pid, seconds)
    finally:
        os.close(read_end)
    status, _, text = reply.partition("\n")
    if status == "ok":
        return text
    raise LstmgenError(text or "compiling the generated C failed (the compiler process died)")


def _compile(ffi: Any, workdir: str) -> str:
    try:
        return str(ffi.compile(tmpdir=workdir, verbose=False))
    except Exception as exc:  # distutils/setuptools raise CompileError, LinkError, ...
        raise LstmgenError(f"compiling the generated C failed: {exc}") from None


def _wait(fd: int, pid: int, seconds: int) -> str:
    """The child's reply, or the session killed and a LimitError after `seconds`."""
    chunks, deadline = [], time.monotonic() + seconds
    while True:
        ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
        if not ready:
            _kill_session(pid)
            raise LimitError(
                f"compiling the generated C took over {seconds:,} s, the compile-seconds "
                f"limit (a very large model?); stopped ({limits.how_to_raise('compile_seconds')})"
            )
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    os.waitpid(pid, 0)
    return b"".join(chunks).decode("utf-8", errors="replace")


def _kill_session(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    os.waitpid(pid, 0)
