"""Keras-style freezing for any PyTorch model: ``freeze``, ``unfreeze``, ``frozen_state``.

In PyTorch, ``requires_grad=False`` does not freeze a BatchNorm: in training
mode it still normalizes with batch statistics and keeps updating its running
statistics, and ``model.train()`` silently undoes an earlier ``bn.eval()``.
Keras resolves this by making ``trainable=False`` mean inference mode
("frozen state" and "inference mode" are separate concepts, Keras 3 docs).

Mechanism (works for ours and every ``torch.nn.modules.batchnorm._BatchNorm``,
including ``SyncBatchNorm``), two layers deep:

1. the frozen BatchNorm instance gets its own ``train`` (an instance
   attribute that shadows ``nn.Module.train``) which keeps ``training=False``,
   so ``model.train()`` leaves it in inference mode and ``bn.training`` tells
   the truth;
2. a forward pre-hook sets ``training=False`` before every forward, so even a
   direct ``bn.training = True`` cannot make it use batch statistics.

In inference mode a BatchNorm neither reads the batch statistics nor writes
its buffers, so the running statistics stay bit-for-bit unchanged. Both
pieces are plain module-level functions, so frozen models survive
``copy.deepcopy`` and ``torch.save``/``torch.load`` (whole-model pickling).
"""
from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

from impediments.norm.batchnorm import BatchNorm
from impediments.norm.groupnorm import GroupNorm, InstanceNorm
from impediments.norm.layernorm import LayerNorm

_BN_ATTR = "_impediments_frozen_bn"      # on a frozen BN: {"training": bool, "token": int}
_ROOT_ATTR = "_impediments_freezes"      # on a freeze() root: stack of records for unfreeze()
_tokens = itertools.count(1)


def is_batch_norm(module: object) -> bool:
    """True for :class:`impediments.norm.BatchNorm` and every torch ``_BatchNorm`` (incl. ``SyncBatchNorm``)."""
    return isinstance(module, (BatchNorm, _BatchNorm))


def is_frozen(module: object) -> bool:
    """True if ``module`` is a BatchNorm put into frozen inference mode by :func:`freeze`."""
    return isinstance(module, nn.Module) and getattr(module, _BN_ATTR, None) is not None


def _frozen_train(module: nn.Module, mode: bool = True) -> nn.Module:
    """``train()`` of a frozen BatchNorm: children follow ``mode``, the BN stays in inference mode."""
    if not isinstance(mode, bool):
        raise ValueError(f"training mode is expected to be boolean, got {mode!r}")
    for child in module.children():
        child.train(mode)
    module.training = False
    return module


def _frozen_pre_hook(module: nn.Module, args: tuple) -> None:
    if module.training:
        module.training = False


def _freeze_bn(bn: nn.Module, token: int) -> None:
    setattr(bn, _BN_ATTR, {"training": bn.training, "token": token})
    bn.train = functools.partial(_frozen_train, bn)
    bn.register_forward_pre_hook(_frozen_pre_hook)
    bn.training = False


def _unfreeze_bn(bn: nn.Module) -> None:
    record = bn.__dict__.pop(_BN_ATTR)
    bn.__dict__.pop("train", None)
    for key in [k for k, hook in bn._forward_pre_hooks.items() if hook is _frozen_pre_hook]:
        del bn._forward_pre_hooks[key]
    bn.training = record["training"]


def _check_module(module: object, fn: str) -> None:
    if not isinstance(module, nn.Module):
        raise TypeError(f"{fn}() expects a torch.nn.Module, got {type(module).__name__}: {module!r:.80}")


def freeze(module: nn.Module) -> nn.Module:
    """Freeze ``module`` like Keras ``trainable = False``.

    * every parameter gets ``requires_grad=False`` and its ``.grad`` is
      cleared (so an optimizer holding it skips it);
    * every BatchNorm inside (ours or torch's) is put into inference mode that
      survives ``model.train()``: it normalizes with its running statistics
      and never updates them. Dropout and other layers keep following
      ``train()``/``eval()``.

    Freezes nest; undo with :func:`unfreeze` in reverse order, on the same
    object (``freeze(model[:2])`` works, but ``model[:2]`` builds a new
    ``Sequential`` each time, so keep a reference to unfreeze it).

    Args:
        module: any ``nn.Module`` (a whole model or a sub-network such as a
            pretrained backbone).

    Returns:
        ``module`` itself, for chaining.

    Raises:
        TypeError: if ``module`` is not an ``nn.Module``.

    Examples:
        >>> model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
        >>> _ = freeze(model).train()
        >>> model[1].training, model[0].weight.requires_grad
        (False, False)
    """
    _check_module(module, "freeze")
    token = next(_tokens)
    record = {"token": token, "requires_grad": {}, "bns": []}
    for name, p in module.named_parameters():
        record["requires_grad"][name] = p.requires_grad
        p.requires_grad_(False)
        p.grad = None
    for name, sub in module.named_modules():
        if is_batch_norm(sub) and not is_frozen(sub):
            _freeze_bn(sub, token)
            record["bns"].append(name)
    module.__dict__.setdefault(_ROOT_ATTR, []).append(record)
    return module


