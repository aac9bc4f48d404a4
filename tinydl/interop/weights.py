"""Reading weight files: .safetensors without torch, .pt/.pth with torch.load(weights_only=True) (a pickle that
tries to run code is refused)."""
from __future__ import annotations

import os
import zipfile



def load(path) -> dict:
    """A state_dict (name -> numpy array) from a .safetensors or torch checkpoint file."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such weights file: {path}")
    with open(path, "rb") as f:
        head = f.read(16)
    if _is_safetensors(path, head):
        from safetensors.numpy import load_file
        try:
            return dict(load_file(path))
        except Exception as e:
            raise ValueError(f"{path}: not a valid safetensors file ({e})") from e
    if zipfile.is_zipfile(path) or head[:1] == b"\x80":  # torch's zip checkpoints, or legacy raw pickles
        return _load_torch(path)
    raise ValueError(f"{path}: neither a safetensors file nor a torch checkpoint (.pt/.pth)")


def _is_safetensors(path: str, head: bytes) -> bool:
    if len(head) < 9:
        return False
    n = int.from_bytes(head[:8], "little")
    return head[8:9] == b"{" and 0 < n < os.path.getsize(path)


def _load_torch(path: str) -> dict:
    import pickle

    import torch
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise pickle.UnpicklingError(
            f"{path}: refused to load: the file holds pickled objects other than tensors, and unpickling them "
            f"could run arbitrary code (tinydl only loads with torch.load(weights_only=True)). Details: "
            f"{str(e).splitlines()[0]}") from e
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a state_dict (a dict of tensors), found {type(obj).__name__}")
    out = {}
    for k, v in obj.items():
        if isinstance(v, torch.Tensor):
            out[k] = (v.float() if v.dtype == torch.bfloat16 else v).detach().cpu().numpy()
    return out
