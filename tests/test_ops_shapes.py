"""Shape ops at the top level and as methods, as torch has them: unbind, narrow, select, unflatten, movedim /
moveaxis, swapaxes / swapdims, Tensor.unfold (sliding windows), broadcast_to / broadcast_tensors, meshgrid ('ij' and 'xy'), cartesian_prod, atleast_1d/2d/3d,
hstack / vstack / dstack / column_stack, take_along_dim, rot90, expand_as, type_as; parity with torch CPU, its
errors, both from_torch paths."""
import re

import pytest
import torch

import tinydl
from tinydl.testing import assert_close

from paths import check_paths

r = torch.randn


def _t(x):
    return tinydl.tensor(x.numpy())


def _same(got, want):
    if isinstance(want, (tuple, list)):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert_close(g, w)
    else:
        assert_close(got, want)


X = r(2, 3, 4)
CASES = {
    "unbind": lambda L, x: L.unbind(x, 1),
    "narrow": lambda L, x: L.narrow(x, 2, 1, 2),
    "select": lambda L, x: L.select(x, -1, 3),
    "unflatten": lambda L, x: L.unflatten(x, 2, (2, -1)),
    "movedim": lambda L, x: L.movedim(x, 0, -1),
    "movedim_lists": lambda L, x: L.movedim(x, (0, 2), (1, 0)),
    "moveaxis": lambda L, x: L.moveaxis(x, -1, 0),
    "swapaxes": lambda L, x: L.swapaxes(x, 0, 2),
    "swapdims": lambda L, x: L.swapdims(x, 1, -1),
    "broadcast_to": lambda L, x: L.broadcast_to(x[:, :1], (5, 2, 3, 4)),
    "broadcast_tensors": lambda L, x: L.broadcast_tensors(x, x[0, :, :1], x[0, 0]),
    "meshgrid_ij": lambda L, x: L.meshgrid(x[0, 0], x[1, :, 0], x[0, 0, 0], indexing="ij"),
    "meshgrid_xy": lambda L, x: L.meshgrid(x[0, 0], x[1, :, 0], x[0, :2, 1], indexing="xy"),
    "meshgrid_list": lambda L, x: L.meshgrid([x[0, 0], x[1, :, 0]], indexing="xy"),
    "cartesian_prod": lambda L, x: L.cartesian_prod(x[0, 0], x[1, :, 0], x[0, :2, 1]),
    "cartesian_prod_1": lambda L, x: L.cartesian_prod(x[0, 0]),
    "atleast_1d": lambda L, x: L.atleast_1d(x[0, 0, 0]),
    "atleast_2d": lambda L, x: L.atleast_2d(x[0, 0], x[0, 0, 0], x),
    "atleast_3d": lambda L, x: L.atleast_3d([x[0, 0], x[0, 0, 0], x[0], x]),
    "hstack": lambda L, x: L.hstack([x, x[:, :1]]),
    "hstack_1d": lambda L, x: L.hstack([x[0, 0], x[1, 1, :2]]),
    "vstack": lambda L, x: L.vstack([x[0, 0], x[1, :2]]),
    "dstack": lambda L, x: L.dstack([x[0, 0], x[1, 1]]),
    "dstack_2d": lambda L, x: L.dstack([x[0], x[1]]),
    "column_stack": lambda L, x: L.column_stack([x[0, :, 0], x[1]]),
    "rot90": lambda L, x: L.rot90(x, 1, (1, 2)),
    "rot90_2": lambda L, x: L.rot90(x, 2, (0, -1)),
    "rot90_3": lambda L, x: L.rot90(x, -1, (2, 0)),
    "rot90_0": lambda L, x: L.rot90(x, 4),
}


@pytest.mark.parametrize("name", list(CASES))
def test_top_level(name):
    _same(CASES[name](tinydl, _t(X)), CASES[name](torch, X))


@pytest.mark.parametrize("name", ["narrow", "unflatten", "movedim", "moveaxis", "swapaxes", "swapdims", "unbind",
                                  "broadcast_to", "rot90", "select"])
def test_methods(name):
    method = name
    call = CASES[name]

    class AsMethod:  # L.name(x, ...) as x.name(...)
        def __getattr__(self, _):
            return lambda x, *a, **k: getattr(x, method)(*a, **k)
    _same(call(AsMethod(), _t(X)), call(AsMethod(), X))


@pytest.mark.parametrize("dim,index_shape", [(0, (2, 3, 4)), (1, (2, 5, 4)), (-1, (1, 3, 6)), (2, (2, 1, 1)),
                                              (None, (7,)), (None, (2, 3)), (1, (2, 0, 4))])
