"""tinydl.nn.Module against torch.nn.Module: registration, traversal (names and order), modes, state_dict and
load_state_dict (with torch's error messages), dtype casts, containers and repr."""
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn as tnn

import tinydl
import tinydl.nn as nn
from tinydl.testing import assert_close


def build(lib, make_tensor):
    """The same nested model in torch.nn (lib=torch.nn) and tinydl.nn: Sequential, ModuleList, ModuleDict, a
    shared submodule, a plain parameter, a persistent and a non-persistent buffer."""
    class Block(lib.Module):
        def __init__(self, c):
            super().__init__()
            self.conv = lib.Conv2d(c, c, 3, padding=1, bias=False)
            self.bn = lib.BatchNorm2d(c)
            self.act = lib.ReLU()

        def forward(self, x):
            return self.act(self.bn(self.conv(x))) + x

    class Net(lib.Module):
        def __init__(self):
            super().__init__()
            self.stem = lib.Sequential(lib.Conv2d(3, 4, 3, padding=1), lib.BatchNorm2d(4), lib.ReLU6())
            self.blocks = lib.ModuleList([Block(4), Block(4)])
            self.heads = lib.ModuleDict({"cls": lib.Linear(4, 5), "aux": lib.Linear(4, 2)})
            self.register_buffer("scale", make_tensor(np.full(5, 2.0, np.float32)))
            self.register_buffer("cache", make_tensor(np.zeros(3, np.float32)), persistent=False)
            self.gamma = lib.Parameter(make_tensor(np.ones(5, np.float32)))
            self.pool = lib.AdaptiveAvgPool2d(1)
            self.drop = lib.Dropout(0.2)
            self.norm = lib.LayerNorm(5)
            self.shared = self.heads["aux"]  # the same module under two names

        def forward(self, x):
            x = self.stem(x)
            for b in self.blocks:
                x = b(x)
            x = self.pool(x).flatten(1)
            return self.norm(self.drop(self.heads["cls"](x)) * self.gamma * self.scale), self.shared(x)

    return Net()


def randomize(model, rng):
    """Random weights and non-trivial BatchNorm statistics (so a wrong copy shows)."""
    with torch.no_grad():
        for name, t in list(model.named_parameters()) + list(model.named_buffers()):
            if t.dtype.is_floating_point:
                v = rng.standard_normal(t.shape).astype(np.float32) * 0.5
                if name.endswith("running_var"):
                    v = np.abs(v) + 0.5
                t.copy_(torch.from_numpy(v))
    return model


@pytest.fixture
def pair(rng):
    torch_model = randomize(build(tnn, torch.from_numpy), rng).eval()
    model = build(nn, tinydl.tensor).eval()
    model.load_state_dict(torch_model.state_dict())
    return torch_model, model


def run_both(pair, x):
    torch_model, model = pair
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x))
    return model(tinydl.tensor(x)), expected


# -- calling and traversal -------------------------------------------------------------------------------
def test_call_runs_forward_with_torch_results(pair, rng):
    x = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    (a1, a2), (e1, e2) = run_both(pair, x)
    assert_close(a1, e1)
    assert_close(a2, e2)


def test_forward_missing_raises():
    with pytest.raises(NotImplementedError, match='missing the required "forward" function'):
        nn.Module()(1)


@pytest.mark.parametrize("method", ["named_parameters", "named_buffers", "named_children", "named_modules"])
def test_named_traversal_same_names_and_order(pair, method):
    torch_model, model = pair
    t_names = [n for n, _ in getattr(torch_model, method)()]
    names = [n for n, _ in getattr(model, method)()]
    assert names == t_names
    assert len(names) == len(set(names))  # the shared module is listed once, like torch


@pytest.mark.parametrize("method", ["parameters", "buffers", "children", "modules"])
def test_unnamed_traversal_matches_torch(pair, method):
    torch_model, model = pair
    got = list(getattr(model, method)())
    want = list(getattr(torch_model, method)())
    assert len(got) == len(want)
    if method in ("parameters", "buffers"):
        assert [tuple(t.shape) for t in got] == [tuple(t.shape) for t in want]
    else:
        assert [type(m).__name__ for m in got] == [type(m).__name__ for m in want]


