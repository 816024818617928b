"""The generated C under stress: sanitizers, valgrind, extreme inputs, reentrancy."""

from __future__ import annotations

import numpy as np
import pytest
from irmodels import branch_models
from support import SANITIZE, build_c_driver, extreme_inputs, require_tool, run_c_driver

from lstmgen.reference import forward

MODELS = branch_models()
T_LEN = 7


@pytest.mark.parametrize("key", sorted(MODELS))
def test_asan_ubsan_clean_on_extreme_inputs(key, tmp_path):
    clang = require_tool("clang")
    model = MODELS[key]
    exe = build_c_driver(tmp_path, model, [clang, *SANITIZE])
    x = extreme_inputs(model.input_size, T_LEN)
    rows = run_c_driver(exe, x, tmp_path)
    assert len(rows) == 6 + (2 if model.streamable else 0)
    # finite, ordinary inputs give the reference result; extremes never crash
    ref = forward(model, x[:1]).reshape(-1)
    assert np.allclose(rows[0], ref, atol=1e-5)
    # huge and infinite inputs saturate bounded gates: the output stays finite or NaN,
    # never garbage beyond the float range
    for row in rows[1:6]:
        assert all(np.isnan(v) or abs(v) <= 3.5e38 for v in row)


def test_documented_behaviour_of_nan_and_huge_inputs(tmp_path):
    model = MODELS["tiny"]  # sigmoid/tanh LSTM(1): bounded, so saturation is visible
    exe = build_c_driver(tmp_path, model, [require_tool("gcc"), "-std=c99", "-O2"])
    rows = run_c_driver(exe, extreme_inputs(1, T_LEN), tmp_path)
    assert all(np.isfinite(rows[1])) and abs(rows[1][0]) < 1.0  # 1e30: saturates, finite
    assert all(np.isfinite(rows[2]))  # denormals: ordinary
    assert np.isnan(rows[3][0])  # NaN in: NaN out
    assert all(np.isfinite(rows[5])) and abs(rows[5][0]) < 1.0  # -3.4e38: saturates


def test_two_interleaved_states_equal_separate_runs(tmp_path):
    model = MODELS["all_activations"]
    exe = build_c_driver(tmp_path, model, [require_tool("gcc"), "-std=c99", "-O2"])
    x = np.random.default_rng(4).standard_normal((6, T_LEN, model.input_size))
    rows = run_c_driver(exe, x.astype(np.float32), tmp_path)
    assert np.array_equal(rows[6], rows[0]) and np.array_equal(rows[7], rows[1])


def test_valgrind_clean(tmp_path):
    valgrind = require_tool("valgrind")
    model = MODELS["three_stages"]
    exe = build_c_driver(tmp_path, model, [require_tool("gcc"), "-std=c99", "-g", "-O1"])
    run_c_driver(
        exe,
        extreme_inputs(model.input_size, T_LEN),
        tmp_path,
        prefix=[valgrind, "-q", "--error-exitcode=9", "--leak-check=full"],
    )
