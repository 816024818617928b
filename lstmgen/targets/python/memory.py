"""What a generated Python module holds in memory (`lstmgen inspect --target python`)."""

from __future__ import annotations

from typing import Any

from ...ir import Model

#: Bytes a weight takes after import. CPython: a float object (24) and a tuple slot (8).
#: MicroPython: the literal text, which it keeps with the module's constants (~11-12 with
#: the string objects), and the float32 array (4). Measured with gc.mem_alloc().
CPYTHON_BYTES_PER_WEIGHT = 32
MICROPYTHON_BYTES_PER_WEIGHT = 16.5
#: The largest model measured to import and run in MicroPython's default 2 MB heap
#: (15 -> LSTM(140) -> Dense(5)); the heap fragments before it fills.
MICROPYTHON_DEFAULT_HEAP_WEIGHTS = 88_000


def memory_report(model: Model, **options: Any) -> str:
    """What the generated module holds in memory, under CPython and MicroPython."""
    n = model.parameter_count()
    micro = n * MICROPYTHON_BYTES_PER_WEIGHT
    fits = (
        "fits MicroPython's default 2 MB heap"
        if n <= MICROPYTHON_DEFAULT_HEAP_WEIGHTS
        else "needs a MicroPython heap larger than the default 2 MB "
        f"(micropython -X heapsize={max(4, int(micro * 2.5 / 2**20) + 1)}M)"
    )
    return (
        f"target python: {n} weights\n"
        f"  CPython: about {n * CPYTHON_BYTES_PER_WEIGHT / 1024:.0f} KiB after import "
        f"({CPYTHON_BYTES_PER_WEIGHT} bytes a weight: float objects in tuples)\n"
        f"  MicroPython: about {micro / 1024:.0f} KiB of heap after import "
        f"({MICROPYTHON_BYTES_PER_WEIGHT:g} bytes a weight: literal text + float32 "
        f"arrays);\n  {fits}"
    )
