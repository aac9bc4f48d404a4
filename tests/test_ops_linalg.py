"""Products and diagonals beyond matmul (tinydl/linalg.py): addmm, addbmm, baddbmm, addmv, mv, dot, vdot,
outer/ger, tensordot, kron, trace, diagonal, diag, diag_embed, tril/triu_indices, block_diag, vander; parity with torch
CPU (odd sizes, broadcast inputs, size-0 and size-1 dims, beta = 0 dropping NaN), torch's errors, both paths."""
import re

import numpy as np
import pytest
import torch

import tinydl
from tinydl.testing import assert_close

from paths import check_paths

r = torch.randn


def _t(x):
    return tinydl.tensor(x.numpy())


@pytest.mark.parametrize("inp,m,k,n", [((3, 5), 3, 4, 5), ((5,), 3, 7, 5), ((1, 1), 2, 1, 3), ((), 4, 3, 2),
                                       ((0, 3), 0, 2, 3), ((2, 3), 2, 0, 3)])
@pytest.mark.parametrize("beta,alpha", [(1, 1), (0.5, -2.0), (0, 1)])
def test_addmm_addmv(inp, m, k, n, beta, alpha):
    i, a, b = r(inp), r(m, k), r(k, n)
    assert_close(tinydl.addmm(_t(i), _t(a), _t(b), beta=beta, alpha=alpha),
                 torch.addmm(i, a, b, beta=beta, alpha=alpha))
    assert_close(_t(i).addmm(_t(a), _t(b), alpha=alpha), i.addmm(a, b, alpha=alpha))
    v, iv = r(k), r(m if len(inp) else ())
    assert_close(tinydl.addmv(_t(iv), _t(a), _t(v), beta=beta, alpha=alpha),
                 torch.addmv(iv, a, v, beta=beta, alpha=alpha))
    assert_close(tinydl.mv(_t(a), _t(v)), torch.mv(a, v))
    assert_close(_t(a).mv(_t(v)), a.mv(v))


def test_beta_zero_ignores_nan_input():
    i, a, b = torch.full((2, 3), float("nan")), r(2, 4), r(4, 3)
    assert_close(tinydl.addmm(_t(i), _t(a), _t(b), beta=0), torch.addmm(i, a, b, beta=0))
    bi, b1, b2 = torch.full((3, 2, 3), float("nan")), r(3, 2, 4), r(3, 4, 3)
    assert_close(tinydl.baddbmm(_t(bi), _t(b1), _t(b2), beta=0), torch.baddbmm(bi, b1, b2, beta=0))


@pytest.mark.parametrize("b,m,k,n", [(3, 2, 4, 5), (1, 1, 1, 1), (4, 3, 7, 1), (0, 2, 3, 2)])
@pytest.mark.parametrize("beta,alpha", [(1, 1), (0.25, 3.0)])
def test_addbmm_baddbmm(b, m, k, n, beta, alpha):
    b1, b2 = r(b, m, k), r(b, k, n)
    i = r(m, n)
    assert_close(tinydl.addbmm(_t(i), _t(b1), _t(b2), beta=beta, alpha=alpha),
                 torch.addbmm(i, b1, b2, beta=beta, alpha=alpha))
    bi = r(1, n)  # broadcast over batch and rows
    assert_close(tinydl.baddbmm(_t(bi), _t(b1), _t(b2), beta=beta, alpha=alpha),
                 torch.baddbmm(bi, b1, b2, beta=beta, alpha=alpha))
    assert_close(_t(bi).baddbmm(_t(b1), _t(b2)), bi.baddbmm(b1, b2))
    assert_close(_t(i).addbmm(_t(b1), _t(b2)), i.addbmm(b1, b2))


@pytest.mark.parametrize("n", [1, 7, 0])
def test_vector_products(n):
    a, b = r(n), r(n)
    for name in ("dot", "vdot", "outer", "ger"):
        assert_close(getattr(tinydl, name)(_t(a), _t(b)), getattr(torch, name)(a, b))
        assert_close(getattr(_t(a), name)(_t(b)), getattr(a, name)(b))
    ia, ib = torch.arange(n), torch.arange(n) * 2
    assert_close(tinydl.dot(_t(ia), _t(ib)), torch.dot(ia, ib))


@pytest.mark.parametrize("sa,sb,dims", [((3, 4, 5), (4, 5, 2), 2), ((3, 4), (4, 5), 1), ((2, 3), (4,), 0),
                                        ((3, 4, 5), (5, 3, 2), ([0, 2], [1, 0])), ((2, 3), (3, 2), ([1], [0])),
                                        ((0, 3), (3, 2), 1)])
