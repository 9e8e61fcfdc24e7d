"""Stack Overflow 61498304: a LeNet-style CNN whose four dense layers use Keras's ``'uniform'`` initializer
(U(-0.05, 0.05)) and an L2 penalty of 0.01 each: the signal shrinks layer by layer and training stays at chance."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, classification

META = {
    "source": "https://stackoverflow.com/questions/61498304 (via deepmufl, Dataset/all-bugs/61498304)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["init"],
    "expected": [{"code": "vanishing_gradients", "new": False}, {"code": "vanishing_activations", "new": False}],
    "gate": "accuracy",
    "bug": "Conv(6, 5x5) pool Conv(16, 5x5) pool, Dense 128-64-64-64 relu with kernel_initializer='uniform' "
           "(U(-0.05, 0.05)) and l2(0.01) each, Dropout(0.2) after each, Dense(2, softmax), categorical CE, Adam; "
           "inputs 3x16x16 from make_classification (the post's 32x32x3)",
    "fix": "the default Glorot-uniform init and no L2 penalty on the dense stack",
}


class _LeNet(nn.Module):
    def __init__(self, fixed: bool):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 3), nn.ReLU(),
                                      nn.MaxPool2d(2), nn.Flatten())
        self.dense = nn.ModuleList([nn.Linear(16 * 2 * 2, 128), nn.Linear(128, 64), nn.Linear(64, 64),
                                    nn.Linear(64, 64)])
        self.drop = nn.Dropout(0.2)
        self.out = nn.Linear(64, 2)
        for layer in self.dense:
            if fixed:
                nn.init.xavier_uniform_(layer.weight)
            else:
                nn.init.uniform_(layer.weight, -0.05, 0.05)
            nn.init.zeros_(layer.bias)
        nn.init.xavier_uniform_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x):
        h = self.features(x)
        for layer in self.dense:
            h = self.drop(torch.relu(layer(h)))
        return self.out(h)


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = classification(seed, 1000, 3 * 16 * 16, eval_fraction=0.2)
    X, Xe = (t.reshape(-1, 3, 16, 16) for t in (X, Xe))
    model = _LeNet(fixed)
    ce = nn.CrossEntropyLoss()

    def loss(out, target):
        if fixed:
            return ce(out, target)
        return ce(out, target) + 0.01 * sum((layer.weight ** 2).sum() for layer in model.dense)   # Keras l2(0.01)

    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Program(model, opt, loss, X, y, steps=200, batch_size=32, score=accuracy_score(Xe, ye), seed=seed)
