"""A captured replay (tinydl.jit, and every from_torch module) must see the model's current state: whatever
changes a forward's result drops the model's captures (and only that model's), and reloading weights again and
again keeps memory flat (the dropped capture's buffers go back to the pool; no capture or plan piles up)."""
import gc

import numpy as np
import pytest
import torch

import tinydl
from tinydl import nn
from tinydl.capture import jit
from tinydl.nn import functional as F
from tinydl.runtime import get_runtime
from tinydl.testing import assert_close


class TorchNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.fc = torch.nn.Linear(8, 4)
        self.drop = torch.nn.Dropout(0.25)

    def forward(self, x):
        h = torch.relu(self.bn(self.conv(x)))
        return self.fc(self.drop(torch.nn.functional.adaptive_avg_pool2d(h, 1).flatten(1)))


def _net(seed=0):
    torch.manual_seed(seed)
    tm = TorchNet().eval()
    with torch.no_grad():
        tm.bn.running_mean.uniform_(-1, 1)
        tm.bn.running_var.uniform_(0.5, 2)
    return tm, tinydl.from_torch(tm)


def _t(rng, *shape):
    return rng.standard_normal(shape, dtype=np.float32)


def _captured(dm, x):
    """Two calls: the first captures, the second replays (the state every mutation below must break)."""
    dm(tinydl.tensor(x))
    dm(tinydl.tensor(x))
    assert len(dm._replay.captures) == 1


def _set_param(tm, dm, rng):
    w = _t(rng, 4, 8)
    tm.fc.weight = torch.nn.Parameter(torch.from_numpy(w))
    dm.fc.weight = nn.Parameter(tinydl.tensor(w))


def _register_param(tm, dm, rng):
    b = _t(rng, 4)
    tm.fc.register_parameter("bias", torch.nn.Parameter(torch.from_numpy(b)))
    dm.fc.register_parameter("bias", nn.Parameter(tinydl.tensor(b)))


def _param_to_none(tm, dm, rng):
    tm.fc.bias = None
    dm.fc.bias = None


def _set_buffer(tm, dm, rng):
    m = _t(rng, 8)
    tm.bn.running_mean = torch.from_numpy(m)
    dm.bn.running_mean = tinydl.tensor(m)


def _register_buffer(tm, dm, rng):
    v = np.abs(_t(rng, 8)) + 0.5
    tm.bn.register_buffer("running_var", torch.from_numpy(v))
    dm.bn.register_buffer("running_var", tinydl.tensor(v))


def _load_state_dict(tm, dm, rng):
    with torch.no_grad():
        tm.conv.weight.mul_(-1.5)
        tm.bn.running_mean.add_(0.5)
    dm.load_state_dict(tm.state_dict())


def _half_then_float(tm, dm, rng):  # the weights come back rounded to float16: new data, same dtype
    tm.half().float()
    dm.half().float()


def _to_dtype_and_back(tm, dm, rng):
    tm.to(torch.float16).to(torch.float32)
    dm.to(torch.float16).to(torch.float32)


def _replace_submodule(tm, dm, rng):
    tm.fc = torch.nn.Linear(8, 4)
    new = nn.Linear(8, 4)
    new.weight = nn.Parameter(tinydl.tensor(tm.fc.weight.detach().numpy()))
    new.bias = nn.Parameter(tinydl.tensor(tm.fc.bias.detach().numpy()))
    dm.fc = new


def _replace_nested_parameter(tm, dm, rng):
    w = _t(rng, 8, 3, 3, 3)
    tm.conv.weight = torch.nn.Parameter(torch.from_numpy(w))
    dm.conv.weight = nn.Parameter(tinydl.tensor(w))


def _plain_attribute(tm, dm, rng):
    tm.bn.eps = 0.75
    dm.bn.eps = 0.75


def _train_then_eval(tm, dm, rng):  # the same state as before: a new capture or the old one, both right
    dm.train()
    dm.eval()


MUTATIONS = [_set_param, _register_param, _param_to_none, _set_buffer, _register_buffer, _load_state_dict,
             _half_then_float, _to_dtype_and_back, _replace_submodule, _replace_nested_parameter, _plain_attribute,
             _train_then_eval]


@pytest.mark.parametrize("mutate", MUTATIONS, ids=lambda f: f.__name__.strip("_"))
def test_a_replay_after_a_mutation_equals_torch(rng, mutate):
    tm, dm = _net()
    x = _t(rng, 2, 3, 6, 6)
    _captured(dm, x)
    mutate(tm, dm, rng)
    with torch.no_grad():
        want = tm(torch.from_numpy(x))
    for _ in range(2):  # the new capture, then its replay
        assert_close(dm(tinydl.tensor(x)), want, atol=1e-5)


