"""The generated C compiles without a single warning as C99 (gcc, clang) and as C++,
and hand-built models reaching every template branch match the numpy reference."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from irmodels import branch_models
from support import C_COMPILERS, CXX_WARNINGS, compile_c, require_module, require_tool

from lstmgen.reference import forward
from lstmgen.targets import c as c_backend
from lstmgen.targets.c import runner as c_runner
from lstmgen.verify import error_metrics

MODELS = branch_models()


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, Path]:
    folders = {}
    for key, model in MODELS.items():
        folder = tmp_path_factory.mktemp(key)
        for filename, text in c_backend.render(model, "net").items():
            (folder / filename).write_text(text)
        folders[key] = folder
    return folders


@pytest.mark.parametrize("opts", [["-O0"], ["-O2"], ["-O3", "-march=native"]])  # native: fmaf
@pytest.mark.parametrize("compiler", sorted(C_COMPILERS))
@pytest.mark.parametrize("key", sorted(MODELS))
def test_compiles_without_warnings(rendered, compiler, key, opts):
    compile_c(compiler, rendered[key] / "net.c", *opts)


def test_header_is_self_contained_cxx(rendered, tmp_path):
    exe = require_tool("g++")
    main = tmp_path / "main.cpp"
    main.write_text(
        '#include "net.h"\nint main() { net_state s; net_reset(&s); '
        "float x[NET_INPUT_SIZE] = {0}; float y[NET_OUTPUT_SIZE]; "
        "net_step(&s, x, y); return net_predict(x, 1, y); }\n"
    )
    folder = rendered["all_activations"]
    obj = tmp_path / "net.o"  # compiled as C, linked from C++: the extern "C" guards matter
    result = subprocess.run(
        [require_tool("gcc"), "-std=c99", "-c", str(folder / "net.c"), "-o", str(obj)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    result = subprocess.run(
        [
            exe,
            "-std=c++11",
            *CXX_WARNINGS,
            "-I",
            str(folder),
            str(main),
            str(obj),
            "-lm",
            "-o",
            str(tmp_path / "prog"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert subprocess.run([str(tmp_path / "prog")]).returncode == 0


@pytest.mark.parametrize("key", sorted(MODELS))
def test_branch_models_match_reference(key, tmp_path):
    require_module("cffi")
    model = MODELS[key]
    files = c_backend.render(model, "net")
    module = c_runner.build(model, files, "net", tmp_path)
    for t_len in (1, 7):
        x = np.random.default_rng(t_len).standard_normal((5, t_len, model.input_size))
        got = c_runner.run(model, files, "net", x.astype(np.float32), tmp_path, module=module)
        _, rel = error_metrics(got, forward(model, x.astype(np.float32)))
        assert rel.max() <= 1e-5, (key, t_len, rel)
    if model.streamable:
        x = np.random.default_rng(3).standard_normal((3, 6, model.input_size)).astype(np.float32)
        steps = c_runner.run_steps(model, files, "net", x, tmp_path, module=module)
        ref = forward(model, x)
        last = steps if model.returns_sequences else steps[:, -1]
        assert error_metrics(last, ref)[1].max() <= 1e-5


def test_predict_rejects_bad_arguments(tmp_path):
    require_module("cffi")
    model = MODELS["three_stages"]
    files = c_backend.render(model, "net")
    module = c_runner.build(model, files, "net", tmp_path)
    ffi, lib = module.ffi, module.lib
    x = ffi.new("float[]", 4 * 200)
    y = ffi.new("float[]", [7.0, 7.0])
    assert lib.net_predict(x, 0, y) == -1
    assert lib.net_predict(x, -3, y) == -1
    assert lib.net_predict(ffi.NULL, 3, y) == -1
    assert lib.net_predict(x, 3, ffi.NULL) == -1
    assert lib.net_predict(x, 8, y) == -1  # over NET_MAX_TIMESTEPS (the model's T = 7)
    assert list(y) == [7.0, 7.0], "y must be untouched on error"
    assert lib.net_predict(x, 7, y) == 0


def test_weights_are_const_and_no_malloc():
    for model in MODELS.values():
        source = c_backend.render(model, "net")["net.c"]
        assert "malloc(" not in source
        # the only non-const file-scope data would be "static float NAME[" arrays
        assert not re.search(r"^static float \w+\[", source, re.M)
        includes = [l for l in source.splitlines() if l.startswith("#include")]
        # NAME_step_n's register tiles: x86 intrinsics, only where the compiler has AVX + FMA
        intrinsics = "#if defined(__AVX__) && defined(__FMA__) && defined(FP_FAST_FMAF)"
        if "#include <immintrin.h>" in includes:
            assert source.count("#include <immintrin.h>") == 1
            assert source.index(intrinsics) < source.index("#include <immintrin.h>")
            includes.remove("#include <immintrin.h>")
        assert includes == ['#include "net.h"', "#include <math.h>", "#include <stddef.h>"]
