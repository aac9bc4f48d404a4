"""Lowering and fusion without a GPU: graphs of placeholder inputs planned (tinydl.explain.plan) on a made-up
schedule.Target, their kernel groups checked. Each test names the rule (schedule/fuse.py, schedule/lower.py) that
breaking would change its kernels. Any use of the runtime fails the test."""
import re

import pytest

import tinydl.nn.functional as F
from tinydl import explain, runtime, schedule
from tinydl.kernels import gemm_matrix
from tinydl.ops import CONV, MATMUL

P = explain.placeholder
TARGET = schedule.Target(max_storage_buffers=8, max_binding_size=1 << 27, max_workgroups=65535)


@pytest.fixture(autouse=True)
def no_gpu(monkeypatch):
    def refuse():
        raise AssertionError("planning asked for the GPU")
    for module in (runtime, schedule, schedule.execute):
        monkeypatch.setattr(module, "get_runtime", refuse)


def names(fn, *inputs, target=TARGET):
    return explain.plan(fn, *inputs, target=target).names


def heads(fn, *inputs, target=TARGET):
    """The kernels' names without shape and variant: 'conv2d+add+relu'."""
    return [n.split(" ")[0] for n in names(fn, *inputs, target=target)]


def test_conv_bias_relu_is_one_kernel():
    """take_epilogues: the bias add and the relu are the conv's epilogue."""
    assert heads(lambda x, w, b: F.conv2d(x, w, b, padding=1).relu(),
                 P(1, 16, 14, 14), P(32, 16, 3, 3), P(32)) == ["conv2d+add+relu"]


def test_linear_gelu_is_one_kernel():
    assert heads(lambda x, w, b: F.gelu(F.linear(x, w, b)), P(64, 128), P(256, 128), P(256)) == ["matmul+add+gelu"]


def test_batch_norm_relu_after_conv_is_its_epilogue():
    """kernel_outputs: batch norm's scale rsqrt(var + eps) * weight is read twice (scale and shift) but is a short
    formula over parameters (CHEAP_PARAM_OPS): recomputed, no kernel of its own."""
    def f(x, w, mean, var, g, b):
        return F.batch_norm(F.conv2d(x, w, padding=1), mean, var, g, b).relu()
    out = heads(f, P(2, 16, 8, 8), P(32, 16, 3, 3), *[P(32) for _ in range(4)])
    assert len(out) == 1 and out[0].startswith("conv2d+") and out[0].endswith("+relu"), out


def test_split_k_conv_sum_takes_the_epilogue():
    """lower: a batch-1 conv over a 7x7 image has too few GEMM tiles: its windows are written once (im2col), its
    K is split, and the sum over the slices (a REDUCE made before fusion) takes the bias and relu."""
    def f(x, w, b):
        return F.conv2d(x, w, b, padding=1).relu()
    out = names(f, P(1, 512, 7, 7), P(512, 512, 3, 3), P(512))
    assert [n.split(" ")[0] for n in out] == ["im2col", "conv2d", "reduce_sum+add+relu"], out
    assert out[1].startswith("conv2d 1x1x") and out[2].startswith("reduce_sum+add+relu 1x512x7x7"), out
    # no room for the windows in one binding: the conv gathers them itself
    small = schedule.Target(max_binding_size=1 << 19)
    assert heads(f, P(1, 512, 7, 7), P(512, 512, 3, 3), P(512), target=small) == ["conv2d", "reduce_sum+add+relu"]


def test_lowering_leaves_the_callers_graph_alone():
    x, w = P(1, 512, 7, 7), P(512, 512, 3, 3)
    y = F.conv2d(x, w, padding=1)
    z = x.reshape(1, 512 * 49) @ P(512 * 49, 8)
    explain.plan(lambda: (y, z), target=TARGET)
    assert y.node.kind == CONV and y.node.arg.split == 1 and y.node.arg.tile is None and y.node.srcs[0] is x.node
    matmul = z.node.srcs[0]
    assert matmul.kind == MATMUL and matmul.arg is None


def test_forced_split_k_matmul(use_options):
    use_options(force_split_k=4)
    assert heads(lambda x, w: F.linear(x, w).sigmoid(), P(8, 256), P(64, 256)) == ["matmul", "reduce_sum+sigmoid"]
    use_options(force_split_k=1)
    assert heads(lambda x, w: F.linear(x, w).sigmoid(), P(8, 256), P(64, 256)) == ["matmul+sigmoid"]


