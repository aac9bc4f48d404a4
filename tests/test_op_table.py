"""The ATen op table (interop/aten_ops.py and the other tables registered for torch.export graphs), walked entry by
entry against each overload's schema: every argument torch.export can pass is taken by name or position, so a
converted model never fails at its call with a TypeError; arguments an entry lets fall into *args / **kwargs are
only ones that cannot change the values (devices, layouts, memory formats); and the arguments that once fell
through (upsample's per-dim scales) now give torch's values."""
import inspect

import numpy as np
import pytest
import torch

import tinydl
from tinydl.interop import registry

# schema arguments that never change a result on one device: an entry may take them as *args / **kwargs
NO_OPS = {"device", "layout", "pin_memory", "memory_format", "non_blocking", "copy", "cudnn_enabled",
          "requires_grad", "names"}
# entries that parse their *args themselves (x.to(...) in any of torch's forms: the dtype among them; arange's
# 1-3 numbers; upsample's overloads, told apart by their arguments' types)
READS_ALL = {"aten.to.device", "aten.to.dtype", "aten.to.dtype_layout", "aten.to.other", "aten.type_as.default",
             "aten._to_copy.default", "aten.arange.default",
             "aten.arange.start", "aten.arange.start_step"} | {
    f"aten.{op}.{overload}" for op in ("upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d",
                                       "upsample_bilinear2d", "upsample_trilinear3d", "_upsample_nearest_exact1d",
                                       "_upsample_nearest_exact2d", "_upsample_nearest_exact3d", "upsample_bicubic2d",
                                       "upsample_linear1d", "_upsample_bilinear2d_aa", "_upsample_bicubic2d_aa",
                                       "_upsample_lanczos2d_aa")
    for overload in ("default", "vec")}
# runtime checks torch.export records (torch._check, asserts on sizes): they change no value; tinydl's own shape
# checks guard its inputs instead (interop/dynamic_dims.py)
CHECKS = {"aten._assert_async.default", "aten._assert_async.msg", "aten._assert_tensor_metadata.default",
          "aten.sym_constrain_range.default", "aten.sym_constrain_range_for_size.default"}


def aten_entries():
    out = []
    for name in sorted(n for n in registry.OPS if n.startswith("aten.")):
        _, op, overload = name.split(".", 2)
        out.append((name, getattr(getattr(torch.ops.aten, op), overload)._schema, registry.OPS[name]))
    return out


def fate_of_arguments(schema, fn) -> tuple[list[str], list[str]]:
    """(schema arguments fn cannot take, schema arguments it takes only as *args / **kwargs)."""
    params = list(inspect.signature(fn).parameters.values())
    var_pos = any(p.kind == p.VAR_POSITIONAL for p in params)
    var_kw = any(p.kind == p.VAR_KEYWORD for p in params)
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    named = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    refused, swallowed = [], []
    for i, a in enumerate(x for x in schema.arguments if not x.kwarg_only):
        if i >= len(positional):
            (swallowed if var_pos else refused).append(a.name)
    for a in (x for x in schema.arguments if x.kwarg_only):
        if a.name not in named:
            (swallowed if var_kw else refused).append(a.name)
    return refused, swallowed


def test_the_table_is_walked():
    entries = aten_entries()
    assert len(entries) > 250
    assert any(name == "aten.topk.default" for name, _, _ in entries)


def test_every_schema_argument_is_taken():
    refused = {name: fate_of_arguments(schema, fn)[0] for name, schema, fn in aten_entries()}
    assert {k: v for k, v in refused.items() if v} == {}


def test_only_no_op_arguments_fall_into_varargs():
    swallowed = {name: [a for a in fate_of_arguments(schema, fn)[1] if a not in NO_OPS]
                 for name, schema, fn in aten_entries() if name not in READS_ALL | CHECKS}
    assert {k: v for k, v in swallowed.items() if v} == {}


def test_fate_of_arguments_finds_what_an_entry_drops():
    """The walk itself: an entry that forgets an argument, or swallows one, is caught."""
    schema = torch.ops.aten.cumsum.default._schema  # (self, dim, *, dtype=None)
    assert fate_of_arguments(schema, lambda x, dim: x)[0] == ["dtype"]
    assert fate_of_arguments(schema, lambda x: x)[0] == ["dim", "dtype"]
    assert fate_of_arguments(schema, lambda x, *a, **k: x)[1] == ["dim", "dtype"]


@pytest.mark.parametrize("name,args", [
    ("upsample_nearest2d.default", ([13, 13], 1.35, 1.35)),
    ("upsample_nearest2d.default", ([13, 13],)),
    ("upsample_bilinear2d.default", ([13, 13], False, 1.35, 1.35)),
    ("upsample_bilinear2d.default", ([13, 13], True)),
    ("upsample_nearest2d.vec", (None, [1.35, 1.35])),
    ("upsample_bilinear2d.vec", (None, False, [1.35, 1.35])),
    ("upsample_nearest1d.default", ([13], 1.35)),
    ("upsample_bicubic2d.default", ([13, 13], False, 1.35, 1.35)),
    ("upsample_linear1d.default", ([13], False, 1.35)),
    ("_upsample_bicubic2d_aa.default", ([7, 7], False)),
    ("_upsample_bicubic2d_aa.default", ([7, 7], False, 0.7, 0.7)),
    ("_upsample_bilinear2d_aa.vec", (None, False, [0.65, 0.65])),
    ("_upsample_bilinear2d_aa.default", ([13, 13], True)),
    ("upsample_trilinear3d.default", ([13, 13, 13], False, 1.35, 1.35, 1.35)),
    ("upsample_nearest3d.default", ([13, 13, 13], 1.35, 1.35, 1.35)),
])
def test_upsample_scales_map_as_torch(name, args):
    """With per-dim scales torch maps output to input by 1 / scale (not in / out): 10 -> 13 by 1.35 differs."""
    x = torch.randn((1, 2) + (10,) * (3 if "3d" in name else 2 if "2d" in name else 1))
    op, overload = name.split(".")
    ref = getattr(getattr(torch.ops.aten, op), overload)(x, *args)
    got = registry.lookup("aten." + name)(tinydl.tensor(x.numpy()), *args)
    np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=1e-5, atol=1e-5)


def test_upsample_scales_that_contradict_the_size_are_refused():
    with pytest.raises(NotImplementedError, match=r"scales \[2.0, 2.0\] that do not give the output size"):
        registry.lookup("aten.upsample_nearest2d.default")(tinydl.zeros((1, 1, 10, 10)), [13, 13], 2.0, 2.0)
