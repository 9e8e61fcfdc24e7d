"""Stack Overflow 57326611: a two-unit softmax output trained with binary cross-entropy on 0/1 labels: each label is
broadcast to both units, whose probabilities sum to 1, so the best either can do is 0.5."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, classification

META = {
    "source": "https://stackoverflow.com/questions/57326611 (via deepmufl, Dataset/all-bugs/57326611)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation", "loss"],
    "expected": [{"code": "output_head_mismatch", "new": False}],
    "gate": "accuracy",
    "bug": "5 features, Dense(50, relu), Dense(2, softmax), binary cross-entropy on integer 0/1 labels (Keras "
           "broadcasts the (N, 1) label against both units), Adam, 20 epochs (here 300 steps of 32)",
    "fix": "the two scores into sparse categorical cross-entropy (CrossEntropyLoss on the labels)",
}


def _keras_bce_broadcast(output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Keras's binary_crossentropy with y_true (N,) expanded to (N, 1) and broadcast over the two softmax units."""
    p = output.clamp(1e-7, 1 - 1e-7)
    t = labels.float().reshape(-1, 1)
    return -(t * p.log() + (1 - t) * (1 - p).log()).mean()


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = classification(seed, 10_000, 5)
    model = nn.Sequential(nn.Linear(5, 50), nn.ReLU(), nn.Linear(50, 2), *([] if fixed else [nn.Softmax(dim=1)]))
    loss = nn.CrossEntropyLoss() if fixed else _keras_bce_broadcast
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Program(model, opt, loss, X, y, steps=300, batch_size=32, score=accuracy_score(Xe, ye), seed=seed)