def test_tensordot(sa, sb, dims):
    a, b = r(sa), r(sb)
    assert_close(tinydl.tensordot(_t(a), _t(b), dims), torch.tensordot(a, b, dims))


@pytest.mark.parametrize("sa,sb", [((2, 3), (4, 1)), ((3,), (2, 2)), ((2, 1, 3), (2, 2)), ((1,), (5,)),
                                   ((0, 2), (3, 1))])
def test_kron(sa, sb):
    a, b = r(sa), r(sb)
    assert_close(tinydl.kron(_t(a), _t(b)), torch.kron(a, b))
    assert_close(_t(a).kron(_t(b)), a.kron(b))


@pytest.mark.parametrize("shape", [(4, 6), (5, 3), (1, 1), (0, 3)])
@pytest.mark.parametrize("offset", [0, 1, -2, 9])
def test_diagonals(shape, offset):
    x = r(shape)
    assert_close(tinydl.diagonal(_t(x), offset), torch.diagonal(x, offset))
    assert_close(tinydl.diag(_t(x), offset), torch.diag(x, offset))
    assert_close(_t(x).diagonal(offset, 1, 0), x.diagonal(offset, 1, 0))
    v = r(shape[0])
    assert_close(tinydl.diag(_t(v), offset), torch.diag(v, offset))
    assert_close(_t(v).diag(offset), v.diag(offset))
    assert_close(tinydl.trace(_t(x)), torch.trace(x))
    ix = torch.arange(shape[0] * shape[1]).reshape(shape)
    assert_close(tinydl.trace(_t(ix)), torch.trace(ix))


@pytest.mark.parametrize("offset,dim1,dim2", [(0, 0, 2), (1, -1, 1), (-2, 2, 0), (0, -2, -1)])
def test_batched_diagonal_and_diag_embed(offset, dim1, dim2):
    x = r(3, 4, 5)
    assert_close(tinydl.diagonal(_t(x), offset, dim1, dim2), torch.diagonal(x, offset, dim1, dim2))
    assert_close(tinydl.diag_embed(_t(x), offset, dim1, dim2), torch.diag_embed(x, offset, dim1, dim2))
    assert_close(_t(x).diag_embed(offset), x.diag_embed(offset))


@pytest.mark.parametrize("row,col,offset", [(3, 4, 0), (4, 3, 1), (5, 5, -2), (0, 3, 0), (3, 4, 9), (3, 4, -9)])
def test_triangle_indices(row, col, offset):
    for name in ("tril_indices", "triu_indices"):
        assert_close(getattr(tinydl, name)(row, col, offset), getattr(torch, name)(row, col, offset))


def test_block_diag():
    a, b, c = r(2, 3), r(4), torch.tensor(2.5)
    assert_close(tinydl.block_diag(_t(a), _t(b), _t(c)), torch.block_diag(a, b, c))
    ia = torch.arange(4).reshape(2, 2)
    assert_close(tinydl.block_diag(_t(ia), _t(a)), torch.block_diag(ia, a))
    assert_close(tinydl.block_diag(_t(ia)), torch.block_diag(ia))
    assert_close(tinydl.block_diag(_t(torch.zeros(0, 2)), _t(a)), torch.block_diag(torch.zeros(0, 2), a))
    assert tinydl.block_diag().shape == torch.block_diag().shape


Z = tinydl.zeros


