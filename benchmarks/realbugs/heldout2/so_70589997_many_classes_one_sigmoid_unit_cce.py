"""Stack Overflow 70589997: a many-class image CNN (integer labels) with one sigmoid output unit under
categorical cross-entropy, which normalizes that one unit to 1: the loss is 0 and nothing is learned."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, digits, standardize

META = {
    "source": "https://stackoverflow.com/questions/70589997 (via deepmufl, Dataset/all-bugs/70589997)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation", "loss", "layers"],
    "expected": [{"code": "output_head_mismatch", "new": False}],
    "gate": "accuracy",
    "bug": "four relu Conv2D/MaxPool blocks, Flatten, Dense(1, sigmoid), categorical cross-entropy on integer labels "
           "of 101 classes, Adam (here 10 digit classes, two conv blocks on 8x8)",
    "fix": "one logit per class (Dense(C)) into sparse categorical cross-entropy (CrossEntropyLoss on the labels)",
}


def _keras_cce(output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Keras's categorical_crossentropy on probabilities: the output divided by its sum over the last axis (one
    column: 1), clipped, then -sum_k y_k log p_k with the integer labels as a one-column target."""
    p = (output / output.sum(dim=1, keepdim=True)).clamp(1e-7, 1 - 1e-7)
    return -(labels.float().reshape(-1, 1) * p.log()).sum(dim=1).mean()


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = digits(seed)
    X, Xe = (t.reshape(-1, 1, 8, 8) for t in standardize(X, Xe))
    body = [nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2), nn.Flatten()]
    if fixed:
        model, loss = nn.Sequential(*body, nn.Linear(64 * 4, 10)), nn.CrossEntropyLoss()
    else:
        model, loss = nn.Sequential(*body, nn.Linear(64 * 4, 1), nn.Sigmoid()), _keras_cce
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Program(model, opt, loss, X, y, steps=150, batch_size=32, score=accuracy_score(Xe, ye), seed=seed)
