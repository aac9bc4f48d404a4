"""tm.generate on converted encoder-decoders whose encoder reads float features, not ids (input_features,
pixel_values):
Whisper, whose HF class has a generate of its own (init tokens for language and task, language detection,
EOS stripped and right padding), run as HF runs it with tinydl generating underneath; Speech2Text, through
tinydl's own encoder-decoder loop, with and without the features' padding mask; an image encoder-decoder (ViT
encoder, GPT-2 decoder with cross-attention: TrOCR's and Donut's shape). Greedy tokens equal to HF's on torch CPU
at float32.

Tiny random configs (HF_HUB_OFFLINE=1), attn_implementation="eager", weights drawn wide (init_std=0.5) so that
the tokens depend on the input.
"""
import os

os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from tinydl.interop.torchvision_compat import import_torchvision  # noqa: E402

import_torchvision()  # before transformers, which may import torchvision

import transformers  # noqa: E402

import tinydl  # noqa: E402
from tinydl import debug, generation  # noqa: E402

transformers.logging.set_verbosity_error()

LAYERS = dict(vocab_size=100, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
              decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, init_std=0.5,
              attn_implementation="eager")
SOT, EOS, LANGS, TASKS, NO_TIMESTAMPS = 1, 2, {"<|en|>": 3, "<|de|>": 4}, {"transcribe": 5, "translate": 6}, 7


def features(batch=2, frames=32, mels=8, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).standard_normal((batch, mels, frames)).astype(np.float32))


def whisper_model(multilingual: bool):
    """multilingual: with the generation settings of a multilingual checkpoint (language and task tokens,
    no-timestamps)."""
    torch.manual_seed(0)
    cfg = transformers.WhisperConfig(**LAYERS, num_mel_bins=8, max_source_positions=16, max_target_positions=32,
                                     decoder_start_token_id=SOT, eos_token_id=EOS, pad_token_id=0, bos_token_id=SOT,
                                     suppress_tokens=[8, 9], begin_suppress_tokens=[10])
    m = transformers.WhisperForConditionalGeneration(cfg).eval()
    if multilingual:
        gc = m.generation_config
        gc.lang_to_id, gc.task_to_id, gc.is_multilingual, gc.no_timestamps_token_id = LANGS, TASKS, True, NO_TIMESTAMPS
    return m, tinydl.from_torch(m)


@pytest.fixture(scope="module")
def whisper():
    return whisper_model(False)


@pytest.fixture(scope="module")
def whisper_multilingual():
    return whisper_model(True)


def hf_generate(m, *args, **kwargs):
    with torch.no_grad():
        return m.generate(*args, **kwargs)


def test_whisper_matches_hf(whisper):
    m, tm = whisper
    x = features()
    ref = hf_generate(m, x, max_new_tokens=8)
    assert len(set(ref.ravel().tolist())) > 3 and not torch.equal(ref[0], ref[1])  # not a degenerate run
    out = tm.generate(x, max_new_tokens=8)
    assert isinstance(out, torch.Tensor)
    np.testing.assert_array_equal(out.numpy(), ref.numpy())
    as_numpy = tm.generate(x.numpy(), max_new_tokens=8)  # numpy in, numpy out
    assert isinstance(as_numpy, np.ndarray)
    np.testing.assert_array_equal(as_numpy, ref.numpy())
    assert type(m) is transformers.WhisperForConditionalGeneration  # the class swap is undone


@pytest.mark.parametrize("kwargs", [
    dict(language="de"), dict(language="en", task="translate"), dict(language=["en", "de"]),
    dict(),  # no language: HF's detection (in torch) picks it
    dict(language="en", eos_token_id=51),  # EOS mid-sequence: HF strips it and pads the row
    dict(language="en", num_beams=3),  # beam search underneath Whisper's generate
    dict(language="en", no_repeat_ngram_size=2, repetition_penalty=1.3),  # processors over the init tokens too
], ids=["de", "translate", "per-row", "detected", "eos", "beams", "processors"])
def test_whisper_language_and_task_tokens_as_hf(whisper_multilingual, kwargs):
    m, tm = whisper_multilingual
    x = features(seed=1)
    ref = hf_generate(m, x, max_new_tokens=6, **kwargs)
    np.testing.assert_array_equal(tm.generate(x, max_new_tokens=6, **kwargs).numpy(), ref.numpy())


