"""Stack Overflow 60508218: a two-class CNN trained with Adam at lr 3e-5 for 20 short epochs."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, digits, keras_bce, onehot, standardize

META = {
    "source": "https://stackoverflow.com/questions/60508218 (via deepmufl, Dataset/all-bugs/60508218)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["learning_rate"],
    "expected": [{"code": "learning_rate_too_low", "new": True}],
    "gate": "accuracy",
    "bug": "Conv2D(32), Conv2D(64), MaxPool, Dense(128), Dense(2, sigmoid), binary CE, Adam lr 3e-5",
    "fix": "Adam at its default lr 1e-3",
}


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = digits(seed, classes=(3, 8))
    X, Xe = (t.reshape(-1, 1, 8, 8) for t in standardize(X, Xe))
    model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Conv2d(8, 16, 3), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Dropout(0.25), nn.Flatten(), nn.Linear(16 * 4, 32), nn.ReLU(), nn.Dropout(0.5),
                          nn.Linear(32, 2), nn.Sigmoid())
    opt = torch.optim.Adam(model.parameters(), lr=1e-3 if fixed else 3e-5)
    return Program(model, opt, keras_bce, X, onehot(y, 2), steps=180, batch_size=10,
                   score=accuracy_score(Xe, ye), seed=seed)