def test_split_k_sum_inlined_into_layer_norm(use_options):
    """inline_sums: a split-K sum whose one reader chain ends in a row kernel is added up in its loads."""
    use_options(force_split_k=4)

    def f(x, w, res):
        return F.layer_norm(F.linear(x, w) + res, (64,))
    assert heads(f, P(16, 256), P(64, 256), P(16, 64)) == ["matmul", "layer_norm"]
    # read twice, it keeps its kernel
    assert heads(lambda x, w: (lambda y: F.layer_norm(y, (64,)) + y)(F.linear(x, w)), P(16, 256), P(64, 256)) == \
        ["matmul", "reduce_sum", "layer_norm+add"]


def test_reduce_with_epilogue_is_one_kernel():
    assert heads(lambda x: (x.sum(1) * 2).exp(), P(64, 128)) == ["reduce_sum+mul+exp"]


def test_shared_long_chain_is_computed_once():
    """kernel_outputs: an inline node read twice that is more than a short formula becomes a kernel output."""
    def chain(x, n):
        for _ in range(n):
            x = x.exp()
        return x

    def f(x, n):
        y = chain(x, n)
        return y.sin() + y.cos()
    assert heads(lambda x: f(x, schedule.CHEAP_PARAM_OPS), P(32)) == ["exp+exp+exp+exp+exp+exp+sin+cos+add"]
    assert len(heads(lambda x: f(x, schedule.CHEAP_PARAM_OPS + 1), P(32))) == 2


@pytest.mark.parametrize("limit", [3, 4, 5])
def test_binding_limit_splits_a_kernel(limit):
    """respect_binding_limit: no kernel binds more storage buffers than the Target allows (its output included)."""
    def f(*xs):
        out = xs[0]
        for x in xs[1:]:
            out = out * x + 1
        return out
    inputs = [P(16, 16) for _ in range(6)]
    plan = explain.plan(f, *inputs, target=schedule.Target(max_storage_buffers=limit))
    assert all(len(s.inputs) + 1 <= limit for s in plan.steps), [(s.name, len(s.inputs)) for s in plan.steps]
    assert len(plan.steps) > 1 and len(set(s.out for s in plan.steps)) == len(plan.steps), plan.names
    assert len(explain.plan(f, *inputs, target=TARGET).steps) == 1


def test_epilogue_reading_too_many_buffers_is_cut_off():
    """respect_binding_limit: when the epilogue alone reads too many buffers, the heavy op stores its own result."""
    def f(x, w, *adds):
        out = F.linear(x, w)
        for a in adds:
            out = out + a
        return out
    out = heads(f, P(8, 32), P(16, 32), *[P(8, 16) for _ in range(4)], target=schedule.Target(max_storage_buffers=4))
    assert out[0] == "matmul" and len(out) >= 2, out


def test_grid_respects_max_workgroups():
    plan = explain.plan(lambda x: x.exp(), P(1 << 22), target=schedule.Target(max_workgroups=1000))
    assert all(g <= 1000 for s in plan.steps for g in s.grid), [s.grid for s in plan.steps]


MATRIX = schedule.Target(max_storage_buffers=8, max_binding_size=1 << 27, max_workgroups=65535, subgroups=True,
                         subgroup_matrix=True)


