"""The coverage-guided fuzzer of the Keras reader (keras_reader_fuzz.py, atheris on
libFuzzer): a few seconds in the default run, longer with LSTMGEN_KERAS_FUZZ_SECONDS=600.
Seeds: the shipped example `.keras`, the Keras 2 `.h5` fixtures, an architecture JSON.
Any outcome other than a model or an LstmgenError (another exception, a crash, a hang,
memory beyond the limit) fails the test and leaves the input in the artifact folder."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from support import FIXTURES, ROOT, require_module

SECONDS = int(os.environ.get("LSTMGEN_KERAS_FUZZ_SECONDS", "6"))
FUZZER = Path(__file__).resolve().parent / "keras_reader_fuzz.py"


def _seeds(corpus: Path) -> Path:
    """One byte for the container (0 .keras, 1 .h5, 2 JSON), then the file; returns the
    fixed weights file the JSON seeds are read with."""
    example = ROOT / "examples" / "sine_lstm.keras"
    (corpus / "keras").write_bytes(b"\x00" + example.read_bytes())
    for k, path in enumerate(sorted((FIXTURES / "keras2").glob("*.h5"))):
        (corpus / f"h5_{k}").write_bytes(b"\x01" + path.read_bytes())
    with zipfile.ZipFile(example) as archive:
        (corpus / "json").write_bytes(b"\x02" + archive.read("config.json"))
        weights = corpus.parent / "sine.weights.h5"
        weights.write_bytes(archive.read("model.weights.h5"))
    return weights


def test_reader_survives_the_fuzzer(tmp_path):
    require_module("atheris")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    weights = _seeds(corpus)
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    result = subprocess.run(
        [
            sys.executable,
            str(FUZZER),
            str(weights),
            str(corpus),
            f"-max_total_time={SECONDS}",
            "-timeout=30",
            "-rss_limit_mb=2048",
            f"-artifact_prefix={artifacts}/",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=SECONDS + 300,
    )
    findings = sorted(p.name for p in artifacts.iterdir())
    assert result.returncode == 0 and not findings, (findings, result.stderr[-3000:])
    assert "Done" in result.stderr  # libFuzzer's own summary: it did run