def unfreeze(module: nn.Module) -> nn.Module:
    """Undo the most recent :func:`freeze` of ``module`` exactly.

    Restores each parameter's ``requires_grad`` and each BatchNorm's
    ``training`` flag to what they were when ``freeze`` was called, and
    removes the frozen-mode ``train`` override and pre-hook. BatchNorms that
    were already frozen by an inner ``freeze`` stay frozen.

    Raises:
        TypeError: if ``module`` is not an ``nn.Module``.
        ValueError: if ``module`` was not frozen with :func:`freeze`.
    """
    _check_module(module, "unfreeze")
    stack = module.__dict__.get(_ROOT_ATTR)
    if not stack:
        raise ValueError(f"unfreeze(): this {type(module).__name__} was not frozen with impediments.norm.freeze(); "
                         "call unfreeze on the same module that was passed to freeze")
    record = stack.pop()
    if not stack:
        del module.__dict__[_ROOT_ATTR]
    params = dict(module.named_parameters())
    for name, flag in record["requires_grad"].items():
        if name in params:
            params[name].requires_grad_(flag)
    modules = dict(module.named_modules())
    for name in record["bns"]:
        bn = modules.get(name)
        if bn is not None and is_frozen(bn) and getattr(bn, _BN_ATTR)["token"] == record["token"]:
            _unfreeze_bn(bn)
    return module


@dataclass(frozen=True)
class NormLayerState:
    """What one normalization layer does right now.

    Attributes:
        name: qualified module name.
        kind: ``"batch"``, ``"layer"``, ``"group"``, ``"instance"`` or ``"rms"``.
        trainable: whether any of its parameters has ``requires_grad`` (False without parameters).
        frozen: frozen by :func:`freeze` (BatchNorm only).
        training: the module's ``training`` flag.
        statistics: what it normalizes with: ``"batch"`` (this batch's
            per-channel statistics), ``"running"`` (stored population
            statistics) or ``"per-example"`` (LayerNorm/GroupNorm/InstanceNorm).
        updates_running_stats: whether a forward pass now changes its buffers.
    """

    name: str
    kind: str
    trainable: bool
    frozen: bool
    training: bool
    statistics: str
    updates_running_stats: bool

    def __str__(self) -> str:
        mode = "frozen" if self.frozen else ("training" if self.training else "inference")
        updates = ", updates running stats" if self.updates_running_stats else ""
        return (f"{self.name}: {self.kind} norm, {mode}, {'trainable' if self.trainable else 'not trainable'}, "
                f"{self.statistics} statistics{updates}")


def _kind(module: nn.Module) -> str | None:
    if is_batch_norm(module):
        return "batch"
    if isinstance(module, (InstanceNorm, _InstanceNorm)):
        return "instance"
    if isinstance(module, (GroupNorm, nn.GroupNorm)):
        return "group"
    if isinstance(module, (LayerNorm, nn.LayerNorm)):
        return "layer"
    if isinstance(module, getattr(nn, "RMSNorm", ())):
        return "rms"
    return None


def _statistics(module: nn.Module, kind: str) -> tuple[str, bool]:
    has_running = getattr(module, "running_mean", None) is not None
    tracks = bool(getattr(module, "track_running_stats", False)) and has_running
    if kind == "batch":
        batch = (module.training and not is_frozen(module)) or not has_running
        return ("batch" if batch else "running"), batch and tracks
    if kind == "instance" and has_running and not module.training:
        return "running", False
    return "per-example", kind == "instance" and module.training and tracks


def frozen_state(model: nn.Module) -> dict[str, NormLayerState]:
    """For each normalization layer in ``model``: trainable? frozen? which statistics does it use?

    Recognizes ours and torch's BatchNorm*/SyncBatchNorm, LayerNorm,
    GroupNorm, InstanceNorm* and RMSNorm.

    Returns:
        ``{qualified name: NormLayerState}`` in module order.

    Raises:
        TypeError: if ``model`` is not an ``nn.Module``.
    """
    _check_module(model, "frozen_state")
    states: dict[str, NormLayerState] = {}
    for name, module in model.named_modules():
        kind = _kind(module)
        if kind is None:
            continue
        statistics, updates = _statistics(module, kind)
        params = list(module.parameters(recurse=False))
        states[name] = NormLayerState(
            name=name or type(module).__name__, kind=kind, trainable=any(p.requires_grad for p in params),
            frozen=is_frozen(module), training=module.training, statistics=statistics,
            updates_running_stats=updates)
    return states
