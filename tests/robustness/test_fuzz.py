"""Differential fuzzing: hypothesis draws random Keras architectures from every supported
layer kind and activation (Embedding with and without mask_zero, BatchNormalization after
sequences and vectors, global pooling, Cropping1D, RepeatVector autoencoders included),
and every backend must match Keras `model.predict` (max relative error 1e-5) -- or refuse
the model by name if it lacks a layer kind. Most models go through a `.keras` or `.h5`
file and lstmgen's direct reader, the others are converted live.

CI runs a bounded, derandomised set of examples (LSTMGEN_FUZZ_EXAMPLES, default 8).
For a long local run:  LSTMGEN_FUZZ_EXAMPLES=300 python -m pytest tests/test_fuzz.py
"""

from __future__ import annotations

import os

import numpy as np
from grid import CELL_ACTIVATIONS, GATE_ACTIVATIONS, HEAD_ACTIVATIONS
from support import require_module

require_module("hypothesis", module_level=True)
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

EXAMPLES = int(os.environ.get("LSTMGEN_FUZZ_EXAMPLES", "8"))
TOLERANCE = 1e-5
RECURRENT = ["LSTM", "GRU", "GRU_reset_before", "SimpleRNN"]


@st.composite
def architectures(draw) -> dict:
    """A plain description of a random model (built into Keras by `build`)."""
    front = draw(st.sampled_from(["none", "masking", "normalization", "conv", "embedding"]))
    tail = draw(st.sampled_from(["none", "none", "global_avg", "global_max", "crop", "repeat"]))
    if front == "conv" and tail == "crop":
        tail = "none"  # convolution and pooling may leave too few timesteps to crop
    depth = draw(st.integers(1, 3))
    recurrent = []
    for k in range(depth):
        last = k == depth - 1
        sequences = (not last) or draw(st.booleans())
        if last and tail in ("global_avg", "global_max", "crop"):
            sequences = True
        if last and tail == "repeat":
            sequences = False
        recurrent.append(
            {
                "kind": draw(st.sampled_from(RECURRENT)),
                "units": draw(st.integers(1, 24)),
                "activation": draw(st.sampled_from(CELL_ACTIVATIONS)),
                "gate": draw(st.sampled_from(GATE_ACTIVATIONS)),
                "bias": draw(st.booleans()),
                "sequences": sequences,
                "backwards": draw(st.booleans()),
                "bidirectional": draw(st.sampled_from([None, None, "concat", "sum", "mul", "ave"])),
                "norm": draw(st.sampled_from([None, None, "layer", "batch"])) if not last else None,
            }
        )
    head = draw(
        st.lists(st.tuples(st.integers(1, 8), st.sampled_from(HEAD_ACTIVATIONS)), max_size=2)
    )
    return {
        "front": front,
        "mask_zero": draw(st.booleans()),
        "vocabulary": draw(st.integers(2, 30)),
        "recurrent": recurrent,
        "tail": tail,
        "batch_norm_head": draw(st.booleans()),
        "head": head,
        "input_size": draw(st.integers(1, 12)),
        "timesteps": draw(st.integers(4, 20)),
        "file": draw(st.sampled_from([".keras", ".h5", None])),
        "seed": draw(st.integers(0, 2**16)),
    }


def _recurrent(L, spec: dict, **overrides):
    kwargs = dict(
        units=spec["units"],
        activation=spec["activation"],
        use_bias=spec["bias"],
        return_sequences=spec["sequences"],
        go_backwards=spec["backwards"] and not spec["bidirectional"],
    )
    kwargs.update(overrides)
    if spec["kind"] != "SimpleRNN":
        kwargs["recurrent_activation"] = spec["gate"]
    if spec["kind"] == "GRU_reset_before":
        kwargs["reset_after"] = False
    layer = getattr(L, spec["kind"].split("_")[0])(**kwargs)
    if spec["bidirectional"]:
        layer = L.Bidirectional(layer, merge_mode=spec["bidirectional"])
    return layer


