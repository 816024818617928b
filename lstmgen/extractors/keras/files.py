"""Keras files as containers, read without Keras: `.keras` archives (a zip of
`config.json` + `model.weights.h5`), HDF5 files (`.h5`: a `model_config` attribute and a
`model_weights` group, or weights only), and architecture JSON (`model.to_json()`).

This module owns every byte read from a user's file, and reads hostile files safely:
sizes are checked before anything is read (zip members against their declared size and a
compression-ratio limit; HDF5 datasets against their storage), `..`/absolute/duplicate
zip members, HDF5 external links, soft links, virtual datasets and external storage are
refused, and every failure is one `ModelError` line naming the file.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ModelError

#: The largest architecture (config.json / model_config / .json file) read, in bytes.
MAX_CONFIG_BYTES = 64 * 2**20
#: The largest weights file taken out of a `.keras` archive, in bytes.
MAX_WEIGHTS_FILE_BYTES = 4 * 2**30
#: All weight arrays of one model together, in bytes once read.
MAX_WEIGHT_BYTES = 2 * 2**30
#: Uncompressed / stored size above which data counts as a compression bomb.
MAX_COMPRESSION_RATIO = 200
#: Sizes under this many bytes are never called a bomb (tiny arrays compress well).
SMALL_BYTES = 2**20
#: Members of a `.keras` archive (Keras writes three, plus assets).
MAX_ZIP_MEMBERS = 10_000
#: Names inside one HDF5 attribute list (layer_names, weight_names).
MAX_NAMES = 1_000_000
#: Memory HDF5 may take beyond what is in use while it parses a file's metadata.
MEMORY_HEADROOM = 512 * 2**20

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZIP_SIGNATURE = b"PK\x03\x04"


def major_version(version: str | None) -> int | None:
    """2 for '2.3.0-tf', 1 for '1.2.2', None when unknown."""
    match = re.match(r"\s*(\d+)", version or "")
    return int(match.group(1)) if match else None


@contextlib.contextmanager
def memory_cap(extra: int = MEMORY_HEADROOM) -> Iterator[None]:
    """Cap the address space at its current size + `extra` while HDF5 parses a file: a
    hostile file can make the HDF5 library allocate what a length field claims (a
    variable-length string of 2 GB) before it notices the data is not there. Where the
    platform cannot cap (no RLIMIT_AS / /proc), reads run uncapped."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        with open("/proc/self/statm") as fh:
            current = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        cap = current + extra
        for limit in (soft, hard):
            if limit != resource.RLIM_INFINITY:
                cap = min(cap, limit)
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    except (ImportError, OSError, ValueError, AttributeError):
        yield
        return
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


# ---- architecture JSON ------------------------------------------------------------------
def parse_json(text: bytes | str, where: str) -> Any:
    if len(text) > MAX_CONFIG_BYTES:
        raise ModelError(f"{where}: the architecture is over {MAX_CONFIG_BYTES} bytes")
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        return json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ModelError(f"{where}: not valid JSON ({_first_line(exc)})") from None
    except RecursionError:
        raise ModelError(f"{where}: the JSON is nested too deeply") from None


def read_json_file(path: Path) -> Any:
    size = _file_size(path)
    if size > MAX_CONFIG_BYTES:
        raise ModelError(f"{path}: {size} bytes is too large for an architecture JSON")
    return parse_json(path.read_bytes(), str(path))


# ---- .keras archives --------------------------------------------------------------------
def open_keras_zip(path: Path) -> tuple[Any, str | None, zipfile.ZipFile]:
    """(config, keras_version, archive) of a `.keras` file; the weights stay unread."""
    with path.open("rb") as fh:
        head = fh.read(4)
    if head != ZIP_SIGNATURE:
        kind = "an HDF5 file (rename it .h5)" if head == HDF5_SIGNATURE[:4] else "not a zip"
        raise ModelError(f"{path}: not a .keras archive: {kind}")
    try:
        archive = zipfile.ZipFile(path)
        members = _checked_members(archive, path)
        if "config.json" not in members:
            raise ModelError(f"{path}: the .keras archive has no config.json")
        config = parse_json(
            read_member(archive, members["config.json"], path), f"{path}:config.json"
        )
        version = None
        if "metadata.json" in members:
            metadata = parse_json(
                read_member(archive, members["metadata.json"], path), f"{path}:metadata.json"
            )
            if isinstance(metadata, dict) and isinstance(metadata.get("keras_version"), str):
                version = metadata["keras_version"]
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        OSError,
        EOFError,
        NotImplementedError,
    ) as exc:
        raise ModelError(f"{path}: not a readable .keras archive ({_first_line(exc)})") from None
    if "model.weights.h5" not in members:
        sharded = any(name.endswith(".weights.json") for name in members)
        raise ModelError(
            f"{path}: the .keras archive has no model.weights.h5"
            + (" (sharded weights are not supported)" if sharded else "")
        )
    return config, version, archive