def test_traversal_options(pair):
    torch_model, model = pair
    assert [n for n, _ in model.named_parameters(prefix="net", recurse=True)] == \
        [n for n, _ in torch_model.named_parameters(prefix="net", recurse=True)]
    assert [n for n, _ in model.named_parameters(recurse=False)] == ["gamma"]
    assert [n for n, _ in model.named_buffers(recurse=False)] == \
        [n for n, _ in torch_model.named_buffers(recurse=False)] == ["scale", "cache"]
    assert [n for n, _ in model.named_modules(remove_duplicate=False)] == \
        [n for n, _ in torch_model.named_modules(remove_duplicate=False)]
    assert model.get_submodule("blocks.1.bn") is model.blocks[1].bn
    with pytest.raises(AttributeError, match="has no attribute `nope`"):
        model.get_submodule("blocks.nope")


def test_apply_visits_children_first_like_torch(pair):
    torch_model, model = pair
    t_order, order = [], []
    torch_model.apply(lambda m: t_order.append(type(m).__name__))
    assert model.apply(lambda m: order.append(type(m).__name__)) is model
    assert order == t_order


# -- registration -----------------------------------------------------------------------------------------
def test_register_buffer_persistent_and_not():
    m = nn.Module()
    m.register_buffer("a", np.arange(3, dtype=np.float32))
    m.register_buffer("b", tinydl.ones(2), persistent=False)
    m.register_buffer("c", None)
    assert [n for n, _ in m.named_buffers()] == ["a", "b"]  # None buffers are skipped, like torch
    assert list(m.state_dict()) == ["a"]  # non-persistent: not saved
    assert_close(m.b, np.ones(2, np.float32))
    t = tnn.Module()
    t.register_buffer("a", torch.arange(3.0))
    t.register_buffer("b", torch.ones(2), persistent=False)
    assert list(t.state_dict()) == list(m.state_dict())
    m.load_state_dict({"a": np.full(3, 7, np.float32)})  # the non-persistent buffer is not expected
    assert_close(m.a, np.full(3, 7, np.float32))


@pytest.mark.parametrize("call", [
    lambda lib, T: lib.Module().register_buffer("a.b", T(np.zeros(1, np.float32))),
    lambda lib, T: lib.Module().register_buffer("", T(np.zeros(1, np.float32))),
    lambda lib, T: lib.Module().register_buffer(3, None),
    lambda lib, T: lib.Module().register_parameter("a.b", None),
    lambda lib, T: lib.Module().register_parameter("", None),
    lambda lib, T: lib.Module().add_module("a.b", None),
    lambda lib, T: lib.Module().add_module("", lib.ReLU()),
    lambda lib, T: lib.Module().add_module(3, lib.ReLU()),
    lambda lib, T: lib.Module().add_module("x", 3),
    lambda lib, T: lib.Linear(2, 2).register_buffer("weight", None),
    lambda lib, T: lib.Linear(2, 2).add_module("bias", lib.ReLU()),
], ids=["buffer-dot", "buffer-empty", "buffer-int", "param-dot", "param-empty", "module-dot", "module-empty",
        "module-int", "module-not-module", "buffer-over-param", "module-over-param"])
def test_registration_errors_match_torch(call):
    with pytest.raises((KeyError, TypeError)) as t_err:
        call(tnn, torch.from_numpy)
    with pytest.raises(type(t_err.value)) as err:
        call(nn, tinydl.tensor)
    assert err.value.args == t_err.value.args


def test_register_buffer_over_attribute():
    m = nn.Module()
    m.x = 3
    with pytest.raises(KeyError, match="attribute 'x' already exists"):
        m.register_buffer("x", tinydl.zeros(1))


def test_register_module_and_add_module():
    m, t = nn.Module(), tnn.Module()
    m.add_module("fc", nn.Linear(2, 3))
    m.register_module("act", nn.ReLU())
    t.add_module("fc", tnn.Linear(2, 3))
    t.register_module("act", tnn.ReLU())
    assert [n for n, _ in m.named_children()] == [n for n, _ in t.named_children()] == ["fc", "act"]
    assert list(m.state_dict()) == list(t.state_dict())
    assert isinstance(m.fc, nn.Linear)


