"""Tensor creation, dtype inference, host round trips, metadata, dtype conversions, realize() and
device_info(), against torch CPU."""
import numpy as np
import pytest
import torch

import tinydl
from tinydl.testing import assert_close

HAS_F16 = tinydl.runtime.get_runtime().has_f16
TORCH_DT = {tinydl.float32: torch.float32, tinydl.int32: torch.int32, tinydl.bool: torch.bool,
            tinydl.float16: torch.float16}


def same(out, ref):
    assert tuple(out.shape) == tuple(ref.shape)
    assert_close(out, ref, rtol=0, atol=0)


# -- tinydl.tensor ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("data", [
    [1.5, -2.0, 3.25], [[1, 2, 3], [4, 5, 6]], [True, False, True], [[[0.5]]], 7, -3.5, True, [], [[], []],
    [1, 2.5], [True, 2], [[1.0, 2.0], [3.0, 4.0]],
])
def test_tensor_from_python(data):
    out, ref = tinydl.tensor(data), torch.tensor(data)
    same(out, ref)  # dtype: float -> float32, int -> int32 (torch int64), bool -> bool
    assert out.ndim == ref.ndim


@pytest.mark.parametrize("np_dtype,expected", [
    (np.float32, tinydl.float32), (np.float64, tinydl.float32), (np.int64, tinydl.int32), (np.int32, tinydl.int32),
    (np.int16, tinydl.int32), (np.uint8, tinydl.int32), (np.bool_, tinydl.bool),
])
def test_tensor_from_numpy_dtype_inference(rng, np_dtype, expected):
    a = (rng.standard_normal((3, 4)) * 50)
    a = (a > 0) if np_dtype == np.bool_ else (np.abs(a) if np_dtype == np.uint8 else a).astype(np_dtype)
    for out in (tinydl.tensor(a), tinydl.from_numpy(a)):
        assert out.dtype == expected
        # float64 data is rounded to float32 on the way in, as a torch float32 conversion does
        same(out, torch.from_numpy(a).to({tinydl.float32: torch.float32, tinydl.int32: torch.int32,
                                         tinydl.bool: torch.bool}[expected]))


@pytest.mark.skipif(not HAS_F16, reason="adapter lacks shader-f16")
def test_tensor_from_float16(rng):
    a = rng.standard_normal((2, 5)).astype(np.float16)
    out = tinydl.tensor(a)
    assert out.dtype == tinydl.float16
    same(out, torch.from_numpy(a))
    assert out.numpy().dtype == np.float16
    same(tinydl.tensor(torch.from_numpy(a)), torch.from_numpy(a))


def test_tensor_from_noncontiguous_numpy(rng):
    a = rng.standard_normal((4, 6)).astype(np.float32)
    for view in (a.T, a[::2, 1::3], a[:, ::-1], np.broadcast_to(a[:1], (3, 6))):
        same(tinydl.tensor(view), torch.tensor(np.ascontiguousarray(view)))


@pytest.mark.parametrize("tdtype,expected", [(torch.float32, tinydl.float32), (torch.float64, tinydl.float32),
                                             (torch.int64, tinydl.int32), (torch.int32, tinydl.int32),
                                             (torch.bool, tinydl.bool), (torch.uint8, tinydl.int32)])
def test_tensor_from_torch(rng, tdtype, expected):
    t = torch.from_numpy(rng.standard_normal((2, 3)) * 10).to(tdtype)
    out = tinydl.tensor(t)
    assert out.dtype == expected
    same(out, t.to(TORCH_DT[expected]))
    same(tinydl.tensor(t.T), t.T.to(TORCH_DT[expected]))  # a non-contiguous torch tensor


def test_tensor_explicit_dtype(rng):
    data = [[1.7, -2.2], [0.0, 3.9]]
    for dt, tdt in [(tinydl.float32, torch.float32), (tinydl.int32, torch.int32), (tinydl.bool, torch.bool),
                    ("float32", torch.float32), (torch.int32, torch.int32), (np.float32, torch.float32),
                    (torch.int64, torch.int32), (torch.float64, torch.float32)]:
        same(tinydl.tensor(data, dtype=dt), torch.tensor(data, dtype=tdt))
    x = tinydl.tensor(data)
    assert tinydl.tensor(x) is x
    same(tinydl.tensor(x, dtype=tinydl.int32), torch.tensor(data).int())


@pytest.mark.parametrize("bad", [[2**31], [-2**31 - 1], np.array([0, 2**40], np.int64), torch.tensor([2**33])])
def test_int64_overflow_raises(bad):
    with pytest.raises(RuntimeError, match="cannot be converted to type int32 without overflow"):
        tinydl.tensor(bad)


