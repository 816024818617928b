"""HDF5 files (`.h5` models and weights, a `.keras` archive's `model.weights.h5`) read
outside lstmgen's own process.

The HDF5 C library has crashes and endless loops on crafted files (seen: a global heap
object of size 0 loops forever; a corrupt variable-length string segfaults; a length
field of 2 GB is allocated before it is checked). So a forked child process does all
HDF5 work, under an address-space cap, and the parent waits with a deadline: a crash, a
hang or runaway memory there becomes one `ModelError` line here. Two trips: `H5File`
takes a snapshot of the file's structure (groups, the attributes Keras writes, dataset
shapes; hard links only), and `H5File.read` fetches the arrays under a group, checked in
the child (numbers only, no virtual or external data, no compression bombs, within the
weight budget) and sent back as raw bytes (no pickles). Without `os.fork` (Windows) the
same code runs in-process, with the memory cap where the platform has one.
"""

from __future__ import annotations

import contextlib
import io
import json
import mmap
import os
import select
import signal
import struct
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ... import limits
from ...errors import LstmgenError, MissingDependencyError, ModelError
from .files import HDF5_SIGNATURE, Budget

#: Attributes of interest (Keras writes long name lists in chunks: layer_names0, ...).
ATTRIBUTES = ("keras_version", "backend", "model_config", "layer_names", "weight_names", "name")
#: Subtrees that hold no model weights (optimizer state), never walked.
SKIPPED = ("optimizer_weights", "optimizer")
MAX_NODES = 200_000
MAX_DEPTH = 64
MAX_CHUNKS = 10_000
#: Address space the child may take beyond its size at fork, and its deadline.
MEMORY_HEADROOM = 512 * 2**20
TIMEOUT_SECONDS = 120.0
#: Extra seconds per GB of data read.
SECONDS_PER_GB = 60.0


@dataclass
class Dataset:
    path: str
    shape: tuple[int, ...]
    dtype: str

    @property
    def nbytes(self) -> int:
        count = 1
        for n in self.shape:
            count *= n
        return count * np.dtype(self.dtype).itemsize


@dataclass
class Link:
    """A member that is not a plain (hard-linked) object: 'soft' or 'external'."""

    path: str
    kind: str


@dataclass
class Group:
    path: str
    attrs: dict[str, Any] = field(default_factory=dict)
    children: dict[str, Group | Dataset | Link] = field(default_factory=dict)

    def names(self, key: str) -> list[str] | None:
        """A list-of-names attribute (`layer_names`, `weight_names`), chunked or not."""
        value = self.attrs.get(key)
        return None if value is None else list(value)

    def text(self, key: str) -> str | None:
        value = self.attrs.get(key)
        return value if isinstance(value, str) else None


def describe_link(link: Link) -> str:
    kind = {"external": "an external link (to another file)", "soft": "a soft link"}
    what = kind.get(link.kind, link.kind)
    return f"HDF5 member '{link.path}' is {what}; only plain members are read"


def walk(group: Group, path: str, where: str) -> Group | Dataset | None:
    """The node at '/'-separated `path` under `group`, or None; links are refused."""
    node: Group | Dataset | Link = group
    for part in [p for p in path.split("/") if p]:
        if not isinstance(node, Group):
            return None
        child = node.children.get(part)
        if child is None:
            return None
        if isinstance(child, Link):
            raise ModelError(f"{where}: {describe_link(child)}")
        node = child
    assert not isinstance(node, Link)
    return node


class H5File:
    """An HDF5 file's structure, read in a child process; arrays on request."""

    def __init__(self, source: Path | bytes, where: str) -> None:
        self.source = source
        self.where = where
        if isinstance(source, Path) and not _has_signature(source):
            raise ModelError(f"{where}: not a readable HDF5 Keras file (no HDF5 signature)")
        _h5py()  # imported here, so that children inherit it
        self.root = _group_from(isolated(_snapshot, (source, where), where, TIMEOUT_SECONDS))

    def read(self, under: Group, budget: Budget) -> dict[str, np.ndarray]:
        """Every array below `under`, keyed by its path (one trip to a child)."""
        datasets = [node for node in _datasets(under)]
        for dataset in datasets:
            budget.take_array(dataset.shape, f"{self.where}: {dataset.path}")
        total = sum(d.nbytes for d in datasets)
        timeout = TIMEOUT_SECONDS + SECONDS_PER_GB * total / 2**30
        paths = [d.path for d in datasets]
        return isolated(_read_arrays, (self.source, self.where, paths), self.where, timeout)


