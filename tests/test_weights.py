"""tinydl.load: .safetensors (without torch), torch checkpoints (.pt/.pth, zip and legacy), loading into a
tinydl model with torch-equal results, refusal of pickles that run code, and clear errors for other files."""
import os
import pickle
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest
import torch
import torch.nn as tnn

import tinydl
import tinydl.nn as nn
from tinydl.testing import assert_close


def model(lib):
    return lib.Sequential(lib.Conv2d(3, 4, 3, padding=1), lib.BatchNorm2d(4), lib.ReLU(), lib.Flatten(),
                          lib.Linear(4 * 5 * 5, 6))


@pytest.fixture
def torch_model():
    torch.manual_seed(0)
    t = model(tnn)
    with torch.no_grad():
        t[1].running_mean.uniform_(-1, 1)
        t[1].running_var.uniform_(0.5, 2)
        t[1].num_batches_tracked.fill_(3)
    return t.eval()


def _same_state(loaded, torch_sd):
    assert list(loaded) == list(torch_sd)
    for k, v in torch_sd.items():
        assert isinstance(loaded[k], np.ndarray)
        assert loaded[k].dtype == v.numpy().dtype, k
        np.testing.assert_array_equal(loaded[k], v.numpy())


def test_safetensors_loads_without_torch(tmp_path, rng):
    from safetensors.numpy import save_file
    tensors = {"a.weight": rng.standard_normal((3, 4)).astype(np.float32),
               "a.bias": rng.standard_normal(3).astype(np.float16), "steps": np.array(7, np.int64)}
    path = tmp_path / "w.safetensors"
    save_file(tensors, str(path))
    code = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None  # any `import torch` now raises ImportError
        import numpy as np
        import tinydl
        sd = tinydl.load({str(path)!r})
        assert "torch" not in sys.modules or sys.modules["torch"] is None
        np.savez({str(tmp_path / 'out.npz')!r}, **sd)
        print(" ".join(sd))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert sorted(proc.stdout.split()) == sorted(tensors)  # safetensors stores by dtype and size, not in order
    with np.load(tmp_path / "out.npz") as out:
        for k, v in tensors.items():
            assert out[k].dtype == v.dtype
            np.testing.assert_array_equal(out[k], v)


def test_torch_save_state_dict_loads(tmp_path, torch_model):
    path = tmp_path / "model.pt"
    torch.save(torch_model.state_dict(), path)
    _same_state(tinydl.load(path), torch_model.state_dict())
    _same_state(tinydl.load(str(path)), torch_model.state_dict())  # str or PathLike


def test_legacy_pth_and_wrapped_state_dict(tmp_path, torch_model):
    path = tmp_path / "legacy.pth"
    torch.save(torch_model.state_dict(), path, _use_new_zipfile_serialization=False)
    assert not zipfile.is_zipfile(path)
    _same_state(tinydl.load(path), torch_model.state_dict())
    path = tmp_path / "ckpt.pth"
    torch.save({"state_dict": torch_model.state_dict(), "epoch": 3}, path)  # a training checkpoint
    _same_state(tinydl.load(path), torch_model.state_dict())


def test_bfloat16_becomes_float32(tmp_path):
    w = torch.randn(3, 2).to(torch.bfloat16)
    path = tmp_path / "bf16.pt"
    torch.save({"w": w}, path)
    sd = tinydl.load(path)
    assert sd["w"].dtype == np.float32
    np.testing.assert_array_equal(sd["w"], w.float().numpy())


@pytest.mark.parametrize("fmt", ["pt", "safetensors"])
def test_loaded_weights_give_torch_outputs(tmp_path, torch_model, rng, fmt):
    path = tmp_path / f"model.{fmt}"
    if fmt == "pt":
        torch.save(torch_model.state_dict(), path)
    else:
        from safetensors.torch import save_file
        save_file(torch_model.state_dict(), str(path))
    m = model(nn).eval()
    result = m.load_state_dict(tinydl.load(path))
    assert result.missing_keys == [] and result.unexpected_keys == []
    x = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x))
    assert_close(m(tinydl.tensor(x)), expected)


class Evil:
    """Unpickling this runs a shell command."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def _assert_refused(path, marker):
    with pytest.raises(pickle.UnpicklingError) as err:
        tinydl.load(path)
    msg = str(err.value)
    assert str(path) in msg
    assert "refused to load" in msg and "arbitrary code" in msg and "weights_only=True" in msg
    assert not marker.exists(), "the pickled command ran"


def test_malicious_torch_checkpoint_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"weight": torch.zeros(2), "payload": Evil(f"echo pwned > {marker}")}, path)
    assert zipfile.is_zipfile(path)
    _assert_refused(path, marker)
    # the payload is real: an unsafe loader runs it (so the refusal above is what kept the marker away)
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_malicious_raw_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"weight": Evil(f"echo pwned > {marker}")}, f, protocol=2)
    _assert_refused(path, marker)


def test_malicious_pickle_inside_zip_is_refused(tmp_path):
    """A zip laid out like torch's format, with a data.pkl that calls os.system."""
    marker = tmp_path / "pwned"
    path = tmp_path / "evil_zip.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps(Evil(f"echo pwned > {marker}"), protocol=2))
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/version", "3\n")
    _assert_refused(path, marker)


@pytest.mark.parametrize("content", [b"hello, these are not weights\n", b"", b"{\"a\": 1}", b"\x89PNG\r\n\x1a\n0000"])
def test_unknown_format_raises_value_error(tmp_path, content):
    path = tmp_path / "weights.bin"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="neither a safetensors file nor a torch checkpoint") as err:
        tinydl.load(path)
    assert str(path) in str(err.value)


def test_corrupt_safetensors_raises_value_error(tmp_path, rng):
    from safetensors.numpy import save_file
    path = tmp_path / "w.safetensors"
    save_file({"a": rng.standard_normal((64, 64)).astype(np.float32)}, str(path))
    path.write_bytes(path.read_bytes()[:200])  # truncated
    with pytest.raises(ValueError, match="not a valid safetensors file") as err:
        tinydl.load(path)
    assert str(path) in str(err.value)


def test_non_state_dict_checkpoint(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], path)
    with pytest.raises(ValueError, match="expected a state_dict") as err:
        tinydl.load(path)
    assert str(path) in str(err.value)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.safetensors"
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        tinydl.load(path)
    with pytest.raises(FileNotFoundError):
        tinydl.load(str(tmp_path / "missing.pt"))
