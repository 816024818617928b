"""Saving and loading an IR model as one `.npz` file: arrays plus JSON metadata.

File format (version 1): an uncompressed numpy `.npz` archive with
  * `__lstmgen__`: a uint8 array holding UTF-8 JSON
    `{"format": "lstmgen-ir", "version": 1, "model": {...}, "layers": [{...}, ...]}`;
    each layer dict has `kind` and its scalar fields;
  * `layerK.FIELD`: the float32 arrays of layer K (K from 0), e.g. `layer0.input_weights`;
    a Bidirectional layer's parts are `forward` / `backward` entries of its metadata, and
    their arrays `layerK.forward.FIELD`, `layerK.backward.FIELD`.
No pickles: any tool that reads `.npz` and JSON can produce or consume this file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from .errors import ModelError, OutputError
from .ir import LAYER_TYPES, Model
from .limits import check_layers
from .safe_read import read_npz

FORMAT = "lstmgen-ir"
VERSION = 1
META_KEY = "__lstmgen__"


def save_ir(model: Model, path: str | Path) -> Path:
    """Write `model` to `path` (a `.npz` file) and return the path."""
    model.validate()
    arrays: dict[str, np.ndarray] = {}
    layers_meta = [_layer_meta(layer, f"layer{k}", arrays) for k, layer in enumerate(model.layers)]
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "model": {
            "name": model.name,
            "input_size": model.input_size,
            "source": model.source,
            "timesteps": model.timesteps,
            "notes": list(model.notes),
        },
        "layers": layers_meta,
    }
    arrays[META_KEY] = np.frombuffer(json.dumps(doc, sort_keys=True).encode("utf-8"), np.uint8)
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path} is a folder; give a file name such as model.npz")
    if not path.parent.is_dir():
        raise OutputError(f"cannot write {path}: folder {path.parent} does not exist")
    staging = path.with_name(f".{path.name}.lstmgen-tmp")  # never half a file at `path`
    try:
        with open(staging, "wb") as fh:
            np.savez(fh, **arrays)  # type: ignore[arg-type]
        os.replace(staging, path)
    except OSError as exc:
        staging.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def _layer_meta(layer, prefix: str, arrays: dict[str, np.ndarray]) -> dict:
    """Scalar fields of `layer` as JSON-able metadata; its arrays go into `arrays`."""
    meta: dict = {"kind": layer.kind}
    for f in dataclasses.fields(layer):
        value = getattr(layer, f.name)
        if f.name in ("forward", "backward"):
            meta[f.name] = _layer_meta(value, f"{prefix}.{f.name}", arrays)
        elif isinstance(value, np.ndarray) or (value is None and f.name in layer.arrays()):
            if value is not None:
                arrays[f"{prefix}.{f.name}"] = value
        else:
            meta[f.name] = value
    return meta


def load_ir(path: str | Path) -> Model:
    """Read a model written by `save_ir`; raise ModelError on anything malformed."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such file")
    if not zipfile.is_zipfile(path):  # numpy would talk of pickled data and trusting it
        raise ModelError(f"{path}: not an lstmgen IR .npz file (not a zip archive)")
    # headers, sizes and compression ratios are checked before any array is inflated
    contents = read_npz(path, str(path), text_keys=(META_KEY,))
    if META_KEY not in contents:
        raise ModelError(f"{path}: no '{META_KEY}' metadata entry; not an lstmgen IR file")
    try:
        doc = json.loads(contents.pop(META_KEY).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: metadata is not valid JSON ({exc})") from None
    except RecursionError:
        raise ModelError(f"{path}: metadata JSON is nested too deeply") from None
    if not isinstance(doc, dict):
        raise ModelError(f"{path}: metadata is not a JSON object")
    if doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise ModelError(
            f"{path}: format {doc.get('format')!r} version {doc.get('version')!r}; "
            f"this lstmgen reads {FORMAT!r} version {VERSION}"
        )
    try:
        metas = doc["layers"]
        if not isinstance(metas, list):
            raise ModelError(f"{path}: metadata 'layers' is not a list")
        check_layers(str(path), len(metas))
        layers = [_layer_from(f"layer{k}", meta, contents) for k, meta in enumerate(metas)]
        m = doc["model"]
        model = Model(
            input_size=m["input_size"],
            layers=layers,
            name=str(m["name"]),
            source=str(m.get("source", "")),
            timesteps=m.get("timesteps"),
            notes=[str(note) for note in m.get("notes", [])],
        )
        return model.validate()
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise ModelError(f"{path}: malformed metadata ({type(exc).__name__}: {exc})") from None


def _layer_from(prefix: str, meta: dict, arrays: dict[str, np.ndarray], part_of: bool = False):
    if not isinstance(meta, dict):
        raise ModelError(f"{prefix}: metadata is not a JSON object")
    meta = dict(meta)
    kind = meta.pop("kind", None)
    cls = LAYER_TYPES.get(kind)
    if cls is None:
        raise ModelError(f"{prefix}: unknown kind {kind!r}; known: {', '.join(LAYER_TYPES)}")
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(meta) - fields
    if unknown:
        raise ModelError(f"{prefix} ({kind}): unknown field(s) {sorted(unknown)}")
    kwargs = dict(meta)
    for part in ("forward", "backward"):
        if part in kwargs:
            if not isinstance(kwargs[part], dict) or part_of:
                raise ModelError(f"{prefix} ({kind}): {part} must be a layer")
            kwargs[part] = _layer_from(f"{prefix}.{part}", kwargs[part], arrays, part_of=True)
    for f in fields:
        if f"{prefix}.{f}" in arrays:
            kwargs[f] = np.ascontiguousarray(arrays[f"{prefix}.{f}"])
    for spec in dataclasses.fields(cls):  # type: ignore[arg-type]
        # an absent optional array is None
        if (
            spec.name not in kwargs
            and "None" in str(spec.type)
            and spec.default is dataclasses.MISSING
        ):
            kwargs[spec.name] = None
    return cls(**kwargs)