def test_take_along_dim(dim, index_shape):
    x = r(2, 3, 4)
    idx = torch.randint(0, x.numel() if dim is None else x.shape[dim], index_shape)
    assert_close(tinydl.take_along_dim(_t(x), _t(idx), dim), torch.take_along_dim(x, idx, dim))
    assert_close(_t(x).take_along_dim(_t(idx), dim), x.take_along_dim(idx, dim))
    assert_close(tinydl.take_along_dim(_t(x), idx, dim), torch.take_along_dim(x, idx, dim))  # host indices


def test_take_along_dim_of_argsort():
    x = r(4, 7)
    assert_close(tinydl.take_along_dim(_t(x), tinydl.argsort(_t(x), 1), 1),
                 torch.take_along_dim(x, x.argsort(1), 1))


def test_size_zero_and_one():
    x = r(0, 3)
    _same(tinydl.hstack([_t(x), _t(x)]), torch.hstack([x, x]))
    _same(tinydl.movedim(_t(x), 0, 1), torch.movedim(x, 0, 1))
    _same(tinydl.meshgrid(_t(r(0)), _t(r(1)), indexing="ij"), torch.meshgrid(r(0), r(1), indexing="ij"))
    _same(tinydl.rot90(_t(r(1, 0)), 1), torch.rot90(r(1, 0), 1))


@pytest.mark.parametrize("shape,dimension,size,step", [
    ((2, 3, 9), -1, 3, 2), ((2, 3, 9), 2, 4, 1), ((2, 7, 4), 1, 7, 3), ((5,), 0, 2, 5), ((2, 3, 4), 1, 0, 1),
    ((0, 3), 0, 0, 1), ((4, 6), 0, 1, 1), ((), 0, 1, 1), ((), 0, 0, 1)])
def test_unfold_gives_every_window_as_a_last_dim(shape, dimension, size, step):
    """Tensor.unfold (timm's HaloNet: blocks of keys and values): windows `step` apart along a dim."""
    x = torch.randn(shape)
    want = x.unfold(dimension, size, step)
    got = _t(x).unfold(dimension, size, step)
    assert tuple(got.shape) == tuple(want.shape)
    assert_close(got, want)


@pytest.mark.parametrize("args,exc,message", [
    ((2, 5, 1), RuntimeError, "maximum size for tensor at dimension 2 is 4 but size is 5"),
    ((2, 2, 0), RuntimeError, "step is 0 but must be > 0"),
    ((2, -1, 1), RuntimeError, "size is -1 but must be >= 0"),
    ((3, 2, 1), IndexError, r"Dimension out of range \(expected to be in range of \[-3, 2\], but got 3\)"),
])
def test_unfold_errors_as_torch(args, exc, message):
    with pytest.raises(exc, match=message):
        torch.zeros(2, 3, 4).unfold(*args)
    with pytest.raises(exc, match=message):
        Z(2, 3, 4).unfold(*args)


def test_expand_as_and_type_as():
    x, y = r(1, 3), r(4, 3)
    assert_close(_t(x).expand_as(_t(y)), x.expand_as(y))
    i = torch.arange(3)
    assert_close(_t(i).type_as(_t(y)), i.type_as(y))


Z = tinydl.zeros


