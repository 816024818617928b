"""Keras files as containers, read without Keras: `.keras` archives (a zip of
`config.json` + `model.weights.h5`) and architecture JSON (`model.to_json()`), with the
limits every read of a user's file honours (`lstmgen.limits`: raised with `--limit`;
HDF5 itself is `hdf5.py`'s job).

Hostile files are read safely: zip members are checked against their declared size and a
compression-ratio limit before a byte is inflated, `..`/absolute/duplicate members are
refused, JSON is bounded in size and nesting, and every failure is one `ModelError` line
naming the file.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Any

from ... import limits
from ...errors import ModelError

#: Members of a `.keras` archive (Keras writes three, plus assets).
MAX_ZIP_MEMBERS = 10_000

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZIP_SIGNATURE = b"PK\x03\x04"


def major_version(version: str | None) -> int | None:
    """2 for '2.3.0-tf', 1 for '1.2.2', None when unknown."""
    match = re.match(r"\s*(\d+)", version or "")
    return int(match.group(1)) if match else None


# ---- architecture JSON ------------------------------------------------------------------
def parse_json(text: bytes | str, where: str) -> Any:
    limits.check_config_bytes(f"{where}: the architecture", len(text))
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        return json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ModelError(f"{where}: not valid JSON ({_first_line(exc)})") from None
    except RecursionError:
        raise ModelError(f"{where}: the JSON is nested too deeply") from None


def read_json_file(path: Path) -> Any:
    limits.check_config_bytes(f"{path}: the architecture JSON", _file_size(path))
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
    where = f"{path}: archive member {info.filename!r}"
    if info.filename.endswith(".json"):
        limits.check_config_bytes(where, info.file_size)
    limits.check_member(where, info.file_size, info.compress_size)
    if info.flag_bits & 0x1:
        raise ModelError(f"{where} is encrypted")
    with archive.open(info) as fh:
        data = fh.read(info.file_size + 1)
    if len(data) != info.file_size:
        raise ModelError(f"{where} holds {len(data)} bytes, not the {info.file_size} it claims")
    return data


def keras_zip_weights(archive: zipfile.ZipFile, path: Path) -> bytes:
    """The bytes of the archive's model.weights.h5 (checked like every member)."""
    try:
        info = archive.getinfo("model.weights.h5")
        return read_member(archive, info, path)
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as exc:
        raise ModelError(f"{path}: cannot read model.weights.h5 ({_first_line(exc)})") from None


class Budget(limits.ParameterBudget):
    """The weight values still allowed to be read for one model (`parameters`); every
    array is also checked against `array_elements` before it is read."""

    def __init__(self, where: str = "the model's weights") -> None:
        super().__init__(where)

    def take_array(self, shape: tuple[int, ...], where: str) -> None:
        self.take(limits.check_array(where, shape, "a weight array"), where)


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError as exc:
        raise ModelError(f"{path}: cannot read it ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
