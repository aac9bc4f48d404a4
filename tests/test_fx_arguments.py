"""fx calls' arguments reach tinydl's callables as torch's do (interop/arguments.py): keywords by torch's names
(tinydl's own parameter names may differ), no-op keywords dropped, an argument tinydl cannot honour listed at
conversion (never a TypeError at the call, never ignored), in-place activations refused where the input is read
again (torch would see it changed)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import tinydl
from tinydl.interop.registry import UnsupportedTorchOps


class Keywords(torch.nn.Module):
    def forward(self, x):
        y = torch.add(x, other=x * 2, alpha=3) + torch.sub(input=x, other=1.5, alpha=2)
        z = x.prod(1, keepdim=True, dtype=torch.float32) + torch.pow(x, exponent=2) + x.add(other=y)
        w = torch.where(condition=x > 0, input=x, other=y) + x.to(torch.float32, non_blocking=True)
        return y + z + w + TF.softmax(x, dim=-1, _stacklevel=5) + x.contiguous(memory_format=torch.contiguous_format)


class InplaceReadAgain(torch.nn.Module):
    def forward(self, x):
        h = x * 2
        return h + TF.relu(h, inplace=True)


class InplaceModuleReadAgain(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc, self.act = torch.nn.Linear(4, 4), torch.nn.ReLU(inplace=True)

    def forward(self, x):
        h = self.fc(x)
        return h + self.act(h)


class InplaceFine(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc, self.act = torch.nn.Linear(4, 4), torch.nn.ReLU(inplace=True)

    def forward(self, x):
        h = self.fc(x) + x
        return self.act(h) * 2 + TF.leaky_relu(x * 3, 0.2, inplace=True) + TF.hardtanh(x - 1, inplace=True)


class Unsupported(torch.nn.Module):
    def forward(self, x):
        return torch.bmm(x, x.transpose(1, 2), out_dtype=torch.float16)


def run_both(m, x):
    tm = tinydl.from_torch(m.eval())
    assert tm.conversion_path == "fx"
    return tm(tinydl.tensor(x.numpy())).numpy(), m(x.clone()).detach().numpy()


@pytest.mark.parametrize("model", [Keywords, InplaceFine])
def test_keywords_by_torchs_names(model):
    got, ref = run_both(model(), torch.randn(3, 4))
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("model,op", [(InplaceReadAgain, "function torch.nn.functional.relu"),
                                      (InplaceModuleReadAgain, "module ReLU")])
def test_inplace_on_an_input_read_again_is_refused(model, op):
    with pytest.raises(UnsupportedTorchOps, match=rf"{op}\(inplace=True on an input read again later\)"):
        tinydl.from_torch(model().eval())


def test_inplace_read_again_converts_through_export():
    """With example inputs torch.export (which makes the in-place op functional) takes over, with torch's values."""
    m, x = InplaceReadAgain().eval(), torch.randn(3, 4)
    tm = tinydl.from_torch(m, example_inputs=(x,))
    assert tm.conversion_path == "torch.export"
    np.testing.assert_allclose(tm(tinydl.tensor(x.numpy())).numpy(), m(x.clone()).numpy(), rtol=1e-6)


def test_an_argument_tinydl_does_not_take_is_listed_at_conversion():
    with pytest.raises(UnsupportedTorchOps, match=r"function torch.bmm\(out_dtype=torch.float16\)"):
        tinydl.from_torch(Unsupported().eval())
