"""Reading untrusted containers within the limits of `lstmgen.limits`: zip archives (the
member count, each member's declared size and compression ratio checked before a byte is
inflated; members read in bounded chunks) and numpy `.npy` arrays (the header's shape and
dtype checked before the data is read; the data must be as long as the header says).

`.npz` archives (lstmgen's IR files), `verify --inputs` files and PyTorch's zip files go
through here; every failure is one `ModelError` line naming the file and member.
"""

from __future__ import annotations

import contextlib
import io
import lzma
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from . import limits
from .errors import LimitError, ModelError

#: Members of one archive (an IR file has a few per layer; a PyTorch file one per tensor).
MAX_MEMBERS = 100_000
CHUNK_BYTES = 2**20
#: What reading a damaged member raises (zipfile, zlib, lzma, bz2 and I/O errors).
READ_ERRORS = (
    zipfile.BadZipFile,
    OSError,
    EOFError,
    NotImplementedError,
    zlib.error,
    lzma.LZMAError,
)
_EOCD = b"PK\x05\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"
_EOCD64 = b"PK\x06\x06"


# ---- zip archives ---------------------------------------------------------------------
def open_zip(path: Path, where: str) -> zipfile.ZipFile:
    """The archive at `path`, its member count checked (from the end record, before the
    central directory is parsed) and every member's declared size and ratio."""
    entries = declared_entries(path)
    if entries is not None and entries > MAX_MEMBERS:
        raise LimitError(
            f"{where}: the archive declares {entries:,} members (at most {MAX_MEMBERS:,})"
        )
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        raise ModelError(f"{where}: not a readable zip archive ({_first_line(exc)})") from None
    try:
        infos = archive.infolist()
        if len(infos) > MAX_MEMBERS:
            raise LimitError(
                f"{where}: the archive has {len(infos):,} members (at most {MAX_MEMBERS:,})"
            )
        for info in infos:
            check_member(info, where)
    except BaseException:
        archive.close()
        raise
    return archive


def declared_entries(path: Path) -> int | None:
    """The member count the zip end record declares (None when there is none to read)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, io.SEEK_END)
            size = fh.tell()
            tail_start = max(0, size - (2**16 + 22 + 20 + 56))
            fh.seek(tail_start)
            tail = fh.read()
    except OSError:
        return None
    at = tail.rfind(_EOCD)
    if at < 0 or at + 22 > len(tail):
        return None
    (entries,) = struct.unpack_from("<H", tail, at + 10)
    locator = at - 20
    if entries == 0xFFFF and locator >= 0 and tail[locator : locator + 4] == _EOCD64_LOCATOR:
        (offset,) = struct.unpack_from("<Q", tail, locator + 8)
        record = offset - tail_start
        if 0 <= record <= len(tail) - 56 and tail[record : record + 4] == _EOCD64:
            (entries,) = struct.unpack_from("<Q", tail, record + 32)
    return int(entries)


def check_member(info: zipfile.ZipInfo, where: str, limit: int | None = None) -> None:
    """A member's declared size and compression ratio (limits.check_member), encryption."""
    here = f"{where}: member {info.filename!r}"
    if info.flag_bits & 0x1:
        raise ModelError(f"{here} is encrypted")
    limits.check_member(here, info.file_size, info.compress_size, limit)


def read_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str, limit: int | None = None
) -> bytes:
    """The bytes of a member, read in bounded chunks; exactly its declared size."""
    check_member(info, where, limit)
    here = f"{where}: member {info.filename!r}"
    try:
        with archive.open(info) as fh:
            data = read_exactly(fh, info.file_size, here)
            if fh.read(1):
                raise ModelError(f"{here} holds more than the {info.file_size} bytes it declares")
    except (*READ_ERRORS, ValueError) as exc:
        raise ModelError(f"{here}: cannot be read ({_first_line(exc)})") from None
    return data


def read_exactly(fh: IO[bytes], size: int, where: str) -> bytes:
    """`size` bytes of `fh`, read in chunks of at most 1 MiB (never a claimed size at
    once); fewer is an error naming what was claimed and what is there."""
    chunks: list[bytes] = []
    left = size
    while left > 0:
        chunk = fh.read(min(left, CHUNK_BYTES))
        if not chunk:
            raise ModelError(
                f"{where}: declares {size:,} bytes but holds only {size - left:,} (truncated?)"
            )
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


