"""Mirroring a torch module tree in tinydl.nn: same names, same state_dict keys, weights copied once."""
from __future__ import annotations

from .. import nn
from ..nn.module import Module, ModuleList, Parameter
from .._tensor import tensor
from .registry import LAYERS as CUSTOM_LAYERS
from .weights import torch_to_numpy


def _conv(cls):
    def build(m):
        return cls(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation, m.groups,
                   m.bias is not None, m.padding_mode)
    return build


def _has_bias(m) -> bool:
    """Norm layers' bias=False (torch 2.13): an affine layer whose bias is None."""
    return not m.affine or getattr(m, "bias", None) is not None


def _bn(cls):
    return lambda m: cls(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats, bias=_has_bias(m))


def _instance_norm(cls):
    return lambda m: cls(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats)


def _simple(cls, *attrs):
    return lambda m: cls(*(getattr(m, a) for a in attrs))


def _pad(cls):
    """torch's padding layers: a ZeroPad has no value argument (its value is 0), a ConstantPad one."""
    return lambda m: cls(m.padding, m.value) if type(m).__name__.startswith("Constant") else cls(m.padding)


# torch.nn class name -> builder of the tinydl layer from the torch layer's configuration. These become fx
# leaves (called as one tinydl layer); every other module is traced through.
LAYERS = {
    "Linear": lambda m: nn.Linear(m.in_features, m.out_features, m.bias is not None),
    "Conv1d": _conv(nn.Conv1d),
    "Conv2d": _conv(nn.Conv2d),
    "Conv3d": _conv(nn.Conv3d),
    "ConvTranspose1d": lambda m: nn.ConvTranspose1d(m.in_channels, m.out_channels, m.kernel_size, m.stride,
                                                    m.padding, m.output_padding, m.groups, m.bias is not None,
                                                    m.dilation, m.padding_mode),
    "ConvTranspose2d": lambda m: nn.ConvTranspose2d(m.in_channels, m.out_channels, m.kernel_size, m.stride,
                                                    m.padding, m.output_padding, m.groups, m.bias is not None,
                                                    m.dilation, m.padding_mode),
    "ConvTranspose3d": lambda m: nn.ConvTranspose3d(m.in_channels, m.out_channels, m.kernel_size, m.stride,
                                                    m.padding, m.output_padding, m.groups, m.bias is not None,
                                                    m.dilation, m.padding_mode),
    "BatchNorm1d": _bn(nn.BatchNorm1d),
    "BatchNorm2d": _bn(nn.BatchNorm2d),
    "BatchNorm3d": _bn(nn.BatchNorm3d),
    "LayerNorm": lambda m: nn.LayerNorm(m.normalized_shape, m.eps, m.elementwise_affine,
                                        getattr(m, "bias", None) is not None or not m.elementwise_affine),
    "InstanceNorm1d": _instance_norm(nn.InstanceNorm1d),
    "InstanceNorm2d": _instance_norm(nn.InstanceNorm2d),
    "InstanceNorm3d": _instance_norm(nn.InstanceNorm3d),
    "GroupNorm": lambda m: nn.GroupNorm(m.num_groups, m.num_channels, m.eps, m.affine, bias=_has_bias(m)),
    "RMSNorm": lambda m: nn.RMSNorm(m.normalized_shape, m.eps, m.elementwise_affine),
    "LocalResponseNorm": _simple(nn.LocalResponseNorm, "size", "alpha", "beta", "k"),
    **{f"{kind}Pad{n}d": _pad(getattr(nn, f"{kind}Pad{n}d")) for kind in ("Zero", "Constant", "Reflection",
                                                                          "Replication", "Circular") for n in (1, 2, 3)},
    "ChannelShuffle": _simple(nn.ChannelShuffle, "groups"),
    "CosineSimilarity": _simple(nn.CosineSimilarity, "dim", "eps"),
    "PairwiseDistance": _simple(nn.PairwiseDistance, "norm", "eps", "keepdim"),
    "Unfold": _simple(nn.Unfold, "kernel_size", "dilation", "padding", "stride"),
    "Fold": _simple(nn.Fold, "output_size", "kernel_size", "dilation", "padding", "stride"),
    "Embedding": lambda m: nn.Embedding(m.num_embeddings, m.embedding_dim, m.padding_idx),
    "EmbeddingBag": lambda m: nn.EmbeddingBag(m.num_embeddings, m.embedding_dim, m.max_norm, mode=m.mode,
                                              include_last_offset=m.include_last_offset, padding_idx=m.padding_idx),
    "Dropout": _simple(nn.Dropout, "p"),
    "Dropout1d": _simple(nn.Dropout1d, "p"),
    "Dropout2d": _simple(nn.Dropout2d, "p"),
    "Identity": lambda m: nn.Identity(),
    "Flatten": _simple(nn.Flatten, "start_dim", "end_dim"),
    "PixelShuffle": _simple(nn.PixelShuffle, "upscale_factor"),
    "PixelUnshuffle": _simple(nn.PixelUnshuffle, "downscale_factor"),
    "Unflatten": _simple(nn.Unflatten, "dim", "unflattened_size"),
    "ReLU": lambda m: nn.ReLU(),
    "ReLU6": lambda m: nn.ReLU6(),
    "SiLU": lambda m: nn.SiLU(),
    "Hardswish": lambda m: nn.Hardswish(),
    "Hardsigmoid": lambda m: nn.Hardsigmoid(),
    "Sigmoid": lambda m: nn.Sigmoid(),
    "Tanh": lambda m: nn.Tanh(),
    "Mish": lambda m: nn.Mish(),
    "GELU": _simple(nn.GELU, "approximate"),
    "LeakyReLU": _simple(nn.LeakyReLU, "negative_slope"),
    "ELU": _simple(nn.ELU, "alpha"),
    "Softplus": _simple(nn.Softplus, "beta", "threshold"),
    "Hardtanh": _simple(nn.Hardtanh, "min_val", "max_val"),
    "PReLU": lambda m: nn.PReLU(m.num_parameters),
    "Softmax": _simple(nn.Softmax, "dim"),
    "Softmin": _simple(nn.Softmin, "dim"),
    "Softmax2d": lambda m: nn.Softmax2d(),
    "GLU": _simple(nn.GLU, "dim"),
    "SELU": lambda m: nn.SELU(),
    "CELU": _simple(nn.CELU, "alpha"),
    "Softsign": lambda m: nn.Softsign(),
    "LogSigmoid": lambda m: nn.LogSigmoid(),
    "Tanhshrink": lambda m: nn.Tanhshrink(),
    "Threshold": _simple(nn.Threshold, "threshold", "value"),
    "Hardshrink": _simple(nn.Hardshrink, "lambd"),
    "Softshrink": _simple(nn.Softshrink, "lambd"),
    "RReLU": _simple(nn.RReLU, "lower", "upper"),
    "LogSoftmax": _simple(nn.LogSoftmax, "dim"),
    "MaxPool2d": lambda m: nn.MaxPool2d(m.kernel_size, m.stride, m.padding, m.dilation, m.return_indices,
                                        m.ceil_mode),
    "AvgPool2d": lambda m: nn.AvgPool2d(m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad,
                                        m.divisor_override),
    "MaxPool1d": lambda m: nn.MaxPool1d(m.kernel_size, m.stride, m.padding, m.dilation, m.return_indices,
                                        m.ceil_mode),
    "AvgPool1d": lambda m: nn.AvgPool1d(m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad),
    "AdaptiveAvgPool1d": _simple(nn.AdaptiveAvgPool1d, "output_size"),
    "AdaptiveMaxPool1d": _simple(nn.AdaptiveMaxPool1d, "output_size"),
    "MaxPool3d": lambda m: nn.MaxPool3d(m.kernel_size, m.stride, m.padding, m.dilation, m.return_indices,
                                        m.ceil_mode),
    "AvgPool3d": lambda m: nn.AvgPool3d(m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad,
                                        m.divisor_override),
    "AdaptiveAvgPool3d": _simple(nn.AdaptiveAvgPool3d, "output_size"),
    "AdaptiveMaxPool3d": _simple(nn.AdaptiveMaxPool3d, "output_size"),
    "AdaptiveAvgPool2d": _simple(nn.AdaptiveAvgPool2d, "output_size"),
    "AdaptiveMaxPool2d": _simple(nn.AdaptiveMaxPool2d, "output_size"),
    "Upsample": lambda m: nn.Upsample(m.size, m.scale_factor, m.mode, m.align_corners,
                                      getattr(m, "recompute_scale_factor", None)),
    "UpsamplingNearest2d": _simple(nn.UpsamplingNearest2d, "size", "scale_factor"),
    "UpsamplingBilinear2d": _simple(nn.UpsamplingBilinear2d, "size", "scale_factor"),
    "MultiheadAttention": lambda m: nn.MultiheadAttention(m.embed_dim, m.num_heads, m.dropout,
                                                          m.in_proj_bias is not None, m.bias_k is not None,
                                                          m.add_zero_attn, m.kdim, m.vdim, m.batch_first),
}


