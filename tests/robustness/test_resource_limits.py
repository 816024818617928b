"""Tiny hostile files and requests that claim huge memory or CPU (issue 19): each is run
through the CLI in its own process under RLIMIT_AS = 3 GiB and a deadline, and must end
with exit code 2, exactly one line `lstmgen: error: ...` naming what is over which limit,
and nothing written -- refused from what the file declares, before anything is allocated
or inflated (`lstmgen.limits`). The files are crafted here: stride-0 PyTorch views,
`weight_ih_l999999`, zip and `.mat` compression bombs (deflate streams of gigabytes of
zeros written without compressing them), `.npy` headers that lie, ONNX constants that
fold into gigabytes, MATLAB cells of 10^10 elements.

LSTMGEN_ATTACK_REPORT=FILE writes the table of outcomes (exit code, line, peak memory,
time) for the issue's closing note.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import struct
import warnings
import zipfile
import zlib

import numpy as np
import pytest
from irmodels import branch_models
from support import FIXTURES, ROOT, assert_one_error_line, require_module, run_cli_contained

from lstmgen.cli import main
from lstmgen.ir_io import META_KEY, save_ir

MEMORY = 3 * 2**30
BLOCK = 16 * 2**20
OVER = "over the limit of"


# ---- crafting: zip members and deflate streams -------------------------------------------
@functools.cache
def deflated_zeros(size: int) -> bytes:
    """A raw deflate stream of `size` zero bytes, ending with a final block, made of one
    compressed 16 MiB block repeated (a full flush makes the blocks independent): gigabytes
    of zeros without compressing gigabytes."""
    full, rest = divmod(size, BLOCK)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(bytes(BLOCK)) + compressor.flush(zlib.Z_FULL_FLUSH)
    tail = zlib.compressobj(9, zlib.DEFLATED, -15)
    end = (tail.compress(bytes(rest)) + tail.flush(zlib.Z_FULL_FLUSH)) if rest else b""
    return block * full + end + b"\x03\x00"  # \x03\x00: an empty final block


def crc32_zeros(crc: int, count: int) -> int:
    """zlib.crc32(data + bytes(count)) from crc = zlib.crc32(data), in microseconds: the
    CRC register after a zero byte is a linear map (zlib's crc32_combine), squared."""

    def times(matrix: list[int], vector: int) -> int:
        total, row = 0, 0
        while vector:
            total ^= matrix[row] if vector & 1 else 0
            vector, row = vector >> 1, row + 1
        return total

    register = ~crc & 0xFFFFFFFF
    operator = [0xEDB88320] + [1 << n for n in range(31)]  # one zero bit
    for _ in range(3):
        operator = [times(operator, row) for row in operator]  # 2, 4, 8 bits
    while count:
        if count & 1:
            register = times(operator, register)
        count >>= 1
        operator = [times(operator, row) for row in operator]
    return ~register & 0xFFFFFFFF


def adler32_zeros(adler: int, count: int) -> int:
    """zlib.adler32(data + bytes(count)) from adler = zlib.adler32(data)."""
    a, b = adler & 0xFFFF, adler >> 16
    return ((b + count * a) % 65521) << 16 | a


def stored(name: str, data: bytes) -> tuple:
    return name, data, zlib.crc32(data), len(data), 0


def deflated(name: str, prefix: bytes, zeros: int) -> tuple:
    """A deflated member holding `prefix` then `zeros` zero bytes (a valid CRC)."""
    head = zlib.compressobj(9, zlib.DEFLATED, -15)
    start = head.compress(prefix) + head.flush(zlib.Z_FULL_FLUSH)
    crc = crc32_zeros(zlib.crc32(prefix), zeros)
    return name, start + deflated_zeros(zeros), crc, len(prefix) + zeros, 8


def write_zip(path, members: list[tuple]) -> None:
    """A zip archive of (name, data as stored, crc, size, method 0 stored / 8 deflate)."""
    body, central = b"", b""
    for name, data, crc, size, method in members:
        raw = name.encode()
        fields = (20, 0, method, 0, 0x21, crc, len(data), size, len(raw))
        local = struct.pack("<IHHHHHIIIHH", 0x04034B50, *fields, 0)
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII", 0x02014B50, 20, *fields, 0, 0, 0, 0, 0, len(body)
        )
        central += raw
        body += local + raw + data
    count = len(members)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, len(central), len(body), 0)
    path.write_bytes(body + central + end)


