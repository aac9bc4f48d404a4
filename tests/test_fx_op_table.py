"""The fx path's op table walked entry by entry (as tests/test_op_table.py walks the ATen one): every torch function,
torch.nn.functional call and Tensor method that fx.resolve_function / resolve_method maps to a tinydl callable, and
every keyword torch accepts for it, fitted as a conversion fits a call (interop/arguments.py). Each keyword must be
listed as unsupported at conversion, dropped as one that changes no value, taken by tinydl's callable under its
name (and read there), or moved to the position torch gives it onto a parameter of the same meaning (a reviewed
rename). Never swallowed by a **kwargs, never a TypeError at the call. Then the calls the walk found wrong, each
against torch: creation keywords once swallowed, torch.embedding's order, torch.X(input=...) via Tensor methods."""
import dis
import inspect
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import tinydl
from tinydl.interop import arguments, fx, registry
from tinydl.interop.registry import UnsupportedTorchOps

DROPPED = arguments.NO_OP_KEYWORDS | {"inplace", "out"}  # fit drops them (inplace where nothing reads the input
# again, out only as None) or lists them
# a parameter taken by name that the callable never reads, and why that changes no value
UNREAD = {
    "momentum": "batch/instance norm: only updates running statistics in training",
    "p": "torch.dropout: identity in inference (tinydl's F.dropout raises for training=True)",
    "return_indices": "max_poolNd_with_indices: the values only; a graph reading the indices is refused",
    "stable": "tinydl's sorts are always stable, which is also a valid unstable sort",
    "sorted": "tinydl's topk is always sorted, which sorted=False allows",
    "padding_idx": "torch.embedding: changes only gradients", "scale_grad_by_freq": "torch.embedding: gradients",
    "sparse": "torch.embedding: the gradient's layout",
    "generator": "torch.rrelu: draws random slopes only in training, which tinydl refuses",
    "norm_type": "embedding_bag: the norm max_norm renormalizes by, and max_norm is refused",
    "out_int32": "torch.searchsorted: tinydl's indices are int32 either way (its int64 is stored as int32)",
    "assume_unique": "torch.isin: a hint torch may use for speed; the result is the same",
}
# entries that parse every argument themselves: x.to(...) in any of torch's forms (its dtype, or a tensor's)
READS_ALL = {"method to"}
# keywords of TorchScript's overloads only (aten::sort.bool(bool[] self, bool reverse)): torch's Python functions
# refuse them, so no model that runs in torch has them for fx to record (`torch_keywords` already leaves out the
# overloads without a Tensor argument)
SCRIPT_ONLY = {"reverse"}
# torch's keyword -> tinydl's parameter at the same position, with the same meaning
RENAMES = {
    "input": {"self", "x", "a", "t", "start", "indices", "tensor_", "condition"},
    "a": {"self", "x", "input"}, "b": {"other"},  # torch.sym_float(a), torch.eq's list overload (a, b)
    "t": {"a"}, "f": {"b"},  # torch.sym_ite(b, t, f): tinydl's (cond, a, b)
    "other": {"b", "dim"},  # torch.max/min(input, other): tinydl's max/min take a Tensor in dim's place
    "exponent": {"b", "other"}, "mat2": {"b", "other"}, "train": {"training"}, "tensor": {"x"},
    "axis0": {"dim0"}, "axis1": {"dim1"},
    "indices": {"indices_or_sections"}, "sections": {"indices_or_sections"},
    "tensor_indices_or_sections": {"indices_or_sections"},
    "size": {"*args"}, "shape": {"*args"}, "dims": {"*args"}, "repeats": {"*args"},
    "dtype": {"*args"},  # x.view(dtype=...): Tensor.view(*shape) refuses a dtype, naming it
    "element": {"elements"}, "test_element": {"test_elements"},  # torch.isin's scalar overloads
}


def torch_keywords(target) -> dict:
    """torch's keywords of a function object or Tensor method name, as arguments.fit reads them, less those only
    TorchScript's non-Tensor overloads have."""
    params = arguments.torch_parameters(target)
    if params is None:
        return {}
    try:
        inspect.signature(getattr(torch.Tensor, target) if isinstance(target, str) else target)
        return params  # a Python signature: every keyword is torch's
    except (TypeError, ValueError):
        pass
    name = target if isinstance(target, str) else target.__name__
    real = set()
    for schema in torch._C._jit_get_schemas_for_operator(f"aten::{name}"):
        if any("Tensor" in str(a.type) for a in schema.arguments):
            real |= {a.name for a in schema.arguments} | ({"input"} if any(a.name == "self" for a in
                                                                            schema.arguments) else set())
    return {k: v for k, v in params.items() if k in real}


def entries() -> dict:
    """(kind, torch's name) -> (fx target, tinydl callable, the signature fit reads) for everything fx maps."""
    out = {}
    for name in dir(torch.Tensor):
        fn = None if name.startswith("__") else fx.resolve_method(name)
        if fn is not None:
            out[("method", name)] = (name, fn)
    for module in (torch, TF, torch.functional, torch.linalg):
        for name in dir(module):
            obj = getattr(module, name)
            if name.startswith("_") or not callable(obj) or isinstance(obj, type):
                continue
            fn = fx.resolve_function(obj)
            if fn is not None:
                out[("function", fx._qualname(obj))] = (obj, fn)
    return out


def reads(fn, name: str) -> bool:
    code = getattr(inspect.unwrap(fn), "__code__", None)
    if code is None:
        return True  # a builtin: it takes what it names
    return any(i.opname.startswith("LOAD_") and i.argval == name for i in dis.get_instructions(code))