# Library modules (timm's, ...) that fx cannot trace through are in the registry (CUSTOM_LAYERS: qualified class
# name -> builder(torch module, convert_child) of a tinydl module with the same parameter/buffer names, registered
# with @registry.layer by timm_ops etc.); they are fx leaves too.


def _class_name(m) -> str:
    return f"{type(m).__module__}.{type(m).__qualname__}"


def is_layer(m) -> bool:
    """A torch module tinydl runs as one layer (its class is torch's own and in LAYERS, or in CUSTOM_LAYERS)."""
    return (type(m).__module__.startswith("torch.nn") and type(m).__name__ in LAYERS) or _class_name(m) in CUSTOM_LAYERS


def mirror(tm, convert=None) -> Module:
    """The tinydl twin of torch module `tm`, with placeholder weights (see copy_weights). convert(torch module):
    a converted module for a child of a custom layer that is neither a layer nor a container (fx.convert_child)."""
    with nn.init.no_init():
        return _mirror(tm, convert)


def mirror_child(tm, convert):
    """A child of a custom layer: None, a tinydl layer, a ModuleList of children, or convert(tm) (its weights are
    copied later, by the caller's copy_weights, through the shared parameter names)."""
    if tm is None or is_layer(tm):
        return None if tm is None else _mirror(tm, convert)
    if type(tm).__name__ == "ModuleList":
        return ModuleList([mirror_child(c, convert) for c in tm])
    return convert(tm)


