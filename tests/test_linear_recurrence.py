"""tinydl.linear_recurrence (tinydl/scans.py, one RECURRENCE kernel) against a torch loop: dims, broadcasting, an
initial state, float16's per-op rounding, NaN and Inf as the loop gives them, runs longer than one kernel's loop,
torch's-style errors; the torch custom op tinydl::linear_recurrence; and Hugging Face's Mamba scan exported as
that op (interop/recurrences.py): equal to transformers' loop on torch, one node however long the sequence."""
import importlib
import os

os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import tinydl  # noqa: E402
from tinydl.interop import recurrences, registry  # noqa: E402
from tinydl.testing import assert_close  # noqa: E402

scans = importlib.import_module("tinydl.scans")


def loop(a, b, dim, initial=None):
    """The recurrence as a Python loop of torch ops (what models write)."""
    a, b = torch.broadcast_tensors(a, b)
    h = torch.zeros_like(a.select(dim, 0)) if initial is None else initial.to(a.dtype).expand_as(a.select(dim, 0))
    states = []
    for t in range(a.shape[dim]):
        h = a.select(dim, t) * h + b.select(dim, t)
        states.append(h)
    return torch.stack(states, dim)


def run(a, b, dim, initial=None):
    return tinydl.linear_recurrence(tinydl.tensor(a.numpy()), tinydl.tensor(b.numpy()), dim,
                                    None if initial is None else tinydl.tensor(initial.numpy()))


@pytest.mark.parametrize("shape,dim", [((2, 3, 7, 5), 2), ((9, 4), 0), ((3, 1, 6), -1), ((40,), 0)])
def test_matches_a_torch_loop(shape, dim):
    g = torch.Generator().manual_seed(sum(shape))
    a = torch.rand(shape, generator=g) * 1.5 - 0.5  # decays, growth and sign changes
    b = torch.randn(shape, generator=g)
    assert_close(run(a, b, dim), loop(a, b, dim), rtol=1e-5, atol=1e-5)


def test_broadcast_operands_and_an_initial_state():
    g = torch.Generator().manual_seed(1)
    a = torch.rand(1, 3, 8, 1, generator=g)   # Mamba's discrete A is [b, d, l, n]; here broadcast over b and n
    b = torch.randn(2, 1, 8, 4, generator=g)
    h0 = torch.randn(3, 4, generator=g)       # one step, broadcast over the batch
    out = run(a, b, 2, h0)
    assert out.shape == (2, 3, 8, 4)
    assert_close(out, loop(a, b, 2, h0), rtol=1e-5, atol=1e-5)


def test_float16_rounds_each_product_and_sum_as_torch_does():
    g = torch.Generator().manual_seed(2)
    a = (torch.rand(4, 64, 3, generator=g) * 0.3 + 0.7).half()
    b = (torch.randn(4, 64, 3, generator=g) * 300).half()  # sums near float16's coarse steps
    out = run(a, b, 1)
    assert out.dtype == tinydl.float16
    assert_close(out, loop(a, b, 1), rtol=2e-3, atol=1e-2)
    big = torch.full((1, 3, 1), 60000.0).half()  # 60000 + 60000 overflows float16 at the second step
    np.testing.assert_array_equal(run(torch.ones_like(big), big, 1).numpy(), loop(torch.ones_like(big), big, 1).numpy())


def test_nan_and_inf_as_the_loop_gives_them():
    a = torch.tensor([[float("inf"), 1.0, 0.5], [1.0, float("nan"), 1.0], [0.0, 2.0, -1.0]])
    b = torch.tensor([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0], [float("inf"), 1.0, 1.0]])
    np.testing.assert_array_equal(run(a, b, 1).numpy(), loop(a, b, 1).numpy())  # inf * 0 is NaN at the start


def test_runs_longer_than_a_kernel_loop_chain_kernels(monkeypatch):
    monkeypatch.setattr(scans, "MAX_TRIPS", 4)
    g = torch.Generator().manual_seed(3)
    a, b = torch.rand(2, 11, 3, generator=g), torch.randn(2, 11, 3, generator=g)
    with tinydl.debug.count_kernels() as c:
        out = run(a, b, 1).realize()
    assert sum(n.startswith("linear_recurrence") for n in c.names) == 3
    assert_close(out, loop(a, b, 1), rtol=1e-5, atol=1e-5)


