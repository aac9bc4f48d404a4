"""F.embedding_bag / nn.EmbeddingBag (tinydl/nn/functional_embedding_bag.py) against torch CPU: sum, mean and max
bags cut by offsets (empty bags, include_last_offset) or fixed-length rows, padding_idx (not counted in a mean; a bag
of padding only gives zeros), per_sample_weights; torch's errors; the layer on both conversion paths."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import tinydl
from tinydl.nn import functional as F
from tinydl.testing import assert_close

INDICES = torch.tensor([1, 2, 4, 5, 4, 3, 2, 9, 4, 4])
OFFSETS = torch.tensor([0, 4, 4, 8])  # the second bag is empty, the last holds padding only (padding_idx 4)


def _t(x):
    return tinydl.tensor(x.numpy().astype(np.int32) if x.dtype == torch.long else x.numpy())


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
@pytest.mark.parametrize("padding_idx", [None, 4, -6])
@pytest.mark.parametrize("include_last_offset", [False, True])
def test_embedding_bag_matches_torch(mode, padding_idx, include_last_offset):
    w = torch.randn(10, 3)
    offsets = torch.cat([OFFSETS, torch.tensor([len(INDICES)])]) if include_last_offset else OFFSETS
    got = F.embedding_bag(_t(INDICES), _t(w), _t(offsets), mode=mode, padding_idx=padding_idx,
                          include_last_offset=include_last_offset)
    want = TF.embedding_bag(INDICES, w, offsets, mode=mode, padding_idx=padding_idx,
                            include_last_offset=include_last_offset)
    assert_close(got, want)


def test_embedding_bag_of_fixed_length_rows_and_sample_weights():
    w, rows = torch.randn(10, 4), INDICES[:8].reshape(2, 4)
    for mode in ("sum", "mean", "max"):
        assert_close(F.embedding_bag(_t(rows), _t(w), mode=mode), TF.embedding_bag(rows, w, mode=mode))
    psw = torch.rand(10)
    assert_close(F.embedding_bag(_t(INDICES), _t(w), _t(OFFSETS), mode="sum", per_sample_weights=_t(psw)),
                 TF.embedding_bag(INDICES, w, OFFSETS, mode="sum", per_sample_weights=psw))


@pytest.mark.parametrize("call,error,message", [
    (lambda w: F.embedding_bag(_t(INDICES), w, _t(OFFSETS), mode="median"), ValueError,
     "mode has to be one of sum, mean or max"),
    (lambda w: F.embedding_bag(_t(INDICES), w), ValueError, "offsets has to be a 1D Tensor but got None"),
    (lambda w: F.embedding_bag(_t(INDICES[:8].reshape(2, 4)), w, _t(OFFSETS)), ValueError,
     "if input is 2D, then offsets has to be None"),
    (lambda w: F.embedding_bag(_t(INDICES), w, _t(torch.tensor([1, 4]))), RuntimeError,
     "offsets\\[0\\] has to be 0, i.e., the first sequence in the mini-batch has to start from position 0. However, "
     "got 1"),
    (lambda w: F.embedding_bag(_t(INDICES), w, _t(OFFSETS), mode="max", per_sample_weights=_t(torch.ones(10))),
     NotImplementedError, "per_sample_weights is only supported for mode='sum' \\(got mode='max'\\)"),
    (lambda w: F.embedding_bag(_t(INDICES[None, None]), w), ValueError,
     "input has to be 1D or 2D Tensor, but got Tensor of dimension 3"),
    (lambda w: F.embedding_bag(_t(INDICES), w, _t(OFFSETS), padding_idx=12), RuntimeError,
     "padding_idx must be within the number of embeddings, -10 through 9, but got 12"),
    # torch's own mean counts indices past the last offset without summing them: refused by name
    (lambda w: F.embedding_bag(_t(INDICES), w, _t(OFFSETS), include_last_offset=True), NotImplementedError,
     "with indices past the last offset \\(10 indices, last offset 8\\)"),
])
def test_embedding_bag_errors_are_torchs(call, error, message):
    with pytest.raises(error, match=message):
        call(_t(torch.randn(10, 3)))


class Bags(torch.nn.Module):
    def __init__(self, mode, traceable):
        super().__init__()
        self.bag = torch.nn.EmbeddingBag(10, 3, mode=mode, padding_idx=4)
        self.head = torch.nn.Linear(3, 2)
        self.traceable = traceable

    def forward(self, x, offsets):
        if not self.traceable:
            for _ in range(x.shape[0]):  # fx cannot trace a loop over a size; torch.export can
                pass
        return self.head(self.bag(x, offsets)) + TF.embedding_bag(x, self.bag.weight, offsets, mode="sum")[:, :2]


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
@pytest.mark.parametrize("path", ["fx", "torch.export"])
def test_embedding_bag_layer_on_both_paths(mode, path):
    m = Bags(mode, path == "fx").eval()
    tm = tinydl.from_torch(m, example_inputs=(INDICES, OFFSETS))
    assert tm.conversion_path == path
    assert_close(tm(_t(INDICES), _t(OFFSETS)), m(INDICES, OFFSETS).detach())
    assert "EmbeddingBag(10, 3, mode='" + mode + "', padding_idx=4)" in repr(tm)
