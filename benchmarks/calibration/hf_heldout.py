"""The held-out fifth of the transformers sweep, frozen before any verdict was looked at.

Chosen on 2026-12-07 as ``sorted(random.Random(25).sample(hf_models.model_types(), k=len(types) // 5))``
over the 312 model types of transformers 5.24.0 that have one of the
sweep's heads. ``hf_sweep.py`` skips these unless ``--held-out``; they were not run through the doctor
in the session that built the sweep. Written as a literal so a new transformers version cannot
silently reshuffle it.
"""
HELD_OUT = frozenset({
    'audioflamingo3', 'axk2', 'big_bird', 'bit', 'bitnet', 'bloom', 'codegen', 'convnext', 'convnextv2',
    'cpmant', 'cvt', 'deepseek_v32', 'deepseek_v4', 'dinat', 'efficientnet', 'emu3', 'fnet', 'fuyu', 'gemma2',
    'gemma3n_text', 'gemma4_unified', 'glm', 'gpt_bigcode', 'gpt_oss', 'hunyuan_v1_moe', 'jetmoe', 'lfm2_moe',
    'llama4_text', 'ministral', 'mistral', 'mistral4', 'modernbert-decoder', 'modernvbert', 'nemotron',
    'nllb-moe', 'olmo', 'omniasr', 'persimmon', 'phi4_multimodal', 'plbart', 'qwen2', 'qwen2_audio',
    'qwen3_5_moe_text', 'qwen3_asr', 'qwen3_next', 'recurrent_gemma', 'roberta', 'roberta-prelayernorm',
    'sarvam_moe', 'segformer', 'sew', 'smollm3', 't5', 'tapas', 'umt5', 'unispeech-sat', 'vaultgemma',
    'voxtral_realtime', 'wav2vec2-conformer', 'wavlm', 'xlm', 'yoso',
})