def test_float16_products_take_matrix_tiles_where_the_adapter_has_subgroup_matrices():
    """schedule/lower.py _matmul: a float16 product on a Target with subgroup matrices runs on a matrix tile
    (kernels/gemm_matrix.py), unsplit, its epilogue fused; float32 products, float16 ones elsewhere, gemv-sized
    and short-K ones keep the other tiles."""
    from tinydl import float16
    x, w, b = P(1024, 768, dtype=float16), P(3072, 768, dtype=float16), P(3072, dtype=float16)
    plan = explain.plan(lambda x, w, b: F.gelu(F.linear(x, w, b)), x, w, b, target=MATRIX)
    assert plan.names == ["matmul+add+gelu 1024x3072 [mma128w8]"]
    wgsl = plan.steps[0].wgsl
    assert "enable chromium_experimental_subgroup_matrix;" in wgsl and "enable subgroups;" in wgsl
    assert wgsl.count("subgroupMatrixMultiplyAccumulate") == 2 * 8  # 2 sub-steps of 16 deep, 4 x 2 fragments
    assert "@builtin(subgroup_id)" in wgsl  # fragment offsets uniform per subgroup
    # a long K over few tiles is split (gemm_matrix.split), its partial sums kept in float32 for the reduce
    plan = explain.plan(lambda a, b: a @ b, P(64, 8192, dtype=float16), P(8192, 64, dtype=float16), target=MATRIX)
    assert plan.names == ["matmul 32x1x64x64 [mma64]", "reduce_sum+cast_float16 64x64 [lanes]"]
    assert re.search(r"var<storage, read_write> out: array<(vec4<)?f32>?>", plan.steps[0].wgsl)
    assert "mma" not in names(lambda x, w: F.linear(x, w), P(1024, 768), P(3072, 768), target=MATRIX)[0]  # float32
    assert "mma" not in names(lambda x, w: F.linear(x, w, None), x, w, target=TARGET)[0]  # no subgroup matrices
    assert "gemv" in names(lambda x, w: F.linear(x, w), P(1, 768, dtype=float16), w, target=MATRIX)[0]
    assert "mma" not in names(lambda a, b: a @ b, P(64, 16, dtype=float16), P(16, 64, dtype=float16),
                              target=MATRIX)[0]  # K under 2 fragments
    # convs on the GEMM path too; direct convs (few output channels) stay
    assert names(lambda x, w: F.conv2d(x, w, padding=1).relu(), P(16, 128, 56, 56, dtype=float16),
                 P(128, 128, 3, 3, dtype=float16), target=MATRIX) == ["conv2d+relu 16x128x56x56 [mma128w8]"]
    assert "mma" not in names(lambda x, w: F.conv2d(x, w, padding=1), P(2, 3, 32, 32, dtype=float16),
                              P(16, 3, 3, 3, dtype=float16), target=MATRIX)[-1]


def test_big_float16_products_of_few_rows_take_64_row_matrix_tiles():
    """gemm_matrix.choose: a big product whose M would leave much of a 128-row tile zero padding (a conv with 64 or
    192 output channels) takes 64 x 128 tiles; 128 or 256 rows keep 128 x 128, and few tiles 64 x 64."""
    from tinydl import float16

    def conv(cout, cin=64, hw=56, batch=16):
        return [n for n in names(lambda x, w: F.conv2d(x, w, padding=1), P(batch, cin, hw, hw, dtype=float16),
                                 P(cout, cin, 3, 3, dtype=float16), target=MATRIX) if "conv2d" in n][0].split(" ")[-1]
    assert [conv(c) for c in (64, 192, 128, 256)] == ["[mma64x128]", "[mma64x128]", "[mma128w8]", "[mma128w8]"]
    assert conv(64, batch=1, hw=28) == "[mma64]"
    assert gemm_matrix.choose(1, 320, 8192) == "mma128w8"  # 384 rows against 320: under the saving asked for


@pytest.mark.parametrize("cin,tap_major", [(64, True), (96, True), (48, False), (8, False)])
@pytest.mark.parametrize("tile", ["mma128w8", "mma64x128", "mma64"])
def test_float16_convs_on_matrix_tiles_read_pixels_tap_major(use_options, tile, cin, tap_major):
    """gemm_conv / tiles.tile_reads_taps: a conv on a matrix tile whose input channels per group come in whole K
    steps reads its pixels through a TapGather (each thread splits its pixel once, each K step works out its tap
    once); other convs gather each element in (ci, kh, kw) order through load_b."""
    from tinydl import float16
    use_options(force_tile=tile, force_split_k=1)
    plan = explain.plan(lambda x, w: F.conv2d(x, w, padding=1, dilation=2), P(4, cin, 30, 30, dtype=float16),
                        P(128, cin, 3, 3, dtype=float16), target=MATRIX)
    assert plan.names[-1].endswith(f"[{tile}]"), plan.names
    wgsl = plan.steps[-1].wgsl
    assert ("let gtap = " in wgsl) == tap_major
    assert ("fn load_b(" in wgsl) != tap_major


