"""PyTorch Lightning + the doctor: one callback. Runs on CPU in seconds.

    python examples/framework_lightning.py          # a dead-ReLU module: prints the report
Writes report.html / report.json into the trainer's log folder (here lightning_logs/version_N).
"""
import torch
import torch.nn.functional as F
from torch import nn

import pytorch_lightning as pl

import impediments as imp


class DeadReLU(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 3))
        with torch.no_grad():
            self.net[2].bias.fill_(-20.0)           # the second ReLU never fires: dead units

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


if __name__ == "__main__":
    torch.manual_seed(0)
    x = torch.randn(512, 8)
    data = torch.utils.data.TensorDataset(x, (x[:, 0] > 0).long())
    doctor = imp.integrations.lightning.Doctor()
    trainer = pl.Trainer(max_steps=30, accelerator="cpu", log_every_n_steps=10, enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False, callbacks=[doctor])
    trainer.fit(DeadReLU(), torch.utils.data.DataLoader(data, batch_size=32))
    assert "dead_units" in doctor.report.codes
