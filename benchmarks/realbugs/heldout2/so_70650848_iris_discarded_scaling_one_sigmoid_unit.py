"""Stack Overflow 70650848: iris with the StandardScaler's output thrown away (``sc.fit_transform(X_train)``
not assigned) and three classes fitted by one sigmoid unit under categorical cross-entropy, which is then 0."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, sklearn_table, standardize

META = {
    "source": "https://stackoverflow.com/questions/70650848 (via deepmufl, Dataset/all-bugs/70650848)",
    "licence": "deepmufl dataset Apache-2.0 (buggy program only); question CC BY-SA; own PyTorch port",
    "labels": ["activation", "loss", "preprocessing_inputs"],
    "expected": [{"code": "output_head_mismatch", "new": False}, {"code": "uncentered_inputs", "new": False}],
    "gate": "accuracy",
    "bug": "raw iris (the scaled copy discarded), Dense(4, relu) BatchNorm Dropout(0.3) twice, Dense(1, sigmoid), "
           "categorical cross-entropy on the integer labels, SGD lr 0.01, batch 16 (the post's early stopping on a "
           "loss that never moves is left out: both versions train 200 steps)",
    "fix": "the scaled inputs used, and Dense(3) logits into CrossEntropyLoss (softmax with categorical "
           "cross-entropy)",
}


def _keras_cce(output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Keras's categorical_crossentropy on probabilities: the output is divided by its sum over the last axis
    (one column: itself, so 1) and clipped, then -sum_k y_k log p_k with the integer labels as the target."""
    p = (output / output.sum(dim=1, keepdim=True)).clamp(1e-7, 1 - 1e-7)
    return -(labels.float().reshape(-1, 1) * p.log()).sum(dim=1).mean()


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = sklearn_table("iris", seed, eval_fraction=0.3)
    if fixed:
        X, Xe = standardize(X, Xe)
    body = [nn.Linear(4, 4), nn.ReLU(), nn.BatchNorm1d(4), nn.Dropout(0.3), nn.Linear(4, 4), nn.ReLU(),
            nn.BatchNorm1d(4), nn.Dropout(0.3)]
    if fixed:
        model, loss = nn.Sequential(*body, nn.Linear(4, 3)), nn.CrossEntropyLoss()
    else:
        model, loss = nn.Sequential(*body, nn.Linear(4, 1), nn.Sigmoid()), _keras_cce
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    return Program(model, opt, loss, X, y, steps=200, batch_size=16, score=accuracy_score(Xe, ye), seed=seed)
