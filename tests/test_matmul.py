"""Parity of tinydl.matmul / @ / bmm / mm / nn.functional.linear with torch CPU, over every GEMM tile variant."""
import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import tinydl
import tinydl.kernels.gemm
import tinydl.nn.functional as F
import tinydl.schedule
from tinydl import explain
from tinydl.debug import count_kernels
from tinydl.testing import assert_close

# the gemvs differ only in lanes per column: the fewest (one subgroup) and the most (one column per workgroup)
GEMVS = ["gemv", "gemv256"]
TILES = [*tinydl.kernels.gemm.TILES, *GEMVS]  # every tile, and gemvs of both extremes


def force_tile(use_options, tile):
    """Force one GEMM tile variant for the rest of the test."""
    use_options(force_tile=tile)
    return tile


@pytest.fixture(autouse=True)
def _fresh_plans():
    """The WGSL checks read the plans cached during the test (_matmul_wgsl)."""
    tinydl.schedule.clear_cache()


def with_tiles(cases, row_every=1):
    """Cross cases with every tile. The "gemv" tile unrolls a 32x256 B-tile load and costs ~1 s of shader compile
    per shape on lavapipe, so where the case list is long it takes every row_every-th case only."""
    out = []
    for i, case in enumerate(cases):
        for tile in TILES:
            if tile in GEMVS and i % row_every:
                continue
            out.append(pytest.param(tile, *case, id=f"{tile}-{i}"))
    return out


def rand(rng, *shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def tol(K):
    """fp32 GEMM: tinydl sums K products in tile order with fma, torch in its own blocked order. With N(0,1)
    inputs each partial sum is O(sqrt(K)), so the rounding difference grows ~ eps * sqrt(K) * sqrt(K); an
    absolute term of 1e-5 * sqrt(K) (plus rtol 1e-4) covers it while still catching any wrong product."""
    return dict(rtol=1e-4, atol=1e-5 * max(1.0, math.sqrt(K)))


def check(actual, expected, K, variant=None, names=None):
    assert_close(actual, expected, **tol(K))
    if variant is not None:
        assert any(f"[{variant}]" in n for n in names), names


# -- shapes: every rank combination torch.matmul accepts -------------------------------------------------
MATMUL_SHAPES = [
    ((5,), (5,)),                       # 1D @ 1D -> 0-d
    ((1,), (1,)),
    ((3, 7), (7,)),                     # 2D @ 1D
    ((7,), (7, 4)),                     # 1D @ 2D
    ((4, 6), (6, 5)),                   # 2D @ 2D
    ((1, 1), (1, 1)),
    ((2, 3, 4), (2, 4, 6)),             # batched 3D
    ((2, 3, 4), (4, 6)),                # 3D @ 2D broadcast
    ((4,), (2, 4, 3)),                  # 1D @ 3D
    ((2, 3, 4), (4,)),                  # 3D @ 1D
    ((2, 1, 3, 4), (5, 4, 6)),          # batch broadcasting (2,1) x (5,)
    ((1, 3, 2, 5), (2, 1, 5, 3)),       # 4D both-sides broadcast
    ((3, 5), (2, 2, 5, 4)),             # 2D @ 4D
]


@pytest.mark.parametrize("tile,sa,sb", with_tiles(MATMUL_SHAPES, row_every=2))
def test_matmul_shapes(rng, use_options, tile, sa, sb):
    force_tile(use_options, tile)
    a, b = rand(rng, *sa), rand(rng, *sb)
    expected = torch.from_numpy(a) @ torch.from_numpy(b)
    with tinydl.debug.count_kernels() as c:
        out = tinydl.tensor(a) @ tinydl.tensor(b)
        out.numpy()
    check(out, expected, sa[-1], tile, c.names)
    assert_close(tinydl.matmul(tinydl.tensor(a), tinydl.tensor(b)), expected, **tol(sa[-1]))


# odd M, N, K; K values straddle the tile K steps (16 for tile64/tile32, 32 for row)
ODD_MNK = [
    (1, 1, 1), (1, 17, 33), (3, 5, 17), (17, 3, 65), (33, 17, 16), (65, 33, 31),
    (130, 3, 17), (3, 130, 33), (17, 65, 130), (2, 7, 1),
]


@pytest.mark.parametrize("tile,M,N,K", with_tiles(ODD_MNK, row_every=2))
def test_matmul_odd_sizes(rng, use_options, tile, M, N, K):
    force_tile(use_options, tile)
    a, b = rand(rng, M, K), rand(rng, K, N)
    with tinydl.debug.count_kernels() as c:
        out = tinydl.mm(tinydl.tensor(a), tinydl.tensor(b))
        out.numpy()
    check(out, torch.mm(torch.from_numpy(a), torch.from_numpy(b)), K, tile, c.names)


@pytest.mark.parametrize("tile,B,M,N,K", with_tiles([(1, 1, 1, 1), (3, 5, 7, 9), (2, 17, 33, 20), (4, 1, 6, 40)],
                                                    row_every=2))
def test_bmm(rng, use_options, tile, B, M, N, K):
    force_tile(use_options, tile)
    a, b = rand(rng, B, M, K), rand(rng, B, K, N)
    with tinydl.debug.count_kernels() as c:
        out = tinydl.bmm(tinydl.tensor(a), tinydl.tensor(b))
        out.numpy()
    check(out, torch.bmm(torch.from_numpy(a), torch.from_numpy(b)), K, tile, c.names)


# -- transposed operands are read through views: one GEMM kernel, no copy kernels ------------------------
@pytest.mark.parametrize("tile", TILES)
def test_x_at_w_transposed_is_a_view(rng, use_options, tile):
    force_tile(use_options, tile)
    x, w = rand(rng, 5, 17), rand(rng, 9, 17)
    tx, tw = tinydl.tensor(x), tinydl.tensor(w)
    with tinydl.debug.count_kernels() as c:
        out = tx @ tw.T
        out.numpy()
    check(out, torch.from_numpy(x) @ torch.from_numpy(w).T, 17, tile, c.names)
    assert c.count == 1, c.names


@pytest.mark.parametrize("tile", TILES)
def test_mT_at_b_is_a_view(rng, use_options, tile):
    force_tile(use_options, tile)
    a, b = rand(rng, 3, 19, 6), rand(rng, 3, 19, 7)
    ta, tb = tinydl.tensor(a), tinydl.tensor(b)
    with tinydl.debug.count_kernels() as c:
        out = ta.mT @ tb
        out.numpy()
    check(out, torch.from_numpy(a).mT @ torch.from_numpy(b), 19, tile, c.names)
    assert c.count == 1, c.names


@pytest.mark.parametrize("tile", TILES)
def test_both_transposed_and_permuted(rng, use_options, tile):
    force_tile(use_options, tile)
    a, b = rand(rng, 6, 2, 5), rand(rng, 7, 6)  # a.permute(1, 2, 0): (2, 5, 6); b.T: (6, 7)
    ta, tb = tinydl.tensor(a), tinydl.tensor(b)
    with tinydl.debug.count_kernels() as c:
        out = ta.permute(1, 2, 0) @ tb.T
        out.numpy()
    check(out, torch.from_numpy(a).permute(1, 2, 0) @ torch.from_numpy(b).T, 6, tile, c.names)
    assert c.count == 1, c.names


@pytest.mark.parametrize("tile", TILES)
def test_sliced_operand(rng, use_options, tile):
    force_tile(use_options, tile)
    a, b = rand(rng, 9, 12), rand(rng, 12, 10)
    out = tinydl.tensor(a)[1:8:2, 2:] @ tinydl.tensor(b)[2:, ::3]
    check(out, torch.from_numpy(a)[1:8:2, 2:] @ torch.from_numpy(b)[2:, ::3], 10)


# -- linear -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("tile,xshape,bias", with_tiles([((17,), True), ((1, 17), False), ((1, 17), True), ((4, 17), False),
                                                      ((2, 3, 17), True), ((2, 1, 3, 17), False)], row_every=2))
