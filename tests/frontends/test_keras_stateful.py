"""Stateful Keras models: Keras carries the state from one predict call to the next. The
generated predict() starts every call from zero (Keras after reset_states()); the streaming
step() carries the state across calls exactly as Keras does across predict calls."""

from __future__ import annotations

import numpy as np

import lstmgen
from lstmgen.targets import render
from lstmgen.targets.c import runner as c_runner
from lstmgen.verify import error_metrics


def test_stateful_predict_and_streaming(keras, tmp_path):
    L = keras.layers
    model = keras.Sequential(
        [
            keras.Input((5, 3), batch_size=1),
            L.LSTM(6, stateful=True, return_sequences=True),
            L.LSTM(4, stateful=True),
            L.Dense(2),
        ]
    )
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if layer.get_weights():
            layer.set_weights(
                [rng.uniform(-0.6, 0.6, w.shape).astype(np.float32) for w in layer.get_weights()]
            )
    chunks = rng.standard_normal((3, 5, 3)).astype(np.float32)
    keras_carried = [model.predict(chunk[None], verbose=0)[0] for chunk in chunks]
    for layer in model.layers:
        if getattr(layer, "stateful", False):
            layer.reset_states()
    loaded = lstmgen.extractors.open_model(model)
    assert any("stateful" in note for note in loaded.ir.notes)
    files = render("c", loaded.ir, "net")
    # predict(): every call from zero, like Keras after reset_states()
    fresh = c_runner.run(loaded.ir, files, "net", chunks, tmp_path)
    assert error_metrics(fresh, loaded.predict(chunks))[1].max() <= 1e-5
    assert error_metrics(fresh[0], keras_carried[0])[1].max() <= 1e-5
    assert np.abs(fresh[1] - keras_carried[1]).max() > 1e-4  # Keras carried the state
    # step(): one stream over all chunks gives what Keras gave call after call
    stream = c_runner.run_steps(loaded.ir, files, "net", chunks.reshape(1, 15, 3), tmp_path)
    for k in range(3):
        assert error_metrics(stream[0, 5 * k + 4], keras_carried[k])[1].max() <= 1e-5
