"""Movement ops (views: reshape/permute/expand/slice, and cat/stack/split...) against torch CPU, including
views of views several deep feeding elementwise ops, and bad input with torch's wording."""

import re

import numpy as np
import pytest
import torch

import tinydl
from tinydl.testing import assert_close


def pair(a):
    a = np.array(a)
    return tinydl.tensor(a), torch.from_numpy(a)


def rand(rng, *shape, dtype=np.float32):
    if dtype == np.int32:
        return rng.integers(-100, 100, shape).astype(np.int32)
    if dtype == np.bool_:
        return rng.random(shape) > 0.5
    return rng.standard_normal(shape).astype(dtype)


def same(out, ref):
    """Movement ops copy values: results must be bit-identical, with the same shape and dtype."""
    assert tuple(out.shape) == tuple(ref.shape)
    assert_close(out, ref, rtol=0, atol=0)


# -- reshape / view / flatten / unflatten / squeeze / unsqueeze ------------------------------------------
@pytest.mark.parametrize("src,shape", [
    ((3, 4), (12,)), ((3, 4), (4, 3)), ((3, 4), (-1,)), ((3, 4), (2, -1)), ((3, 4), (-1, 6)), ((2, 3, 4), (6, 4)),
    ((2, 3, 4), (2, 1, 12)), ((12,), (2, 2, 3)), ((1,), ()), ((), (1, 1)), ((0, 3), (3, 0)), ((0, 3), (-1, 3)),
    ((5, 1), (1, 5)),
])
@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.bool_])
def test_reshape_view(rng, src, shape, dtype):
    x, t = pair(rand(rng, *src, dtype=dtype))
    same(x.reshape(shape), t.reshape(shape))
    same(x.view(shape), t.view(shape))
    if shape:
        same(x.view(*shape), t.view(*shape))
    same(tinydl.reshape(x, shape), torch.reshape(t, shape))


@pytest.mark.parametrize("start,end", [(0, -1), (1, -1), (0, 1), (1, 2), (2, 2), (-2, -1)])
def test_flatten(rng, start, end):
    x, t = pair(rand(rng, 2, 3, 4))
    same(x.flatten(start, end), t.flatten(start, end))
    same(tinydl.flatten(x, start, end), torch.flatten(t, start, end))


def test_flatten_0d(rng):
    x, t = pair(np.array(2.5, np.float32))
    same(x.flatten(), t.flatten())


@pytest.mark.parametrize("dim,sizes", [(0, (2, 3)), (1, (2, 2)), (-1, (4, 1)), (1, (-1, 2)), (0, (6,))])
def test_unflatten(rng, dim, sizes):
    x, t = pair(rand(rng, 6, 4))
    same(x.unflatten(dim, sizes), t.unflatten(dim, sizes))


@pytest.mark.parametrize("dim", [None, 0, 2, -1, 1, (0, 3)])
def test_squeeze(rng, dim):
    x, t = pair(rand(rng, 1, 3, 1, 1))
    if dim is None:
        same(x.squeeze(), t.squeeze())
        same(tinydl.squeeze(x), torch.squeeze(t))
    else:
        same(x.squeeze(dim), t.squeeze(dim))


@pytest.mark.parametrize("dim", [0, 1, 2, -1, -2, -3])
def test_unsqueeze(rng, dim):
    x, t = pair(rand(rng, 3, 4))
    same(x.unsqueeze(dim), t.unsqueeze(dim))
    same(tinydl.unsqueeze(x, dim), torch.unsqueeze(t, dim))


# -- permute / transpose / T / mT -------------------------------------------------------------------------
@pytest.mark.parametrize("dims", [(0, 1, 2), (2, 0, 1), (1, 2, 0), (2, 1, 0), (-1, 0, -2)])
def test_permute(rng, dims):
    x, t = pair(rand(rng, 2, 3, 4))
    same(x.permute(dims), t.permute(dims))
    same(x.permute(*dims), t.permute(*dims))
    same(tinydl.permute(x, dims), torch.permute(t, dims))


def test_permute_of_permute_and_int(rng):
    x, t = pair(rand(rng, 2, 3, 4, 5, dtype=np.int32))
    same(x.permute(3, 1, 0, 2).permute(2, 0, 3, 1), t.permute(3, 1, 0, 2).permute(2, 0, 3, 1))


@pytest.mark.parametrize("d0,d1", [(0, 1), (1, 0), (0, 2), (-1, -2), (1, 1)])
def test_transpose(rng, d0, d1):
    x, t = pair(rand(rng, 2, 3, 4))
    same(x.transpose(d0, d1), t.transpose(d0, d1))
    same(tinydl.transpose(x, d0, d1), torch.transpose(t, d0, d1))


def test_T_and_mT(rng):
    x, t = pair(rand(rng, 3, 5))
    same(x.T, t.T)
    same(x.t(), t.t())
    same(x.mT, t.mT)
    y, u = pair(rand(rng, 2, 3, 4))
    same(y.mT, u.mT)
    same(y.T, u.permute(2, 1, 0))  # torch deprecates .T on 3-D; it reverses all dims
    v, w = pair(rand(rng, 4))
    same(v.T, w)
    same(v.t(), w.t())


def test_mT_of_1d_raises(rng):
    x = tinydl.tensor(rand(rng, 4))
    with pytest.raises(RuntimeError, match="tensor.mT is only supported on matrices or batches of matrices. Got 1-D"):
        x.mT


