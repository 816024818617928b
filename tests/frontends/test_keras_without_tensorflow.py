"""`inspect` and `generate` of Keras files need no TensorFlow: the reader is zipfile, json
and h5py. Proved twice: in a subprocess where importing tensorflow, keras or tf_keras
raises (and is recorded), and in a real virtual environment holding only numpy, jinja2,
h5py and lstmgen, where `lstmgen generate` of the shipped example writes exactly the
committed generated_examples/."""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
from support import FIXTURES, ROOT, missing

EXAMPLE = ROOT / "examples" / "sine_lstm.keras"
KERAS2 = FIXTURES / "keras2" / "lstm_hard_sigmoid.h5"
FRAMEWORKS = ("tensorflow", "keras", "tf_keras")

BLOCKED_RUN = r"""
import importlib.abc, io, json, sys, contextlib
FRAMEWORKS = {frameworks!r}
attempted = []
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in FRAMEWORKS:
            attempted.append(name)
            raise ImportError(f"{{name}} is blocked in this test")
        return None
sys.meta_path.insert(0, Blocker())
from lstmgen.cli import main
results = []
for args in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(args)
    results.append([code, err.getvalue()])
loaded = sorted(m for m in sys.modules if m.split(".")[0] in FRAMEWORKS)
print(json.dumps({{"results": results, "attempted": attempted, "loaded": loaded}}))
"""


def _pair(tmp_path: Path) -> tuple[Path, Path]:
    """An architecture JSON + weights pair made of the Keras 2 fixture."""
    with h5py.File(KERAS2, "r") as fh:
        config = fh.attrs["model_config"]
    architecture = tmp_path / "model.json"
    architecture.write_text(config if isinstance(config, str) else config.decode())
    return architecture, KERAS2


def test_inspect_and_generate_never_import_tensorflow(tmp_path):
    architecture, weights = _pair(tmp_path)
    sources = [[str(EXAMPLE)], [str(KERAS2)], [str(architecture), "--weights", str(weights)]]
    runs = []
    for k, source in enumerate(sources):
        runs.append(["inspect", *source])
        for target in ("c", "python", "matlab"):
            out = tmp_path / f"out{k}_{target}"
            runs.append(["generate", *source, "--target", target, "--out", str(out)])
    # needs Keras: one clear line saying so (--quiet: no progress lines around it)
    runs.append(["verify", str(EXAMPLE), "--quiet"])
    result = subprocess.run(
        [sys.executable, "-c", BLOCKED_RUN.format(frameworks=FRAMEWORKS), json.dumps(runs)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    *converted, verify = report["results"]
    assert [code for code, _ in converted] == [0] * len(converted), converted
    assert verify[0] == 2 and len(verify[1].strip().splitlines()) == 1
    assert "pip install tensorflow-cpu" in verify[1]
    # only verify asked for a framework; nothing of one was ever loaded
    assert set(report["attempted"]) == {"keras"} and report["loaded"] == []


def _site_packages(python: Path) -> Path:
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip())


def _link_distributions(names: tuple[str, ...], folder: Path) -> None:
    """The installed distributions `names` (their packages, bundled libraries and
    metadata), linked into `folder`: installing without downloading anything."""
    folder.mkdir()
    for name in names:
        distribution = importlib.metadata.distribution(name)
        tops = {Path(str(f)).parts[0] for f in distribution.files or []}
        for top in tops:
            source = Path(str(distribution.locate_file(top)))
            if source.exists() and not (folder / top).exists() and top != "..":
                (folder / top).symlink_to(source)


def test_generate_in_a_virtualenv_without_tensorflow(tmp_path):
    """A plain venv (no system site-packages) with numpy, jinja2, markupsafe, h5py and
    lstmgen installed --no-deps (the packages linked from this machine, nothing
    downloaded): `lstmgen generate` writes the committed example."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    if not python.exists():
        missing("a POSIX venv layout (bin/python)")
    deps = tmp_path / "deps"  # setuptools: the build backend of the --no-deps install
    _link_distributions(("numpy", "jinja2", "markupsafe", "h5py", "setuptools"), deps)
    (_site_packages(python) / "lstmgen_test_deps.pth").write_text(f"{deps}\n")
    project = tmp_path / "project"
    project.mkdir()
    for item in ("pyproject.toml", "README.md", "lstmgen", "templates"):
        copy = shutil.copytree if (ROOT / item).is_dir() else shutil.copyfile
        copy(ROOT / item, project / item)
    install = subprocess.run(  # this machine's pip, installing into the venv
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet"]
        + ["--no-deps", "--no-build-isolation", "--no-index", "--disable-pip-version-check"]
        + [str(project)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    for framework in FRAMEWORKS:
        probe = subprocess.run([str(python), "-c", f"import {framework}"], capture_output=True)
        assert probe.returncode != 0, f"{framework} is importable in the venv"
    out = tmp_path / "out"
    run = subprocess.run(
        [str(venv / "bin" / "lstmgen"), "generate", str(EXAMPLE), "--target", "c"]
        + ["--name", "sine", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    for name in ("sine.c", "sine.h"):
        assert (out / name).read_text() == (ROOT / "generated_examples" / "c" / name).read_text()
