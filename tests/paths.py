"""A torch function or module wrapped so that from_torch takes a chosen path: a loop over a size keeps fx from
tracing it (torch.export then converts it), as tests/test_conversion_paths.py does."""
import torch

import tinydl
from tinydl.testing import assert_close


class OnPath(torch.nn.Module):
    def __init__(self, fn, path: str):
        super().__init__()
        self.fn, self.traceable = fn, path == "fx"

    def run(self, *xs):
        if not self.traceable:
            for _ in range(xs[0].shape[0]):  # fx cannot trace this loop; torch.export can
                pass
        return self.fn(*xs)


class OnPath1(OnPath):  # fx needs named inputs (it cannot trace a forward(*xs))
    def forward(self, x):
        return self.run(x)


class OnPath2(OnPath):
    def forward(self, x, y):
        return self.run(x, y)


class OnPath3(OnPath):
    def forward(self, x, y, z):
        return self.run(x, y, z)


def check_paths(fn, *xs, path: str, **tol) -> None:
    """fn (a torch function or module) converted on `path` gives torch's result on xs."""
    m = (OnPath1, OnPath2, OnPath3)[len(xs) - 1](fn, path).eval()
    # on fx, no example inputs: an op fx's table misses is listed then (not hidden by the export fallback)
    tm = tinydl.from_torch(m) if path == "fx" else tinydl.from_torch(m, example_inputs=xs)
    assert tm.conversion_path == path
    got, want = tm(*(tinydl.tensor(x.numpy()) for x in xs)), m(*xs)
    if isinstance(want, tuple):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert_close(g, w.detach(), **tol)
    else:
        assert_close(got, want.detach(), **tol)