# -- expand -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("src,shape", [((3, 1), (3, 4)), ((1,), (5,)), ((3, 1), (-1, 4)), ((3, 1), (2, 3, 4)),
                                       ((1, 1), (2, 2, -1, 3)), ((), (2, 3)), ((4,), (4,)), ((2, 1, 3), (2, 0, 3)),
                                       ((1, 3), (0, 3))])
def test_expand(rng, src, shape):
    x, t = pair(rand(rng, *src))
    same(x.expand(shape), t.expand(shape))
    same(x.expand(*shape), t.expand(*shape))
    full = tuple(t.expand(shape).shape)
    same(x.expand_as(tinydl.zeros(full)), t.expand_as(torch.zeros(full)))


def test_contiguous_and_clone(rng):
    x, t = pair(rand(rng, 3, 4))
    same(x.T.contiguous(), t.T.contiguous())
    same(x.T.clone(), t.T.clone())
    same(x.clone(), t.clone())


# -- indexing ---------------------------------------------------------------------------------------------
INDICES = [
    0, -1, 2, slice(None), slice(1, 3), slice(None, None, 2), slice(1, None, 3), slice(-3, None),
    slice(None, -1), slice(5, 1), slice(-100, 100), (1, 2), (-1, -2, 0), (slice(None), 1), (slice(None), -1, 2),
    (Ellipsis, 1), (Ellipsis, slice(None, None, 2)), (0, Ellipsis), (1, Ellipsis, 3), (None,), (None, 1),
    (slice(None), None, 2), (Ellipsis, None), (None, Ellipsis, None), (1, None, slice(1, 3), None),
    (slice(None, None, 3), slice(1, None, 2), slice(None, 3)), Ellipsis, (), (0, 0, 0),
]


@pytest.mark.parametrize("index", INDICES, ids=[repr(i) for i in INDICES])
def test_getitem(rng, index):
    x, t = pair(rand(rng, 4, 5, 6))
    same(x[index], t[index])


def test_getitem_numpy_int_and_tensor_int(rng):
    x, t = pair(rand(rng, 4, 5))
    same(x[np.int64(2)], t[2])
    same(x[1, np.int32(-1)], t[1, -1])
    assert x[2, 3].item() == t[2, 3].item()


def test_getitem_views_of_views(rng):
    x, t = pair(rand(rng, 5, 6))
    same(x.T[1:, ::2].reshape(-1), t.T[1:, ::2].reshape(-1))
    same(x[1:, ::2].T[::2, 1:], t[1:, ::2].T[::2, 1:])
    same(x[::2][1:][:, 3], t[::2][1:][:, 3])
    same(x[..., None][2:, 1::2].permute(2, 0, 1)[0], t[..., None][2:, 1::2].permute(2, 0, 1)[0])


def test_getitem_0d_and_size0(rng):
    x, t = pair(np.array(1.5, np.float32))
    same(x[...], t[...])
    same(x[None], t[None])
    same(x[()], t[()])
    y, u = pair(rand(rng, 0, 3))
    same(y[:, 1], u[:, 1])
    same(y[..., 1:], u[..., 1:])
    z, w = pair(rand(rng, 3, 4))
    same(z[2:2], w[2:2])
    same(z[:, 4:], w[:, 4:])


# -- views several deep feeding elementwise ---------------------------------------------------------------
def test_deep_view_chain(rng):
    x, t = pair(rand(rng, 2, 3, 4, 5))
    b, u = pair(rand(rng, 3))
    out = x.permute(3, 1, 0, 2)[1::2, :, :, 1:].reshape(2, 3, 6).unsqueeze(0).expand(4, 2, 3, 6)
    ref = t.permute(3, 1, 0, 2)[1::2, :, :, 1:].reshape(2, 3, 6).unsqueeze(0).expand(4, 2, 3, 6)
    same(out, ref)
    # the same chain consumed by elementwise ops together with another broadcast view
    out2 = out * b.reshape(1, 1, 3, 1) + out.transpose(1, 3)[..., 1:].transpose(1, 3) ** 2
    ref2 = ref * u.reshape(1, 1, 3, 1) + ref.transpose(1, 3)[..., 1:].transpose(1, 3) ** 2
    assert_close(out2, ref2)
    # reshape that mixes dims of a permuted slice (needs full index unraveling), then slice again
    out3 = x.transpose(1, 3)[:, ::2].reshape(6, -1)[1::2, ::3].flatten()
    ref3 = t.transpose(1, 3)[:, ::2].reshape(6, -1)[1::2, ::3].flatten()
    same(out3, ref3)
    # realized intermediate, then more views
    mid = (x[:, 1:] + 1).realize()
    same(mid.permute(0, 3, 1, 2)[..., ::2].reshape(2, -1)[:, 5:17],
         (t[:, 1:] + 1).permute(0, 3, 1, 2)[..., ::2].reshape(2, -1)[:, 5:17])


def test_expand_then_reshape_then_elementwise(rng):
    x, t = pair(rand(rng, 3, 1, 4))
    out = x.expand(3, 5, 4).reshape(15, 4).T[:, ::2] - x.reshape(3, 4).T[:, :1]
    ref = t.expand(3, 5, 4).reshape(15, 4).T[:, ::2] - t.reshape(3, 4).T[:, :1]
    assert_close(out, ref)


