"""Conv1d, Conv2d, Conv3d (padding modes), ConvTranspose1d, ConvTranspose2d, ConvTranspose3d."""
from __future__ import annotations

import math

from ..shapes import as_tuple
from . import functional as F
from . import init
from .module import Module


class _ConvNd(Module):
    _nd = 2

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__()
        nd = self._nd
        if groups <= 0:
            raise ValueError("groups must be a positive integer")
        if in_channels % groups:
            raise ValueError("in_channels must be divisible by groups")
        if out_channels % groups:
            raise ValueError("out_channels must be divisible by groups")
        if padding_mode not in ("zeros", "reflect", "replicate", "circular"):
            raise ValueError(f"padding_mode must be one of ['zeros', 'reflect', 'replicate', 'circular'], but got "
                             f"padding_mode='{padding_mode}'")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = as_tuple(kernel_size, nd, "kernel_size")
        self.stride, self.dilation = as_tuple(stride, nd, "stride"), as_tuple(dilation, nd, "dilation")
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"Invalid padding string '{padding}', should be one of {{'valid', 'same'}}")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError("padding='same' is not supported for strided convolutions")
            self.padding = padding
        else:
            self.padding = as_tuple(padding, nd, "padding")
        self.padding_mode = padding_mode
        fan_in = in_channels // groups * math.prod(self.kernel_size)
        self.weight = init.kaiming_uniform((out_channels, in_channels // groups) + self.kernel_size, fan_in)
        if bias:
            self.bias = init.kaiming_uniform((out_channels,), fan_in)
        else:
            self.register_parameter("bias", None)

    def _pad_input(self, x):
        """Non-zero padding modes pad explicitly (a view, fused into the conv's input loads)."""
        if self.padding_mode == "zeros" or self.padding == "valid":
            return x, self.padding
        flat = []
        if self.padding == "same":  # torch's split of the total d * (k - 1): the extra element goes last
            for d, k in zip(reversed(self.dilation), reversed(self.kernel_size)):
                flat += [d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2]
        else:
            for p in reversed(self.padding):
                flat += [p, p]
        return F.pad(x, flat, mode=self.padding_mode), 0

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * len(self.padding):
            s += f", padding={self.padding}"
        if self.dilation != (1,) * len(self.dilation):
            s += f", dilation={self.dilation}"
        if getattr(self, "output_padding", (0,)) != (0,) * len(getattr(self, "output_padding", (0,))):
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Conv2d(_ConvNd):
    _nd = 2

    def forward(self, x):
        x, padding = self._pad_input(x)
        return F.conv2d(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)


class Conv3d(_ConvNd):
    _nd = 3

    def forward(self, x):
        x, padding = self._pad_input(x)
        return F.conv3d(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)


class Conv1d(_ConvNd):
    _nd = 1

    def forward(self, x):
        x, padding = self._pad_input(x)
        return F.conv1d(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)


class ConvTranspose2d(Module):
    _nd = 2

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, padding_mode="zeros", device=None, dtype=None):
        super().__init__()
        nd = self._nd
        if padding_mode != "zeros":
            raise ValueError(f'Only "zeros" padding mode is supported for {type(self).__name__}')
        if in_channels % groups or out_channels % groups:
            raise ValueError("in_channels and out_channels must be divisible by groups")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = as_tuple(kernel_size, nd, "kernel_size")
        self.stride, self.padding = as_tuple(stride, nd, "stride"), as_tuple(padding, nd, "padding")
        self.output_padding = as_tuple(output_padding, nd, "output_padding")
        self.dilation = as_tuple(dilation, nd, "dilation")
        self.padding_mode = padding_mode
        # torch computes fan_in from weight dim 1 (out_channels // groups) for transposed convs
        fan_in = out_channels // groups * math.prod(self.kernel_size)
        self.weight = init.kaiming_uniform((in_channels, out_channels // groups) + self.kernel_size, fan_in)
        if bias:
            self.bias = init.kaiming_uniform((out_channels,), fan_in)
        else:
            self.register_parameter("bias", None)

    def forward(self, x, output_size=None):
        if output_size is not None:
            raise NotImplementedError(f"{type(self).__name__}(output_size=...) is not supported; use output_padding")
        fn = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[self._nd]
        return fn(x, self.weight, self.bias, self.stride, self.padding, self.output_padding, self.groups,
                  self.dilation)

    extra_repr = _ConvNd.extra_repr


class ConvTranspose1d(ConvTranspose2d):
    _nd = 1


class ConvTranspose3d(ConvTranspose2d):
    _nd = 3
