"""Masks where Keras and the IR part (lstmgen/extractors/keras/masks.py), against Keras's
own predict on padded inputs: a Bidirectional with return_sequences gives zeros at masked
steps in Keras, and Keras's Cropping1D drops the mask. Models where that cannot change a
result convert and match; the others are refused by name."""

from __future__ import annotations

import numpy as np
import pytest
from support import randomize_keras_weights

import lstmgen
from lstmgen.errors import UnsupportedLayerError
from lstmgen.reference import forward
from lstmgen.verify import error_metrics

TOLERANCE = 1e-5


def _padded(rng, n=4, t=7, d=2):
    x = rng.standard_normal((n, t, d)).astype(np.float32)
    x[0, -3:] = 0.0  # padding
    x[1, 2] = 0.0  # a hole
    return x


def _model(keras, *layers, t=7, d=2, seed=0):
    model = keras.Sequential([keras.Input((t, d)), keras.layers.Masking(0.0), *layers])
    randomize_keras_weights(model, np.random.default_rng(seed))
    return model


def test_masked_bidirectional_sequences_feeding_a_recurrent_layer_match(keras):
    L = keras.layers
    model = _model(keras, L.Bidirectional(L.LSTM(3, return_sequences=True)), L.GRU(2), L.Dense(2))
    x = _padded(np.random.default_rng(1))
    ir = lstmgen.load(model)
    assert error_metrics(forward(ir, x), model.predict(x, verbose=0))[1].max() <= TOLERANCE


def test_masked_bidirectional_sequence_output_matches_at_real_steps(keras):
    L = keras.layers
    model = _model(
        keras, L.Bidirectional(L.GRU(3, return_sequences=True)), L.TimeDistributed(L.Dense(2))
    )
    x = _padded(np.random.default_rng(2))
    ir = lstmgen.load(model)
    assert any("masked timesteps of the output" in note for note in ir.notes)
    real = np.any(x != 0.0, axis=-1)
    got, expected = forward(ir, x), model.predict(x, verbose=0)
    assert error_metrics(got[real], expected[real])[1].max() <= TOLERANCE
    assert np.abs(got[~real] - expected[~real]).max() > 1e-3  # where the note says


def test_max_pooling_over_masked_bidirectional_outputs_is_refused(keras):
    L = keras.layers
    model = _model(
        keras,
        L.Bidirectional(L.LSTM(3, return_sequences=True), name="bi"),
        L.GlobalMaxPooling1D(name="gmp"),
    )
    with pytest.raises(UnsupportedLayerError, match="'gmp'.*masked timesteps.*Bidirectional 'bi'"):
        lstmgen.load(model)


def test_cropping_drops_the_keras_mask(keras):
    L = keras.layers
    cropped_then_recurrent = _model(
        keras,
        L.LSTM(3, return_sequences=True),
        L.Cropping1D((1, 0), name="crop"),
        L.LSTM(2, name="after"),
    )
    with pytest.raises(UnsupportedLayerError, match="'after'.*drops the mask at Cropping1D 'crop'"):
        lstmgen.load(cropped_then_recurrent)
    # nothing after the crop uses the mask: the same in Keras and lstmgen
    cropped_then_dense = _model(
        keras, L.LSTM(3, return_sequences=True), L.Cropping1D((1, 2)), L.Dense(2), seed=3
    )
    x = _padded(np.random.default_rng(3))
    ir = lstmgen.load(cropped_then_dense)
    expected = cropped_then_dense.predict(x, verbose=0)
    assert error_metrics(forward(ir, x), expected)[1].max() <= TOLERANCE
