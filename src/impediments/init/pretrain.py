"""Greedy layer-wise autoencoder pre-training of an MLP's hidden layers (Bengio et al. 2007).

For hidden block ``k`` (e.g. ``hidden{k} = linear → act``), with ``h_{k-1}`` the output of
the already pre-trained blocks below it (``h_0 = x``), train the block as the encoder of a
throwaway linear decoder ``D_k``:

.. math:: \\min_{\\theta_k, D_k} \\; \\tfrac{1}{N} \\sum \\lVert D_k(f_k(h_{k-1})) - h_{k-1} \\rVert^2 / d_{k-1},

then discard ``D_k`` and move up. The classifier (the last block with parameters) is not
pre-trained; fine-tune the whole network afterwards.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from impediments.init.initialize import make_generator


class PretrainLayer(NamedTuple):
    """Reconstruction-loss history of one hidden block: ``losses[0]`` before training, then one per epoch."""

    name: str
    losses: list[float]


def _inputs(data) -> torch.Tensor:
    x = getattr(data, "X_train", data)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"data must be a tensor of inputs or a Dataset with X_train, got {type(data).__name__}")
    if x.dim() < 2 or x.shape[0] < 1:
        raise ValueError(f"data must be a non-empty batch (N, features...), got shape {tuple(x.shape)}")
    return x


def _encoders(model: nn.Module) -> list[tuple[str, nn.Module]]:
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"pretrain_layerwise needs an nn.Sequential MLP (e.g. impediments.models.mlp), "
                        f"got {type(model).__name__}")
    children = list(model.named_children())
    with_params = [i for i, (_, c) in enumerate(children) if any(True for _ in c.parameters())]
    if len(with_params) < 2:
        raise ValueError("pretrain_layerwise needs at least one hidden block before the classifier; "
                         f"model blocks with parameters: {[children[i][0] for i in with_params]}")
    return children[: with_params[-1]]


@torch.no_grad()
def _reconstruction_loss(encoder: nn.Module, decoder: nn.Module, h: torch.Tensor, batch_size: int) -> float:
    total = 0.0
    for start in range(0, h.shape[0], batch_size):
        hb = h[start:start + batch_size]
        total += float(nn.functional.mse_loss(decoder(encoder(hb).flatten(1)), hb.flatten(1), reduction="sum"))
    return total / h[0].numel() / h.shape[0]


def pretrain_layerwise(
    model: nn.Sequential, data, *, epochs_per_layer: int, lr: float = 1e-3, batch_size: int = 64,
    seed: int | None = 0, generator: torch.Generator | None = None,
) -> list[PretrainLayer]:
    """Greedily pre-train each hidden block of ``model`` as an autoencoder's encoder.

    Args:
        model: an ``nn.Sequential`` MLP (children such as ``flatten, hidden1, ..., output``).
        data: input tensor ``(N, ...)`` or a :class:`~impediments.data.Dataset` (its ``X_train``).
        epochs_per_layer: passes over ``data`` per hidden block (>= 1).
        lr: Adam learning rate for the block and its decoder.
        batch_size: minibatch size.
        seed, generator: shuffling and decoder init.

    Returns:
        One :class:`PretrainLayer` ``(name, losses)`` per hidden block, ``len(losses) = epochs_per_layer + 1``.

    Raises:
        TypeError: a non-Sequential model or non-tensor data. ValueError: no hidden block, bad sizes.
    """
    for key, value in {"epochs_per_layer": epochs_per_layer, "batch_size": batch_size}.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{key} must be a positive int, got {value!r}")
    x = _inputs(data)
    gen = make_generator(seed, generator)
    history, h = [], x
    was_training = model.training
    try:
        for name, child in _encoders(model):
            if any(True for _ in child.parameters()):
                history.append(PretrainLayer(name, _train_block(child, h, epochs_per_layer, lr, batch_size, gen)))
            with torch.no_grad():
                child.eval()
                h = child(h)
    finally:
        model.train(was_training)
    return history


def _train_block(block: nn.Module, h: torch.Tensor, epochs: int, lr: float, batch_size: int, gen) -> list[float]:
    with torch.no_grad():
        out_features = block.eval()(h[:1]).flatten(1).shape[1]
    decoder = nn.Linear(out_features, h[0].numel()).to(h.device, h.dtype)
    bound = out_features ** -0.5
    with torch.no_grad():
        decoder.weight.copy_(torch.empty(decoder.weight.shape).uniform_(-bound, bound, generator=gen))
        decoder.bias.zero_()
    params = list(block.parameters()) + list(decoder.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    losses = [_reconstruction_loss(block, decoder, h, batch_size)]
    for _ in range(epochs):
        block.train()
        order = torch.randperm(h.shape[0], generator=gen).to(h.device)
        for start in range(0, h.shape[0], batch_size):
            hb = h[order[start:start + batch_size]]
            loss = nn.functional.mse_loss(decoder(block(hb).flatten(1)), hb.flatten(1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        block.eval()
        losses.append(_reconstruction_loss(block, decoder, h, batch_size))
    return losses
