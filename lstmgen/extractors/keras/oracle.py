"""The oracle of a Keras model: the framework that wrote it, on the verifier's inputs.

Files written by Keras 3 run in Keras 3 (`keras.saving.load_model(..., safe_mode=True)`,
or `model_from_json` + `load_weights` for a pair); files written by Keras <= 2 / tf.keras
run in tf_keras (Keras 2 on current TensorFlow, with Keras 2's `hard_sigmoid`), which
loads the files Keras 3 cannot; Keras 1 files load in neither, so the float64 reference
stands in (the verify report says so). A live model is its own oracle.

TensorFlow is imported only when an oracle first runs (`verify`, `--selftest`), with its
log lines kept off the terminal; `inspect` and `generate` never import it. The framework
only ever sees a file after lstmgen has accepted every layer class in it.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import MissingDependencyError, ModelError

#: Keras major version that wrote a file -> the package that runs it.
FRAMEWORKS = {3: "keras", 2: "tf_keras"}
LABELS = {"keras": "Keras", "tf_keras": "tf_keras"}
INSTALL = {"keras": "pip install tensorflow-cpu", "tf_keras": "pip install tf-keras"}


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Keep TensorFlow's C++/absl log lines (oneDNN notices, CUDA probes) off stderr."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no real stderr (embedded interpreters)
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def framework_version(package: str) -> str | None:
    """The installed version of `package` from its metadata (nothing is imported)."""
    for name in (package, package.replace("_", "-")):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def import_framework(package: str) -> Any:
    try:
        with quiet():
            module = importlib.import_module(package)
    except ImportError:
        raise MissingDependencyError(
            f"verify runs this model in {LABELS[package]} to compare: {INSTALL[package]}"
        ) from None
    if package == "keras" and int(str(module.__version__).split(".")[0]) < 3:
        raise MissingDependencyError(
            f"Keras {module.__version__} found; Keras 3 files need Keras 3 "
            "(pip install 'tensorflow-cpu>=2.16')"
        )
    return module


def oracle_name(package: str) -> str:
    version = framework_version(package)
    return f"{LABELS[package]} {version or '(not installed)'} model.predict"


class FileOracle:
    """Loads the file in `package` on first use, then predicts like the generated code:
    every sequence from a zero state, token ids as integers, a fixed batch honoured."""

    def __init__(
        self,
        package: str,
        path: Path,
        weights: Path | None,
        input_shape: tuple,
        stateful: bool,
    ) -> None:
        self.package = package
        self.path = path
        self.weights = weights
        self.input_shape = input_shape
        self.stateful = stateful
        self.model: Any = None

    def load(self) -> Any:
        if self.model is None:
            framework = import_framework(self.package)
            try:
                with quiet():
                    self.model = self._load(framework)
            except MissingDependencyError:
                raise
            except Exception as exc:  # the framework's own errors, as one line
                text = str(exc).strip().splitlines()
                first = text[0] if text else type(exc).__name__
                raise ModelError(
                    f"{self.path}: {LABELS[self.package]} could not load it to verify: {first}"
                ) from None
        return self.model

    def _load(self, framework: Any) -> Any:
        if self.weights is None:
            options: dict[str, Any] = {"compile": False}
            if self.path.suffix.lower() == ".keras":
                options["safe_mode"] = True
            return framework.models.load_model(str(self.path), **options)
        model = framework.models.model_from_json(self.path.read_text(encoding="utf-8"))
        suffix = ".weights.h5" if self.weights.name.endswith(".weights.h5") else ".h5"
        with tempfile.TemporaryDirectory(prefix="lstmgen-oracle-") as tmp:
            # Keras chooses the format by the name: give it one it reads as HDF5
            copy = Path(tmp) / f"weights{suffix}"
            shutil.copyfile(self.weights, copy)
            model.load_weights(str(copy))
        return model

    def __call__(self, x: np.ndarray) -> np.ndarray:
        model = self.load()
        with quiet():
            return predict(model, x, self.input_shape, self.stateful)


def predict(model: Any, x: np.ndarray, input_shape: tuple, stateful: bool) -> np.ndarray:
    """`model.predict` on x [N, T, D] (token ids: [N, T, 1]), each sequence from zero."""
    x = np.asarray(x, np.float32)
    if len(input_shape) == 2:
        x = x[..., 0].astype(np.int32)
    batch = input_shape[0]
    if stateful:
        # a stateful model has a fixed batch size and carries state across calls: run each
        # sequence alone, from a zero state, as the generated predict() does
        outputs = []
        for sequence in x:
            reset_states(model)
            copies = np.repeat(sequence[None], batch or 1, axis=0)
            outputs.append(model.predict(copies, verbose=0, batch_size=batch or 1)[0])
        reset_states(model)
        return np.stack(outputs)
    if batch:  # a fixed batch size in the file: fill the last batch with copies
        padded = -len(x) % batch
        filled = np.concatenate([x, np.repeat(x[-1:], padded, axis=0)]) if padded else x
        return np.asarray(model.predict(filled, verbose=0, batch_size=batch))[: len(x)]
    return np.asarray(model.predict(x, verbose=0, batch_size=256))


def reset_states(model: Any) -> None:
    for layer in getattr(model, "layers", []):
        if getattr(layer, "stateful", False):
            reset = getattr(layer, "reset_states", None) or layer.reset_state
            reset()
        if hasattr(layer, "layers"):
            reset_states(layer)


class LiveOracle:
    """A live model predicts for itself."""

    def __init__(self, model: Any, input_shape: tuple, stateful: bool) -> None:
        self.model = model
        self.input_shape = input_shape
        self.stateful = stateful

    def __call__(self, x: np.ndarray) -> np.ndarray:
        with quiet():
            return predict(self.model, x, self.input_shape, self.stateful)