def npy_header(shape: tuple, dtype: str = "<f4") -> bytes:
    text = f"{{'descr': '{dtype}', 'fortran_order': False, 'shape': {shape}, }}".encode()
    text += b" " * ((64 - (len(text) + 11) % 64) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text


# ---- crafting: MAT v5 -----------------------------------------------------------------------
def mat_element(kind: int, data: bytes) -> bytes:
    return struct.pack("<II", kind, len(data)) + data + b"\0" * ((8 - len(data) % 8) % 8)


def mat_array(mclass: int, dims: tuple, body: bytes = b"", name: bytes = b"") -> bytes:
    header = mat_element(6, struct.pack("<II", mclass, 0))
    header += mat_element(5, struct.pack(f"<{len(dims)}i", *dims)) + mat_element(1, name)
    return header + body


def mat_text(text: str) -> bytes:
    chars = np.frombuffer(text.encode("utf-16-le"), np.uint16).tobytes()
    return mat_element(14, mat_array(4, (1, len(text)), mat_element(4, chars)))


def mat_number(value: float) -> bytes:
    return mat_element(14, mat_array(6, (1, 1), mat_element(9, struct.pack("<d", value))))


def mat_struct(fields: dict, mclass: int = 2, classname: bytes = b"") -> bytes:
    body = mat_element(1, classname) if mclass == 3 else b""
    body += mat_element(5, struct.pack("<i", 32))
    body += mat_element(1, b"".join(n.encode().ljust(32, b"\0") for n in fields))
    return mat_element(14, mat_array(mclass, (1, 1), body + b"".join(fields.values())))


def mat_function_handle() -> bytes:
    inner = mat_struct({"function_handle": mat_struct({"function": mat_text("sin")})})
    return mat_element(14, mat_array(16, (1, 1), inner))


MAT_HEADER = b"MATLAB 5.0 MAT-file, lstmgen tests".ljust(116) + bytes(8) + b"\x00\x01IM"


def mat_layers(*records: bytes, dims: tuple | None = None) -> bytes:
    """A MAT v5 file of the cell array `layers` holding `records` (miMATRIX elements)."""
    cells = mat_array(1, dims or (1, len(records)), b"".join(records), b"layers")
    return MAT_HEADER + mat_element(14, cells)


def mat_input_layer(**fields: bytes) -> bytes:
    record = {"Type": mat_text("sequenceInput"), "InputSize": mat_number(3)}
    return mat_struct({**record, **fields})


def mat_compressed_bomb(zeros: int) -> bytes:
    """One compressed variable: a 1 x 1000 double array whose data element holds `zeros`
    zero bytes (scipy would inflate them all)."""
    header = mat_element(6, struct.pack("<II", 6, 0))
    header += mat_element(5, struct.pack("<2i", 1, 1000)) + mat_element(1, b"x")
    prefix = struct.pack("<II", 14, len(header) + 8 + zeros) + header
    prefix += struct.pack("<II", 9, zeros)
    start = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = start.compress(prefix) + start.flush(zlib.Z_FULL_FLUSH)
    adler = adler32_zeros(zlib.adler32(prefix), zeros)
    data = b"\x78\xda" + first + deflated_zeros(zeros) + struct.pack(">I", adler)
    return MAT_HEADER + struct.pack("<II", 15, len(data)) + data


# ---- the attacks ------------------------------------------------------------------------
def torch_attacks(tmp) -> dict:
    """name -> (argv, texts the error line must hold)."""
    torch = require_module("torch")
    torch.manual_seed(0)
    state = dict(torch.nn.LSTM(3, 4, batch_first=True).state_dict())
    cases = {}

    def save(name, **changes):
        torch.save({**state, **changes}, tmp / f"{name}.pt")
        return tmp / f"{name}.pt"

    expanded = torch.zeros(1).expand(80000, 20000)  # 1.6e9 values over one float
    path = save("stride0", **{"fc.weight": expanded, "fc.bias": torch.zeros(1).expand(80000)})
    cases["pt_stride0_views"] = (path, ["'fc.weight'", "1,600,000,000 values", OVER])
    path = save("stride0_lstm", weight_ih_l0=torch.zeros(1).expand(16, 200_000_000))
    cases["pt_stride0_recurrent"] = (path, ["'weight_ih_l0'", "3,200,000,000 values", OVER])
    path = save("deep", weight_ih_l999999=state["weight_ih_l0"])
    cases["pt_num_layers_1000000"] = (path, ["1,000,000 layers", OVER])
    path = save("gap", weight_ih_l5=state["weight_ih_l0"])
    cases["pt_layer_gap"] = (path, ["has no 'weight_ih_l1'"])
    path = save("one_dim", weight_ih_l0=torch.zeros(16))
    cases["pt_1d_weight"] = (path, ["'weight_ih_l0' has shape [16]", "matrices"])
    with warnings.catch_warnings():  # quantized tensors are deprecated in torch
        warnings.simplefilter("ignore")
        quantized = torch.quantize_per_tensor(state["weight_ih_l0"], 0.1, 0, torch.qint8)
    path = save("quantized", weight_ih_l0=quantized)
    cases["pt_quantized_tensor"] = (path, ["'weight_ih_l0'", "quantized tensor (torch.qint8)"])
    path = save("linear_3d", **{"fc.weight": torch.zeros(2, 4, 1), "fc.bias": torch.zeros(2)})
    cases["pt_head_3d_weight"] = (path, ["head item 'fc'", "[2, 4, 1]"], "--head", "fc")
    # a storage deflated inside torch's zip: 40 MB of zeros in 40 KB
    big = tmp / "big.pt"
    torch.save({**state, "fc.weight": torch.zeros(10_000_000, 1)}, big)
    members = []
    with zipfile.ZipFile(big) as archive:
        for info in archive.infolist():
            data = archive.read(info)
            if info.file_size >= 40_000_000:
                members.append(deflated(info.filename, b"", info.file_size))
            else:
                members.append(stored(info.filename, data))
    big.unlink()
    write_zip(tmp / "deflated.pt", members)
    cases["pt_deflated_storage"] = (tmp / "deflated.pt", ["compression", OVER])
    return {
        name: (["generate", path, "--out", tmp / f"out_{name}", *extra], texts)
        for name, (path, texts, *extra) in cases.items()
    }


def light_attacks(tmp) -> dict:
    """IR .npz, ONNX, MATLAB and verify attacks (no torch, no TensorFlow)."""
    onnx = require_module("onnx")
    from onnx import TensorProto, helper, numpy_helper

    cases = {}
    # IR .npz: np.savez_compressed of a 4 x 200,000,000 zero array (3.1 MB), and its kin
    header = npy_header((4, 200_000_000))
    write_zip(tmp / "huge.npz", [deflated("layer0.input_weights.npy", header, 3_200_000_000)])
    cases["npz_compressed_3GB"] = (tmp / "huge.npz", ["'layer0.input_weights.npy'", OVER])
    header = npy_header((5000, 4000))
    write_zip(tmp / "ratio.npz", [deflated("layer0.input_weights.npy", header, 80_000_000)])
    cases["npz_compression_ratio"] = (tmp / "ratio.npz", ["compression", OVER])
    liar = npy_header((400_000_000, 4)) + bytes(16)
    write_zip(tmp / "liar.npz", [stored("layer0.input_weights.npy", liar)])
    cases["npz_header_claims_1.6e9"] = (tmp / "liar.npz", ["1,600,000,000 values", OVER])
    short = npy_header((1000, 4)) + bytes(16)
    write_zip(tmp / "short.npz", [stored("layer0.input_weights.npy", short)])
    cases["npz_header_longer_than_data"] = (tmp / "short.npz", ["declares 16,000 bytes"])
    good = save_ir(branch_models()["tiny"], tmp / "tiny.npz")
    with zipfile.ZipFile(good) as archive:
        members = [stored(i.filename, archive.read(i)) for i in archive.infolist()]
    deep = ("[" * 100_000 + "]" * 100_000).encode()
    meta = npy_header((len(deep),), "|u1") + deep
    write_zip(
        tmp / "deep.npz",
        [m for m in members if not m[0].startswith(META_KEY)] + [stored(f"{META_KEY}.npy", meta)],
    )
    cases["npz_metadata_nested_100000"] = (tmp / "deep.npz", ["nested too deeply"])

    # ONNX: constants that fold into 10^10 values, a sparse constant of 10^10
    def onnx_model(name, nodes, initializers):
        rng = np.random.default_rng(0)
        weights = [
            numpy_helper.from_array(rng.standard_normal((1, 16, 3)).astype(np.float32), "W"),
            numpy_helper.from_array(rng.standard_normal((1, 16, 4)).astype(np.float32), "R"),
            numpy_helper.from_array(np.array([0], np.int64), "axes"),
        ]
        graph = helper.make_graph(
            [
                helper.make_node("LSTM", ["X", "W", "R"], ["Y", "Y_h"], hidden_size=4),
                helper.make_node("Squeeze", ["Y_h", "axes"], ["h"]),
                *nodes,
                helper.make_node("Add", ["h", "c"], ["out"]),
            ],
            "g",
            [helper.make_tensor_value_info("X", TensorProto.FLOAT, [5, 1, 3])],
            [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4])],
            weights + initializers,
        )
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp / name)
        return tmp / name

    shape = numpy_helper.from_array(np.array([100000, 100000], np.int64), "s")
    path = onnx_model("cos.onnx", [helper.make_node("ConstantOfShape", ["s"], ["c"])], [shape])
    cases["onnx_fold_ConstantOfShape"] = (path, ["ConstantOfShape", "10,000,000,000 values", OVER])
    column = numpy_helper.from_array(np.ones((100000, 1), np.float32), "a")
    row = numpy_helper.from_array(np.ones((1, 100000), np.float32), "b")
    path = onnx_model("mul.onnx", [helper.make_node("Mul", ["a", "b"], ["c"])], [column, row])
    cases["onnx_fold_broadcast_Mul"] = (path, ["(Mul", "10,000,000,000 values", OVER])
    limits_ = [
        numpy_helper.from_array(np.array(v, np.float32), n)
        for n, v in [("r0", 0), ("r1", 1e10), ("r2", 1)]
    ]
    path = onnx_model("range.onnx", [helper.make_node("Range", ["r0", "r1", "r2"], ["c"])], limits_)
    cases["onnx_fold_Range"] = (path, ["(Range", OVER])
    sparse = helper.make_sparse_tensor(
        numpy_helper.from_array(np.ones(1, np.float32), "v"),
        numpy_helper.from_array(np.zeros(1, np.int64), "i"),
        [100000, 100000],
    )
    path = onnx_model(
        "sparse.onnx", [helper.make_node("Constant", [], ["c"], sparse_value=sparse)], []
    )
    cases["onnx_sparse_constant"] = (path, ["sparse_value", "10,000,000,000 values", OVER])

    # MATLAB: function handles and objects in fields, a cell of 10^10, a compressed bomb
    (tmp / "fh.mat").write_bytes(mat_layers(mat_struct({"Type": mat_function_handle()})))
    cases["mat_function_handle_Type"] = (tmp / "fh.mat", ["Type holds a function handle"])
    record = mat_input_layer(InputSize=mat_function_handle())
    (tmp / "fh2.mat").write_bytes(mat_layers(record))
    cases["mat_function_handle_field"] = (tmp / "fh2.mat", ["InputSize", "a function handle"])
    record = mat_input_layer(InputSize=mat_struct({"a": mat_number(1)}, 3, b"evil"))
    (tmp / "object.mat").write_bytes(mat_layers(record))
    cases["mat_object_field"] = (tmp / "object.mat", ["InputSize", "MATLAB object of class 'evil'"])
    (tmp / "cells.mat").write_bytes(mat_layers(dims=(100000, 100000)))
    cases["mat_cell_of_1e10"] = (tmp / "cells.mat", ["10,000,000,000 values", OVER])
    (tmp / "bomb.mat").write_bytes(mat_compressed_bomb(2_000_000_000))
    cases["mat_compressed_2GB"] = (tmp / "bomb.mat", ["compression", OVER])

    found = {
        name: (["generate", path, "--out", tmp / f"out_{name}"], texts)
        for name, (path, texts) in cases.items()
    }
    # verify: run sizes and --inputs files
    verify = ["verify", good, "--target", "python"]
    found["verify_timesteps_1e9"] = (verify + ["--timesteps", "1000000000"], ["--timesteps", OVER])
    found["verify_sequences_1e9"] = (verify + ["--sequences", "1000000000"], ["--sequences", OVER])
    x = np.zeros((2, 3, 1), np.float32)
    inputs = {
        "string": (np.array([[["a"]]]), "text"),
        "complex64": (x.astype(np.complex64), "complex numbers"),
        "structured": (np.zeros((2, 3, 1), dtype=[("a", "<f4")]), "structured dtype"),
        "object": (np.array([[[1]]], dtype=object), "Python objects"),
    }
    for name, (array, text) in inputs.items():
        np.save(tmp / f"{name}.npy", array, allow_pickle=True)
        found[f"verify_inputs_{name}"] = (verify + ["--inputs", tmp / f"{name}.npy"], [text])
    (tmp / "claims.npy").write_bytes(npy_header((1000, 1000, 1)) + bytes(64))
    found["verify_inputs_header_claims_more"] = (
        verify + ["--inputs", tmp / "claims.npy"],
        ["declares 4,000,000 bytes of data but 64 follow"],
    )
    (tmp / "huge.npy").write_bytes(npy_header((100000, 100000, 1)) + bytes(64))
    found["verify_inputs_header_claims_1e10"] = (
        verify + ["--inputs", tmp / "huge.npy"],
        ["10,000,000,000 input values", OVER],
    )
    return found


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("attacks")
    results = {}
    groups = [
        (torch_attacks(tmp), ["torch", "lstmgen.extractors.torch"]),
        (light_attacks(tmp), ["onnx", "scipy.io", "lstmgen.extractors.onnx"]),
    ]
    for attacks, preload in groups:
        ran = run_cli_contained({n: argv for n, (argv, _) in attacks.items()}, tmp, preload, MEMORY)
        for name, (argv, texts) in attacks.items():
            results[name] = (ran[name], texts, argv)
    report(results)
    return results


