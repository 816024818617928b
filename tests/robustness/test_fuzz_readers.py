"""Coverage-guided fuzzing of every reader (fuzz_readers.py: atheris on libFuzzer): .keras
and .h5 (Keras), .pt (PyTorch state_dicts), .onnx, .mat (MATLAB exports), .npz (lstmgen IR)
and .npy (verify --inputs). Its only allowed outcome is a model or lstmgen's own precise
error; another exception, a FrontEndFault, a crash, a hang or memory past the limit fails
the test and leaves the input in the artifact folder.

A few seconds per reader by default; longer with LSTMGEN_FUZZ_SECONDS=600 (per reader).
Seeds: valid files of each format (and the Keras attacks of test_resource_limits).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from irmodels import branch_models
from support import FIXTURES, ROOT, require_module

from lstmgen.ir_io import save_ir

SECONDS = int(os.environ.get("LSTMGEN_FUZZ_SECONDS", "5"))
FUZZER = Path(__file__).resolve().parent / "fuzz_readers.py"
ZIP_FORMATS = {"keras", "pt", "npz"}


def encode(reader: str, path: Path) -> list[bytes]:
    """Fuzzer inputs for a file: its bytes as they are (first byte even) and, for zip
    formats, its members (first byte odd: [name length, name, size u32le, data]...)."""
    inputs = [b"\x00" + path.read_bytes()]
    if reader in ZIP_FORMATS and zipfile.is_zipfile(path):
        parts = [b"\x01"]
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                name = info.filename.encode()[:255]
                data = archive.read(info)
                parts += [bytes([len(name)]), name, struct.pack("<I", len(data)), data]
        inputs.append(b"".join(parts))
    return inputs


def seed_files(reader: str, folder: Path) -> list[Path]:
    """Valid files of the reader's format, written into `folder`."""
    if reader == "keras":
        return [ROOT / "examples" / "sine_lstm.keras"]
    if reader == "h5":
        import h5py

        seeds = sorted((FIXTURES / "keras2").glob("*.h5"))
        edited = folder / "class_name_object.h5"  # a red-team file: class_name an object
        shutil.copyfile(FIXTURES / "keras2" / "plain_sigmoid.h5", edited)
        with h5py.File(edited, "r+") as fh:
            config = json.loads(fh.attrs["model_config"])
            config["config"]["layers"][1]["class_name"] = {"evil": 1}
            fh.attrs["model_config"] = json.dumps(config)
        return [*seeds, edited]
    if reader == "pt":
        torch = require_module("torch")
        torch.manual_seed(0)
        lstm, fc = torch.nn.LSTM(3, 4, batch_first=True), torch.nn.Linear(4, 2)
        state = {**lstm.state_dict(), **{f"fc.{k}": v for k, v in fc.state_dict().items()}}
        torch.save(state, folder / "lstm.pt")
        torch.save(
            torch.nn.GRU(2, 3, num_layers=2, bidirectional=True).state_dict(), folder / "gru.pt"
        )
        return [folder / "lstm.pt", folder / "gru.pt"]
    if reader == "onnx":
        onnx = require_module("onnx")
        from onnx import TensorProto, helper, numpy_helper

        rng = np.random.default_rng(0)
        inits = [
            numpy_helper.from_array(rng.standard_normal((1, 16, 3)).astype(np.float32), "W"),
            numpy_helper.from_array(rng.standard_normal((1, 16, 4)).astype(np.float32), "R"),
            numpy_helper.from_array(np.array([1, 4], np.int64), "shape"),
            numpy_helper.from_array(rng.standard_normal((4, 2)).astype(np.float32), "fc"),
        ]
        nodes = [
            helper.make_node("LSTM", ["X", "W", "R"], ["Y", "Y_h"], hidden_size=4),
            helper.make_node("Reshape", ["Y_h", "shape"], ["h"]),
            helper.make_node("MatMul", ["h", "fc"], ["out"]),
        ]
        graph = helper.make_graph(
            nodes,
            "g",
            [helper.make_tensor_value_info("X", TensorProto.FLOAT, [5, 1, 3])],
            [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 2])],
            inits,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        onnx.save(model, folder / "lstm.onnx")
        return [folder / "lstm.onnx"]
    if reader == "mat":
        scipy_io = require_module("scipy.io")
        rng = np.random.default_rng(0)
        layers = [
            {"Type": "sequenceInput", "Name": "in", "InputSize": 3.0},
            {
                "Type": "lstm",
                "Name": "lstm",
                "InputWeights": rng.standard_normal((16, 3)),
                "RecurrentWeights": rng.standard_normal((16, 4)),
                "Bias": rng.standard_normal((16, 1)),
                "OutputMode": "last",
            },
            {
                "Type": "fullyConnected",
                "Name": "fc",
                "Weights": rng.standard_normal((2, 4)),
                "Bias": rng.standard_normal((2, 1)),
            },
        ]
        cells = np.empty((1, len(layers)), dtype=object)
        for k, layer in enumerate(layers):
            cells[0, k] = layer
        for compressed in (False, True):
            name = folder / f"net_{compressed}.mat"
            scipy_io.savemat(str(name), {"layers": cells}, do_compression=compressed)
        return sorted(folder.glob("net_*.mat"))
    if reader == "npz":
        return [save_ir(model, folder / f"{key}.npz") for key, model in branch_models().items()]
    if reader == "npy":
        rng = np.random.default_rng(0)
        for dtype in ("float32", "float64", "int16"):
            np.save(folder / f"{dtype}.npy", rng.standard_normal((2, 4, 3)).astype(dtype))
        return sorted(folder.glob("*.npy"))
    raise AssertionError(reader)


@pytest.mark.parametrize(
    "reader",
    [
        "keras",
        "h5",
        "pt",
        "onnx",
        "mat",
        "npz",
        "npy",
    ],
)
def test_reader_survives_the_fuzzer(reader, tmp_path):
    require_module("atheris")
    corpus, artifacts, seeds = tmp_path / "corpus", tmp_path / "artifacts", tmp_path / "seeds"
    for folder in (corpus, artifacts, seeds):
        folder.mkdir()
    for k, path in enumerate(seed_files(reader, seeds)):
        for j, data in enumerate(encode(reader, path)):
            (corpus / f"seed_{k}_{j}").write_bytes(data)
    result = subprocess.run(
        [
            sys.executable,
            str(FUZZER),
            reader,
            str(corpus),
            f"-max_total_time={SECONDS}",
            "-timeout=60",
            "-rss_limit_mb=3072",
            "-max_len=65536",
            "-report_slow_units=60",
            f"-artifact_prefix={artifacts}/",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=SECONDS + 600,
    )
    # crash-/timeout-/oom-/leak- files are findings; slow-unit- ones only report slow inputs
    findings = sorted(p.name for p in artifacts.iterdir() if not p.name.startswith("slow-unit"))
    summary = [line for line in result.stderr.splitlines() if line.startswith(("#", "Done"))]
    print(reader, summary[-1:] if summary else result.stderr[-500:])
    assert result.returncode == 0 and not findings, (findings, result.stderr[-3000:])
    assert "Done" in result.stderr  # libFuzzer's summary: it did run
