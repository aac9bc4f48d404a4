"""The Hugging Face architectures the coverage run tries: tiny random configs (2 layers, width 32, vocabulary
100), eager attention, no cache, nothing downloaded."""
from __future__ import annotations

import os

from .zoo import Entry, _randn, first_that_runs

os.environ.setdefault("HF_HUB_OFFLINE", "1")

VOCAB = 100
TEXT = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
            max_position_embeddings=64)
DECODER = dict(TEXT, num_key_value_heads=2)  # grouped-query attention where the architecture has it
SEQ2SEQ = dict(vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
               decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64)
VISION = dict(image_size=16, patch_size=4, num_channels=3, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
              intermediate_size=64)
TOKEN_IDS = ("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id")


def _ids(batch=2, seq=8):
    import torch
    return (torch.arange(batch * seq, dtype=torch.int64).reshape(batch, seq) * 7 + 3) % VOCAB


def text_and_image(size=16):
    return lambda cfg: {"input_ids": _ids(), "pixel_values": _randn((2, 3, size, size))}


def image(size):
    return lambda cfg: {"pixel_values": _randn((2, 3, size, size))}


def whisper_inputs(cfg):
    return {"input_features": _randn((2, cfg.num_mel_bins, 2 * cfg.max_source_positions)),
            "decoder_input_ids": _ids(seq=4)}


def _resnet_backbone():
    import transformers
    return transformers.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16, 16, 16], depths=[1, 1, 1, 1],
                                     out_features=["stage4"])