def test_setattr_registers_and_reassigns():
    m = nn.Module()
    m.w = nn.Parameter(np.ones(2, np.float32))
    m.sub = nn.Linear(2, 2)
    assert [n for n, _ in m.named_parameters()] == ["w", "sub.weight", "sub.bias"]
    m.sub = None  # like torch: the slot stays, holding None
    assert [n for n, _ in m.named_parameters()] == ["w"]
    del m.w
    assert list(m.named_parameters()) == []
    with pytest.raises(AttributeError, match="'Module' object has no attribute 'w'"):
        m.w


# -- modes ------------------------------------------------------------------------------------------------
def test_train_eval_flags(pair):
    torch_model, model = pair
    assert model.train() is model
    assert all(m.training for m in model.modules())
    assert model.eval() is model
    assert not any(m.training for m in model.modules())
    model.blocks.train()
    torch_model.blocks.train()
    assert [m.training for m in model.modules()] == [m.training for m in torch_model.modules()]
    with pytest.raises(ValueError, match="training mode is expected to be boolean"):
        model.train("yes")


@pytest.mark.parametrize("layer,shape", [(lambda: nn.BatchNorm2d(3), (1, 3, 4, 4)),
                                         (lambda: nn.BatchNorm1d(3), (2, 3)),
                                         (lambda: nn.Dropout(0.5), (2, 3)),
                                         (lambda: nn.Dropout2d(0.1), (1, 3, 4, 4)),
                                         (lambda: nn.MultiheadAttention(4, 2, dropout=0.1), None)])
def test_train_mode_layers_refuse(layer, shape, rng):
    m = layer()  # modules start in training mode, like torch
    assert m.training
    if shape is None:
        x = tinydl.tensor(rng.standard_normal((3, 1, 4)).astype(np.float32))
        args = (x, x, x)
    else:
        args = (tinydl.tensor(rng.standard_normal(shape).astype(np.float32)),)
    with pytest.raises(RuntimeError, match=r"inference only.*call model\.eval\(\)"):
        m(*args)
    m.eval()
    m(*args)  # fine in eval mode


def test_dropout_p0_in_train_mode_is_identity(rng):
    x = rng.standard_normal((2, 3)).astype(np.float32)
    assert_close(nn.Dropout(0.0)(tinydl.tensor(x)), x)


# -- state_dict / load_state_dict ---------------------------------------------------------------------------
def test_state_dict_keys_identical_to_torch(pair):
    torch_model, model = pair
    sd, tsd = model.state_dict(), torch_model.state_dict()
    assert list(sd) == list(tsd)  # same keys, same order (the shared module appears under both names)
    assert "cache" not in sd and "shared.weight" in sd
    for k in tsd:
        assert_close(sd[k], tsd[k], rtol=0, atol=0)  # int64 num_batches_tracked counts as int32


@pytest.mark.parametrize("kind", ["torch", "numpy", "tinydl"])
def test_load_state_dict_accepts_tensor_kinds(kind, rng):
    torch_model = randomize(build(tnn, torch.from_numpy), rng).eval()
    convert = {"torch": lambda v: v, "numpy": lambda v: v.numpy(), "tinydl": lambda v: tinydl.tensor(v)}[kind]
    sd = {k: convert(v) for k, v in torch_model.state_dict().items()}
    model = build(nn, tinydl.tensor).eval()
    result = model.load_state_dict(sd)
    assert result.missing_keys == [] and result.unexpected_keys == []
    x = rng.standard_normal((1, 3, 4, 4)).astype(np.float32)
    (a1, a2), (e1, e2) = run_both((torch_model, model), x)
    assert_close(a1, e1)
    assert_close(a2, e2)


def test_load_state_dict_keeps_dtype_and_handles(pair):
    _, model = pair
    w = model.heads.cls.weight
    model.load_state_dict({k: v.numpy() for k, v in model.state_dict().items()})
    assert model.heads.cls.weight is w  # loading swaps data, the Parameter objects stay
    assert model.stem[1].num_batches_tracked.dtype == tinydl.int32