def _checked_members(archive: zipfile.ZipFile, path: Path) -> dict[str, zipfile.ZipInfo]:
    infos = archive.infolist()
    if len(infos) > MAX_ZIP_MEMBERS:
        raise ModelError(f"{path}: the archive has {len(infos)} members; not a .keras file")
    members: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        name = info.filename
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or ".." in parts or re.match(r"^[A-Za-z]:", name):
            raise ModelError(f"{path}: archive member {name!r} has an unsafe path")
        if name in members:
            raise ModelError(f"{path}: archive member {name!r} appears twice")
        members[name] = info
    return members


def read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> bytes:
    """A member's bytes, refusing sizes over the limits and compression bombs."""
    limit = MAX_CONFIG_BYTES if info.filename.endswith(".json") else MAX_WEIGHTS_FILE_BYTES
    where = f"{path}: archive member {info.filename!r}"
    if info.file_size > limit:
        raise ModelError(f"{where} claims {info.file_size} bytes (limit {limit})")
    if info.file_size > SMALL_BYTES and info.file_size > MAX_COMPRESSION_RATIO * max(
        info.compress_size, 1
    ):
        raise ModelError(
            f"{where} expands {info.compress_size} bytes to {info.file_size}: "
            "refused as a compression bomb"
        )
    if info.flag_bits & 0x1:
        raise ModelError(f"{where} is encrypted")
    with archive.open(info) as fh:
        data = fh.read(info.file_size + 1)
    if len(data) != info.file_size:
        raise ModelError(f"{where} holds {len(data)} bytes, not the {info.file_size} it claims")
    return data


def keras_zip_weights(archive: zipfile.ZipFile, path: Path) -> Any:
    """The archive's model.weights.h5 as an open, checked HDF5 file."""
    try:
        info = archive.getinfo("model.weights.h5")
        data = read_member(archive, info, path)
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as exc:
        raise ModelError(f"{path}: cannot read model.weights.h5 ({_first_line(exc)})") from None
    return open_h5(io.BytesIO(data), f"{path}:model.weights.h5")


# ---- HDF5 -------------------------------------------------------------------------------
def _h5py() -> Any:
    try:
        import h5py
    except ImportError:
        from ...errors import MissingDependencyError

        raise MissingDependencyError(
            "reading Keras files needs h5py: pip install 'lstmgen[keras]' (or pip install h5py)"
        ) from None
    return h5py


