"""Kernels carry only the WGSL functions they use (tinydl/kernels/prelude.py)."""
from __future__ import annotations

import re

import numpy as np

import tinydl
import tinydl.nn.functional as F
import tinydl.schedule as S
from tinydl.kernels import prelude
from tinydl.kernels.snippets import PRELUDE


def _sources(fn) -> list[str]:
    S.clear_cache()
    fn()
    return [step.wgsl for plan in S._plans.values() for step in plan.steps]


def _declared(wgsl: str) -> set[str]:
    return set(re.findall(r"^(?:fn|var(?:<[^>]*>)?|const|struct)\s+(\w+)", wgsl, re.M)) - {"main"}


def test_the_declarations_are_the_whole_library():
    """Every character of the PRELUDE, the float functions and the overflow tests but their comments and spacing
    belongs to one declaration."""
    assert PRELUDE in prelude.LIBRARY
    code = re.sub(r"\s+", "", re.sub(r"//[^\n]*", "", prelude.LIBRARY))
    assert "".join(re.sub(r"\s+", "", prelude._TEXT[name]) for name in prelude._TEXT) == code
    assert {"td_z", "td_opaque", "td_gelu", "td_sin", "TD_2OPI", "TdRed", "td_erfinv", "td_imul_ovf",
            "td_ipow_checked"} <= prelude.declared_names()


def test_a_kernel_carries_what_it_names_and_what_that_names():
    x = tinydl.tensor(np.linspace(-3, 3, 64, dtype=np.float32))
    (add,) = _sources(lambda: (x + 1).numpy())
    assert _declared(add) == {"td_z", "td_opaque"}  # main sets td_z; the add goes through td_opaque
    (gelu,) = _sources(lambda: F.gelu(x).numpy())
    assert {"td_gelu", "td_erfc_pos", "td_erf_series", "td_abslt", "td_ltz", "td_opaque", "td_z"} == _declared(gelu)
    (sin,) = _sources(lambda: x.sin().numpy())
    assert {"td_sin", "td_reduce", "td_reduce_big", "TdRed", "TD_2OPI", "td_mul64"} <= _declared(sin)
    assert "td_gelu" not in sin and "td_sin" not in gelu
    for wgsl in (add, gelu, sin):
        assert "//" not in prelude.used_prelude(wgsl) and prelude.used_prelude(wgsl) in wgsl


def test_a_kernel_with_its_prelude_computes_as_torch():
    import torch
    v = np.linspace(-40, 40, 1001, dtype=np.float32)
    got = tinydl.tensor(v)
    np.testing.assert_allclose((got.sin() * F.gelu(got) + got.tanh()).numpy(),
                               (torch.tensor(v).sin() * torch.nn.functional.gelu(torch.tensor(v))
                                + torch.tensor(v).tanh()).numpy(), rtol=2e-6, atol=2e-6)
