"""What forward may do with h_n (an nn.LSTM/GRU/RNN's stacked final states,
[layers x directions, batch, hidden]) before it becomes layers: pick one entry (h_n[-1],
h_n.squeeze(0)), keep some (h_n[-2:], h_n[[-2, -1]]), put the batch first
(h_n.transpose(0, 1), .permute(1, 0, 2)) and flatten the entries of one sequence into one
vector (.reshape(B, -1), .flatten(1)). The IR can return one direction's final state of a
stacked layer, or a bidirectional layer's two final states concatenated (forward first):
anything else made of h_n is refused.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .context import Context
from .values import FinalState, StateStack

Entry = tuple[int, int]


def entry(ctx: Context, stack: StateStack, index: int) -> FinalState:
    """h_n[index]: one direction's final state of one stacked layer."""
    if stack.cell:
        raise ctx.refuse(
            "c_n (the LSTM's final cell state) is read; lstmgen computes hidden states, "
            "not the cell state"
        )
    items = stack.items()
    if not -len(items) <= index < len(items):
        raise ctx.refuse(f"index {index} of h_n with {len(items)} entries")
    layer, direction = items[index]
    return FinalState(stack.run, layer, direction)


def joined(ctx: Context, stack: StateStack, entries: tuple[Entry, ...]) -> Any:
    """The final states `entries` concatenated over the features, as the IR has them: one
    entry, or one bidirectional layer's forward and backward final states."""
    if len(entries) == 1:
        return entry(ctx, replace(stack, entries=entries), 0)
    if len(entries) == 2 and entries[0][0] == entries[1][0] and [d for _, d in entries] == [0, 1]:
        if stack.cell:
            raise ctx.refuse("c_n (the LSTM's final cell state) is read")
        return stack.run.final(entries[0][0], None)
    raise ctx.refuse(
        f"joins the final states {list(entries)} (layer, direction) of h_n; lstmgen joins "
        "one bidirectional layer's two directions, forward first"
    )


def _dim(ctx: Context, dim: int) -> int:
    if not -3 <= dim < 3:
        raise ctx.refuse(f"dimension {dim} of h_n")
    return dim % 3


def select(ctx: Context, stack: StateStack, dim: int, index: int) -> FinalState:
    if _dim(ctx, dim) != stack.stack_dim:
        raise ctx.refuse("selects from h_n along another axis than its layers x directions")
    return entry(ctx, stack, index)


def slice_entries(
    ctx: Context, stack: StateStack, dim: int, start: Any, end: Any, step: int
) -> StateStack:
    if _dim(ctx, dim) != stack.stack_dim:
        raise ctx.refuse("slices h_n along another axis than its layers x directions")
    return replace(stack, entries=stack.items()[start:end:step])


def pick(ctx: Context, stack: StateStack, positions: list[int]) -> StateStack:
    """h_n[[i, j, ...]]."""
    items = stack.items()
    try:
        return replace(stack, entries=tuple(items[p] for p in positions))
    except IndexError:
        raise ctx.refuse(f"indices {positions} of h_n with {len(items)} entries") from None


def permute(ctx: Context, stack: StateStack, order: list[int]) -> StateStack:
    if [d % 3 for d in order] != [1, 0, 2]:
        raise ctx.refuse(f"permutes h_n as {list(order)}; lstmgen swaps its first two axes")
    return replace(stack, entries=stack.items(), batch_first=not stack.batch_first)


def reshape(ctx: Context, stack: StateStack, shape: list[int], batch: int) -> Any:
    """h_n's entries per sequence as one vector ([batch, entries x hidden])."""
    items = stack.items()
    if len(items) == 1 and list(shape)[:1] in ([batch], [-1]) and len(shape) == 2:
        return entry(ctx, stack, 0)  # [1, B, H] -> [B, H]
    if not stack.batch_first or len(shape) != 2 or shape[0] not in (batch, -1):
        raise ctx.refuse(
            f"views h_n as {list(shape)}; lstmgen flattens h_n's entries per sequence after "
            "putting the batch first (h_n.transpose(0, 1).reshape(batch, -1))"
        )
    return joined(ctx, stack, items)


def squeeze(ctx: Context, stack: StateStack, dims: list[int] | None) -> FinalState:
    items = stack.items()
    if len(items) == 1 and (dims is None or any(_dim(ctx, d) == stack.stack_dim for d in dims)):
        return entry(ctx, stack, 0)
    raise ctx.refuse(f"squeeze of h_n with {len(items)} entries; read one with h_n[k]")
