"""Split-K: when a GEMM's output gives too few workgroups (batch-1 convs over small images), K is cut into
slices run as extra batch entries and summed by a reduce kernel that takes over the epilogue. Forced here on
small shapes (tinydl.options(force_split_k=...)) so CI covers the path big GPUs pick."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import tinydl
import tinydl.nn.functional as F
from tinydl.debug import count_kernels
from tinydl.runtime import get_runtime
from tinydl.kernels import gemm
from tinydl.testing import assert_close


@pytest.fixture
def split(use_options):
    return lambda s: use_options(force_split_k=s)


@pytest.mark.parametrize("S", [2, 4])
@pytest.mark.parametrize("M,N,K", [(5, 7, 8), (33, 17, 64), (64, 40, 128)])
def test_matmul_split_k(rng, split, S, M, N, K):
    split(S)
    a, b = rng.standard_normal((M, K), dtype=np.float32), rng.standard_normal((K, N), dtype=np.float32)
    with count_kernels() as c:
        y = (tinydl.tensor(a) @ tinydl.tensor(b) * 0.5).relu().numpy()
    assert c.count == 2 and "reduce_sum+mul+relu" in c.names[1], c.names  # the epilogue moved to the sum
    assert c.names[0].startswith(f"matmul {S}x") or c.names[0].startswith("matmul "), c.names
    # fp32 sums in another order (slices, then their sum): error ~ eps * sqrt(K) * |terms|
    assert_close(y, (torch.from_numpy(a) @ torch.from_numpy(b) * 0.5).relu(), rtol=1e-4, atol=1e-4)


def test_matmul_split_k_batched_broadcast(rng, split):
    split(2)
    a, b = rng.standard_normal((3, 1, 6, 16), dtype=np.float32), rng.standard_normal((2, 16, 9), dtype=np.float32)
    y = tinydl.tensor(a) @ tinydl.tensor(b)
    assert_close(y, torch.from_numpy(a) @ torch.from_numpy(b), rtol=1e-4, atol=1e-4)


def test_linear_bias_gelu_split_k(rng, split):
    split(4)
    x, w, b = (rng.standard_normal(s, dtype=np.float32) for s in ((6, 32), (10, 32), (10,)))
    with count_kernels() as c:
        y = F.gelu(F.linear(tinydl.tensor(x), tinydl.tensor(w), tinydl.tensor(b))).numpy()
    assert c.count == 2 and "add+gelu" in c.names[1], c.names
    assert_close(y, TF.gelu(TF.linear(*map(torch.from_numpy, (x, w, b)))), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("S", [2, 4])
@pytest.mark.parametrize("groups,cin,cout,k,stride,pad", [(1, 8, 8, 3, 1, 1), (1, 16, 12, 3, 2, 1), (2, 16, 16, 1, 1, 0)])
def test_conv_split_k(rng, split, S, groups, cin, cout, k, stride, pad):
    split(S)
    x = rng.standard_normal((2, cin, 7, 7), dtype=np.float32)
    w = rng.standard_normal((cout, cin // groups, k, k), dtype=np.float32)
    b = rng.standard_normal(cout, dtype=np.float32)
    with count_kernels() as c:
        y = F.conv2d(tinydl.tensor(x), tinydl.tensor(w), tinydl.tensor(b), stride, pad, groups=groups).relu().numpy()
    assert c.count == 2 and c.names[1].startswith("reduce_sum+add+relu"), c.names
    ref = TF.conv2d(*map(torch.from_numpy, (x, w, b)), stride=stride, padding=pad, groups=groups).relu()
    assert_close(y, ref, rtol=1e-4, atol=1e-4)


def test_no_split_when_slices_do_not_divide(rng, split):
    split(4)
    x = rng.standard_normal((1, 6, 5, 5), dtype=np.float32)  # 6 input channels: not divisible by 4
    w = rng.standard_normal((8, 6, 3, 3), dtype=np.float32)
    with count_kernels() as c:
        y = F.conv2d(tinydl.tensor(x), tinydl.tensor(w)).numpy()
    assert c.count == 1, c.names
    assert_close(y, TF.conv2d(torch.from_numpy(x), torch.from_numpy(w)), rtol=1e-4, atol=1e-4)


def test_split_k_heuristic_only_for_few_tiles():
    """Unforced: ResNet-50's 7x7x512 3x3 conv at batch 1 splits; a 4096^3 matmul, a short K, a big batch or
    SPLIT_MAX_TILES tiles do not; a K of 160-255 only over very few tiles; slices never get shorter than 32 and
    always divide `divides`."""
    assert gemm.split_k(1, 49, 512, 4608, 512) > 1
    assert gemm.split_k(1, 4096, 4096, 4096, 4096) == 1
    assert gemm.split_k(1, 49, 512, 128, 128) == 1
    assert gemm.split_k(16, 3136, 64, 576, 64) == 1
    assert gemm.split_k(1, 49, 512, 256, 256) == 8  # 32-long slices
    assert gemm.split_k(1, 49, 512, 960, 6) == 2    # must divide 6 input channels
    assert gemm.split_k(1, 32, 784, 192, 192) == 4  # a K under 256 over very few tiles (25)
    assert gemm.split_k(1, 960, 49, 160, 160) == 4
    assert gemm.split_k(16, 960, 784, 160, 160) == 1  # the same K over 195 tiles
    assert gemm.split_k(1, 2048, 16 * 49, 512, 512) == 1  # 208 tiles: a wave and a half already
    assert gemm.split_k(1, 256, 16 * 196, 1024, 1024) == 4  # 98 tiles


def test_tile_choice_rules():
    """Unforced tile choice (measured rules, see gemm.choose_tile): a gemv for a few rows, with
    lanes enough per column for 2^17 threads; tile128 for 3x3 convs
    (gathered loads) with a few dozen tiles, tile128k16 for long-K GEMMs with 256+ tiles (or K >= 2048 split into
    256+ workgroups of 384+ each), tile128x64t128 for other GEMMs of 256+ rows with 64+ tiles at K >= 512, 256+
    tiles below (BERT-b8's linears, batch-16 1x1 convs);
    tile64x128 for 64-channel 3x3 convs over many pixels; tile64x64t128 for other GEMMs at least 64 wide (batch-1
    1x1 convs, BERT-b1's linears); tile64 for narrow 3x3 convs (batch-1 7x7 images), tile32 for GEMMs 32 wide or
    less and for K <= 32 (one K step: the stores dominate)."""
    assert gemm.choose_tile(1, 1, 1000, 512) == "gemv128"  # a narrow output: more lanes per column ...
    assert gemm.choose_tile(1, 1, 1000, 256) == "gemv64"   # ... but none without 2 vec4s of K each
    assert gemm.choose_tile(1, 1, 2048, 2048) == "gemv64"
    assert gemm.choose_tile(1, 4, 32000, 2048) == "gemv"   # a wide one: one subgroup per column
    assert gemm.choose_tile(1, 1, 8, 1 << 16) == "gemv256"
    assert gemm.choose_tile(1, 256, 16 * 196, 2304, gather=True) == "tile128"       # 3x3 conv, batch 16, 50 tiles
    assert gemm.choose_tile(1, 1024, 16 * 196, 256) == "tile128x64t128"             # 1x1 conv, batch 16, 392 tiles
    assert gemm.choose_tile(1, 960, 16 * 49, 160) == "tile64x64t128"                # 104 tiles of a short K
    assert gemm.choose_tile(1, 1024, 16 * 196, 1024) == "tile128x64t128"            # 64+ tiles of a long K
    assert gemm.choose_tile(1, 96, 16 * 12544, 16) == "tile32"                      # K = 16: one K step
    assert gemm.choose_tile(1, 32, 16 * 784, 192) == "tile32"                       # 32 output channels
    assert gemm.choose_tile(1, 256, 196, 1024) == "tile64x64t128"                   # a 1x1 conv at batch 1: 8 tiles
    assert gemm.choose_tile(1, 1024, 3072, 768) == "tile128x64t128"                 # BERT-b8's FFN
    assert gemm.choose_tile(1, 64, 16 * 3136, 576, gather=True) == "tile64x128"
    assert gemm.choose_tile(1, 512, 49, 4608, gather=True) == "tile64"
    assert gemm.choose_tile(1, 16, 12544, 144, gather=True) == "tile32"
    assert gemm.choose_tile(1, 4096, 4096, 4096) == "tile128k16"
    assert gemm.choose_tile(1, 128, 768, 768) == "tile64x64t128"
    # K >= LONG_K over few tiles: tile128k16 where split-K fills the GPU in slices of 384+ (BERT-b8's FFN down),
    # not where the slices would be short (ResNet-50-b16's 2048 -> 512 1x1 convs at 7x7: 28 tiles)
    assert gemm.choose_tile(1, 1024, 768, 3072) == "tile128k16"
    assert gemm.split_k(1, 1024, 768, 3072, 3072) == 8
    assert gemm.choose_tile(1, 512, 16 * 49, 2048) == "tile64x64t128"


def test_tap_major_tile_rules():
    """Tap-major gathers (gemm.conv_gather): tile64x128t128 for 64-channel 3x3 convs over 64+ of its tiles (batch
    4 and 16 at 56x56), tile128k16 for 128+ channels over 64+ of its tiles or a K of 4096+, tile128x64t128k8 over
    fewer (32+); smaller convs keep the (ci, kh, kw) rules (batch 1 at 56x56: tile64)."""
    assert gemm.conv_gather(9, False, False, 64) == "tap" and gemm.conv_gather(1, False, False, 64) is False
    assert gemm.conv_gather(9, True, False, 64) is False and gemm.conv_gather(9, False, True, 64) is True
    assert gemm.conv_gather(49, False, False, 3) is True  # a stem: 3 channels
    assert gemm.choose_tile(1, 64, 16 * 3136, 576, gather="tap") == "tile64x128t128"
    assert gemm.choose_tile(1, 64, 4 * 3136, 576, gather="tap") == "tile64x128t128"
    assert gemm.choose_tile(1, 64, 3136, 576, gather="tap") == "tile64"
    assert gemm.choose_tile(1, 128, 16 * 784, 1152, gather="tap") == "tile128k16"
    assert gemm.choose_tile(1, 128, 4 * 784, 1152, gather="tap") == "tile128x64t128k8"
    assert gemm.choose_tile(1, 512, 16 * 49, 4608, gather="tap") == "tile128k16"
    assert gemm.choose_tile(1, 128, 784, 1152, gather="tap") == "tile64"


def test_tap_major_split_keeps_whole_k_steps():
    """A tap-major conv splits its channels only into slices of whole K steps: 64 channels under tile64 (K steps
    of 16) into 4, where a (ci, kh, kw) gather splits into 8."""
    assert gemm.split_k(1, 64, 3136, 576, 64, gather="tap") == 4
    assert gemm.split_k(1, 64, 3136, 576, 64, gather=True) == 8
    assert gemm.tap_major_fits(1, 64, 3136, 576 * 4, 16) and not gemm.tap_major_fits(1, 64, 3136, 576 * 8, 8)


def test_split_product_keeps_its_tile(rng):
    """256x256x1024 splits 16 ways under tile64x64t128 (16 tiles); counted with the 16 slices as batch entries,
    tile128x64t128 would qualify (8 x 16 tiles), but the kernel must use the tile the split was sized for."""
    S = gemm.split_k(1, 256, 256, 1024, 1024)
    assert S == 16 and gemm.choose_tile(1, 256, 256, 1024) == "tile64x64t128"
    assert gemm.choose_tile(S, 256, 256, 1024) == "tile128x64t128"
    a, b = rng.standard_normal((256, 1024), dtype=np.float32), rng.standard_normal((256, 1024), dtype=np.float32)
    with count_kernels() as c:
        y = (tinydl.tensor(a) @ tinydl.tensor(b).T).numpy()
    assert any("[tile64x64t128]" in n for n in c.names), c.names
    assert_close(y, a @ b.T, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("op", ["matmul", "conv"])
def test_float16_split_k_sums_its_slices_in_float32(rng, split, op):
    """A float16 product split into K slices keeps each slice's partial sum in float32 and rounds once, after the
    sum: as accurate as torch's own float16 product (partial sums stored as float16 lost ~1e-2 relative at K = 4096
    where products cancel). The slice kernel writes float32 and the sum casts: `reduce_sum+cast_float16`."""
    if not tinydl.device_info()["features"] or "shader-f16" not in tinydl.device_info()["features"]:
        pytest.skip("adapter without shader-f16")
    split(8)
    if op == "matmul":
        a = rng.standard_normal((16, 4096)).astype(np.float16)
        b = rng.standard_normal((4096, 24)).astype(np.float16)
        with count_kernels() as c:
            y = (tinydl.tensor(a) @ tinydl.tensor(b)).numpy()
        ref64 = a.astype(np.float64) @ b.astype(np.float64)
        half = (torch.from_numpy(a) @ torch.from_numpy(b)).numpy()
    else:
        x = rng.standard_normal((1, 512, 4, 4)).astype(np.float16)
        w = rng.standard_normal((8, 512, 3, 3)).astype(np.float16)
        with count_kernels() as c:
            y = F.conv2d(tinydl.tensor(x), tinydl.tensor(w), None, 1, 1).numpy()
        ref64 = TF.conv2d(torch.from_numpy(x).double(), torch.from_numpy(w).double(), padding=1).numpy()
        half = TF.conv2d(torch.from_numpy(x).float(), torch.from_numpy(w).float(), padding=1).half().numpy()
    assert y.dtype == np.float16 and c.count == 2 and "cast_float16" in c.names[1], c.names
    if op == "matmul":  # on tensor-core tiles where the adapter has them (gemm_matrix.split)
        assert ("[mma" in c.names[0]) == get_runtime().subgroup_matrix_f16, c.names
    err = np.abs(y.astype(np.float64) - ref64).max() / np.abs(ref64).max()
    torch_err = np.abs(half.astype(np.float64) - ref64).max() / np.abs(ref64).max()
    assert err <= max(2 * torch_err, 1e-3), (err, torch_err)  # float16 slices: ~1e-2
