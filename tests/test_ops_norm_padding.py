"""nn.RMSNorm, the padding layers ({Zero,Constant,Reflection,Replication,Circular}Pad{1,2,3}d over F.pad),
channel_shuffle / nn.ChannelShuffle and the top-level pixel_shuffle / pixel_unshuffle: parity with torch CPU,
torch's errors, and both from_torch paths."""
import pytest
import torch

import tinydl
from tinydl import nn
from tinydl.nn import functional as F
from tinydl.testing import assert_close

from paths import check_paths


def _t(x):
    return tinydl.tensor(x.numpy())


@pytest.mark.parametrize("shape,normalized", [((2, 3, 5), 5), ((4, 3, 1), (3, 1)), ((0, 7), 7), ((6,), 6)])
@pytest.mark.parametrize("eps", [None, 1e-3])
def test_rms_norm_layer(shape, normalized, eps):
    m = torch.nn.RMSNorm(normalized, eps=eps)
    torch.nn.init.normal_(m.weight)
    tm = nn.RMSNorm(normalized, eps=eps)
    tm.load_state_dict(m.state_dict())
    x = torch.randn(shape)
    assert_close(tm(_t(x)), m(x).detach())
    assert repr(tm) == repr(m) and list(tm.state_dict()) == ["weight"]


def test_rms_norm_without_affine_and_its_error():
    m, tm = torch.nn.RMSNorm((3,), elementwise_affine=False), nn.RMSNorm((3,), elementwise_affine=False)
    x = torch.randn(2, 3)
    assert_close(tm(_t(x)), m(x))
    assert tm.weight is None and repr(tm) == repr(m)
    with pytest.raises(RuntimeError, match=r"Given normalized_shape=\[3\], expected input with shape \[\*3\], but "
                                           r"got input of size\[2, 4\]"):
        tm(tinydl.zeros(2, 4))


PADS = [("ZeroPad1d", (2, 0)), ("ZeroPad2d", (1, 2, 0, 3)), ("ZeroPad3d", 1), ("ConstantPad1d", (3, -1)),
        ("ConstantPad2d", 2), ("ConstantPad3d", (1, 0, 2, 1, 0, 1)), ("ReflectionPad1d", (2, 1)),
        ("ReflectionPad2d", (1, 2, 2, 0)), ("ReflectionPad3d", 1), ("ReplicationPad1d", 3),
        ("ReplicationPad2d", (0, 2, 1, 1)), ("ReplicationPad3d", (1, 2, 0, 1, 2, 0)), ("CircularPad1d", (2, 1)),
        ("CircularPad2d", (1, -1, 2, 0)), ("CircularPad3d", 1)]


def _pad_pair(name, padding):
    args = (padding, 2.5) if name.startswith("Constant") else (padding,)
    return getattr(torch.nn, name)(*args), getattr(nn, name)(*args)


@pytest.mark.parametrize("name,padding", PADS)
@pytest.mark.parametrize("batched", [True, False])
def test_padding_layers(name, padding, batched):
    n = int(name[-2])
    m, tm = _pad_pair(name, padding)
    x = torch.randn(*((2,) if batched else ()), 3, *(4, 3, 5)[:n])
    assert_close(tm(_t(x)), m(x))
    assert repr(tm) == repr(m)


def test_padding_layers_errors():
    with pytest.raises(ValueError, match=r"expected 3D or 4D input \(got 2D input\)"):
        nn.CircularPad2d(1)(tinydl.zeros(3, 3))
    with pytest.raises(RuntimeError, match="Padding length should be less than or equal to two times the input "
                                           "dimension but got padding length 4 and input of dimension 1"):
        nn.ZeroPad2d(1)(tinydl.zeros(3))
    with pytest.raises(RuntimeError, match="Padding length must be divisible by 2"):
        F.pad(tinydl.zeros(3, 3), (1, 2, 3))
    with pytest.raises(RuntimeError, match="Padding size should be less than the corresponding input dimension"):
        nn.ReflectionPad1d(3)(tinydl.zeros(1, 2, 3))
    with pytest.raises(TypeError, match="positional arguments"):
        nn.ConstantPad2d(1)


@pytest.mark.parametrize("shape,groups", [((2, 6, 3, 5), 3), ((1, 4, 7), 2), ((3, 5, 2, 2, 2), 5), ((2, 4, 0), 4),
                                          ((1, 3, 1, 1), 1)])
