"""The Hugging Face callback with a real ``transformers.Trainer`` on tiny GPT-2, BERT and ViT built from
configs (nothing downloaded), each healthy and broken (weights drawn with std 1.0 instead of 0.02)."""
from __future__ import annotations

import json

import pytest
import torch

transformers = pytest.importorskip("transformers", reason="the transformers extra (make test installs it)")

from impediments.integrations import huggingface as imp_hf  # noqa: E402
from impediments import watch  # noqa: E402

STEPS, BATCH = 12, 8


def gpt2(std):
    cfg = transformers.GPT2Config(vocab_size=64, n_positions=16, n_embd=32, n_layer=2, n_head=2,
                                  initializer_range=std)
    return transformers.GPT2LMHeadModel(cfg)


def bert(std):
    cfg = transformers.BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=64, max_position_embeddings=16, num_labels=3,
                                  initializer_range=std)
    return transformers.BertForSequenceClassification(cfg)


def vit(std):
    cfg = transformers.ViTConfig(image_size=16, patch_size=4, num_channels=3, hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=2, intermediate_size=64, num_labels=3, initializer_range=std)
    return transformers.ViTForImageClassification(cfg)


def rows(kind, n=BATCH * STEPS):
    g = torch.Generator().manual_seed(0)
    if kind == "vit":
        x = torch.randn(n, 3, 16, 16, generator=g)
        return [{"pixel_values": x[i], "labels": int(x[i, 0].mean() > 0)} for i in range(n)]
    ids = torch.randint(0, 64, (n, 16), generator=g)
    if kind == "gpt2":
        return [{"input_ids": ids[i], "labels": ids[i]} for i in range(n)]
    return [{"input_ids": ids[i], "labels": int(ids[i, 0] % 3)} for i in range(n)]


MODELS = {"gpt2": gpt2, "bert": bert, "vit": vit}


def train(kind, std, tmp_path, **doc_kw):
    torch.manual_seed(0)
    model = MODELS[kind](std)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / kind), max_steps=STEPS, per_device_train_batch_size=BATCH, learning_rate=1e-3,
        logging_steps=4, report_to=[], save_strategy="no", use_cpu=True, disable_tqdm=True, seed=0,
        dataloader_num_workers=0)
    doc = imp_hf.Doctor(echo=False, **doc_kw)
    seen = LogsSeen()                     # after the Doctor: what every reporter receives
    trainer = transformers.Trainer(model=model, args=args, train_dataset=rows(kind), callbacks=[doc, seen])
    trainer.train()
    return doc, seen, model


class LogsSeen(transformers.TrainerCallback):
    def __init__(self):
        self.logs = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.logs.append(dict(logs))


@pytest.mark.parametrize("kind", ["gpt2", "bert", "vit"])
def test_healthy_and_broken_tiny_models(kind, tmp_path):
    doc, seen, model = train(kind, 0.02, tmp_path)
    rep = doc.report
    assert rep.stats.steps == STEPS and rep.stats.loss.count == STEPS
    assert "optimizer" not in rep.skipped                     # AcceleratedOptimizer unwrapped and hooked
    assert all(p.update_to_weight > 0 for p in rep.stats.params.values() if p.samples)
    assert [f.code for f in rep.findings if f.severity in ("warning", "error")] == []
    saved = json.loads((tmp_path / kind / "report.json").read_text())
    assert saved["summary"]["codes"] == sorted(rep.codes)
    logged = [h for h in seen.logs if "loss" in h and "impediments/findings/error" in h]
    assert len(logged) == STEPS // 4
    assert logged[-1]["impediments/findings/error"] == 0.0
    assert any(k.startswith("impediments/update_to_weight/") for k in logged[-1])
    assert not model._forward_hooks and not model._forward_pre_hooks and doc.monitor is None

    broken, _, _ = train(kind, 1.0, tmp_path / "broken")
    code, where = BROKEN[kind]
    found = broken.report.by_code(code)
    assert found and found[0].severity in ("warning", "error"), broken.report.codes
    assert where(list(found[0].where)), found[0].where        # the framework's own module names


# What std-1.0 weights do to each, as measured (12 steps, lr 1e-3, the Trainer's default max_grad_norm=1):
# GPT-2's tanh GELU and BERT's tanh pooler saturate; ViT's exact GELU sits behind pre-LayerNorm and does
# not (34 % of its inputs in the saturated region, no unit stuck), but its gradient norm (16-26) is
# clipped to 1 at every step, which the loop rule names at the clipping call.
BROKEN = {
    "gpt2": ("saturated_units", lambda w: any(n.startswith("transformer.h.") and n.endswith("mlp.act/tanh#0")
                                              for n in w)),
    "bert": ("saturated_units", lambda w: "bert.pooler.activation" in w),
    "vit": ("gradient_clipping_dominates", lambda w: w == ["clip_grad_norm_"]),
}


def test_accelerated_optimizer_is_unwrapped_and_odd_optimizers_are_named():
    from accelerate.optimizer import AcceleratedOptimizer

    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    inner = torch.optim.SGD(model.parameters(), lr=0.1)
    opt = AcceleratedOptimizer(inner)
    with watch(model, optimizer=opt, every=1) as mon:
        for _ in range(3):
            model(torch.randn(16, 4)).pow(2).mean().backward()
            opt.step()
            opt.zero_grad()
    s = mon.stats()
    assert s.steps == 3 and s.optimizer["type"] == "SGD" and not s.not_checked
    assert all(p.samples == 3 and p.update_to_weight > 0 for p in s.params.values())

    class Stepper:                               # no torch optimizer anywhere inside
        def step(self):
            pass

    with watch(model, optimizer=Stepper(), every=1) as mon:
        model(torch.randn(16, 4)).pow(2).mean().backward()
    s = mon.stats()
    assert "Stepper has no torch optimizer step hooks" in s.not_checked["optimizer"]
    assert s.steps == 1 and s.params["0.weight"].samples == 1            # gradients still recorded