def test_linear(rng, use_options, tile, xshape, bias):
    force_tile(use_options, tile)
    x, w = rand(rng, *xshape), rand(rng, 33, 17)
    b = rand(rng, 33) if bias else None
    expected = TF.linear(torch.from_numpy(x), torch.from_numpy(w), None if b is None else torch.from_numpy(b))
    with tinydl.debug.count_kernels() as c:
        out = F.linear(tinydl.tensor(x), tinydl.tensor(w), None if b is None else tinydl.tensor(b))
        out.numpy()
    check(out, expected, 17, tile, c.names)
    assert c.count == 1, c.names  # transpose and bias are fused into the GEMM


def test_linear_accepts_numpy_and_torch(rng):
    x, w, b = rand(rng, 3, 8), rand(rng, 5, 8), rand(rng, 5)
    expected = TF.linear(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b))
    check(F.linear(x, torch.from_numpy(w), b), expected, 8)


@pytest.mark.parametrize("tile", TILES)
def test_matmul_epilogue_chain(rng, use_options, tile):
    force_tile(use_options, tile)
    a, b, r = rand(rng, 6, 13), rand(rng, 13, 9), rand(rng, 6, 9)
    ta, tb, tr = tinydl.tensor(a), tinydl.tensor(b), tinydl.tensor(r)
    out = ((ta @ tb) * 0.5 + tr).relu()
    expected = ((torch.from_numpy(a) @ torch.from_numpy(b)) * 0.5 + torch.from_numpy(r)).relu()
    check(out, expected, 13)


@pytest.mark.parametrize("tile", TILES)
def test_matmul_float16(rng, use_options, tile):
    force_tile(use_options, tile)
    a, b = rand(rng, 5, 24, dtype=np.float16), rand(rng, 24, 7, dtype=np.float16)
    out = tinydl.tensor(a) @ tinydl.tensor(b)
    expected = torch.from_numpy(a) @ torch.from_numpy(b)
    # both accumulate in fp32 and round the result to fp16 once: at most ~1 fp16 ulp (2**-10 relative) apart,
    # plus the fp32 ordering term
    assert_close(out, expected, rtol=2e-3, atol=2e-3)


# -- size-0 dims ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sa,sb", [
    ((0, 5), (5, 4)),        # M = 0
    ((3, 5), (5, 0)),        # N = 0
    ((0, 3, 4), (0, 4, 2)),  # batch = 0
    ((2, 0, 4), (4, 3)),
])
def test_matmul_empty_output(rng, sa, sb):
    a, b = rand(rng, *sa), rand(rng, *sb)
    assert_close(tinydl.tensor(a) @ tinydl.tensor(b), torch.from_numpy(a) @ torch.from_numpy(b))


@pytest.mark.parametrize("tile,sa,sb", with_tiles([((3, 0), (0, 4)), ((2, 1, 0), (2, 0, 5)), ((0,), (0, 3)),
                                               ((0,), (0,))], row_every=2))
def test_matmul_k0_gives_zeros(rng, use_options, tile, sa, sb):
    force_tile(use_options, tile)
    a, b = rand(rng, *sa), rand(rng, *sb)
    expected = torch.from_numpy(a) @ torch.from_numpy(b)
    out = tinydl.tensor(a) @ tinydl.tensor(b)
    assert_close(out, expected)
    assert not np.any(out.numpy())


def test_linear_k0_with_bias(rng):
    x, w, b = rand(rng, 3, 0), rand(rng, 4, 0), rand(rng, 4)
    expected = TF.linear(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b))
    assert_close(F.linear(tinydl.tensor(x), tinydl.tensor(w), tinydl.tensor(b)), expected)


