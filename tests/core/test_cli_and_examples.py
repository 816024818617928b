"""The CLI end to end on the shipped example, generated_examples/ freshness, determinism
across processes, and the wheel carrying its templates."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import pytest
from irmodels import branch_models
from support import ROOT  # noqa: E402

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


def test_wheel_ships_the_templates(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.fail(result.stderr)
    wheel = next(tmp_path.glob("lstmgen-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "lstmgen/templates/c/model.c.j2" in names
    assert "lstmgen/templates/c/layers/lstm.j2" in names  # the kinds' templates too
    assert "lstmgen/cli.py" in names and not any(n.startswith("tests/") for n in names)


def test_readme_support_table_is_generated_from_the_code():
    from lstmgen.support import block

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert block() in readme, (
        "README.md's support table is stale: run python -m lstmgen.support --write README.md"
    )
