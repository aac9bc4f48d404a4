"""torch.einsum as tinydl ops: operands contracted left to right in pairs, each pair one batched matmul (its
batch, free and contracted letters permuted and merged into [batch, rows, K] @ [batch, K, columns]); letters
that appear in one operand only and nowhere later are summed first. Size-1 dims broadcast, as torch's."""
from __future__ import annotations

import math
import string

from ._core import Tensor


def einsum(equation: str, *operands) -> Tensor:
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not operands:
        raise RuntimeError("einsum(): must provide at least one operand")
    inputs, output = _parse(equation.replace(" ", ""), operands)
    terms = [_diagonals(k, letters, x) for k, (letters, x) in enumerate(zip(inputs, operands))]
    letters, x = terms[0]
    for k in range(1, len(terms)):
        later = set(output).union(*(set(t[0]) for t in terms[k + 1:]))
        letters, x = _contract(letters, x, *terms[k], later)
    return _finish(letters, x, output)


def _diagonals(k: int, letters: str, x: Tensor) -> tuple[str, Tensor]:
    """An operand whose letters repeat (`ii`, `bii`: a diagonal, or a trace once summed) as its diagonal view: each
    repeated letter's dims taken as one, at the end, as torch.diagonal puts it."""
    from .linalg import diagonal
    while len(set(letters)) != len(letters):
        c = next(c for c in letters if letters.count(c) > 1)
        i = letters.index(c)
        j = letters.index(c, i + 1)
        if x.shape[i] != x.shape[j]:
            raise RuntimeError(f"einsum(): subscript {c} is repeated for operand {k} but the sizes don't match, "
                               f"{x.shape[j]} != {x.shape[i]}")
        x = diagonal(x, 0, i, j)
        letters = letters[:i] + letters[i + 1:j] + letters[j + 1:] + c
    return letters, x


def _parse(eq: str, operands) -> tuple[list[str], str]:
    lhs, arrow, rhs = eq.partition("->")
    inputs = lhs.split(",")
    if len(inputs) != len(operands):
        raise RuntimeError("einsum(): more operands were provided than specified in the equation"
                           if len(operands) > len(inputs) else
                           "einsum(): fewer operands were provided than specified in the equation")
    used = set("".join(inputs) + rhs) - set(".")
    spare = [c for c in string.ascii_letters if c not in used]
    ell_rank = max((x.ndim - len(s.replace("...", "")) for s, x in zip(inputs, operands) if "..." in s), default=0)
    ell = "".join(spare[:ell_rank])
    out = []
    for s, x in zip(inputs, operands):
        if "..." in s:
            n = x.ndim - len(s.replace("...", ""))
            s = s.replace("...", ell[ell_rank - n:])
        if len(s) != x.ndim:
            raise RuntimeError(f"einsum(): the number of subscripts in the equation ({len(s)}) does not match the "
                               f"number of dimensions ({x.ndim}) for operand {len(out)}"
                               f"{'' if '...' in eq else ' and no ellipsis was given'}")
        out.append(s)
    if arrow:
        rhs = rhs.replace("...", ell)
    else:  # implicit output: the ellipsis, then the letters that appear once, in alphabetical order
        counts = {c: "".join(out).count(c) for c in set("".join(out))}
        rhs = ell + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell))
    return out, rhs


def _sum_out(letters: str, x: Tensor, keep: set) -> tuple[str, Tensor]:
    drop = [i for i, c in enumerate(letters) if c not in keep]
    if not drop:
        return letters, x
    return "".join(c for c in letters if c in keep), x.sum(tuple(drop))


def _contract(la: str, a: Tensor, lb: str, b: Tensor, later: set) -> tuple[str, Tensor]:
    la, a = _sum_out(la, a, set(lb) | later)
    lb, b = _sum_out(lb, b, set(la) | later)
    size = {}
    for letters, x in ((la, a), (lb, b)):
        for c, n in zip(letters, x.shape):
            if size.get(c, 1) != 1 and n != 1 and size[c] != n:
                raise RuntimeError(f"einsum(): operands do not broadcast with remapped shapes (original->remapped): "
                                   f"{list(a.shape)} and {list(b.shape)} at subscript {c!r}")
            size[c] = max(size.get(c, 1), n)
    batch = [c for c in la if c in lb and c in later]
    summed = [c for c in la if c in lb and c not in later]
    rows = [c for c in la if c not in lb]
    cols = [c for c in lb if c not in la]

    def arrange(letters, x, order):
        x = x.permute(*[letters.index(c) for c in order]) if list(letters) != order else x
        return x.expand(tuple(size[c] for c in order))

    a = arrange(la, a, batch + rows + summed)
    b = arrange(lb, b, batch + summed + cols)
    nb, nr, nk, nc = (math.prod(size[c] for c in g) for g in (batch, rows, summed, cols))
    out = a.reshape(nb, nr, nk) @ b.reshape(nb, nk, nc)
    letters = batch + rows + cols
    return "".join(letters), out.reshape(tuple(size[c] for c in letters))


def _finish(letters: str, x: Tensor, output: str) -> Tensor:
    for c in output:
        if c not in letters:
            raise RuntimeError(f"einsum(): output subscript {c} does not appear in the equation for any input "
                               f"operand")
    letters, x = _sum_out(letters, x, set(output))
    if letters == output:
        return x
    return x.permute(*[letters.index(c) for c in output])
