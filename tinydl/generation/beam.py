"""Beam search (num_beams > 1), as Hugging Face's generate does it: the same candidates, scores, finished
hypotheses, length penalty and early stopping, so the same sequences.

The rows are batch x num_beams (the prompt repeated per beam, as HF expands it). Each step on the GPU: the
log-softmax of the last logits, HF's processors (processors.py's, on log-probabilities as HF applies them),
plus each beam's running score, and the top 2 x num_beams (more with several EOS tokens) over num_beams x
vocabulary candidates per batch item (tinydl.topk); only those scores and indices are read back. The rest of
HF's bookkeeping (which candidates finish, which beams run on, the best finished hypotheses, when to stop)
runs on the host on those few values, with HF's own beam-search helpers of the torch model (transformers'
GenerationMixin), so ties and thresholds are decided as HF decides them. The decode loop then moves each
layer's cache rows to the beams that continue them (`reorder`).
"""
from __future__ import annotations

import numpy as np

from .._tensor import tensor
from ..nn import functional as F
from ..sorting import topk
from .choose import Processors


class BeamChooser:
    """The beam-search choice of every step of one generate call over `batch` items; ids/mask: the rows' input
    ([batch * num_beams, T], each item's rows alike). After the last step, `sequences()` is HF's result."""

    def __init__(self, torch_model, settings, ids: np.ndarray, mask: np.ndarray | None, batch: int,
                 encoder_ids: np.ndarray | None = None):
        import torch
        self.torch, self.model, self.settings = torch, torch_model, settings
        self.ids, self.mask, self.batch, self.encoder_ids = ids, mask, batch, encoder_ids
        s = settings
        nb = self.num_beams = s.num_beams
        self.prompt = ids.shape[1]  # HF's decoder_prompt_len
        self.max_length = self.prompt + s.max_new_tokens
        eos = s.eos_token_id
        self.eos = torch.tensor(eos, dtype=torch.int64) if eos else None
        self.keep = max(2, 1 + len(eos)) * nb  # HF's beams_to_keep
        self.top_num_beam_mask = torch.cat((torch.ones(nb, dtype=torch.bool),
                                            torch.zeros(self.keep - nb, dtype=torch.bool)))
        fill = (s.pad_token_id or eos[0]) if eos else -1  # HF's output_fill_value
        self.running_sequences = torch.full((batch, nb, self.max_length), fill, dtype=torch.int64)
        self.running_sequences[:, :, :self.prompt] = torch.from_numpy(ids).reshape(batch, nb, -1)
        self.sequences = self.running_sequences.clone()
        self.running_beam_scores = torch.zeros((batch, nb), dtype=torch.float)
        self.running_beam_scores[:, 1:] = -1e9
        self.beam_scores = torch.full((batch, nb), -1e9, dtype=torch.float)
        self.is_sent_finished = torch.zeros((batch, nb), dtype=torch.bool)
        self.improvable = torch.ones((batch, 1), dtype=torch.bool)  # HF's is_early_stop_heuristic_unsatisfied
        self.running_beam_indices = torch.full((batch, nb, self.max_length - self.prompt), -1, dtype=torch.int32)
        self.beam_indices = self.running_beam_indices.clone()
        self.processors = None
        self.reorder = None  # the rows each next row continues (the decode loop moves the cache rows)

    def choose(self, out, step: int, length: int, unfinished: np.ndarray) -> np.ndarray:
        """The next token of every row [batch * num_beams]; clears `unfinished` when HF's search would stop."""
        torch, m, s = self.torch, self.model, self.settings
        batch, nb, cur = self.batch, self.num_beams, length
        logits = out[1]
        vocab = logits.shape[-1]
        if self.processors is None:
            self.processors = Processors(s, self.ids, self.mask, vocab, self.encoder_ids)
        forced = s.forced_bos_token_id if length == 1 else None
        if length == self.max_length - 1 and s.forced_eos_token_id is not None:
            forced = s.forced_eos_token_id
        log_probs = self.processors.apply(F.log_softmax(logits.float(), -1), length, always=True, forced=forced)
        running = tensor(self.running_beam_scores.numpy().reshape(-1, 1))
        accumulated = (log_probs + running).reshape(batch, nb * vocab)
        best = topk(accumulated, self.keep)
        values, indices = self.processors.read(best.values, best.indices)
        topk_log_probs = torch.from_numpy(values)
        topk_indices = torch.from_numpy(indices.astype(np.int64))
        # HF's _get_top_k_continuations, from its top-k on
        beam = topk_indices // vocab
        topk_running_beam_indices = m._gather_beams(self.running_beam_indices, beam)
        topk_running_sequences = m._gather_beams(self.running_sequences, beam)
        topk_ids = topk_indices % vocab
        topk_running_sequences[:, :, cur] = topk_ids
        topk_running_beam_indices[:, :, cur - self.prompt] = beam + torch.arange(batch).view(-1, 1) * nb
        # HF's stopping criteria: the length limit, an EOS token
        hits = torch.full(topk_ids.shape, cur + 1 >= self.max_length)
        if self.eos is not None:
            hits = hits | torch.isin(topk_ids, self.eos)
        self.running_sequences, self.running_beam_scores, self.running_beam_indices = \
            m._get_running_beams_for_next_iteration(topk_log_probs, topk_running_sequences,
                                                    topk_running_beam_indices, hits, nb)
        self.sequences, self.beam_scores, self.beam_indices, self.is_sent_finished = m._update_finished_beams(
            self.sequences, topk_running_sequences, self.beam_scores, topk_log_probs, self.beam_indices,
            topk_running_beam_indices, self.improvable, self.is_sent_finished, hits, self.top_num_beam_mask, nb,
            cur, self.prompt, s.length_penalty, s.early_stopping)
        rows = self.running_beam_indices[..., cur - self.prompt].reshape(-1).numpy().astype(np.int64)
        self.reorder = None if np.array_equal(rows, np.arange(len(rows))) else rows
        tokens = self.running_sequences[:, :, cur].reshape(-1).numpy()
        self.processors.advance(tokens, self.reorder)
        self.improvable = m._check_early_stop_heuristic(
            self.improvable, self.running_beam_scores, self.beam_scores, self.is_sent_finished, cur + 1,
            self.max_length, self.prompt, s.early_stopping, s.length_penalty)
        if not m._beam_search_has_unfinished_sequences(self.improvable, self.is_sent_finished, hits,
                                                       s.early_stopping):
            unfinished[:] = False
        return tokens

    def sequences_found(self) -> np.ndarray:
        """HF's result: each item's num_return_sequences best finished hypotheses, cut to the longest."""
        n = self.settings.num_return_sequences
        sequences = self.sequences[:, :n].reshape(self.batch * n, -1)
        beam_indices = self.beam_indices[:, :n].reshape(self.batch * n, -1)
        generated = int((beam_indices + 1).bool().sum(dim=1).max())
        return sequences[:, :self.prompt + generated].numpy()


__all__ = ["BeamChooser"]