def _datasets(group: Group) -> Iterator[Dataset]:
    for child in group.children.values():
        if isinstance(child, Dataset):
            yield child
        elif isinstance(child, Group):
            yield from _datasets(child)


def _group_from(doc: dict) -> Group:
    group = Group(doc["path"], doc["attrs"])
    for name, child in doc["children"].items():
        if "children" in child:
            group.children[name] = _group_from(child)
        elif "link" in child:
            group.children[name] = Link(child["path"], child["link"])
        else:
            group.children[name] = Dataset(child["path"], tuple(child["shape"]), child["dtype"])
    return group


def _has_signature(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(8) == HDF5_SIGNATURE
    except OSError as exc:
        raise ModelError(f"{path}: cannot read it ({exc})") from None


def _h5py() -> Any:
    try:
        import h5py
    except ImportError:
        raise MissingDependencyError(
            "reading Keras files needs h5py: pip install 'lstmgen[keras]' (or pip install h5py)"
        ) from None
    return h5py


# ---- isolation ------------------------------------------------------------------------------
def isolated(function: Callable[..., Any], args: tuple, where: str, timeout: float) -> Any:
    """`function(*args)` in a forked child (capped memory, deadline); its result or its
    LstmgenError comes back, a crash or a hang becomes a ModelError."""
    if not hasattr(os, "fork"):
        with memory_cap():
            return function(*args)
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into the caller's code
        status = 0
        try:
            os.close(read_end)
            _quiet_child()
            _cap_address_space(MEMORY_HEADROOM)
            with os.fdopen(write_end, "wb") as out:
                out.write(_encode(function, args))
        except BaseException:
            status = 70
        finally:
            os._exit(status)
    os.close(write_end)
    try:
        data = _collect(read_end, pid, timeout, where)
    finally:
        os.close(read_end)
    return _decode(data, where)


def _quiet_child() -> None:
    """A crash in the child ends it with its signal, silently: no inherited handler
    (faulthandler, a fuzzer's) prints or writes anything, stdout/stderr go nowhere."""
    import faulthandler

    faulthandler.disable()
    for name in ("SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL", "SIGABRT"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_DFL)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)


def _collect(fd: int, pid: int, timeout: float, where: str) -> bytes:
    chunks, deadline = [], time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(left, 0))
        if not ready:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise ModelError(
                f"{where}: the HDF5 library did not finish reading it in {timeout:.0f} s "
                "(a corrupt or hostile file); stopped"
            )
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        raise ModelError(
            f"{where}: the HDF5 library crashed reading it (signal {number}, "
            f"{signal.Signals(number).name}): a corrupt or hostile file"
        )
    data = b"".join(chunks)
    if not data:
        raise ModelError(
            f"{where}: the HDF5 library gave up reading it (out of memory or a corrupt file)"
        )
    return data


def _encode(function: Callable[..., Any], args: tuple) -> bytes:
    """The child's answer: a JSON header line, then raw array bytes."""
    try:
        result = function(*args)
    except LstmgenError as exc:
        return json.dumps({"error": str(exc)}).encode() + b"\n"
    except MemoryError:
        return json.dumps({"error": f"{args[1]}: out of memory reading it"}).encode() + b"\n"
    except Exception as exc:  # any other failure of h5py/HDF5 on this file
        message = f"{args[1]}: not a readable HDF5 Keras file ({_first_line(exc)})"
        return json.dumps({"error": message}).encode() + b"\n"
    if isinstance(result, dict) and all(isinstance(v, np.ndarray) for v in result.values()):
        header = [[k, v.dtype.str, list(v.shape)] for k, v in result.items()]
        body = b"".join(np.ascontiguousarray(v).tobytes() for v in result.values())
        return json.dumps({"arrays": header}).encode() + b"\n" + body
    return json.dumps({"value": result}).encode() + b"\n"


