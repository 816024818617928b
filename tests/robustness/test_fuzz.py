"""Differential fuzzing: hypothesis draws random Keras architectures from every supported
layer kind and activation, and every backend must match Keras `model.predict` (max
relative error 1e-5) -- or refuse the model by name if it lacks a layer kind.

CI runs a bounded, derandomised set of examples (LSTMGEN_FUZZ_EXAMPLES, default 8).
For a long local run:  LSTMGEN_FUZZ_EXAMPLES=300 python -m pytest tests/test_fuzz.py
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from grid import CELL_ACTIVATIONS, GATE_ACTIVATIONS, HEAD_ACTIVATIONS

pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

EXAMPLES = int(os.environ.get("LSTMGEN_FUZZ_EXAMPLES", "8"))
TOLERANCE = 1e-5
RECURRENT = ["LSTM", "GRU", "GRU_reset_before", "SimpleRNN"]


@st.composite
def architectures(draw) -> dict:
    """A plain description of a random model (built into Keras by `build`)."""
    front = draw(st.sampled_from(["none", "masking", "normalization", "conv"]))
    depth = draw(st.integers(1, 3))
    recurrent = []
    for k in range(depth):
        recurrent.append(
            {
                "kind": draw(st.sampled_from(RECURRENT)),
                "units": draw(st.integers(1, 24)),
                "activation": draw(st.sampled_from(CELL_ACTIVATIONS)),
                "gate": draw(st.sampled_from(GATE_ACTIVATIONS)),
                "bias": draw(st.booleans()),
                "sequences": k < depth - 1 or draw(st.booleans()),
                "backwards": draw(st.booleans()),
                "bidirectional": draw(st.sampled_from([None, None, "concat", "sum", "mul", "ave"])),
                "layer_norm": draw(st.booleans()) and k < depth - 1,
            }
        )
    head = draw(
        st.lists(st.tuples(st.integers(1, 8), st.sampled_from(HEAD_ACTIVATIONS)), max_size=2)
    )
    return {
        "front": front,
        "recurrent": recurrent,
        "head": head,
        "input_size": draw(st.integers(1, 12)),
        "timesteps": draw(st.integers(4, 20)),
        "seed": draw(st.integers(0, 2**16)),
    }


def build(keras, arch: dict):
    L = keras.layers
    rng = np.random.default_rng(arch["seed"])
    layers = [keras.Input((arch["timesteps"], arch["input_size"]))]
    if arch["front"] == "masking":
        layers.append(L.Masking(0.0))
    elif arch["front"] == "normalization":
        norm = L.Normalization()
        norm.adapt(rng.normal(1, 3, (20, arch["timesteps"], arch["input_size"])).astype(np.float32))
        layers.append(norm)
    elif arch["front"] == "conv":
        layers += [
            L.Conv1D(4, 3, padding=str(rng.choice(["valid", "same", "causal"])), activation="relu"),
            L.MaxPooling1D(2, padding="same"),
        ]
    for spec in arch["recurrent"]:
        kwargs = dict(
            units=spec["units"],
            activation=spec["activation"],
            use_bias=spec["bias"],
            return_sequences=spec["sequences"],
            go_backwards=spec["backwards"] and not spec["bidirectional"],
        )
        if spec["kind"] != "SimpleRNN":
            kwargs["recurrent_activation"] = spec["gate"]
        if spec["kind"] == "GRU_reset_before":
            kwargs["reset_after"] = False
        layer = getattr(L, spec["kind"].split("_")[0])(**kwargs)
        if spec["bidirectional"]:
            layer = L.Bidirectional(layer, merge_mode=spec["bidirectional"])
        layers.append(layer)
        if spec["layer_norm"]:
            layers.append(L.LayerNormalization())
    for units, activation in arch["head"]:
        layers.append(L.Dense(units, activation=activation))
    model = keras.Sequential(layers)
    for layer in model.layers:
        weights = layer.get_weights()
        if weights and type(layer).__name__ not in ("Normalization",):
            layer.set_weights(
                [
                    rng.uniform(-0.6, 0.6, w.shape).astype(np.float32)
                    * (1.0 if w.ndim == 1 else min(1.0, 2.5 / np.sqrt(w.shape[0])))
                    for w in weights
                ]
            )
    return model


def test_every_backend_matches_keras_on_random_architectures(keras, tmp_path_factory):
    from support import backend_matches_or_refuses

    import lstmgen
    from lstmgen.targets import TARGETS

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(arch=architectures())
    def check(arch: dict) -> None:
        keras.backend.clear_session()
        model = build(keras, arch)
        x = (
            np.random.default_rng(arch["seed"])
            .standard_normal((3, arch["timesteps"], arch["input_size"]))
            .astype(np.float32)
        )
        if arch["front"] == "masking":  # padded tails and a hole, as real data has
            x[0, -2:] = 0.0
            x[1, 1] = 0.0
        expected = model.predict(x, verbose=0)
        assert np.all(np.isfinite(expected))
        cases = {"fuzz": (lstmgen.load(model), x, expected)}
        for target in sorted(TARGETS):
            backend_matches_or_refuses(target, cases, tmp_path_factory.mktemp(target), TOLERANCE)

    check()