def _broken_state_dict(torch_model):
    sd = torch_model.state_dict()
    sd["stem.0.weight"] = torch.zeros(4, 3, 5, 3)
    sd["heads.cls.weight"] = torch.zeros(5, 3)
    del sd["heads.cls.bias"]
    del sd["norm.weight"]
    sd["extra"] = torch.zeros(1)
    sd["blocks.0.foo"] = torch.zeros(1)
    return sd


def test_strict_load_errors_match_torch_exactly(pair):
    torch_model, model = pair
    with pytest.raises(RuntimeError) as t_err:
        torch_model.load_state_dict(_broken_state_dict(torch_model))
    with pytest.raises(RuntimeError) as err:
        model.load_state_dict(_broken_state_dict(torch_model))
    msg = str(err.value)
    assert msg == str(t_err.value)
    assert 'Missing key(s) in state_dict: "heads.cls.bias", "norm.weight".' in msg
    assert 'Unexpected key(s) in state_dict: "extra", "blocks.0.foo".' in msg
    assert ("size mismatch for stem.0.weight: copying a param with shape torch.Size([4, 3, 5, 3]) from checkpoint, "
            "the shape in current model is torch.Size([4, 3, 3, 3]).") in msg
    assert "size mismatch for heads.cls.weight: copying a param with shape torch.Size([5, 3])" in msg


def test_failed_load_changes_nothing(pair, rng):
    torch_model, model = pair
    before = model.heads.aux.weight.numpy().copy()
    sd = torch_model.state_dict()
    sd["heads.aux.weight"] = torch.ones(2, 4)
    sd["stem.0.bias"] = torch.zeros(7)
    with pytest.raises(RuntimeError, match="size mismatch for stem.0.bias"):
        model.load_state_dict(sd)
    assert_close(model.heads.aux.weight, before, rtol=0, atol=0)


def test_non_strict_returns_keys_and_still_checks_shapes(pair):
    torch_model, model = pair
    sd = torch_model.state_dict()
    del sd["heads.cls.bias"]
    sd["extra"] = torch.zeros(1)
    t_res = torch_model.load_state_dict(sd, strict=False)
    res = model.load_state_dict(sd, strict=False)
    assert res.missing_keys == t_res.missing_keys == ["heads.cls.bias"]
    assert res.unexpected_keys == t_res.unexpected_keys == ["extra"]
    assert res._fields == ("missing_keys", "unexpected_keys")
    sd["heads.cls.weight"] = torch.zeros(5, 3)
    with pytest.raises(RuntimeError, match=r"size mismatch for heads.cls.weight: copying a param with shape "
                                           r"torch.Size\(\[5, 3\]\) from checkpoint, the shape in current model is "
                                           r"torch.Size\(\[5, 4\]\)"):
        model.load_state_dict(sd, strict=False)


def test_num_batches_tracked(rng):
    t = tnn.BatchNorm2d(3)
    with torch.no_grad():
        t.num_batches_tracked.fill_(17)
        t.running_mean.copy_(torch.from_numpy(rng.standard_normal(3).astype(np.float32)))
    m = nn.BatchNorm2d(3)
    m.load_state_dict(t.state_dict())
    assert m.num_batches_tracked.item() == 17
    # like torch: a plain dict (no version metadata: an old checkpoint) may lack num_batches_tracked...
    sd = {k: v for k, v in t.state_dict().items() if k != "num_batches_tracked"}
    assert tuple(tnn.BatchNorm2d(3).load_state_dict(sd)) == ([], [])
    assert tuple(m.load_state_dict(sd)) == ([], [])
    assert m.num_batches_tracked.item() == 17  # kept
    # ...but a state_dict that says it is version 2 must have it
    sd = t.state_dict()
    del sd["num_batches_tracked"]
    with pytest.raises(RuntimeError) as t_err:
        tnn.BatchNorm2d(3).load_state_dict(sd)
    with pytest.raises(RuntimeError) as err:
        m.load_state_dict(sd)
    assert str(err.value) == str(t_err.value)
    assert 'Missing key(s) in state_dict: "num_batches_tracked"' in str(err.value)


def test_track_running_stats_false_state_dict():
    assert list(nn.BatchNorm2d(3, track_running_stats=False).state_dict()) == \
        list(tnn.BatchNorm2d(3, track_running_stats=False).state_dict()) == ["weight", "bias"]