@pytest.mark.parametrize("shape", [(2, 6, 5), (12, 5), (4, 15), (2, 2, 3, 5), (3, 4, 5), (60,), (6, 2, 5, 1)])
def test_reshape_of_permuted_view_sharing_trailing_dims(rng, shape):
    """A reshape of a non-contiguous view regroups only the leading dims it does not share with its source (the
    trailing ones map straight through): every regrouping, with and without shared trailing dims."""
    x, t = pair(rand(rng, 3, 4, 5))
    same(x.permute(1, 0, 2).reshape(shape) * 1, t.permute(1, 0, 2).reshape(shape) * 1)
    same(x.transpose(0, 1).reshape(shape)[..., :1] * 1, t.transpose(0, 1).reshape(shape)[..., :1] * 1)


# -- cat / stack ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shapes,dim", [
    ([(2, 3), (4, 3)], 0), ([(2, 3), (2, 1), (2, 5)], 1), ([(2, 3), (2, 3)], -1), ([(1, 2, 3), (4, 2, 3)], 0),
    ([(2, 2, 3), (2, 2, 1)], 2), ([(2, 3, 1), (2, 4, 1), (2, 1, 1)], 1), ([(3,)], 0), ([(5,), (0,), (2,)], 0),
    ([(2, 0), (2, 3), (2, 0)], 1), ([(0, 3), (0, 3)], 0),
])
def test_cat(rng, shapes, dim):
    pairs = [pair(rand(rng, *s)) for s in shapes]
    same(tinydl.cat([p[0] for p in pairs], dim), torch.cat([p[1] for p in pairs], dim))
    same(tinydl.concat([p[0] for p in pairs], dim=dim), torch.concat([p[1] for p in pairs], dim=dim))


@pytest.mark.parametrize("n", [5, 6, 9, 17])
@pytest.mark.parametrize("dim", [0, 1])
def test_cat_many_builds_tree(rng, n, dim):
    sizes = [int(s) for s in rng.integers(1, 4, n)]
    parts = [pair(rand(rng, *((s, 3) if dim == 0 else (3, s)))) for s in sizes]
    out = tinydl.cat([p[0] for p in parts], dim)
    # no cat node reads more than CAT_FANIN sources (a storage-buffer limit): longer lists become a tree
    assert len(out.node.srcs) <= tinydl._core.CAT_FANIN
    same(out, torch.cat([p[1] for p in parts], dim))


def test_a_cat_of_one_more_part_extends_the_earlier_cat(rng):
    """cat(parts + [x]) where cat(parts) was built before reads that earlier node and x (a dense block's running
    concatenation: one copy per layer); a donated or dropped earlier cat is not read again. Equal to torch."""
    (a, ta), (b, tb), (c, tc), (d, td) = [pair(rand(rng, 2, k + 1, 3)) for k in range(4)]
    ab = tinydl.cat([a, b], 1)
    abc = tinydl.cat([a, b, c], 1)
    assert [s.uid for s in abc.node.srcs] == [ab.node.uid, c.node.uid]
    abc.realize()
    abcd = tinydl.cat([a, b, c, d], 1)
    assert abcd.node.srcs[0] is abc.node
    same(abcd, torch.cat([ta, tb, tc, td], 1))
    tinydl.donate(abc)
    assert all(s is not abc.node for s in tinydl.cat([a, b, c, d], 1).node.srcs)
    same(tinydl.cat([a, b, d], 1), torch.cat([ta, tb, td], 1))  # another last part: the earlier cat still serves


def test_cat_mixed_dtypes_and_views(rng):
    (a, ta), (b, tb), (c, tc) = pair(rand(rng, 2, 3)), pair(rand(rng, 1, 3, dtype=np.int32)), \
        pair(rand(rng, 3, 3, dtype=np.bool_))
    out = tinydl.cat([a, b, c])
    assert out.dtype == tinydl.float32
    same(out, torch.cat([ta, tb, tc]))
    same(tinydl.cat([b, c]), torch.cat([tb, tc]))  # int32 + bool -> int32
    same(tinydl.cat([c, c]), torch.cat([tc, tc]))  # bool stays bool
    # views as inputs, and the cat result consumed by a view and an elementwise op
    out = tinydl.cat([a.T, a.T * 2, b.T.float()], 1)[1:].T
    ref = torch.cat([ta.T, ta.T * 2, tb.T.float()], 1)[1:].T
    same(out, ref)
    assert_close(tinydl.cat([a, a + 1], 0).sum(0), torch.cat([ta, ta + 1], 0).sum(0))


def test_cat_legacy_empty_1d_is_skipped(rng):
    (a, ta) = pair(rand(rng, 2, 3))
    e, te = pair(np.zeros((0,), np.float32))
    same(tinydl.cat([a, e, a]), torch.cat([ta, te, ta]))


