"""Every causal LM transformers lists (MODEL_FOR_CAUSAL_LM_MAPPING_NAMES), each in a tiny random config: HF's
greedy generate on torch CPU against tinydl's, on a left-padded batch of 2. A search for the model kinds generate
gets wrong or refuses, not a benchmark.

    python -m benchmarks.generate_sweep                      # all of them (hours on 2 cores)
    python -m benchmarks.generate_sweep llama bart openai-gpt --timeout 120

Each model runs in a forked child with a timeout. Printed per model: ok, MISMATCH (the tokens), error (tinydl's),
ref-failed (HF's own generate fails on the tiny config: nothing to compare), timeout or crash. The tiny config sets
whichever of the usual size fields the config class has; a config that refuses them is an error of the sweep, not
of tinydl (the reason says which). The LM head is scaled x20 so that float noise does not decide the argmax; a model
whose router or head starts at zero can still tie (Afmoe's router: torch's top-k breaks ties its own way).
"""
from __future__ import annotations

import argparse
import inspect
import multiprocessing as mp
import os
import traceback

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TINY = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            n_embd=32, n_layer=2, n_head=4, d_model=32, ffn_dim=64, head_dim=8, vocab_size=100,
            max_position_embeddings=128, n_positions=128, attn_implementation="eager", initializer_range=0.2,
            use_cache=False, tie_word_embeddings=False, pad_token_id=0, bos_token_id=1, eos_token_id=2,
            num_experts=4, num_local_experts=4, num_experts_per_tok=2, moe_intermediate_size=32,
            rotary_dim=4, partial_rotary_factor=0.5, kv_lora_rank=16, q_lora_rank=16, qk_rope_head_dim=4,
            qk_nope_head_dim=4, v_head_dim=8, n_routed_experts=4, n_shared_experts=1, first_k_dense_replace=1)
PROMPT, NEW = 7, 6


def _model(model_type):
    import torch
    import transformers
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    cfg = _tiny_config(type(transformers.AutoConfig.for_model(model_type)))
    cls = getattr(transformers, MODEL_FOR_CAUSAL_LM_MAPPING_NAMES[model_type])
    wanted = getattr(cls, "config_class", None)
    if isinstance(wanted, type) and not isinstance(cfg, wanted) and hasattr(cfg, "get_text_config"):
        cfg = cfg.get_text_config()  # a composite config listed with its text model's causal LM
    torch.manual_seed(0)
    m = cls(cfg).eval()
    with torch.no_grad():
        m.get_output_embeddings().weight.mul_(20)
    return m


def _tiny_config(cfg_cls):
    """cfg_cls with whichever TINY fields it has; a composite config's parts (text, vision, audio: its
    sub_configs) tiny too, else a multimodal causal LM builds its towers at full size."""
    default = cfg_cls()
    known = set(inspect.signature(cfg_cls.__init__).parameters) | set(vars(default))
    fields = {k: v for k, v in TINY.items() if k in known}
    kinds = getattr(default, "layer_types", None)
    settable = not isinstance(getattr(cfg_cls, "layer_types", None), property)  # (Mamba's: made from its layers)
    if isinstance(kinds, (list, tuple)) and kinds and "num_hidden_layers" in fields and settable:
        # a hybrid's layers: one of each kind, in the order they first come (two at least)
        kinds = list(dict.fromkeys(kinds)) if len(set(kinds)) > 1 else list(kinds[:1]) * 2
        fields.update(layer_types=kinds, num_hidden_layers=len(kinds))
    for name in getattr(cfg_cls, "sub_configs", {}):
        part = getattr(default, name, None)  # (its class, where the declared one is AutoConfig)
        if name in known and hasattr(part, "to_dict"):
            fields[name] = {**_tiny_config(type(part)).to_dict(), "model_type": part.model_type}
    try:
        return cfg_cls(**fields)
    except AttributeError:  # layer types made from another field (Falcon-H1's layers_block_type): its own
        fields.pop("layer_types", None)
        return cfg_cls(**fields)


def _one(model_type, queue):
    try:
        from tinydl.interop.torchvision_compat import import_torchvision
        import_torchvision()
        import torch
        import transformers
        transformers.logging.set_verbosity_error()
        m = _model(model_type)
        ids = np.random.default_rng(0).integers(3, 100, (2, PROMPT))
        mask = np.ones((2, PROMPT), np.int64)
        mask[1, :3], ids[1, :3] = 0, 0
        try:
            with torch.no_grad():
                ref = m.generate(torch.from_numpy(ids), attention_mask=torch.from_numpy(mask), max_new_tokens=NEW,
                                 do_sample=False, pad_token_id=0).numpy()
        except Exception as e:  # noqa: BLE001 - HF's own failure: nothing to compare
            queue.put(("ref-failed", f"{type(e).__name__}: {str(e)[:200]}"))
            return
        import tinydl
        tm = tinydl.from_torch(m, example_inputs=((torch.from_numpy(ids),), {"attention_mask": torch.from_numpy(mask)}))
        out = tm.generate(ids, attention_mask=mask, max_new_tokens=NEW, do_sample=False, pad_token_id=0)
        same = np.array_equal(out, ref)
        queue.put(("ok", "") if same else ("MISMATCH", f"{out[:, PROMPT:].tolist()} vs HF {ref[:, PROMPT:].tolist()}"))
    except Exception as e:  # noqa: BLE001 - every failure is a row
        frame = traceback.extract_tb(e.__traceback__)[-1]
        queue.put(("error", f"{type(e).__name__}: {str(e)[:300]} @ {frame.filename.split('site-packages/')[-1]}:"
                            f"{frame.lineno}"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_types", nargs="*", help="default: every causal LM transformers lists")
    ap.add_argument("--timeout", type=float, default=150)
    args = ap.parse_args(argv)
    if not args.model_types:
        from tinydl.interop.torchvision_compat import import_torchvision
        import_torchvision()
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
        args.model_types = sorted(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)
    ctx = mp.get_context("fork")
    for model_type in args.model_types:
        queue = ctx.Queue()
        child = ctx.Process(target=_one, args=(model_type, queue))
        child.start()
        child.join(args.timeout)
        if child.is_alive():
            child.kill()
            status, detail = "timeout", f"over {args.timeout:g} s"
        else:
            status, detail = queue.get() if not queue.empty() else ("crash", f"exit {child.exitcode}")
        print(f"{model_type}: {status} {detail}".rstrip(), flush=True)


if __name__ == "__main__":
    main()
