"""The options of the C target (`lstmgen generate --target c ...`), their validation and
what each build mode promises (the default `verify` tolerance, the self-test's).

* ``quantize``: ``None`` (float32 weights), ``"int8"`` / ``"int16"`` (integer weights with
  one float scale per unit, float math), ``"fixed16"`` (all-integer Q-format code) or
  ``"int8-full"`` (TensorFlow Lite's integer LSTM, bit-exact with TensorFlow Lite Micro:
  the subpackage `int8_full`);
* ``calibration``: inputs [N, T, D] (an array or a .npy path) that `--quantize int8-full`
  quantizes a float model with (a full-integer .tflite needs none);
* ``math``: ``"libm"`` (default) or ``"builtin"`` (own exp/log1p/expm1/sqrt: no <math.h>);
* ``selftest``: a `lstmgen.sampling.SelftestData` (or True: vectors from the float64
  reference) -> also `NAME_selftest.c`, an on-target check against the framework;
* ``arduino``: also `library.properties` (the folder is then an Arduino library).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...errors import LstmgenError

OPTIONS: tuple[str, ...] = ("quantize", "math", "selftest", "arduino", "calibration")
QUANTIZE_MODES = (None, "int8", "int16", "fixed16", "int8-full")
MATH_MODES = (None, "libm", "builtin")

#: Default `lstmgen verify` tolerance (max abs error against the framework) per mode,
#: measured on the shipped example and the test grid, with margin (docs/microcontroller.md).
#: int8-full: against the float framework for a model quantized here, measured 0.003 to 0.016
#: on the test models with a few hundred calibration sequences (a full-integer .tflite
#: verifies with 0 error against TensorFlow Lite Micro).
DEFAULT_ATOL: dict[str | None, float] = {
    None: 1e-5,
    "int16": 2e-4,
    "int8": 2e-2,
    "fixed16": 5e-3,
    "int8-full": 5e-2,
}
#: What the on-target self-test accepts: |got - expected| <= tol * max(1, |expected|).
SELFTEST_TOL = dict(DEFAULT_ATOL)


@dataclass(frozen=True)
class COptions:
    """The C target's options, validated."""

    quantize: str | None = None
    math: str | None = None
    selftest: Any = None  # None / False, True, or a SelftestData
    arduino: bool = False
    calibration: Any = None  # int8-full only: an array [N, T, D] or a .npy path

    def __post_init__(self) -> None:
        check_backend_options(
            self.quantize, self.math, self.selftest, self.arduino, self.calibration
        )

    @property
    def mode(self) -> str:
        """ "float", "int8", "int16", "fixed16" or "int8-full"."""
        return self.quantize or "float"

    @property
    def builtin_math(self) -> bool:
        return self.math == "builtin"

    @classmethod
    def from_kwargs(cls, **options: Any) -> COptions:
        """Options as `render` takes them; anything else is one clear error."""
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise LstmgenError(
                f"option '{unknown[0]}' does not apply to target 'c'; it "
                f"takes: {', '.join(OPTIONS)}"
            )
        return cls(**options)


def check_backend_options(
    quantize: Any = None,
    math: Any = None,
    selftest: Any = None,
    arduino: Any = None,
    calibration: Any = None,
) -> None:
    """Refuse option values the C target does not know, with one clear line."""
    if quantize not in QUANTIZE_MODES:
        raise LstmgenError(
            f"--quantize {quantize!r} is not a C quantization mode; choose int8, int16, "
            "fixed16 or int8-full"
        )
    if calibration is not None and quantize != "int8-full":
        raise LstmgenError("--calibration applies to --quantize int8-full only")
    if arduino and quantize == "int8-full":
        raise LstmgenError("--arduino is not available with --quantize int8-full")
    if math not in MATH_MODES:
        raise LstmgenError(f"--math {math!r} is not a C math mode; choose libm or builtin")
    if arduino not in (None, True, False):
        raise LstmgenError(f"arduino must be true or false, got {arduino!r}")
    if selftest not in (None, True, False) and not all(
        hasattr(selftest, k) for k in ("x", "y", "oracle")
    ):
        raise LstmgenError("selftest must be true or a SelftestData (x, y, oracle)")


def default_atol(quantize: str | None = None, **options: Any) -> float:
    """The `lstmgen verify` tolerance when --atol is not given (measured, with margin)."""
    check_backend_options(
        quantize=quantize,
        **{k: v for k, v in options.items() if k in OPTIONS and k != "quantize"},
    )
    return DEFAULT_ATOL[quantize]
