"""Weight arrays per layer, wherever Keras keeps them, read only once their shape is
known to match what the architecture says.

Stores: `LegacyStore` (HDF5 `model_weights` of a full `.h5` file, or the root of a
`save_weights()` file: one group per layer name, a `weight_names` list in Keras's order),
`SavingV3Store` (Keras 3 / tf.keras >= 2.13 `model.weights.h5`: numbered `vars` under a
path Keras derives from class names), both over `hdf5.H5File` snapshots, `LiveStore` (a
live model's variables) and `ListStore` (arrays in hand). `Weights.get` matches a layer's
arrays to the roles a mapping asks for (kernel, recurrent_kernel, bias, ...): by their
names where the store has names, else in Keras's order; Keras 1 layouts go through
`keras1.stack`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from ...errors import ModelError
from . import files, keras1
from .config import LayerSpec
from .hdf5 import Dataset, Group, H5File, walk

Entry = keras1.Entry
#: A role a mapping asks for: (name, expected shape or None when the mapping checks it).
Role = tuple[str, Any]
#: Layers whose variables live in their `cell` in a Keras 3 weights file.
CELL_LAYERS = ("LSTM", "GRU", "SimpleRNN")


def role_name(name: str | None) -> str | None:
    """'lstm/lstm_cell/kernel:0' -> 'kernel'."""
    if name is None:
        return None
    return re.sub(r":\d+$", "", name.split("/")[-1])


def halves(spec: LayerSpec, entries: list[Entry]) -> list[Entry]:
    """A Bidirectional keeps its forward layer's arrays, then its backward layer's."""
    if spec.part not in ("forward", "backward"):
        return entries
    if len(entries) % 2:
        raise ModelError(
            f"{spec.where}: the Bidirectional's weights hold {len(entries)} arrays, "
            "not two equal halves"
        )
    half = len(entries) // 2
    return entries[:half] if spec.part == "forward" else entries[half:]


class _FileStore:
    """What the HDF5 stores share: a snapshot of the file and the arrays, fetched in one
    trip the first time a layer asks (after every layer class was accepted)."""

    def __init__(self, file: H5File, root: Group, budget: files.Budget) -> None:
        self.file = file
        self.root = root
        self.where = file.where
        self.budget = budget
        self.arrays: dict[str, np.ndarray] | None = None

    def _entry(self, group: Group, name: str, where: str) -> Entry:
        node = walk(group, name, where)
        if not isinstance(node, Dataset):
            raise ModelError(f"{where}: listed in the file but not an array in it")
        return name, node.shape, lambda: self._array(node.path)

    def _array(self, path: str) -> np.ndarray:
        if self.arrays is None:
            self.arrays = self.file.read(self.root, self.budget)
        return self.arrays[path]


class LegacyStore(_FileStore):
    """Keras 1/2 (and Keras 3 legacy) HDF5 weights: root[layer][weight_names]."""

    def __init__(self, file: H5File, root: Group, budget: files.Budget) -> None:
        super().__init__(file, root, budget)
        self.layer_names = root.names("layer_names") or []

    def entries(self, spec: LayerSpec) -> list[Entry]:
        top = spec.names[0]
        group = walk(self.root, top, self.where) if top in self.layer_names else None
        if not isinstance(group, Group):
            names = self.layer_names
            shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
            raise ModelError(
                f"{spec.where}: the weights file {self.where} has no layer '{top}' "
                f"(its layers: {shown or 'none'})"
            )
        names = group.names("weight_names") or []
        if len(spec.names) > 1:  # a layer of a nested model: its own share of the arrays
            owner = spec.names[-1]
            names = [n for n in names if owner in n.split("/")]
        entries = [self._entry(group, name, f"{self.where}: {top}/{name}") for name in names]
        return halves(spec, entries)


class SavingV3Store(_FileStore):
    """Keras 3 weights files: `layers/<class>_<n>/vars/<i>` (`cell/vars` for RNNs)."""

    def entries(self, spec: LayerSpec) -> list[Entry]:
        base = walk(self.root, spec.v3_path, self.where)
        if not isinstance(base, Group):
            raise ModelError(
                f"{spec.where}: the weights file {self.where} has nothing at "
                f"'{spec.v3_path}' where Keras keeps this layer"
            )
        own = walk(base, "vars", self.where)
        if spec.part is None and isinstance(own, Group):
            saved_as = own.text("name")
            if saved_as is not None and saved_as != spec.name:
                raise ModelError(
                    f"{spec.where}: the weights file keeps layer '{saved_as}' at "
                    f"'{spec.v3_path}'; the architecture and the weights do not match"
                )
        entries = self._vars(own, spec.v3_path)
        if spec.class_name in CELL_LAYERS:
            cell = walk(base, "cell/vars", self.where)
            entries += self._vars(cell, spec.v3_path + "/cell")
        return entries

    def _vars(self, group: Group | Dataset | None, path: str) -> list[Entry]:
        if not isinstance(group, Group):
            return []
        keys = list(group.children)
        if sorted(keys, key=lambda k: (len(k), k)) != [str(i) for i in range(len(keys))]:
            raise ModelError(f"{self.where}: '{path}/vars' holds {keys[:5]}, not 0, 1, 2, ...")
        found: list[Entry] = []
        for index in range(len(keys)):
            name, shape, read = self._entry(group, str(index), f"{self.where}: {path}/vars/{index}")
            found.append((None, shape, read))
        return found


def _constant(array: np.ndarray) -> Callable[[], np.ndarray]:
    return lambda: array


class LiveStore:
    """A live model's variables (Keras 3 or tf_keras), by layer names."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def entries(self, spec: LayerSpec) -> list[Entry]:
        layer = self.model
        for name in spec.names:
            layer = layer.get_layer(name)
        variables = list(layer.weights)
        values = layer.get_weights()
        entries: list[Entry] = []
        for variable, value in zip(variables, values):
            label = getattr(variable, "path", None) or getattr(variable, "name", None)
            array = np.asarray(value)
            entries.append((str(label), tuple(array.shape), _constant(array)))
        return halves(spec, entries)


