"""Every model type ``transformers`` can build from a config, shrunk to a tiny width and depth, with
one learnable offline task per head.

Nothing is downloaded: each model is ``AutoModelFor<Head>.from_config`` on a config built by
``AutoConfig.for_model(model_type, **tiny)``, so its weights come from the model's own
``_init_weights``; token ids are made directly (no tokenizer).

Heads and their tasks (``make_data``)::

    causal_lm   next token on a sparse Markov chain over 64 ids (HF shifts the labels itself)
    masked_lm   the same chain, 15% of positions replaced by a mask id, labels only there
    seq2seq_lm  copy: the decoder writes the encoder's Markov-chain sequence back
    seq_cls     which of 3 Markov chains produced the sequence
    image_cls   3 classes of smooth class-dependent 32 x 32 images (``tasks.smooth_images``)
    audio_cls   3 classes of 1600-sample waveforms, a class-dependent tone in noise

``tiny_config`` overrides only the arguments the config's ``__init__`` declares, so derived fields
(a Swin's ``hidden_size``, a head dimension) are recomputed by the config itself.
"""
from __future__ import annotations

import inspect
import math
import re
from dataclasses import dataclass

import torch
import transformers
from transformers.models.auto import modeling_auto

from .tasks import markov_chain, sample_chain, smooth_images

VOCAB, LENGTH, BATCH, POOL = 64, 16, 16, 256
WIDTH, FFN, LAYERS, N_HEADS, KV_HEADS = 64, 128, 2, 4, 2
IMAGE, CLASSES, AUDIO_SAMPLES = 32, 3, 1600
MASK_ID, FIRST_TOKEN = 3, 4        # ids 0..3 are pad / bos / eos / mask; the tasks use 4..63
MAX_PARAMS = 3_000_000
# an attention's query or key projection, by the names transformers gives them (fused q/k/v layers excluded)
QUERY_KEY = re.compile(r"(^|\.)(q|k|q_proj|k_proj|q_lin|k_lin|query|key|wq|wk|query_proj|key_proj|q_a_proj|q_b_proj)$")

# Head -> the Auto mapping that lists the model types with that head, in the order a type's
# primary head is chosen (an encoder-decoder is trained as seq2seq, an encoder as a masked LM).
HEADS = {
    "seq2seq_lm": modeling_auto.MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES,
    "masked_lm": modeling_auto.MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    "causal_lm": modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    "image_cls": modeling_auto.MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES,
    "seq_cls": modeling_auto.MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
    "audio_cls": modeling_auto.MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES,
}
TOKEN_HEADS = ("seq2seq_lm", "masked_lm", "causal_lm", "seq_cls")

