"""TimeSlice (IR kind time_slice) against Keras Cropping1D's model.predict, and the IR's own
rules (negative indices, squeeze to one timestep); through the float64 reference and every
target that implements the kind (the others must refuse it by name)."""

from __future__ import annotations

import numpy as np
import pytest
from support import backend_matches_or_refuses, keras_cases, reference_matches

from lstmgen.errors import ModelError
from lstmgen.ir import LSTM, Model, TimeSlice
from lstmgen.targets import TARGETS


def _normal(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


@pytest.fixture(scope="module")
def cases(keras):
    L = keras.layers
    specs = {
        "crop_both": (
            (10, 3),
            [L.LSTM(4, return_sequences=True), L.Cropping1D((2, 3)), L.LSTM(2)],
            _normal,
        ),
        "crop_start_sequences": (
            (None, 2),
            [L.GRU(3, return_sequences=True), L.Cropping1D((4, 0)), L.Dense(2)],
            lambda rng, shape: rng.standard_normal((shape[0], 9, 2)).astype(np.float32),
        ),
    }
    return keras_cases(keras, specs, seed=35)


def test_reference_matches_keras(cases, tmp_path):
    reference_matches(cases, tmp_path)


def _lstm(rng, d, h, **kw):
    return LSTM(
        "l",
        rng.uniform(-0.5, 0.5, (4 * h, d)).astype(np.float32),
        rng.uniform(-0.5, 0.5, (4 * h, h)).astype(np.float32),
        None,
        return_sequences=True,
        **kw,
    )


def test_slices_follow_python_semantics():
    from lstmgen.reference import forward

    rng = np.random.default_rng(0)
    lstm = _lstm(rng, 2, 3)
    x = rng.standard_normal((2, 7, 2)).astype(np.float32)
    full = forward(Model(2, [lstm]), x)
    for start, stop, squeeze in [(-1, None, True), (-3, None, False), (2, 5, False), (3, 4, True)]:
        model = Model(2, [lstm, TimeSlice("s", 3, start, stop, squeeze)]).validate()
        got = forward(model, x)
        want = full[:, start:stop][:, 0] if squeeze else full[:, start:stop]
        assert np.array_equal(got, want)
        assert model.returns_sequences is not squeeze
    last = Model(2, [lstm, TimeSlice("s", 3, -1, None, True)])
    assert last.streamable  # the last step so far is what one step gives
    with pytest.raises(ModelError, match="squeeze needs a slice of one timestep"):
        Model(2, [lstm, TimeSlice("s", 3, 1, 4, True)]).validate()
    with pytest.raises(ModelError, match="keeps no timestep"):
        Model(2, [lstm, TimeSlice("s", 3, 4, 2)]).validate()
    assert Model(2, [lstm, TimeSlice("s", 3, 2, -3)]).min_timesteps() == 6


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_target_matches_keras_or_refuses(target, cases, tmp_path):
    backend_matches_or_refuses(target, cases, tmp_path)