# -- bad input --------------------------------------------------------------------------------------------
def _raises_like_torch(fn_tiny, fn_torch, exc, match):
    with pytest.raises(exc, match=match):
        fn_torch()
    with pytest.raises(exc, match=match):
        fn_tiny()


@pytest.mark.parametrize("sa,sb,msg", [
    ((2, 3), (4, 5), r"mat1 and mat2 shapes cannot be multiplied \(2x3 and 4x5\)"),
    ((2, 3, 4), (5, 6), r"mat1 and mat2 shapes cannot be multiplied"),
    ((3,), (4,), r"inconsistent tensor size, expected tensor \[3\] and src \[4\]"),
])
def test_matmul_shape_mismatch(rng, sa, sb, msg):
    a, b = rand(rng, *sa), rand(rng, *sb)
    _raises_like_torch(lambda: tinydl.tensor(a) @ tinydl.tensor(b), lambda: torch.from_numpy(a) @ torch.from_numpy(b),
                       RuntimeError, msg)


def test_matmul_batch_mismatch(rng):
    a, b = rand(rng, 2, 3, 4), rand(rng, 3, 4, 5)
    _raises_like_torch(lambda: tinydl.tensor(a) @ tinydl.tensor(b), lambda: torch.from_numpy(a) @ torch.from_numpy(b),
                       RuntimeError, r"size of tensor a \(2\) must match the size of tensor b \(3\)")


@pytest.mark.parametrize("sa,sb", [((), (2, 3)), ((3,), ())])
def test_matmul_0d(rng, sa, sb):
    a, b = rand(rng, *sa), rand(rng, *sb)
    _raises_like_torch(lambda: tinydl.matmul(tinydl.tensor(a), tinydl.tensor(b)),
                       lambda: torch.matmul(torch.from_numpy(a), torch.from_numpy(b)),
                       RuntimeError, "both arguments to matmul need to be at least 1D")


def test_matmul_dtype_mismatch(rng):
    a, b = rand(rng, 2, 3), np.ones((3, 2), np.int32)
    _raises_like_torch(lambda: tinydl.tensor(a) @ tinydl.tensor(b), lambda: torch.from_numpy(a) @ torch.from_numpy(b),
                       RuntimeError, "expected m1 and m2 to have the same dtype")


@pytest.mark.parametrize("sa,sb", [((2, 3), (3, 4)), ((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 2)), ((4, 2, 3), (3, 2)),
                                   ((2, 3), (4, 3, 2)), ((5, 1, 2, 3), (4, 3, 2)), ((2, 0), (0, 3)), ((7, 33), (33, 9))])
def test_integer_matmul_is_exact(rng, sa, sb):
    a, b = rng.integers(-300, 300, sa), rng.integers(-300, 300, sb)
    with count_kernels() as c:
        got = (tinydl.tensor(a) @ tinydl.tensor(b)).numpy()
    want = (torch.from_numpy(a) @ torch.from_numpy(b)).numpy()
    assert got.dtype == np.int32 and got.shape == want.shape and np.array_equal(got, want)
    assert c.count == 1  # the products summed in one reduction


def test_integer_mm_bmm_and_a_converted_model(rng):
    a, b, c = rng.integers(-9, 9, (3, 4)), rng.integers(-9, 9, (4, 5)), rng.integers(-9, 9, (2, 4, 5))
    assert np.array_equal(tinydl.mm(tinydl.tensor(a), tinydl.tensor(b)).numpy(), a @ b)
    assert np.array_equal(tinydl.bmm(tinydl.tensor(np.stack([a, a])), tinydl.tensor(c)).numpy(), np.stack([a, a]) @ c)

    class IntProduct(torch.nn.Module):
        def forward(self, x, y):
            return torch.mm(x, y) + torch.bmm(x[None], y[None])[0]

    tm = tinydl.from_torch(IntProduct().eval(), example_inputs=(torch.from_numpy(a), torch.from_numpy(b)))
    assert np.array_equal(tm(tinydl.tensor(a), tinydl.tensor(b)).numpy(), 2 * (a @ b))


def test_integer_matmul_beyond_int32_raises():
    a = np.full((2, 3), 30000, np.int64)  # 3 * 30000^2 > 2^31: torch's int64 holds it, tinydl's int32 does not
    with pytest.raises(RuntimeError, match="integer overflow"):
        (tinydl.tensor(a) @ tinydl.tensor(a.T)).numpy()


@pytest.mark.parametrize("sa,sb", [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 2)), ((2, 3), (3, 2)), ((4, 2, 3), (4, 3, 2)),
                                   ((2, 3), (4, 3, 2))])
def test_bool_matmul_is_refused_as_torch(sa, sb):
    a, b = np.ones(sa, bool), np.ones(sb, bool)
    with pytest.raises(NotImplementedError) as ref:
        torch.from_numpy(a) @ torch.from_numpy(b)
    with pytest.raises(NotImplementedError, match=re.escape(str(ref.value))):
        tinydl.tensor(a) @ tinydl.tensor(b)


@pytest.mark.parametrize("sa,sb,msg", [
    ((2, 3), (2, 3, 2), "batch1 must be a 3D tensor"),
    ((2, 2, 3), (3, 2), "batch2 must be a 3D tensor"),
    ((2, 2, 3), (3, 3, 2), r"Expected size for first two dimensions of batch2 tensor to be: \[2, 3\] but got: \[3, 3\]"),
])
def test_bmm_bad(rng, sa, sb, msg):
    a, b = rand(rng, *sa), rand(rng, *sb)
    _raises_like_torch(lambda: tinydl.bmm(tinydl.tensor(a), tinydl.tensor(b)),
                       lambda: torch.bmm(torch.from_numpy(a), torch.from_numpy(b)), RuntimeError, msg)


@pytest.mark.parametrize("sa,sb,msg", [((2, 2, 3), (3, 2), "self must be a matrix"),
                                       ((2, 3), (1, 3, 2), "mat2 must be a matrix")])
