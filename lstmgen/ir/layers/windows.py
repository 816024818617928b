"""What Conv1D and Pool1D share: each output timestep reads a window of `span` input
timesteps every `stride`, with zero padding ``valid`` (none), ``same`` (TF rule: output
ceil(T/stride) steps, pad_left = total // 2) or ``causal`` (pad_left = span - 1).

They change the number of timesteps (`output_timesteps`) and sit in front of the recurrent
layers only."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..base import Check, Layer

PADDINGS = ("valid", "same", "causal")


def window_padding(t_len: int, span: int, stride: int, padding: str) -> tuple[int, int]:
    """(left padding, output timesteps) of a window of `span` steps every `stride`."""
    if padding == "valid":
        return 0, max(0, (t_len - span) // stride + 1)
    if padding == "causal":
        return span - 1, (t_len - 1) // stride + 1
    out = -(-t_len // stride)  # same: ceil(T / stride), TF's rule
    total = max((out - 1) * stride + span - t_len, 0)
    return total // 2, out


def window_taps(
    x: np.ndarray, span: int, stride: int, dilation: int, pad_left: int, t_out: int, fill: float
) -> np.ndarray:
    """[N, T, F] -> [N, T_out, K, F]: the K taps of each output step (padding = fill)."""
    n, t_len, f = x.shape
    k = (span - 1) // dilation + 1
    padded = np.full((n, t_len + 2 * span + t_out * stride, f), fill)
    padded[:, pad_left : pad_left + t_len] = x
    index = np.arange(t_out)[:, None] * stride + np.arange(k)[None, :] * dilation
    return padded[:, index]


class WindowLayer(Layer):
    """Conv1D and Pool1D: each output step reads a window of `span` input steps."""

    #: reads windows of timesteps (Masking cannot be combined with such a layer)
    windowed: ClassVar[bool] = True
    stride: int
    padding: str

    @property
    def span(self) -> int:
        """Timesteps one output step looks at."""
        raise NotImplementedError

    def padding_left(self, t_len: int) -> int:
        return window_padding(t_len, self.span, self.stride, self.padding)[0]

    def output_timesteps(self, t_len: int) -> int:
        return window_padding(t_len, self.span, self.stride, self.padding)[1]

    @property
    def streamable(self) -> bool:
        return False

    def validate(self, check: Check) -> None:
        if not check.sequence:
            raise check.fail("needs a sequence")
        if any(l.recurrent for l in check.model.layers[: check.index]):
            raise check.fail("Conv1D/pooling is supported in front of the recurrent layers only")
        if self.padding not in self.paddings():
            raise check.fail(f"padding {self.padding!r} is not supported")
        self.validate_window(check)

    def paddings(self) -> tuple[str, ...]:
        return PADDINGS

    def validate_window(self, check: Check) -> None:
        raise NotImplementedError
