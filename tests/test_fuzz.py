"""Differential fuzzing: hypothesis draws random Keras architectures and every backend
must match Keras `model.predict` (max relative error 1e-5).

CI runs a bounded, derandomised set of examples (LSTMGEN_FUZZ_EXAMPLES, default 6).
For a long local run:  LSTMGEN_FUZZ_EXAMPLES=300 python -m pytest tests/test_fuzz.py
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from grid import CELL_ACTIVATIONS, GATE_ACTIVATIONS, HEAD_ACTIVATIONS, LSTMSpec, Spec, build_keras

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

EXAMPLES = int(os.environ.get("LSTMGEN_FUZZ_EXAMPLES", "6"))
TOLERANCE = 1e-5


@st.composite
def specs(draw) -> Spec:
    depth = draw(st.integers(1, 3))
    lstms = [LSTMSpec(units=draw(st.integers(1, 40)),
                      activation=draw(st.sampled_from(CELL_ACTIVATIONS)),
                      recurrent_activation=draw(st.sampled_from(GATE_ACTIVATIONS)),
                      use_bias=draw(st.booleans()),
                      return_sequences=k < depth - 1 or draw(st.booleans()),
                      go_backwards=draw(st.booleans()))
             for k in range(depth)]
    dense = draw(st.lists(st.tuples(st.integers(1, 12), st.sampled_from(HEAD_ACTIVATIONS)),
                          max_size=2))
    sequence_out = lstms[-1].return_sequences  # TimeDistributed needs a sequence
    return Spec(id="fuzz", input_size=draw(st.integers(1, 20)),
                timesteps=draw(st.integers(1, 30)), lstms=lstms, dense=dense,
                dropout=draw(st.booleans()),
                time_distributed=sequence_out and bool(dense) and draw(st.booleans()))


def test_every_backend_matches_keras_on_random_architectures(keras, tmp_path_factory):
    import lstmgen
    from lstmgen.backends import TARGETS, render
    from lstmgen.runners import get_runner
    from lstmgen.verify import error_metrics

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(spec=specs(), seed=st.integers(0, 2 ** 16))
    def check(spec: Spec, seed: int) -> None:
        keras.backend.clear_session()
        model = build_keras(spec, seed)
        x = np.random.default_rng(seed).standard_normal(
            (3, spec.timesteps, spec.input_size)).astype(np.float32)
        expected = model.predict(x, verbose=0)
        ir = lstmgen.load(model)
        for target in sorted(TARGETS):  # one Keras model, every backend
            files = render(target, ir, "net")
            got = get_runner(target).run(ir, files, "net", x, tmp_path_factory.mktemp(target))
            _, rel = error_metrics(got, expected)
            assert rel.max() <= TOLERANCE, (target, spec, float(rel.max()))

    check()