def test_mm_bad(rng, sa, sb, msg):
    a, b = rand(rng, *sa), rand(rng, *sb)
    _raises_like_torch(lambda: tinydl.mm(tinydl.tensor(a), tinydl.tensor(b)),
                       lambda: torch.mm(torch.from_numpy(a), torch.from_numpy(b)), RuntimeError, msg)


@pytest.mark.parametrize("xs,ws,msg", [
    ((2, 3), (5, 4), r"mat1 and mat2 shapes cannot be multiplied \(2x3 and 4x5\)"),
    ((2, 7, 3), (5, 4), r"mat1 and mat2 shapes cannot be multiplied \(14x3 and 4x5\)"),
    ((3,), (5, 4), r"mat1 and mat2 shapes cannot be multiplied \(1x3 and 4x5\)"),
])
def test_linear_shape_mismatch(rng, xs, ws, msg):
    x, w = rand(rng, *xs), rand(rng, *ws)
    _raises_like_torch(lambda: F.linear(tinydl.tensor(x), tinydl.tensor(w)),
                       lambda: TF.linear(torch.from_numpy(x), torch.from_numpy(w)), RuntimeError, msg)


def test_linear_bias_mismatch(rng):
    x, w, b = rand(rng, 2, 4), rand(rng, 5, 4), rand(rng, 3)
    _raises_like_torch(lambda: F.linear(tinydl.tensor(x), tinydl.tensor(w), tinydl.tensor(b)),
                       lambda: TF.linear(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)),
                       RuntimeError, r"size of tensor a \(5\) must match the size of tensor b \(3\)|"
                                     r"expanded size of the tensor \(5\) must match the existing size \(3\)")


def test_batched_input_times_matrix_is_one_product(rng):
    """x [B, L, K] @ W [K, N] (every linear layer over a batch of sequences) runs as one [B*L, K] @ [K, N] GEMM:
    bigger tiles and W read once, rather than B products over a broadcast W."""
    from tinydl.ops import MATMUL
    a, w = rand(rng, 3, 5, 16), rand(rng, 16, 24)
    y = tinydl.tensor(a) @ tinydl.tensor(w)
    node, seen = y.node, []
    while node.kind != MATMUL:
        seen.append(node.kind)
        node = node.srcs[0]
    assert node.shape == (1, 15, 24), (node.shape, seen)
    check(y, np.matmul(a, w), 16)
    bias = rand(rng, 24)
    yb = F.linear(tinydl.tensor(a), tinydl.tensor(w.T.copy()), tinydl.tensor(bias))
    check(yb, np.matmul(a, w) + bias, 16)


def _matmul_wgsl():
    key = tinydl.options.current().plan_key  # the plans made under the current options
    return [s.wgsl for p in tinydl.schedule._plans.values() if p.key[-1] == key
            for s in p.steps if s.name.startswith("matmul")]


@pytest.mark.parametrize("tile", list(tinydl.kernels.gemm.TILES))
@pytest.mark.parametrize("n,dtype,vec4", [(12, np.float32, True), (7, np.float32, False), (12, np.float16, True),
                                         (7, np.float16, False)])
def test_linear_epilogue_stores_runs_of_four_columns_as_vec4(rng, use_options, tile, n, dtype, vec4):
    """An output with a multiple of 4 columns is stored 4 columns (one vec4, of f32 or f16) at a time through the
    epilogue (bias, gelu); other widths element by element."""
    force_tile(use_options, tile)
    x, w, b = rand(rng, 2, 9, 16, dtype=dtype), rand(rng, n, 16, dtype=dtype), rand(rng, n, dtype=dtype)
    with tinydl.debug.count_kernels() as c:
        out = F.gelu(F.linear(tinydl.tensor(x), tinydl.tensor(w), tinydl.tensor(b))).numpy()
    wgsl = _matmul_wgsl()
    assert len(wgsl) == 1 and ("store_out4(" in wgsl[0]) == vec4, c.names
    ref = TF.gelu(TF.linear(*(torch.from_numpy(a.astype(np.float32)) for a in (x, w, b))))
    if dtype == np.float16:
        assert_close(out.astype(np.float32), ref, rtol=1e-2, atol=1e-2)
    else:
        check(out, ref, 16, tile, c.names)


