"""Hostile Keras files for the direct reader: zip members that claim gigabytes or escape
with `..`, compression bombs, HDF5 external links, soft links, virtual datasets, external
storage, a variable-length attribute whose length field claims 2 GB, datasets that claim
gigabytes they do not store, configs with enormous or negative sizes, JSON nested beyond
reason, truncated files.

Every one must end as one `lstmgen: error:` line with exit code 2, nothing written, in
bounded time and memory: all cases run through the CLI in one subprocess, which reports
each exit code, its stderr, its time, and the process's peak memory (HDF5 itself runs in
short-lived children under their own cap: lstmgen/extractors/keras/hdf5.py).
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import zipfile

import h5py
import numpy as np
import pytest
from support import FIXTURES, ROOT

EXAMPLE = ROOT / "examples" / "sine_lstm.keras"
H5 = FIXTURES / "keras2" / "plain_sigmoid.h5"
HOSTILE = FIXTURES / "keras_hostile"
#: Peak resident memory of the driver process and its HDF5 children (Python, numpy, h5py,
#: lstmgen: ~60 MB), however large the pytest process that starts it.
MAX_RSS_MB = 400
MAX_SECONDS_PER_FILE = 20


def _members() -> dict[str, bytes]:
    with zipfile.ZipFile(EXAMPLE) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _zip(path, members: list[tuple[str, bytes]], compression=zipfile.ZIP_STORED) -> None:
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members:
            archive.writestr(zipfile.ZipInfo(name), data, compress_type=compression)


def _config() -> dict:
    return json.loads(_members()["config.json"])


def _with_config(path, config) -> None:
    members = _members()
    members["config.json"] = (
        json.dumps(config).encode() if not isinstance(config, bytes) else config
    )
    _zip(path, list(members.items()))


def _claim_size(path, member: str, size: int) -> None:
    """Patch a stored member's uncompressed size in its local and central headers."""
    data = bytearray(path.read_bytes())
    name = member.encode()
    local = 0
    while True:
        local = data.index(b"PK\x03\x04", local)
        length = struct.unpack_from("<H", data, local + 26)[0]
        if data[local + 30 : local + 30 + length] == name:
            struct.pack_into("<I", data, local + 22, size)
            break
        local += 4
    central = data.index(b"PK\x01\x02")
    while True:
        central = data.index(b"PK\x01\x02", central)
        length = struct.unpack_from("<H", data, central + 28)[0]
        if data[central + 46 : central + 46 + length] == name:
            struct.pack_into("<I", data, central + 24, size)
            break
        central += 4
    path.write_bytes(bytes(data))


def _lstm_config(config: dict) -> dict:
    return next(l for l in config["config"]["layers"] if l["class_name"] == "LSTM")


def _h5_copy(tmp, name):
    path = tmp / name
    shutil.copyfile(H5, path)
    return path


def _first_weight(fh):
    group = fh["model_weights"]
    for layer in group.attrs["layer_names"]:
        layer = layer.decode() if isinstance(layer, bytes) else layer
        names = group[layer].attrs["weight_names"]
        if len(names):
            weight = names[0].decode() if isinstance(names[0], bytes) else names[0]
            return group[layer], weight, layer
    raise AssertionError("no weights")