def test_one_kernel_computes_its_operands_inline():
    """Mamba's exp(A * dt) and dt * B * u are read by the kernel as formulas, never stored."""
    g = torch.Generator().manual_seed(4)
    A, dt = -torch.rand(6, 4, generator=g), torch.rand(2, 6, 9, generator=g)
    B, u = torch.randn(2, 9, 4, generator=g), torch.randn(2, 6, 9, generator=g)
    tA, tdt, tB, tu = (tinydl.tensor(t.numpy()) for t in (A, dt, B, u))
    with tinydl.debug.count_kernels() as c:
        out = tinydl.linear_recurrence((tA[None, :, None] * tdt[..., None]).exp(),
                                       tdt[..., None] * tB[:, None] * tu[..., None], 2).realize()
    assert c.count == 1 and c.names[0].startswith("linear_recurrence")
    ref = loop((A[None, :, None] * dt[..., None]).exp(), dt[..., None] * B[:, None] * u[..., None], 2)
    assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_empty_and_bad_inputs():
    z = tinydl.linear_recurrence(tinydl.zeros((2, 0, 3)), tinydl.zeros((2, 0, 3)), 1)
    assert z.shape == (2, 0, 3)
    with pytest.raises(TypeError, match="expected floating point tensors, got int32"):
        tinydl.linear_recurrence(tinydl.zeros(3, dtype=tinydl.int32), tinydl.zeros(3, dtype=tinydl.int32), 0)
    with pytest.raises(RuntimeError, match=r"initial of shape \[5\] does not broadcast to one step of the result, "
                                           r"\[2, 3\]"):
        tinydl.linear_recurrence(tinydl.zeros((2, 4, 3)), tinydl.zeros((2, 4, 3)), 1, tinydl.zeros(5))
    with pytest.raises(IndexError, match="Dimension out of range"):
        tinydl.linear_recurrence(tinydl.zeros((2, 4)), tinydl.zeros((2, 4)), 2)
    with pytest.raises(IndexError, match="need at least one dim"):
        tinydl.linear_recurrence(tinydl.zeros(()), tinydl.zeros(()), 0)
    with pytest.raises(TypeError, match="expected tinydl Tensors, got ndarray"):
        tinydl.linear_recurrence(np.zeros(3), tinydl.zeros(3), 0)


def test_the_torch_op_is_the_loop_and_maps_to_tinydl():
    g = torch.Generator().manual_seed(5)
    a, b = torch.rand(3, 5, generator=g), torch.randn(1, 5, generator=g).double()
    out = recurrences.torch_op()(a, b, 1)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, loop(a, b, 1))
    assert registry.lookup("tinydl.linear_recurrence.default") is tinydl.linear_recurrence


# -- Hugging Face's Mamba scan --

@pytest.fixture(scope="module")
def transformers():
    from tinydl.interop.torchvision_compat import import_torchvision
    import_torchvision()
    import transformers
    transformers.logging.set_verbosity_error()
    return transformers


@pytest.mark.parametrize("with_options", [False, True])
def test_selective_scan_equals_transformers_loop(transformers, with_options):
    from transformers.models.mamba import modeling_mamba
    g = torch.Generator().manual_seed(6)
    b, d, n, length = 2, 6, 4, 9
    args = (torch.randn(b, d, length, generator=g), torch.randn(b, d, length, generator=g),
            -torch.rand(d, n, generator=g) * 2, torch.randn(b, n, length, generator=g),
            torch.randn(b, n, length, generator=g))
    options = dict(D=torch.randn(d, generator=g), z=torch.randn(b, d, length, generator=g),
                   delta_bias=torch.randn(d, generator=g), delta_softplus=True) if with_options else {}
    ref = modeling_mamba.mamba_selective_scan(*args, return_last_state=True, **options)
    ours = recurrences.selective_scan(*args, return_last_state=True, **options)
    for r, o in zip(ref, ours):
        torch.testing.assert_close(o, r, rtol=1e-5, atol=1e-5)
    assert ours[1].dtype == ref[1].dtype
    torch.testing.assert_close(recurrences.selective_scan(*args, **options),
                               modeling_mamba.mamba_selective_scan(*args, **options), rtol=1e-5, atol=1e-5)


def test_a_mamba_model_exports_its_scan_as_one_op_for_any_length(transformers):
    from transformers.models.mamba import modeling_mamba
    torch.manual_seed(0)
    cfg = transformers.MambaConfig(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                   state_size=4, time_step_rank=2, use_cache=False)
    m = transformers.MambaModel(cfg).eval()
    original = modeling_mamba.mamba_selective_scan
    tm = tinydl.from_torch(m, example_inputs=(torch.randint(0, 50, (1, 12)),))
    assert modeling_mamba.mamba_selective_scan is original  # swapped only while export traced
    targets = [str(n.target) for n in tm._program.graph.nodes if n.op == "call_function"]
    assert targets.count("tinydl.linear_recurrence.default") == 2  # one per layer, no loop over the tokens
    for length in (12, 5, 30):
        ids = torch.randint(0, 50, (1, length))
        with torch.no_grad():
            ref = m(ids).last_hidden_state
        assert_close(tm(ids).last_hidden_state, ref, rtol=1e-4, atol=1e-4)