@pytest.mark.parametrize("call,exc,message", [
    (lambda: tinydl.movedim(Z(2, 3, 4), (0, 1), (2,)), RuntimeError,
     r"movedim: Invalid source or destination dims: source \(\[0, 1\] dims\) should contain the same number of dims "
     r"as destination \(\[2\] dims\)"),
    (lambda: tinydl.movedim(Z(2, 3, 4), (0, 0), (1, 2)), RuntimeError,
     r"movedim: repeated dim in `source` \(\[0, 0\]\)"),
    (lambda: tinydl.movedim(Z(2, 3, 4), (0, 1), (2, 2)), RuntimeError,
     r"movedim: repeated dim in `destination` \(\[2, 2\]\)"),
    (lambda: tinydl.movedim(Z(2, 3, 4), 3, 0), IndexError,
     r"Dimension out of range \(expected to be in range of \[-3, 2\], but got 3\)"),
    (lambda: tinydl.broadcast_to(Z(2, 3), (3, 3)), RuntimeError,
     r"The expanded size of the tensor \(3\) must match the existing size \(2\) at non-singleton dimension 0"),
    (lambda: tinydl.broadcast_tensors(Z(2, 3), Z(3, 3)), RuntimeError,
     r"The size of tensor a \(2\) must match the size of tensor b \(3\) at non-singleton dimension 0"),
    (lambda: tinydl.meshgrid(Z(2, 2), Z(3), indexing="ij"), RuntimeError,
     "torch.meshgrid: Expected 0D or 1D tensor in the tensor list but got"),
    (lambda: tinydl.meshgrid(Z(2), Z(3), indexing="foo"), RuntimeError,
     'torch.meshgrid: indexing must be one of "xy" or "ij", but received: foo'),
    (lambda: tinydl.meshgrid(Z(2), Z(3, dtype=tinydl.int32)), RuntimeError,
     "meshgrid expects all tensors to have the same dtype"),
    (lambda: tinydl.meshgrid(), RuntimeError, "meshgrid expects a non-empty TensorList"),
    (lambda: tinydl.hstack([]), RuntimeError, "hstack expects a non-empty TensorList"),
    (lambda: tinydl.vstack([Z(2, 3), Z(2, 4)]), RuntimeError,
     "Sizes of tensors must match except in dimension 0. Expected size 3 but got size 4 for tensor number 1"),
    (lambda: tinydl.take_along_dim(Z(2, 3, 4), Z(2, 3, dtype=tinydl.int32), 1), RuntimeError,
     r"torch.take_along_dim\(\): input and indices should have the same number of dimensions, but got 3 dimensions "
     "for input, and 2 dimensions for indices"),
    (lambda: tinydl.take_along_dim(Z(2, 3), Z(2, 3), 1), RuntimeError,
     r"torch.take_along_dim\(\): dtype of indices should be Long but got Float"),
    (lambda: tinydl.take_along_dim(Z(2, 3), Z(2, 3, dtype=tinydl.int32), 2), IndexError,
     r"Dimension out of range \(expected to be in range of \[-2, 1\], but got 2\)"),
    (lambda: tinydl.take_along_dim(Z(2, 3), Z(4, 1, dtype=tinydl.int32), 1), RuntimeError,
     r"The size of tensor a \(2\) must match the size of tensor b \(4\) at non-singleton dimension 0"),
    (lambda: tinydl.take_along_dim(Z(2, 3), torch.tensor([[3]]), 1), RuntimeError,
     "index 3 is out of bounds for dimension 1 with size 3"),
    (lambda: tinydl.rot90(Z(2, 3), 1, [0, 1, 2]), RuntimeError, "expected total rotation dims == 2, but got dims = 3"),
    (lambda: tinydl.rot90(Z(3), 1, [0, 0]), RuntimeError, "expected total dims >= 2, but got total dims = 1"),
    (lambda: tinydl.rot90(Z(2, 3), 1, [0, 0]), RuntimeError,
     "expected rotation dims to be different, but got dim0 = 0 and dim1 = 0"),
])
def test_errors(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


def family(x):
    idx = x.argsort(-1)
    return (torch.movedim(x, 0, -1), x.moveaxis((0, 1), (1, 0)), torch.swapaxes(x, 0, 2), x.swapdims(1, 2),
            torch.broadcast_to(x[:1], (3, 3, 4)), torch.broadcast_tensors(x, x[0, 0])[1],  # (fx cannot unpack)
            torch.meshgrid(x[0, 0], x[1, :, 0], indexing="xy")[0],
            torch.meshgrid(x[0, 0], x[0, :, 1], indexing="ij")[1],
            torch.hstack([x, x]), torch.vstack([x[0], x[1]]), torch.dstack([x[0], x[1]]),
            torch.column_stack([x[0, :, 0], x[1]]), torch.take_along_dim(x, idx, -1), x.take_along_dim(idx[:, :1], 2),
            torch.rot90(x, 1, (1, 2)), x.rot90(3), torch.atleast_3d(x[0]), torch.unbind(x, 1)[2],
            torch.narrow(x, 2, 1, 2), torch.unflatten(x, 2, (2, 2)), x[:1].expand_as(x), x.type_as(idx),
            x.unfold(2, 2, 1), x.unfold(0, 2, 1) * 2)


@pytest.mark.parametrize("path", ["fx", "torch.export"])
def test_both_paths(path):
    check_paths(family, torch.randn(3, 3, 4), path=path)


def test_cartesian_prod_refuses_what_torch_refuses():
    for args in ((torch.ones(2, 2),), (torch.ones(2), torch.ones(2, dtype=torch.int64))):
        with pytest.raises(RuntimeError) as ref:
            torch.cartesian_prod(*args)
        with pytest.raises(RuntimeError, match=re.escape(str(ref.value))):
            tinydl.cartesian_prod(*(_t(a) for a in args))
