"""tinydl.einsum against torch.einsum: explicit and implicit outputs, ellipses, batch / contracted / free letters,
letters summed before the product, three operands, size-1 broadcasting, letters repeated within an operand
(diagonals and traces); torch's errors for a wrong equation."""
import numpy as np
import pytest
import torch

import tinydl
from tinydl.testing import assert_close

CASES = [
    ("ij,jk->ik", (3, 4), (4, 5)),
    ("bhqd,bhkd->bhqk", (2, 3, 4, 8), (2, 3, 5, 8)),     # attention scores
    ("bhqk,bhkd->bhqd", (2, 3, 4, 5), (2, 3, 5, 8)),
    ("ij->ji", (3, 4)), ("ij->", (3, 4)), ("ij->j", (3, 4)), ("ij", (3, 4)), ("ji", (3, 4)),
    ("i,i->", (5,), (5,)), ("i,j->ij", (3,), (4,)), ("ij,ij->ij", (3, 4), (3, 4)),
    ("...ij,...jk->...ik", (2, 3, 4), (2, 4, 5)), ("...ij,jk", (2, 3, 4), (4, 5)), ("i...->...", (3, 2, 4)),
    ("ij,jk,kl->il", (2, 3), (3, 4), (4, 5)),
    ("bij,bjk->bik", (1, 3, 4), (5, 4, 6)),               # batch 1 broadcast
    ("ijk,ik->j", (2, 3, 4), (2, 4)), ("ij,kl->", (2, 3), (4, 5)), ("bn,anm,bm->ba", (2, 3), (4, 3, 5), (2, 5)),
    ("i j , j k -> i k", (2, 3), (3, 4)),                  # spaces
    # a letter repeated within one operand: its diagonal (summed: a trace), also implicit and under an ellipsis
    ("ii->i", (4, 4)), ("ii", (4, 4)), ("bcii->bc", (2, 3, 4, 4)), ("iii->i", (3, 3, 3)), ("...ii->...i", (2, 3, 3)),
    ("iij,jk->ik", (3, 3, 4), (4, 5)), ("bij,bjj->bi", (2, 3, 4), (2, 4, 4)),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_einsum_matches_torch(rng, case):
    eq, *shapes = case
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    out = tinydl.einsum(eq, *[tinydl.tensor(a) for a in arrays])
    assert_close(out, torch.einsum(eq, *[torch.from_numpy(a) for a in arrays]), rtol=1e-4, atol=1e-4)
    listed = tinydl.einsum(eq, [tinydl.tensor(a) for a in arrays])  # operands as one list, as torch allows
    assert_close(listed, out, rtol=0, atol=0)


def test_einsum_errors(rng):
    x = tinydl.tensor(rng.standard_normal((3, 3)).astype(np.float32))
    with pytest.raises(RuntimeError, match="einsum\\(\\): subscript i is repeated for operand 0 but the sizes don't "
                                           "match, 2 != 3"):
        tinydl.einsum("ii->i", x[:, :2])
    with pytest.raises(RuntimeError, match=r"the number of subscripts in the equation \(3\) does not match the "
                                           r"number of dimensions \(2\) for operand 0"):
        tinydl.einsum("ijk->i", x)
    with pytest.raises(RuntimeError, match="output subscript z does not appear in the equation for any input operand"):
        tinydl.einsum("ij->z", x)
    with pytest.raises(RuntimeError, match="fewer operands were provided than specified in the equation"):
        tinydl.einsum("ij,jk->ik", x)
    with pytest.raises(RuntimeError, match="do not broadcast"):
        tinydl.einsum("ij,ij->ij", x, tinydl.tensor(np.zeros((3, 2), np.float32)))
