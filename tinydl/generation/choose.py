"""Each step's next tokens from the step's outputs (its argmax [B] and last logits [B, V]): Hugging Face's logits
processors, then greedy or sampled choice, then the forced tokens and padding of finished sequences.

The processors run on the GPU, in HF's order, on the float32 logits: repetition_penalty (the tokens seen so
far, without a row's left padding, as a [B, V] mask kept on the GPU and updated with each step's tokens),
no_repeat_ngram_size (the n-gram ends to ban found on the host, where the tokens are, a few ids per row),
min_length / min_new_tokens (EOS suppressed while too short), suppress_tokens, begin_suppress_tokens (at the
first generated position), sequence_bias and bad_words_ids (first: a bias on a sequence's last token where a row's
tokens end with the rest of it, matched on the host). Greedy search without any of them reads the step's own
argmax; otherwise the argmax, or the draw (sampling.py), is one more kernel over the processed logits, realized
with the updated mask in one submit; only the token ids are read back.
"""
from __future__ import annotations

import numpy as np

from .._tensor import any as any_, arange, argmax, tensor, where
from ..indexing import gather_rows
from ..schedule import realize
from . import sampling


def _token_mask(tokens, vocab: int):
    """A [V] bool tensor, True at tokens (ids outside the vocabulary: none), or None for no tokens."""
    tokens = [t for t in tokens or () if 0 <= t < vocab]
    if not tokens:
        return None
    mask = np.zeros(vocab, bool)
    mask[tokens] = True
    return tensor(mask)


def _padded(rows: list, fill, dtype):
    """Ragged per-row lists as one [R, M] array, `fill` past each row's end; None where every row is empty."""
    width = max(map(len, rows))
    if not width:
        return None
    out = np.full((len(rows), width), fill, dtype)
    for r, values in enumerate(rows):
        out[r, :len(values)] = values
    return out


