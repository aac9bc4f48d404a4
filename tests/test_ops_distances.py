"""cosine_similarity, pairwise_distance, cdist and nn.CosineSimilarity / nn.PairwiseDistance: parity with torch
CPU (broadcasting, size-0 and size-1 dims, every p cdist takes, both of its compute paths), torch's errors,
both from_torch paths."""
import pytest
import torch

import tinydl
from tinydl import nn
from tinydl.nn import functional as F
from tinydl.testing import assert_close

from paths import check_paths


def _t(x):
    return tinydl.tensor(x.numpy())


@pytest.mark.parametrize("s1,s2,dim", [((4, 7), (4, 7), 1), ((3, 5, 4), (5, 1), 1), ((2, 1, 6), (3, 6), -1),
                                       ((0, 3), (1, 3), 1), ((5, 1), (5, 1), 0)])
def test_cosine_similarity(s1, s2, dim):
    a, b = torch.randn(s1), torch.randn(s2)
    want = torch.cosine_similarity(a, b, dim)
    assert_close(F.cosine_similarity(_t(a), _t(b), dim), want)
    assert_close(tinydl.cosine_similarity(_t(a), _t(b), dim), want)
    assert_close(nn.CosineSimilarity(dim)(_t(a), _t(b)), torch.nn.CosineSimilarity(dim)(a, b))


def test_cosine_similarity_of_zero_vectors_uses_eps():
    a = torch.zeros(2, 3)
    a[1, 0] = 1e-9
    assert_close(F.cosine_similarity(_t(a), _t(a), eps=1e-8), torch.cosine_similarity(a, a, eps=1e-8))


@pytest.mark.parametrize("s1,s2", [((4, 7), (4, 7)), ((3, 5, 4), (5, 4)), ((6,), (6,)), ((2, 3), (1, 3)),
                                   ((0, 3), (1, 3))])
@pytest.mark.parametrize("p,keepdim", [(2.0, False), (1.0, True), (3.0, False), (float("inf"), False)])
def test_pairwise_distance(s1, s2, p, keepdim):
    a, b = torch.randn(s1), torch.randn(s2)
    want = torch.pairwise_distance(a, b, p, 1e-6, keepdim)
    assert_close(F.pairwise_distance(_t(a), _t(b), p, 1e-6, keepdim), want)
    assert_close(nn.PairwiseDistance(p, keepdim=keepdim)(_t(a), _t(b)),
                 torch.nn.PairwiseDistance(p, keepdim=keepdim)(a, b))


@pytest.mark.parametrize("s1,s2", [((5, 7), (4, 7)), ((2, 3, 4), (1, 6, 4)), ((30, 3), (5, 3)), ((1, 1), (40, 1)),
                                   ((0, 3), (4, 3)), ((3, 0), (2, 0))])
@pytest.mark.parametrize("p", [2.0, 1.0, 0.0, float("inf"), 1.5])
def test_cdist(s1, s2, p):
    a, b = torch.randn(s1), torch.randn(s2)
    # the mm form (p = 2, past 25 rows) cancels |a|^2 + |b|^2 - 2ab in float32: torch's own error there
    assert_close(tinydl.cdist(_t(a), _t(b), p), torch.cdist(a, b, p), atol=1e-4 if p == 2 else 1e-5)


@pytest.mark.parametrize("mode", ["use_mm_for_euclid_dist", "donot_use_mm_for_euclid_dist",
                                  "use_mm_for_euclid_dist_if_necessary"])
def test_cdist_compute_modes(mode):
    a, b = torch.randn(2, 6, 5), torch.randn(2, 3, 5)
    assert_close(tinydl.cdist(_t(a), _t(b), compute_mode=mode), torch.cdist(a, b, compute_mode=mode), atol=1e-4)