def test_int32_limits_fit():
    data = [2**31 - 1, -2**31, 0]
    same(tinydl.tensor(data), torch.tensor(data, dtype=torch.int32))


def test_tensor_bad_data_raises():
    with pytest.raises(TypeError, match="mixed/non-numeric"):
        tinydl.tensor([1, "a", None])
    with pytest.raises(TypeError, match="unsupported dtype"):
        tinydl.tensor(np.array([1 + 2j]))
    with pytest.raises(TypeError, match="unsupported dtype"):
        tinydl.tensor([1.0], dtype="complex64")


# -- factories --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(2, 3), (5,), (), (0,), (3, 0, 2), (1, 1, 1)])
def test_zeros_ones_empty(shape):
    for fn in ("zeros", "ones"):
        same(getattr(tinydl, fn)(shape), getattr(torch, fn)(shape))
        if shape:
            same(getattr(tinydl, fn)(*shape), getattr(torch, fn)(*shape))
        same(getattr(tinydl, fn)(shape, dtype=tinydl.int32), getattr(torch, fn)(shape, dtype=torch.int32))
        same(getattr(tinydl, fn)(shape, dtype=tinydl.bool), getattr(torch, fn)(shape, dtype=torch.bool))
    e = tinydl.empty(shape)
    assert e.shape == tuple(torch.empty(shape).shape) and e.dtype == tinydl.float32
    assert e.numpy().shape == shape


def test_zeros_ones_list_shape():
    same(tinydl.zeros([2, 3]), torch.zeros([2, 3]))
    same(tinydl.ones([4]), torch.ones([4]))


@pytest.mark.parametrize("value,dtype", [(7, None), (2.5, None), (True, None), (-1, tinydl.float32),
                                         (3.9, tinydl.int32), (0, tinydl.bool)])
def test_full(value, dtype):
    tdt = None if dtype is None else {tinydl.float32: torch.float32, tinydl.int32: torch.int32,
                                      tinydl.bool: torch.bool}[dtype]
    same(tinydl.full((2, 3), value, dtype=dtype), torch.full((2, 3), value, dtype=tdt))
    same(tinydl.full([4], value, dtype=dtype), torch.full([4], value, dtype=tdt))
    same(tinydl.full((), value, dtype=dtype), torch.full((), value, dtype=tdt))


def test_like_factories(rng):
    a = rng.standard_normal((3, 4)).astype(np.float32)
    x, t = tinydl.tensor(a), torch.from_numpy(a)
    same(tinydl.zeros_like(x), torch.zeros_like(t))
    same(tinydl.ones_like(x), torch.ones_like(t))
    same(tinydl.full_like(x, 4.5), torch.full_like(t, 4.5))
    same(tinydl.full_like(x, 2, dtype=tinydl.int32), torch.full_like(t, 2, dtype=torch.int32))
    same(tinydl.zeros_like(x, dtype=tinydl.bool), torch.zeros_like(t, dtype=torch.bool))
    xi, ti = tinydl.tensor(a > 0), torch.from_numpy(a > 0)
    same(tinydl.ones_like(xi), torch.ones_like(ti))
    xi, ti = tinydl.tensor(a.astype(np.int32)), torch.from_numpy(a.astype(np.int32))
    same(tinydl.full_like(xi, 7), torch.full_like(ti, 7))
    # factories feed ops like any tensor
    assert_close(x + tinydl.ones_like(x) * 2, t + torch.ones_like(t) * 2)


def test_factory_negative_dim_raises():
    with pytest.raises(RuntimeError, match=r"Trying to create tensor with negative dimension -1: \[2, -1\]"):
        tinydl.zeros(2, -1)
    with pytest.raises(RuntimeError, match=r"Trying to create tensor with negative dimension -3: \[-3\]"):
        tinydl.full((-3,), 1.0)


@pytest.mark.parametrize("args", [(5,), (0,), (2, 9), (2, 9, 3), (10, 0, -3), (-4, 4, 2), (3, 3), (0, 1, 0.1),
                                  (1.5,), (-1.0, 2.0, 0.25), (2.0, -1.0, -0.3), (0.5, 3, 1), (5, 1, -1)])
def test_arange(args):
    out, ref = tinydl.arange(*args), torch.arange(*args)
    assert out.shape == tuple(ref.shape)
    # int arguments give exact int32 values; float ones are start + i*step computed in fp32 while torch uses
    # double, then rounds: near a cancellation (2.0 - 7*0.3) the fp32 result is off by up to one fp32 ulp of the
    # largest operand, so the absolute tolerance scales with max(|start|, |end|)
    atol = 2 * float(np.finfo(np.float32).eps) * max(abs(float(a)) for a in args[:2])
    assert_close(out, ref, rtol=0, atol=atol)