# name -> (task, config class, model class, config kwargs (or a function making them), inputs (None: the ones
# tinydl.interop.export.hf_example_inputs makes from the model: token ids (2, 8) with a mask, or 2 images))
ARCHITECTURES = {
    "BERT": ("text encoder", "BertConfig", "BertModel", TEXT, None),
    "RoBERTa": ("text encoder", "RobertaConfig", "RobertaModel", TEXT, None),
    "XLM-RoBERTa": ("text encoder", "XLMRobertaConfig", "XLMRobertaModel", TEXT, None),
    "DeBERTa-v2": ("text encoder", "DebertaV2Config", "DebertaV2Model", TEXT, None),
    "DistilBERT": ("text encoder", "DistilBertConfig", "DistilBertModel",
                   dict(vocab_size=VOCAB, dim=32, n_layers=2, n_heads=4, hidden_dim=64, max_position_embeddings=64),
                   None),
    "ALBERT": ("text encoder", "AlbertConfig", "AlbertModel", dict(TEXT, embedding_size=16), None),
    "ELECTRA": ("text encoder", "ElectraConfig", "ElectraModel", dict(TEXT, embedding_size=16), None),
    "MPNet": ("text encoder", "MPNetConfig", "MPNetModel", TEXT, None),
    "GPT-2": ("causal LM", "GPT2Config", "GPT2LMHeadModel",
              dict(vocab_size=VOCAB, n_positions=64, n_embd=32, n_layer=2, n_head=4), None),
    "Llama": ("causal LM", "LlamaConfig", "LlamaForCausalLM", DECODER, None),
    "Mistral": ("causal LM", "MistralConfig", "MistralForCausalLM", DECODER, None),
    "Mixtral": ("causal LM", "MixtralConfig", "MixtralForCausalLM",
                dict(DECODER, num_local_experts=4, num_experts_per_tok=2), None),
    "Qwen2": ("causal LM", "Qwen2Config", "Qwen2ForCausalLM", DECODER, None),
    "Qwen3": ("causal LM", "Qwen3Config", "Qwen3ForCausalLM", dict(DECODER, head_dim=8), None),
    "Phi": ("causal LM", "PhiConfig", "PhiForCausalLM", TEXT, None),
    "Phi3": ("causal LM", "Phi3Config", "Phi3ForCausalLM", DECODER, None),
    "Gemma": ("causal LM", "GemmaConfig", "GemmaForCausalLM", dict(DECODER, head_dim=8), None),
    "Gemma2": ("causal LM", "Gemma2Config", "Gemma2ForCausalLM", dict(DECODER, head_dim=8, sliding_window=4),
               None),
    "Gemma3 (text)": ("causal LM", "Gemma3TextConfig", "Gemma3ForCausalLM", dict(DECODER, head_dim=8,
                                                                                   sliding_window=4), None),
    "StableLM": ("causal LM", "StableLmConfig", "StableLmForCausalLM", DECODER, None),
    "GPT-NeoX": ("causal LM", "GPTNeoXConfig", "GPTNeoXForCausalLM", TEXT, None),
    "OPT": ("causal LM", "OPTConfig", "OPTForCausalLM",
            dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, ffn_dim=64, num_attention_heads=4,
                 max_position_embeddings=64, word_embed_proj_dim=32), None),
    "Falcon": ("causal LM", "FalconConfig", "FalconForCausalLM",
               dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4), None),
    "Bloom": ("causal LM", "BloomConfig", "BloomForCausalLM",
              dict(vocab_size=VOCAB, hidden_size=32, n_layer=2, n_head=4), None),
    "GPT-J": ("causal LM", "GPTJConfig", "GPTJForCausalLM",
              dict(vocab_size=VOCAB, n_positions=64, n_embd=32, n_layer=2, n_head=4, rotary_dim=4), None),
    "Qwen2-MoE": ("causal LM", "Qwen2MoeConfig", "Qwen2MoeForCausalLM",
                  dict(DECODER, moe_intermediate_size=32, shared_expert_intermediate_size=32, num_experts=4,
                       num_experts_per_tok=2), None),
    "Qwen3-MoE": ("causal LM", "Qwen3MoeConfig", "Qwen3MoeForCausalLM",
                  dict(DECODER, head_dim=8, moe_intermediate_size=32, num_experts=4, num_experts_per_tok=2), None),
    "OLMoE": ("causal LM", "OlmoeConfig", "OlmoeForCausalLM", dict(DECODER, num_experts=4, num_experts_per_tok=2),
              None),
    "PhiMoE": ("causal LM", "PhimoeConfig", "PhimoeForCausalLM", dict(DECODER, num_local_experts=4), None),
    "Cohere": ("causal LM", "CohereConfig", "CohereForCausalLM", DECODER, None),
    "GPTBigCode": ("causal LM", "GPTBigCodeConfig", "GPTBigCodeForCausalLM",
                   dict(vocab_size=VOCAB, n_positions=64, n_embd=32, n_layer=2, n_head=4), None),
    "Starcoder2": ("causal LM", "Starcoder2Config", "Starcoder2ForCausalLM", DECODER, None),
    "OLMo2": ("causal LM", "Olmo2Config", "Olmo2ForCausalLM", TEXT, None),
    "Nemotron": ("causal LM", "NemotronConfig", "NemotronForCausalLM", dict(DECODER, head_dim=8), None),
    "Granite": ("causal LM", "GraniteConfig", "GraniteForCausalLM", DECODER, None),
    "GLM": ("causal LM", "GlmConfig", "GlmForCausalLM", DECODER, None),
    "T5": ("seq2seq", "T5Config", "T5ForConditionalGeneration",
           dict(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4), None),
    "BART": ("seq2seq", "BartConfig", "BartForConditionalGeneration", SEQ2SEQ, None),
    "Marian": ("seq2seq", "MarianConfig", "MarianMTModel", SEQ2SEQ, None),
    "Pegasus": ("seq2seq", "PegasusConfig", "PegasusForConditionalGeneration", SEQ2SEQ, None),
    "mT5": ("seq2seq", "MT5Config", "MT5ForConditionalGeneration",
            dict(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4), None),
    "Blenderbot": ("seq2seq", "BlenderbotConfig", "BlenderbotForConditionalGeneration", SEQ2SEQ, None),
    "M2M100": ("seq2seq", "M2M100Config", "M2M100ForConditionalGeneration", SEQ2SEQ, None),
    "NLLB-MoE": ("seq2seq", "NllbMoeConfig", "NllbMoeForConditionalGeneration",
                 dict(SEQ2SEQ, num_experts=4, expert_capacity=8), None),
    "Whisper": ("speech seq2seq", "WhisperConfig", "WhisperForConditionalGeneration",
                dict(SEQ2SEQ, num_mel_bins=8, max_source_positions=16, max_target_positions=32), whisper_inputs),
    "wav2vec2": ("speech encoder", "Wav2Vec2Config", "Wav2Vec2Model",
                 dict(TEXT, conv_dim=(16, 16), conv_stride=(5, 2), conv_kernel=(10, 3), num_conv_pos_embeddings=16,
                      num_conv_pos_embedding_groups=2), lambda cfg: {"input_values": _randn((2, 800))}),
    "CLIP": ("text-image", "CLIPConfig", "CLIPModel",
             dict(text_config=dict(TEXT, max_position_embeddings=16), vision_config=VISION, projection_dim=16),
             text_and_image()),
    "SigLIP": ("text-image", "SiglipConfig", "SiglipModel",
               dict(text_config=dict(TEXT, max_position_embeddings=16), vision_config=VISION), text_and_image()),
    "ViT": ("vision encoder", "ViTConfig", "ViTModel", VISION, None),
    "DeiT": ("vision encoder", "DeiTConfig", "DeiTModel", VISION, None),
    "BEiT": ("vision encoder", "BeitConfig", "BeitModel", VISION, None),
    "DINOv2": ("vision encoder", "Dinov2Config", "Dinov2Model",
               dict({k: v for k, v in VISION.items() if k != "intermediate_size"}, mlp_ratio=2), None),
    "Swin": ("vision encoder", "SwinConfig", "SwinModel",
             dict(image_size=32, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[2, 2], window_size=4), None),
    "ConvNeXt": ("vision encoder", "ConvNextConfig", "ConvNextModel",
                 dict(num_stages=2, hidden_sizes=[8, 16], depths=[1, 1], image_size=32), None),
    "ResNet": ("vision encoder", "ResNetConfig", "ResNetModel",
               dict(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1]), image(32)),
    "DETR": ("object detection", "DetrConfig", "DetrForObjectDetection",
             lambda: dict(backbone_config=_resnet_backbone(), d_model=32, encoder_layers=1, decoder_layers=1,
                          encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
                          decoder_ffn_dim=64, num_queries=5), lambda cfg: {"pixel_values": _randn((1, 3, 64, 64))}),
    "Segformer": ("semantic segmentation", "SegformerConfig", "SegformerForSemanticSegmentation",
                  dict(num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[16, 32],
                       patch_sizes=[7, 3], strides=[4, 2], num_attention_heads=[1, 2], mlp_ratios=[2, 2],
                       decoder_hidden_size=32), image(32)),
}