def test_one_element_of_a_cat_reads_its_part_only(rng):
    """A 1-element slice of a cat (or a roll) has constant indices: the parts it does not read would index at a
    negative constant, which shader compilers reject even in a branch that never runs (fuzz graph 20293479)."""
    from tinydl.kernels.expr import constant_int
    (a, ta), (b, tb) = pair(rand(rng, 2, 3)), pair(rand(rng, 2, 3))
    for pick in (np.s_[0:1, 0:1], np.s_[1:2, 4:5], np.s_[1:, 2:4], np.s_[0:1, 3:]):
        same(tinydl.cat([a, b], 1)[pick], torch.cat([ta, tb], 1)[pick])
    same(tinydl.cat([a, b * 2, a + b], 0)[5:6, 2:3], torch.cat([ta, tb * 2, ta + tb], 0)[5:6, 2:3])
    same(tinydl.roll(a, 1, 1)[0:1, 0:1], torch.roll(ta, 1, 1)[0:1, 0:1])
    i = np.zeros((1, 4, 2), np.int32), np.array([0] * 14 + [4, 4], np.int32).reshape(2, 4, 2)
    same(tinydl.cat([tinydl.tensor(i[0]), tinydl.tensor(i[1])], 0)[0::3, -1:, 1::1],
         torch.cat([torch.tensor(i[0]), torch.tensor(i[1])], 0)[0::3, -1:, 1::1])
    assert [constant_int(e) for e in ("(0 + (0) * 3)", "(((0)) - 1) * 8", "gi - 1", "3u", "7 / 2", "")] == \
        [0, -8, None, None, None, None]


@pytest.mark.parametrize("dim", [0, 1, 2, -1, -3])
def test_stack(rng, dim):
    parts = [pair(rand(rng, 2, 3)) for _ in range(3)]
    same(tinydl.stack([p[0] for p in parts], dim), torch.stack([p[1] for p in parts], dim))


def test_stack_many_and_0d(rng):
    parts = [pair(np.array(float(i), np.float32)) for i in range(7)]
    same(tinydl.stack([p[0] for p in parts]), torch.stack([p[1] for p in parts]))
    parts = [pair(rand(rng, 2)) for _ in range(6)]
    same(tinydl.stack([p[0] for p in parts], 1), torch.stack([p[1] for p in parts], 1))


# -- split / chunk / unbind / narrow / select -------------------------------------------------------------
@pytest.mark.parametrize("size,dim", [(2, 0), (3, 0), (1, 1), (4, 1), (10, 0), ([1, 2, 2], 0), ([0, 5], 0),
                                      ([3, 1], -1), ((2, 2), 1)])
def test_split(rng, size, dim):
    x, t = pair(rand(rng, 5, 4))
    outs, refs = x.split(size, dim), t.split(size, dim)
    assert len(outs) == len(refs)
    for o, r in zip(outs, refs):
        same(o, r)
    outs = tinydl.split(x, size, dim)
    assert len(outs) == len(refs)
    for o, r in zip(outs, refs):
        same(o, r)


@pytest.mark.parametrize("chunks,dim", [(1, 0), (2, 0), (3, 0), (5, 0), (7, 0), (3, 1), (2, -1)])
def test_chunk(rng, chunks, dim):
    x, t = pair(rand(rng, 5, 4))
    outs, refs = x.chunk(chunks, dim), t.chunk(chunks, dim)
    assert len(outs) == len(refs)
    for o, r in zip(outs, refs):
        same(o, r)
    assert len(tinydl.chunk(x, chunks, dim)) == len(refs)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_unbind(rng, dim):
    x, t = pair(rand(rng, 3, 4))
    outs, refs = x.unbind(dim), t.unbind(dim)
    assert len(outs) == len(refs)
    for o, r in zip(outs, refs):
        same(o, r)


@pytest.mark.parametrize("dim,start,length", [(0, 0, 2), (0, 1, 3), (1, 2, 2), (-1, 0, 0), (1, -2, 2)])
def test_narrow(rng, dim, start, length):
    x, t = pair(rand(rng, 4, 5))
    same(x.narrow(dim, start, length), t.narrow(dim, start, length))


@pytest.mark.parametrize("dim,index", [(0, 0), (0, -1), (1, 3), (-1, 2), (2, -4)])
def test_select(rng, dim, index):
    x, t = pair(rand(rng, 3, 4, 5))
    same(x.select(dim, index), t.select(dim, index))


def test_split_results_feed_elementwise(rng):
    x, t = pair(rand(rng, 6, 4))
    a, b, c = x.split(2)
    ta, tb, tc = t.split(2)
    assert_close(a * b - c.T.T, ta * tb - tc)
    q, k = x.chunk(2, dim=1)
    tq, tk = t.chunk(2, dim=1)
    assert_close(q @ k.T, tq @ tk.T, rtol=1e-4, atol=1e-5)


# -- bad input --------------------------------------------------------------------------------------------
def test_reshape_errors(rng):
    x = tinydl.tensor(rand(rng, 3, 4))
    with pytest.raises(RuntimeError, match=r"shape '\[3, 5\]' is invalid for input of size 12"):
        x.reshape(3, 5)
    with pytest.raises(RuntimeError, match=r"shape '\[3, 5\]' is invalid for input of size 12"):
        x.view(3, 5)
    with pytest.raises(RuntimeError, match="only one dimension can be inferred"):
        x.reshape(-1, -1)
    with pytest.raises(RuntimeError, match=r"shape '\[5, -1\]' is invalid for input of size 12"):
        x.reshape(5, -1)
    with pytest.raises(RuntimeError, match=r"invalid shape dimension -2 at index 0 of shape \[-2, -6\]"):
        x.reshape(-2, -6)
    with pytest.raises(RuntimeError, match=r"unflatten: Provided sizes \[3, 2\] don't multiply up to the size of "
                                           r"dim 1 \(4\) in the input tensor"):
        x.unflatten(1, (3, 2))
    with pytest.raises(RuntimeError, match="flatten\\(\\) has invalid args: start_dim cannot come after end_dim"):
        x.flatten(1, 0)