# -- dtypes -----------------------------------------------------------------------------------------------
needs_f16 = pytest.mark.skipif("shader-f16" not in tinydl.device_info()["features"],
                               reason="the adapter has no shader-f16")


@needs_f16
def test_half_and_float(pair, rng):
    torch_model, model = pair
    x = rng.standard_normal((1, 3, 4, 4)).astype(np.float32)
    assert model.half() is model
    assert all(p.dtype == tinydl.float16 for p in model.parameters())
    assert model.stem[1].num_batches_tracked.dtype == tinydl.int32  # integer buffers are left alone
    y16, _ = model(tinydl.tensor(x).half())
    assert y16.dtype == tinydl.float16
    with torch.no_grad():
        expected, _ = torch_model(torch.from_numpy(x))
    # fp16 weights and activations: ~3 significant digits per op, through ~10 ops
    assert_close(y16, expected.half(), rtol=2e-2, atol=2e-2)
    model.float()
    assert all(p.dtype == tinydl.float32 for p in model.parameters())
    y32, _ = model(tinydl.tensor(x))
    assert_close(y32, expected, rtol=2e-2, atol=2e-2)  # the weights went through fp16 once


# -- containers -------------------------------------------------------------------------------------------
def test_sequential_indexing_slicing_len_iter_append(rng):
    layers = lambda lib: [lib.Linear(4, 6), lib.ReLU(), lib.Linear(6, 3), lib.Tanh()]  # noqa: E731
    t = tnn.Sequential(*layers(tnn)).eval()
    m = nn.Sequential(*layers(nn)).eval()
    m.load_state_dict(t.state_dict())
    assert len(m) == len(t) == 4
    assert isinstance(m[0], nn.Linear) and isinstance(m[-1], nn.Tanh)
    assert [type(x).__name__ for x in m] == [type(x).__name__ for x in t]
    sub, tsub = m[1:3], t[1:3]
    assert isinstance(sub, nn.Sequential) and list(sub.state_dict()) == list(tsub.state_dict()) == \
        ["2.weight", "2.bias"]  # slices keep the original keys, like torch
    assert m[1:3][1] is m[2]
    with pytest.raises(IndexError, match="index 4 is out of range"):
        m[4]
    with pytest.raises(IndexError, match="index -5 is out of range"):
        t[-5]
    with pytest.raises(IndexError, match="index -5 is out of range"):
        m[-5]
    x = rng.standard_normal((2, 4)).astype(np.float32)
    with torch.no_grad():
        assert_close(m(tinydl.tensor(x)), t(torch.from_numpy(x)))
        assert_close(m[:2](tinydl.tensor(x)), t[:2](torch.from_numpy(x)))
    m.append(nn.Sigmoid())
    t.append(tnn.Sigmoid())
    assert [n for n, _ in m.named_children()] == [n for n, _ in t.named_children()] == ["0", "1", "2", "3", "4"]
    with torch.no_grad():
        assert_close(m(tinydl.tensor(x)), t(torch.from_numpy(x)))


def test_sequential_from_ordered_dict():
    od = lambda lib: OrderedDict([("fc", lib.Linear(2, 3)), ("act", lib.GELU())])  # noqa: E731
    assert list(nn.Sequential(od(nn)).state_dict()) == list(tnn.Sequential(od(tnn)).state_dict()) == \
        ["fc.weight", "fc.bias"]


def test_module_list():
    m = nn.ModuleList([nn.Linear(2, 2), nn.ReLU()])
    t = tnn.ModuleList([tnn.Linear(2, 2), tnn.ReLU()])
    m.append(nn.Linear(2, 3))
    t.append(tnn.Linear(2, 3))
    m.extend([nn.Tanh()])
    t.extend([tnn.Tanh()])
    assert len(m) == len(t) == 4
    assert list(m.state_dict()) == list(t.state_dict())
    assert isinstance(m[-2], nn.Linear) and m[-2].out_features == 3
    assert [type(x).__name__ for x in m] == [type(x).__name__ for x in t]
    sl, tsl = m[1:3], t[1:3]
    assert isinstance(sl, nn.ModuleList)
    assert list(sl.state_dict()) == list(tsl.state_dict()) == ["1.weight", "1.bias"]  # renumbered, like torch
    m[1] = nn.Sigmoid()
    assert isinstance(m[1], nn.Sigmoid) and [n for n, _ in m.named_children()] == ["0", "1", "2", "3"]
    with pytest.raises(IndexError, match="index 4 is out of range"):
        m[4]
    with pytest.raises(NotImplementedError):
        m(1)