def _vec4_case(rng, case):
    """(tinydl thunk, torch reference, K, A loads vec4s?, B loads vec4s?) for one operand layout."""
    big = rand(rng, 20, 40)
    if case == "a@b":  # A along k, B along n
        a, b = rand(rng, 24, 16), rand(rng, 16, 12)
        return lambda: tinydl.tensor(a) @ tinydl.tensor(b), a @ b, 16, True, True
    if case == "x@W.T":  # both along k
        x, w = rand(rng, 24, 16), rand(rng, 12, 16)
        return lambda: tinydl.tensor(x) @ tinydl.tensor(w).T, x @ w.T, 16, True, True
    if case == "a.T@b":  # A stored k-major: along m
        at, b = rand(rng, 16, 24), rand(rng, 16, 12)
        return lambda: tinydl.tensor(at).T @ tinydl.tensor(b), at.T @ b, 16, True, True
    if case == "odd-k":  # K = 13: A's rows are not runs of 4 from multiples of 4; B's n runs still are
        a, b = rand(rng, 24, 13), rand(rng, 13, 12)
        return lambda: tinydl.tensor(a) @ tinydl.tensor(b), a @ b, 13, False, True
    if case == "offset-slice":  # a view starting at column 1: no vec4 starts on a multiple of 4
        return (lambda: tinydl.tensor(big)[:, 1:17] @ tinydl.tensor(big)[:16, 4:16], big[:, 1:17] @ big[:16, 4:16],
                16, False, True)
    if case == "aligned-slice":  # columns 4.. of rows 40 apart: still aligned runs
        return (lambda: tinydl.tensor(big)[:, 4:20] @ tinydl.tensor(big)[:16, 8:20], big[:, 4:20] @ big[:16, 8:20],
                16, True, True)
    if case == "batch-broadcast":  # B expanded over the batch (stride 0)
        a, b = rand(rng, 3, 8, 16), rand(rng, 16, 12)
        return lambda: tinydl.tensor(a) @ tinydl.tensor(b), a @ b, 16, True, True
    if case == "heads-merged":  # attention's context: (B, H, S, D) -> (B, S, H * D), k runs along D in runs of 4
        ctx, w = rand(rng, 2, 3, 8, 8), rand(rng, 12, 24)
        ref = ctx.transpose(0, 2, 1, 3).reshape(2, 8, 24) @ w.T
        return (lambda: tinydl.tensor(ctx).transpose(1, 2).reshape(2, 8, 24) @ tinydl.tensor(w).T, ref, 24, True,
                True)
    if case == "heads-merged-odd":  # the same with D = 6: 4 k's from a multiple of 4 may span two heads
        ctx, w = rand(rng, 2, 4, 8, 6), rand(rng, 12, 24)
        ref = ctx.transpose(0, 2, 1, 3).reshape(2, 8, 24) @ w.T
        return (lambda: tinydl.tensor(ctx).transpose(1, 2).reshape(2, 8, 24) @ tinydl.tensor(w).T, ref, 24, False,
                True)
    if case == "rows-merged":  # A (2, K, 8) seen as (2 * 8, K): rows run along the 8 in runs of 4, then jump
        x, b = rand(rng, 2, 16, 8), rand(rng, 16, 12)
        ref = x.transpose(0, 2, 1).reshape(16, 16) @ b
        return (lambda: tinydl.tensor(x).transpose(1, 2).reshape(16, 16) @ tinydl.tensor(b), ref, 16, True, True)
    if case == "prologue":  # A computed in the load (a * 2): read element by element
        a, b = rand(rng, 24, 16), rand(rng, 16, 12)
        return lambda: (tinydl.tensor(a) * 2) @ tinydl.tensor(b), (a * 2) @ b, 16, False, True
    raise AssertionError(case)


VEC4_CASES = ["a@b", "x@W.T", "a.T@b", "odd-k", "offset-slice", "aligned-slice", "batch-broadcast", "prologue",
              "heads-merged", "heads-merged-odd", "rows-merged"]


@pytest.mark.parametrize("tile", list(tinydl.kernels.gemm.TILES))
@pytest.mark.parametrize("case", VEC4_CASES)
@pytest.mark.parametrize("split", [None, 2])
def test_tile_loads_fetch_runs_of_four_as_vec4(rng, monkeypatch, use_options, tile, case, split):
    """A tiled kernel loads 4 operand elements as one vec4 where they lie side by side from a multiple of 4 on in
    one float32 buffer (plain, transposed, aligned slices, broadcast batches; also across split-K slices), and
    element by element otherwise (odd K, unaligned slices, computed operands). Both give the same bits."""
    force_tile(use_options, tile)
    use_options(force_split_k=split)
    thunk, ref, K, a_vec, b_vec = _vec4_case(rng, case)
    with tinydl.debug.count_kernels() as c:
        out = thunk().numpy()
    check(out, ref, K, tile, c.names)
    wgsl = _matmul_wgsl()
    assert len(wgsl) == 1, c.names
    t = tinydl.kernels.gemm.TILES[tile]
    assert ("fn load_a4(" in wgsl[0]) == (a_vec and t.whole_vec4s(t.bm))
    assert ("fn load_b4(" in wgsl[0]) == (b_vec and t.whole_vec4s(t.bn))
    use_options(vec4_loads=False)
    np.testing.assert_array_equal(thunk().numpy(), out)


@pytest.mark.parametrize("case", ["a@b", "x@W.T"])
def test_float16_operands_load_and_store_runs_of_four(rng, monkeypatch, use_options, case):
    """float16 buffers are bound as vec4<f16> too: 4 elements per load and per store, widened to f32 for the
    arithmetic and rounded once at the store, so the result is the same bits as element by element."""
    force_tile(use_options, "tile64")
    a, b = rand(rng, 24, 16, dtype=np.float16), rand(rng, 16, 12, dtype=np.float16)
    bt = np.ascontiguousarray(b.T)

    def thunk():
        return tinydl.tensor(a) @ (tinydl.tensor(b) if case == "a@b" else tinydl.tensor(bt).T)
    out = thunk().numpy()
    wgsl = _matmul_wgsl()
    assert len(wgsl) == 1 and "fn load_a4(" in wgsl[0] and "fn load_b4(" in wgsl[0]
    assert "array<vec4<f16>>" in wgsl[0] and "vec4<f16>(" in wgsl[0]
    assert out.dtype == np.float16
    assert_close(out.astype(np.float32), a.astype(np.float32) @ b.astype(np.float32), rtol=1e-2, atol=2e-2)
    use_options(vec4_loads=False, vec4_stores=False)
    np.testing.assert_array_equal(thunk().numpy(), out)
    assert not any("vec4<f16>" in src for src in _matmul_wgsl())