def _decode(data: bytes, where: str) -> Any:
    line, _, body = data.partition(b"\n")
    try:
        head = json.loads(line)
    except ValueError:
        raise ModelError(f"{where}: the HDF5 reader's answer is garbled") from None
    if "error" in head:
        raise ModelError(str(head["error"]))
    if "value" in head:
        return head["value"]
    arrays, offset = {}, 0
    for key, dtype, shape in head["arrays"]:
        kind = np.dtype(dtype)
        if kind.kind not in "fiub":
            raise ModelError(f"{where}: the HDF5 reader sent {dtype} data")
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        size = count * kind.itemsize
        arrays[key] = np.frombuffer(body, kind, count, offset).reshape(shape).copy()
        offset += size
    return arrays


def _cap_address_space(extra: int) -> None:
    try:
        import resource

        with open("/proc/self/statm") as fh:
            current = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        cap = current + extra
        if hard != resource.RLIM_INFINITY:
            cap = min(cap, hard)
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    except (ImportError, OSError, ValueError, AttributeError):
        pass


@contextlib.contextmanager
def memory_cap(extra: int = MEMORY_HEADROOM) -> Iterator[None]:
    """The address-space cap for in-process reads (platforms without fork)."""
    try:
        import resource

        limits = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, OSError, ValueError, AttributeError):
        yield
        return
    _cap_address_space(extra)
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, limits)


# ---- what the child does ----------------------------------------------------------------------
def _open(source: Path | bytes, where: str) -> Any:
    h5py = _h5py()
    if isinstance(source, Path):
        with source.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as view:
            check_global_heaps(view, where)
        return h5py.File(source, "r", locking=False)
    check_global_heaps(source, where)
    return h5py.File(io.BytesIO(source), "r", locking=False)


def _snapshot(source: Path | bytes, where: str) -> dict:
    h5py = _h5py()
    count = 0
    seen: set[int] = set()

    def group(node: Any, path: str, depth: int) -> dict:
        nonlocal count
        doc: dict[str, Any] = {"path": path, "attrs": _attributes(node, where), "children": {}}
        if depth > MAX_DEPTH:
            raise ModelError(f"{where}: HDF5 groups nested more than {MAX_DEPTH} deep")
        for name in node.keys():
            count += 1
            if count > MAX_NODES:
                raise ModelError(f"{where}: more than {MAX_NODES} HDF5 objects")
            child_path = f"{path}/{name}" if path else name
            if depth == 0 and name in SKIPPED:
                continue
            link = node.get(name, getlink=True)
            if isinstance(link, h5py.SoftLink):
                doc["children"][name] = {"path": child_path, "link": "soft"}
                continue
            if not isinstance(link, h5py.HardLink):
                doc["children"][name] = {"path": child_path, "link": "external"}
                continue
            child = node[name]
            identity = hash(child.id)
            if identity in seen:
                raise ModelError(f"{where}: HDF5 group '{child_path}' is linked twice (a cycle)")
            seen.add(identity)
            if isinstance(child, h5py.Group):
                doc["children"][name] = group(child, child_path, depth + 1)
            elif isinstance(child, h5py.Dataset):
                doc["children"][name] = {
                    "path": child_path,
                    "shape": [int(n) for n in child.shape],
                    "dtype": child.dtype.str if child.dtype.kind in "fiub" else "|V1",
                }
        return doc

    with _open(source, where) as fh:
        return group(fh, "", 0)