ATTACKS = [
    "pt_stride0_views",
    "pt_stride0_recurrent",
    "pt_num_layers_1000000",
    "pt_layer_gap",
    "pt_1d_weight",
    "pt_quantized_tensor",
    "pt_head_3d_weight",
    "pt_deflated_storage",
    "npz_compressed_3GB",
    "npz_compression_ratio",
    "npz_header_claims_1.6e9",
    "npz_header_longer_than_data",
    "npz_metadata_nested_100000",
    "onnx_fold_ConstantOfShape",
    "onnx_fold_broadcast_Mul",
    "onnx_fold_Range",
    "onnx_sparse_constant",
    "mat_function_handle_Type",
    "mat_function_handle_field",
    "mat_object_field",
    "mat_cell_of_1e10",
    "mat_compressed_2GB",
    "verify_timesteps_1e9",
    "verify_sequences_1e9",
    "verify_inputs_string",
    "verify_inputs_complex64",
    "verify_inputs_structured",
    "verify_inputs_object",
    "verify_inputs_header_claims_more",
    "verify_inputs_header_claims_1e10",
]


@pytest.mark.parametrize("name", ATTACKS)
def test_attack_is_one_error_line_in_bounded_memory(outcomes, name):
    outcome, texts, argv = outcomes[name]
    line = assert_one_error_line(outcome, *texts)
    assert "internal error" not in line and "out of memory" not in line, line
    if "--out" in argv:
        assert not os.path.exists(argv[argv.index("--out") + 1]), "something was written"
    # refused from declarations: the process stays near the size of its imports
    assert outcome["peak_mb"] < 1024, outcome


