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


# -- bfloat16 alike in both formats; only regular files; every read bounded by the file's size -------------------
def test_bfloat16_safetensors_equals_the_pt_path(tmp_path):
    from safetensors.torch import save_file
    torch.manual_seed(0)
    sd = {"w": torch.randn(4, 3).to(torch.bfloat16), "b": torch.tensor([1.0, -0.0, float("inf"), float("nan")],
                                                                     dtype=torch.bfloat16),
          "steps": torch.tensor([7]), "h": torch.randn(2).half()}
    save_file(sd, str(tmp_path / "w.safetensors"))
    torch.save(sd, tmp_path / "w.pt")
    a, b = tinydl.load(os.fsencode(tmp_path / "w.safetensors")), tinydl.load(str(tmp_path / "w.pt"))  # any path
    assert sorted(a) == sorted(b) == sorted(sd)
    for k, v in sd.items():
        want = v.float().numpy() if v.dtype == torch.bfloat16 else v.numpy()
        for got in (a[k], b[k]):
            assert got.dtype == want.dtype, k
            np.testing.assert_array_equal(got, want)
    m = nn.Linear(3, 4)
    m.load_state_dict({"weight": sd["w"], "bias": sd["w"][:, 0]})  # torch bf16 tensors straight in: the same helper
    np.testing.assert_array_equal(m.weight.numpy(), sd["w"].float().numpy())


