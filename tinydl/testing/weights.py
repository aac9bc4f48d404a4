"""Random weights that make a parity check mean something.

Zoo inits often leave outputs that vanish, explode or ignore whole code paths on random data (zero biases,
BatchNorm's 0/1 statistics, zero-initialized heads, layer-scale gammas of 1e-5): an atol of 1e-4 on logits of
1e-13 proves nothing, and a bug in a path that contributes zero cannot fail. These redraw such weights."""
from __future__ import annotations


def unit_variance(model, sample):
    """model with every conv/linear weight redrawn N(0, 2/fan_in) (biases N(0, 0.1)), random BatchNorm affine
    parameters and running statistics, then each conv/linear layer (weight and bias) rescaled so that its output
    has unit standard deviation over one forward of `sample()` (a callable returning the positional inputs, drawn
    after the weights), at its first call where it is called more than once: layer-sequential unit-variance init. Logits then have std ~1. Returns model."""
    import torch
    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.Linear))]

    rescaled = set()

    def rescale(layer, inputs, out):
        if id(layer) in rescaled:  # a layer called again (a detection head on each pyramid level): once only
            return None
        rescaled.add(id(layer))
        std = out.std()
        layer.weight.div_(std)
        if layer.bias is not None:
            layer.bias.div_(std)
        return out / std

    with torch.no_grad():
        for m in layers:
            m.weight.normal_(0.0, (2.0 / m.weight[0].numel()) ** 0.5)
            if m.bias is not None:
                m.bias.normal_(0.0, 0.1)
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.2)
                m.running_mean.normal_(0.0, 0.2)
                m.running_var.uniform_(0.5, 1.5)
        hooks = [m.register_forward_hook(rescale) for m in layers]
        try:
            model(*sample())
        finally:
            for h in hooks:
                h.remove()
    return model


def randomize_constants(model, seed=1):
    """Every constant float parameter or buffer c becomes c + noise of 10% of max(|c|, 0.2); running variances are
    drawn from [0.5, 1.5]. Returns model."""
    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(model.named_parameters()) + list(model.named_buffers()):
            if not t.dtype.is_floating_point or t.numel() == 0:
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
                continue
            c = t.flatten()[0].item()
            if bool((t == c).all()):
                t.add_(torch.randn(t.shape, generator=g) * 0.1 * max(abs(c), 0.2))
    return model