def build(keras, arch: dict):
    L = keras.layers
    rng = np.random.default_rng(arch["seed"])
    if arch["front"] == "embedding":
        layers = [
            keras.Input((arch["timesteps"],), dtype="int32"),
            L.Embedding(arch["vocabulary"], arch["input_size"], mask_zero=arch["mask_zero"]),
        ]
    else:
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
        layers.append(_recurrent(L, spec))
        if spec["norm"] == "layer":
            layers.append(L.LayerNormalization())
        elif spec["norm"] == "batch":
            layers.append(L.BatchNormalization())
    tail = arch["tail"]
    if tail == "global_avg":
        layers.append(L.GlobalAveragePooling1D())
    elif tail == "global_max":
        layers.append(L.GlobalMaxPooling1D())
    elif tail == "crop":
        layers.append(L.Cropping1D((1, 1)))
    elif tail == "repeat":  # the LSTM autoencoder: vector -> sequence -> per-step output
        decoder = {**arch["recurrent"][0], "sequences": True, "bidirectional": None}
        layers += [
            L.RepeatVector(arch["timesteps"]),
            _recurrent(L, decoder, go_backwards=False),
            L.TimeDistributed(L.Dense(2)),
        ]
    if arch["batch_norm_head"] and tail in ("none", "global_avg", "global_max"):
        layers.append(L.BatchNormalization(center=bool(arch["seed"] % 2)))
    for units, activation in arch["head"]:
        layers.append(L.Dense(units, activation=activation))
    model = keras.Sequential(layers)
    for layer in model.layers:
        weights = layer.get_weights()
        if weights and type(layer).__name__ not in ("Normalization",):
            new = [
                rng.uniform(-0.6, 0.6, w.shape).astype(np.float32)
                * (1.0 if w.ndim == 1 else min(1.0, 2.5 / np.sqrt(w.shape[0])))
                for w in weights
            ]
            if type(layer).__name__ == "BatchNormalization":  # moving_variance is the last
                new[-1] = rng.uniform(0.3, 2.0, weights[-1].shape).astype(np.float32)
            layer.set_weights(new)
    return model


def inputs(arch: dict) -> tuple[np.ndarray, np.ndarray]:
    """(x as the IR takes it [N, T, D], x as Keras takes it)."""
    rng = np.random.default_rng(arch["seed"])
    if arch["front"] == "embedding":
        ids = rng.integers(0, arch["vocabulary"], (3, arch["timesteps"], 1))
        ids[0, -2:] = 0  # padding (masked with mask_zero)
        return ids.astype(np.float32), ids[..., 0].astype(np.int32)
    x = rng.standard_normal((3, arch["timesteps"], arch["input_size"])).astype(np.float32)
    if arch["front"] == "masking":  # padded tails and a hole, as real data has
        x[0, -2:] = 0.0
        x[1, 1] = 0.0
    return x, x


def real_steps(arch: dict, x: np.ndarray, t_out: int) -> np.ndarray:
    """[N, T_out] True where the output timestep comes from a real (unmasked) input step."""
    real = np.any(x != 0.0, axis=-1)  # Masking(0.0), or token id 0 with mask_zero
    if arch["tail"] == "crop":
        real = real[:, 1:-1]
    assert real.shape[1] == t_out
    return real


def test_every_backend_matches_keras_on_random_architectures(keras, tmp_path_factory):
    from support import backend_matches_or_refuses

    import lstmgen
    from lstmgen.errors import UnsupportedLayerError
    from lstmgen.reference import forward
    from lstmgen.targets import TARGETS
    from lstmgen.verify import error_metrics

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
        x, fed = inputs(arch)
        expected = model.predict(fed, verbose=0)
        if not np.all(np.isfinite(expected)):
            assert arch["tail"] == "global_avg" and arch["mask_zero"]  # Keras's 0 / 0
            return
        masked = arch["front"] == "masking" or (arch["front"] == "embedding" and arch["mask_zero"])
        try:
            if arch["file"]:
                path = tmp_path_factory.mktemp("file") / f"model{arch['file']}"
                model.save(path)
                ir = lstmgen.load(path)
            else:
                ir = lstmgen.load(model)
        except UnsupportedLayerError as exc:  # where Keras's masks part from the IR's
            assert masked and "mask" in str(exc), exc
            return
        reference = forward(ir, x)
        if any("masked timesteps of the output" in note for note in ir.notes):
            # Keras's Bidirectional zeroes masked steps (the note says so): compare the
            # real steps with Keras, the masked ones with the reference
            real = real_steps(arch, x, expected.shape[1])
            expected = np.where(real[..., None], expected, reference)
        # the IR itself (its float64 reference) matches Keras, whatever the targets implement
        assert error_metrics(reference, expected)[1].max() <= TOLERANCE
        cases = {"fuzz": (ir, x, expected)}
        for target in sorted(TARGETS):
            backend_matches_or_refuses(target, cases, tmp_path_factory.mktemp(target), TOLERANCE)

    check()
