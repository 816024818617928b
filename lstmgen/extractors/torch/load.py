"""Importing torch and reading PyTorch files safely.

`torch.load(weights_only=True)` runs no pickled code (a file holding anything but tensors
and plain containers is refused), and `map_location="cpu"` lets a state_dict saved on a
GPU machine load on one without CUDA.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import MissingDependencyError, ModelError

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
    """The state_dict in `path` (tensors by name) and notes on how it was found."""
    torch = import_torch()
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
    return {str(k): v for k, v in content.items()}, notes


def _all_tensors(content: dict, torch: Any) -> bool:
    return all(isinstance(v, torch.Tensor) for v in content.values())
