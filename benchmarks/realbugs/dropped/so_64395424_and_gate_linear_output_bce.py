"""Stack Overflow 64395424: an AND gate learned with a linear output unit and (probability) binary CE."""
import torch
from torch import nn

from realbugs._common import Program, keras_bce

META = {
    "source": "https://stackoverflow.com/questions/64395424 (via deepmufl, Dataset/all-bugs/64395424)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation", "loss"],
    "expected": [{"code": "output_head_mismatch", "new": True}],
    "gate": "loss",
    "bug": "Dense(2, relu), Dense(128, relu), Dense(1) linear, BinaryCrossentropy() (from_logits=False), Adam",
    "fix": "sigmoid on the output (equivalently from_logits=True); gate: binary CE of the decided probability",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X = torch.tensor([[1., 1.], [1., 0.], [0., 1.], [0., 0.]])
    y = torch.tensor([1., 0., 0., 0.])
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 128), nn.ReLU(), nn.Linear(128, 1),
                          *([nn.Sigmoid()] if fixed else []))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Program(model, opt, keras_bce, X, y, steps=300, batch_size=None,
                   score=lambda m: -float(keras_bce(m(X), y)), seed=seed)