@pytest.mark.parametrize("stride,hw,tap_major", [(2, 14, True), (1, 7, True), (1, 8, False)])
def test_float16_1x1_convs_on_matrix_tiles_read_pixels_tap_major_where_no_vec4_load_does(stride, hw, tap_major):
    """gemm_conv: a 1x1 conv on a matrix tile whose pixels no vec4 load reads (strided, or images of 49 pixels)
    reads them through a TapGather (one offset per thread, one add per element) instead of splitting each
    element's pixel index; a stride-1 conv over 64-pixel images keeps its packed vec4 loads."""
    from tinydl import float16
    plan = explain.plan(lambda x, w: F.conv2d(x, w, stride=stride), P(16, 512, hw, hw, dtype=float16),
                        P(2048, 512, 1, 1, dtype=float16), target=MATRIX)
    wgsl = plan.steps[0].wgsl
    assert "[mma" in plan.names[0] and ("let gtap = " in wgsl) == tap_major, plan.names
    assert ("fn load_b4(" in wgsl or "fn load_b8(" in wgsl) != tap_major


def test_float16_products_of_few_tiles_split_k_on_matrix_tiles():
    """gemm_matrix.split: a product of fewer than MATRIX_SPLIT_WORKGROUPS workgroups cuts K in slices (float32
    partials, added by a reduce carrying the epilogue); a tap-major conv's slices keep whole K steps of channels,
    so each still reads through the TapGather; enough workgroups, or a short K, stay in one kernel."""
    from tinydl import float16
    plan = explain.plan(lambda x, w: F.conv2d(x, w).relu(), P(16, 2048, 7, 7, dtype=float16),
                        P(512, 2048, 1, 1, dtype=float16), target=MATRIX)
    assert plan.names == ["conv2d 16x1x2x512x7x7 [mma64]", "reduce_sum+relu+cast_float16 16x512x7x7 [serial]"]
    assert "let gtap = " in plan.steps[0].wgsl
    assert gemm_matrix.split(1, 512, 784, 1152, 32, 32, "mma64") == 1  # slices of 16 channels: not whole K steps
    assert gemm_matrix.split(1, 512, 784, 4608, 512, 32, "mma64") == 2
    assert gemm_matrix.split(1, 64, 64, 8192, 8192, 1, "mma64") == 32
    assert gemm_matrix.split(1, 64, 64, 384, 384, 1, "mma64") == 1  # halves would be under MATRIX_SPLIT_MIN_K
    assert gemm_matrix.split(16, 128, 784, 4608, 512, 1, "mma64") == 1  # 16 x 26 workgroups already


@pytest.mark.parametrize("tile", list(gemm_matrix.MATRIX_TILES))
@pytest.mark.parametrize("transposed", [True, False])
def test_every_matrix_tile_forced_fits_workgroup_memory(use_options, tile, transposed):
    """Options.force_tile names any matrix tile for float16 products on subgroup matrices (float32 ones keep the
    rules' tiles): its multiply-accumulates per K step, its two barriers a step, and its
    workgroup arrays within the 48 KiB NVIDIA's Vulkan driver gives."""
    from tinydl import float16
    t = gemm_matrix.MATRIX_TILES[tile]
    use_options(force_tile=tile, force_split_k=1)
    x = P(1024, 768, dtype=float16)
    w = P(3072, 768, dtype=float16) if transposed else P(768, 3072, dtype=float16)
    plan = explain.plan(lambda x, w: x @ (w.T if transposed else w), x, w, target=MATRIX)
    assert plan.names == [f"matmul 1024x3072 [{tile}]"]
    wgsl = plan.steps[0].wgsl
    assert wgsl.count("subgroupMatrixMultiplyAccumulate") == t.bk // 16 * t.fm * t.fn
    loop = wgsl[wgsl.index("for (var k0"):wgsl.index("subgroupMatrixStore")]
    assert loop.count("workgroupBarrier()") == 2, loop  # tiles written, then read before the next step's writes
    sizes = re.findall(r"var<workgroup> \w+: array<(f16|f32), (\d+)>", wgsl)
    assert sum(int(n) * (2 if ty == "f16" else 4) for ty, n in sizes) <= 48 * 1024, sizes
    assert f"@workgroup_size({t.threads})" in wgsl
    assert "mma" not in names(lambda x, w: x @ w.T, P(1024, 768), P(3072, 768), target=MATRIX)[0]  # float32