class ListStore:
    """Arrays in hand: layer name -> its arrays in Keras's own order (`get_weights()`)."""

    def __init__(self, arrays: dict[str, list[Any]]) -> None:
        self.arrays = arrays

    def entries(self, spec: LayerSpec) -> list[Entry]:
        values = self.arrays.get(spec.names[-1], [])
        entries: list[Entry] = []
        for value in values:
            array = np.asarray(value)
            entries.append((None, tuple(array.shape), _constant(array)))
        return halves(spec, entries)


class Weights:
    """What the layer mappings ask: a layer's arrays by role, shapes checked first."""

    def __init__(self, store: Any, keras_major: int) -> None:
        self.store = store
        self.keras_major = keras_major

    def get(self, spec: LayerSpec, roles: list[Role]) -> dict[str, np.ndarray]:
        entries = self.store.entries(spec)
        if self.keras_major == 1:
            return keras1.stack(spec.class_name, spec.config, entries, roles, spec.where)
        wanted = [role for role, _ in roles]
        if len(entries) != len(roles):
            found = [role_name(name) or "?" for name, _, _ in entries]
            raise ModelError(
                f"{spec.where}: the weights hold {len(entries)} arrays "
                f"({', '.join(found) or 'none'}), expected {len(roles)} "
                f"({', '.join(wanted) or 'none'})"
            )
        named = {role_name(name): (name, shape, read) for name, shape, read in entries}
        if sorted(wanted) == sorted(str(k) for k in named if k is not None) and len(named) == len(
            entries
        ):
            entries = [named[role] for role in wanted]
        arrays = {}
        for (role, shape), (_, found, read) in zip(roles, entries):
            if shape is not None and tuple(found) != tuple(shape):
                raise ModelError(
                    f"{spec.where}: {role} has shape {tuple(found)} in the weights, the "
                    f"architecture needs {tuple(shape)}"
                )
            arrays[role] = read()
        return arrays


class LazyStore:
    """A store opened on the first weight asked for (so that a refused model never
    reads its weights file)."""

    def __init__(self, open_store: Callable[[], Any]) -> None:
        self.open_store = open_store
        self.store: Any = None

    def entries(self, spec: LayerSpec) -> list[Entry]:
        if self.store is None:
            self.store = self.open_store()
        return self.store.entries(spec)
