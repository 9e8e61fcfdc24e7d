"""Shared helpers for tools that run a model over batches and watch its BatchNorms."""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn

from impediments.norm.moments import ChannelMoments

Forward = Callable[[nn.Module, Any], Any]


def default_forward(model: nn.Module, batch: Any) -> Any:
    """``model(batch)`` for a tensor, ``model(batch[0])`` for an ``(inputs, targets, ...)`` tuple/list."""
    if isinstance(batch, torch.Tensor):
        return model(batch)
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
        return model(batch[0])
    raise TypeError(f"cannot feed a batch of type {type(batch).__name__} to the model: give tensors, "
                    "(inputs, targets) tuples, or pass forward=lambda model, batch: ...")


def check_max_batches(max_batches: object) -> None:
    if not isinstance(max_batches, int) or isinstance(max_batches, bool) or max_batches < 1:
        raise ValueError(f"max_batches must be a positive integer, got {max_batches!r}")


def check_batches(batches: object, fn: str) -> None:
    if isinstance(batches, torch.Tensor) or not isinstance(batches, Iterable):
        raise TypeError(f"{fn}() expects an iterable of batches (e.g. a DataLoader or a list of tensors), "
                        f"got {type(batches).__name__}")


def take(batches: Iterable, max_batches: int) -> Iterator:
    for k, batch in enumerate(batches):
        if k >= max_batches:
            return
        yield batch


@contextlib.contextmanager
def recording_inputs(modules: dict[str, nn.Module], moments: dict[str, ChannelMoments]):
    """Feed each module's input into its ``ChannelMoments`` while inside; hooks removed on exit."""
    handles = []
    try:
        for name, module in modules.items():
            acc = moments[name]
            handles.append(module.register_forward_pre_hook(lambda _m, args, acc=acc: acc.update(args[0])))
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def preserved_buffers_and_modes(model: nn.Module, bns: Iterable[nn.Module]):
    """Restore every module's ``training`` flag, these BatchNorms' buffers and the CPU RNG state on exit."""
    modes = [(m, m.training) for m in model.modules()]
    saved = [(b, {k: v.clone() for k, v in b.named_buffers(recurse=False) if v is not None}) for b in bns]
    try:
        with torch.random.fork_rng(devices=[]):  # dropout in the passes leaves the caller's CPU RNG alone
            yield
    finally:
        for m, mode in modes:
            m.training = mode
        with torch.no_grad():
            for b, buffers in saved:
                for k, v in buffers.items():
                    getattr(b, k).copy_(v)