def test_dim_errors(rng):
    x = tinydl.tensor(rand(rng, 3, 4))
    with pytest.raises(IndexError, match=r"Dimension out of range \(expected to be in range of \[-3, 2\], but got 3\)"):
        x.unsqueeze(3)
    with pytest.raises(IndexError, match=r"Dimension out of range \(expected to be in range of \[-2, 1\], but got 5\)"):
        x.squeeze(5)
    with pytest.raises(IndexError, match=r"Dimension out of range \(expected to be in range of \[-2, 1\], but got 2\)"):
        x.transpose(0, 2)


def test_permute_errors(rng):
    x = tinydl.tensor(rand(rng, 3, 4))
    with pytest.raises(RuntimeError, match=r"number of dimensions in the tensor input does not match the length of "
                                           r"the desired ordering of dimensions i.e. input.dim\(\) = 2 is not equal "
                                           r"to len\(dims\) = 3"):
        x.permute(0, 1, 2)
    with pytest.raises(RuntimeError, match="permute\\(\\): duplicate dims are not allowed."):
        x.permute(1, 1)
    with pytest.raises(RuntimeError, match="permute\\(\\): duplicate dims are not allowed."):
        x.permute(1, -1)


def test_expand_errors(rng):
    x = tinydl.tensor(rand(rng, 3, 1))
    with pytest.raises(RuntimeError, match=r"The expanded size of the tensor \(2\) must match the existing size "
                                           r"\(3\) at non-singleton dimension 0.  Target sizes: \[2, 4\].  Tensor "
                                           r"sizes: \[3, 1\]"):
        x.expand(2, 4)
    with pytest.raises(RuntimeError, match=r"the number of sizes provided \(1\) must be greater or equal to the "
                                           r"number of dimensions in the tensor \(2\)"):
        x.expand(3)
    with pytest.raises(RuntimeError, match=r"The expanded size of the tensor \(-1\) isn't allowed in a leading, "
                                           r"non-existing dimension 0"):
        x.expand(-1, 3, 4)


def test_index_errors(rng):
    x = tinydl.tensor(rand(rng, 3))
    with pytest.raises(IndexError, match="index 5 is out of bounds for dimension 0 with size 3"):
        x[5]
    with pytest.raises(IndexError, match="index -4 is out of bounds for dimension 0 with size 3"):
        x[-4]
    y = tinydl.tensor(rand(rng, 3, 4))
    with pytest.raises(IndexError, match="index 4 is out of bounds for dimension 1 with size 4"):
        y[0, 4]
    with pytest.raises(IndexError, match="too many indices for tensor of dimension 2"):
        y[0, 0, 0]
    with pytest.raises(IndexError, match=r"an index can only have a single ellipsis"):
        y[..., ...]
    with pytest.raises(ValueError, match="step must be greater than zero"):
        y[::-1]
    with pytest.raises(ValueError, match="slice step cannot be zero"):
        y[:, ::0]
    with pytest.raises(IndexError, match=r"select\(\): index 3 out of range for tensor of size \[3, 4\] at "
                                         r"dimension 0"):
        y.select(0, 3)


def test_narrow_out_of_range_raises(rng):
    x = tinydl.tensor(rand(rng, 3, 4))
    with pytest.raises(RuntimeError, match=r"start \(2\) \+ length \(2\) exceeds dimension size \(3\)"):
        x.narrow(0, 2, 2)
    with pytest.raises(IndexError, match=r"start out of range \(expected to be in range of \[-4, 4\], but got 5\)"):
        x.narrow(1, 5, 0)
    with pytest.raises(RuntimeError, match=r"narrow\(\): length must be non-negative"):
        x.narrow(1, 1, -1)


def test_cat_stack_split_errors(rng):
    a = tinydl.tensor(rand(rng, 3, 4))
    b = tinydl.tensor(rand(rng, 2, 3))
    with pytest.raises(RuntimeError, match=r"Sizes of tensors must match except in dimension 1. Expected size 3 but "
                                           r"got size 2 for tensor number 1 in the list."):
        tinydl.cat([a, b], 1)
    with pytest.raises(RuntimeError, match=r"Sizes of tensors must match except in dimension 0. Expected size 4 but "
                                           r"got size 3 for tensor number 1 in the list."):
        tinydl.cat([a, b], 0)
    with pytest.raises(RuntimeError, match="Tensors must have same number of dimensions: got 2 and 1"):
        tinydl.cat([a, tinydl.tensor(rand(rng, 3))])
    with pytest.raises(ValueError, match="expected a non-empty list of Tensors"):
        tinydl.cat([])
    with pytest.raises(RuntimeError, match=r"stack expects each tensor to be equal size, but got \[3, 4\] at entry 0 "
                                           r"and \[2, 3\] at entry 1"):
        tinydl.stack([a, b])
    with pytest.raises(RuntimeError, match=r"split_with_sizes expects split_sizes to sum exactly to 3 \(input "
                                           r"tensor's size at dimension 0\), but got split_sizes=\[2, 2\]"):
        a.split([2, 2])
    with pytest.raises(RuntimeError, match="chunk expects `chunks` to be greater than 0, got: 0"):
        a.chunk(0)


