"""torch.compile + the doctor: watch(torch.compile(model)) with no dynamo warnings; layers keep their
names (no _orig_mod.), and the report says under "not checked" what a compiled graph hides.

    python examples/framework_compile.py
"""
import torch
import torch.nn.functional as F
from torch import nn

import impediments as imp

if __name__ == "__main__":
    torch.manual_seed(0)
    model = torch.compile(nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4)))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(64, 16), torch.randint(0, 4, (64,))
    with imp.watch(model, optimizer=opt) as mon:
        for _ in range(15):
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.record_loss(loss)
    report = mon.report()
    print(report)
    assert "torch.compile" in report.skipped and "1" in report.stats.activations
