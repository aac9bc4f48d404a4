"""unfold (im2col) and fold (col2im) of torch.nn.functional (re-exported by functional): the windows' positions
are a constant of the sizes, computed on the host; unfold is one gather of them from the image (the padding's
positions masked to 0), fold one index_add into the padded image (overlaps summed), then the padding cropped."""
from __future__ import annotations

import numpy as np

from ..elementwise import _check_float_only
from ..shapes import as_tuple
from .._tensor import index_add, index_select, tensor, where, zeros
from .functional_norms import _t

__all__ = ["unfold", "fold"]


def _blocks_args(kernel_size, dilation, padding, stride) -> tuple:
    """The four (height, width) pairs, checked as torch checks them."""
    k, d, p, s = (as_tuple(v, 2, name) for v, name in ((kernel_size, "kernel_size"), (dilation, "dilation"),
                                                        (padding, "padding"), (stride, "stride")))
    for name, short, v, low in (("kernel size", "kernel", k, 1), ("stride", "stride", s, 1),
                                ("dilation", "dilation", d, 1), ("padding", "pad", p, 0)):
        if v[0] < low or v[1] < low:
            want = "greater than zero" if low else "non-negative"
            raise RuntimeError(f"{name} should be {want}, but got {short}_height: {v[0]} {short}_width: {v[1]}")
    return k, d, p, s


def _blocks(size, k, d, p, s) -> tuple:
    """The sliding blocks' count along each spatial dim (C's truncating division, as torch's message shows)."""
    def count(n, i):
        num = n + 2 * p[i] - (d[i] * (k[i] - 1) + 1)
        return int(num / s[i]) + 1
    return count(size[0], 0), count(size[1], 1)


def _positions(k, d, s, blocks) -> tuple:
    """Each block pixel's (row, column) in the padded image, [kh, kw, oh, ow] (kernel offset major)."""
    (kh, kw), (oh, ow) = k, blocks
    rows = np.arange(kh)[:, None, None, None] * d[0] + np.arange(oh)[None, None, :, None] * s[0]
    cols = np.arange(kw)[None, :, None, None] * d[1] + np.arange(ow)[None, None, None, :] * s[1]
    return np.broadcast_to(rows, (kh, kw, oh, ow)), np.broadcast_to(cols, (kh, kw, oh, ow))


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):  # noqa: A002 - torch's names
    """[N, C, H, W] -> [N, C * kh * kw, L]: every block's pixels, channel major (unbatched [C, H, W] too)."""
    x = _t(input)
    if x.ndim not in (3, 4) or 0 in x.shape[-3:]:
        raise RuntimeError(f"Expected 3D or 4D (batch mode) tensor with possibly 0 batch size and other non-zero "
                           f"dimensions for input, but got: {list(x.shape)}")
    _check_float_only("im2col", x)
    k, d, p, s = _blocks_args(kernel_size, dilation, padding, stride)
    batched = x.ndim == 4
    x = x if batched else x.unsqueeze(0)
    N, C, H, W = x.shape
    blocks = _blocks((H, W), k, d, p, s)
    if blocks[0] < 1 or blocks[1] < 1:
        raise RuntimeError(f"Given input with spatial size ({H}, {W}), kernel_size=({k[0]}, {k[1]}), dilation=({d[0]}, "
                           f"{d[1]}), padding=({p[0]}, {p[1]}), calculated shape of the array of sliding blocks as "
                           f"({blocks[0]}, {blocks[1]}), but its components must be at least one.")
    rows, cols = _positions(k, d, s, blocks)
    rows, cols = rows - p[0], cols - p[1]  # in the unpadded image: outside it the padding's zeros
    inside = ((rows >= 0) & (rows < H) & (cols >= 0) & (cols < W)).reshape(-1)
    flat = (np.clip(rows, 0, H - 1) * W + np.clip(cols, 0, W - 1)).reshape(-1)
    taken = index_select(x.reshape(N, C, H * W), 2, flat)
    if not inside.all():
        taken = where(tensor(inside), taken, zeros((), dtype=x.dtype))
    return taken.reshape(N, C * k[0] * k[1], blocks[0] * blocks[1]) if batched else \
        taken.reshape(C * k[0] * k[1], blocks[0] * blocks[1])


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):  # noqa: A002
    """[N, C * kh * kw, L] -> [N, C, H, W]: each block's values added back at its pixels (unfold's adjoint)."""
    x = _t(input)
    if x.ndim not in (2, 3) or 0 in x.shape[-2:]:
        raise RuntimeError(f"Expected 2D or 3D (batch mode) tensor for input with possibly 0 batch size and non-zero "
                           f"dimensions for input, but got: {list(x.shape)}")
    _check_float_only("col2im", x)
    out_size = as_tuple(output_size, 2, "output_size")
    k, d, p, s = _blocks_args(kernel_size, dilation, padding, stride)
    batched = x.ndim == 3
    x = x if batched else x.unsqueeze(0)
    N, CK, L = x.shape
    if CK % (k[0] * k[1]):
        raise RuntimeError(f"Expected size of input's dimension 1 to be divisible by the product of kernel_size, but "
                           f"got input.size(1)={CK} and kernel_size=({k[0]}, {k[1]}).")
    H, W = out_size
    blocks = _blocks((H, W), k, d, p, s)
    if L != blocks[0] * blocks[1]:
        raise RuntimeError(f"Given output_size=({H}, {W}), kernel_size=({k[0]}, {k[1]}), dilation=({d[0]}, {d[1]}), "
                           f"padding=({p[0]}, {p[1]}), stride=({s[0]}, {s[1]}), expected size of input's dimension 2 "
                           f"to match the calculated number of sliding blocks {blocks[0]} * {blocks[1]} = "
                           f"{blocks[0] * blocks[1]}, but got input.size(2)={L}.")
    C = CK // (k[0] * k[1])
    Hp, Wp = H + 2 * p[0], W + 2 * p[1]
    image = zeros(N, C, Hp * Wp, dtype=x.dtype)
    if x.numel():
        rows, cols = _positions(k, d, s, blocks)
        image = index_add(image, 2, (rows * Wp + cols).reshape(-1), x.reshape(N, C, k[0] * k[1] * L))
    out = image.reshape(N, C, Hp, Wp)[:, :, p[0]:p[0] + H, p[1]:p[1] + W]
    return out if batched else out.squeeze(0)