# ---- .npy arrays ----------------------------------------------------------------------
@dataclass(frozen=True)
class NpyHeader:
    """What an `.npy` header declares, and how many data bytes follow it."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    available: int  # bytes after the header

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=object)) * self.dtype.itemsize


def read_npy_header(fh: IO[bytes], size: int, where: str) -> NpyHeader:
    """The header of the `.npy` stream `fh` of `size` bytes in all (checked, not trusted)."""
    fmt = np.lib.format
    try:  # numpy parses the header as a Python literal: any failure is a bad header
        version = fmt.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(
                fh, max_header_size=limits.MAX_NPY_HEADER_BYTES
            )
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = fmt.read_array_header_2_0(
                fh, max_header_size=limits.MAX_NPY_HEADER_BYTES
            )
        else:
            raise ValueError(f"unknown .npy format version {version}")
        return NpyHeader(tuple(shape), np.dtype(dtype), bool(fortran), size - fh.tell())
    except Exception as exc:
        raise ModelError(f"{where}: not a readable .npy array ({_first_line(exc)})") from None


def refused_dtype(dtype: np.dtype) -> str | None:
    """Why a dtype is not plain real numbers (None when it is: floats, integers)."""
    if dtype.names is not None or dtype.kind == "V":
        return f"a structured dtype ({dtype.descr})"
    reasons = {
        "c": f"complex numbers ({dtype}; the imaginary part would be lost)",
        "U": f"text ({dtype})",
        "S": f"bytes ({dtype})",
        "O": "Python objects",
        "b": "booleans",
        "M": f"dates ({dtype})",
        "m": f"time spans ({dtype})",
    }
    if dtype.kind in "fiu":
        return None
    return reasons.get(dtype.kind, f"dtype {dtype}")


def read_npy_data(
    fh: IO[bytes], header: NpyHeader, where: str, check: Callable[[NpyHeader], None] | None = None
) -> np.ndarray:
    """The array whose header was just read: the dtype must be real numbers, the shape
    within the limits (`check`, default limits.check_array), the data as long as declared."""
    why = refused_dtype(header.dtype)
    if why is not None:
        raise ModelError(f"{where}: holds {why}; expected real floating-point or integer values")
    if check is None:
        limits.check_array(where, header.shape)
    else:
        check(header)
    if header.nbytes > header.available:
        raise ModelError(
            f"{where}: the header declares {header.nbytes:,} bytes of data but "
            f"{max(header.available, 0):,} follow it (truncated?)"
        )
    data = read_exactly(fh, header.nbytes, where)
    flat = np.frombuffer(data, dtype=header.dtype)
    array = flat.reshape(header.shape, order="F" if header.fortran_order else "C")
    return np.ascontiguousarray(array.astype(header.dtype.newbyteorder("="), copy=False))


def read_npy(
    path: Path, where: str, check: Callable[[NpyHeader], None] | None = None
) -> np.ndarray:
    """An `.npy` file, checked as `read_npy_data` says."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):  # a FIFO or a device would block or never end
            raise ModelError(f"{where}: not a regular file")
        size = info.st_size
        with open(path, "rb") as fh:
            header = read_npy_header(fh, size, where)
            return read_npy_data(fh, header, where, check)
    except OSError as exc:
        raise ModelError(f"{where}: cannot read it ({exc.strerror or exc})") from None


def read_npz(path: Path, where: str, text_keys: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """The arrays of an `.npz` archive by key. Every header is read and checked first
    (each array within `array_elements`, all of them within `parameters`; the `text_keys`,
    byte strings of metadata, within `config_bytes`), then the data, in bounded chunks."""
    with open_zip(path, where) as archive:
        headers: dict[str, tuple[zipfile.ZipInfo, NpyHeader]] = {}
        budget = limits.ParameterBudget(where)
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                raise ModelError(f"{where}: member {info.filename!r} is not a .npy array")
            key = info.filename[: -len(".npy")]
            if key in headers:
                raise ModelError(f"{where}: array {key!r} appears twice")
            here = f"{where}: array {key!r}"
            with _member(archive, info, where) as fh:
                header = read_npy_header(fh, info.file_size, here)
            if key in text_keys:
                limits.check_config_bytes(here, header.nbytes)
            else:
                budget.take(limits.check_array(here, header.shape), here)
            headers[key] = (info, header)
        contents = {}
        for key, (info, header) in headers.items():
            here = f"{where}: array {key!r}"
            with _member(archive, info, where) as fh:
                read_npy_header(fh, info.file_size, here)
                contents[key] = read_npy_data(fh, header, here, check=lambda h: None)
        return contents


@contextlib.contextmanager
def _member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> Iterator[IO[bytes]]:
    """A member opened for reading; its read errors become one ModelError line."""
    try:
        with archive.open(info) as fh:
            yield fh
    except (*READ_ERRORS, ValueError) as exc:
        if isinstance(exc, ModelError):
            raise
        raise ModelError(
            f"{where}: member {info.filename!r} cannot be read ({_first_line(exc)})"
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
