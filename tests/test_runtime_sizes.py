"""Sizes at run time (tinydl/schedule/sizes.py): a kernel planned at several shapes compiles one shader that reads
its varying sizes from a uniform buffer; every shape stays equal to torch; literals WGSL needs as constants are
never lifted; a lifted shader that does not compile falls back to baked ones."""
import numpy as np
import pytest
import torch

import tinydl
from tinydl import debug
from tinydl.schedule import SIZES, KernelStep, plan as plan_module
from tinydl.schedule.sizes import SizeLifter, literals
from tinydl.testing import assert_close


def _values(wgsl):
    return [(wgsl[lit.start:lit.end], lit.value, lit.unsigned) for lit in literals(wgsl)]


def test_literals_skip_what_wgsl_needs_constant():
    wgsl = ("enable f16;\n@group(0) @binding(3) var<storage, read> in3: array<vec4<f32>>;\n"
            "var<workgroup> tile: array<array<f32, 17>, 16>;\nconst N = 64u;\n"
            "@compute @workgroup_size(256)\nfn main() {\n"
            "  let a = x / 13 + y % 5u + z * 7i;\n  let f = 1.5 * 2e3 + 0.25f + 0x7f800000u;\n"
            "  switch (k) { case 3: { } default: { } }\n  let s = subgroupBroadcast(v, 4u) + w[12];\n"
            "  let constx = 6; let casey = 8u; var<private> o: u32 = 2u;\n}\noverride B: u32 = 9u;\n")
    assert _values(wgsl) == [("13", 13, False), ("5u", 5, True), ("7i", 7, False), ("12", 12, False),
                             ("6", 6, False), ("8u", 8, True), ("2u", 2, True)]  # names that start with a keyword


def test_lifter_families():
    lifter = SizeLifter()
    a = "@group(0) @binding(0) var<storage, read_write> out: array<f32>;\nfn main() { let r = i / 24 % 2u; }\n"
    assert "fn main() { _ = td_sizes[0].x; let r =" in lifted_once(a)
    c, d = a.replace("24", "30"), a.replace("2u", "3u")
    key = lifter.resolve(a, plan=1)[2]
    assert lifter.resolve(a, plan=1) == (a, (), key)
    # one plan's kernels that differ only in literals (slices at other offsets) compile as they are
    assert lifter.resolve(d, plan=1) == (d, (), key)
    assert lifter.resolve(a, plan=2) == (a, (), key) and lifter.resolve(d, plan=2) == (d, (), key)  # seen before
    shader, values, _ = lifter.resolve(c, plan=2)  # a later plan's new values: read at run time
    assert values == (30,) and "i32(td_sizes[0].x)" in shader and "% 2u" in shader
    assert "@group(0) @binding(1) var<uniform> td_sizes: array<vec4<u32>, 1>;" in shader
    assert lifter.resolve(a.replace("24", "40"), plan=3)[:2] == (shader, (40,))  # the same shader
    lifter.refuse(key)
    assert lifter.resolve(c, plan=4) == (c, (), key)  # refused: each shape as it is


def lifted_once(wgsl):
    lifter = SizeLifter()
    lifter.resolve(wgsl, plan=1)
    return lifter.resolve(wgsl.replace("24", "26"), plan=2)[0]


def test_a_size_read_only_by_a_function_main_never_calls():
    """The uniform is bound to every lifted kernel, so main itself reads it (an auto layout drops a binding that
    only an unused function reads, and the bind group would not match)."""
    wgsl = ("@group(0) @binding(0) var<storage, read_write> out: array<u32>;\n"
            "fn unused() -> u32 {{ return {}u; }}\n@compute @workgroup_size(1)\nfn main() {{ out[0] = 5u; }}\n")
    lifter = SizeLifter()
    lifter.resolve(wgsl.format(3), plan=1)
    shader, values, _ = lifter.resolve(wgsl.format(4), plan=2)
    assert values == (4,)
    from tinydl.runtime import get_runtime
    rt = get_runtime()
    pipeline = rt.pipeline(shader, "unused size")
    out = rt.upload(np.zeros(1, np.uint32))
    (data,) = rt.submit([(pipeline, [out.gpu, rt.sizes_buffer(values)], (1, 1, 1))], [(out.gpu, 4)])
    assert np.frombuffer(data, np.uint32)[0] == 5


def test_lifter_reads_a_literal_once_it_varies():
    lifter = SizeLifter()
    a = "fn main() { let r = i / 24 % 2u + 7; }\n"
    lifter.resolve(a, plan=1)
    shader, values, _ = lifter.resolve(a.replace("24", "26"), plan=2)
    assert values == (26,) and "% 2u + 7" in shader
    assert lifter.resolve(a.replace("24", "28"), plan=3)[:2] == (shader, (28,))
    grown, values, _ = lifter.resolve(a.replace("+ 7", "+ 9"), plan=4)  # another literal varies too: read as well
    assert values == (24, 9) and "td_sizes[0].y" in grown and "2u" in grown


