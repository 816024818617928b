"""Train the shipped example model: predict the next value of a noisy sine wave.

Runs in a few seconds on a CPU and writes examples/sine_lstm.keras:
Input(20, 1) -> LSTM(16) -> Dropout(0.1) -> Dense(1). Seeded, so reruns give a model of
the same shape and similar skill (TensorFlow training is not bit-reproducible).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

TIMESTEPS = 20


def make_data(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1))
    freq = rng.uniform(0.15, 0.35, size=(n, 1))
    t = np.arange(TIMESTEPS + 1)[None, :]
    wave = np.sin(phase + freq * t) + rng.normal(0, 0.05, size=(n, TIMESTEPS + 1))
    return wave[:, :TIMESTEPS, None].astype(np.float32), wave[:, TIMESTEPS:].astype(np.float32)


def main(out: Path) -> None:
    import keras

    keras.utils.set_random_seed(7)
    x, y = make_data(4000, np.random.default_rng(7))
    model = keras.Sequential(
        [
            keras.Input((TIMESTEPS, 1)),
            keras.layers.LSTM(16, name="lstm"),
            keras.layers.Dropout(0.1, name="dropout"),
            keras.layers.Dense(1, name="next_value"),
        ],
        name="sine_lstm",
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    history = model.fit(x, y, epochs=6, batch_size=64, verbose=0)
    print(f"final training MSE: {history.history['loss'][-1]:.4f}")
    model.save(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("sine_lstm.keras"))
