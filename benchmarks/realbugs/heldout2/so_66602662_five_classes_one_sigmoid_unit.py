"""Stack Overflow 66602662: five classes fitted by one sigmoid unit under categorical cross-entropy from logits:
a softmax over one unit is 1, so the loss is 0 and nothing is learned."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, classification

META = {
    "source": "https://stackoverflow.com/questions/66602662 (via deepmufl, Dataset/all-bugs/66602662)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation", "loss", "layers"],
    "expected": [{"code": "output_head_mismatch", "new": False}],
    "gate": "accuracy",
    "bug": "5 features, 5 classes (integer labels), Dense(32) Dense(16) Dropout Dense(8) Dropout (relu), "
           "Dense(1, sigmoid), CategoricalCrossentropy(from_logits=True), Adam, batch 24",
    "fix": "Dense(5) logits into sparse categorical cross-entropy (CrossEntropyLoss on the integer labels)",
}


def _keras_cce_from_logits(output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Keras's CategoricalCrossentropy(from_logits=True) with the integer labels taken as a one-column target:
    -sum_k y_k log softmax(z)_k over the output's single column."""
    return -(labels.float().reshape(-1, 1) * torch.log_softmax(output, dim=1)).sum(dim=1).mean()


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = classification(seed, 1000, 5, classes=5, informative=4)
    body = [nn.Linear(5, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 8), nn.ReLU(),
            nn.Dropout(0.2)]
    if fixed:
        model, loss = nn.Sequential(*body, nn.Linear(8, 5)), nn.CrossEntropyLoss()
    else:
        model, loss = nn.Sequential(*body, nn.Linear(8, 1), nn.Sigmoid()), _keras_cce_from_logits
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Program(model, opt, loss, X, y, steps=250, batch_size=24, score=accuracy_score(Xe, ye), seed=seed)
