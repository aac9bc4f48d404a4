"""from_torch's paths: torch.fx first, then torch.export when fx cannot trace the model or its graph has ops
tinydl does not map (and example inputs are given or made); the path taken is said (`conversion_path`, the
repr); when both fail, the closer path's missing ops are listed at once; without torch, an ImportError that
says what to install."""
import subprocess
import sys

import numpy as np
import pytest
import torch

import tinydl
from tinydl.interop.registry import UnsupportedTorchOps
from tinydl.testing import assert_close


class AddCMul(torch.nn.Module):
    """torch.addcmul: no fx mapping; torch.export's ATen graph decomposes into ops tinydl maps."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 4)

    def forward(self, x):
        return torch.addcmul(x, self.fc(x), x, value=0.5)


class Unmappable(torch.nn.Module):
    """torch.linalg.det: missing on both paths."""

    def forward(self, x):
        return torch.linalg.det(x) + torch.addcmul(x, x, x).sum()


def test_fx_graph_with_unmapped_ops_converts_through_export():
    m = AddCMul().eval()
    x = torch.randn(3, 4)
    tm = tinydl.from_torch(m, example_inputs=(x,))
    assert tm.conversion_path == "torch.export" and "via torch.export" in repr(tm)
    assert_close(tm(tinydl.tensor(x.numpy())), m(x).detach())
    plain = tinydl.from_torch(torch.nn.Sequential(torch.nn.Linear(4, 2)).eval())
    assert plain.conversion_path == "fx" and "via fx" in repr(plain)


def test_unmapped_ops_without_examples_say_export_may_help():
    with pytest.raises(UnsupportedTorchOps, match=r"(?s)torch\.addcmul.*pass example_inputs=\(\.\.\.\) to try "
                                                  r"torch\.export too"):
        tinydl.from_torch(AddCMul().eval())


def test_both_paths_failing_list_the_closer_paths_ops():
    with pytest.raises(UnsupportedTorchOps) as err:
        tinydl.from_torch(Unmappable().eval(), example_inputs=(torch.randn(2, 3, 3),))
    ops = [op for op, _, _ in err.value.ops]
    assert len(ops) == 1 and "det" in ops[0], ops  # export's graph misses only det; fx's misses det and addcmul


HIDDEN_TORCH = """
import sys
sys.modules["torch"] = None  # as if torch were not installed
import numpy as np
import tinydl
try:
    tinydl.from_torch(object())
except ImportError as e:
    print("from_torch:", e)
try:
    tinydl.load(sys.argv[1])
except ImportError as e:
    print("pt:", e)
print("safetensors:", tinydl.load(sys.argv[2])["w"].tolist())
"""


def test_without_torch_an_import_error_names_the_extra(tmp_path):
    torch.save({"w": torch.ones(2)}, tmp_path / "w.pt")
    header = b'{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}'
    (tmp_path / "w.safetensors").write_bytes(len(header).to_bytes(8, "little") + header
                                             + np.array([1.5, 2.5], np.float32).tobytes())
    out = subprocess.run([sys.executable, "-c", HIDDEN_TORCH, str(tmp_path / "w.pt"), str(tmp_path / "w.safetensors")],
                         capture_output=True, text=True, timeout=300)
    assert "from_torch: tinydl.from_torch needs torch, which is not installed: pip install 'tinydl[torch]'" \
        in out.stdout, out.stdout + out.stderr
    assert "a torch checkpoint, and reading one needs torch" in out.stdout, out.stdout + out.stderr
    assert "safetensors: [1.5, 2.5]" in out.stdout, out.stdout + out.stderr
