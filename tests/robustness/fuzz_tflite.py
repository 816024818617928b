"""atheris fuzz target for the `.tflite` reader (run by test_tflite_hostile.py in a
subprocess, since libFuzzer ends the process it runs in).

    python tests/robustness/fuzz_tflite.py CORPUS_DIR -max_total_time=5

Any exception other than lstmgen's own one-line errors (LstmgenError), or an error message
of more than one line, is a finding:
libFuzzer reports it, writes the input as crash-*, and the process exits non-zero.
"""

from __future__ import annotations

import sys

import atheris
import numpy  # noqa: F401  (imported before instrumenting: only lstmgen is instrumented)

with atheris.instrument_imports(include=["lstmgen"]):
    from lstmgen.errors import LstmgenError
    from lstmgen.extractors.tflite.graph import Walk
    from lstmgen.extractors.tflite.schema import read_model


def one_input(data: bytes) -> None:
    try:
        Walk(read_model(data), "fuzz").run()
    except LstmgenError as exc:
        assert "\n" not in str(exc), "an error message must be one line"


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
