"""The transformers sweep through ``transformers.Trainer`` (issue 25 item 4): the same rows trained by the
Trainer with ``impediments.integrations.huggingface.Doctor()`` as its callback, against the verdicts of
the sweep's own loop under ``imp.watch`` (:mod:`hf_sweep`).

Usage (from the repository root)::

    python benchmarks/hf_sweep.py --trainer [--only TYPE ...] [--steps 40] [--fault-steps 15]

Per type, three Trainer runs on the sweep's data (healthy, init std 1.0, lr 1.0), with the sweep's recipe:
AdamW at lr 1e-3 (or 1.0), weight decay 0.01, a constant schedule without warm-up, no gradient clipping
(``max_grad_norm=0``: the sweep's loop clips nothing), batch 16, one thread. The Trainer shuffles its
batches (the sweep cycles through them in order), so the two loops see the same examples in another
order. A verdict is the warning/error codes of the callback's report; a row agrees when the healthy run
is quiet in both, and each fault is named (a code the healthy run lacks) in both or in neither.
"""
from __future__ import annotations

import tempfile
import time

import torch

from . import hf_models, hf_sweep

#: a sample of the tuned-on types: decoder, MoE, post-LN encoder, encoder-decoder, vision (none held out)
SAMPLE = ("gpt2", "llama", "mixtral", "bert", "bart", "vit")


class _Pool(torch.utils.data.Dataset):
    """The sweep's pool of examples as a map-style dataset of keyword dicts (the Trainer's collator stacks them)."""

    def __init__(self, data: dict[str, torch.Tensor]):
        self.data = data

    def __len__(self) -> int:
        return len(self.data["labels"])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.data.items()}


def trainer_run(spec: hf_models.Spec, fault: str | None = None, steps: int = hf_sweep.DEFAULT_STEPS,
                seed: int = 0) -> dict:
    """One Trainer run with the Doctor callback: its verdict, losses and the report's codes."""
    import transformers

    from impediments.integrations.huggingface import Doctor

    start = time.perf_counter()
    model, injected = hf_sweep.build_faulty(spec, fault, seed)
    lr = hf_sweep.HIGH_LR if fault == "high_lr" else hf_sweep.RECIPE_LR
    doctor = Doctor(out_dir=False, echo=False)
    with tempfile.TemporaryDirectory() as out:
        args = transformers.TrainingArguments(
            output_dir=out, max_steps=steps, per_device_train_batch_size=hf_models.BATCH, learning_rate=lr,
            weight_decay=hf_sweep.WEIGHT_DECAY, lr_scheduler_type="constant", warmup_steps=0, max_grad_norm=0.0,
            logging_steps=steps, save_strategy="no", report_to=[], use_cpu=True, seed=seed, data_seed=seed,
            disable_tqdm=True, dataloader_num_workers=0)
        trainer = transformers.Trainer(model=model, args=args, train_dataset=_Pool(hf_models.make_data(spec.head, seed)),
                                       callbacks=[doctor])
        trainer.remove_callback(transformers.PrinterCallback)
        try:
            trainer.train()
        finally:
            doctor.close()
    report = doctor.report
    loss = report.stats.loss if report is not None else None
    return {"watch": hf_sweep.verdict(report) if report is not None else ["(no report)"],
            "watch_codes": sorted(report.codes) if report is not None else [],
            "loss_first": loss.first if loss else float("nan"), "loss_last": loss.last if loss else float("nan"),
            "steps_run": loss.count if loss else 0, "injected": injected,
            "seconds": round(time.perf_counter() - start, 2)}


def compare(model_type: str, steps: int = hf_sweep.DEFAULT_STEPS, fault_steps: int = hf_sweep.FAULT_STEPS,
            seed: int = 0) -> dict:
    """The Trainer's and the sweep loop's verdicts for one type, healthy and under each fault."""
    hf_sweep._quiet()
    (spec,) = hf_models.specs(types=[model_type])
    row = {"type": model_type, "head": spec.head, "trainer": {}, "loop": {}}
    for fault in (None, *hf_sweep.FAULTS):
        n = steps if fault is None else fault_steps
        key = fault or "healthy"
        row["trainer"][key] = trainer_run(spec, fault, n, seed)
        row["loop"][key] = hf_sweep.run(spec, fault, n, seed)
    healthy = {p: set(row[p]["healthy"]["watch"]) for p in ("trainer", "loop")}
    row["named"] = {p: {f: sorted(set(row[p][f]["watch"]) - healthy[p]) for f in hf_sweep.FAULTS}
                    for p in ("trainer", "loop")}
    row["agrees"] = (not healthy["trainer"] and not healthy["loop"]
                     and all(bool(row["named"]["trainer"][f]) == bool(row["named"]["loop"][f]) for f in hf_sweep.FAULTS))
    return row


def table(rows: list[dict]) -> list[str]:
    """Markdown rows: per type, the healthy verdict and each fault's named codes, Trainer / own loop."""
    lines = ["| type | head | healthy (Trainer / loop) | std 1.0 named (Trainer / loop) | lr 1.0 named (Trainer / loop) "
             "| agree |", "|---|---|---|---|---|---|"]

    def cell(codes):
        return ", ".join(codes) or "quiet"

    for r in rows:
        h = [cell(r[p]["healthy"]["watch"]) for p in ("trainer", "loop")]
        faults = [" / ".join(cell(r["named"][p][f]) for p in ("trainer", "loop")) for f in hf_sweep.FAULTS]
        lines.append(f"| {r['type']} | {r['head']} | {h[0]} / {h[1]} | {faults[0]} | {faults[1]} "
                     f"| {'yes' if r['agrees'] else 'NO'} |")
    return lines


def main(types, steps: int, fault_steps: int, seed: int = 0) -> list[dict]:
    torch.set_num_threads(1)
    rows = []
    for t in types or SAMPLE:
        rows.append(compare(t, steps, fault_steps, seed))
        r = rows[-1]
        print(f"[trainer {len(rows)}/{len(types or SAMPLE)}] {t}: healthy {r['trainer']['healthy']['watch']} / "
              f"{r['loop']['healthy']['watch']}; named {r['named']}; agrees {r['agrees']}", flush=True)
    print("\n".join(table(rows)))
    return rows
