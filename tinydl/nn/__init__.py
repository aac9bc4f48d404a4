"""tinydl.nn: torch.nn's layers with the same class names, constructor arguments and attribute names, so
`tinydl_model.load_state_dict(torch_model.state_dict())` works key for key."""
from . import functional, init  # noqa: F401
from .activation import (CELU, ELU, GELU, GLU, SELU, Hardshrink, Hardsigmoid, Hardswish, Hardtanh, LeakyReLU,
                         LogSigmoid, LogSoftmax, Mish, PReLU, ReLU, ReLU6, RReLU, Sigmoid, SiLU, Softmax, Softmax2d,
                         Softmin, Softplus, Softshrink, Softsign, Tanh, Tanhshrink, Threshold)
from .distance import CosineSimilarity, PairwiseDistance
from .fold import Fold, Unfold
from .conv import Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d
from .linear import (ChannelShuffle, Dropout, Dropout1d, Dropout2d, Embedding, EmbeddingBag, Flatten, Linear, PixelShuffle,
                     PixelUnshuffle, Unflatten)
from .module import Identity, Module, ModuleDict, ModuleList, Parameter, Sequential
from .norm import BatchNorm1d, BatchNorm2d, BatchNorm3d, GroupNorm, InstanceNorm1d, InstanceNorm2d, InstanceNorm3d, LayerNorm, LocalResponseNorm
from .norm import RMSNorm
from .padding import *  # noqa: F401,F403 - {Zero,Constant,Reflection,Replication,Circular}Pad{1,2,3}d
from .pooling import (AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveAvgPool3d, AdaptiveMaxPool1d, AdaptiveMaxPool2d,
                      AdaptiveMaxPool3d, AvgPool1d, AvgPool2d, AvgPool3d, MaxPool1d, MaxPool2d, MaxPool3d, Upsample,
                      UpsamplingBilinear2d, UpsamplingNearest2d)
from .transformer import MultiheadAttention, TransformerEncoder, TransformerEncoderLayer

__all__ = [n for n in dir() if not n.startswith("_")]
