"""Test helpers: optional tools skip on a user's machine but fail in CI (CI=true)."""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent  # the repository
FIXTURES = Path(__file__).resolve().parent / "fixtures"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
EXHAUSTIVE = os.environ.get("LSTMGEN_EXHAUSTIVE", "") not in ("", "0")


def missing(what: str) -> None:
    """Skip, or fail in CI where every tool must be present."""
    if IN_CI:
        pytest.fail(f"{what} is required in CI but missing")
    pytest.skip(f"{what} not installed")


def require_module(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        missing(f"Python package '{name}'")


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        missing(f"tool '{name}'")
    return path


def backend_matches_or_refuses(target: str, cases: dict, tmp_path, tolerance: float = 1e-5):
    """For each case (ir, x, expected): the target's generated code matches `expected`
    when the backend declares every layer kind the IR uses; otherwise rendering refuses
    the model with an error naming what is missing."""
    from lstmgen.errors import LstmgenError
    from lstmgen.targets import BASIC_LAYERS, get_backend, get_runner, render
    from lstmgen.verify import error_metrics

    kinds = set(getattr(get_backend(target), "LAYERS", BASIC_LAYERS))
    for key, (ir, x, expected) in cases.items():
        if not ir.kinds() <= kinds:
            with pytest.raises(LstmgenError, match="does not implement"):
                render(target, ir, "net")
            continue
        workdir = tmp_path / key
        workdir.mkdir()
        got = get_runner(target).run(ir, render(target, ir, "net"), "net", x, workdir)
        _, rel = error_metrics(got, expected)
        assert rel.max() <= tolerance, (target, key, float(rel.max()))


def randomize_keras_weights(model, rng, scale: float = 0.6) -> None:
    """Random weights for every layer (biases included, so a wrong bias mapping shows);
    variances of BatchNormalization stay positive; Normalization keeps its adapted stats."""
    import numpy as np

    for layer in model.layers:
        weights = layer.get_weights()
        if not weights or type(layer).__name__ == "Normalization":
            continue
        new = [rng.uniform(-scale, scale, w.shape).astype(np.float32) for w in weights]
        if type(layer).__name__ == "BatchNormalization":  # moving_variance is the last
            new[-1] = rng.uniform(0.3, 2.0, weights[-1].shape).astype(np.float32)
        layer.set_weights(new)


def keras_cases(keras, specs: dict, seed: int, sequences: int = 5) -> dict:
    """Build each spec `key: (input_shape, layers, make_inputs)` as a Keras Sequential with
    random weights; return `key: (ir, x, expected)`, expected being Keras's predict on x.
    `make_inputs(rng, shape)` gives x as [N, T, D] float32 (token ids: [N, T, 1]); a
    model whose input has no feature axis (token ids) gets x[..., 0] as int32."""
    import numpy as np

    import lstmgen

    rng = np.random.default_rng(seed)
    built = {}
    for key, (shape, layers, make) in sorted(specs.items()):
        ids = len(shape) == 1
        model = keras.Sequential(
            [keras.Input(shape, dtype="int32" if ids else "float32"), *layers], name=key
        )
        randomize_keras_weights(model, rng)
        x = make(rng, (sequences, *(shape if not ids else (*shape, 1))))
        x = np.asarray(x, np.float32)
        expected = model.predict(x[..., 0].astype(np.int32) if ids else x, verbose=0)
        built[key] = (lstmgen.load(model), x, expected)
    return built


def reference_matches(cases: dict, tmp_path, tolerance: float = 1e-5) -> None:
    """The float64 reference of each case's IR matches the oracle, also after an .npz
    round trip."""
    import numpy as np

    from lstmgen.ir_io import load_ir, save_ir
    from lstmgen.reference import forward
    from lstmgen.verify import error_metrics

    for key, (ir, x, expected) in cases.items():
        _, rel = error_metrics(forward(ir, x), expected)
        assert rel.max() <= tolerance, (key, float(rel.max()))
        again = load_ir(save_ir(ir, tmp_path / f"{key}.npz"))
        assert np.array_equal(forward(again, x), forward(ir, x), equal_nan=True), key


# ---- third-party models (../shared/real_models) --------------------------------------
REAL_MODELS = ROOT.parent / "shared" / "real_models"


def real_model(relative: str) -> Path:
    """A file of ../shared/real_models (INDEX.md there): skips where the folder is absent,
    fails in CI, where it must be present. Never copy these files into the repository."""
    path = REAL_MODELS / relative
    if not path.exists():
        missing(f"third-party model file {path}")
    return path


def targets_match_oracle(
    loaded, x, tmp_path, targets=("c", "python", "matlab"), tolerance: float = 1e-5, **options
) -> dict:
    """Generate every target for `loaded` (an `lstmgen.extractors.Loaded`), run it on x and
    compare with the oracle `loaded.predict(x)` (the framework's own forward); returns the
    max relative error per target. Fails when a target refuses the model."""
    import numpy as np

    from lstmgen.targets import get_runner, render
    from lstmgen.verify import error_metrics

    assert loaded.predict is not None, "no framework oracle for this model"
    expected = np.asarray(loaded.predict(x))
    errors = {}
    for target in targets:
        workdir = tmp_path / f"run_{target}"
        workdir.mkdir(exist_ok=True)
        files = render(target, loaded.ir, "net", **options.get(target, {}))
        got = get_runner(target).run(loaded.ir, files, "net", x, workdir)
        _, rel = error_metrics(got, expected)
        errors[target] = float(rel.max())
        assert errors[target] <= tolerance, (target, errors[target])
    return errors