def test_arange_dtype_and_ops():
    same(tinydl.arange(6, dtype=tinydl.float32), torch.arange(6, dtype=torch.float32))
    same(tinydl.arange(1.0, 4.0, dtype=tinydl.int32), torch.arange(1.0, 4.0, dtype=torch.int32))
    assert_close(tinydl.arange(12).reshape(3, 4).T * 2.5, torch.arange(12).reshape(3, 4).T * 2.5)


def test_arange_bad_input_raises():
    with pytest.raises(RuntimeError, match="step must be nonzero"):
        tinydl.arange(0, 5, 0)
    with pytest.raises(RuntimeError, match="upper bound and lower bound inconsistent with step sign"):
        tinydl.arange(0, 5, -1)
    with pytest.raises(RuntimeError, match="upper bound and lower bound inconsistent with step sign"):
        torch.arange(0, 5, -1)


# -- host round trips -------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.bool_])
@pytest.mark.parametrize("shape", [(3, 4), (5,), (), (0, 2), (2, 1, 3)])
def test_numpy_round_trip(rng, dtype, shape):
    a = rng.standard_normal(shape) * 10
    a = (a > 0) if dtype == np.bool_ else a.astype(dtype)
    out = tinydl.tensor(a).numpy()
    assert out.dtype == np.dtype(dtype) and out.shape == a.shape
    np.testing.assert_array_equal(out, a)
    np.testing.assert_array_equal(np.asarray(tinydl.tensor(a)), a)


def test_numpy_of_lazy_result_is_a_fresh_copy(rng):
    a = rng.standard_normal((2, 3)).astype(np.float32)
    x = tinydl.tensor(a) * 2
    n1 = x.numpy()
    n1[...] = 0  # writing to the host copy leaves the tensor alone
    np.testing.assert_array_equal(x.numpy(), a * 2)


def test_item(rng):
    for data in (2.5, [[-3]], [True], np.float32(1.25)):
        x, t = tinydl.tensor(data), torch.tensor(data)
        assert x.item() == t.item() and type(x.item()) is type(t.item())
    x = tinydl.tensor(rng.standard_normal((2, 3)).astype(np.float32))
    assert x[1, 2].item() == pytest.approx(float(x.numpy()[1, 2]))
    assert float(x[0, 0]) == x.numpy()[0, 0] and int(tinydl.tensor(3)) == 3 and bool(tinydl.tensor([1.0]))
    with pytest.raises(RuntimeError, match="a Tensor with 6 elements cannot be converted to Scalar"):
        x.item()
    with pytest.raises(RuntimeError, match="a Tensor with 6 elements cannot be converted to Scalar"):
        torch.zeros(2, 3).item()
    with pytest.raises(RuntimeError, match="Boolean value of Tensor with more than one value is ambiguous"):
        bool(x)


def test_tolist(rng):
    for a in (rng.standard_normal((2, 3)).astype(np.float32), rng.integers(-5, 5, (4,)).astype(np.int32),
              rng.random((2, 2)) > 0.5, np.array(1.5, np.float32)):
        out, ref = tinydl.tensor(a).tolist(), torch.from_numpy(a).tolist()
        assert out == ref


def test_repr(rng):
    a = np.array([[1.5, -2.25, 3.0], [0.0, 4.0, -1.0]], np.float32)
    r = repr(tinydl.tensor(a))
    assert r.startswith("tensor(") and r.endswith(")")
    for v in ("1.5", "-2.25", "3.", "4.", "-1."):
        assert v in r
    ri = repr(tinydl.tensor([7, -8]))
    assert ri.startswith("tensor([ 7, -8]") and "int32" in ri
    rb = repr(tinydl.tensor([True, False]))
    assert rb == "tensor([ True, False])" == repr(torch.tensor([True, False]))
    assert repr(tinydl.tensor(2.5)) == "tensor(2.5)"
    assert str(tinydl.tensor([1.0, 2.0]) + 1).startswith("tensor([2., 3.]")


# -- metadata ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(2, 3, 4), (5,), (), (0, 3), (1, 1)])
def test_metadata(rng, shape):
    a = rng.standard_normal(shape).astype(np.float32)
    x, t = tinydl.tensor(a), torch.from_numpy(a)
    assert x.shape == tuple(t.shape) and x.size() == tuple(t.size())
    assert x.ndim == t.ndim and x.dim() == t.dim()
    assert x.numel() == t.numel()
    assert x.dtype == tinydl.float32 and x.is_floating_point()
    for d in range(-x.ndim, x.ndim):
        assert x.size(d) == t.size(d)
    if x.ndim:
        assert len(x) == len(t)
    else:
        with pytest.raises(TypeError, match="len\\(\\) of a 0-d tensor"):
            len(x)
        with pytest.raises(TypeError, match="len\\(\\) of a 0-d tensor"):
            len(t)
    with pytest.raises(IndexError, match="Dimension out of range"):
        x.size(max(x.ndim, 1))
    assert not tinydl.tensor([1, 2]).is_floating_point()


