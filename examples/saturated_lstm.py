"""Broken: a 2-layer LSTM language model whose weights are drawn with std 1 instead of PyTorch's
U(-1/sqrt(H), 1/sqrt(H)) (std 0.05 at H = 128): its gates, which the monitor recomputes from the
weights on sampled steps (they run inside one fused op), sit in the flat tails of sigmoid and tanh.

    impediments checkup examples/saturated_lstm.py   # exit 1: saturated_units on rnn/l0.*, rnn/l1.*
"""
import torch
from torch import nn

VOCAB, LENGTH = 32, 24


class LanguageModel(nn.Module):
    def __init__(self, hidden: int = 128):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, 64)
        self.rnn = nn.LSTM(64, hidden, num_layers=2, batch_first=True)
        self.out = nn.Linear(hidden, VOCAB)

    def forward(self, tokens):
        h, _ = self.rnn(self.emb(tokens))
        return self.out(h).transpose(1, 2)          # (batch, vocab, time) for cross_entropy


def model():
    torch.manual_seed(0)
    net = LanguageModel()
    for name, p in net.rnn.named_parameters():
        if name.startswith("weight"):
            nn.init.normal_(p, std=1.0)             # the bug: 20x the default scale
    return net


def data():
    """Sequences of a fixed grammar from random first tokens: each token is (5 * previous + 3) mod 32,
    so the next token is learnable (a healthy init gets nearly all of them within 60 Adam steps)."""
    g = torch.Generator().manual_seed(0)
    seq = torch.empty(512, LENGTH + 1, dtype=torch.long)
    seq[:, 0] = torch.randint(0, VOCAB, (512,), generator=g)
    for t in range(1, LENGTH + 1):
        seq[:, t] = (5 * seq[:, t - 1] + 3) % VOCAB
    return seq[:, :-1], seq[:, 1:]


def optimizer(params):
    return torch.optim.Adam(params, lr=1e-3)