def test_whisper_detects_the_language_on_the_gpu(whisper_multilingual, monkeypatch):
    """Without a language, a multilingual Whisper detects it per row: tinydl's detection (encoder and first decoder
    step on the GPU) gives HF's language tokens, and the torch model does not run (besides torch.export's
    conversions)."""
    m, tm = whisper_multilingual
    x = features(batch=4, seed=9)  # language logits apart by 1.2 or more in every row
    ref = hf_generate(m, x, max_new_tokens=5)
    with torch.no_grad():
        assert len(set(m.detect_language(x).tolist())) == 2  # rows of both languages
    np.testing.assert_array_equal(tm.generate(x, max_new_tokens=5).numpy(), ref.numpy())
    # once the steps are converted (torch.export runs the torch model), a call runs no torch forward
    monkeypatch.setattr(transformers.WhisperForConditionalGeneration, "forward",
                        lambda *a, **k: pytest.fail("the torch model ran"))
    np.testing.assert_array_equal(tm.generate(x, max_new_tokens=5).numpy(), ref.numpy())


def test_whisper_decoding_plans_nothing_new_and_streams(whisper):
    m, tm = whisper
    marks, streamed = [], []
    out = tm.generate(features(), max_new_tokens=10, streamer=lambda t: marks.append(dict(debug.stats))
                      or streamed.append(t))
    assert len(marks) == 10 and marks[3] == marks[-1], "decoder steps after the first planned or compiled"
    np.testing.assert_array_equal(np.stack(streamed, 1), out.numpy())  # (Whisper's result: the new tokens)
    with pytest.raises(NotImplementedError, match="WhisperForConditionalGeneration has a generate of its own"):
        next(generation.stream(tm, features(), max_new_tokens=2))


def test_whisper_unsupported_options_are_named(whisper_multilingual):
    m, tm = whisper_multilingual
    with pytest.raises(NotImplementedError, match="logits processor WhisperTimeStampLogitsProcessor is not supported"):
        tm.generate(features(), max_new_tokens=4, language="en", return_timestamps=True)
    assert type(m) is transformers.WhisperForConditionalGeneration
    with pytest.raises(NotImplementedError, match=r"output_scores=True.*not supported"):
        tm.generate(features(), max_new_tokens=4, language="en", output_scores=True)
    with pytest.raises(NotImplementedError, match=r"stopping_criteria=\['MaxTimeCriteria'\] not supported"):
        tm.generate(features(), max_new_tokens=4, stopping_criteria=transformers.StoppingCriteriaList(
            [transformers.MaxTimeCriteria(10)]))


def test_speech2text_features_with_and_without_mask():
    torch.manual_seed(0)
    cfg = transformers.Speech2TextConfig(**LAYERS, input_feat_per_channel=8, input_channels=1,
                                         max_source_positions=64, max_target_positions=32, conv_channels=16)
    m = transformers.Speech2TextForConditionalGeneration(cfg).eval()
    x = torch.randn(2, 20, 8)  # [batch, frames, features]
    mask = torch.ones(2, 20, dtype=torch.long)
    mask[1, 14:] = 0
    tm = tinydl.from_torch(m)
    kwargs = dict(max_new_tokens=8, eos_token_id=97)
    masked, unmasked = hf_generate(m, x, attention_mask=mask, **kwargs), hf_generate(m, x, **kwargs)
    assert len(set(masked.ravel().tolist())) > 3 and not torch.equal(masked[1], unmasked[1])  # the mask matters
    np.testing.assert_array_equal(tm.generate(x, attention_mask=mask, **kwargs).numpy(), masked.numpy())
    np.testing.assert_array_equal(tm.generate(x.numpy(), **kwargs), unmasked.numpy())
    with pytest.raises(ValueError, match=r"input_features must be a float array of shape \[batch, \.\.\.\]"):
        tm.generate(np.ones((2, 3), np.int64), max_new_tokens=2)


def test_image_encoder_decoder():
    torch.manual_seed(0)
    encoder = transformers.ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                                     image_size=32, patch_size=8)
    decoder = transformers.GPT2Config(n_embd=32, n_layer=2, n_head=4, vocab_size=100, n_positions=64,
                                      add_cross_attention=True, is_decoder=True, initializer_range=0.5)
    cfg = transformers.VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    cfg.decoder_start_token_id, cfg.pad_token_id, cfg.eos_token_id = 1, 0, 97
    m = transformers.VisionEncoderDecoderModel(cfg).eval()
    m.config._attn_implementation = "eager"
    x = torch.randn(2, 3, 32, 32)
    ref = hf_generate(m, x, max_new_tokens=8)
    assert len(set(ref.ravel().tolist())) > 3 and not torch.equal(ref[0], ref[1])
    tm = tinydl.from_torch(m, example_inputs=((), {"pixel_values": x, "decoder_input_ids": torch.ones(2, 3, dtype=torch.long)}))
    np.testing.assert_array_equal(tm.generate(x, max_new_tokens=8).numpy(), ref.numpy())
