"""The CLI end to end on the shipped example, generated_examples/ freshness, determinism
across processes, and the wheel carrying its templates."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import zipfile

import pytest
from irmodels import branch_models
from support import ROOT, missing  # noqa: E402

from lstmgen.cli import main
from lstmgen.ir_io import save_ir

sys.path.insert(0, str(ROOT / "examples"))
import regenerate_examples  # noqa: E402


def test_inspect_shows_layers_mapping_and_memory(example_model_path, capsys, keras):
    assert main(["inspect", str(example_model_path)]) == 0
    out = capsys.readouterr().out
    for expected in (
        "LSTM 1 -> 16",
        "Dense 16 -> 1",
        "1169",
        "4676 bytes",
        "i, f, g, o",
        "columns i,f,c,o",
        "dropped 'dropout'",
    ):
        assert expected in out, expected


def test_generate_then_verify_cli(example_model_path, tmp_path, capsys, keras):
    out = tmp_path / "build"
    assert (
        main(
            [
                "generate",
                str(example_model_path),
                "--target",
                "c",
                "--name",
                "net",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == ["net.c", "net.h"]
    assert main(["verify", str(example_model_path), "--target", "c"]) == 0
    report = capsys.readouterr().out
    assert "PASS" in report and "Keras" in report and "output[0]: max abs error" in report
    # an impossible tolerance fails with a non-zero exit
    assert main(["verify", str(example_model_path), "--atol", "0"]) == 1


def test_verify_with_given_inputs(example_model_path, tmp_path, capsys, keras):
    import numpy as np

    x = np.random.default_rng(9).uniform(-2, 2, (3, 20, 1)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["verify", str(example_model_path), "--inputs", str(tmp_path / "x.npy")]) == 0
    assert "3 sequences x 20 timesteps" in capsys.readouterr().out
    np.save(tmp_path / "bad.npy", x[:, :, :0])
    assert main(["verify", str(example_model_path), "--inputs", str(tmp_path / "bad.npy")]) == 2


def test_cli_user_errors_exit_2(tmp_path, capsys):
    assert main(["generate", str(tmp_path / "missing.keras")]) == 2
    assert main(["generate", str(tmp_path / "model.onnx2")]) == 2
    npz = save_ir(branch_models()["tiny"], tmp_path / "tiny.npz")
    assert main(["generate", str(npz), "--name", "bad-name", "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()
    assert (
        main(
            [
                "generate",
                str(npz),
                "--target",
                "c",
                "--precision",
                "double",
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 4 and all(e.startswith("lstmgen: error: ") for e in errors)


def test_refuses_to_overwrite_foreign_files(tmp_path, capsys):
    npz = save_ir(branch_models()["tiny"], tmp_path / "tiny.npz")
    out = tmp_path / "out"
    out.mkdir()
    (out / "net.c").write_text("my own code\n")
    assert main(["generate", str(npz), "--name", "net", "--out", str(out)]) == 2
    assert (out / "net.c").read_text() == "my own code\n" and not (out / "net.h").exists()
    assert main(["generate", str(npz), "--name", "net", "--out", str(out), "--force"]) == 0
    assert main(["generate", str(npz), "--name", "net", "--out", str(out)]) == 0  # own files
    assert sorted(p.name for p in out.iterdir()) == ["net.c", "net.h"]


def test_generated_examples_are_up_to_date(example_model_path, keras):
    import lstmgen

    model = lstmgen.load(example_model_path)
    rendered = regenerate_examples.render_all(model)
    assert "c" in rendered
    for target, files in rendered.items():
        folder = ROOT / "generated_examples" / target
        for filename, text in files.items():
            path = folder / filename
            assert path.exists() and path.read_text() == text, (
                f"{path} is stale: run python examples/regenerate_examples.py"
            )


def test_generation_is_deterministic_across_processes(tmp_path):
    npz = save_ir(branch_models()["all_activations"], tmp_path / "m.npz")
    outputs = []
    for seed in ("1", "2"):
        out = tmp_path / f"out{seed}"
        env = {**os.environ, "PYTHONHASHSEED": seed}
        for target in regenerate_examples.available_targets():
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "lstmgen",
                    "generate",
                    str(npz),
                    "--target",
                    target,
                    "--name",
                    "net",
                    "--out",
                    str(out),
                ],
                check=True,
                env=env,
                capture_output=True,
            )
        outputs.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
    assert outputs[0] == outputs[1] and len(outputs[0]) >= 2


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """`python -m build --wheel`, as a user packages the project."""
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        pytest.fail(result.stdout[-3000:] + result.stderr[-3000:])
    return next(out.glob("lstmgen-*.whl"))


def test_wheel_ships_the_templates(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for template in (
        "c/model.c.j2",
        "c/layers/lstm.j2",
        "python/layers/lstm.j2",
        "numpy/model.py.j2",
        "numpy/layers/time_slice.j2",
        "report/report.html.j2",
    ):
        assert f"lstmgen/templates/{template}" in names, template
    assert "lstmgen/cli.py" in names and not any(n.startswith("tests/") for n in names)
    metadata = (
        zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    )
    assert 'Requires-Dist: setuptools>=64; python_version >= "3.12" and extra == "verify"' in (
        metadata
    ), [line for line in metadata.splitlines() if "verify" in line]


def _venv(python: str, folder, wheel, extras: str = "") -> tuple:
    """A clean virtual environment (no system site-packages) with the wheel installed."""
    subprocess.run([python, "-m", "venv", str(folder)], check=True, timeout=300)
    bin_dir = folder / "bin"
    install = subprocess.run(
        [
            str(bin_dir / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            f"{wheel}{extras}",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if install.returncode != 0:
        pytest.fail(install.stderr[-3000:])
    return bin_dir / "python", bin_dir / "lstmgen"


def _run(*command, env: dict, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=600,
    )


def test_wheel_in_a_clean_venv_inspects_generates_and_verifies_the_example(
    wheel, tmp_path, example_model_path, keras
):
    """pip install the wheel alone (numpy, jinja2): inspect, generate and verify the example
    (its IR file; the .keras file gets one line naming the keras extra), with the report;
    then the generated code runs where lstmgen is not installed: the numpy module in a venv
    holding only numpy, the pure-Python module with no site-packages at all."""
    import numpy as np

    import lstmgen

    model = lstmgen.load(example_model_path)
    npz = save_ir(model, tmp_path / "sine.npz")
    python, cli = _venv(sys.executable, tmp_path / "venv", wheel)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    inspect = _run(cli, "inspect", npz, env=env)
    assert inspect.returncode == 0 and "LSTM 1 -> 16" in inspect.stdout, inspect.stderr
    keras_file = _run(cli, "inspect", example_model_path, env=env)
    assert keras_file.returncode == 2 and keras_file.stdout == "", keras_file
    assert keras_file.stderr.count("\n") == 1 and "lstmgen[keras]" in keras_file.stderr
    for target in ("c", "python", "numpy"):
        out = tmp_path / target
        generated = _run(
            cli, "generate", npz, "--target", target, "--name", "sine", "--out", out, env=env
        )
        assert generated.returncode == 0, generated.stderr
    report = tmp_path / "report.html"
    verified = _run(cli, "verify", npz, "--target", "numpy", "--report", report, env=env)
    assert verified.returncode == 0 and "PASS" in verified.stdout, verified.stderr
    assert "<svg" in report.read_text(encoding="utf-8")

    x = np.random.default_rng(2).standard_normal((4, 20, 1)).astype(np.float32)
    expected = keras.models.load_model(example_model_path).predict(x, verbose=0)
    np.save(tmp_path / "x.npy", x)
    numpy_only = tmp_path / "numpy_only"
    subprocess.run([sys.executable, "-m", "venv", str(numpy_only)], check=True, timeout=300)
    pip = _run(numpy_only / "bin/python", "-m", "pip", "install", "-q", "numpy", env=env)
    assert pip.returncode == 0, pip.stderr
    listed = _run(numpy_only / "bin/python", "-m", "pip", "list", "--format=freeze", env=env)
    assert not any(line.startswith(("lstmgen", "Jinja2")) for line in listed.stdout.split())
    run = _run(
        numpy_only / "bin/python",
        "-c",
        "import sys, numpy as np; sys.path.insert(0, sys.argv[1]); "
        "import sine; np.save(sys.argv[3], sine.predict(np.load(sys.argv[2])))",
        tmp_path / "numpy",
        tmp_path / "x.npy",
        tmp_path / "y.npy",
        env=env,
    )
    assert run.returncode == 0, run.stderr
    from lstmgen.verify import error_metrics

    assert error_metrics(np.load(tmp_path / "y.npy"), expected)[1].max() <= 1e-5
    # the pure-Python module: -I -S, so neither numpy nor lstmgen can be imported
    rows = repr([seq.tolist() for seq in x])
    pure = _run(
        sys.executable,
        "-I",
        "-S",
        "-c",
        f"import sys; sys.path.insert(0, sys.argv[1]); import sine; "
        f"print(repr([sine.predict(s) for s in {rows}]))",
        tmp_path / "python",
        env=env,
    )
    assert pure.returncode == 0, pure.stderr
    got = np.array(ast.literal_eval(pure.stdout), np.float64).reshape(expected.shape)
    assert error_metrics(got, expected)[1].max() <= 1e-5


def test_verify_extra_on_python_312_compiles_with_cffi(wheel, tmp_path):
    """Python 3.12 has no distutils: the verify extra must bring what cffi compiles with."""
    from support import other_cpythons

    found = [p for p in other_cpythons() if p.endswith("3.12")]
    if not found:
        missing("Python 3.12")
    _, cli = _venv(found[0], tmp_path / "venv312", wheel, "[verify]")
    npz = save_ir(branch_models()["tiny"], tmp_path / "tiny.npz")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    result = subprocess.run(
        [str(cli), "verify", str(npz), "--target", "c"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0 and "PASS" in result.stdout, result.stderr


def test_readme_support_table_is_generated_from_the_code():
    from lstmgen.support import block

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert block() in readme, (
        "README.md's support table is stale: run python -m lstmgen.support --write README.md"
    )


# ------------------------------------------------------------------- the first hour --


def test_readme_setup_matches_the_scripts():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "python3 -m venv .venv && . .venv/bin/activate" in readme
    assert "**needs root**" in readme
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    test_command = "python -m pytest -q -ra -n 2 --dist loadfile"
    assert f"```sh\n{test_command}\n```" in readme
    commands = [l for l in ci.splitlines() if l.startswith("python -m pytest")]
    assert commands == [test_command]  # .ci/run runs exactly the README's test command
    assert "chromium" in ci.split("APT_PACKAGES=(", 1)[1].split(")", 1)[0]


def test_setup_scripts_stop_with_one_clear_line_on_a_python_pip_refuses(tmp_path):
    """Debian's own Python: no `python` command, or a `python` marked externally managed."""
    system = "/usr/bin/python3"
    check = (
        subprocess.run(
            [
                system,
                "-c",
                "import os, sysconfig; print(os.path.exists(os.path.join("
                "sysconfig.get_path('stdlib'), 'EXTERNALLY-MANAGED')))",
            ],
            capture_output=True,
            text=True,
        )
        if os.path.exists(system)
        else None
    )
    if check is None or check.stdout.strip() != "True":
        missing("an externally managed system Python at /usr/bin/python3 (Debian 12)")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for script in (".ci/run", "examples/run_example.sh"):
        bare = subprocess.run(
            ["bash", str(ROOT / script)],
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
            timeout=60,
        )
        assert bare.returncode == 1 and "no 'python' command" in bare.stderr, bare.stderr
        assert "python3 -m venv .venv && . .venv/bin/activate" in bare.stderr
    (bin_dir / "python").symlink_to(system)
    managed = subprocess.run(
        ["bash", str(ROOT / "examples/run_example.sh")],
        capture_output=True,
        text=True,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)},
        timeout=60,
    )
    assert managed.returncode == 1 and "externally-managed" in managed.stderr, managed.stderr
    assert "python3 -m venv .venv" in managed.stderr and "Traceback" not in managed.stderr