def _mirror(tm, convert=None) -> Module:
    if is_layer(tm):
        name = _class_name(tm)
        m = CUSTOM_LAYERS[name](tm, lambda c: mirror_child(c, convert)) if name in CUSTOM_LAYERS else \
            LAYERS[type(tm).__name__](tm)
        m.train(tm.training)
        return m
    m = Module()
    object.__setattr__(m, "torch_class", type(tm).__name__)
    for name, p in tm._parameters.items():
        m.register_parameter(name, None if p is None else Parameter(tensor(0.0)))
    for name, b in tm._buffers.items():
        m.register_buffer(name, None if b is None else tensor(0.0),
                          persistent=name not in getattr(tm, "_non_persistent_buffers_set", ()))
    for name, child in tm._modules.items():
        m.add_module(name, None if child is None else _mirror(child, convert))
    m.train(tm.training)
    return m


def copy_weights(m: Module, tm) -> None:
    """Copy every parameter and buffer (non-persistent ones too) from torch, key for key."""
    own = dict(m.named_parameters())
    own.update(dict(m.named_buffers()))
    first = {}  # id(torch tensor) -> its tinydl twin: tied weights (GPT-2's lm_head/wte) stay ONE tensor, as in torch
    for name, t in list(tm.named_parameters(remove_duplicate=False)) + list(tm.named_buffers(remove_duplicate=False)):
        if name not in own:
            raise RuntimeError(f"from_torch: {name} has no place in the converted module (a tinydl bug)")
        target = own[name]
        if id(t) in first:
            owner, _, attr = name.rpartition(".")
            mod = m.get_submodule(owner) if owner else m
            (mod._parameters if attr in mod._parameters else mod._buffers)[attr] = first[id(t)]
            continue
        first[id(t)] = target
        target.node = tensor(torch_to_numpy(t)).node  # bfloat16 exactly as float32; float64 as float32