# -- roll (slices + cat), index_select / indexing by an int tensor (a gather) -----------------------------------
@pytest.mark.parametrize("shape,shifts,dims", [
    ((5,), 2, 0), ((5,), -1, 0), ((5,), 7, 0), ((5,), 5, 0), ((3, 4), 1, 1), ((3, 4), -2, -1), ((3, 4), (1, -3), (0, 1)),
    ((2, 3, 4), (1, 1), (1, 2)), ((2, 3, 4), (2, 1), (2, 2)), ((3, 4), 5, None), ((3, 4), -1, None), ((0, 3), 2, 0),
    ((0, 3), 1, 1), ((1, 7), 3, 0), ((), 1, None),
])
@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.bool_])
def test_roll(rng, shape, shifts, dims, dtype):
    x, t = pair(rand(rng, *shape, dtype=dtype))
    same(x.roll(shifts, dims), torch.roll(t, shifts, dims))
    same(tinydl._tensor.roll(x, shifts, dims), torch.roll(t, shifts, dims))


def test_roll_of_views_feeds_elementwise(rng):
    a = rand(rng, 4, 6, 5)
    x, t = pair(a)
    out = (x.permute(2, 0, 1)[1:, :, ::2].roll((-1, 2), (0, 2)) * 2 + 1).roll(1, 1)
    ref = (t.permute(2, 0, 1)[1:, :, ::2].roll((-1, 2), (0, 2)) * 2 + 1).roll(1, 1)
    same(out, ref)


@pytest.mark.parametrize("shape,dims", [((5,), 0), ((5,), [-1]), ((3, 4), (0, 1)), ((2, 3, 4), [1]), ((2, 3, 4), (2, 0)),
                                        ((1, 4), 0), ((0, 3), 0), ((), [])])
@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.bool_, np.float16])
def test_flip(rng, shape, dims, dtype):
    x, t = pair(rand(rng, *shape, dtype=dtype))
    same(x.flip(dims), t.flip(dims))
    same(tinydl.flip(x, dims), torch.flip(t, dims if isinstance(dims, (list, tuple)) else [dims]))


def test_flip_views_feed_kernels(rng):
    """A flip is a view stepping backwards: it composes with other views and feeds GEMMs, convs and reductions
    through index math (the GEMMs read it element by element: no vec4 layout steps backwards)."""
    a, w, cw = rand(rng, 3, 4, 5, 6), rand(rng, 6, 7), rand(rng, 2, 4, 3, 3)
    (x, t), (xw, tw), (xc, tc) = pair(a), pair(w), pair(cw)
    same(x.flip(1)[:, 1:3, ::2].permute(2, 0, 1, 3).fliplr(), t.flip(1)[:, 1:3, ::2].permute(2, 0, 1, 3).fliplr())
    same(x[:, ::2].flip(1), t[:, ::2].flip(1))
    assert_close(x.flip(-1) @ xw.flip(0), t.flip(-1) @ tw.flip(0), rtol=1e-5, atol=1e-5)
    assert_close(x[0, 0, :1].flip(-1) @ xw.flip(1), t[0, 0, :1].flip(-1) @ tw.flip(1), rtol=1e-5, atol=1e-5)  # gemv
    assert_close(tinydl.nn.functional.conv2d(x.flip(2, 3), xc.flip(-1)),
                 torch.nn.functional.conv2d(t.flip(2, 3), tc.flip(-1)), rtol=1e-5, atol=1e-5)
    assert_close(x.flip(1).reshape(3, -1).sum(1), t.flip(1).reshape(3, -1).sum(1), rtol=1e-5, atol=1e-5)
    with pytest.raises(RuntimeError, match="dim 0 appears multiple times in the list of dims"):
        x.flip([0, -4])
    with pytest.raises(RuntimeError, match="Input must be >= 2-d."):
        tinydl.fliplr(x[0, 0, 0])


@pytest.mark.parametrize("shape,repeats,dim", [((5,), 2, None), ((2, 3), 3, None), ((2, 3), 2, 0), ((2, 3), 3, 1),
                                                ((2, 3, 4), 2, -2), ((2, 3), 0, 1), ((0, 3), 2, 0)])
def test_repeat_interleave(rng, shape, repeats, dim):
    x, t = pair(rand(rng, *shape))
    same(x.repeat_interleave(repeats, dim), t.repeat_interleave(repeats, dim))
    same(tinydl.repeat_interleave(x, repeats, dim=dim), torch.repeat_interleave(t, repeats, dim=dim))


def test_repeat_interleave_refuses_per_element_repeats(rng):
    x = tinydl.tensor(rand(rng, 3))
    with pytest.raises(NotImplementedError, match="per-element repeats"):
        x.repeat_interleave(tinydl.tensor(np.array([1, 2, 3], np.int32)))


def test_roll_errors(rng):
    x = tinydl.tensor(rand(rng, 3, 4))
    with pytest.raises(RuntimeError, match="shifts and dimensions must align. shifts: 2, dims:0"):
        x.roll((1, 2))
    with pytest.raises(RuntimeError, match="shifts and dimensions must align. shifts: 2, dims:1"):
        x.roll((1, 2), (0,))
    with pytest.raises(IndexError, match=r"Dimension out of range \(expected to be in range of \[-2, 1\], but got 2\)"):
        x.roll(1, 2)