@pytest.mark.parametrize("call,exc,message", [
    (lambda: tinydl.mv(Z(3), Z(3)), RuntimeError, "vector \\+ matrix @ vector expected, got 1, 1, 1"),
    (lambda: tinydl.mv(Z(2, 3), Z(4)), RuntimeError, r"size mismatch, got input \(2\), mat \(2x3\), vec \(4\)"),
    (lambda: tinydl.addmv(Z(3), Z(2, 3), Z(3)), RuntimeError,
     r"size mismatch, got input \(3\), mat \(2x3\), vec \(3\)"),
    (lambda: tinydl.dot(Z(2, 3), Z(3)), RuntimeError, "1D tensors expected, but got 2D and 1D tensors"),
    (lambda: tinydl.dot(Z(3), Z(4)), RuntimeError, r"inconsistent tensor size, expected tensor \[3\] and src \[4\] "
                                                   "to have the same number of elements, but got 3 and 4 elements"),
    (lambda: tinydl.dot(Z(3), Z(3, dtype=tinydl.int32)), RuntimeError,
     "dot : expected both vectors to have same dtype, but found Float and Long"),
    (lambda: tinydl.outer(Z(2, 3), Z(3)), RuntimeError, "outer: Expected 1-D argument self, but got 2-D"),
    (lambda: tinydl.addmm(Z(2), Z(3), Z(3, 2)), RuntimeError, "mat1 must be a matrix, got 1-D tensor"),
    (lambda: tinydl.addmm(Z(2), Z(2, 3), Z(4, 2)), RuntimeError,
     r"mat1 and mat2 shapes cannot be multiplied \(2x3 and 4x2\)"),
    (lambda: tinydl.addmm(Z(3, 2), Z(2, 3), Z(3, 2)), RuntimeError,
     r"The expanded size of the tensor \(2\) must match the existing size \(3\) at non-singleton dimension 0"),
    (lambda: tinydl.addbmm(Z(2), Z(2, 3), Z(2, 3, 2)), RuntimeError, "batch1 must be a 3D tensor"),
    (lambda: tinydl.addbmm(Z(2), Z(2, 2, 3), Z(3, 3, 2)), RuntimeError,
     "batch1 and batch2 must have same number of batches, got 2 and 3"),
    (lambda: tinydl.baddbmm(Z(2), Z(2, 2, 3), Z(2, 4, 2)), RuntimeError,
     r"Expected size for first two dimensions of batch2 tensor to be: \[2, 3\] but got: \[2, 4\]."),
    (lambda: tinydl.tensordot(Z(2, 3), Z(4, 5), 1), RuntimeError,
     "contracted dimensions need to match, but first has size 3 in dim -1 and second has size 4 in dim 0"),
    (lambda: tinydl.tensordot(Z(2, 3), Z(3, 5), ([1], [0, 1])), RuntimeError,
     "both dimension lists should have same length"),
    (lambda: tinydl.tensordot(Z(2, 3), Z(3, 5), -1), RuntimeError, "tensordot expects dims >= 0, but got dims=-1"),
    (lambda: tinydl.tensordot(Z(2, 3), Z(3, 5), 3), RuntimeError,
     "tensordot expects dims < ndim_a or ndim_b, but got dims=3"),
    (lambda: tinydl.trace(Z(3)), RuntimeError, "trace: expected a matrix, but got tensor with dim 1"),
    (lambda: tinydl.diag(Z(2, 3, 4)), RuntimeError, "diag\\(\\): Supports 1D or 2D tensors. Got 3D"),
    (lambda: tinydl.diagonal(Z(2, 3), 0, 1, 1), RuntimeError, "diagonal dimensions cannot be identical 1, 1"),
    (lambda: tinydl.diagonal(Z(2, 3), 0, 0, 2), IndexError,
     r"Dimension out of range \(expected to be in range of \[-2, 1\], but got 2\)"),
    (lambda: tinydl.diag_embed(Z(2, 3), 0, 0, 3), IndexError,
     r"Dimension out of range \(expected to be in range of \[-3, 2\], but got 3\)"),
    (lambda: tinydl.tril_indices(-1, 3), RuntimeError, "row must be non-negative, got-1"),
    (lambda: tinydl.triu_indices(3, -4), RuntimeError, "col must be non-negative, got-4"),
    (lambda: tinydl.block_diag(Z(2, 3, 4)), RuntimeError,
     "torch.block_diag: Input tensors must have 2 or fewer dimensions. Input 0 has 3 dimensions"),
])
def test_errors(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


def family(x):
    m = x[0, :4, :3]
    v = x[0, 0, :3]
    return (torch.addmm(x[1, 0, :5], x[0, :, :3], x[1, :3, :5], beta=0.5, alpha=2.0),
            torch.addmv(x[1, :, 0], x[0, :, :3], v), torch.baddbmm(x, x, x.transpose(1, 2)),
            torch.addbmm(x[0, :, :5], x, x.transpose(1, 2)[:, :, :5]), torch.mv(m, v), torch.dot(v, v * 2),
            torch.vdot(v, v), torch.outer(v, x[1, 1]), torch.tensordot(x, x, ([1, 2], [1, 2])),
            torch.kron(m, x[1, :2, :2]), torch.trace(m), torch.diag(m, 1), torch.diag(v), x.diagonal(0, 1, 2),
            torch.diag_embed(x, -1),
            x[0][tuple(torch.tril_indices(5, 5, 1))] + x[1][tuple(torch.triu_indices(5, 5))].sum(),
            torch.block_diag(m, v, x[1, 0, 0]))


@pytest.mark.parametrize("path", ["fx", "torch.export"])
def test_both_paths(path):
    check_paths(family, torch.randn(2, 5, 5), path=path, atol=1e-4)


@pytest.mark.parametrize("sa,sb,dim", [((4, 3), (4, 3), 1), ((3, 5), (3, 5), 0), ((2, 3, 4), (1, 3, 4), 1),
                                       ((2, 5, 3), (2, 1, 3), -1)])
def test_cross(sa, sb, dim):
    a, b = r(sa), r(sb)
    assert_close(tinydl.cross(_t(a), _t(b), dim), torch.cross(a, b, dim=dim))
    assert_close(tinydl.linalg.linalg_cross(_t(a), _t(b), dim), torch.linalg.cross(a, b, dim=dim))
    assert_close(_t(a).cross(_t(b), dim), a.cross(b, dim=dim))


def test_cross_default_dim_and_errors():
    a, b = r(3, 2), r(3, 2)
    with pytest.warns(UserWarning):
        want = torch.cross(a, b)  # torch's deprecated default: the first dim of size 3
    assert_close(tinydl.cross(_t(a), _t(b)), want)
    with pytest.raises(RuntimeError, match="linalg.cross: inputs dimension 1 must have length 3. Got 4 and 4"):
        tinydl.cross(_t(r(2, 4)), _t(r(2, 4)), 1)
    with pytest.raises(RuntimeError, match="linalg.cross: inputs must have the same number of dimensions."):
        tinydl.linalg.linalg_cross(_t(r(2, 3)), _t(r(3)))
    with pytest.raises(RuntimeError, match="no dimension of size 3 in input"):
        tinydl.cross(_t(r(2, 4)), _t(r(2, 4)))
    with pytest.raises(RuntimeError, match="expected scalar type Float but found Long"):
        tinydl.cross(_t(r(2, 3)), tinydl.ones((2, 3), dtype=tinydl.int32), 1)


@pytest.mark.parametrize("beta,alpha", [(1, 1), (0.5, -2.0), (0, 1)])
def test_addr_and_diagflat(beta, alpha):
    i, v1, v2 = r(3, 4), r(3), r(4)
    i[0, 0] = float("nan")  # beta = 0 ignores it, as torch
    assert_close(tinydl.addr(_t(i), _t(v1), _t(v2), beta=beta, alpha=alpha),
                 torch.addr(i, v1, v2, beta=beta, alpha=alpha), equal_nan=True)
    assert_close(_t(i).addr(_t(v1), _t(v2)), i.addr(v1, v2), equal_nan=True)
    with pytest.raises(RuntimeError, match="addr: Expected 1-D argument vec1, but got 2-D"):
        tinydl.addr(_t(i), _t(r(3, 1)), _t(v2))
    x = r(2, 2)
    for offset in (0, 1, -2):
        assert_close(tinydl.diagflat(_t(x), offset), torch.diagflat(x, offset))
    assert_close(_t(x).diagflat(), x.diagflat())


def _cross_family(x):
    return torch.linalg.cross(x[0], x[1]), torch.cross(x[0], x[1], dim=1), torch.addr(x[0], x[1, :, 1], x[0, 0])


@pytest.mark.parametrize("path", ["fx", "torch.export"])
def test_cross_addr_both_paths(path):
    check_paths(_cross_family, torch.randn(2, 4, 3), path=path, atol=1e-5)


@pytest.mark.parametrize("values,N,increasing", [([1, 2, 3], None, False), ([1.5, -2.0, 0.0], 4, True),
                                                 ([True, False], None, False), ([1.0, 2.0], 0, False),
                                                 ([1.0, 2.0], 1, True), ([3, -4, 5], 6, False)])
def test_vander(values, N, increasing):
    got = tinydl.vander(tinydl.tensor(np.array(values)), N, increasing)
    want = torch.vander(torch.tensor(values), N=N, increasing=increasing)
    assert got.shape == tuple(want.shape)
    np.testing.assert_array_equal(got.numpy(), want.numpy())  # the same products in the same order: exact


def test_vander_errors_are_torchs():
    for x, N in ((np.ones((2, 2), np.float32), None), (np.ones(2, np.float32), -1)):
        with pytest.raises(RuntimeError) as ref:
            torch.vander(torch.from_numpy(x), N=N)
        with pytest.raises(RuntimeError, match=re.escape(str(ref.value))):
            tinydl.vander(tinydl.tensor(x), N)
