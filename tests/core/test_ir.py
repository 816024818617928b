"""The IR: validation messages, .npz save/load, literal exactness, naming."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from irmodels import branch_models

from lstmgen.errors import LstmgenError, ModelError
from lstmgen.ir import LSTM, Dense, Model
from lstmgen.ir_io import load_ir, save_ir
from lstmgen.literals import float_literal
from lstmgen.naming import unique_identifiers, validate_model_name
from lstmgen.reference import forward
from lstmgen.targets import c as c_backend


def test_npz_round_trip_is_exact(tmp_path):
    for key, model in branch_models().items():
        path = save_ir(model, tmp_path / f"{key}.npz")
        again = load_ir(path)
        assert [l.name for l in again.layers] == [l.name for l in model.layers]
        for a, b in zip(model.layers, again.layers):
            assert type(a) is type(b)
            for field, arr in a.arrays().items():
                other = b.arrays()[field]
                assert (arr is None) == (other is None)
                if arr is not None:
                    assert arr.dtype == np.float32 and np.array_equal(arr, other)
        x = np.random.default_rng(0).standard_normal((2, 4, model.input_size))
        assert np.array_equal(forward(model, x), forward(again, x))


def test_npz_metadata_is_plain_json(tmp_path):
    path = save_ir(branch_models()["tiny"], tmp_path / "m.npz")
    with np.load(path, allow_pickle=False) as archive:
        doc = json.loads(archive["__lstmgen__"].tobytes())
        assert doc["format"] == "lstmgen-ir" and doc["version"] == 1
        assert archive["layer0.input_weights"].shape == (4, 1)


def test_npz_errors(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"garbage")
    with pytest.raises(ModelError, match="bad.npz"):
        load_ir(bad)
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    with pytest.raises(ModelError, match="metadata"):
        load_ir(tmp_path / "plain.npz")


def _lstm(d=2, h=3, name="l", **kw):
    kw.setdefault("bias", np.zeros(4 * h, np.float32))
    return LSTM(name, np.zeros((4 * h, d), np.float32), np.zeros((4 * h, h), np.float32), **kw)


def test_validation_names_the_field():
    with pytest.raises(ModelError, match="'l'.*input size 2.*gives 5"):
        Model(5, [_lstm()]).validate()
    with pytest.raises(ModelError, match="'l'.*bias has shape"):
        Model(2, [_lstm(bias=np.zeros(5, np.float32))]).validate()
    nan = np.zeros((12, 2), np.float32)
    nan[0, 0] = np.nan
    with pytest.raises(ModelError, match="input_weights holds 1 NaN"):
        Model(2, [LSTM("l", nan, np.zeros((12, 3), np.float32), None)]).validate()
    with pytest.raises(ModelError, match="gate_activation 'hard_sigmoid'.*supported"):
        Model(2, [_lstm(gate_activation="hard_sigmoid")]).validate()
    with pytest.raises(ModelError, match="needs a sequence"):
        Model(2, [_lstm(), _lstm(d=3, name="m")]).validate()
    with pytest.raises(ModelError, match="unique"):
        Model(2, [_lstm(return_sequences=True), _lstm(d=3)]).validate()
    with pytest.raises(ModelError, match="no recurrent layer"):
        Model(2, [Dense("d", np.zeros((1, 2), np.float32), None)]).validate()


def test_float_literals_round_trip():
    rng = np.random.default_rng(1)
    values = np.concatenate(
        [
            rng.standard_normal(20000).astype(np.float32)
            * np.float32(10.0) ** rng.integers(-37, 37, 20000).astype(np.float32),
            np.array(
                [0.0, -0.0, 1.0, 0.1, 1e-45, 3.4028235e38, 1.1754944e-38, 16777217.0], np.float32
            ),
        ]
    )
    values = values[np.isfinite(values)]
    for v in values:
        text = float_literal(v)
        assert np.float32(float(text)) == v and np.float32(text) == v, text  # both paths
        assert re.fullmatch(r"-?\d+\.\d*(e-?\d+)?", text), text


def test_c_literals_are_the_ir_weights_bit_for_bit():
    model = branch_models()["all_activations"]
    source = c_backend.render(model, "net")["net.c"]
    arrays = dict(re.findall(r"static const float (\w+)\[\d+\] = \{([^}]*)\};", source))
    lstm = model.layers[0]
    text = arrays["net_l0_Wt"]  # the C backend stores input weights transposed, [D][4H]
    parsed = np.array([np.float32(t.strip().rstrip("f")) for t in text.split(",")], np.float32)
    assert parsed.tobytes() == np.ascontiguousarray(lstm.input_weights.T).tobytes()


def test_names_are_sanitised_and_unique():
    names = unique_identifiers(["lstm", "LSTM", "dense/1", "1st", "int", "ümlaut", "", "a" * 90])
    assert names == ["lstm", "lstm_2", "dense_1", "l1st", "int_", "umlaut", "layer", "a" * 40]
    for ok in ("net", "My_Model2"):
        assert validate_model_name(ok) == ok
    for bad in ("2net", "my-net", "for", "end", "None", "a" * 41, "", "ñ"):
        with pytest.raises(LstmgenError):
            validate_model_name(bad)


def test_optional_features_round_trip_and_are_gated(tmp_path):
    from lstmgen.targets import TARGETS, get_backend, render

    rng = np.random.default_rng(0)
    lstm = LSTM(
        "peepy",
        rng.random((12, 2), dtype=np.float32),
        rng.random((12, 3), dtype=np.float32),
        None,
        peephole=rng.random((3, 3), dtype=np.float32),
        clip=2.0,
        input_forget=True,
        initial_c=rng.random(3, dtype=np.float32),
    )
    model = Model(2, [lstm]).validate()
    assert set(model.features()) == {"peephole", "clip", "input_forget", "initial_state"}
    again = load_ir(save_ir(model, tmp_path / "m.npz"))
    x = rng.random((2, 4, 2))
    assert np.array_equal(forward(model, x), forward(again, x))
    for target in TARGETS:
        supported = getattr(get_backend(target), "FEATURES", frozenset())
        if not {"peephole", "clip", "input_forget", "initial_state"} <= supported:
            with pytest.raises(LstmgenError, match=f"target '{target}' does not implement"):
                render(target, model, "net")
