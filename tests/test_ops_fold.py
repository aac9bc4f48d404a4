"""F.unfold / F.fold (im2col / col2im) and nn.Unfold / nn.Fold: parity with torch CPU over kernel, dilation,
padding and stride (pairs and ints), unbatched and empty batches, fold's overlaps summed; torch's errors; both
from_torch paths."""
import pytest
import torch

import tinydl
from tinydl import nn
from tinydl.nn import functional as F
from tinydl.testing import assert_close

from paths import check_paths

TF = torch.nn.functional
ARGS = [dict(kernel_size=2), dict(kernel_size=(2, 3), dilation=(1, 2), padding=1, stride=2),
        dict(kernel_size=3, padding=2, stride=(2, 1)), dict(kernel_size=(1, 1)), dict(kernel_size=(5, 6)),
        dict(kernel_size=2, dilation=2, padding=(0, 1), stride=3)]


def _t(x):
    return tinydl.tensor(x.numpy())


@pytest.mark.parametrize("args", ARGS)
@pytest.mark.parametrize("shape", [(2, 3, 5, 6), (3, 5, 6), (0, 2, 5, 6), (1, 1, 5, 6)])
def test_unfold_fold(args, shape):
    x = torch.randn(shape)
    cols = TF.unfold(x, **args)
    assert_close(F.unfold(_t(x), **args), cols)
    assert_close(nn.Unfold(**args)(_t(x)), torch.nn.Unfold(**args)(x))
    assert repr(nn.Unfold(**args)) == repr(torch.nn.Unfold(**args))
    back = TF.fold(cols, shape[-2:], **args)  # overlapping blocks summed
    assert_close(F.fold(_t(cols), shape[-2:], **args), back)
    assert_close(nn.Fold(shape[-2:], **args)(_t(cols)), torch.nn.Fold(shape[-2:], **args)(cols))
    assert repr(nn.Fold(shape[-2:], **args)) == repr(torch.nn.Fold(shape[-2:], **args))


def test_fold_of_random_columns():
    cols = torch.randn(2, 3 * 4, 12)
    assert_close(F.fold(_t(cols), (4, 5), 2), TF.fold(cols, (4, 5), 2))
    assert_close(F.fold(_t(cols[0]), 5, (2, 2), padding=(1, 0), stride=(1, 2)),
                 TF.fold(cols[0], 5, (2, 2), padding=(1, 0), stride=(1, 2)))


Z = tinydl.zeros


@pytest.mark.parametrize("call,exc,message", [
    (lambda: F.unfold(Z(2, 3, 4, 5), 7), RuntimeError,
     r"Given input with spatial size \(4, 5\), kernel_size=\(7, 7\), dilation=\(1, 1\), padding=\(0, 0\), calculated "
     r"shape of the array of sliding blocks as \(-2, -1\), but its components must be at least one."),
    (lambda: F.unfold(Z(2, 3, 4, 5), 0), RuntimeError,
     "kernel size should be greater than zero, but got kernel_height: 0 kernel_width: 0"),
    (lambda: F.unfold(Z(2, 3, 4, 5), 2, stride=0), RuntimeError,
     "stride should be greater than zero, but got stride_height: 0 stride_width: 0"),
    (lambda: F.unfold(Z(2, 3, 4, 5), 2, padding=-1), RuntimeError,
     "padding should be non-negative, but got pad_height: -1 pad_width: -1"),
    (lambda: F.unfold(Z(2, 3, 4, 5), 2, dilation=0), RuntimeError,
     "dilation should be greater than zero, but got dilation_height: 0 dilation_width: 0"),
    (lambda: F.unfold(Z(1, 2, 3, 4, 5), 2), RuntimeError,
     r"Expected 3D or 4D \(batch mode\) tensor with possibly 0 batch size and other non-zero dimensions for input, "
     r"but got: \[1, 2, 3, 4, 5\]"),
    (lambda: F.unfold(Z(2, 3, 4, 5, dtype=tinydl.int32), 2), NotImplementedError,
     "\"im2col_out_cpu\" not implemented for 'Int'"),
    (lambda: F.fold(Z(2, 12, 6), (4, 5), 2), RuntimeError,
     r"Given output_size=\(4, 5\), kernel_size=\(2, 2\), dilation=\(1, 1\), padding=\(0, 0\), stride=\(1, 1\), "
     r"expected size of input's dimension 2 to match the calculated number of sliding blocks 3 \* 4 = 12, but got "
     r"input.size\(2\)=6."),
    (lambda: F.fold(Z(2, 13, 12), (4, 5), 2), RuntimeError,
     r"Expected size of input's dimension 1 to be divisible by the product of kernel_size, but got "
     r"input.size\(1\)=13 and kernel_size=\(2, 2\)."),
    (lambda: F.fold(Z(1, 2, 3, 4), 2, 1), RuntimeError,
     r"Expected 2D or 3D \(batch mode\) tensor for input with possibly 0 batch size and non-zero dimensions for "
     r"input, but got: \[1, 2, 3, 4\]"),
])
def test_errors(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


class Family(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.unfold = torch.nn.Unfold((2, 3), padding=1, stride=2)
        self.fold = torch.nn.Fold((5, 6), (2, 3), padding=1, stride=2)

    def forward(self, x):
        cols = self.unfold(x)
        return cols, self.fold(cols * 2), TF.fold(TF.unfold(x, 2), (5, 6), 2)


@pytest.mark.parametrize("path", ["fx", "torch.export"])
def test_both_paths(path):
    check_paths(Family(), torch.randn(2, 3, 5, 6), path=path)