def is_hdf5(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(8) == HDF5_SIGNATURE


def open_h5(source: Path | io.BytesIO, where: str) -> Any:
    h5py = _h5py()
    if isinstance(source, Path):
        if not is_hdf5(source):
            raise ModelError(f"{where}: not a readable HDF5 Keras file (no HDF5 signature)")
    try:
        with memory_cap():
            return h5py.File(source, "r", locking=False)
    except Exception as exc:  # h5py raises OSError, ValueError and others for broken files
        raise ModelError(f"{where}: not a readable HDF5 Keras file ({_first_line(exc)})") from None


def child(group: Any, name: str, where: str) -> Any:
    """The member `name` of an HDF5 group, following hard links only; None when absent."""
    h5py = _h5py()
    try:
        if name not in group:
            return None
        link = group.get(name, getlink=True)
        if not isinstance(link, h5py.HardLink):
            kind = {"ExternalLink": "an external link (to another file)", "SoftLink": "a soft link"}
            what = kind.get(type(link).__name__, f"a {type(link).__name__}")
            raise ModelError(
                f"{where}: HDF5 member {name!r} is {what}; only plain members are read"
            )
        return group[name]
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(
            f"{where}: cannot read HDF5 member {name!r} ({_first_line(exc)})"
        ) from None


def walk(group: Any, path: str, where: str) -> Any:
    """The object at '/'-separated `path` under `group` (hard links only), or None."""
    node = group
    for part in [p for p in path.split("/") if p]:
        if not is_group(node):
            return None
        node = child(node, part, where)
        if node is None:
            return None
    return node


def is_group(node: Any) -> bool:
    return isinstance(node, _h5py().Group)


def is_dataset(node: Any) -> bool:
    return isinstance(node, _h5py().Dataset)


def has_attr(obj: Any, name: str) -> bool:
    try:
        return name in obj.attrs
    except Exception:
        return False


def attr_text(obj: Any, name: str, where: str) -> str | None:
    """A string attribute (bytes or str, as Keras versions wrote it), or None."""
    if not has_attr(obj, name):
        return None
    value = _attr(obj, name, where)
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise ModelError(f"{where}: attribute {name!r} is not UTF-8 text") from None
    if isinstance(value, str):
        return value
    raise ModelError(f"{where}: attribute {name!r} is not text")


def attr_names(obj: Any, name: str, where: str) -> list[str] | None:
    """A list-of-names attribute (`layer_names`, `weight_names`), also in the chunked form
    Keras uses for long lists (`name0`, `name1`, ...); None when absent."""
    if has_attr(obj, name):
        chunks = [_attr(obj, name, where)]
    elif has_attr(obj, f"{name}0"):
        chunks = []
        while has_attr(obj, f"{name}{len(chunks)}") and len(chunks) < MAX_NAMES:
            chunks.append(_attr(obj, f"{name}{len(chunks)}", where))
    else:
        return None
    names: list[str] = []
    for chunk in chunks:
        values = np.asarray(chunk)
        if values.ndim > 1 or values.size > MAX_NAMES:
            raise ModelError(f"{where}: attribute {name!r} is not a list of names")
        for value in values.reshape(-1):
            if isinstance(value, bytes):
                value = value.decode("utf-8", errors="replace")
            if not isinstance(value, str):
                if values.size == 0:
                    break
                raise ModelError(f"{where}: attribute {name!r} is not a list of names")
            names.append(value)
    return names


def _attr(obj: Any, name: str, where: str) -> Any:
    try:
        attribute = obj.attrs.get_id(name)
        if attribute.get_storage_size() > MAX_CONFIG_BYTES:
            raise ModelError(f"{where}: attribute {name!r} is over {MAX_CONFIG_BYTES} bytes")
        with memory_cap():
            return obj.attrs[name]
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"{where}: cannot read attribute {name!r} ({_first_line(exc)})") from None


class Budget:
    """The bytes of weights still allowed to be read for one model."""

    def __init__(self, limit: int = MAX_WEIGHT_BYTES) -> None:
        self.left = limit

    def take(self, nbytes: int, where: str) -> None:
        if nbytes > self.left:
            raise ModelError(
                f"{where}: the weights exceed {MAX_WEIGHT_BYTES} bytes in all; refused"
            )
        self.left -= nbytes


def dataset_shape(node: Any, where: str) -> tuple[int, ...]:
    try:
        return tuple(int(n) for n in node.shape)
    except Exception as exc:
        raise ModelError(f"{where}: unreadable dataset shape ({_first_line(exc)})") from None


def read_dataset(node: Any, where: str, budget: Budget) -> np.ndarray:
    """A weight array, after checking it is plain numbers stored in this file, of a size
    its storage can hold (no virtual/external data, no compression bomb)."""
    try:
        dtype = node.dtype
        if dtype.kind not in "fiub" or dtype.itemsize > 8 or dtype.fields is not None:
            raise ModelError(f"{where}: data of type {dtype} is not numbers")
        if node.is_virtual:
            raise ModelError(f"{where}: a virtual dataset (data from other files) is refused")
        if node.external:
            raise ModelError(f"{where}: data stored in external files is refused")
        shape = dataset_shape(node, where)
        count = 1
        for n in shape:
            count *= n
        nbytes = count * dtype.itemsize
        stored = node.id.get_storage_size()
        if nbytes > SMALL_BYTES and nbytes > MAX_COMPRESSION_RATIO * max(stored, 1):
            raise ModelError(
                f"{where}: {nbytes} bytes from {stored} stored: refused as a compression bomb"
            )
        budget.take(nbytes, where)
        with memory_cap(MEMORY_HEADROOM + 2 * nbytes):
            return np.asarray(node[()])
    except ModelError:
        raise
    except Exception as exc:  # h5py/HDF5 errors on broken or truncated data
        raise ModelError(f"{where}: cannot read the array ({_first_line(exc)})") from None


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError as exc:
        raise ModelError(f"{path}: cannot read it ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