def test_help_states_the_defaults_and_what_options_do(capsys):
    for command in ("generate", "verify"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
    generate, verify = capsys.readouterr().out.split("usage: lstmgen verify")
    flat = " ".join(generate.split())
    assert "default: model, e.g. model.c and model.h" in flat
    assert "default: the current folder" in flat and "(default: c)" in flat
    flat = " ".join(verify.split())
    assert "the self-test runs on the device" in flat and "changes nothing verify runs" in flat
    assert "random sequences to compare (default: 16)" in flat and "--report" in flat
    assert "--quiet" in flat and "--verbose" in flat and "numpy" in flat


def test_bare_generate_writes_model_c_and_h_into_the_current_folder(tmp_path, monkeypatch):
    npz = save_ir(branch_models()["tiny"], tmp_path / "tiny.npz")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["generate", str(npz), "--quiet"]) == 0
    assert sorted(p.name for p in work.iterdir()) == ["model.c", "model.h"]


def test_files_that_are_not_what_their_name_says_get_one_clear_line(tmp_path, capsys):
    """A text file named .npz, a folder named .keras, an --inputs file that is not .npy,
    save-ir into a missing folder: one line each, exit 2, nothing written."""
    (tmp_path / "x.npz").write_text("hello\n")
    (tmp_path / "folder.keras").mkdir()
    npz = save_ir(branch_models()["tiny"], tmp_path / "tiny.npz")
    (tmp_path / "inputs.npy").write_text("1 2 3\n")
    assert main(["inspect", str(tmp_path / "x.npz")]) == 2
    assert main(["inspect", str(tmp_path / "folder.keras")]) == 2
    assert main(["verify", str(npz), "--inputs", str(tmp_path / "inputs.npy")]) == 2
    assert main(["save-ir", str(npz), str(tmp_path / "missing" / "m.npz")]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert errors == [
        f"lstmgen: error: {tmp_path / 'x.npz'}: not an lstmgen IR .npz file (not a zip archive)",
        f"lstmgen: error: {tmp_path / 'folder.keras'} is a folder, not a model file",
        f"lstmgen: error: --inputs {tmp_path / 'inputs.npy'}: not an .npy file (write one "
        "with numpy.save, shape [N, T, D])",
        f"lstmgen: error: cannot write {tmp_path / 'missing' / 'm.npz'}: folder "
        f"{tmp_path / 'missing'} does not exist",
    ]
    assert not (tmp_path / "missing").exists()


def test_a_text_file_named_keras_gets_one_clear_line(tmp_path, capsys):
    """lstmgen's own .keras reader names what is wrong (Keras itself says 'File not found'
    for a file that exists)."""
    (tmp_path / "x.keras").write_text("not a model\n")
    assert main(["inspect", str(tmp_path / "x.keras")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and error.startswith("lstmgen: error: ")
    assert "not found" not in error.lower() and "not a" in error, error