@pytest.mark.parametrize("M,K,N,start,packed", [
    (1, 64, 10, 0, True),      # x @ W.T in float16: 8 k's of each operand per 16-byte load
    (3, 200, 9, 0, True),      # 3 rows, 9 columns, K not a multiple of the lanes' stride (a guarded trip)
    (1, 36, 10, 0, False),     # K not a multiple of 8: 4 at a time
    (1, 64, 10, 4, False),     # W's rows start at k = 4 (a slice): runs of 8 would straddle two loads
])
@pytest.mark.parametrize("tile", GEMVS)
def test_float16_gemv_loads_packed_pairs(rng, use_options, M, K, N, start, packed, tile):
    """A float16 gemv reads 8 k's of both operands as one vec4<u32> of packed pairs where both run along k in
    whole 8s from multiples of 8, 4 as vec4<f16> otherwise; the same values either way (within the f32 sum
    order), checked against torch's float16 product with bias and gelu fused."""
    force_tile(use_options, tile)
    x, w, bias = (rand(rng, M, K, dtype=np.float16), rand(rng, N, K + start, dtype=np.float16),
                  rand(rng, N, dtype=np.float16))
    with tinydl.debug.count_kernels() as c:
        out = F.gelu(tinydl.tensor(x) @ tinydl.tensor(w)[:, start:].T + tinydl.tensor(bias)).numpy()
    ref = TF.gelu(torch.from_numpy(x).float() @ torch.from_numpy(w[:, start:]).float().T
                  + torch.from_numpy(bias).float()).half().numpy()
    assert out.dtype == np.float16
    assert_close(out.astype(np.float32), ref.astype(np.float32), rtol=4e-3, atol=4e-3)
    assert any(f"[{tile}]" in n for n in c.names), c.names
    wgsl = _matmul_wgsl()
    assert len(wgsl) == 1
    assert ("fn load_b8(" in wgsl[0]) == packed and ("array<vec4<u32>>" in wgsl[0]) == packed
    assert ("fn load_b4(" in wgsl[0]) == (not packed)


@pytest.mark.parametrize("columns", [2, 3, 4])
@pytest.mark.parametrize("dtype,M,K,N,tile", [
    (np.float16, 4, 200, 37, "gemv"),      # packed pairs, a guarded trip, the last workgroup's columns past N
    (np.float16, 1, 64, 70, "gemv256"),    # one column per lane group: a thread's columns a workgroup apart
    (np.float16, 2, 36, 19, "gemv"),       # K not a multiple of 8: 4 k's per load
    (np.float32, 3, 96, 41, "gemv64"),
    (np.float32, 4, 30, 9, "gemv"),        # K not a multiple of 4: element by element
])
def test_gemv_threads_summing_several_columns(rng, use_options, columns, dtype, M, K, N, tile):
    """Options.gemv_columns: each gemv thread sums several output columns over the same A values; with bias and
    gelu fused, the same as torch's product (float16: within its rounding) and as one column per thread."""
    force_tile(use_options, tile)
    x, w, bias = rand(rng, M, K, dtype=dtype), rand(rng, N, K, dtype=dtype), rand(rng, N, dtype=dtype)

    def thunk():
        with tinydl.debug.count_kernels() as c:
            out = F.gelu(tinydl.tensor(x) @ tinydl.tensor(w).T + tinydl.tensor(bias)).numpy()
        return out, c.names
    use_options(gemv_columns=columns)
    out, names = thunk()
    assert any(f"[{tile}x{columns}]" in n for n in names), names
    ref = TF.gelu(torch.from_numpy(x).float() @ torch.from_numpy(w).float().T + torch.from_numpy(bias).float())
    if dtype == np.float16:
        assert_close(out.astype(np.float32), ref.half().float().numpy(), rtol=4e-3, atol=4e-3)
    else:
        check(out, ref.numpy(), K)
    use_options(gemv_columns=1)
    one, names = thunk()
    assert any(f"[{tile}]" in n for n in names), names
    assert_close(out.astype(np.float32), one.astype(np.float32), rtol=2e-3 if dtype == np.float16 else 1e-5,
                 atol=2e-3 if dtype == np.float16 else 1e-5)


@pytest.mark.parametrize("M,N,dtype,variant,scaled", [
    (4, 4096, np.float16, "gemvx2", False),    # 4 rows: 2 columns a thread keep 8 partial sums and 256 workgroups
    (1, 8192, np.float16, "gemvx4", False),    # 1 row: 4 columns a thread, 256 workgroups
    (1, 4096, np.float16, "gemvx2", False),    # 4 columns would leave 128 workgroups
    (4, 2048, np.float16, "gemv", False),      # too few columns to share: every workgroup is needed
    (4, 4096, np.float32, "gemv", False),      # float32 A read as vec4s: nothing to share
    (4, 4096, np.float32, "gemvx2", True),     # A computed (a scale in front): its values shared
    (1, 4096, np.float16, "gemvx2", True),
])
def test_gemv_shares_costly_rows_across_columns_by_rule(rng, M, N, dtype, variant, scaled):
    """The rule (kernels/tiles.py gemv_columns): where A's values cost more than a load (packed float16 pairs, or a
    prologue's result), a thread sums as many columns as keep the GPU's workgroups filled and 8 partial sums a
    thread."""
    x, w, g = rand(rng, M, 64, dtype=dtype), rand(rng, N, 64, dtype=dtype) * 0.1, rand(rng, 64, dtype=dtype)
    with tinydl.debug.count_kernels() as c:
        a = tinydl.tensor(x) * tinydl.tensor(g) if scaled else tinydl.tensor(x)
        out = (a @ tinydl.tensor(w).T).numpy()
    assert c.names == [f"matmul {M}x{N} [{variant}]"], c.names  # (a prologue is not named)
    ta = torch.from_numpy(x) * torch.from_numpy(g) if scaled else torch.from_numpy(x)
    ref = (ta.float() @ torch.from_numpy(w).float().T).to(getattr(torch, np.dtype(dtype).name))
    assert_close(out.astype(np.float32), ref.float().numpy(), rtol=4e-3, atol=4e-3)


