"""Shah et al.'s reproducibility set, bug 060 (a PyTorch Stack Overflow post): an embedding-LSTM text classifier
that applies ``F.softmax`` to its three class scores before ``nn.CrossEntropyLoss``; the loss sits at ln 3."""
import numpy as np
import torch
from torch import nn

from realbugs._common import Program, _split, accuracy_score, as_tensors

META = {
    "source": "https://github.com/mehilshah/Bug_Reproducibility_DL_Bugs (Bugs/060, a PyTorch Stack Overflow post)",
    "licence": "repository without a licence: nothing copied; own port from the bug description; post CC BY-SA",
    "labels": ["activation", "loss"],
    "expected": [{"code": "softmax_before_loss", "new": False}],
    "gate": "accuracy",
    "bug": "Embedding, Dropout(0.3), LSTM, Linear 1024 and 512 with Dropout(0.8) and ReLU, Linear(3), F.softmax, "
           "CrossEntropyLoss, AdamW lr 1e-2 (here token sequences over a vocabulary of 60, widths 32-16-64-32)",
    "fix": "the class scores go into CrossEntropyLoss as logits (no softmax)",
}


class _TextNet(nn.Module):
    def __init__(self, vocab: int, fixed: bool):
        super().__init__()
        self.embd = nn.Embedding(vocab, 32)
        self.embd_dropout = nn.Dropout(0.3)
        self.lstm = nn.LSTM(32, 16, batch_first=True)
        self.lin1, self.lin2, self.lin3 = nn.Linear(16, 64), nn.Linear(64, 32), nn.Linear(32, 3)
        self.lin_dropout = nn.Dropout(0.8)
        self.fixed = fixed

    def forward(self, tokens):
        _, (h, _) = self.lstm(self.embd_dropout(self.embd(tokens)))
        h = torch.relu(self.lin_dropout(self.lin1(h[-1])))
        h = torch.relu(self.lin_dropout(self.lin2(h)))
        scores = self.lin3(h)
        return scores if self.fixed else torch.softmax(scores, dim=1)


def _authors(seed: int, n: int = 900, length: int = 12, vocab: int = 60):
    """Three 'authors', each drawing 70% of its tokens from its own 15-word favourites, the rest from the vocabulary."""
    rng = np.random.default_rng(4000 + seed)
    labels = rng.integers(0, 3, size=n)
    own = rng.integers(0, 15, size=(n, length)) + 15 * labels[:, None]
    anyword = rng.integers(0, vocab, size=(n, length))
    tokens = np.where(rng.random((n, length)) < 0.7, own, anyword)
    return as_tensors(*_split(tokens, labels, seed, 0.25), label_dtype_at=(0, 1, 2, 3))


def build(seed: int, fixed: bool) -> Program:
    torch.manual_seed(seed)
    X, y, Xe, ye = _authors(seed)
    model = _TextNet(60, fixed)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    return Program(model, opt, nn.CrossEntropyLoss(), X, y, steps=150, batch_size=32,
                   score=accuracy_score(Xe, ye), seed=seed)