def test_channel_shuffle(shape, groups):
    x = torch.randn(shape)
    want = torch.nn.functional.channel_shuffle(x, groups)
    assert_close(F.channel_shuffle(_t(x), groups), want)
    assert_close(tinydl.channel_shuffle(_t(x), groups), want)
    assert_close(nn.ChannelShuffle(groups)(_t(x)), want)
    assert repr(nn.ChannelShuffle(groups)) == repr(torch.nn.ChannelShuffle(groups))


@pytest.mark.parametrize("shape,groups,message", [
    ((2, 4), 2, r"channel_shuffle expects input with > 2 dims, but got input with sizes \[2, 4\]"),
    ((2, 4, 3), 3, "Number of channels must be divisible by groups. Got 4 channels and 3 groups."),
    ((2, 4, 3), 0, "Number of groups to divide channels in must be positive. Value of groups:0"),
    ((2, 4, 3), -2, "Number of groups to divide channels in must be positive. Value of groups:-2")])
def test_channel_shuffle_errors(shape, groups, message):
    with pytest.raises(RuntimeError, match=message):
        torch.nn.functional.channel_shuffle(torch.zeros(shape), groups)
    with pytest.raises(RuntimeError, match=message):
        F.channel_shuffle(tinydl.zeros(*shape), groups)


def test_top_level_pixel_shuffles():
    x = torch.randn(2, 8, 3, 4)
    assert_close(tinydl.pixel_shuffle(_t(x), 2), torch.pixel_shuffle(x, 2))
    assert_close(tinydl.pixel_unshuffle(_t(x), 1), torch.pixel_unshuffle(x, 1))
    y = torch.randn(3, 4, 6)
    assert_close(tinydl.pixel_unshuffle(_t(y), 2), torch.pixel_unshuffle(y, 2))


class Family(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = torch.nn.RMSNorm(6)
        torch.nn.init.normal_(self.norm.weight)
        self.pads = torch.nn.ModuleList(_pad_pair(name, padding)[0] for name, padding in PADS if name[-2] == "2")
        self.shuffle = torch.nn.ChannelShuffle(2)

    def forward(self, x):
        out = self.shuffle(self.norm(x)).sum()
        for p in self.pads:
            out = out + p(x).mean((2, 3))
        y = torch.nn.functional.rms_norm(x, (5, 6), eps=1e-4) + torch.channel_shuffle(x, 2)
        return out, y, torch.pixel_unshuffle(torch.pixel_shuffle(x, 2), 2)


@pytest.mark.parametrize("path", ["fx", "torch.export"])
def test_both_paths(path):
    check_paths(Family(), torch.randn(2, 4, 5, 6), path=path)


@pytest.mark.parametrize("shape", [(2, 7, 5), (2, 6, 4, 3), (1, 5, 2, 3, 4)])
@pytest.mark.parametrize("size,k", [(1, 1.0), (3, 2.0), (4, 0.5), (9, 1.0)])
def test_local_response_norm(shape, size, k):
    """F.local_response_norm and nn.LocalResponseNorm: torch's windows over channels (padded with zeros, the
    padding counted), 3-d to 5-d inputs, sizes odd, even and past the channel count."""
    x = torch.randn(shape) * 3
    assert_close(F.local_response_norm(tinydl.tensor(x.numpy()), size, 1e-2, 0.75, k),
                 torch.nn.functional.local_response_norm(x, size, 1e-2, 0.75, k))
    layer = nn.LocalResponseNorm(size, alpha=1e-2, k=k)
    assert_close(layer(tinydl.tensor(x.numpy())), torch.nn.LocalResponseNorm(size, alpha=1e-2, k=k)(x))
    assert repr(layer) == repr(torch.nn.LocalResponseNorm(size, alpha=1e-2, k=k))
    with pytest.raises(ValueError, match=r"Expected 3D or higher dimensionality\s+input \(got 2 dimensions\)"):
        F.local_response_norm(tinydl.tensor(x.numpy().reshape(shape[0], -1)), size)


@pytest.mark.parametrize("path", ["fx", "torch.export"])
def test_local_response_norm_layer_on_both_paths(path):
    check_paths(torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3), torch.nn.LocalResponseNorm(4, k=2.0)),
                torch.randn(2, 3, 8, 8), path=path)
