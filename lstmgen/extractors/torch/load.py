"""Importing torch and reading PyTorch files safely.

`torch.load(weights_only=True)` runs no pickled code (a file holding anything but tensors
and plain containers is refused), and `map_location="cpu"` lets a state_dict saved on a
GPU machine load on one without CUDA.

Resources are bounded (`lstmgen.limits`): the zip archive's members are checked (declared
size, compression ratio) before torch inflates one, and every tensor is measured by its
declared shape -- a stride-0 or overlapping view of a one-element storage counts at its
full size -- before anything is copied out of it. Only dense real tensors are read.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from ... import limits
from ...errors import MissingDependencyError, ModelError
from ...safe_read import open_zip

#: Keys under which training scripts commonly nest the state_dict in a checkpoint dict.
CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model", "net", "module")


def import_torch() -> Any:
    try:
        import torch
    except ImportError:
        raise MissingDependencyError(
            "the PyTorch extractor needs torch: pip install "
            "'lstmgen[torch]' (CPU build: pip install torch)"
        ) from None
    return torch


def load_state_dict(path: Path) -> tuple[dict[str, Any], list[str]]:
    """The state_dict in `path` (tensors by name, floating ones as float32) and notes on
    how it was found."""
    torch = import_torch()
    if zipfile.is_zipfile(path):  # torch's own format; older files are not zips
        open_zip(path, str(path)).close()
    try:
        content = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, zip errors, unsafe globals
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelError(
            f"{path}: torch.load(weights_only=True) failed: {first} (lstmgen reads "
            "state_dicts: torch.save(module.state_dict(), path))"
        ) from None
    notes: list[str] = []
    if isinstance(content, dict) and not _all_tensors(content, torch):
        for key in CHECKPOINT_KEYS:
            inner = content.get(key)
            if isinstance(inner, dict) and inner and _all_tensors(inner, torch):
                notes.append(f"the state_dict is the checkpoint's entry '{key}'")
                content = inner
                break
    if not isinstance(content, dict) or not content or not _all_tensors(content, torch):
        raise ModelError(
            f"{path}: expected a state_dict (a dict of tensors); save it with "
            "torch.save(module.state_dict(), path)"
        )
    return _checked_tensors(torch, content, path), notes


def _checked_tensors(torch: Any, content: dict, path: Path) -> dict[str, Any]:
    """The tensors by name, each checked by what it declares before any is copied: dense,
    on the CPU, real floating or integer, its shape and all shapes together within the
    limits. Floating tensors come back as float32 (what the IR holds)."""
    budget = limits.ParameterBudget(f"{path}: the state_dict")
    for key, tensor in content.items():
        where = f"{path}: tensor '{key}'"
        if tensor.is_quantized:
            raise ModelError(
                f"{where}: a quantized tensor ({tensor.dtype}); lstmgen reads float tensors"
            )
        if tensor.layout != torch.strided or tensor.is_nested:
            kind = "nested" if tensor.is_nested else str(tensor.layout)
            raise ModelError(f"{where}: a {kind} tensor; lstmgen reads dense tensors")
        if tensor.device.type != "cpu":
            raise ModelError(f"{where}: on device '{tensor.device.type}', not loadable here")
        dtype = tensor.dtype
        if dtype.is_complex or not (dtype.is_floating_point or _is_integer(torch, dtype)):
            raise ModelError(
                f"{where}: dtype {dtype}; lstmgen reads real floating or integer tensors"
            )
        budget.take(limits.check_array(where, tuple(tensor.shape), "the tensor"), where)
    return {
        str(key): tensor.detach().to(torch.float32).contiguous()
        if tensor.dtype.is_floating_point
        else tensor
        for key, tensor in content.items()
    }


def _is_integer(torch: Any, dtype: Any) -> bool:
    return dtype in (torch.bool, torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64)


def _all_tensors(content: dict, torch: Any) -> bool:
    return all(isinstance(v, torch.Tensor) for v in content.values())