@pytest.mark.parametrize("shape,dim,index", [
    ((5, 3), 0, [4, 0, 0, 2]), ((5, 3), 1, [2, 1]), ((2, 3, 4), -1, [3, 3, 0]), ((2, 3, 4), 1, [1]),
    ((4,), 0, [3, 1, 2, 0, 1]), ((4, 2), 0, []), ((1, 6), 0, [0, 0]),
])
@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.bool_])
def test_index_select(rng, shape, dim, index, dtype):
    x, t = pair(rand(rng, *shape, dtype=dtype))
    i = np.array(index, dtype=np.int64)
    same(x.index_select(dim, tinydl.tensor(i)), t.index_select(dim, torch.from_numpy(i)))
    same(tinydl._tensor.index_select(x, dim, tinydl.tensor(i)),
         torch.index_select(t, dim, torch.from_numpy(i)))


@pytest.mark.parametrize("shape,make_index", [
    ((5, 3), lambda i: (i,)),                                  # x[idx]
    ((5, 3), lambda i: (i, slice(None))),                      # x[idx, :]
    ((3, 5), lambda i: (slice(None), i)),                      # x[:, idx]
    ((2, 3, 5), lambda i: (Ellipsis, i)),                      # x[..., idx]
    ((5, 2, 3), lambda i: (i, Ellipsis)),                      # x[idx, ...]
    ((2, 5, 3), lambda i: (slice(None), i, Ellipsis)),         # x[:, idx, ...]
])
@pytest.mark.parametrize("index", [[4, 0, 0, 2], [[1, 2], [3, -1]], [-5, -1], [], [[3]]])
def test_getitem_index_tensor(rng, shape, make_index, index):
    x, t = pair(rand(rng, *shape))
    i = np.array(index, dtype=np.int64).reshape(np.shape(index))
    same(x[make_index(tinydl.tensor(i))], t[make_index(torch.from_numpy(i))])
    same(x[make_index(index)], t[make_index(index)])  # a python list of ints indexes the same way


def test_getitem_index_tensor_computed_and_on_views(rng):
    """Swin's relative position bias: a table (a parameter) picked by a computed index, then viewed."""
    table, ttable = pair(rand(rng, 9, 3))
    coords = np.stack(np.meshgrid(np.arange(2), np.arange(2), indexing="ij")).reshape(2, -1)
    rel = (coords[:, :, None] - coords[:, None, :]).transpose(1, 2, 0) + 1
    idx = (rel[..., 0] * 3 + rel[..., 1]).reshape(-1).astype(np.int64)
    i, ti = pair(idx)
    same(table[i + 0].reshape(4, 4, -1).permute(2, 0, 1).unsqueeze(0),
         ttable[ti + 0].view(4, 4, -1).permute(2, 0, 1).unsqueeze(0))
    # the gathered tensor is a view of a permuted, sliced source; its result feeds elementwise ops
    a, ta = pair(rand(rng, 4, 6, 3))
    j, tj = pair(np.array([2, 0, 1, 2], np.int64))
    # computed values (x * 3 - 1): a GPU may contract them into one fma, so not bit-exact
    assert_close(a.permute(2, 1, 0)[:, 1:][:, j] * 3 - 1, ta.permute(2, 1, 0)[:, 1:][:, tj] * 3 - 1)


def test_index_tensor_errors(rng):
    x, t = pair(rand(rng, 3, 4))
    with pytest.raises(IndexError, match="tensors used as indices must be long, int, byte or bool tensors"):
        x[tinydl.tensor(np.array([0.5], np.float32))]
    # (bool masks and several index tensors work: tests/test_indices.py)
    with pytest.raises(IndexError, match="index is out of bounds for dimension with size 0"):
        tinydl.zeros(0, 3)[tinydl.tensor(np.array([0]))]
    with pytest.raises(IndexError, match=r"index_select\(\): Index is supposed to be a vector"):
        x.index_select(0, tinydl.tensor(np.array([[0]])))
    with pytest.raises(RuntimeError, match=r"index_select\(\): Expected dtype int32 or int64 for index"):
        x.index_select(0, tinydl.tensor(np.array([0.0], np.float32)))


def test_clone_of_buffers_joined_by_a_cat_is_one_new_buffer(rng):
    """torch's clone copies: a cat of stored tensors (kept as pieces, no kernel) clones into one buffer."""
    a, b = rng.standard_normal((3, 4), dtype=np.float32), rng.standard_normal((2, 4), dtype=np.float32)
    joined = tinydl.cat([tinydl.tensor(a), tinydl.tensor(b)])
    assert joined.node.stored and joined.node.kind != "buffer"
    copy = joined.clone().realize()
    assert copy.node.kind == "buffer"
    np.testing.assert_array_equal(copy.numpy(), np.concatenate([a, b]))


@pytest.mark.parametrize("arg,dim", [(3, 0), (2, 1), ([1, 4], 0), ([2, 2, 9], 0), ([-2], 0), ([-9, 3], 1), (10, 0)])
def test_tensor_split(rng, arg, dim):
    x, t = pair(rand(rng, 7, 5))
    ours, ref = x.tensor_split(arg, dim), t.tensor_split(arg, dim)
    assert len(ours) == len(ref)
    for a, b in zip(ours, ref):
        same(a, b)
    with pytest.raises(RuntimeError, match="number of sections must be larger than 0, got 0"):
        tinydl.tensor_split(x, 0)


