"""Reading weight files: .safetensors without torch, .pt/.pth with torch.load(weights_only=True) (a pickle that
tries to run code is refused).

Only regular files are read, and every read is bounded by the file's size: a device (/dev/zero), a FIFO or a
directory is refused before anything is read, and a truncated or corrupt file (a header, offset or member size
past the end) is a ValueError naming the file, never a hang or an allocation the file cannot back. bfloat16
becomes float32 on the host in both formats (bf16_to_float32: the same bits, exactly)."""
from __future__ import annotations

import json
import math
import os
import stat
import zipfile

import numpy as np

# safetensors dtype names -> numpy (little-endian, as the format stores them); BF16 is read as its bits
_SAFETENSORS_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4",
                       "I16": "<i2", "I8": "i1", "U8": "u1", "U16": "<u2", "U32": "<u4", "U64": "<u8", "BOOL": "?"}


def bf16_to_float32(bits: np.ndarray) -> np.ndarray:
    """bfloat16 values given as their uint16 bit patterns -> float32 (exact: bf16 is float32's upper half)."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def torch_to_numpy(v) -> np.ndarray:
    """A torch tensor on the host as numpy; bfloat16 (which numpy lacks) through bf16_to_float32."""
    import torch
    v = v.detach().cpu()
    if v.dtype == torch.bfloat16:
        return bf16_to_float32(v.contiguous().view(torch.int16).numpy().view(np.uint16))
    return v.numpy()


def load(path) -> dict:
    """A state_dict (name -> numpy array) from a .safetensors or torch checkpoint file."""
    path = os.fsdecode(os.fspath(path))  # str for the messages and the suffix test, whether given str or bytes
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such weights file: {path}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path}: is a directory, not a weights file")
    not_regular = ValueError(f"{path}: not a regular file (a device, FIFO or socket); tinydl.load reads weight "
                             f"files only")
    if not stat.S_ISREG(os.stat(path).st_mode):  # before opening: a socket cannot be opened at all
        raise not_regular
    # O_NONBLOCK: opening a FIFO (swapped in since the stat) must not wait for a writer; fstat tells what opened
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise not_regular
        size = st.st_size
        head = f.read(min(16, size))
        if len(head) >= 9 and head[8:9] == b"{" or (path.endswith(".safetensors") and size > 0):
            return _load_safetensors(f, path, size)
        if head[:4] == b"PK\x03\x04" or head[:1] == b"\x80":  # torch's zip checkpoints, or legacy raw pickles
            if head[:4] == b"PK\x03\x04":
                _check_zip(f, path, size)
                f.seek(0)
                return _load_torch(f, path)
            _check_legacy(_Bounded(f, size), path, size)
            return _load_torch(_Bounded(f, size), path)
    raise ValueError(f"{path}: neither a safetensors file nor a torch checkpoint (.pt/.pth)")


def _bad(path: str, why: str) -> ValueError:
    return ValueError(f"{path}: not a valid safetensors file ({why})")


def _load_safetensors(f, path: str, size: int) -> dict:
    """The format: an 8-byte little-endian header length n, n bytes of JSON {name: {dtype, shape, data_offsets:
    [begin, end]}} (offsets from the end of the header), then the data. Everything is checked against the file's
    size before any tensor is read."""
    if size < 8:
        raise _bad(path, f"{size} bytes, shorter than the 8-byte header length")
    f.seek(0)
    n = int.from_bytes(f.read(8), "little")
    data_size = size - 8 - n
    if data_size < 0:
        raise _bad(path, f"header length {n} bytes, larger than the file ({size} bytes): truncated or corrupt")
    try:
        header = json.loads(f.read(n))
    except (ValueError, UnicodeDecodeError, RecursionError) as e:  # RecursionError: nested past Python's limit
        raise _bad(path, f"its header is not JSON: {type(e).__name__}: {e}") from None
    if not isinstance(header, dict):
        raise _bad(path, "its header is not a JSON object")
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
        except (TypeError, KeyError, ValueError):
            raise _bad(path, f"tensor '{name}' lacks dtype, shape or data_offsets") from None
        if dtype not in _SAFETENSORS_DTYPES:
            raise ValueError(f"{path}: tensor '{name}' has dtype {dtype}, which tinydl cannot read")
        if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)):
            raise _bad(path, f"tensor '{name}' has shape {shape!r}")
        if not (isinstance(begin, int) and isinstance(end, int) and 0 <= begin <= end):
            raise _bad(path, f"tensor '{name}' has data_offsets {[begin, end]!r}")
        if end > data_size:
            raise _bad(path, f"tensor '{name}' ends at byte {end} of the data, past its end ({data_size} bytes): "
                             f"truncated or corrupt")
        np_dtype = np.dtype(_SAFETENSORS_DTYPES[dtype])
        nbytes = math.prod(shape) * np_dtype.itemsize  # Python ints: a huge shape cannot wrap to a small size
        if end - begin != nbytes:
            raise _bad(path, f"tensor '{name}' of {dtype} shape {shape} needs {nbytes} bytes, its offsets hold "
                             f"{end - begin}")
        arr = np.empty(shape, np_dtype)
        f.seek(8 + n + begin)
        if f.readinto(memoryview(arr.reshape(-1)).cast("B")) != end - begin:
            raise _bad(path, f"tensor '{name}' could not be read in full: the file changed or is truncated")
        out[name] = bf16_to_float32(arr) if dtype == "BF16" else arr
    return out


def _check_zip(f, path: str, size: int) -> None:
    """torch's zip checkpoints: every member must lie inside the file, and a stored (uncompressed, as torch
    writes them) member must be as large as it says, before torch reads (and allocates) any of them."""
    try:
        with zipfile.ZipFile(f) as z:
            members = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise ValueError(f"{path}: not a valid torch checkpoint: a corrupt or truncated zip ({e})") from None
    for m in members:
        if m.header_offset + 30 + len(m.filename) + m.compress_size > size or \
                (m.compress_type == zipfile.ZIP_STORED and m.file_size != m.compress_size):
            raise ValueError(f"{path}: not a valid torch checkpoint: member '{m.filename}' ({m.file_size} bytes) "
                             f"does not fit in the file ({size} bytes): truncated or corrupt")


class _Bounded:
    """A file object for pickles: no read asks for more than the file has left (a length field in a corrupt
    pickle could otherwise ask for terabytes), and no fileno, so torch reads storages through it too."""

    def __init__(self, f, size: int):
        self.f, self.size = f, size
        f.seek(0)

    def read(self, n: int = -1) -> bytes:
        left = max(self.size - self.f.tell(), 0)
        return self.f.read(left if n is None or n < 0 else min(n, left))

    def readinto(self, b) -> int:
        view = memoryview(b).cast("B")
        return self.f.readinto(view[:max(self.size - self.f.tell(), 0)])

    def readline(self, limit: int = -1) -> bytes:
        left = max(self.size - self.f.tell(), 0)
        return self.f.readline(left if limit is None or limit < 0 else min(limit, left))

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.f.seek(offset, whence)

    def tell(self) -> int:
        return self.f.tell()

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True


# bytes per element of torch's legacy typed storages (anything else counts 1: a lower bound)
_STORAGE_ITEM_BYTES = {"DoubleStorage": 8, "FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2,
                       "LongStorage": 8, "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1,
                       "BoolStorage": 1, "ComplexFloatStorage": 8, "ComplexDoubleStorage": 16}


def _check_legacy(f, path: str, size: int) -> None:
    """torch's legacy (pre-zip) format: pickles of a magic number, the protocol, system info and the object,
    whose storages are persistent ids ('storage', type, key, location, numel, ...); torch allocates each before
    reading it. Their sizes are summed here without running anything (every class is a stand-in) and must fit
    in the file. A pickle that is not torch's layout is left to torch.load (and its refusal of code)."""
    import pickle

    class Stand(object):
        def __new__(cls, *args, **kwargs):
            return object.__new__(cls)

        def __init__(self, *args, **kwargs):
            pass

        def __setstate__(self, state):
            pass

        def __setitem__(self, key, value):
            pass

        def append(self, value):
            pass

        def extend(self, values):
            pass

    storages = {}

    class Scan(pickle.Unpickler):
        def find_class(self, module, name):
            return type(name, (Stand,), {})

        def persistent_load(self, pid):
            if isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage" and isinstance(pid[4], int):
                storages[repr(pid[2])] = pid[4] * _STORAGE_ITEM_BYTES.get(getattr(pid[1], "__name__", ""), 1)
            return Stand()

    try:
        for _ in range(4):  # magic number, protocol version, sys info, the object
            Scan(f).load()
    except Exception:  # noqa: BLE001 - not torch's legacy layout: torch.load decides, its errors wrapped
        return
    need = sum(storages.values())
    if need > size:
        raise ValueError(f"{path}: not a valid torch checkpoint: its storages declare {need} bytes, more than the "
                         f"file holds ({size} bytes): truncated or corrupt")


def _load_torch(f, path: str) -> dict:
    import pickle

    try:
        import torch
    except ModuleNotFoundError as e:
        raise ImportError(f"{path}: a torch checkpoint, and reading one needs torch, which is not installed: pip "
                          f"install 'tinydl[torch]' (or save the weights as .safetensors, which load without "
                          f"it)") from e
    try:
        obj = torch.load(f, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise pickle.UnpicklingError(
            f"{path}: refused to load: the file holds pickled objects other than tensors, and unpickling them "
            f"could run arbitrary code (tinydl only loads with torch.load(weights_only=True)). Details: "
            f"{str(e).splitlines()[0]}") from e
    except Exception as e:  # noqa: BLE001 - whatever torch's reader trips on in a damaged file
        raise ValueError(f"{path}: not a valid torch checkpoint: truncated or corrupt "
                         f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from e
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a state_dict (a dict of tensors), found {type(obj).__name__}")
    return {k: torch_to_numpy(v) for k, v in obj.items() if isinstance(v, torch.Tensor)}
