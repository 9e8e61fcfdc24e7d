"""TrainCheck's reproduction of PyTorch forum thread 84911 ("abnormal changes in loss and accuracy"): every
parameter except the BatchNorm layers' is frozen by accident, the classifier included."""
import torch
from torch import nn

from realbugs._common import Program, accuracy_score, digits, standardize

META = {
    "source": "https://discuss.pytorch.org/t/obtaining-abnormal-changes-in-loss-and-accuracy/84911 (reproduced in "
              "OrderLab/TrainCheck-Evaluation-Workloads, silent-issue-detection/bug-reprod-scripts/pytorch-forum-84911)",
    "licence": "forum post; TrainCheck workloads without a licence: nothing copied; own port from the description",
    "labels": ["frozen_parameters"],
    "expected": [{"code": "almost_all_frozen", "new": True}],
    "gate": "accuracy",
    "bug": "requires_grad = False for every parameter whose name lacks 'bn', and for the final classifier",
    "fix": "train every parameter (freeze nothing when training from this initialization)",
}


class BNNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16)
        self.conv2, self.bn2 = nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32)
        self.fc = nn.Linear(32 * 16, 10)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = nn.functional.max_pool2d(torch.relu(self.bn2(self.conv2(x))), 2)
        return self.fc(x.flatten(1))


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = digits(seed)
    X, Xe = (t.reshape(-1, 1, 8, 8) for t in standardize(X, Xe))
    model = BNNet()
    if not fixed:
        for name, p in model.named_parameters():
            if "bn" not in name:
                p.requires_grad = False
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05, momentum=0.9)
    return Program(model, opt, nn.CrossEntropyLoss(), X, y, steps=100, batch_size=32,
                   score=accuracy_score(Xe, ye), seed=seed)