@pytest.mark.parametrize("name,shape", [("hsplit", (6,)), ("hsplit", (2, 6, 2)), ("vsplit", (6, 2)),
                                        ("dsplit", (2, 2, 6))])
@pytest.mark.parametrize("arg", [3, [1, 4], [-1]])
def test_hsplit_vsplit_dsplit(rng, name, shape, arg):
    x, t = pair(rand(rng, *shape))
    ours, ref = getattr(tinydl, name)(x, arg), getattr(torch, name)(t, arg)
    assert len(ours) == len(ref)
    for a, b in zip(ours, ref):
        same(a, b)
    for a, b in zip(getattr(x, name)(arg), ref):
        same(a, b)


@pytest.mark.parametrize("call", [lambda m, x: m.hsplit(x[0, 0, 0], 2), lambda m, x: m.hsplit(x, 4),
                                  lambda m, x: m.vsplit(x[0, 0], 1), lambda m, x: m.dsplit(x[0], 1),
                                  lambda m, x: m.hsplit(x, 0)])
def test_hsplit_vsplit_dsplit_errors_are_torchs(rng, call):
    x, t = pair(rand(rng, 2, 6, 2))
    with pytest.raises(RuntimeError) as ref:
        call(torch, t)
    with pytest.raises(RuntimeError, match=re.escape(str(ref.value))):
        call(tinydl, x)


@pytest.mark.parametrize("indices,shape", [([5, 7, 0], (2, 4)), (9, (2, 4)), (-1, (2, 4)), ([3, 4], 3),
                                           ([[3, 4], [0, 11]], (2, 3, 2)), (3, ())])
def test_unravel_index(indices, shape):
    ours, ref = tinydl.unravel_index(tinydl.tensor(np.array(indices)), shape), torch.unravel_index(
        torch.tensor(indices), shape)
    assert len(ours) == len(ref)
    for a, b in zip(ours, ref):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_unravel_index_errors_are_torchs():
    for indices, shape, kind in ((np.array([1.0], np.float32), (2,), TypeError), (np.array([True]), (2,), TypeError),
                                 (np.array([1]), (2, -1), ValueError), (np.array([1]), (2, 0), RuntimeError)):
        with pytest.raises(kind) as ref:
            torch.unravel_index(torch.from_numpy(indices), shape)
        with pytest.raises(kind, match=re.escape(str(ref.value))):
            tinydl.unravel_index(tinydl.tensor(indices), shape)


@pytest.mark.parametrize("shape,r", [((2, 18, 4, 5), 3), ((9, 4, 4), 3), ((1, 2, 8, 3, 2), 2)])
def test_pixel_shuffle_and_unshuffle(rng, shape, r):
    import torch.nn.functional as TF
    F = tinydl.nn.functional
    x, t = pair(rand(rng, *shape))
    same(F.pixel_shuffle(x, r), TF.pixel_shuffle(t, r))
    y, u = pair(rand(rng, *shape[:-2], shape[-2] * r, shape[-1] * r))
    same(F.pixel_unshuffle(y, r), TF.pixel_unshuffle(u, r))
    m = torch.nn.Sequential(torch.nn.PixelShuffle(r), torch.nn.PixelUnshuffle(r)).eval()
    same(tinydl.from_torch(m)(x), m(t))
    with pytest.raises(RuntimeError, match=r"input.size\(-3\)=5 is not divisible by 4"):
        F.pixel_shuffle(tinydl.tensor(np.zeros((5, 2, 2), np.float32)), 2)
    with pytest.raises(RuntimeError, match=r"input.size\(-1\)=3 is not divisible by 2"):
        F.pixel_unshuffle(tinydl.tensor(np.zeros((1, 4, 3), np.float32)), 2)


@pytest.mark.parametrize("size,stride,offset", [((2, 2), (1, 1), 0), ((3, 4), (4, 1), 2), ((2, 3, 2), (6, 1, 3), 1),
                                                ((5, 3), (2, 3), 0), ((4,), (0,), 3), ((0, 3), (1, 1), 0)])
def test_as_strided(size, stride, offset):
    x = np.arange(24, dtype=np.float32).reshape(4, 6)
    got = tinydl.tensor(x).as_strided(size, stride, offset)
    assert_close(got, torch.from_numpy(x).as_strided(size, stride, offset))
    assert_close(tinydl.as_strided(tinydl.tensor(x) + 1, size, stride, offset),
                 torch.as_strided(torch.from_numpy(x) + 1, size, stride, offset))


def test_as_strided_errors():
    x = tinydl.tensor(np.arange(8, dtype=np.float32))
    for args, error, message in [(((3, 3), (3, 1), 0), RuntimeError, "requiring a storage size of 36 are out of bounds"),
                                 (((2,), (1, 1)), RuntimeError, "mismatch in length of strides and shape"),
                                 (((2, 2), (-1, 1), 1), RuntimeError, "Negative strides are not supported")]:
        with pytest.raises(error, match=message):
            x.as_strided(*args)
        with pytest.raises(error, match=message):
            torch.arange(8.).as_strided(*args)
    with pytest.raises(NotImplementedError, match=r"as_strided of a view \(permute\)"):
        x.reshape(2, 4).t().as_strided((2, 2), (1, 1))
