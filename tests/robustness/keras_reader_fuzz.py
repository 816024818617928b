"""Coverage-guided fuzzing (atheris / libFuzzer) of the Keras file reader: its only allowed
outcome for any input is a model or lstmgen's own error (`LstmgenError`); any other
exception, a crash, a hang (-timeout) or runaway memory (-rss_limit_mb) is a finding.

HDF5 itself runs in forked children (lstmgen/extractors/keras/hdf5.py), so the HDF5
library's own crashes and loops end as lstmgen errors too; lstmgen's Python code runs
here, instrumented. Each input is one byte choosing the container, then the file's bytes:
  0: a `.keras` archive, 1: an HDF5 `.h5` model, 2: an architecture JSON read with a fixed,
  valid Keras 3 weights file (so mutations reach the config dialects and layer mappings).
Run by tests/robustness/test_keras_reader_fuzz.py:
  python keras_reader_fuzz.py WEIGHTS.weights.h5 CORPUS_DIR -max_total_time=5 ...
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["lstmgen"]):
    from lstmgen.errors import LstmgenError
    from lstmgen.extractors.keras import hdf5, open_file

# the HDF5 library's endless loops end in lstmgen's deadline; keep it short here
hdf5.TIMEOUT_SECONDS = 5.0

WEIGHTS = Path(sys.argv.pop(1))
WORK = Path(tempfile.mkdtemp(prefix="lstmgen-fuzz-"))
SUFFIXES = {0: ".keras", 1: ".h5", 2: ".json"}


def test_one_input(data: bytes) -> None:
    if not data:
        return
    mode = data[0] % 3
    path = WORK / f"input{SUFFIXES[mode]}"
    path.write_bytes(data[1:])
    try:
        open_file(path, WEIGHTS if mode == 2 else None)
    except LstmgenError:
        pass


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
