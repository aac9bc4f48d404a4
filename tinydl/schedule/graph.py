"""The recorded graph as the scheduler sees it: a post-order walk of its unrealized part, and the walk's
signature (ops, args, shapes, dtypes and how the nodes connect, never data): the plan cache's key."""
from __future__ import annotations

from ..ops import BUFFER, DONATED, DONATED_MESSAGE, VIEW, Node


def walk(roots: list[Node]) -> tuple[list[Node], tuple, dict[int, int]]:
    """Post-order walk of the unrealized graph behind roots, stopping at realized buffers. Returns (order,
    signature, position of each node's uid in order). A donated tensor whose storage a result took (slots.py)
    raises: its value is gone."""
    pos: dict[int, int] = {}
    order: list[Node] = []
    sig: list[tuple] = []
    for root in roots:
        stack = [(root, False)]
        while stack:
            n, expanded = stack.pop()
            if n.uid in pos:
                continue
            if n.kind == BUFFER:
                pos[n.uid] = len(order)
                order.append(n)
                sig.append(("L", n.shape, n.dtype.name, n.writable))
                continue
            if n.kind == DONATED:
                raise RuntimeError(DONATED_MESSAGE)
            if not expanded:
                stack.append((n, True))
                for s in reversed(n.srcs):
                    if s.uid not in pos:
                        stack.append((s, False))
                continue
            pos[n.uid] = len(order)
            order.append(n)
            sig.append((n.kind, n.op, n.arg, n.shape, n.dtype.name, tuple(pos[s.uid] for s in n.srcs), n.rounds))
    sig.append(("roots", tuple(pos[r.uid] for r in roots)))
    return order, tuple(sig), pos


def alias_reshape(n: Node) -> None:
    """A reshape of realized data is the same bytes: share the buffer instead of running a copy."""
    base = n
    while base.kind == VIEW and base.op == "reshape":
        base = base.srcs[0]
    if base is not n and base.kind == BUFFER:
        base.buffer.shared = True  # (a donated one is no longer written in place: the reshape would change too)
        n.become_buffer(base.buffer)


def stored_leaves(n: Node) -> list[Node]:
    """The buffers behind a stored node (itself, or the pieces of a tensor larger than one binding), in order."""
    return [n] if n.kind == BUFFER else [b for s in n.srcs for b in stored_leaves(s)]