@pytest.mark.parametrize("on", [True, False])
def test_elementwise_and_rows_at_new_shapes_compile_nothing(use_options, rng, on):
    """An elementwise chain, a softmax and a layer norm over rows whose count and length change: equal to torch at
    each shape; after a few shapes, new ones compile nothing (without runtime sizes, each compiles again)."""
    use_options(runtime_sizes=on)
    w = rng.standard_normal(48).astype(np.float32)

    def run(rows, length):
        x = rng.standard_normal((rows, length, 48)).astype(np.float32)
        t = torch.from_numpy(x)
        ref = [torch.softmax(t * 0.5 + 1, -1), torch.layer_norm(t, (48,), torch.from_numpy(w)),
               torch.softmax(t.transpose(1, 2), -1)]
        X = tinydl.tensor(x)
        got = [tinydl.softmax(X * 0.5 + 1, -1), tinydl.nn.functional.layer_norm(X, (48,), tinydl.tensor(w)),
               tinydl.softmax(X.transpose(1, 2), -1)]
        for g, r in zip(got, ref):
            assert_close(g, r)
    for rows, length in [(3, 20), (5, 44), (7, 36), (6, 28)]:  # a literal varying for the first time compiles
        run(rows, length)
    compiled = debug.stats["pipelines"]
    for rows, length in [(2, 52), (4, 60), (9, 12)]:
        run(rows, length)
    assert (debug.stats["pipelines"] == compiled) == on


def test_matmul_rows_at_new_shapes(use_options, rng):
    """A GEMM whose row count changes (a batch of tokens), with a bias and activation fused: equal to torch."""
    use_options(runtime_sizes=True)
    w = rng.standard_normal((64, 96)).astype(np.float32)
    b = rng.standard_normal(96).astype(np.float32)
    counts = []
    for rows in (40, 56, 48, 60, 52):  # one GEMM variant for all of them
        x = rng.standard_normal((rows, 64)).astype(np.float32)
        ref = torch.relu(torch.from_numpy(x) @ torch.from_numpy(w) + torch.from_numpy(b))
        assert_close(tinydl.relu(tinydl.tensor(x) @ tinydl.tensor(w) + tinydl.tensor(b)), ref)
        counts.append(debug.stats["pipelines"])
    assert counts[-1] == counts[1]


def test_a_lifted_shader_that_does_not_compile_is_baked(runtime):
    """An untyped literal in a u32 context read as an i32 does not compile: the family is baked from then on, and
    the kernel still computes with its own literal."""
    wgsl = ("@group(0) @binding(0) var<storage, read_write> out: array<u32>;\n@compute @workgroup_size(1)\n"
            "fn main() {{ out[0] = out[0] / {}; }}\n")
    key = SIZES.resolve(wgsl.format(7), plan=-1)[2]
    step = KernelStep(None, 0, [], (1, 1, 1), "divide", "")
    step.wgsl, step.sizes, _ = SIZES.resolve(wgsl.format(9), plan=-2)
    assert step.sizes == (9,)
    pipeline = plan_module._lifted_pipeline(runtime, step, key, wgsl.format(9))
    assert step.wgsl == wgsl.format(9) and step.sizes == () and step.sizes_gpu is None
    assert SIZES.families[key].refused
    out = runtime.upload(np.array([90], np.uint32))
    (data,) = runtime.submit([(pipeline, [out.gpu], (1, 1, 1))], [(out.gpu, 4)])
    assert np.frombuffer(data, np.uint32)[0] == 10