def build_cases(tmp) -> dict:
    """name -> (path, extra CLI args, text the error line must contain)."""
    cases = {}

    # ---- .keras archives ----
    path = tmp / "claims_gigabytes.keras"
    _zip(path, list(_members().items()))
    _claim_size(path, "model.weights.h5", 3 * 2**30)
    cases["member_claims_3GB"] = (path, [], "declares 3,221,225,472 bytes, over the limit")

    path = tmp / "config_claims_gigabytes.keras"
    _zip(path, list(_members().items()))
    _claim_size(path, "config.json", 2**31)
    cases["config_claims_2GB"] = (path, [], "a text of 2,147,483,648 bytes, over the limit")

    path = tmp / "deflate_bomb.keras"
    members = _members()
    members["model.weights.h5"] = bytes(64 * 2**20)  # 64 MB of zeros: ~64 KB deflated
    _zip(path, list(members.items()), zipfile.ZIP_DEFLATED)
    cases["deflate_bomb"] = (path, [], "compression bomb")

    for label, member in (("dotdot", "../../evil.json"), ("absolute", "/etc/evil.json")):
        path = tmp / f"{label}.keras"
        _zip(path, [*_members().items(), (member, b"{}")])
        cases[f"{label}_member"] = (path, [], "unsafe path")

    path = tmp / "duplicate.keras"
    _zip(path, [*_members().items(), ("config.json", b"{}")])
    cases["duplicate_member"] = (path, [], "appears twice")

    path = tmp / "text.keras"
    path.write_text("not an archive\n")
    cases["not_a_zip"] = (path, [], "not a .keras archive")

    data = EXAMPLE.read_bytes()
    for cut in (30, len(data) // 2, len(data) - 30):
        path = tmp / f"truncated_{cut}.keras"
        path.write_bytes(data[:cut])
        cases[f"truncated_zip_{cut}"] = (path, [], "truncated")

    config = _config()
    _lstm_config(config)["config"]["units"] = 10**12
    _with_config(path := tmp / "huge_units.keras", config)
    cases["enormous_units"] = (path, [], "units=1000000000000")

    config = _config()
    _lstm_config(config)["config"]["units"] = 10**8  # allowed size, but not the file's
    _with_config(path := tmp / "units_mismatch.keras", config)
    cases["units_not_the_weights"] = (path, [], "the architecture needs")

    for label, shape in (("negative", [None, -5, 1]), ("huge", [None, 10**12, 1])):
        config = _config()
        config["config"]["layers"][0]["config"]["batch_shape"] = shape
        _with_config(path := tmp / f"{label}_shape.keras", config)
        cases[f"{label}_input_shape"] = (path, [], "input shape")

    _with_config(path := tmp / "deep.keras", b"[" * 200_000 + b"]" * 200_000)
    cases["deeply_nested_json"] = (path, [], "nested too deeply")

    _with_config(path := tmp / "list.keras", b"[1, 2, 3]")
    cases["config_not_an_object"] = (path, [], "not a JSON object")

    config = _config()
    config["config"]["layers"].insert(
        1, {"class_name": "Lambda", "config": {"name": "evil", "function": "<marshal>"}}
    )
    _with_config(path := tmp / "lambda.keras", config)
    cases["lambda"] = (path, [], "'evil' of type Lambda")

    # ---- HDF5 ----
    path = _h5_copy(tmp, "external_link.h5")
    with h5py.File(path, "r+") as fh:
        group, _, layer = _first_weight(fh)
        del fh["model_weights"][layer]
        fh["model_weights"][layer] = h5py.ExternalLink("/etc/passwd", "/data")
    cases["external_link"] = (path, [], "external link")

    path = _h5_copy(tmp, "soft_link.h5")
    with h5py.File(path, "r+") as fh:
        group, weight, _ = _first_weight(fh)
        del group[weight]
        group[weight] = h5py.SoftLink("/model_weights")
    cases["soft_link"] = (path, [], "soft link")

    path = _h5_copy(tmp, "virtual.h5")
    with h5py.File(path, "r+") as fh:
        group, weight, _ = _first_weight(fh)
        shape = group[weight].shape
        del group[weight]
        layout = h5py.VirtualLayout(shape=shape, dtype="f4")
        layout[...] = h5py.VirtualSource("/etc/other.h5", "data", shape=shape)
        group.create_virtual_dataset(weight, layout, fillvalue=0)
    cases["virtual_dataset"] = (path, [], "virtual dataset")

    path = _h5_copy(tmp, "external_storage.h5")
    with h5py.File(path, "r+") as fh:
        group, weight, _ = _first_weight(fh)
        shape = group[weight].shape
        del group[weight]
        size = int(np.prod(shape)) * 4
        group.create_dataset(weight, shape=shape, dtype="f4", external=[("/etc/passwd", 0, size)])
    cases["external_storage"] = (path, [], "external files")

    for label, total, expected in (
        # within the size limits, but nothing stored: a compression bomb
        ("dataset_claims_16_megabytes", 2**24, "compression bomb"),
        # past the array-elements limit (raised with --limit): refused by its declared shape
        ("dataset_claims_3_gigabytes", 3 * 2**30, "values, over the limit of 20,000,000"),
    ):
        path = _h5_copy(tmp, f"{label}.h5")
        with h5py.File(path, "r+") as fh:
            group, weight, _ = _first_weight(fh)
            rows = group[weight].shape[0]
            units = total // (16 * rows)  # kernel (rows, 4 units) of float32: `total` bytes
            config = json.loads(fh.attrs["model_config"])
            lstm = next(l for l in config["config"]["layers"] if l["class_name"] == "LSTM")
            lstm["config"]["units"] = units
            fh.attrs["model_config"] = json.dumps(config)
            del group[weight]
            group.create_dataset(weight, shape=(rows, 4 * units), dtype="f4")  # never written
        cases[label] = (path, [], expected)

    # found by the fuzzer (tests/robustness/keras_reader_fuzz.py): the HDF5 library loops
    # forever on the first, and crashes (SIGSEGV) on the second
    cases["hdf5_endless_loop"] = (HOSTILE / "hdf5_endless_loop.h5", [], "global heap")
    cases["hdf5_segfault"] = (HOSTILE / "hdf5_segfault.h5", [], "crashed reading it")

    path = tmp / "vlen_bomb.h5"
    with h5py.File(path, "w") as fh:
        fh.attrs["model_config"] = "Q" * 1000
    data = bytearray(path.read_bytes())
    at = data.index(struct.pack("<I", 1000))  # the string's length, as HDF5 stores it
    struct.pack_into("<I", data, at, 0x7FFFFFF0)  # the string now claims 2 GB
    path.write_bytes(bytes(data))
    cases["vlen_attribute_claims_2GB"] = (path, [], "memory allocation failed")

    data = H5.read_bytes()
    for cut in (6, len(data) // 2):
        path = tmp / f"truncated_{cut}.h5"
        path.write_bytes(data[:cut])
        cases[f"truncated_h5_{cut}"] = (path, [], "HDF5")

    weights = tmp / "weights_only.h5"
    with h5py.File(H5, "r") as source, h5py.File(weights, "w") as fh:
        source.copy(source["model_weights"], fh, "copy")
    cases["weights_only_without_architecture"] = (weights, [], "weights-only")

    config = tmp / "pair.json"
    with h5py.File(H5, "r") as fh:
        architecture = json.loads(fh.attrs["model_config"])
    architecture["config"]["layers"][1]["config"]["name"] = "renamed"
    config.write_text(json.dumps(architecture))
    cases["pair_layer_missing"] = (config, ["--weights", str(H5)], "has no layer 'renamed'")
    return cases


DRIVER = r"""
import io, json, resource, sys, time, contextlib
from pathlib import Path
from lstmgen.cli import main
results = {}
for name, (path, extra, out) in json.loads(sys.argv[1]).items():
    err = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["generate", path, *extra, "--out", out])
    results[name] = {"code": code, "err": err.getvalue(), "seconds": time.perf_counter() - start,
                     "written": Path(out).exists()}
# This process's own high-water mark (VmHWM: Linux carries ru_maxrss of RUSAGE_SELF over
# exec, so it would report the pytest process that spawned us) and the HDF5 children's.
status = Path("/proc/self/status")
own = [int(l.split()[1]) for l in status.read_text().splitlines() if l.startswith("VmHWM:")] \
    if status.exists() else [resource.getrusage(resource.RUSAGE_SELF).ru_maxrss]
children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
results["_peak_rss_mb"] = max(own + [children]) / 1024
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> tuple[dict, dict]:
    tmp = tmp_path_factory.mktemp("hostile")
    cases = build_cases(tmp)
    request = {
        name: (str(path), extra, str(tmp / f"out_{name}"))
        for name, (path, extra, _) in cases.items()
    }
    result = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(request)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return cases, json.loads(result.stdout.strip().splitlines()[-1])


def test_every_hostile_file_is_one_error_line_exit_2_nothing_written(outcomes):
    cases, results = outcomes
    wrong = {}
    for name, (_, _, expected) in cases.items():
        outcome = results[name]
        lines = outcome["err"].strip().splitlines()
        one_line = len(lines) == 1 and lines[0].startswith("lstmgen: error: ")
        if outcome["code"] != 2 or not one_line or expected not in lines[0]:
            wrong[name] = (expected, outcome["code"], lines)
        assert not outcome["written"], name
    assert not wrong, wrong


def test_bounded_time_and_memory(outcomes):
    cases, results = outcomes
    slow = {
        n: round(results[n]["seconds"], 1)
        for n in cases
        if results[n]["seconds"] > MAX_SECONDS_PER_FILE
    }
    assert not slow, slow
    assert results["_peak_rss_mb"] < MAX_RSS_MB, results["_peak_rss_mb"]


def test_a_member_that_inflates_past_its_claim_is_refused(tmp_path):
    """Deflated data longer than the size its member declares: zipfile stops at the
    declared size (the reader's bound) and the CRC check refuses the member."""
    from lstmgen.errors import ModelError
    from lstmgen.extractors.keras import files

    path = tmp_path / "liar.keras"
    _zip(path, list(_members().items()), zipfile.ZIP_DEFLATED)
    _claim_size(path, "config.json", 10)
    with pytest.raises(ModelError, match="liar.keras"):
        files.open_keras_zip(path)