@pytest.mark.parametrize("call,exc,message", [
    (lambda: tinydl.cdist(tinydl.zeros(2, 3), tinydl.zeros(3, 4)), RuntimeError,
     "X1 and X2 must have the same number of columns. X1: 3 X2: 4"),
    (lambda: tinydl.cdist(tinydl.zeros(3), tinydl.zeros(3, 3)), RuntimeError,
     "cdist only supports at least 2D tensors, X1 got: 1D"),
    (lambda: tinydl.cdist(tinydl.zeros(2, 3), tinydl.zeros(3, 3), p=-1), RuntimeError,
     "cdist only supports non-negative p values"),
    (lambda: tinydl.cdist(tinydl.zeros(2, 3, dtype=tinydl.int32), tinydl.zeros(3, 3)), RuntimeError,
     "cdist only supports floating-point dtypes, X1 got: Long"),
    (lambda: tinydl.cdist(tinydl.zeros(2, 3), tinydl.zeros(3, 3), compute_mode="fast"), ValueError,
     "fast is not a valid value for compute_mode"),
    (lambda: F.cosine_similarity(tinydl.zeros(2, 3), tinydl.zeros(3, 3)), RuntimeError,
     r"The size of tensor a \(2\) must match the size of tensor b \(3\) at non-singleton dimension 0"),
    (lambda: F.cosine_similarity(tinydl.zeros(2, 3, dtype=tinydl.int32), tinydl.zeros(2, 3, dtype=tinydl.int32)),
     RuntimeError, "expected common dtype to be floating point, yet common dtype is Long"),
    (lambda: F.cosine_similarity(tinydl.zeros(2, 3), tinydl.zeros(2, 3), 2), IndexError,
     r"Dimension out of range \(expected to be in range of \[-2, 1\], but got 2\)"),
    (lambda: F.pairwise_distance(tinydl.zeros(2, 3), tinydl.zeros(3, 3)), RuntimeError,
     r"The size of tensor a \(2\) must match the size of tensor b \(3\) at non-singleton dimension 0"),
])
def test_errors(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


class Family(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.cos, self.dist = torch.nn.CosineSimilarity(dim=-1), torch.nn.PairwiseDistance(p=1.0, keepdim=True)

    def forward(self, x, y):
        return (self.cos(x, y), self.dist(x, y), torch.cdist(x, y), torch.cdist(x, y, p=1.0),
                torch.nn.functional.cosine_similarity(x, y, 1), torch.pairwise_distance(x, y))


@pytest.mark.parametrize("path", ["fx", "torch.export"])
def test_both_paths(path):
    check_paths(Family(), torch.randn(2, 4, 5), torch.randn(2, 3, 5)[:, :1].expand(2, 4, 5).contiguous(), path=path,
                atol=1e-4)


@pytest.mark.parametrize("p", [2, 1, 0, 3.5, float("inf"), -float("inf")])
def test_dist(p):
    a, b = torch.randn(3, 5), torch.randn(5)  # broadcast together
    want = torch.dist(a, b, p)
    assert_close(tinydl.dist(_t(a), _t(b), p), want)
    assert_close(_t(a).dist(_t(b), p), want)


def test_dist_errors():
    with pytest.raises(TypeError, match=r"dist\(\): argument 'p' \(position 3\) must be Number, not str"):
        tinydl.dist(tinydl.ones(2), tinydl.ones(2), "fro")
    with pytest.raises(RuntimeError, match="norm\\(\\): input dtype should be either floating point or complex. "
                                           "Got Long instead."):
        tinydl.dist(tinydl.tensor([1, 2]), tinydl.tensor([3, 4]))
    with pytest.raises(RuntimeError, match="The size of tensor a \\(2\\) must match the size of tensor b \\(3\\)"):
        tinydl.dist(tinydl.ones(2), tinydl.ones(3))


@pytest.mark.parametrize("path", ["fx", "torch.export"])
def test_dist_both_paths(path):
    check_paths(lambda x, y: torch.dist(x, y, 3), torch.randn(4, 6), torch.randn(6), path=path)
