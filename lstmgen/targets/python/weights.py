"""The float32 values of a model as Python source text: the exact literal strings.

Weights are written as exact float32 literals (`lstmgen.literals.float_literal`), flattened
row-major, PER_LINE to a line, inside string literals that the generated module parses at
import time into float32 `array('f')` rows (its `_floats`, `_rows`, `_matrix`, `_vector`).
A module of tens of thousands of bare float literals does not compile within MicroPython's
default heap (each literal becomes a parse node and a boxed float); strings do.

Which arrays a layer stores, and how they are laid out, is in
its kind's template (`templates/python/layers/<kind>.j2`, `weights` macro).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...literals import float_literal

#: Literals per line in the weight strings, and lines per string object: adjacent string
#: literals join at compile time, so one string holds 240 values. Fewer, larger string
#: objects leave MicroPython's heap less fragmented than one string per line; much larger
#: ones need too much contiguous memory while MicroPython compiles them.
PER_LINE = 6
LINES_PER_STRING = 40


def weight_source(values: Any) -> list[str]:
    """Source lines holding a float32 array, flattened row-major, as exact literals.

    PER_LINE literals a line; a string of LINES_PER_STRING adjacent literals (each line
    but the string's last ends with a space inside its quotes), then a comma.
    """
    texts = [float_literal(float(v)) for v in np.asarray(values, np.float32).ravel()]
    lines = [" ".join(texts[k : k + PER_LINE]) for k in range(0, len(texts), PER_LINE)]
    source = []
    for k, line in enumerate(lines):
        ends_string = k % LINES_PER_STRING == LINES_PER_STRING - 1 or k == len(lines) - 1
        source.append(f'"{line}",' if ends_string else f'"{line} "')
    return source
