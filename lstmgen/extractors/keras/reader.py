"""Keras files -> `Loaded` (IR + oracle): which container a path is (`.keras` archive,
HDF5 model, architecture JSON + weights), its architecture and version, the store of its
weights, and the framework that checks it. No Keras class is instantiated to convert."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from ...errors import LstmgenError, ModelError
from .. import Loaded
from . import files
from .build import build_ir
from .config import ModelSpec, model_spec
from .hdf5 import Group, H5File, walk
from .oracle import FRAMEWORKS, FileOracle, oracle_name
from .weights import LazyStore, LegacyStore, SavingV3Store, Weights

ARCHITECTURE_SUFFIXES = (".json",)


def open_file(path: Path, weights: str | Path | None = None) -> Loaded:
    """A `.keras` / `.h5` model file, or an architecture JSON with its `weights` file."""
    with contextlib.ExitStack() as stack:
        if weights is not None:
            return _open_pair(path, Path(weights))
        if path.suffix.lower() in ARCHITECTURE_SUFFIXES:
            raise LstmgenError(
                f"{path}: an architecture JSON needs its weights file: "
                f"--weights WEIGHTS.h5 (Python: lstmgen.load(path, weights=...))"
            )
        with path.open("rb") as fh:
            head = fh.read(8)
        if head.startswith(files.ZIP_SIGNATURE) or path.suffix.lower() == ".keras":
            return _open_keras_zip(path, stack)
        if head == files.HDF5_SIGNATURE or path.suffix.lower() in (".h5", ".hdf5", ".h5py"):
            return _open_h5(path)
        raise ModelError(
            f"{path}: not a Keras model file (neither a .keras archive nor HDF5); "
            "supported: .keras, .h5, or an architecture .json with --weights"
        )
    raise AssertionError("unreachable")


def _open_keras_zip(path: Path, stack: contextlib.ExitStack) -> Loaded:
    config, version, archive = files.open_keras_zip(path)
    stack.callback(archive.close)
    spec = model_spec(config, version, str(path))

    def open_store() -> SavingV3Store:
        where = f"{path.name}:model.weights.h5"
        h5 = H5File(files.keras_zip_weights(archive, path), where)
        return SavingV3Store(h5, h5.root, files.Budget())

    source = f"Keras {version or _unknown(spec)}, file {path.name}"
    return _loaded(spec, LazyStore(open_store), source, path, None)


def _open_h5(path: Path) -> Loaded:
    h5 = H5File(path, str(path))
    raw = h5.root.text("model_config")
    if raw is None:
        raise ModelError(
            f"{path}: no model_config: a weights-only file (save_weights); give its "
            f"architecture too: lstmgen inspect MODEL.json --weights {path.name}"
        )
    config = files.parse_json(raw, f"{path}: model_config")
    version = h5.root.text("keras_version")
    group = walk(h5.root, "model_weights", str(path))
    if not isinstance(group, Group):
        raise ModelError(f"{path}: a model_config but no model_weights group")
    spec = model_spec(config, version, str(path))
    store = LegacyStore(h5, group, files.Budget())
    source = f"Keras {version or _unknown(spec)} (HDF5), file {path.name}"
    return _loaded(spec, store, source, path, None)


def _open_pair(path: Path, weights: Path) -> Loaded:
    if not weights.is_file():
        raise LstmgenError(f"{weights}: no such file")
    if path.suffix.lower() not in ARCHITECTURE_SUFFIXES:
        raise LstmgenError(
            f"{path}: --weights goes with an architecture JSON (model.to_json(), or a "
            ".keras archive's config.json), not a {path.suffix or 'suffixless'} file"
        )
    config = files.read_json_file(path)
    version = config.get("keras_version") if isinstance(config, dict) else None
    h5 = H5File(weights, weights.name)
    root, budget = h5.root, files.Budget()
    store: Any
    if root.names("layer_names") is not None:
        store = LegacyStore(h5, root, budget)  # save_weights() of Keras 1/2
    elif isinstance(walk(root, "model_weights", h5.where), Group):
        group = walk(root, "model_weights", h5.where)
        assert isinstance(group, Group)
        store = LegacyStore(h5, group, budget)
    elif any(isinstance(walk(root, key, h5.where), Group) for key in ("layers", "vars")):
        store = SavingV3Store(h5, root, budget)  # Keras 3 .weights.h5
    else:
        raise ModelError(
            f"{weights}: not a Keras weights file (no layer_names, model_weights or layers)"
        )
    if not isinstance(version, str):
        version = root.text("keras_version")
    spec = model_spec(config, version, str(path))
    source = f"Keras {version or _unknown(spec)}, files {path.name} + {weights.name}"
    return _loaded(spec, store, source, path, weights)


def _unknown(spec: ModelSpec) -> str:
    return f"{spec.keras_major}.x"


def _loaded(spec: ModelSpec, store: Any, source: str, path: Path, weights: Path | None) -> Loaded:
    ir = build_ir(spec, Weights(store, spec.keras_major), source, path.name)
    package = FRAMEWORKS.get(min(spec.keras_major, 3))
    if package is None:  # Keras 1: neither Keras 3 nor tf_keras reads these files
        return Loaded(ir, None, "")
    stateful = any(layer.config.get("stateful") for layer in spec.all_layers())
    oracle = FileOracle(package, path, weights, spec.input_shape, stateful)
    return Loaded(ir, oracle, oracle_name(package))