@pytest.mark.parametrize("dtype,K,b_load", [
    (np.float16, 64, "load_b8("),   # float16 weights: 8 k's per 16-byte load, A's 8 computed one by one
    (np.float16, 36, "load_b4("),   # K not a multiple of 8: 4 at a time
    (np.float32, 64, "load_b4("),
    (np.float32, 200, "load_b4("),  # K not a multiple of the lanes' stride (a guarded trip)
])
@pytest.mark.parametrize("tile", GEMVS)
def test_gemv_reads_weights_as_vectors_when_its_activation_is_computed(rng, use_options, dtype, K, b_load, tile):
    """x * rsqrt(mean(x^2)) * g @ W.T (an RMSNorm in front of a projection, batch 1): the norm is A's prologue, so
    A has no memory layout, yet the gemv still reads W's k's as vectors (packed float16 pairs where it can) and
    gathers A's matching k's element by element; the same values as torch."""
    force_tile(use_options, tile)
    x, g, w = rand(rng, 1, K, dtype=dtype), rand(rng, K, dtype=dtype), rand(rng, 9, K, dtype=dtype)

    def thunk():
        tx = tinydl.tensor(x)
        normed = tx * (tx.float().pow(2).mean(-1, keepdim=True) + 1e-6).rsqrt().to(tx.dtype) * tinydl.tensor(g)
        return (normed @ tinydl.tensor(w).T).numpy()
    with tinydl.debug.count_kernels() as c:
        out = thunk()
    t = torch.from_numpy(x)
    ref = ((t * (t.float().pow(2).mean(-1, keepdim=True) + 1e-6).rsqrt().to(t.dtype) * torch.from_numpy(g)).float()
           @ torch.from_numpy(w).float().T).numpy()
    assert out.dtype == dtype
    assert_close(out.astype(np.float32), ref, rtol=4e-3 if dtype == np.float16 else 1e-4, atol=4e-3)
    wgsl = _matmul_wgsl()
    assert any(f"[{tile}]" in n for n in c.names) and len(wgsl) == 1, c.names
    assert b_load in wgsl[0] and "fn load_a(" in wgsl[0] and "fn load_a4(" not in wgsl[0]
    use_options(vec4_loads=False)  # element by element: the same values within the f32 sum order
    assert_close(thunk().astype(np.float32), out.astype(np.float32), rtol=1e-3, atol=1e-3)


def test_operand_read_by_the_epilogue_too_takes_one_binding(rng, use_options):
    """(a @ b) + a: the epilogue reads a's elements through the vec4 binding its tile loads use, so the kernel binds
    3 buffers, not 4 (the scheduler's binding limit counts a once)."""
    force_tile(use_options, "tile64")
    a, b = rand(rng, 24, 24), rand(rng, 24, 24)
    ta = tinydl.tensor(a)
    out = ((ta @ tinydl.tensor(b)) + ta).numpy()
    wgsl = _matmul_wgsl()
    assert len(wgsl) == 1 and "fn load_a4(" in wgsl[0]
    assert wgsl[0].count("@binding(") == 3, wgsl[0][:400]
    check(out, a @ b + a, 24)


@pytest.mark.parametrize("M,K,N,transposed,vec4", [
    (1, 64, 10, True, True),     # x @ W.T: both operands run along k
    (3, 36, 9, True, True),      # 3 rows (one per accumulator), 9 columns (a ragged group of 8)
    (1, 30, 10, True, False),    # K not a multiple of 4
    (1, 64, 12, False, False),   # a @ b: b runs along n
])
def test_gemv_loads_four_ks_of_each_operand_where_both_run_along_k(rng, use_options, M, K, N, transposed, vec4):
    """The gemv (a few rows: batch-1 linear layers) reads 4 k's of each operand as one vec4 where both lie along k
    in memory, element by element otherwise; with bias and gelu fused."""
    force_tile(use_options, "gemv")
    x, w, bias = rand(rng, M, K), rand(rng, N, K), rand(rng, N)
    wt = tinydl.tensor(w).T if transposed else tinydl.tensor(np.ascontiguousarray(w.T))
    with tinydl.debug.count_kernels() as c:
        out = F.gelu(tinydl.tensor(x) @ wt + tinydl.tensor(bias)).numpy()
    check(out, TF.gelu(torch.from_numpy(x) @ torch.from_numpy(w).T + torch.from_numpy(bias)).numpy(), K, "gemv", c.names)
    wgsl = _matmul_wgsl()
    assert len(wgsl) == 1 and ("fn load_a4(" in wgsl[0]) == vec4 and ("fn load_b4(" in wgsl[0]) == vec4


HALF_PRODUCTS = {  # name: (tinydl fn, torch fn, input shapes): layouts and edges a float16 GEMM must get right
    "square": (lambda a, b: a @ b, lambda a, b: a @ b, [(256, 256), (256, 256)]),
    "ragged": (lambda a, b: a @ b, lambda a, b: a @ b, [(130, 72), (72, 200)]),
    "long K": (lambda a, b: a @ b, lambda a, b: a @ b, [(64, 4096), (4096, 48)]),
    "A transposed": (lambda a, b: a.T @ b, lambda a, b: a.T @ b, [(96, 80), (96, 48)]),
    "batched": (lambda a, b: a @ b, lambda a, b: a @ b, [(3, 50, 64), (3, 64, 33)]),
    "q @ k.T": (lambda q, k: q @ k.transpose(-1, -2), lambda q, k: q @ k.transpose(-1, -2),
                [(2, 4, 40, 64), (2, 4, 40, 64)]),
    "linear+bias+gelu": (lambda x, w, b: F.gelu(F.linear(x, w, b)), lambda x, w, b: TF.gelu(TF.linear(x, w, b)),
                         [(77, 96), (160, 96), (160,)]),
    "conv 3x3": (lambda x, w: F.conv2d(x, w, None, 1, 1), lambda x, w: TF.conv2d(x, w, None, 1, 1),
                 [(2, 32, 9, 9), (48, 32, 3, 3)]),
    "conv 1x1 stride 2": (lambda x, w: F.conv2d(x, w, None, 2), lambda x, w: TF.conv2d(x, w, None, 2),
                          [(2, 64, 10, 10), (40, 64, 1, 1)]),
}