class Processors:
    """HF's logits processors over the rows of one generate call. ids [R, T] / mask [R, T] or None: the
    sequences the tokens extend (a decoder-only model's prompt; an encoder-decoder's decoder start tokens);
    encoder_ids [B, S] or None: the input ids of the call (a decoder-only model's prompt, an encoder's ids), one
    row per input, whose n-grams encoder_no_repeat_ngram_size bans (None: the encoder reads no ids)."""

    def __init__(self, settings, ids: np.ndarray, mask: np.ndarray | None, vocab: int,
                 encoder_ids: np.ndarray | None = None):
        self.settings, self.vocab = settings, vocab
        self.input_length = ids.shape[1]
        s = settings
        self.seen = None  # [R, V] bool: the tokens the repetition penalty applies to
        if s.repetition_penalty != 1.0:
            # HF ignores each row's left padding (positions before its mask's first 1)
            start = (mask != 0).argmax(1) if mask is not None else np.zeros(len(ids), int)
            seen = np.zeros((len(ids), vocab), bool)
            for row, (first, row_ids) in enumerate(zip(start, ids)):
                kept = row_ids[first:]
                seen[row, kept[(kept >= 0) & (kept < vocab)]] = True
            self.seen = tensor(seen)
        self.eos = _token_mask(s.eos_token_id, vocab) if (s.min_length or s.min_new_tokens) else None
        self.suppress = _token_mask(s.suppress_tokens, vocab)
        self.begin_suppress = _token_mask(s.begin_suppress_tokens, vocab)
        # HF: the first generated position, one later when a forced BOS token takes it after a 1-token input
        self.begin_index = self.input_length + (self.input_length == 1 and s.forced_bos_token_id is not None)
        # no_repeat_ngram_size: the rows' tokens so far, on the host (HF counts the prompt and its padding too)
        # encoder_no_repeat_ngram_size: per input row, each n-gram of its ids: its first n - 1 tokens -> the last ones
        self.encoder_ngrams = None
        if s.encoder_no_repeat_ngram_size and encoder_ids is not None:
            n = s.encoder_no_repeat_ngram_size
            self.encoder_ngrams = []
            for row in encoder_ids.tolist():
                grams: dict[tuple, list] = {}
                for g in zip(*[row[i:] for i in range(n)]):
                    grams.setdefault(tuple(g[:-1]), []).append(g[-1])
                self.encoder_ngrams.append(grams)
            self.rows_per_input = len(ids) // len(encoder_ids)  # (beams and returned sequences repeat the rows)
        # sequence_bias / bad_words_ids: single tokens' biases as one [V] tensor; longer sequences matched per step
        # against the rows' last tokens on the host
        out_of_vocabulary = sorted({t for seq, _ in s.sequence_bias for t in seq if t >= vocab})
        if out_of_vocabulary:
            raise ValueError(f"The model vocabulary size is {vocab}, but the following tokens were being biased: "
                             f"{out_of_vocabulary}")
        self.single_bias = None
        singles = [(seq[0], bias) for seq, bias in s.sequence_bias if len(seq) == 1]
        if singles:
            bias = np.zeros(vocab, np.float32)
            for token, b in singles:
                bias[token] = -np.inf if bias[token] == -np.inf else b  # a bad word stays banned
            self.single_bias = tensor(bias)
        self.sequence_biases = [(seq[:-1], seq[-1], bias) for seq, bias in s.sequence_bias if len(seq) > 1]
        self.sequences = ids.copy() if s.no_repeat_ngram_size or self.encoder_ngrams is not None \
            or self.sequence_biases else None

    def idle(self) -> bool:
        """No processor is configured: apply() never changes the scores (and advance() keeps nothing)."""
        return all(x is None for x in (self.seen, self.sequences, self.eos, self.suppress, self.begin_suppress,
                                       self.single_bias))

    def advance(self, tokens: np.ndarray, rows: np.ndarray | None = None) -> None:
        """The rows' next tokens [R] are chosen (rows: which earlier row each continues, beam search's reorder)."""
        if self.sequences is not None:
            before = self.sequences if rows is None else self.sequences[rows]
            self.sequences = np.concatenate([before, tokens.astype(np.int64)[:, None]], 1)
        if self.seen is None:
            return
        seen = self.seen if rows is None else gather_rows(self.seen, tensor(rows.astype(np.int32)))
        self.seen = seen | (arange(self.vocab) == tensor(tokens.astype(np.int32)[:, None]))

    def apply(self, scores, length: int, always: bool = False, forced: int | None = None):
        """The processed float32 scores for the token at position `length`; None where no processor applies
        (unless `always`). forced: a token HF's ForcedBOS/ForcedEOS processor forces here (beam search; the
        greedy and sampling chooser sets it directly)."""
        s = self.settings
        too_short = self.eos is not None and (length < s.min_length or
                                              length - self.input_length < s.min_new_tokens)
        suppressed = [m for m, on in ((self.suppress, True), (self.begin_suppress, length == self.begin_index))
                      if m is not None and on]
        repeats = self._repeated_ngram_ends(length)
        biased = self._sequence_ends()
        if self.seen is None and repeats is None and not too_short and not suppressed and not always \
                and forced is None and self.single_bias is None and biased is None:
            return None
        scores = scores.float()
        if self.single_bias is not None:  # sequence_bias (and bad words) of one token
            scores = scores + self.single_bias
        if biased is not None:  # ... and of several, where a row's tokens end with all but their last
            tokens, biases = biased
            scores = scores + where(arange(self.vocab) == tensor(tokens)[:, :, None], tensor(biases)[:, :, None],
                                    0.0).sum(1)
        if self.seen is not None:
            p = s.repetition_penalty
            scores = where(self.seen, where(scores < 0, scores * p, scores / p), scores)
        if repeats is not None:  # (encoder_)no_repeat_ngram_size: tokens that would repeat an n-gram
            scores = where(any_(arange(self.vocab) == tensor(repeats)[:, :, None], 1), float("-inf"), scores)
        if too_short:  # min_length / min_new_tokens: no EOS yet
            scores = where(self.eos, float("-inf"), scores)
        if forced is not None:
            scores = where(arange(self.vocab) == forced, 0.0, float("-inf"))
        for mask in suppressed:
            scores = where(mask, float("-inf"), scores)
        return scores

    def _sequence_ends(self):
        """HF's SequenceBiasLogitsProcessor's sequences of 2+ tokens (bad words among them, at -inf): per row, the
        last tokens of those whose other tokens end the row ([R, M] int32, -1 padded) and their biases ([R, M]
        float32), or None where none do."""
        if not self.sequence_biases:
            return None
        rows = self.sequences.tolist()
        found = [[(last, bias) for prefix, last, bias in self.sequence_biases
                  if len(prefix) <= len(row) and tuple(row[len(row) - len(prefix):]) == prefix] for row in rows]
        tokens = _padded([[last for last, _ in ends] for ends in found], -1, np.int32)
        return None if tokens is None else (tokens, _padded([[b for _, b in ends] for ends in found], 0, np.float32))

    def _repeated_ngram_ends(self, length: int):
        """HF's NoRepeatNGramLogitsProcessor and EncoderNoRepeatNGramLogitsProcessor: per row, the tokens that
        would complete an n-gram the row already has, or one its input's ids have ([R, M] int32, -1 padded), or
        None where none would."""
        if self.sequences is None:
            return None
        n, m = self.settings.no_repeat_ngram_size, self.settings.encoder_no_repeat_ngram_size
        banned = []
        for r, row in enumerate(self.sequences.tolist()):
            ends = []
            if n and length + 1 >= n:
                prefix = tuple(row[len(row) - n + 1:]) if n > 1 else ()
                ends += [g[-1] for g in zip(*[row[i:] for i in range(n)]) if tuple(g[:-1]) == prefix]
            if self.encoder_ngrams is not None and length + 1 >= m:
                ends += self.encoder_ngrams[r // self.rows_per_input].get(tuple(row[len(row) - m + 1:]) if m > 1 else (), [])
            banned.append(ends)
        return _padded(banned, -1, np.int32)

    def read(self, *tensors) -> list[np.ndarray]:
        """The tensors' values, computed with the updated `seen` mask in one plan (one tensor and no mask: its
        kernels and its read-back in one submit)."""
        if self.seen is not None or len(tensors) > 1:
            realize(*tensors, *([self.seen] if self.seen is not None else []))
        return [t.numpy() for t in tensors]


class TokenChooser:
    """Greedy or sampled choice of every step of one generate call (rows: its sequences)."""

    reorder = None  # (beam search's chooser reorders the cache rows; this one never does)

    def __init__(self, settings, rng, ids: np.ndarray, mask: np.ndarray | None, encoder_ids=None):
        self.settings, self.rng, self.ids, self.mask, self.encoder_ids = settings, rng, ids, mask, encoder_ids
        self.processors = None  # made at the first step, which tells the vocabulary

    def _forced(self, step: int, length: int) -> int | None:
        s = self.settings
        if step == s.max_new_tokens - 1 and s.forced_eos_token_id is not None:
            return s.forced_eos_token_id
        return s.forced_bos_token_id if length == 1 else None

    def _processors(self, vocab: int) -> Processors:
        if self.processors is None:
            self.processors = Processors(self.settings, self.ids, self.mask, vocab, self.encoder_ids)
        return self.processors

    def token_on_gpu(self, out, step: int, length: int, unfinished: np.ndarray):
        """This step's tokens as a GPU tensor [B] where nothing on the host decides them (no logits processor at
        work, no forced token here, no sequence finished: a finished one gets pad_token_id): the step's argmax
        (greedy) or the GPU draw (sampling, its uniforms drawn here); None otherwise. The loop then feeds it to the
        next step on the GPU before the host reads it (choose(..., token_ids=) later)."""
        s = self.settings
        logits = out[1]
        if not unfinished.all() or self._forced(step, length) is not None or not self._processors(
                logits.shape[-1]).idle():
            return None
        if not s.do_sample:
            return out[0]
        if not sampling.fits_gpu(logits.shape[-1], s.top_k, s.top_p):
            return None
        u = self.rng.random(logits.shape[0])  # the numbers choose would draw for this step
        return sampling.sample_on_gpu(logits, u, s.temperature, s.top_k, s.top_p, s.min_p)

    def choose(self, out, step: int, length: int, unfinished: np.ndarray,
               token_ids: np.ndarray | None = None) -> np.ndarray:
        """The next token ids [B] (int64) from a step's outputs; length: the sequence's length before this token.
        unfinished [B] loses the sequences this token ends (EOS). token_ids: token_on_gpu's tokens, read back."""
        s = self.settings
        forced = self._forced(step, length)
        logits = out[1]
        proc = self._processors(logits.shape[-1])
        processed = None if token_ids is not None else proc.apply(logits, length)
        scores = logits if processed is None else processed
        if token_ids is not None:
            token = token_ids
        elif forced is not None:
            token = np.full(logits.shape[0], forced, np.int64)
        elif s.do_sample and sampling.fits_gpu(logits.shape[-1], s.top_k, s.top_p):
            u = self.rng.random(logits.shape[0])  # (the host draw below takes the same numbers)
            token = proc.read(sampling.sample_on_gpu(scores, u, s.temperature, s.top_k, s.top_p, s.min_p))[0]
        elif s.do_sample:
            token = sampling.sample(proc.read(scores)[0], self.rng, s.temperature, s.top_k, s.top_p, s.min_p)
        elif processed is not None:
            token = proc.read(argmax(processed, -1))[0]
        else:
            token = out[0].numpy()
        token = token.astype(np.int64)
        if s.pad_token_id is not None:
            token = np.where(unfinished, token, s.pad_token_id)
        unfinished &= ~np.isin(token, s.eos_token_id)
        proc.advance(token)
        return token


__all__ = ["TokenChooser"]
