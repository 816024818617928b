"""Coverage-guided fuzzing (atheris on libFuzzer) of lstmgen's readers: the only allowed
outcome for any input is a model or lstmgen's own precise error (an `LstmgenError` raised
by the reader itself). A `FrontEndFault` -- an exception the front-end boundary had to
catch -- is a finding (its cause is re-raised so libFuzzer reports it), and so are any
other exception, a crash, a hang (-timeout) and runaway memory (-rss_limit_mb).

One reader per run, named first:
  keras .keras archives, h5 legacy Keras HDF5, pt PyTorch state_dicts, onnx, mat MATLAB
  exports, npz lstmgen IR files (all through `open_model`), npy `verify --inputs` files.
An input's first byte picks how the rest becomes the file: even -> the bytes as they are;
odd (zip formats: keras, pt, npz) -> members [name length u8, name, size u32le, data]...
written into a valid zip (correct CRCs), so mutations reach what is inside the archive.

Run by tests/robustness/test_fuzz_readers.py:
  python fuzz_readers.py READER CORPUS_DIR -max_total_time=5 -timeout=30 ...
"""

from __future__ import annotations

import io
import os
import struct
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path

import atheris

READER = sys.argv.pop(1)
SUFFIXES = {
    "keras": ".keras",
    "h5": ".h5",
    "pt": ".pt",
    "onnx": ".onnx",
    "mat": ".mat",
    "npz": ".npz",
    "npy": ".npy",
}
ZIP_FORMATS = {"keras", "pt", "npz"}
INPUT_SIZE = 3  # the model the npy inputs are read for

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
with atheris.instrument_imports(include=["lstmgen"]):
    from lstmgen.errors import FrontEndFault, LstmgenError
    from lstmgen.extractors import open_model
    from lstmgen.verify import read_inputs

WORK = Path(tempfile.mkdtemp(prefix="lstmgen-fuzz-"))
PATH = WORK / f"input{SUFFIXES[READER]}"


def members_to_zip(data: bytes) -> bytes:
    """The zip archive the member encoding describes (truncated entries are dropped)."""
    out = io.BytesIO()
    warnings.simplefilter("ignore")  # zipfile warns of duplicate names: they are allowed
    with zipfile.ZipFile(out, "w") as archive:
        at = 0
        while at < len(data):
            length = data[at]
            name = data[at + 1 : at + 1 + length].decode("utf-8", "replace").split("\0")[0]
            at += 1 + length
            if at + 4 > len(data):
                break
            (size,) = struct.unpack_from("<I", data, at)
            at += 4
            archive.writestr(name or "x", data[at : at + size])
            at += size
    return out.getvalue()


def test_one_input(data: bytes) -> None:
    if not data:
        return
    body = data[1:]
    if data[0] % 2 and READER in ZIP_FORMATS:
        body = members_to_zip(body)
    PATH.write_bytes(body)
    try:
        if READER == "npy":
            read_inputs(PATH, INPUT_SIZE)
        else:
            open_model(PATH)
    except FrontEndFault as fault:  # the reader did not say what is wrong: a finding
        raise (fault.__cause__ or fault) from None
    except LstmgenError:
        pass


def warm_up() -> None:
    """Import what the reader imports lazily, so the time limit goes to inputs."""
    import importlib

    modules = {
        "keras": ["h5py", "lstmgen.extractors.keras"],
        "h5": ["h5py", "lstmgen.extractors.keras"],
        "pt": ["torch", "lstmgen.extractors.torch"],
        "onnx": ["onnx", "onnx.reference", "onnxruntime", "lstmgen.extractors.onnx"],
        "mat": ["scipy.io", "lstmgen.extractors.matlab"],
        "npz": ["lstmgen.ir_io"],
        "npy": [],
    }
    for name in modules[READER]:
        try:
            importlib.import_module(name)
        except ImportError:
            pass


if __name__ == "__main__":
    warm_up()
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
