"""A bounds-checked reader of FlatBuffers tables, the container format of `.tflite` files.

A FlatBuffer is a little-endian byte string of tables. A table starts with an int32 offset
back to its *vtable*: uint16 vtable size, uint16 table size, then one uint16 per field
(slot) giving the field's offset inside the table, 0 when the field is absent (it then has
its schema default). A field that refers to something else (a table, a vector, a string)
holds a uint32 offset relative to the field's own position; a vector starts with its
uint32 length.

This module knows nothing of TensorFlow Lite: `schema.py` names the slots. Every position
is checked against the buffer before it is read, so a truncated or corrupted file ends in
one `FlatbufferError` naming what could not be read, never in an IndexError, a negative
index reading from the end of the buffer, a huge allocation or an endless loop (the reader
follows the schema's fixed depth, never a chain of offsets).
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from ...errors import ModelError


class FlatbufferError(ModelError):
    """The bytes are not a well-formed FlatBuffer of the expected shape."""


_SCALARS = {
    "bool": ("<?", 1),
    "int8": ("<b", 1),
    "uint8": ("<B", 1),
    "int16": ("<h", 2),
    "uint16": ("<H", 2),
    "int32": ("<i", 4),
    "uint32": ("<I", 4),
    "int64": ("<q", 8),
    "uint64": ("<Q", 8),
    "float32": ("<f", 4),
}
_NUMPY = {
    "int8": "<i1",
    "uint8": "<u1",
    "int32": "<i4",
    "int64": "<i8",
    "float32": "<f4",
    "bool": "<u1",
}


class Reader:
    """The whole file; every read is checked to lie inside it."""

    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data).toreadonly()
        self.size = len(self.data)

    def check(self, pos: int, length: int, what: str) -> None:
        if pos < 0 or length < 0 or pos + length > self.size:
            raise FlatbufferError(
                f"{what} lies outside the file (bytes {pos}..{pos + length} of {self.size}); "
                "the file is truncated or corrupt"
            )

    def scalar(self, kind: str, pos: int, what: str) -> int | float | bool:
        fmt, size = _SCALARS[kind]
        self.check(pos, size, what)
        return struct.unpack_from(fmt, self.data, pos)[0]

    def uoffset(self, pos: int, what: str) -> int:
        """The position a uint32 offset stored at `pos` points to."""
        target = pos + int(self.scalar("uint32", pos, what))
        if target >= self.size:
            raise FlatbufferError(f"{what} points past the end of the file; it is corrupt")
        return target

    def root(self, what: str) -> Table:
        return Table(self, self.uoffset(0, f"{what} (root offset)"), what)


class Table:
    """One table: fields read by slot number (0 for the first field of the schema)."""

    def __init__(self, reader: Reader, pos: int, what: str) -> None:
        self.reader, self.pos, self.what = reader, pos, what
        back = int(reader.scalar("int32", pos, f"{what} (vtable offset)"))
        self.vtable = pos - back
        reader.check(self.vtable, 4, f"{what} (vtable)")
        self.vtable_size = int(reader.scalar("uint16", self.vtable, what))
        self.table_size = int(reader.scalar("uint16", self.vtable + 2, what))
        if self.vtable_size < 4 or self.vtable_size % 2:
            raise FlatbufferError(f"{what}: malformed vtable (size {self.vtable_size})")
        reader.check(self.vtable, self.vtable_size, f"{what} (vtable)")
        reader.check(pos, max(self.table_size, 4), f"{what} (table)")

    def _field(self, slot: int, size: int) -> int | None:
        """Position of the field in `slot`, or None when it is absent."""
        entry = 4 + 2 * slot
        if entry + 2 > self.vtable_size:
            return None
        offset = int(self.reader.scalar("uint16", self.vtable + entry, self.what))
        if offset == 0:
            return None
        if offset + size > self.table_size:
            raise FlatbufferError(f"{self.what}: field {slot} lies outside its table")
        return self.pos + offset

    def has(self, slot: int) -> bool:
        return self._field(slot, 1) is not None

    def scalar(self, slot: int, kind: str, default: int | float | bool = 0) -> Any:
        pos = self._field(slot, _SCALARS[kind][1])
        if pos is None:
            return default
        return self.reader.scalar(kind, pos, f"{self.what} field {slot}")

    def _target(self, slot: int, what: str) -> int | None:
        pos = self._field(slot, 4)
        return None if pos is None else self.reader.uoffset(pos, what)

    def table(self, slot: int, what: str) -> Table | None:
        pos = self._target(slot, what)
        return None if pos is None else Table(self.reader, pos, what)

    def _vector(self, slot: int, item_size: int, what: str) -> tuple[int, int] | None:
        """(start, length) of the vector in `slot`, checked to fit in the file."""
        pos = self._target(slot, what)
        if pos is None:
            return None
        length = int(self.reader.scalar("uint32", pos, f"{what} (length)"))
        self.reader.check(pos + 4, length * item_size, f"{what} ({length} items)")
        return pos + 4, length

    def numbers(self, slot: int, kind: str, what: str) -> np.ndarray | None:
        """A vector of scalars as a read-only numpy array (None when absent)."""
        dtype = np.dtype(_NUMPY[kind])
        span = self._vector(slot, dtype.itemsize, what)
        if span is None:
            return None
        start, length = span
        return np.frombuffer(self.reader.data, dtype=dtype, count=length, offset=start)

    def raw_bytes(self, slot: int, what: str) -> memoryview | None:
        span = self._vector(slot, 1, what)
        if span is None:
            return None
        start, length = span
        return self.reader.data[start : start + length]

    def string(self, slot: int, what: str) -> str:
        raw = self.raw_bytes(slot, what)
        return "" if raw is None else bytes(raw).decode("utf-8", errors="replace")

    def tables(self, slot: int, what: str) -> list[Table]:
        span = self._vector(slot, 4, what)
        if span is None:
            return []
        start, length = span
        return [
            Table(self.reader, self.reader.uoffset(start + 4 * k, f"{what}[{k}]"), f"{what}[{k}]")
            for k in range(length)
        ]