# -- dtype conversions ------------------------------------------------------------------------------------
CONVERT_SRC = {
    # float -> int truncates toward zero; float -> bool is "nonzero" (-0.0 is False, nan is True)
    "float32": np.array([-2.7, -1.5, -0.5, -0.0, 0.0, 0.4, 1.5, 2.999, 100.25, -77.9, np.nan], np.float32),
    "int32": np.array([-5, -1, 0, 1, 2, 1000, -2048, 70000], np.int32),
    "bool": np.array([True, False, True, False]),
}


@pytest.mark.parametrize("target", ["float32", "int32", "bool", "float16"])
@pytest.mark.parametrize("source", ["float32", "int32", "bool"])
def test_to_dtype(source, target):
    a = CONVERT_SRC[source]
    if target == "int32" and source == "float32":
        a = a[~np.isnan(a)]  # nan -> int is undefined in torch
    if target == "float16" and not HAS_F16:
        pytest.skip("adapter lacks shader-f16")
    if target == "float16" and source == "int32":
        a = a[np.abs(a) < 2048]  # exactly representable in f16, so rounding mode does not matter
    x, t = tinydl.tensor(a), torch.from_numpy(a)
    tdt = getattr(tinydl, target if target != "bool" else "bool")
    out = x.to(tdt)
    assert out.dtype == tdt
    same(out, t.to(TORCH_DT[tdt]))
    same(x.to(TORCH_DT[tdt]), t.to(TORCH_DT[tdt]))  # torch dtypes are accepted too
    same(x.type(tdt), t.to(TORCH_DT[tdt]))


def test_conversion_methods(rng):
    a = (rng.standard_normal((3, 4)) * 5).astype(np.float32)
    x, t = tinydl.tensor(a), torch.from_numpy(a)
    same(x.int(), t.int())
    same(x.long(), t.long())  # int64 in torch, int32 in tinydl
    same(x.bool(), t.bool())
    same(x.int().float(), t.int().float())
    same(x.bool().int(), t.bool().int())
    assert x.float() is x  # same dtype: no new node
    same((x * 2).int(), (t * 2).int())  # conversion fused after an op
    same(x.T[1:].int(), t.T[1:].int())  # of a view


@pytest.mark.skipif(not HAS_F16, reason="adapter lacks shader-f16")
def test_float16_round_trip(rng):
    a = (rng.standard_normal((4, 5)) * 100).astype(np.float32)
    x, t = tinydl.tensor(a), torch.from_numpy(a)
    h = x.half()
    assert h.dtype == tinydl.float16
    same(h, t.half())  # f32 -> f16 rounds to nearest even, as torch does
    same(h.float(), t.half().float())
    same(h.int(), t.half().int())
    same(tinydl.tensor(a, dtype=tinydl.float16), t.half())
    # values beyond f16 range become inf, tiny ones flush toward subnormals/zero like torch
    b = np.array([70000.0, -70000.0, 1e-8, 6e-5, 65504.0], np.float32)
    same(tinydl.tensor(b).half(), torch.from_numpy(b).half())


# -- realize / device_info --------------------------------------------------------------------------------
def test_realize_several_at_once(rng):
    a = rng.standard_normal((3, 4)).astype(np.float32)
    x, t = tinydl.tensor(a), torch.from_numpy(a)
    y, z = x * 2 + 1, (x - 1).sum(1)
    assert not y.node.realized and not z.node.realized
    with tinydl.debug.count_kernels() as c:
        r = tinydl.realize(y, z)
    assert r == (y, z)
    assert y.node.realized and z.node.realized
    assert c.count >= 1
    with tinydl.debug.count_kernels() as c2:
        assert_close(y, t * 2 + 1)
        assert_close(z, (t - 1).sum(1))
    assert c2.count == 0  # reading back realized tensors runs no kernels
    w = x.exp()
    assert tinydl.realize(w) is w and w.node.realized
    assert_close(w, t.exp())
    assert x.realize() is x


def test_device_info():
    info = tinydl.device_info()
    assert isinstance(info["adapter"], str) and info["adapter"]
    assert isinstance(info["backend"], str) and info["backend"]
    assert info["limits"]["max-storage-buffers-per-shader-stage"] >= 4
    assert info["limits"]["max-storage-buffer-binding-size"] > 0
    assert isinstance(info["features"], list)
    assert ("shader-f16" in info["features"]) == HAS_F16