@pytest.mark.parametrize("case", list(HALF_PRODUCTS))
def test_float16_products_are_as_accurate_as_rounding_the_exact_result(rng, case):
    """float16 in and out, float32 accumulation: within twice the error of rounding the exact result to float16.
    On an adapter with subgroup matrices (Dawn) these run on the matrix tiles (kernels/gemm_matrix.py), elsewhere
    on the other tiles; the epilogue stays fused either way."""
    from tinydl.debug import count_kernels
    from tinydl.runtime import get_runtime
    if "shader-f16" not in get_runtime().features:
        pytest.skip("adapter without shader-f16")
    fn, tfn, shapes = HALF_PRODUCTS[case]
    arrays = [rng.standard_normal(s).astype(np.float16) for s in shapes]
    with count_kernels() as c:
        y = fn(*map(tinydl.tensor, arrays)).numpy()
    assert y.dtype == np.float16
    exact = tfn(*(torch.from_numpy(a).double() for a in arrays)).numpy()
    rounded = exact.astype(np.float16).astype(np.float64)
    scale = np.abs(exact).max()
    err = np.abs(y.astype(np.float64) - exact).max() / scale
    assert err <= 2 * np.abs(rounded - exact).max() / scale + 1e-4, err
    matrices = get_runtime().subgroup_matrix_f16
    assert ("[mma" in c.names[0]) == matrices, c.names
    assert case != "linear+bias+gelu" or "add+gelu" in c.names[-1], c.names


# -- matrix tiles (float16 on subgroup matrices: Dawn on GPUs with them; elsewhere these skip) -------------------
@pytest.mark.parametrize("tile", list(tinydl.kernels.gemm_matrix.MATRIX_TILES))
@pytest.mark.parametrize("M,N,K,transposed", [(300, 270, 96, True), (130, 200, 72, False), (64, 520, 4096, True)])
def test_matrix_tiles_match_float16_rounding_of_the_exact_product(rng, use_options, tile, M, N, K, transposed):
    """Every matrix tile (kernels/gemm_matrix.py), forced: ragged edges, both B layouts, a long K in one kernel,
    and a fused epilogue, within float16 rounding of the exact (float64) product of the same inputs."""
    if not tinydl.schedule.target().subgroup_matrix:
        pytest.skip("the adapter has no float16 subgroup matrices")
    use_options(force_tile=tile, force_split_k=1)
    a = rand(rng, M, K, dtype=np.float16)
    b = rand(rng, N, K, dtype=np.float16) if transposed else rand(rng, K, N, dtype=np.float16)
    bias = rand(rng, N, dtype=np.float16)
    tb = tinydl.tensor(b)
    out = ((tinydl.tensor(a) @ (tb.T if transposed else tb)) + tinydl.tensor(bias)).relu()
    exact = np.maximum(a.astype(np.float64) @ (b.T if transposed else b).astype(np.float64) + bias, 0)
    step = explain.plan(lambda x, y, z: ((x @ (y.T if transposed else y)) + z).relu(), tinydl.tensor(a), tb,
                        tinydl.tensor(bias)).names
    assert step == [f"matmul+add+relu {M}x{N} [{tile}]"], step
    err = np.abs(out.numpy().astype(np.float64) - exact).max() / np.abs(exact).max()
    assert err <= 1.5e-3, err  # float32 accumulation, one float16 rounding (2**-11) plus the bias add's


# (batch, in channels, height, width, out channels, kernel, stride, padding, dilation, groups)
MATRIX_CONVS = [(2, 64, 13, 11, 96, 3, 1, 1, 1, 1), (2, 64, 12, 12, 72, 3, 2, 1, 1, 1),
                (1, 64, 15, 15, 40, 3, 1, 2, 2, 1), (2, 128, 9, 9, 64, 3, 1, 1, 1, 2),
                (2, 48, 10, 10, 64, 3, 1, 1, 1, 1), (2, 64, 10, 10, 64, 5, 1, 2, 1, 1),
                (2, 64, 13, 13, 80, 1, 2, 0, 1, 1), (3, 64, 7, 7, 96, 1, 1, 0, 1, 1)]


@pytest.mark.parametrize("split", [1, 2])
@pytest.mark.parametrize("tile", ["mma128w8", "mma64x128", "mma64", "mma64x256"])
@pytest.mark.parametrize("shape", MATRIX_CONVS, ids=lambda s: "x".join(map(str, s)))
def test_float16_convs_on_matrix_tiles_match_float16_rounding_of_the_exact_conv(rng, use_options, tile, shape,
                                                                               split):
    """Convs on every rule's matrix tile, forced, whole or split along K: pixels read tap-major through a
    TapGather (whole K steps of input channels per group) or per element (48 channels), strides, padding,
    dilation, groups, ragged pixel counts, a fused bias and relu; within float16 rounding of the exact (float64)
    conv of the same inputs."""
    if not tinydl.schedule.target().subgroup_matrix:
        pytest.skip("the adapter has no float16 subgroup matrices")
    use_options(force_tile=tile, force_im2col=False, force_split_k=split)
    n, cin, h, w, cout, k, stride, pad, dil, groups = shape
    x, wt = rand(rng, n, cin, h, w, dtype=np.float16), rand(rng, cout, cin // groups, k, k, dtype=np.float16)
    bias = rand(rng, cout, dtype=np.float16)
    with count_kernels() as c:
        y = F.conv2d(tinydl.tensor(x), tinydl.tensor(wt), tinydl.tensor(bias), stride, pad, dil, groups).relu().numpy()
    assert c.names[0].endswith(f"[{tile}]") and c.count == split, c.names
    exact = TF.conv2d(*(torch.from_numpy(a).double() for a in (x, wt, bias)), stride=stride, padding=pad,
                      dilation=dil, groups=groups).relu().numpy()
    err = np.abs(y.astype(np.float64) - exact).max() / np.abs(exact).max()
    assert err <= 1.5e-3, err
