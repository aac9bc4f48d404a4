"""from_torch on unchanged timm models (timm.create_model(name, pretrained=False), eval mode) against torch CPU:
every test_* mini model this timm ships plus five mobile models; logits and state_dict keys. Also the timm pieces
fx cannot trace through (timm_ops: resample_abs_pos_embed, LiteMLA) on their own."""
import numpy as np
import pytest
import torch

import tinydl
from tinydl.interop import timm_ops
from tinydl.interop.torchvision_compat import import_torchvision
from tinydl.testing import assert_close
from tinydl.testing.weights import randomize_constants

import_torchvision()  # before timm: torchvision's C++ ops need their schemas declared on CPU torch
import timm  # noqa: E402

# name -> (create_model kwargs, input size). 64x64 throughout: the smallest size at which every family keeps its
# structure (32x downsampling leaves 2x2; windows of 2). Models whose tables are tied to the resolution get
# img_size=64 (maxvit/coatnet windows and relative-position tables, LeViT's attention-bias tables, ViTs without
# dynamic_img_size). The ViTs WITH dynamic_img_size (test_vit, test_vit2, test_vit4) keep their 160px config, so
# a 64px input makes them resample their position table (bicubic, antialiased) inside the forward.
MODELS = {
    "test_byobnet": ({}, 64),
    "test_coatnet": ({"img_size": 64}, 64),
    "test_convnext": ({}, 64),
    "test_convnext2": ({}, 64),
    "test_convnext3": ({}, 64),
    "test_efficientnet": ({}, 64),
    "test_efficientnet_evos": ({}, 64),
    "test_efficientnet_gn": ({}, 64),
    "test_efficientnet_ln": ({}, 64),
    "test_mambaout": ({}, 64),
    "test_maxvit": ({"img_size": 64}, 64),
    "test_nfnet": ({}, 64),
    "test_resnet": ({}, 64),
    "test_vit": ({}, 64),
    "test_vit2": ({}, 64),
    "test_vit3": ({"img_size": 64}, 64),
    "test_vit4": ({}, 64),
    "test_vit_relpos": ({"img_size": 64}, 64),
    "mobilenetv3_small_100": ({}, 64),
    "efficientvit_b0": ({}, 64),
    "fastvit_t8": ({}, 64),
    "repvgg_a0": ({}, 64),
    "levit_128s": ({"img_size": 64}, 64),
}


def test_every_timm_test_model_is_covered():
    missing = sorted(set(timm.list_models("test_*")) - set(MODELS))
    assert not missing, f"timm {timm.__version__} ships test models this file does not cover: {missing}"


@pytest.mark.parametrize("name", list(MODELS))
def test_timm_model(rng, name):
    kwargs, size = MODELS[name]
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, **kwargs).eval()
    randomize_constants(model)
    x = rng.standard_normal((1, 3, size, size)).astype(np.float32)

    converted = tinydl.from_torch(model)
    with torch.no_grad():
        ref = model(torch.from_numpy(x))
    assert ref.std() > 0.01, "the reference logits are degenerate: the comparison would prove nothing"
    assert list(converted.state_dict().keys()) == list(model.state_dict().keys())
    out = converted(tinydl.tensor(x))
    # fp32 logits after tens of layers, summed in other orders than torch CPU (tiled GEMMs, fused epilogues):
    # rtol 1e-4, and atol 1e-4 scaled down with the logits' magnitude (random-init heads give logits of 0.05-2,
    # and an absolute 1e-4 on logits of 0.05 would let a 0.2% error through).
    scale = float(ref.abs().max())
    assert_close(out, ref, rtol=1e-4, atol=1e-4 * min(1.0, scale))


# -- timm_ops on their own ----------------------------------------------------------------------------------
@pytest.mark.parametrize("old,new,prefix", [((10, 10), (4, 4), 1), ((4, 4), (7, 5), 0), ((3, 5), (3, 5), 1),
                                             ((6, 6), (1, 1), 2)])
@pytest.mark.parametrize("interpolation,antialias", [("bicubic", True), ("bicubic", False), ("bilinear", True),
                                                     ("bilinear", False)])
def test_resample_abs_pos_embed(rng, old, new, prefix, interpolation, antialias):
    from timm.layers import resample_abs_pos_embed
    pe = rng.standard_normal((1, prefix + old[0] * old[1], 8)).astype(np.float32)
    ref = resample_abs_pos_embed(torch.from_numpy(pe), list(new), list(old), num_prefix_tokens=prefix,
                                 interpolation=interpolation, antialias=antialias)
    out = timm_ops.resample_abs_pos_embed(tinydl.tensor(pe), list(new), list(old), num_prefix_tokens=prefix,
                                          interpolation=interpolation, antialias=antialias)
    assert_close(out, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("old,new", [((4, 4), (6, 3)), ((5, 5), (5, 5))])
def test_resample_abs_pos_embed_nhwc(rng, old, new):
    from timm.layers import resample_abs_pos_embed_nhwc
    pe = rng.standard_normal((1, old[0], old[1], 6)).astype(np.float32)
    ref = resample_abs_pos_embed_nhwc(torch.from_numpy(pe), list(new))
    out = timm_ops.resample_abs_pos_embed_nhwc(tinydl.tensor(pe), list(new))
    assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_resample_rejects_unsupported_mode(rng):
    pe = tinydl.tensor(rng.standard_normal((1, 16, 4)).astype(np.float32))
    with pytest.raises(NotImplementedError, match="resampling mode 'nearest' is not supported"):
        timm_ops.resample_abs_pos_embed(pe, [2, 2], [4, 4], num_prefix_tokens=0, interpolation="nearest")


def test_lite_mla_leaf(rng):
    """EfficientViT's LiteMLA alone (a timm notrace module: an fx leaf that tinydl runs as a whole)."""
    from timm.models.efficientvit_mit import LiteMLA
    torch.manual_seed(0)
    m = torch.nn.Sequential(LiteMLA(8, 8, dim=4, norm_layer=(None, torch.nn.BatchNorm2d))).eval()
    randomize_constants(m)
    x = rng.standard_normal((2, 8, 5, 3)).astype(np.float32)
    converted = tinydl.from_torch(m)
    assert isinstance(converted.get_submodule("0"), timm_ops.LiteMLA)
    assert list(converted.state_dict().keys()) == list(m.state_dict().keys())
    with torch.no_grad():
        ref = m(torch.from_numpy(x))
    assert_close(converted(tinydl.tensor(x)), ref, rtol=1e-4, atol=1e-5)