def report(results: dict) -> None:
    """The table of outcomes, when LSTMGEN_ATTACK_REPORT names a file."""
    target = os.environ.get("LSTMGEN_ATTACK_REPORT")
    if not target:
        return
    rows = {
        name: {k: outcome[k] for k in ("exit", "seconds", "peak_mb", "timed_out")}
        | {"stderr": outcome["stderr"].strip()}
        for name, (outcome, _, _) in results.items()
    }
    with open(target, "a") as fh:
        fh.write(json.dumps(rows, indent=1) + "\n")


# ---- Keras files --------------------------------------------------------------------------
# Keras files are read by lstmgen's own zip/HDF5 reader: the driver preloads nothing.
NOT_MEMORY = ("OOM", "out of memory", "allocate", "internal error")


def keras_attacks(tmp) -> dict:
    """name -> (argv, texts the error line must hold); legacy .h5 edits of a Keras 2 file
    (h5py only) and .keras archives of the shipped example."""
    import h5py

    cases = {}

    def legacy(name, edit):
        path = tmp / f"{name}.h5"
        shutil.copyfile(FIXTURES / "keras2" / "plain_sigmoid.h5", path)
        with h5py.File(path, "r+") as fh:
            edit(fh)
        return path

    config = json.loads(h5py.File(FIXTURES / "keras2" / "plain_sigmoid.h5").attrs["model_config"])
    config["config"]["layers"][1]["class_name"] = {"evil": 1}
    nested = "[" * 100_000 + "]" * 100_000
    cases["h5_model_config_not_json"] = (
        legacy("not_json", lambda fh: fh.attrs.__setitem__("model_config", "{not json")),
        ["JSON"],
    )
    cases["h5_model_config_nested_100000"] = (
        legacy("nested", lambda fh: fh.attrs.__setitem__("model_config", nested)),
        ["nested too deeply"],
    )
    cases["h5_class_name_object"] = (
        legacy("name_object", lambda fh: fh.attrs.__setitem__("model_config", json.dumps(config))),
        ["class_name"],
    )
    cases["h5_keras_version_evil"] = (
        legacy("version", lambda fh: fh.attrs.__setitem__("keras_version", "evil")),
        [],
    )
    example = ROOT / "examples" / "sine_lstm.keras"
    with zipfile.ZipFile(example) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    for layer in config["config"]["layers"]:
        if layer["class_name"] == "LSTM":
            layer["config"]["units"] = 30000
    write_zip(
        tmp / "units.keras",
        [
            stored("config.json", json.dumps(config).encode()),
            stored("metadata.json", members["metadata.json"]),
            stored("model.weights.h5", members["model.weights.h5"]),
        ],
    )
    cases["keras_lstm_units_30000"] = (tmp / "units.keras", ["lstm"])
    for member in ("config.json", "model.weights.h5"):
        parts = [
            deflated(name, b"", 2_000_000_000) if name == member else stored(name, data)
            for name, data in members.items()
        ]
        path = tmp / f"bomb_{member.split('.')[1]}.keras"
        write_zip(path, parts)
        cases[f"keras_{member}_2GB_of_zeros"] = (path, [f"'{member}'"])
    return {
        name: (["generate", path, "--out", tmp / f"out_{name}"], texts)
        for name, (path, texts) in cases.items()
    }


