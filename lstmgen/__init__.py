"""lstmgen: trained LSTM models to standalone C99, pure-Python and MATLAB inference code.

Public API: `load` (any supported model into the IR), `generate` (IR to files),
`verify` (generated code against the framework's own predictions), `save_ir`/`load_ir`.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .api import generate, load, verify  # noqa: E402
from .errors import LstmgenError, ModelError  # noqa: E402
from .ir import LSTM, Activation, Dense, Model  # noqa: E402
from .ir_io import load_ir, save_ir  # noqa: E402

__all__ = [
    "load",
    "generate",
    "verify",
    "save_ir",
    "load_ir",
    "Model",
    "LSTM",
    "Dense",
    "Activation",
    "LstmgenError",
    "ModelError",
    "__version__",
]
