"""Hostile `.tflite` files: one error line, exit code 2, nothing written -- never a
traceback, a hang, a huge allocation or a read outside the file.

Truncated and corrupted flatbuffers, offsets and lengths out of range, tensor indices out
of range, constant data whose size disagrees with the tensor's shape, quantization scales
that are zero or NaN. The flatbuffer reader is also fuzzed with atheris (coverage-guided,
in a subprocess): a few seconds by default, LSTMGEN_FUZZ_SECONDS=N for longer.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tflite_models as M
from support import ROOT, fuzzer_rss_limit, require_module

import lstmgen
from lstmgen.cli import main
from lstmgen.errors import LstmgenError

FUZZ_SECONDS = int(os.environ.get("LSTMGEN_FUZZ_SECONDS", "5"))


def valid_bytes() -> bytes:
    return M.lstm_graph(peephole=True)


def refused(path: Path, tmp_path: Path, capsys) -> str:
    """The CLI's single error line for `path` (generate into a folder that stays absent)."""
    out = tmp_path / "never"
    code = main(["generate", str(path), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("lstmgen: error: "), err
    assert not out.exists()
    return err[0]


def test_the_valid_file_loads():
    assert lstmgen.load(M.save(valid_bytes(), Path(os.environ.get("TMPDIR", "/tmp")), "ok"))


@pytest.mark.parametrize("length", [0, 3, 7, 8, 12, 40, 200, -300, -17, -1])
def test_truncated(length, tmp_path, capsys):
    data = valid_bytes()
    path = M.save(data[:length], tmp_path, "cut")
    line = refused(path, tmp_path, capsys)
    assert "cut.tflite" in line


def test_not_a_tflite_file(tmp_path, capsys):
    path = M.save(b"PK\x03\x04" + bytes(200), tmp_path, "zip")
    assert "not a TensorFlow Lite flatbuffer" in refused(path, tmp_path, capsys)


def test_offsets_out_of_range(tmp_path, capsys):
    data = bytearray(valid_bytes())
    data[0:4] = struct.pack("<I", 0x7FFFFFF0)  # the root table offset
    line = refused(M.save(bytes(data), tmp_path, "root"), tmp_path, capsys)
    assert "root offset" in line and "corrupt" in line
    data = bytearray(valid_bytes())
    data[4:8] = b"TFL3"
    for at in range(8, len(data) - 4, 4):  # every aligned word a huge length or offset
        mutated = bytearray(data)
        mutated[at : at + 4] = struct.pack("<I", 0x3FFFFFFF)
        try:
            lstmgen.load(M.save(bytes(mutated), tmp_path, "word"))
        except LstmgenError as exc:
            assert "\n" not in str(exc)


def test_corrupted_bytes_never_crash(tmp_path):
    """2000 seeded corruptions (random bytes set, runs of 0xFF, lengths doubled): every one
    loads or ends in an LstmgenError."""
    data = valid_bytes()
    rng = np.random.default_rng(0)
    outcomes = {"loaded": 0, "refused": 0}
    for trial in range(2000):
        mutated = bytearray(data)
        for _ in range(int(rng.integers(1, 6))):
            at = int(rng.integers(0, len(mutated)))
            if trial % 3 == 0:
                mutated[at : at + 4] = b"\xff\xff\xff\x7f"[: len(mutated) - at]
            else:
                mutated[at] = int(rng.integers(0, 256))
        path = tmp_path / "m.tflite"
        path.write_bytes(bytes(mutated))
        try:
            lstmgen.load(path)
            outcomes["loaded"] += 1
        except LstmgenError as exc:
            assert "\n" not in str(exc)
            outcomes["refused"] += 1
    assert outcomes["refused"] > 100 and sum(outcomes.values()) == 2000


def test_shape_disagrees_with_buffer(tmp_path, capsys):
    g = M.Graph()
    x = g.tensor((1, 4, 2), name="x")
    rng = np.random.default_rng(0)
    cell = M.lstm_cell_inputs(g, rng, 2, 3)
    g.tensors[cell[0]]["shape"] = [3, 5]  # 6 floats stored, 15 declared
    h, c = g.tensor((1, 3), variable=True), g.tensor((1, 3), variable=True)
    y = g.tensor((1, 4, 3), name="y")
    g.op("UNIDIRECTIONAL_SEQUENCE_LSTM", [x, *cell, h, c, -1, -1, -1, -1], [y], [(0, "Int8", 4)])
    g.inputs, g.outputs = [x], [y]
    line = refused(M.save(M.write_tflite(g), tmp_path, "shape"), tmp_path, capsys)
    assert "needs 60 bytes, its buffer holds 24" in line


def test_tensor_index_out_of_range(tmp_path, capsys):
    g = M.Graph()
    x = g.tensor((1, 4, 2), name="x")
    y = g.tensor((1, 4, 3), name="y")
    g.op("UNIDIRECTIONAL_SEQUENCE_LSTM", [x, 99] + [-1] * 22, [y], [(0, "Int8", 4)])
    g.inputs, g.outputs = [x], [y]
    line = refused(M.save(M.write_tflite(g), tmp_path, "index"), tmp_path, capsys)
    assert "tensor index 99 is out of range" in line


def test_unsupported_operator_named(tmp_path, capsys):
    g = M.Graph()
    x = g.tensor((1, 4, 2), name="x")
    y = g.tensor((1, 4, 2), name="y")
    g.op("ADD", [x, x], [y])
    g.inputs, g.outputs = [x], [y]
    line = refused(M.save(M.write_tflite(g), tmp_path, "add"), tmp_path, capsys)
    assert (
        "operator 0 (ADD, output 'y') is not supported; supported: UNIDIRECTIONAL_SEQUENCE_LSTM"
        in line
    )


@pytest.mark.parametrize("bad", [0.0, float("nan"), -1.0, float("inf")])
def test_quantization_scale_zero_or_nan(bad, tmp_path, capsys):
    require_module("tf_keras")
    require_module("tensorflow")
    path = M.suite_model("single").paths["int8"]
    loaded = lstmgen.extractors.open_model(path)
    data = bytearray(path.read_bytes())
    for q in (loaded.int8.input, loaded.int8.layers[0].hidden):
        pattern = struct.pack("<f", q.scale)
        assert data.count(pattern) >= 1
        data = bytearray(bytes(data).replace(pattern, struct.pack("<f", bad)))
    line = refused(M.save(bytes(data), tmp_path, "scale"), tmp_path, capsys)
    assert "scale" in line


def test_fuzz_the_reader(tmp_path):
    """Coverage-guided fuzzing of read_model + the graph walk, seeded with valid files."""
    require_module("atheris")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for k, data in enumerate(
        [
            valid_bytes(),
            M.lstm_graph(p=2),
            M.bidirectional_lstm_graph(),
            M.rnn_graph(),
            M.lstm_graph(last_step=False),
        ]
    ):
        (corpus / f"seed{k}").write_bytes(data)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tests" / "robustness" / "fuzz_tflite.py"),
            str(corpus),
            f"-max_total_time={FUZZ_SECONDS}",
            fuzzer_rss_limit(2048),
            "-timeout=10",
            f"-artifact_prefix={tmp_path}/",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=FUZZ_SECONDS + 120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Done" in result.stderr and "runs in" in result.stderr