def test_train_after_a_captured_eval_call_raises():
    tm, dm = _net()
    x = np.ones((1, 3, 5, 5), np.float32)
    _captured(dm, x)
    dm.train()
    with pytest.raises(RuntimeError, match="training mode"):
        dm(tinydl.tensor(x))
    dm.eval()
    with torch.no_grad():
        assert_close(dm(tinydl.tensor(x)), tm(torch.from_numpy(x)), atol=1e-5)


def test_a_submodule_in_train_mode_raises_too():
    _, dm = _net()
    x = np.ones((1, 3, 5, 5), np.float32)
    _captured(dm, x)
    dm.bn.train()
    with pytest.raises(RuntimeError, match="training mode"):
        dm(tinydl.tensor(x))


def test_reloading_one_model_keeps_the_others_capture(rng):
    tm_a, dm_a = _net(0)
    tm_b, dm_b = _net(1)
    x = _t(rng, 1, 3, 5, 5)
    _captured(dm_a, x)
    _captured(dm_b, x)
    cap_b = next(iter(dm_b._replay.captures.values()))
    with torch.no_grad():
        tm_a.fc.weight.mul_(3.0)
    dm_a.load_state_dict(tm_a.state_dict())
    dm_a.eval()
    with torch.no_grad():
        assert_close(dm_a(tinydl.tensor(x)), tm_a(torch.from_numpy(x)), atol=1e-5)
        plans = tinydl.debug.stats["plans"]
        assert_close(dm_b(tinydl.tensor(x)), tm_b(torch.from_numpy(x)), atol=1e-5)
    assert list(dm_b._replay.captures.values()) == [cap_b]  # B replayed the capture it had
    assert tinydl.debug.stats["plans"] == plans


def test_an_unchanged_replay_takes_no_fingerprint(rng, monkeypatch):
    """The replay's fast path checks one flag; the module tree is walked only after a change was signalled."""
    _, dm = _net()
    x = _t(rng, 1, 3, 5, 5)
    _captured(dm, x)
    walks = []
    orig = nn.Module._fingerprint
    monkeypatch.setattr(nn.Module, "_fingerprint", lambda self, w=None: walks.append(1) or orig(self, w))
    for _ in range(3):
        dm(tinydl.tensor(x))
    assert walks == []
    dm.fc.weight = nn.Parameter(dm.fc.weight * 2.0)
    dm(tinydl.tensor(x))
    assert walks


def test_dropped_captures_give_their_buffers_back(rng):
    """Reload rounds on a small CNN: one capture, no new plan, and from the third round on no GPU buffer
    created at all (weights, intermediates and input copies all come back from the pool)."""
    tm, dm = _net()
    sd = tm.state_dict()
    x = tinydl.tensor(_t(rng, 1, 3, 6, 6))
    rt = get_runtime()
    created = []
    orig = rt.device.create_buffer

    def counting(*a, **k):
        created.append(1)
        return orig(*a, **k)

    rt.device.create_buffer = counting
    try:
        per_round, pooled = [], []
        for _ in range(8):
            n0 = len(created)
            dm.load_state_dict(sd)
            dm(x).numpy()
            dm(x).numpy()
            gc.collect()
            per_round.append(len(created) - n0)
            pooled.append(sum(len(v) for v in rt._free.values()))
            assert len(dm._replay.captures) == 1
        plans = tinydl.debug.stats["plans"]
        dm.load_state_dict(sd)
        dm(x)
        assert tinydl.debug.stats["plans"] == plans
    finally:
        del rt.device.create_buffer
    assert per_round[2:] == [0] * 6, per_round
    assert max(pooled[2:]) == min(pooled[2:]), pooled


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2 ** 20


