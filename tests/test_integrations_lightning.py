"""The Lightning callback with a real ``pytorch_lightning.Trainer``: one CPU process, and 2-process DDP
on gloo whose merged report equals one process that sees both ranks' batches."""
from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

pl = pytest.importorskip("pytorch_lightning", reason="the lightning extra (make test installs it)")

from impediments.integrations import lightning as imp_lightning  # noqa: E402

STEPS, BATCH = 12, 8


class Lit(pl.LightningModule):
    def __init__(self, dead: bool = False, lr: float = 0.05, fail_at: int | None = None):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 3))
        if dead:
            with torch.no_grad():
                self.net[2].bias.fill_(-20.0)      # every unit of the second ReLU is dead
        self.lr, self.fail_at = lr, fail_at

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        if self.fail_at is not None and batch_idx == self.fail_at:
            raise RuntimeError("boom")
        x, y = batch
        return F.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def dataset(n):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 8, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    return torch.utils.data.TensorDataset(x, y)


def fit(module, tmp_path, callback, batch=BATCH, steps=STEPS, **trainer_kw):
    loader = torch.utils.data.DataLoader(dataset(batch * steps), batch_size=batch, shuffle=False)
    kw = dict(max_steps=steps, accelerator="cpu", devices=1, logger=pl.loggers.CSVLogger(tmp_path, name="csv"),
              enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
              log_every_n_steps=4, callbacks=[callback], default_root_dir=tmp_path)
    kw.update(trainer_kw)
    trainer = pl.Trainer(**kw)
    trainer.fit(module, loader)
    return trainer


def test_healthy_module_one_process(tmp_path):
    doc = imp_lightning.Doctor(echo=False)
    module = Lit()
    trainer = fit(module, tmp_path, doc)
    rep = doc.report
    assert rep is not None and rep.stats.steps == STEPS
    assert [f.code for f in rep.findings if f.severity in ("warning", "error")] == []
    assert set(rep.stats.activations) == {"net.1", "net.3"} and "net.0.weight" in rep.stats.params
    assert rep.stats.inputs is not None and rep.stats.loss.count == STEPS
    assert "optimizer" not in rep.skipped                   # LightningOptimizer was unwrapped and hooked
    folder = Path(trainer.log_dir)
    assert json.loads((folder / "report.json").read_text())["summary"]["codes"] == sorted(rep.codes)
    assert (folder / "report.html").read_text().lstrip().lower().startswith("<!doctype html")
    rows = list(csv.DictReader(open(folder / "metrics.csv")))
    logged = [r for r in rows if r.get("impediments/findings/error") not in (None, "")]
    assert len(logged) == STEPS // 4 - 1 or len(logged) == STEPS // 4   # steps 4, 8 (and 0 or 12)
    assert float(logged[-1]["impediments/dead_fraction/net.1"]) == 0.0
    assert not module._forward_pre_hooks and not module._forward_hooks and doc.monitor is None


def test_dead_relus_are_found_by_layer_name(tmp_path):
    doc = imp_lightning.Doctor(echo=False)
    fit(Lit(dead=True), tmp_path, doc)
    dead = doc.report.by_code("dead_units")
    assert dead and any("net.3" in f.where for f in dead)
    assert doc.report.stats.activations["net.3"].dead_units == list(range(32))


def test_stop_on_error_stops_with_the_finding(tmp_path, capsys):
    doc = imp_lightning.Doctor(stop_on="error", echo=False)
    trainer = fit(Lit(lr=1e6), tmp_path, doc, steps=40)
    assert doc.stopped_by is not None and doc.stopped_by.severity == "error"
    assert trainer.global_step < 40
    assert f"impediments: stopping at step" in capsys.readouterr().out
    with pytest.raises(ValueError, match="stop_on must be one of"):
        imp_lightning.Doctor(stop_on="warning")


