"""A `.mat` file's structure checked before scipy reads it: what every array declares must
fit the limits of `lstmgen.limits`.

scipy.io.loadmat trusts a file's declarations: it inflates a compressed variable whole,
and allocates a cell or struct array of the declared dimensions before reading its
elements, so a file of a few kilobytes can claim gigabytes. This scan walks the MAT v5
layout (128-byte header; data elements: a tag of type and byte count, or the small
format with both in 4 bytes; miMATRIX elements holding array flags, dimensions, name and
contents, nested for cells, structs, objects and function handles (an opaque object
has no dimensions: three names and an array); miCOMPRESSED elements
holding one zlib-compressed miMATRIX) reading only tags and headers: every array's
dimensions are checked (`array_elements`, and all of them together `parameters`), nesting
is at most `MAX_DEPTH` deep, and compressed data is inflated in bounded chunks, refused
past `member_bytes` or the compression-ratio limit. Version 4 files (uncompressed: a
header of rows and columns per variable) are checked alike; scipy refuses v7.3 (HDF5).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import IO

from ... import limits
from ...errors import LimitError, ModelError

MI_INT8, MI_INT32, MI_UINT32, MI_MATRIX, MI_COMPRESSED = 1, 5, 6, 14, 15
#: MATLAB classes whose contents are more miMATRIX elements (cell, struct, object,
#: function handle, opaque) rather than numbers.
CONTAINER_CLASSES = {1, 2, 3, 16, 17}
OPAQUE_CLASS = 17
MAX_DEPTH = 32
CHUNK = 2**20
HEADER_BYTES = 128


def check_mat_file(path: Path) -> None:
    """Raise ModelError/LimitError unless every declaration in `path` is within limits."""
    where = str(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            header = fh.read(HEADER_BYTES)
            if len(header) == HEADER_BYTES and header[124:126] in (b"\x00\x02", b"\x02\x00"):
                return  # v7.3 (HDF5): scipy refuses it
            if len(header) < HEADER_BYTES or header[124:126] not in (b"\x00\x01", b"\x01\x00"):
                fh.seek(0)
                _check_v4(fh, size, where)
                return
            order = {b"IM": "<", b"MI": ">"}.get(header[126:128])
            if order is None:
                raise ModelError(f"{where}: not a MAT file (byte-order mark {header[126:128]!r})")
            scan = _Scan(where, order)
            stream = _Stored(fh, size - HEADER_BYTES, where)
            while stream.left > 0:
                if stream.left < 8:
                    raise ModelError(f"{where}: {stream.left} stray bytes at the end")
                scan.variable(fh, stream)
    except OSError as exc:
        raise ModelError(f"{where}: cannot read it ({exc.strerror or exc})") from None


def _check_v4(fh: IO[bytes], size: int, where: str) -> None:
    """A version 4 file: variables of a 20-byte header (type code, rows, columns, complex
    flag, name length), the name, then rows x columns numbers stored as they are."""
    budget = limits.ParameterBudget(f"{where}: the arrays")
    left = size
    while left > 0:
        raw = fh.read(20)
        if len(raw) < 20:
            return  # scipy says what is wrong with a stub
        order = "<" if 0 <= struct.unpack("<i", raw[:4])[0] <= 5000 else ">"
        mopt, rows, cols, imag, name_len = struct.unpack(order + "5i", raw)
        if not 0 <= mopt <= 5000 or name_len < 0:
            return  # not a v4 header: scipy refuses it
        precision = (mopt % 100) // 10
        itemsize = {0: 8, 1: 4, 2: 4, 3: 2, 4: 2, 5: 1}.get(precision, 8)
        count = limits.check_array(where, (rows, cols), "an array")
        budget.take(count)
        stored = name_len + count * itemsize * (2 if imag else 1)
        left -= 20
        if stored > left:
            raise ModelError(
                f"{where}: an array declares {stored:,} bytes but {left:,} follow (truncated?)"
            )
        fh.seek(stored, 1)
        left -= stored


class _Stored:
    """Bytes of the file as stored: `left` of them from here."""

    def __init__(self, fh: IO[bytes], left: int, where: str) -> None:
        self.fh, self.left, self.where = fh, left, where

    def read(self, n: int) -> bytes:
        if n > self.left:
            raise ModelError(f"{self.where}: an element runs past the end of the file")
        data = self.fh.read(n)
        if len(data) != n:
            raise ModelError(f"{self.where}: truncated")
        self.left -= n
        return data

    def skip(self, n: int) -> None:
        if n > self.left:
            raise ModelError(f"{self.where}: an element runs past the end of the file")
        self.fh.seek(n, 1)
        self.left -= n


class _Inflated:
    """The inflated bytes of one miCOMPRESSED element, produced in bounded chunks."""

    def __init__(self, fh: IO[bytes], stored: int, outer: _Stored, where: str) -> None:
        self.fh, self.stored, self.outer, self.where = fh, stored, outer, where
        self.unread = stored  # compressed bytes not yet taken from the file
        self.inflater = zlib.decompressobj()
        self.buffer = b""
        self.produced = 0

    @property
    def left(self) -> int:  # an upper bound is all the walk needs: the element's own size
        return 1 << 62

    def _more(self) -> None:
        if self.inflater.unconsumed_tail:
            source = self.inflater.unconsumed_tail
        elif self.unread > 0:
            source = self.outer.read(min(CHUNK, self.unread))
            self.unread -= len(source)
        else:
            raise ModelError(f"{self.where}: compressed data ends inside an element")
        try:
            out = self.inflater.decompress(source, CHUNK)
        except zlib.error as exc:
            raise ModelError(f"{self.where}: damaged compressed data ({exc})") from None
        self.produced += len(out)
        consumed = self.stored - self.unread - len(self.inflater.unconsumed_tail)
        # the ratio so far: a bomb is refused after inflating a few megabytes, not all
        limits.check_member(f"{self.where}: a compressed variable", self.produced, consumed)
        if not out and not self.inflater.unconsumed_tail and self.unread == 0:
            raise ModelError(f"{self.where}: compressed data ends inside an element")
        self.buffer += out

    def read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self._more()
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def skip(self, n: int) -> None:
        while n > 0:
            if not self.buffer:
                self._more()
            step = min(n, len(self.buffer))
            self.buffer = self.buffer[step:]
            n -= step

    def finish(self) -> None:
        """The compressed bytes the element stores but the walk did not need."""
        self.outer.skip(self.unread)


class _Scan:
    def __init__(self, where: str, order: str) -> None:
        self.where, self.order = where, order
        self.budget = limits.ParameterBudget(f"{where}: the arrays")

    def tag(self, stream: _Stored | _Inflated) -> tuple[int, int, int, bytes | None]:
        """(type, byte count, padding after the data, the data when the tag held it: the
        small element format packs type, count and up to 4 bytes of data in 8 bytes)."""
        raw = stream.read(8)
        first, second = struct.unpack(self.order + "II", raw)
        if first >> 16:
            size = first >> 16
            if size > 4:
                raise ModelError(f"{self.where}: a small data element of {size} bytes")
            return first & 0xFFFF, size, 0, raw[4 : 4 + size]
        return first, second, (8 - second % 8) % 8, None

    def variable(self, fh: IO[bytes], stream: _Stored) -> None:
        kind, nbytes, pad, inline = self.tag(stream)
        if kind == MI_COMPRESSED and inline is None:
            inflated = _Inflated(fh, nbytes, stream, self.where)
            inner, inner_bytes, _, inner_inline = self.tag(inflated)
            if inner != MI_MATRIX or inner_inline is not None:
                raise ModelError(f"{self.where}: a compressed variable of type {inner}")
            self.matrix(inflated, inner_bytes, 0)
            inflated.finish()
        elif kind == MI_MATRIX and inline is None:
            self.matrix(stream, nbytes, 0)
            stream.skip(min(pad, stream.left))
        else:
            raise ModelError(f"{self.where}: a top-level element of type {kind}, not an array")

    def matrix(self, stream: _Stored | _Inflated, nbytes: int, depth: int) -> None:
        """The miMATRIX element of `nbytes` bytes whose tag was just read: its dimensions
        checked, and those of every array inside it."""
        if depth > MAX_DEPTH:
            raise LimitError(f"{self.where}: arrays nested more than {MAX_DEPTH} deep")
        if nbytes == 0:
            return  # an empty array
        if nbytes > stream.left:
            raise ModelError(f"{self.where}: an array runs past the end of the file")
        used = 0

        def element(keep: bool) -> tuple[int, bytes]:
            """The next sub-element: its type, and its data if `keep` (a header field)."""
            nonlocal used
            kind, size, pad, inline = self.tag(stream)
            used += 8
            if used > nbytes:
                raise ModelError(f"{self.where}: an element runs past its array")
            if inline is not None:
                return kind, inline
            if used + size + pad > nbytes:
                raise ModelError(f"{self.where}: an element runs past its array")
            if kind == MI_MATRIX and not keep:
                self.matrix(stream, size, depth + 1)
                data = b""
            elif keep and size <= 4096:
                data = stream.read(size)
            else:
                stream.skip(size)
                data = b""
            stream.skip(pad)
            used += size + pad
            return kind, data

        kind, flags = element(keep=True)
        if kind != MI_UINT32 or len(flags) < 4:
            raise ModelError(f"{self.where}: an array without array flags")
        mclass = struct.unpack(self.order + "I", flags[:4])[0] & 0xFF
        if mclass == OPAQUE_CLASS:  # no dimensions: three names, then an array
            while used < nbytes:
                element(keep=False)
            return
        kind, dims_data = element(keep=True)
        if kind != MI_INT32 or not dims_data:
            raise ModelError(f"{self.where}: an array without dimensions")
        dims = struct.unpack(
            f"{self.order}{len(dims_data) // 4}i", dims_data[: len(dims_data) // 4 * 4]
        )
        self.budget.take(limits.check_array(self.where, dims, "an array"))
        element(keep=False)  # the name
        if mclass not in CONTAINER_CLASSES:
            stream.skip(nbytes - used)  # numbers: as many as the file stores
            return
        while used < nbytes:  # a container: its arrays (and names) follow
            element(keep=False)