def test_resnet18_reload_rounds_keep_memory_flat(rng):
    """The issue's case: ten rounds of load_state_dict + forward on ResNet-18 (32x32 input) grew the captures
    from 1 to 11 and the process by ~45-57 MB a round. Now: one capture, the pool and RSS flat."""
    from tinydl.interop.torchvision_compat import import_torchvision
    tv = import_torchvision()
    torch.manual_seed(0)
    tm = tv.models.resnet18(num_classes=10).eval()
    dm = tinydl.from_torch(tm)
    sd = tm.state_dict()
    x = _t(rng, 1, 3, 32, 32)
    rt = get_runtime()
    rss, pooled = [], []
    for _ in range(10):
        dm.load_state_dict(sd)
        out = dm(tinydl.tensor(x)).numpy()
        gc.collect()
        assert len(dm._replay.captures) == 1
        rss.append(_rss_mb())
        pooled.append(sum(len(v) for v in rt._free.values()))
    assert max(pooled[2:]) == min(pooled[2:]), pooled
    assert rss[-1] - rss[2] < 40, rss  # the weights alone are ~45 MB: one leaked round would show
    with torch.no_grad():
        assert_close(dm(tinydl.tensor(x)), tm(torch.from_numpy(x)), atol=1e-4)
    assert_close(out, tm(torch.from_numpy(x)).detach(), atol=1e-4)


# -- hand-written tinydl.nn models through tinydl.jit -------------------------------------------------------
class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 3)
        self.norm = nn.LayerNorm(3)

    def forward(self, x):
        y = self.norm(self.fc(x))
        shift = getattr(self, "shift", None)
        return y if shift is None else y + shift


def _small_ref(m, x):
    w, b = m.fc.weight.numpy(), m.fc.bias.numpy()
    y = torch.nn.functional.layer_norm(torch.from_numpy(x @ w.T + b), (3,), torch.from_numpy(m.norm.weight.numpy()),
                                       torch.from_numpy(m.norm.bias.numpy()), m.norm.eps)
    shift = getattr(m, "shift", None)
    return y if shift is None else y + torch.from_numpy(shift.numpy())


@pytest.mark.parametrize("wrap", ["module", "closure"])
def test_hand_written_module_through_jit(rng, wrap):
    m = Small().eval()
    f = jit(m) if wrap == "module" else jit(lambda t: m(t) * 1.0)
    x = _t(rng, 2, 6)

    def check():
        for _ in range(2):
            assert_close(f(tinydl.tensor(x)), _small_ref(m, x), atol=1e-5)

    check()
    m.fc.weight = nn.Parameter(tinydl.tensor(_t(rng, 3, 6)))
    check()
    m.register_buffer("shift", tinydl.tensor(_t(rng, 3)))
    check()
    del m.shift
    check()
    m.norm = nn.LayerNorm(3, eps=0.5)
    check()
    m.load_state_dict({k: _t(rng, *v.shape) for k, v in m.state_dict().items()})
    check()
    m.norm.eps = 2.0
    check()
    assert len(f.captures) == 1


class Counter(nn.Module):
    """A forward that changes the state it reads (each call adds one): a replay would not, so it is never
    captured and every call runs."""

    def __init__(self):
        super().__init__()
        self.register_buffer("count", tinydl.tensor(np.zeros((), np.float32)))

    def forward(self, x):
        self.count = (self.count + 1.0).realize()
        return x * self.count


def test_a_forward_that_changes_its_state_is_not_replayed():
    f = jit(Counter())
    x = np.ones(3, np.float32)
    for k in range(1, 4):
        np.testing.assert_array_equal(f(tinydl.tensor(x)).numpy(), x * k)
    assert not f.captures


def test_jits_of_two_models_are_independent(rng):
    a, b = Small().eval(), Small().eval()
    fa, fb = jit(a), jit(b)
    x = tinydl.tensor(_t(rng, 2, 6))
    fa(x), fb(x)
    cap_b = fb.captures.copy()
    a.load_state_dict({k: _t(rng, *v.shape) for k, v in a.state_dict().items()})
    fa(x), fb(x)
    assert fb.captures == cap_b
    assert_close(fa(x), _small_ref(a, x.numpy()), atol=1e-5)


def test_deepcopy_of_a_captured_model_replays_on_its_own(rng):
    """copy.deepcopy of a converted model after calls (its Jit held GPU objects: the copy failed); the copy
    starts without captures, and a change to one copy leaves the other's results alone."""
    import copy
    tm, dm = _net()
    x = _t(rng, 1, 3, 5, 5)
    _captured(dm, x)
    dc = copy.deepcopy(dm)
    assert not dc._replay.captures and dc._replay.fn.__self__ is dc
    tc = copy.deepcopy(tm)
    _set_param(tc, dc, rng)
    with torch.no_grad():
        for _ in range(2):
            assert_close(dc(tinydl.tensor(x)), tc(torch.from_numpy(x)), atol=1e-5)
            assert_close(dm(tinydl.tensor(x)), tm(torch.from_numpy(x)), atol=1e-5)
    assert len(dm._replay.captures) == 1 and len(dc._replay.captures) == 1