def test_hooks_are_removed_when_training_raises(tmp_path):
    doc = imp_lightning.Doctor(echo=False)
    module = Lit(fail_at=3)
    with pytest.raises(RuntimeError, match="boom"):
        fit(module, tmp_path, doc)
    assert doc.monitor is None and not module._forward_pre_hooks and not module._forward_hooks
    assert not module.net[0]._forward_pre_hooks


# ------------------------------------------------------------------------- DDP, 2 processes (gloo)
def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(out: str) -> None:
    """One rank, launched with Lightning's environment variables (Lightning does not re-launch)."""
    torch.set_num_threads(1)
    Path(out).mkdir(parents=True, exist_ok=True)
    doc = imp_lightning.Doctor(out_dir=out, every=1, echo=False)
    ds = dataset(BATCH * STEPS)           # rank r: items r, r+2, ...: step k of both ranks = items 8k..8k+7
    sampler = torch.utils.data.DistributedSampler(ds, num_replicas=2, rank=int(os.environ["RANK"]), shuffle=False)
    loader = torch.utils.data.DataLoader(ds, batch_size=BATCH // 2, sampler=sampler)
    trainer = pl.Trainer(max_steps=STEPS, accelerator="cpu", devices=2, num_nodes=1, strategy="ddp",
                         use_distributed_sampler=False, logger=False, enable_progress_bar=False, enable_model_summary=False,
                         enable_checkpointing=False, callbacks=[doc], default_root_dir=out)
    trainer.fit(Lit(), loader)
    rank = trainer.global_rank
    Path(out, f"rank{rank}.txt").write_text("report" if doc.report is not None else "none")


def _stats_without_identity(d):
    d = dict(d)
    d.pop("title", None)
    return d


def test_ddp_two_processes_report_equals_one_process(tmp_path):
    port = _free_port()
    procs = []
    for rank in range(2):
        env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", NODE_RANK="0",
                   LOCAL_RANK=str(rank), RANK=str(rank), PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
        procs.append(subprocess.Popen([sys.executable, __file__, "--ddp-worker", str(tmp_path / "ddp")], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert (tmp_path / "ddp" / "rank0.txt").read_text() == "report"
    assert (tmp_path / "ddp" / "rank1.txt").read_text() == "none"          # .report is None off rank 0
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir() if p.name.startswith("report")) == \
        ["report.html", "report.json"]                                     # written once, by rank 0
    ddp = json.loads((tmp_path / "ddp" / "report.json").read_text())

    doc = imp_lightning.Doctor(out_dir=tmp_path / "one", every=1, echo=False)   # one process, both halves
    fit(Lit(), tmp_path, doc, batch=BATCH, logger=False)
    one = json.loads((tmp_path / "one" / "report.json").read_text())
    assert ddp["summary"] == one["summary"] and ddp["findings"] == one["findings"]
    a, b = ddp["stats"], one["stats"]
    assert a["steps"] == b["steps"] == STEPS and a["sampled_steps"] == b["sampled_steps"]
    for name, act in b["activations"].items():
        other = a["activations"][name]
        assert other["output"]["count"] == act["output"]["count"]
        assert other["histogram"]["counts"] == act["histogram"]["counts"]
        assert other["unit_active_counts"] == act["unit_active_counts"]
        assert other["output"]["mean"] == pytest.approx(act["output"]["mean"], rel=1e-4, abs=1e-6)
        assert other["output"]["var"] == pytest.approx(act["output"]["var"], rel=1e-4)
    for name, p in b["params"].items():
        assert a["params"][name]["grad_norm"] == pytest.approx(p["grad_norm"], rel=1e-6)
        assert a["params"][name]["update_to_weight"] == pytest.approx(p["update_to_weight"], rel=1e-6)
    assert a["inputs"]["count"] == b["inputs"]["count"]


if __name__ == "__main__" and sys.argv[1:2] == ["--ddp-worker"]:
    _ddp_worker(sys.argv[2])