def test_module_dict():
    m = nn.ModuleDict({"b": nn.Linear(2, 2), "a": nn.ReLU()})
    t = tnn.ModuleDict({"b": tnn.Linear(2, 2), "a": tnn.ReLU()})
    m["c"] = nn.Linear(2, 1)
    t["c"] = tnn.Linear(2, 1)
    assert list(m.keys()) == list(t.keys()) == ["b", "a", "c"]  # insertion order
    assert list(m) == list(t)
    assert len(m) == 3 and "a" in m and "z" not in m
    assert [type(v).__name__ for v in m.values()] == [type(v).__name__ for v in t.values()]
    assert [k for k, _ in m.items()] == ["b", "a", "c"]
    assert list(m.state_dict()) == list(t.state_dict())
    with pytest.raises(KeyError):
        m["z"]


def test_identity(rng):
    x = tinydl.tensor(rng.standard_normal((2, 3)).astype(np.float32))
    ident = nn.Identity(54, unused="argument")  # torch's Identity ignores its arguments too
    assert ident(x) is x
    assert list(ident.state_dict()) == []


# -- repr -------------------------------------------------------------------------------------------------
def test_repr_matches_torch(pair):
    torch_model, model = pair
    assert repr(model) == repr(torch_model)  # incl. ModuleList's "(0-1): 2 x Block(...)" compression


@pytest.mark.parametrize("name,args,kwargs", [
    ("Linear", (3, 4), {}), ("Linear", (3, 4, False), {}), ("Conv1d", (2, 4, 3), {}),
    ("Conv2d", (2, 4, 3, 2, 1), {}), ("Conv2d", (2, 4, (3, 1), 1, "same"), {}),
    ("Conv2d", (4, 4, 3), dict(groups=2, padding_mode="reflect", padding=1, dilation=2, bias=False)),
    ("ConvTranspose2d", (2, 4, 3, 2, 1, 1), {}), ("BatchNorm1d", (4,), {}),
    ("BatchNorm2d", (4,), dict(track_running_stats=False, bias=False)), ("LayerNorm", ((4, 5),), {}),
    ("LayerNorm", (4,), dict(bias=False)), ("GroupNorm", (2, 4), {}), ("Embedding", (10, 3, 0), {}),
    ("Dropout", (0.1,), {}), ("Dropout2d", (), {}), ("ReLU", (), {}), ("ReLU", (True,), {}), ("ReLU6", (), {}),
    ("GELU", ("tanh",), {}), ("SiLU", (True,), {}), ("Hardswish", (True,), {}), ("Hardsigmoid", (), {}),
    ("Sigmoid", (), {}), ("Tanh", (), {}), ("LeakyReLU", (0.2, True), {}), ("ELU", (), {}),
    ("Softplus", (2.0, 10.0), {}), ("Mish", (), {}), ("PReLU", (3,), {}), ("Hardtanh", (), {}),
    ("Softmax", (1,), {}), ("LogSoftmax", (-1,), {}), ("MaxPool2d", (3, 2, 1), {}), ("AvgPool2d", (2,), {}),
    ("AdaptiveAvgPool2d", ((2, 3),), {}), ("AdaptiveMaxPool2d", (1,), {}), ("Flatten", (), {}),
    ("Unflatten", (1, (2, 3)), {}), ("Upsample", (None, 2.0, "nearest"), {}),
    ("Upsample", ((4, 4), None, "bilinear", False), {}), ("Identity", (), {}),
    ("MultiheadAttention", (8, 2), dict(kdim=4, vdim=6)), ("TransformerEncoderLayer", (8, 2, 16, 0.0), {}),
])
def test_layer_repr_matches_torch(name, args, kwargs):
    assert repr(getattr(nn, name)(*args, **kwargs)) == repr(getattr(tnn, name)(*args, **kwargs))
