"""Text generation throughput: tinydl's generate (KV cache on the GPU) vs Hugging Face's generate in torch (CUDA
when available, else CPU), greedy, side by side.

    python -m benchmarks.generate              # GPT-2 124M and a TinyLlama-1.1B-shaped Llama, batch 1 and 8
    python -m benchmarks.generate --quick      # the same models, a short prompt, few tokens and runs
    python -m benchmarks.generate --tiny       # 2-layer models of width 64: a smoke test (lavapipe)
    python -m benchmarks.generate --models bart  # an encoder-decoder (BART-base's shape): decoder tokens/s
    python -m benchmarks.generate --sample     # sampled (temperature 0.8, top-k 50, top-p 0.9) instead of greedy
    python -m benchmarks.generate --option stats_in_gemv=true --rounds 2   # tinydl rows with and without a
                                               # planning option, alternated in one process (an A/B)

ONNX Runtime's WebGPU provider (where installed; --no-ort: not) decodes with its cache on the GPU through IO binding,
float32, greedy: decode tokens/s only (tinydl/bench/ort_generate.py), shown as prefill "nan".

Prefill tokens/s: batch * prompt / the time of generate(max_new_tokens=1). Decode tokens/s: batch * (N - 1) /
(time of generate(max_new_tokens=N) - time of generate(max_new_tokens=1)). Medians over --runs runs after a
warm-up (the first tinydl call also exports and plans its steps). Random weights (no network); float32 tokens are
checked to equal torch's for the first few new tokens; float16 (after tm.half()) is measured where the adapter
has shader-f16. With --sample both engines sample (tinydl on the GPU), every token made (no EOS); the greedy
tokens are still checked first.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tinydl.bench.option_arg import option  # noqa: E402
from tinydl.bench.ort_generate import ort_decode  # noqa: E402

CHECKED_TOKENS = 4
SAMPLED = dict(do_sample=True, temperature=0.8, top_k=50, top_p=0.9)
EAGER = dict(attn_implementation="eager")  # the attention torch.export captures as tinydl's ops


def _transformers():
    from tinydl.interop.torchvision_compat import import_torchvision
    import_torchvision()  # transformers imports torchvision when present; on CPU torch it needs the fix first
    import transformers
    transformers.logging.set_verbosity_error()
    return transformers


def gpt2(tiny):
    t = _transformers()
    cfg = t.GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=1000, **EAGER) if tiny else t.GPT2Config(**EAGER)
    return t.GPT2LMHeadModel(cfg)


def tinyllama(tiny):
    t = _transformers()
    if tiny:
        cfg = t.LlamaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                            intermediate_size=128, vocab_size=1000, **EAGER)
    else:  # TinyLlama-1.1B's shape
        cfg = t.LlamaConfig(hidden_size=2048, num_hidden_layers=22, num_attention_heads=32, num_key_value_heads=4,
                            intermediate_size=5632, vocab_size=32000, max_position_embeddings=2048, **EAGER)
    return t.LlamaForCausalLM(cfg)


def bart(tiny):
    """An encoder-decoder (BART-base's shape): the prompt is the encoder's input, the decoder generates."""
    t = _transformers()
    if tiny:
        cfg = t.BartConfig(d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                           decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128, vocab_size=1000,
                           max_position_embeddings=256, **EAGER)
    else:
        cfg = t.BartConfig(**EAGER)  # BART-base: 6 + 6 layers of width 768, 50265 tokens
    model = t.BartForConditionalGeneration(cfg)
    # no early stop and no forced last token: both engines make every token (torch's min_new_tokens)
    model.generation_config.eos_token_id = model.generation_config.forced_eos_token_id = None
    return model


def mamba(tiny):
    """A state-space model (Mamba-130m's shape): conv and recurrent states instead of keys and values."""
    t = _transformers()
    cfg = (t.MambaConfig(hidden_size=64, num_hidden_layers=2, vocab_size=1000, state_size=8) if tiny else
           t.MambaConfig(hidden_size=768, num_hidden_layers=24, vocab_size=50280))
    return t.MambaForCausalLM(cfg)


MODELS = {"gpt2": gpt2, "tinyllama": tinyllama, "bart": bart, "mamba": mamba}
DEFAULT_MODELS = ["gpt2", "tinyllama"]


def build(name, tiny):
    import torch
    torch.manual_seed(0)
    model = MODELS[name](tiny)
    model.config.use_cache = False  # the conversion's forward; generate's cached steps ask for the cache
    return model.eval()


def median_s(fn, runs):
    fn()  # warm-up: exports, plans and compiles on the first call
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def throughput(gen, batch, prompt, new, runs):
    """(prefill tokens/s, decode tokens/s) of gen(max_new_tokens)."""
    t1 = median_s(lambda: gen(1), runs)
    tn = median_s(lambda: gen(new), runs)
    return batch * prompt / t1, batch * (new - 1) / max(tn - t1, 1e-9)


def bench(name, batch, args):
    import torch

    import tinydl
    model = build(name, args.tiny)
    vocab = model.config.vocab_size
    ids = np.random.default_rng(0).integers(0, vocab, (batch, args.prompt)).astype(np.int64)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    ref_model = model.to(device)

    def torch_gen(n, m=ref_model, sample=False):
        with torch.no_grad():
            out = m.generate(torch.from_numpy(ids).to(device), attention_mask=torch.ones(ids.shape, device=device,
                             dtype=torch.int64), max_new_tokens=n, min_new_tokens=n,
                             **(SAMPLED if sample else dict(do_sample=False)), use_cache=True, pad_token_id=0)
        if device == "cuda":
            torch.cuda.synchronize()
        return out.cpu().numpy()

    rows = [(f"torch {device}", throughput(lambda n: torch_gen(n, sample=args.sample), batch, args.prompt,
                                           args.new, args.runs))]
    expected = torch_gen(CHECKED_TOKENS)
    model = model.to("cpu")
    if args.ort and not model.config.is_encoder_decoder and not args.sample:
        with tempfile.TemporaryDirectory() as tmp:
            decode, err, note = ort_decode(model, batch, args.prompt, args.new, args.runs, Path(tmp))
        print(f"# {name} b{batch} ORT WebGPU: {'decode %.1f tok/s, one step logits max abs error %.2e' % (decode, err) if decode else ''}"
              f"{'; ' if decode and note else ''}{note or ''}", flush=True)
        if decode:
            rows.append(("ORT webgpu fp32", (float("nan"), decode)))
    tm = tinydl.from_torch(model) if model.config.is_encoder_decoder else tinydl.from_torch(
        model, example_inputs=((torch.from_numpy(ids[:, :8]),), {"attention_mask": torch.ones(batch, 8, dtype=torch.int64)}))

    def tiny_gen(n, sample=args.sample):
        more = dict(SAMPLED, seed=0) if sample else {}
        return tm.generate(ids, attention_mask=np.ones_like(ids), max_new_tokens=n, pad_token_id=0, **more)

    got = tiny_gen(CHECKED_TOKENS, sample=False)
    assert np.array_equal(got, expected), f"{name} b{batch}: tinydl's greedy tokens {got[:, -CHECKED_TOKENS:]} " \
                                          f"differ from torch's {expected[:, -CHECKED_TOKENS:]}"
    if args.sample:  # every token made, as torch's min_new_tokens (tinydl's generate reads the model's settings)
        model.generation_config.eos_token_id = None
    variants = [("", {})] + [(f" {k}={v}", {k: v}) for k, v in args.option]
    precisions = ["fp32"] + (["fp16"] if tinydl.runtime.get_runtime().has_f16 and not args.no_fp16 else [])
    for precision in precisions:
        if precision == "fp16":
            tm.half()
        for _ in range(args.rounds):  # the variants in turns: a drift of clocks falls on each alike
            for label, changes in variants:
                with tinydl.options(**changes):
                    rows.append((f"tinydl {precision}{label}", throughput(tiny_gen, batch, args.prompt, args.new,
                                                                         args.runs)))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", default=DEFAULT_MODELS, choices=list(MODELS))
    ap.add_argument("--batches", nargs="*", type=int, default=[1, 8])
    ap.add_argument("--prompt", type=int, help="prompt tokens (default 128, --quick/--tiny 16)")
    ap.add_argument("--new", type=int, help="new tokens (default 128, --quick/--tiny 16)")
    ap.add_argument("--runs", type=int, help="timed runs per figure (default 5, --quick/--tiny 2)")
    ap.add_argument("--quick", action="store_true", help="short prompt, few tokens and runs")
    ap.add_argument("--tiny", action="store_true", help="2-layer models of width 64 (lavapipe)")
    ap.add_argument("--no-fp16", action="store_true")
    ap.add_argument("--sample", action="store_true", help="sample (temperature 0.8, top-k 50, top-p 0.9)")
    ap.add_argument("--option", type=option, action="append", default=[], metavar="NAME=VALUE",
                    help="also time tinydl with this tinydl.options field set (repeatable: one variant each)")
    ap.add_argument("--rounds", type=int, default=1, help="turns of the tinydl variants (with --option)")
    ap.add_argument("--no-ort", dest="ort", action="store_false",
                    help="no ONNX Runtime WebGPU row (its decode: tinydl/bench/ort_generate.py)")
    args = ap.parse_args(argv)
    short = args.quick or args.tiny
    args.prompt = args.prompt or (16 if short else 128)
    args.new = args.new or (16 if short else 128)
    args.runs = args.runs or (2 if short else 5)
    import tinydl
    print(f"adapter: {tinydl.device_info()['adapter']}; prompt {args.prompt}, "
          f"{args.new} new tokens, median of {args.runs} runs{' (tiny models)' if args.tiny else ''}")
    print(f"{'model':<10} {'batch':>5}  {'engine':<14} {'prefill tok/s':>14} {'decode tok/s':>13}")
    for name in args.models:
        for batch in args.batches:
            for engine, (prefill, decode) in bench(name, batch, args):
                print(f"{name:<10} {batch:>5}  {engine:<14} {prefill:>14.1f} {decode:>13.1f}", flush=True)


if __name__ == "__main__":
    main()
