"""Stack Overflow 53700537: a Conv1D classifier whose 3 class scores are ReLU(no bias) before categorical CE."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, classification

META = {
    "source": "https://stackoverflow.com/questions/53700537 (via deepmufl, Dataset/all-bugs/53700537)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation"],
    "expected": [{"code": "output_head_mismatch", "new": True}],
    "gate": "accuracy",
    "bug": "Conv1D/MaxPool stack, global average pooling, Dense(3, relu, use_bias=False), categorical CE, Adam",
    "fix": "softmax output: the class scores go into CrossEntropyLoss without a ReLU",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = classification(seed, 1000, 200, classes=3, informative=3)
    X, Xe = X.unsqueeze(1), Xe.unsqueeze(1)
    model = nn.Sequential(nn.Conv1d(1, 20, 20), nn.ReLU(), nn.MaxPool1d(3), nn.Conv1d(20, 20, 10), nn.ReLU(),
                          nn.MaxPool1d(3), nn.Conv1d(20, 20, 10), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(),
                          nn.Linear(20, 3, bias=fixed), *([] if fixed else [nn.ReLU()]))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Program(model, opt, nn.CrossEntropyLoss(), X, y, steps=100, batch_size=32,
                   score=accuracy_score(Xe, ye), seed=seed)
