"""Writing generated files safely: all or nothing, never over a file lstmgen did not write.

Files are first written to a temporary folder beside the destination, then moved into
place one by one (a rename on the same filesystem), so an interrupted run leaves either
the old files or the new ones, never a half-written file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .errors import OutputError
from .targets.common import GENERATED_MARK


def _written_by_lstmgen(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return GENERATED_MARK in fh.read(4096)
    except OSError:
        return False


def write_files(files: dict[str, str], out: str | Path, force: bool = False) -> list[Path]:
    """Write {filename: text} into folder `out`; return the written paths."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} exists and is not a folder")
    targets = [out / name for name in sorted(files)]
    foreign = [p for p in targets if p.exists() and not _written_by_lstmgen(p)]
    if foreign and not force:
        raise OutputError(
            f"{foreign[0]} exists and was not written by lstmgen; pass --force to overwrite it"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".lstmgen-", dir=out))
    except OSError as exc:
        raise OutputError(f"cannot write to {out}: {exc.strerror or exc}") from None
    try:
        for name in sorted(files):
            with open(staging / name, "w", encoding="utf-8", newline="\n") as fh:
                fh.write(files[name])
        for name in sorted(files):
            os.replace(staging / name, out / name)
    except OSError as exc:
        raise OutputError(f"cannot write to {out}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return targets
