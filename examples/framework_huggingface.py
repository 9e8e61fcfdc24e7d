"""Hugging Face Trainer + the doctor: one callback. A tiny GPT-2 built from a config (nothing downloaded),
initialized with std 1.0 instead of 0.02. Runs on CPU in seconds.

    python examples/framework_huggingface.py
Writes report.html / report.json into the Trainer's output_dir (here hf-doctor-out/).
"""
import torch
import transformers

import impediments as imp

if __name__ == "__main__":
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=64, n_positions=16, n_embd=32, n_layer=2, n_head=2,
                                     initializer_range=1.0)     # the impediment: std 1.0 weights
    model = transformers.GPT2LMHeadModel(config)
    ids = torch.randint(0, 64, (128, 16))
    rows = [{"input_ids": t, "labels": t} for t in ids]
    args = transformers.TrainingArguments(output_dir="hf-doctor-out", max_steps=16, per_device_train_batch_size=8,
                                          logging_steps=8, report_to=[], save_strategy="no", use_cpu=True,
                                          disable_tqdm=True)
    doctor = imp.integrations.huggingface.Doctor()
    transformers.Trainer(model=model, args=args, train_dataset=rows, callbacks=[doctor]).train()
    print(sorted(doctor.report.codes))