def test_a_conv_net_at_other_image_sizes(use_options, rng):
    """Convs, batch norm, pools and a linear head at image sizes and batches that change call to call: equal to
    torch at each, and fewer compiles than with every size baked in."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(8, 16, 3, stride=2, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(16, 5)).eval()
    with torch.no_grad():
        net[1].running_mean.uniform_(-1, 1)
        net[1].running_var.uniform_(0.5, 2)
    tm = tinydl.from_torch(net)
    shaders = {}
    for on in (False, True):
        use_options(runtime_sizes=on)
        tinydl.schedule.clear_cache()
        for batch, size in [(2, 20), (3, 24), (2, 28), (4, 36), (3, 32)]:
            x = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
            with torch.no_grad():
                ref = net(torch.from_numpy(x))
            assert_close(tm(tinydl.tensor(x)), ref)
        # the shaders the five shapes' plans need
        shaders[on] = {s.wgsl for p in tinydl.schedule._plans.values() for s in p.steps}
    assert len(shaders[True]) < len(shaders[False])
    assert any("td_sizes" in w for w in shaders[True])


def test_by_default_a_gpu_reads_sizes_and_a_cpu_driver_bakes_them(rng):
    """Options.runtime_sizes=None (the default): sizes are read at run time on a GPU; a CPU driver (lavapipe) divides
    lane by lane by a number it did not compile in (its decode steps ran 2.3x slower), so there they stay baked."""
    from tinydl.runtime import get_runtime
    rt = get_runtime()
    cpu = tinydl.schedule.target().cpu
    assert cpu == (rt.adapter.info.get("adapter_type") == "CPU")
    tinydl.schedule.clear_cache()
    for n in (5, 9, 13):
        x = rng.standard_normal((n, 3)).astype(np.float32)
        assert_close(tinydl.tensor(x).exp() * 2 - 1, np.exp(x) * 2 - 1)
    lifted = [s for p in tinydl.schedule._plans.values() for s in p.steps if s.sizes]
    assert bool(lifted) != cpu


def test_lifter_crowds_of_one_plan():
    """More than Options.plan_family_max shaders of one plan that differ only in literals: their family reads the
    differing literals at run time (one shader for all); a family of a few, or one that only occurs at one set of
    values, is not a crowd."""
    lifter = SizeLifter()
    a = "@group(0) @binding(0) var<storage, read_write> out: array<f32>;\nfn main() { let r = i / 24 % 2u; }\n"
    b = "@group(0) @binding(0) var<storage, read_write> out: array<f32>;\nfn main() { let r = i * 3; }\n"
    family = [a.replace("24", str(24 + k)) for k in range(6)]
    assert lifter.crowds(family[:4] + [b, b, b] + family[:4], 4) == []
    crowd, = lifter.crowds(family + [b], 4)
    assert crowd == sorted(family)
    # on a CPU driver the numbers shaders divide by stay compiled in: these differ in a divisor, those do not
    assert lifter.crowds(family, 4, fixed_divisors=True) == []
    scaled = [b.replace("i * 3", f"i * {3 + k} % 7") for k in range(6)]
    assert lifter.crowds(scaled, 4, fixed_divisors=True) == [sorted(scaled)]
    lifter.crowd(crowd, plan=1)
    shaders = {lifter.resolve(w, plan=1, across_plans=False)[0] for w in family}
    assert len(shaders) == 1 and "i32(td_sizes[0].x)" in shaders.pop() and "% 2u" in lifter.resolve(a, 1)[0]
    assert [lifter.resolve(w, plan=1, across_plans=False)[1] for w in family] == [(24 + k,) for k in range(6)]
    # a crowded family met at a new value of another literal on a CPU driver (not across plans): baked
    other = a.replace("2u", "5u")
    assert lifter.resolve(other, plan=2, across_plans=False) == (other, (), lifter.resolve(a, 1)[2])


@pytest.mark.parametrize("runtime_sizes", [None, True, False])
def test_a_dense_block_compiles_a_shader_per_kind_of_layer(use_options, rng, runtime_sizes):
    """A DenseNet block: each layer convolves the concatenation of every earlier output. The concatenation grows by
    one copy per layer (joining._growing_cat), and the layers' kernels, which differ only in channel counts, share
    lifted shaders unless runtime_sizes=False: a dozen layers compile a handful of shaders, not one per layer. On a
    CPU driver only literals it does not divide by are lifted: the convs share a shader, the copies (which divide
    by the channel count) do not. Equal to torch either way."""
    use_options(runtime_sizes=runtime_sizes)
    layers = 12
    torch.manual_seed(0)
    block = [torch.nn.Sequential(torch.nn.BatchNorm2d(8 + 4 * k), torch.nn.ReLU(), torch.nn.Conv2d(8 + 4 * k, 4, 1))
             for k in range(layers)]
    for layer in block:
        layer[0].running_mean.uniform_(-1, 1)
        layer[0].running_var.uniform_(0.5, 2)

    class Dense(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = torch.nn.ModuleList(block)

        def forward(self, x):
            features = [x]
            for layer in self.layers:
                features.append(layer(torch.cat(features, 1)))
            return torch.cat(features, 1)

    net = Dense().eval()
    x = rng.standard_normal((1, 8, 6, 6)).astype(np.float32)
    tm = tinydl.from_torch(net, example_inputs=(torch.from_numpy(x),))
    tinydl.schedule.clear_cache()
    assert_close(tm(tinydl.tensor(x)), net(torch.from_numpy(x)))
    steps = [s for p in tinydl.schedule._plans.values() for s in p.steps]
    convs = {s.wgsl for s in steps if s.name.startswith("conv")}
    if runtime_sizes is False:
        assert len(convs) >= layers  # every layer's conv its own shader
    else:
        assert len(convs) <= 2 and all("td_sizes" in w for w in convs)
        # the copies growing the concatenation share one where numbers a CPU driver divides by may vary
        gpu_like = runtime_sizes or not tinydl.schedule.target().cpu
        assert len({s.wgsl for s in steps}) <= (4 if gpu_like else layers + 4)