# Scalar config arguments and their tiny values (applied only where the config declares them).
TINY_SCALARS = {
    **dict.fromkeys(("hidden_size", "d_model", "n_embd", "dim", "embed_dim", "embedding_size",
                     "word_embed_proj_dim", "output_hidden_size", "emb_dim"), WIDTH),
    **dict.fromkeys(("intermediate_size", "ffn_dim", "encoder_ffn_dim", "decoder_ffn_dim", "d_ff", "n_inner",
                     "hidden_dim", "d_inner", "moe_intermediate_size", "shared_expert_intermediate_size",
                     "expert_intermediate_size", "feed_forward_size", "dim_ff"), FFN),
    **dict.fromkeys(("num_hidden_layers", "n_layer", "num_layers", "encoder_layers", "decoder_layers",
                     "num_decoder_layers", "n_layers", "num_encoder_layers"), LAYERS),
    **dict.fromkeys(("num_attention_heads", "n_head", "n_heads", "encoder_attention_heads",
                     "decoder_attention_heads", "num_heads"), N_HEADS),
    "num_key_value_heads": KV_HEADS, "num_kv_heads": KV_HEADS, "multi_query_group_num": KV_HEADS,
    **dict.fromkeys(("head_dim", "d_kv", "d_head", "attention_head_size", "kv_channels", "dim_head", "v_head_dim",
                     "mamba_d_head"), WIDTH // N_HEADS),
    "qk_rope_head_dim": 8, "qk_nope_head_dim": 8, "rotary_dim": 8, "q_lora_rank": 32, "kv_lora_rank": 16,
    **dict.fromkeys(("mamba_d_state", "state_size", "ssm_state_size"), 16),
    **dict.fromkeys(("mamba_chunk_size", "chunk_size"), 16), "mamba_n_heads": 8,
    "width_coefficient": 0.25, "depth_coefficient": 0.3, "num_groups": 8,
    **dict.fromkeys(("vocab_size", "src_vocab_size", "tgt_vocab_size"), VOCAB),
    **dict.fromkeys(("max_position_embeddings", "n_positions", "n_ctx", "max_seq_len",
                     "max_sequence_length", "seq_length"), 64),
    **dict.fromkeys(("num_experts", "num_local_experts", "n_routed_experts", "moe_num_experts"), 4),
    "num_experts_per_tok": 2, "moe_topk": 2, "top_k": 2, "moe_k": 2, "n_group": 1, "topk_group": 1,
    "first_k_dense_replace": 1, "moe_layer_start_index": 1, "moe_layer_end_index": LAYERS - 1,
    "image_size": IMAGE, "patch_size": 4, "num_channels": 3, "window_size": 4,
    "num_labels": CLASSES, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2,
    "decoder_start_token_id": 0, "sep_token_id": 2, "cls_token_id": 1, "mask_token_id": MASK_ID,
    "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 4, "classifier_proj_size": 32,
    "codevector_dim": 32, "proj_codevector_dim": 32, "num_codevectors_per_group": 16,
    "mask_time_prob": 0.0, "layerdrop": 0.0, "use_cache": False, "attention_window": 8,
    "axial_pos_shape": [4, 4], "axial_pos_embds_dim": [32, 32], "local_attn_chunk_length": 8,
    "lsh_attn_chunk_length": 8,
}

# List-valued arguments (per stage or per conv layer), shrunk element-wise.
TINY_LISTS = {
    "depths": lambda n, i: 1,
    "hidden_sizes": lambda n, i: min(16 * 2 ** i, 128),
    "embed_dims": lambda n, i: min(16 * 2 ** i, 128),
    "embed_dim": lambda n, i: min(16 * 2 ** i, 128),
    "num_heads": lambda n, i: min(2 ** i, 8),
    "num_attention_heads": lambda n, i: min(2 ** i, 8),
    "attention_window": lambda n, i: 8,
    "conv_dim": lambda n, i: 32,
    "tdnn_dim": lambda n, i: 32,
}


@dataclass(frozen=True)
class Spec:
    """One row of the sweep: a model type with one head."""

    model_type: str
    head: str
    class_name: str


def _class_name(entry) -> str:
    return entry[0] if isinstance(entry, (tuple, list)) else entry


def heads_of(model_type: str) -> list[str]:
    """The sweep's heads that ``model_type`` has, in primary-first order."""
    return [h for h, mapping in HEADS.items() if model_type in mapping]


def model_types() -> list[str]:
    """Every model type with at least one of the sweep's heads, sorted."""
    return sorted({t for mapping in HEADS.values() for t in mapping})


def specs(all_heads: bool = False, types: list[str] | None = None) -> list[Spec]:
    """Rows: each type with its primary head (or every head it has with ``all_heads``)."""
    rows = []
    for t in types if types is not None else model_types():
        heads = heads_of(t)
        for h in heads if all_heads else heads[:1]:
            rows.append(Spec(t, h, _class_name(HEADS[h][t])))
    return rows


def _declared(config_class) -> set[str]:
    return set(inspect.signature(config_class.__init__).parameters) - {"self", "kwargs"}


def _shrink(config_class, defaults: dict) -> dict:
    """Overrides for ``config_class``: the tiny scalars and lists it declares."""
    declared = _declared(config_class)
    out = {}
    for key, value in TINY_SCALARS.items():
        if key in declared and not isinstance(defaults.get(key), (list, tuple, dict)):
            out[key] = value
    layers = next((defaults[k] for k in ("num_hidden_layers", "num_layers", "n_layer", "n_layers")
                   if isinstance(defaults.get(k), int)), None)
    for key in declared:                      # per-layer lists (layer_types, mlp_layer_types, ...): the first layers
        current = defaults.get(key)
        if isinstance(current, list) and layers and len(current) == layers and layers != LAYERS:
            out[key] = current[:LAYERS]
    if "attention_types" in declared and defaults.get("attention_types"):
        out["attention_types"] = [[defaults["attention_types"][0][0], 1]]     # GPT-Neo: one (global, local) pair
    for key, fn in TINY_LISTS.items():
        current = defaults.get(key)
        if key in declared and isinstance(current, (list, tuple)) and current:
            out[key] = [fn(len(current), i) for i in range(len(current))]
    for key in declared:                      # other special ids inside the tiny vocabulary
        if key.endswith("_token_id") and key not in out and isinstance(defaults.get(key), int):
            out[key] = MASK_ID if defaults[key] >= VOCAB else defaults[key]
    if isinstance(defaults.get("dim_model_base"), int) and isinstance(defaults.get("hidden_size"), int):
        # muP's base width (MiniCPM): the hidden state is divided by hidden_size / dim_model_base (10 at the
        # default 2560 / 256) before the head; a tiny width with the default base would multiply it by 4 instead
        out["dim_model_base"] = max(1, round(WIDTH * defaults["dim_model_base"] / defaults["hidden_size"]))
    if "depths" in out:                       # staged vision models derive these from the stages
        for key in ("num_layers", "hidden_size"):
            out.pop(key, None)
    if "hidden_sizes" in out and "hidden_size" in declared:
        out["hidden_size"] = out["hidden_sizes"][-1]
    if isinstance(defaults.get("embed_dim"), int) and isinstance(defaults.get("num_heads"), (list, tuple)):
        out["embed_dim"] = 16                 # Swin-like: stage widths 16 * 2**i, heads 2**i
    if "depths" in out and "window_size" in out:
        out["patch_size"], out["window_size"] = 2, 2    # windowed stages at 16, 8, 4, 2 tokens a side
    return out


def tiny_config(model_type: str, head: str, initializer_range: float | None = None):
    """The model type's config at tiny size (sub-configs shrunk too), with ``head``'s label count.

    With ``initializer_range`` the config's init scale (``initializer_range`` or BART's ``init_std``)
    is set to it, in every sub-config that has one.
    """
    base = transformers.AutoConfig.for_model(model_type)
    kwargs = _shrink(type(base), base.to_dict())
    for key, value in base.to_dict().items():          # sub-configs (text / vision / encoder parts)
        sub = getattr(base, key, None)
        if isinstance(sub, transformers.PretrainedConfig) and key in _declared(type(base)):
            sub_kw = {**sub.to_dict(), **_shrink(type(sub), sub.to_dict())}
            if initializer_range is not None:
                sub_kw.update({k: initializer_range for k in ("initializer_range", "init_std") if k in sub_kw})
            kwargs[key] = sub_kw
    if initializer_range is not None:
        for key in ("initializer_range", "init_std"):
            if key in _declared(type(base)) or key in base.to_dict():
                kwargs[key] = initializer_range
    config = transformers.AutoConfig.for_model(model_type, **kwargs)
    if head in ("seq_cls", "image_cls", "audio_cls"):
        config.num_labels = CLASSES
    if head == "causal_lm" and getattr(config, "is_encoder_decoder", False) is False:
        config.is_decoder = True
    if head == "seq2seq_lm" and getattr(config, "decoder_start_token_id", None) is None:
        config.decoder_start_token_id = 0     # T5-style: the decoder starts from the pad id
    return config


def init_scale_key(config) -> str | None:
    """The config field that sets the init scale (``initializer_range`` or ``init_std``), if any."""
    for key in ("initializer_range", "init_std"):
        if isinstance(config.to_dict().get(key), float):
            return key
    return None


def build(spec: Spec, initializer_range: float | None = None, seed: int = 0) -> torch.nn.Module:
    """``spec``'s model from its tiny config, with the library's own init (seeded)."""
    config = tiny_config(spec.model_type, spec.head, initializer_range)
    cls = getattr(transformers, spec.class_name)
    torch.manual_seed(seed)
    model = cls(config)
    n = sum(p.numel() for p in model.parameters())
    if n > MAX_PARAMS:
        raise ValueError(f"too large after shrinking: {n / 1e6:.1f}M parameters")
    return model


def normal_init_(model: torch.nn.Module, std: float = 1.0) -> int:
    """``nn.init.normal_(w, 0, std)`` on every Linear and Embedding weight; returns how many."""
    count = 0
    for m in model.modules():
        if isinstance(m, (torch.nn.Linear, torch.nn.Embedding)):
            with torch.no_grad():
                torch.nn.init.normal_(m.weight, 0.0, std)
            count += 1
    return count


def _chain_tokens(n: int, seed: int, chain_seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(3000 + seed + 97 * chain_seed)
    chain = markov_chain(VOCAB - FIRST_TOKEN, chain_seed)
    return sample_chain(chain, n, LENGTH, g) + FIRST_TOKEN


def make_data(head: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A pool of ``POOL`` examples for ``head``, as the model's keyword inputs (labels included)."""
    g = torch.Generator().manual_seed(5000 + seed)
    if head == "causal_lm":
        ids = _chain_tokens(POOL, seed)
        return {"input_ids": ids, "labels": ids.clone()}
    if head == "masked_lm":
        ids = _chain_tokens(POOL, seed)
        masked = torch.rand(ids.shape, generator=g) < 0.15
        masked[torch.arange(POOL), torch.randint(0, LENGTH, (POOL,), generator=g)] = True
        return {"input_ids": ids.masked_fill(masked, MASK_ID), "labels": ids.masked_fill(~masked, -100)}
    if head == "seq2seq_lm":
        ids = _chain_tokens(POOL, seed)
        return {"input_ids": ids, "labels": ids.clone()}
    if head == "seq_cls":
        y = torch.randint(0, CLASSES, (POOL,), generator=g)
        ids = torch.stack([_chain_tokens(POOL, seed, chain_seed=c + 1) for c in range(CLASSES)])
        return {"input_ids": ids[y, torch.arange(POOL)], "labels": y}
    if head == "image_cls":
        x, y = smooth_images(POOL, classes=CLASSES, size=IMAGE, seed=seed)
        return {"pixel_values": x, "labels": y}
    if head == "audio_cls":
        y = torch.randint(0, CLASSES, (POOL,), generator=g)
        t = torch.arange(AUDIO_SAMPLES) / 16000.0
        freq = torch.tensor([300.0, 700.0, 1500.0])[y]
        phase = 2 * math.pi * torch.rand(POOL, 1, generator=g)
        wave = torch.sin(2 * math.pi * freq[:, None] * t[None] + phase)
        return {"input_values": wave + 0.3 * torch.randn(POOL, AUDIO_SAMPLES, generator=g), "labels": y}
    raise ValueError(f"unknown head {head!r}; valid: {', '.join(HEADS)}")


def batches(data: dict[str, torch.Tensor], size: int = BATCH):
    """Endless mini-batches cycling through the pool in order."""
    n = len(data["labels"])
    while True:
        for i in range(0, n - size + 1, size):
            yield {k: v[i:i + size] for k, v in data.items()}


def uninformed_loss(head: str) -> float:
    """The cross-entropy of a uniform guess: ln(vocab) for token heads, ln(classes) for classifiers."""
    return math.log(VOCAB) if head in ("causal_lm", "masked_lm", "seq2seq_lm") else math.log(CLASSES)
