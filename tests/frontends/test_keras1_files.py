"""Keras 1 files the reader must take, beyond the third-party ones (tests/realworld): a GRU
and Bidirectional(GRU) with per-gate arrays, an LSTM saved with consume_less='gpu' (fused
arrays), TimeDistributed(Dense), Dense without bias, Dropout, SimpleRNN reading backwards,
Embedding(mask_zero), Theano-style weight names (no ':0'), a functional Keras 1 `Model`,
and an architecture JSON + weights-only pair.

Each file is written here from a tf_keras model's arrays, split into Keras 1's layout as
Keras 1 defined it (LSTM gates stored i, c, f, o; GRU z, r, h with the reset gate before
the recurrent product; `inner_activation` hard_sigmoid = 0.2x + 0.5); tf_keras's own
Keras 1 -> 2 weight converter confirms the split, and the tf_keras model is the oracle.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from support import require_module

import lstmgen
from lstmgen.errors import UnsupportedLayerError
from lstmgen.extractors import open_model
from lstmgen.reference import forward
from lstmgen.verify import error_metrics

TOLERANCE = 1e-5
STORED = {"LSTM": "icfo", "GRU": "zrh"}
FUSED = {"LSTM": "ifco", "GRU": "zrh"}


@pytest.fixture(scope="module")
def tf_keras():
    return require_module("tf_keras")


def per_gate(kind: str, weights: list, prefix: str) -> list[tuple[str, np.ndarray]]:
    """Keras 2 (kernel, recurrent_kernel, bias) of an LSTM/GRU as Keras 1's per-gate
    arrays, in the order Keras 1 stored them."""
    units = weights[1].shape[0]
    blocks = {}
    for key, array in zip("WUb", weights):
        for k, gate in enumerate(FUSED[kind]):
            blocks[f"{key}_{gate}"] = array[..., k * units : (k + 1) * units]
    return [(f"{prefix}{key}_{g}", blocks[f"{key}_{g}"]) for g in STORED[kind] for key in "WUb"]


def write_keras1(path, config, arrays: dict, version="1.2.2", suffix=":0", weights_only=False):
    """A Keras 1 HDF5 file: model_config (unless weights_only) and per-layer groups whose
    datasets carry Keras 1 names (with TensorFlow's ':0' or, Theano, without)."""
    layers = config["config"] if isinstance(config["config"], list) else config["config"]["layers"]
    names = [layer["config"]["name"] for layer in layers]
    with h5py.File(path, "w") as fh:
        if not weights_only:
            fh.attrs["keras_version"] = version
            fh.attrs["model_config"] = json.dumps(config)
            root = fh.create_group("model_weights")
        else:
            root = fh
        root.attrs["layer_names"] = [n.encode() for n in names]
        for name in names:
            group = root.create_group(name)
            entries = arrays.get(name, [])
            group.attrs["weight_names"] = [f"{n}{suffix}".encode() for n, _ in entries]
            for weight_name, array in entries:
                group.create_dataset(f"{weight_name}{suffix}", data=np.asarray(array, np.float32))


def k1(class_name, **config):
    return {"class_name": class_name, "config": config}


def _random(model, seed):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        values = layer.get_weights()
        if values:
            layer.set_weights([rng.uniform(-0.7, 0.7, w.shape).astype(np.float32) for w in values])


@pytest.fixture(scope="module")
def cases(tf_keras, tmp_path_factory) -> dict:
    """name -> (path or (json, weights), x, tf_keras predictions)."""
    L = tf_keras.layers
    folder = tmp_path_factory.mktemp("keras1")
    rng = np.random.default_rng(5)
    built, sources = {}, {}

    def add(name, model, config, arrays, x, **options):
        path = folder / f"{name}.h5"
        write_keras1(path, config, arrays, **options)
        sources[name] = (config, arrays)
        fed = x[..., 0].astype(np.int32) if model.inputs[0].shape.rank == 2 else x
        built[name] = (path, x, model.predict(fed, verbose=0))

    # GRU (per gate) -> TimeDistributed(Dense)
    model = tf_keras.Sequential(
        [
            tf_keras.Input((None, 3)),
            L.GRU(5, recurrent_activation="hard_sigmoid", reset_after=False, return_sequences=True),
            L.TimeDistributed(L.Dense(2, activation="tanh")),
        ]
    )
    _random(model, 1)
    gru, td = model.layers
    config = {
        "class_name": "Sequential",
        "config": [
            k1(
                "GRU",
                name="gru_1",
                output_dim=5,
                input_dim=3,
                batch_input_shape=[None, None, 3],
                inner_activation="hard_sigmoid",
                activation="tanh",
                return_sequences=True,
                consume_less="cpu",
                go_backwards=False,
                stateful=False,
                dropout_W=0.0,
                dropout_U=0.0,
            ),
            k1(
                "TimeDistributed",
                name="timedistributed_1",
                layer=k1("Dense", name="dense_1", output_dim=2, activation="tanh", bias=True),
            ),
        ],
    }
    arrays = {
        "gru_1": per_gate("GRU", gru.get_weights(), "gru_1_"),
        "timedistributed_1": [
            ("dense_1_W", td.get_weights()[0]),
            ("dense_1_b", td.get_weights()[1]),
        ],
    }
    add("gru_time_distributed", model, config, arrays, rng.standard_normal((4, 21, 3)))

    # LSTM with consume_less='gpu' (fused W, U, b) -> Dropout -> Dense without bias, softmax
    model = tf_keras.Sequential(
        [
            tf_keras.Input((None, 4)),
            L.LSTM(6, recurrent_activation="hard_sigmoid"),
            L.Dense(3, activation="softmax", use_bias=False),
        ]
    )
    _random(model, 2)
    lstm, dense = model.layers
    config = {
        "class_name": "Sequential",
        "config": [
            k1(
                "LSTM",
                name="lstm_1",
                output_dim=6,
                batch_input_shape=[None, None, 4],
                inner_activation="hard_sigmoid",
                activation="tanh",
                consume_less="gpu",
                return_sequences=False,
                W_regularizer=None,
            ),
            k1("Dropout", name="dropout_1", p=0.5),
            k1("Dense", name="dense_1", output_dim=3, activation="softmax", bias=False),
        ],
    }
    arrays = {
        "lstm_1": [
            ("lstm_1_W", lstm.get_weights()[0]),
            ("lstm_1_U", lstm.get_weights()[1]),
            ("lstm_1_b", lstm.get_weights()[2]),
        ],
        "dense_1": [("dense_1_W", dense.get_weights()[0])],
    }
    add("lstm_gpu_dropout_dense_no_bias", model, config, arrays, rng.standard_normal((4, 22, 4)))

    # SimpleRNN backwards -> Activation; Keras 1.0.7 with Theano names (no ':0')
    model = tf_keras.Sequential(
        [tf_keras.Input((None, 2)), L.SimpleRNN(4, go_backwards=True), L.Activation("sigmoid")]
    )
    _random(model, 3)
    rnn = model.layers[0]
    config = {
        "class_name": "Sequential",
        "config": [
            k1(
                "SimpleRNN",
                name="simplernn_1",
                output_dim=4,
                batch_input_shape=[None, None, 2],
                activation="tanh",
                go_backwards=True,
                consume_less="cpu",
            ),
            k1("Activation", name="activation_1", activation="sigmoid"),
        ],
    }
    names = ("simplernn_1_W", "simplernn_1_U", "simplernn_1_b")
    arrays = {"simplernn_1": list(zip(names, rnn.get_weights()))}
    add(
        "simple_rnn_backwards_theano",
        model,
        config,
        arrays,
        rng.standard_normal((4, 20, 2)),
        version="1.0.7",
        suffix="",
    )

    # Bidirectional(GRU) merge sum, per-gate forward_/backward_ arrays
    model = tf_keras.Sequential(
        [
            tf_keras.Input((None, 3)),
            L.Bidirectional(
                L.GRU(3, recurrent_activation="hard_sigmoid", reset_after=False), merge_mode="sum"
            ),
        ]
    )
    _random(model, 4)
    values = model.layers[0].get_weights()
    config = {
        "class_name": "Sequential",
        "config": [
            k1(
                "Bidirectional",
                name="bidirectional_1",
                batch_input_shape=[None, None, 3],
                merge_mode="sum",
                layer=k1(
                    "GRU",
                    name="gru_1",
                    output_dim=3,
                    inner_activation="hard_sigmoid",
                    activation="tanh",
                    consume_less="cpu",
                    return_sequences=False,
                ),
            ),
        ],
    }
    arrays = {
        "bidirectional_1": per_gate("GRU", values[:3], "forward_gru_1_")
        + per_gate("GRU", values[3:], "backward_gru_1_")
    }
    add("bidirectional_gru_sum", model, config, arrays, rng.standard_normal((4, 20, 3)))

    # Embedding(mask_zero) -> LSTM per gate, in a functional Keras 1 Model
    model = tf_keras.Sequential(
        [
            tf_keras.Input((None,), dtype="int32"),
            L.Embedding(7, 4, mask_zero=True),
            L.LSTM(3, recurrent_activation="hard_sigmoid"),
        ]
    )
    _random(model, 5)
    embedding, lstm = model.layers
    config = {
        "class_name": "Model",
        "config": {
            "name": "model_1",
            "layers": [
                {
                    "class_name": "InputLayer",
                    "name": "input_1",
                    "inbound_nodes": [],
                    "config": {
                        "name": "input_1",
                        "batch_input_shape": [None, None],
                        "input_dtype": "int32",
                        "sparse": False,
                    },
                },
                {
                    "class_name": "Embedding",
                    "name": "embedding_1",
                    "inbound_nodes": [[["input_1", 0, 0]]],
                    "config": {
                        "name": "embedding_1",
                        "input_dim": 7,
                        "output_dim": 4,
                        "mask_zero": True,
                        "init": "uniform",
                        "W_regularizer": None,
                    },
                },
                {
                    "class_name": "LSTM",
                    "name": "lstm_1",
                    "inbound_nodes": [[["embedding_1", 0, 0]]],
                    "config": {
                        "name": "lstm_1",
                        "output_dim": 3,
                        "inner_activation": "hard_sigmoid",
                        "activation": "tanh",
                        "consume_less": "mem",
                    },
                },
            ],
            "input_layers": [["input_1", 0, 0]],
            "output_layers": [["lstm_1", 0, 0]],
        },
    }
    arrays = {
        "input_1": [],
        "embedding_1": [("embedding_1_W", embedding.get_weights()[0])],
        "lstm_1": per_gate("LSTM", lstm.get_weights(), "lstm_1_"),
    }
    ids = rng.integers(0, 7, (4, 20, 1)).astype(np.float32)
    ids[0, :5] = 0  # padding, masked
    add("functional_embedding_mask_lstm", model, config, arrays, ids)

    # the GRU model again, as an architecture JSON + weights-only file pair
    path, x, expected = built["gru_time_distributed"]
    config, arrays = sources["gru_time_distributed"]
    architecture = folder / "gru_pair.json"
    architecture.write_text(json.dumps({**config, "keras_version": "1.2.2"}))
    weights = folder / "gru_pair_weights.h5"
    write_keras1(weights, config, arrays, weights_only=True)
    built["pair_gru"] = ((architecture, weights), x, expected)
    return built


def _load(entry):
    if isinstance(entry, tuple):
        return open_model(entry[0], weights=entry[1])
    return open_model(entry)


@pytest.mark.parametrize(
    "name",
    [
        "gru_time_distributed",
        "lstm_gpu_dropout_dense_no_bias",
        "simple_rnn_backwards_theano",
        "bidirectional_gru_sum",
        "functional_embedding_mask_lstm",
        "pair_gru",
    ],
)
def test_keras1_file_matches_tf_keras(cases, name):
    path, x, expected = cases[name]
    loaded = _load(path)
    assert loaded.predict is None  # neither Keras 3 nor tf_keras loads Keras 1 files
    assert "Keras 1." in loaded.ir.source
    assert error_metrics(forward(loaded.ir, x), expected)[1].max() <= TOLERANCE


def test_keras1_gates_and_reset_before(cases):
    ir = _load(cases["gru_time_distributed"][0]).ir
    assert ir.layers[0].gate_activation == "hard_sigmoid_0.2"
    assert ir.layers[0].reset_after is False


def test_the_split_is_what_tf_keras_converts_from(tf_keras):
    """tf_keras's own Keras 1 -> 2 converter turns the per-gate arrays written here back
    into the Keras 2 arrays they came from (the layout is Keras's, not this test's)."""
    from tf_keras.src.saving.legacy.hdf5_format import preprocess_weights_for_loading

    rng = np.random.default_rng(0)
    for layer in (tf_keras.layers.LSTM(4), tf_keras.layers.GRU(4, reset_after=False)):
        layer.build((None, None, 3))
        values = [rng.standard_normal(w.shape).astype(np.float32) for w in layer.get_weights()]
        split = [array for _, array in per_gate(type(layer).__name__, values, "x_")]
        converted = preprocess_weights_for_loading(layer, split, original_keras_version="1")
        assert all(np.array_equal(a, b) for a, b in zip(converted, values))


def test_keras1_layers_beyond_the_supported_are_refused_by_name(tmp_path):
    config = {
        "class_name": "Sequential",
        "config": [
            k1(
                "LSTM",
                name="lstm_1",
                output_dim=2,
                batch_input_shape=[None, 5, 1],
                inner_activation="hard_sigmoid",
                consume_less="cpu",
            ),
            k1("BatchNormalization", name="bn_1", mode=0, epsilon=0.001),
        ],
    }
    path = tmp_path / "bn.h5"
    write_keras1(path, config, {})
    with pytest.raises(
        UnsupportedLayerError, match="'bn_1' of type BatchNormalization in a Keras 1"
    ):
        lstmgen.load(path)