@pytest.mark.parametrize("tile", list(gemm_matrix.MATRIX_TILES))
def test_matrix_tile_epilogues_store_fragment_rows_as_vec4s(use_options, tile):
    """The epilogue stores as many result fragments of a row to the subgroups' scratch as fit beside the operand
    tiles (one barrier pair per round, not per fragment), and pushes 4 side-by-side outputs through store_out4
    where N allows it (N % 4 == 0), else one at a time."""
    from tinydl import float16
    t = gemm_matrix.MATRIX_TILES[tile]
    use_options(force_tile=tile, force_split_k=1)
    x, w = P(1024, 768, dtype=float16), P(3072, 768, dtype=float16)
    wgsl = explain.plan(lambda x, w: x @ w.T, x, w, target=MATRIX).steps[0].wgsl
    epilogue = wgsl[wgsl.index("subgroupMatrixStore"):]
    operand_bytes = sum(2 * int(n) for n in re.findall(r"var<workgroup> [AB]s: array<f16, (\d+)>", wgsl))
    rounds = t.fm * t.fn // gemm_matrix.epilogue_fragments(t, operand_bytes)
    assert epilogue.count("subgroupMatrixStore") == t.fm * t.fn
    assert epilogue.count("workgroupBarrier()") == 2 * rounds
    if tile in ("mma128w8", "mma64"):  # the rules' tiles store a whole fragment row a round
        assert rounds == t.fm
    assert "store_out4(b, m, n, vec4<f32>(" in epilogue and "store_out(" not in epilogue
    odd = explain.plan(lambda x, w: x @ w.T, x, P(3070, 768, dtype=float16), target=MATRIX).steps[0].wgsl
    odd_epilogue = odd[odd.index("subgroupMatrixStore"):]
    assert "store_out(b, m, n, Cs[at])" in odd_epilogue and "store_out4" not in odd


def _rms_linear(x, w, W):
    """A decode step's RMSNorm then projection, as transformers writes it (statistic in float32)."""
    h = x.float()
    h = h * (h.pow(2).mean(-1, keepdim=True) + 1e-6).rsqrt()
    return F.linear(w * h.to(x.dtype), W)


@pytest.mark.parametrize("rows", [1, 3])
def test_norm_statistic_computed_inside_the_gemv(use_options, rows):
    """stats_in_gemvs: the mean square a gemv alone reads is reduced by the gemv's own workgroups (one kernel);
    off, it keeps a reduce kernel of its own."""
    inputs = P(rows, 512), P(512), P(96, 512)
    use_options(stats_in_gemv=True)
    (only,) = names(_rms_linear, *inputs)
    assert only.startswith(f"matmul {rows}x96 [gemv") and only.endswith(" stats]"), only
    use_options(stats_in_gemv=False)
    assert heads(_rms_linear, *inputs) == ["reduce_sum+mul+add+rsqrt", "matmul"]


def test_norm_statistic_keeps_its_kernel_where_not_one_gemv_reads_it(use_options):
    """stats_in_gemvs folds only a statistic one gemv reads, of few outputs, under a non-gemv GEMM never."""
    use_options(stats_in_gemv=True)
    x, w, W = P(1, 512), P(512), P(96, 512)

    def read_twice(x, w, W):
        h = x * (x.pow(2).mean(-1, keepdim=True) + 1e-6).rsqrt()
        return F.linear(h, W), h.sum()
    assert heads(read_twice, x, w, W)[0] == "reduce_sum+mul+add+rsqrt"
    # two gemvs read it (projections of one input not joined into one): it stays one kernel, read by both
    def two_readers(x, W, V):
        h = x * (x.pow(2).mean(-1, keepdim=True) + 1e-6).rsqrt()
        return F.linear(h, W), F.linear(h.exp(), V)
    assert heads(two_readers, x, W, P(32, 512)) == ["reduce_sum+mul+add+rsqrt", "matmul", "matmul"]
    # more rows than a statistic folds (fuse.GEMV_STAT_OUTPUTS), and rows enough for a tiled GEMM
    for rows in (schedule.fuse.GEMV_STAT_OUTPUTS + 1, 256):
        assert heads(_rms_linear, P(rows, 512), w, W)[0] == "reduce_sum+mul+add+rsqrt", rows
