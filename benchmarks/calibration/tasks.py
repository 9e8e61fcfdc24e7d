"""Small learnable tasks built in memory: smooth random images, upsampled digits, a Markov-chain language.

Nothing is downloaded: the digits come from scikit-learn's bundled copy (via
:func:`impediments.load_dataset`), everything else is generated from a seed.
Every task returns ``(X, y)`` tensors; images are standardized with one global
mean and std per channel (what a user does), tokens are ``int64`` ids.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F


def _standardize_channels(x: torch.Tensor) -> torch.Tensor:
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    std = x.std(dim=(0, 2, 3), keepdim=True)
    return (x - mean) / std


def smooth_images(n: int = 512, classes: int = 10, size: int = 16, channels: int = 3, seed: int = 0):
    """Images ``prototype[class] + noise``, both smooth (bilinear upsampling of 4x4 random fields).

    Returns ``(X, y)``: ``X`` float32 ``(n, channels, size, size)`` standardized per channel,
    ``y`` int64 labels in ``[0, classes)``. A small CNN reaches > 90% training accuracy in a few
    dozen steps; the signal-to-noise ratio is 1.
    """
    g = torch.Generator().manual_seed(1000 + seed)
    protos = torch.randn(classes, channels, 4, 4, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    noise = torch.randn(n, channels, 4, 4, generator=g)
    low = protos[y] + noise
    x = F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    x = x + 0.1 * torch.randn(n, channels, size, size, generator=g)
    return _standardize_channels(x).float(), y


def raw_pixels(x: torch.Tensor) -> torch.Tensor:
    """The same images as raw 8-bit pixel values in [0, 255] (unscaled, uncentered)."""
    lo, hi = x.amin(), x.amax()
    return ((x - lo) / (hi - lo) * 255.0).round()


def digits_images(size: int = 32, seed: int = 0):
    """scikit-learn's 8x8 digits upsampled to ``1 x size x size``, scaled to [0, 1], then standardized
    with one global mean and std (the usual image pipeline; border pixels stay nearly constant)."""
    from impediments import load_dataset

    ds = load_dataset("digits", seed=seed, standardize=False)
    x = ds.X_train.reshape(-1, 1, 8, 8).float() / 16.0
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return _standardize_channels(x), ds.y_train.long()


def markov_chain(vocab: int, seed: int, branching: int = 3) -> torch.Tensor:
    """A row-stochastic ``(vocab, vocab)`` transition matrix: each token has ``branching`` likely successors."""
    g = torch.Generator().manual_seed(2000 + seed)
    logits = torch.full((vocab, vocab), -4.0)
    succ = torch.stack([torch.randperm(vocab, generator=g)[:branching] for _ in range(vocab)])
    logits.scatter_(1, succ, 2.0 * torch.rand(vocab, branching, generator=g) + 1.0)
    return logits.softmax(dim=1)


def sample_chain(trans: torch.Tensor, n: int, length: int, g: torch.Generator) -> torch.Tensor:
    vocab = trans.shape[0]
    seq = torch.empty(n, length, dtype=torch.long)
    seq[:, 0] = torch.randint(0, vocab, (n,), generator=g)
    for t in range(1, length):
        seq[:, t] = torch.multinomial(trans[seq[:, t - 1]], 1, generator=g).squeeze(1)
    return seq


def language(n: int = 512, vocab: int = 32, length: int = 33, seed: int = 0):
    """Next-token prediction on a sparse Markov chain: ``X = seq[:, :-1]``, ``y = seq[:, 1:]`` (int64)."""
    g = torch.Generator().manual_seed(3000 + seed)
    seq = sample_chain(markov_chain(vocab, seed), n, length, g)
    return seq[:, :-1].contiguous(), seq[:, 1:].contiguous()


def chain_classification(n: int = 512, vocab: int = 32, length: int = 24, seed: int = 0):
    """Which of two Markov chains produced the sequence (label 0 or 1); token 0 is a ``[CLS]`` token
    prepended to every sequence (the chains use ids ``1..vocab-1``)."""
    g = torch.Generator().manual_seed(4000 + seed)
    chains = [markov_chain(vocab - 1, seed), markov_chain(vocab - 1, seed + 7)]
    y = torch.randint(0, 2, (n,), generator=g)
    seq = torch.empty(n, length, dtype=torch.long)
    for label in (0, 1):
        idx = (y == label).nonzero().squeeze(1)
        seq[idx] = sample_chain(chains[label], len(idx), length, g) + 1
    cls = torch.zeros(n, 1, dtype=torch.long)
    return torch.cat([cls, seq], dim=1), y