def fate(kind, target, fn, keyword) -> str:
    """What a conversion does with `keyword` on a call of target: 'listed', 'dropped', 'named', 'named unread',
    'swallowed', or 'moved to <tinydl parameter>'."""
    generic = kind == "method" and registry.lookup(f"torch.Tensor.{target}") is None
    sig_of = getattr(tinydl.Tensor, target) if generic else None
    node = types.SimpleNamespace(kwargs={keyword: object()}, args=(), graph=None)
    call, problem = arguments.fit(node, target, fn, sig_of)
    if problem:
        return "listed"
    if keyword in DROPPED:
        return "dropped"
    try:
        params = list(inspect.signature(sig_of or fn).parameters.values())
    except ValueError:  # a Python builtin (torch.sym_max is max): it takes its own keywords or raises
        return "builtin"
    named = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    if keyword in named:
        return "named" if reads(sig_of or fn, keyword) or keyword in ("self", "x") else "named unread"
    if call is fn:
        return "swallowed"
    positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    at = arguments.torch_parameters(target)[keyword][0]
    return f"moved to {positional[at] if at < len(positional) else '*args'}"


def walk():
    for (kind, name), (target, fn) in sorted(entries().items(), key=lambda e: e[0]):
        for keyword in torch_keywords(target):
            if keyword == "self" or (kind == "method" and keyword == "input") or keyword in SCRIPT_ONLY:
                continue  # self is never a keyword (torch's functions name it input)
            yield f"{kind} {name}", keyword, fate(kind, target, fn, keyword)


@pytest.fixture(scope="module")
def fates():
    return list(walk())


def test_the_table_is_walked(fates):
    walked = {entry for entry, _, _ in fates}
    assert len(walked) > 300
    assert {"function torch.transpose", "function torch.nn.functional.softmax", "method add"} <= walked


def test_no_keyword_is_swallowed(fates):
    assert [(e, k) for e, k, f in fates if f == "swallowed" and e not in READS_ALL] == []
    assert {e for e, _, f in fates if f == "builtin"} == {"function torch.sym_max", "function torch.sym_min"}


def test_keywords_taken_by_name_are_read(fates):
    assert [(e, k) for e, k, f in fates if f == "named unread" and k not in UNREAD] == []


def test_moved_keywords_land_on_the_same_parameter(fates):
    moved = [(e, k, f.removeprefix("moved to ")) for e, k, f in fates if f.startswith("moved to ")]
    assert [m for m in moved if m[2] != m[1] and m[2] not in RENAMES.get(m[1], ())] == []


def test_the_walk_catches_a_swallowing_entry():
    swallow = lambda *a, dtype=None, **_: None  # noqa: E731 - torch.arange's entry before the fix
    assert fate("function", torch.arange, swallow, "step") == "swallowed"
    assert fate("function", torch.arange, lambda *a, step=None: step, "step") == "named"
    assert fate("function", torch.arange, lambda *a, step=None: 0, "step") == "named unread"


# -- the calls the walk found wrong ------------------------------------------------------------------------------
class Creation(torch.nn.Module):
    """Sizes from the input, so fx records the calls (with constants it would evaluate them at trace time)."""

    def forward(self, x):
        n = x.shape[0]
        return (torch.arange(0, n, step=2).float().sum() + torch.arange(end=n).float()[:1]
                + torch.arange(1, end=n, dtype=torch.float32).sum(), torch.zeros(size=(n, 2)) + 1,
                torch.ones((n, 3)).sum(), torch.full(size=(n,), fill_value=3.0), torch.full((2, n), 1.5))


class Embedding(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(10, 4))

    def forward(self, ids):
        return torch.embedding(self.weight, ids) + torch.embedding(self.weight, ids, padding_idx=0)


class InputKeywords(torch.nn.Module):
    def forward(self, x):
        return (torch.transpose(input=x, dim0=0, dim1=1), torch.clamp_min(input=x, min=0.1),
                torch.unflatten(x, dim=1, sizes=(2, 3)), torch.squeeze(x[:1], dim=0))


@pytest.mark.parametrize("model,x", [(Creation, np.zeros(7, np.float32)),
                                     (Embedding, np.array([[1, 0, 5], [9, 3, 3]])),
                                     (InputKeywords, np.arange(24, dtype=np.float32).reshape(4, 6) / 7)])
def test_fixed_calls_match_torch(model, x):
    torch.manual_seed(0)
    m = model().eval()
    tm = tinydl.from_torch(m)
    assert tm.conversion_path == "fx"
    with torch.no_grad():
        expected = m(torch.from_numpy(x))
    out = tm(tinydl.tensor(x))
    for o, e in zip(out if isinstance(out, tuple) else (out,), expected if isinstance(expected, tuple) else
                    (expected,)):
        assert o.shape == tuple(e.shape)
        np.testing.assert_allclose(o.numpy(), e.numpy(), rtol=1e-5, atol=1e-6)


class Unknown(torch.nn.Module):
    def forward(self, x):
        return torch.zeros((x.shape[0],), out=x) + 1


def test_keywords_no_entry_takes_are_listed_at_conversion():
    with pytest.raises(UnsupportedTorchOps) as e:
        tinydl.from_torch(Unknown().eval())
    assert "function torch.zeros(out=" in str(e.value)


def test_arange_argument_errors():
    arange = registry.lookup("torch.arange")
    with pytest.raises(TypeError, match="multiple values for argument 'end'"):
        arange(0, 5, end=6)
    with pytest.raises(TypeError, match="missing required argument 'end'"):
        arange(step=2)