@pytest.fixture(scope="module")
def keras_outcomes(tmp_path_factory) -> dict:
    require_module("h5py")
    tmp = tmp_path_factory.mktemp("keras_attacks")
    attacks = keras_attacks(tmp)
    ran = run_cli_contained({n: argv for n, (argv, _) in attacks.items()}, tmp)
    results = {name: (ran[name], texts, argv) for name, (argv, texts) in attacks.items()}
    report(results)
    return results


@pytest.mark.parametrize(
    "name",
    [
        "h5_model_config_not_json",
        "h5_model_config_nested_100000",
        "h5_class_name_object",
        "h5_keras_version_evil",
        "keras_lstm_units_30000",
        "keras_config.json_2GB_of_zeros",
        "keras_model.weights.h5_2GB_of_zeros",
    ],
)
def test_keras_attack_is_one_error_line_in_bounded_memory(keras_outcomes, name):
    outcome, texts, argv = keras_outcomes[name]
    out = argv[argv.index("--out") + 1]
    if name == "h5_keras_version_evil" and outcome["exit"] == 0:
        assert os.path.isdir(out)  # a valid model with a meaningless version: converted
        return
    line = assert_one_error_line(outcome, *texts)
    assert not any(text in line for text in NOT_MEMORY), line
    assert not os.path.exists(out), "something was written"
    assert outcome["peak_mb"] < 1024, outcome


