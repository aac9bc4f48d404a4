"""The hand-written ports in examples/ (as a user would write them) load torch's state_dict and match torch."""
import importlib.util
from pathlib import Path

import numpy as np
import torch

import tinydl
from tinydl.interop.torchvision_compat import import_torchvision
from tinydl.testing import assert_close

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_resnet18_hand_port_matches_torchvision(rng):
    tv = import_torchvision()
    port = _load("resnet18_port")
    torch.manual_seed(0)
    ref = tv.models.resnet18().eval()
    with torch.no_grad():  # non-trivial batch-norm statistics, so the BN path is really tested
        for m in ref.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    model = port.ResNet18().eval()
    assert list(model.state_dict()) == list(ref.state_dict())
    model.load_state_dict(ref.state_dict())
    x = rng.standard_normal((2, 3, 64, 64), dtype=np.float32)
    with torch.no_grad():
        expected = ref(torch.from_numpy(x))
    assert_close(model(tinydl.tensor(x)), expected, rtol=1e-4, atol=1e-4)


def test_transformer_hand_port_matches_torch(rng):
    port = _load("transformer_port")
    torch.manual_seed(0)
    ref = port.TorchClassifier().eval()
    model = port.Classifier().eval()
    model.load_state_dict(ref.state_dict())
    ids = rng.integers(1, port.VOCAB, (3, 12))
    ids[1, 8:] = port.PAD  # a padded sequence: the key padding mask must matter
    ids[2, 5:] = port.PAD
    with torch.no_grad():
        expected = ref(torch.from_numpy(ids))
    assert_close(model(tinydl.tensor(ids)), expected, rtol=1e-4, atol=1e-4)