def _builder(name):
    task, config_class, model_class, config_kwargs, inputs = ARCHITECTURES[name]

    def make(_size):
        import torch

        import transformers
        from tinydl.interop.export import hf_example_inputs
        kwargs = config_kwargs() if callable(config_kwargs) else config_kwargs
        cfg = getattr(transformers, config_class)(**kwargs, attn_implementation="eager")
        for attr in ("initializer_range", "init_std"):  # activations of order 1: tolerances that mean something
            if hasattr(cfg, attr):
                setattr(cfg, attr, 0.2)
        if hasattr(cfg, "use_cache"):
            cfg.use_cache = False
        for attr in TOKEN_IDS:  # defaults of the full vocabulary fall outside the tiny one
            if isinstance(getattr(cfg, attr, None), int) and getattr(cfg, attr) >= VOCAB:
                setattr(cfg, attr, 0)
        torch.manual_seed(0)
        model = getattr(transformers, model_class)(cfg).eval()
        return model, (), inputs(cfg) if inputs else hf_example_inputs(model)

    def build(_size_mode):
        from tinydl.testing.weights import randomize_constants
        built = first_that_runs(make, (None,))
        randomize_constants(built.model)  # LayerNorm's ones, zero biases: paths that would contribute nothing
        return built
    return build, task


def hf_entries() -> list[Entry]:
    from tinydl.interop.torchvision_compat import import_torchvision
    import_torchvision()  # transformers imports torchvision; on CPU torch it needs the schemas first
    out = []
    for name in ARCHITECTURES:
        build, task = _builder(name)
        out.append(Entry("hf", task, name, build))
    return out