def _attributes(node: Any, where: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    present = set(node.attrs.keys())
    for key in ATTRIBUTES:
        if key in present:
            found[key] = _attribute(node, key, where)
        elif f"{key}0" in present:  # Keras's chunked long lists
            values: list[str] = []
            while f"{key}{len(values)}" in present and len(values) < MAX_CHUNKS:
                chunk = _attribute(node, f"{key}{len(values)}", where)
                values.extend(chunk if isinstance(chunk, list) else [chunk])
            found[key] = values
    return found


def _attribute(node: Any, key: str, where: str) -> Any:
    try:
        stored = node.attrs.get_id(key).get_storage_size()
    except RuntimeError:  # HDF5 reports an empty attribute's size 0 as an error
        stored = 0
    limits.check_config_bytes(f"{where}: attribute {key!r}", stored)
    value = node.attrs[key]
    if isinstance(value, np.ndarray):
        if value.ndim > 1:
            raise ModelError(f"{where}: attribute {key!r} is not a list of names")
        return [_text(v, key, where) for v in value.reshape(-1) if not isinstance(v, float)]
    return _text(value, key, where)


def _text(value: Any, key: str, where: str) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        return value
    if isinstance(value, np.generic):
        return str(value.item())
    raise ModelError(f"{where}: attribute {key!r} holds {type(value).__name__}, not text")


def _read_arrays(source: Path | bytes, where: str, paths: list[str]) -> dict[str, np.ndarray]:
    h5py = _h5py()
    budget = Budget()
    arrays = {}
    with _open(source, where) as fh:
        for path in paths:
            node = fh
            for part in path.split("/"):
                link = node.get(part, getlink=True)
                if not isinstance(link, h5py.HardLink):
                    raise ModelError(f"{where}: HDF5 member '{path}' is not a plain member")
                node = node[part]
            arrays[path] = _read_dataset(node, f"{where}: {path}", budget)
    return arrays


def _read_dataset(node: Any, where: str, budget: Budget) -> np.ndarray:
    """A weight array, after checking it is plain numbers stored in this file, of a size
    its storage can hold (no virtual/external data, no compression bomb)."""
    dtype = node.dtype
    if dtype.kind not in "fiub" or dtype.itemsize > 8 or dtype.fields is not None:
        raise ModelError(f"{where}: data of type {dtype} is not numbers")
    if node.is_virtual:
        raise ModelError(f"{where}: a virtual dataset (data from other files) is refused")
    if node.external:
        raise ModelError(f"{where}: data stored in external files is refused")
    shape = tuple(int(n) for n in node.shape)
    budget.take_array(shape, where)
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    limits.check_member(where, nbytes, node.id.get_storage_size())
    _cap_address_space(MEMORY_HEADROOM + 2 * nbytes)
    return np.asarray(node[()])


def check_global_heaps(data: Any, where: str) -> None:
    """Refuse HDF5 global heap collections (where variable-length strings such as
    model_config live) whose objects do not tile the collection: the HDF5 library (1.14)
    loops forever on an object of size 0."""
    lengths = _length_size(data)
    header = 8 + lengths  # object header: index (2), references (2), reserved (4), size
    at = 0
    while True:
        at = data.find(b"GCOL", at)
        if at < 0:
            return
        start, at = at, at + 4
        if len(data) < start + 8 + lengths or bytes(data[start + 4 : start + 8]) != b"\x01\0\0\0":
            continue  # not a collection header (version 1, reserved zeros)
        size = int.from_bytes(bytes(data[start + 8 : start + 8 + lengths]), "little")
        if size < 4096 or start + size > len(data):
            continue  # collections are at least 4 KiB: these four bytes are data
        end, p = start + size, start + 8 + lengths
        while p + header <= end:  # a tail too small for an object is free space
            index = struct.unpack_from("<H", data, p)[0]
            object_size = int.from_bytes(bytes(data[p + 8 : p + 8 + lengths]), "little")
            need = object_size if index == 0 else header + (object_size + 7) // 8 * 8
            if need < header or p + need > end:
                raise ModelError(
                    f"{where}: a corrupt HDF5 global heap (object {index} of {object_size} "
                    f"bytes at offset {p}): refused before the HDF5 library reads it"
                )
            p += need


def _length_size(data: Any) -> int:
    """The size of HDF5 "lengths" from the superblock (8 unless it says otherwise)."""
    head = bytes(data[:16])
    if head[:8] == HDF5_SIGNATURE:
        size = head[14] if head[8] in (0, 1) else head[10] if head[8] in (2, 3) else 8
        if size in (2, 4, 8):
            return size
    return 8


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