@pytest.fixture
def alarm():
    """Fail instead of hanging: a blocking open or an endless read is interrupted after 30 s."""
    import signal

    def timeout(*_):
        raise TimeoutError("tinydl.load did not return")

    old = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(30)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def test_devices_are_refused():
    """In a child process with 2 GB of address space and a timeout: reading /dev/zero without bound (as once)
    fails the test there instead of taking the machine's memory."""
    devices = [d for d in ("/dev/zero", "/dev/urandom", "/dev/null") if os.path.exists(d)]
    code = textwrap.dedent(f"""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
        from tinydl.interop.weights import load
        for d in {devices!r}:
            try:
                load(d)
                print(d, "loaded")
            except ValueError as e:
                print(e)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert len(lines) == len(devices), proc.stdout
    for d, line in zip(devices, lines):
        assert line.startswith(f"{d}: not a regular file"), line


def test_fifo_and_directory_are_refused(alarm, tmp_path):
    fifo = tmp_path / "weights.safetensors"
    os.mkfifo(fifo)  # no writer: a plain open() would block forever
    with pytest.raises(ValueError, match="not a regular file") as err:
        tinydl.load(fifo)
    assert str(fifo) in str(err.value)
    with pytest.raises(IsADirectoryError, match="is a directory"):
        tinydl.load(tmp_path)
    import socket
    sock_path = tmp_path / "w.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        with pytest.raises(ValueError, match="not a regular file"):
            tinydl.load(sock_path)


def _safetensors_bytes(rng):
    from safetensors.numpy import save
    return save({"a": rng.standard_normal((8, 8)).astype(np.float32), "b": np.arange(4, dtype=np.int64)})


def _deep_header(depth: int) -> bytes:
    raw = b'{"a":' + b"[" * depth + b"]" * depth + b"}"
    return len(raw).to_bytes(8, "little") + raw


def _with_header(data: bytes, edit) -> bytes:
    import json
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    edit(header)
    raw = json.dumps(header).encode()
    return len(raw).to_bytes(8, "little") + raw + data[8 + n:]


@pytest.mark.parametrize("damage,cause", [
    (lambda d: (2 ** 62).to_bytes(8, "little") + d[8:], "header length 4611686018427387904 bytes, larger than the file"),
    (lambda d: d[:7], "shorter than the 8-byte header length"),
    (lambda d: d[:8] + b"{" + d[9:30], "larger than the file"),
    (lambda d: d[:-10], "past its end"),
    (lambda d: _with_header(d, lambda h: h["a"].update(data_offsets=[0, 2 ** 40])), "past its end"),
    (lambda d: _with_header(d, lambda h: h["a"].update(shape=[2 ** 20, 2 ** 20])), "needs"),
    # 2^64 elements: a size computed in int64 wraps to 0 bytes, matching the offsets; then a huge allocation
    (lambda d: _with_header(d, lambda h: h["a"].update(shape=[2 ** 32, 2 ** 32], data_offsets=[0, 0])), "needs"),
    (lambda d: _with_header(d, lambda h: h["a"].update(data_offsets=[64, 0])), "data_offsets"),
    (lambda d: _with_header(d, lambda h: h["a"].pop("dtype")), "lacks dtype"),
    (lambda d: d[:8] + b"{not json" + d[17:], "not JSON"),
    (lambda d: _deep_header(40_000), "RecursionError"),
])
def test_truncated_or_corrupt_safetensors_name_the_cause(alarm, tmp_path, rng, damage, cause):
    path = tmp_path / "w.safetensors"
    path.write_bytes(damage(_safetensors_bytes(rng)))
    with pytest.raises(ValueError, match="not a valid safetensors file") as err:
        tinydl.load(path)
    assert str(path) in str(err.value) and cause in str(err.value), str(err.value)


def _lie_about_member_size(data: bytes, member: bytes) -> bytes:
    """A torch zip whose central directory says one member is 1 GB (a file of a few KB cannot hold it)."""
    import struct
    out = bytearray(data)
    i = out.find(b"PK\x01\x02")
    while i >= 0:
        n = struct.unpack_from("<H", out, i + 28)[0]
        if bytes(out[i + 46:i + 46 + n]).endswith(member):
            struct.pack_into("<II", out, i + 20, 2 ** 30, 2 ** 30)
        i = out.find(b"PK\x01\x02", i + 1)
    return bytes(out)


@pytest.mark.parametrize("damage,cause", [
    (lambda d: d[:len(d) // 2], "corrupt or truncated zip"),
    (lambda d: d[:len(d) - 30], "corrupt or truncated zip"),
    (lambda d: _lie_about_member_size(d, b"data/0"), "does not fit in the file"),
    (lambda d: d[:d.find(b"data/0") + 300] + d[d.find(b"data/0") + 1300:], "truncated or corrupt"),
])
def test_truncated_or_corrupt_torch_zip_names_the_cause(alarm, tmp_path, damage, cause):
    path = tmp_path / "w.pt"
    torch.save({"w": torch.randn(64, 64)}, path)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ValueError, match="not a valid torch checkpoint") as err:
        tinydl.load(path)
    assert str(path) in str(err.value) and cause in str(err.value), str(err.value)


@pytest.mark.parametrize("keep", [0.2, 0.5, 0.99])
def test_truncated_legacy_checkpoint_names_the_file(alarm, tmp_path, keep):
    path = tmp_path / "w.pth"
    torch.save({"w": torch.randn(64, 64)}, path, _use_new_zipfile_serialization=False)
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(ValueError, match="not a valid torch checkpoint") as err:
        tinydl.load(path)
    assert str(path) in str(err.value) and "truncated or corrupt" in str(err.value)


def test_legacy_checkpoint_declaring_a_huge_storage_is_refused_before_torch_allocates(tmp_path, monkeypatch):
    """A legacy (pre-zip) checkpoint whose pickle says its storage has 2^31-1 floats (8 GB) in a 40 KB file:
    refused from the sizes alone, before torch.load would allocate it."""
    import struct
    path = tmp_path / "w.pth"
    torch.save({"w": torch.randn(100, 100)}, path, _use_new_zipfile_serialization=False)
    data = bytearray(path.read_bytes())
    i = data.find(b"M\x10\x27")  # the storage's numel, 10000, as a 2-byte pickle int
    assert i > 0
    data[i:i + 3] = b"J" + struct.pack("<i", 2 ** 31 - 1)
    path.write_bytes(bytes(data))
    calls = []
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(1))
    with pytest.raises(ValueError, match="storages declare 8589934588 bytes, more than the file holds") as err:
        tinydl.load(path)
    assert str(path) in str(err.value) and not calls
