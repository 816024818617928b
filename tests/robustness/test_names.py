"""Hostile layer names become valid, distinct identifiers in C, Python and MATLAB."""

from __future__ import annotations

import numpy as np
import pytest

from lstmgen.ir import LSTM, Activation, Dense, Model
from lstmgen.reference import forward
from lstmgen.targets import TARGETS, get_runner, render
from lstmgen.verify import error_metrics

HOSTILE = [
    "int",
    "class",
    "end",
    "for",
    "2nd layer",
    "dense/1",
    "Dense_1",
    "dense 1",
    "ünïcödé",
    "名前",
    "x" * 120,
    "",
    "__init__",
    "h",
    "z",
    "t",
    "NULL",
    "persistent",
    "a*/b",
    "/*c",
    "q??/",
    'tri"""ple',
    "back\\slash\\",
    "new\nline%",
    "'quote'",
]


def hostile_model() -> Model:
    rng = np.random.default_rng(0)
    layers = []
    width = 2
    for k, name in enumerate(HOSTILE):
        if k < 3:
            layers.append(
                LSTM(
                    name or "-",
                    rng.uniform(-1, 1, (8, width)).astype(np.float32),
                    rng.uniform(-1, 1, (8, 2)).astype(np.float32),
                    rng.uniform(-1, 1, 8).astype(np.float32),
                    return_sequences=k < 2,
                )
            )
            width = 2
        elif k % 2:
            layers.append(
                Dense(
                    name or "--",
                    rng.uniform(-1, 1, (2, width)).astype(np.float32),
                    None,
                    activation="tanh",
                )
            )
        else:
            layers.append(Activation(name or "---", width, "softsign"))
    # layer names must be unique in the IR; sanitising may still make them collide
    seen: dict[str, int] = {}
    for layer in layers:
        seen[layer.name] = seen.get(layer.name, 0) + 1
        if seen[layer.name] > 1:
            layer.name += "#" * seen[layer.name]
    return Model(2, layers, name="hostile").validate()


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_hostile_names_compile_import_parse_and_run(target, tmp_path):
    model = hostile_model()
    files = render(target, model, "net")
    x = np.random.default_rng(1).standard_normal((3, 5, 2)).astype(np.float32)
    got = get_runner(target).run(model, files, "net", x, tmp_path)
    assert error_metrics(got, forward(model, x))[1].max() <= 1e-5
    for text in files.values():  # ASCII only: MCU toolchains, MATLAB on Windows
        assert text.isascii(), [line for line in text.splitlines() if not line.isascii()][:3]