# ---- TFLite files and --calibration inputs (checked in-process: refused before allocating) --
def test_tflite_tensor_declaring_1e10_values_is_refused(tmp_path, capsys):
    """TensorFlow Lite's interpreter (verify's oracle) would allocate every declared tensor."""
    import tflite_models

    g = tflite_models.Graph()
    x = g.tensor((1, 4, 2), name="x")
    huge = g.tensor((100_000, 100_000), name="huge")  # an activation: no data, only a shape
    cell = tflite_models.lstm_cell_inputs(g, np.random.default_rng(0), 2, 3)
    h, c = g.tensor((1, 3), variable=True), g.tensor((1, 3), variable=True)
    y = g.tensor((1, 4, 3), name="y")
    g.op("UNIDIRECTIONAL_SEQUENCE_LSTM", [x, *cell, h, c, -1, -1, -1, -1], [y], [(0, "Int8", 4)])
    g.inputs, g.outputs = [x], [y]
    path = tflite_models.save(tflite_models.write_tflite(g), tmp_path, "huge")
    out = tmp_path / "out"
    assert main(["generate", str(path), "--out", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"lstmgen: error: {path}: tensor {huge} 'huge'")
    assert "10,000,000,000 values" in lines[0] and OVER in lines[0]
    assert not out.exists()


def test_calibration_header_claiming_3e10_values_is_refused(tmp_path, capsys):
    model = save_ir(branch_models()["tiny"], tmp_path / "tiny.npz")
    (tmp_path / "cal.npy").write_bytes(npy_header((100000, 100000, 3)) + bytes(64))
    out = tmp_path / "out"
    argv = ["generate", model, "--quantize", "int8-full", "--calibration", tmp_path / "cal.npy"]
    assert main([str(a) for a in [*argv, "--out", out]]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lstmgen: error: --calibration ")
    assert "30,000,000,000 input values" in lines[0] and OVER in lines[0]
    assert not out.exists()


# ---- the Keras reader honours the same limits, and --limit raises them --------------------
@pytest.mark.parametrize(
    "model", [ROOT / "examples" / "sine_lstm.keras", FIXTURES / "keras2" / "plain_sigmoid.h5"]
)
@pytest.mark.parametrize(
    "limit, found",
    [
        ("parameters=100", "parameters in all"),
        ("array-elements=50", "a weight array of shape"),
        ("config-bytes=100", "a text of"),
    ],
)
def test_keras_reader_honours_the_limits_and_limit_raises_them(
    model, limit, found, tmp_path, capsys
):
    require_module("h5py")
    name = limit.split("=")[0]
    out = tmp_path / "out"
    assert main(["inspect", str(model), "--limit", limit]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    # the file named as the reader saw it (a .keras member as ARCHIVE:MEMBER)
    assert len(lines) == 1 and lines[0].startswith("lstmgen: error: "), lines
    assert model.name in lines[0].split(": ")[2], lines
    assert found in lines[0] and OVER in lines[0] and f"--limit {name}=N" in lines[0]
    assert main(["generate", str(model), "--limit", limit, "--out", str(out)]) == 2
    assert not out.exists()
    raised = f"{name}={10**9}"
    assert main(["generate", str(model), "--limit", raised, "--out", str(out)]) == 0
    assert any(out.iterdir())


# ---- the C compiler in verify runs under a deadline ---------------------------------------
def test_a_compile_over_the_deadline_is_stopped_with_one_line(tmp_path, capsys):
    """The 9-LSTM(256)-1 model (265k weights: seconds of gcc) against --limit
    compile-seconds=1: verify kills the compiler, says which limit stopped it and how to
    raise it, exit 2; with the default limit the same model verifies."""
    from irmodels import large_model

    path = save_ir(large_model().validate(), tmp_path / "large.npz")
    argv = ["verify", str(path), "--sequences", "2", "--timesteps", "3"]
    assert main([*argv, "--limit", "compile-seconds=1"]) == 2
    errors = [l for l in capsys.readouterr().err.splitlines() if l.startswith("lstmgen: error")]
    assert len(errors) == 1, errors
    assert "took over 1 s, the compile-seconds limit" in errors[0], errors
    assert "--limit compile-seconds=N" in errors[0], errors
    assert main(argv) == 0


def test_a_compiler_error_in_the_deadline_child_arrives_as_one_error(tmp_path):
    """C that does not compile: the child's compiler error comes back as one LstmgenError
    (the compile runs in a child process; nothing of it is lost or hangs)."""
    from lstmgen.errors import LstmgenError
    from lstmgen.targets.c import render, runner

    model = branch_models()["tiny"]
    files = render(model, "net")
    files["net.c"] += "\nthis is not C;\n"
    with pytest.raises(LstmgenError, match="compiling the generated C failed"):
        runner.build(model, files, "net", tmp_path)
