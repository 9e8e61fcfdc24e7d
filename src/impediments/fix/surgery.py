"""Model surgery: replace submodules by name, and find what cannot be replaced.

Every remedy that swaps a module (an activation, a normalization layer, a block's
order) goes through :func:`replace_module` / :func:`swap_modules`, on a fresh copy
of the model. Activations called functionally inside ``forward`` (``F.relu(x)``,
``torch.tanh(x)``, ``x.relu()``) are not submodules and cannot be swapped by
name; :func:`functional_activations` finds them with one traced forward, so a
remedy can say so instead of silently doing nothing. An activation *swap* can
still reach them: :class:`SwapFunctional` wraps the module whose ``forward``
makes the call and redirects that call (and only calls made directly by that
``forward``, not by its children) to the new function. Inserting a layer before
a functional call cannot be done this way, and remedies say so.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

from impediments.activations.catalog import module_kind

#: functions that compute a catalog activation, by catalog name.
FUNCTIONAL = {
    F.relu: "relu", torch.relu: "relu", torch.Tensor.relu: "relu", torch.relu_: "relu", torch.Tensor.relu_: "relu",
    F.relu_: "relu", torch.sigmoid: "sigmoid", torch.Tensor.sigmoid: "sigmoid", F.sigmoid: "sigmoid",
    torch.tanh: "tanh", torch.Tensor.tanh: "tanh", F.tanh: "tanh", F.gelu: "gelu", F.leaky_relu: "leaky_relu",
    F.elu: "elu", F.silu: "silu", F.softplus: "softplus",
}


@dataclass
class Swap:
    """What :func:`swap_modules` did: the module names replaced, and functional calls it could not replace."""

    replaced: list[str] = field(default_factory=list)
    not_swappable: list[str] = field(default_factory=list)


def replace_module(model: nn.Module, name: str, new: nn.Module) -> nn.Module:
    """Put ``new`` where the submodule ``name`` (as in ``named_modules()``) was; returns the old one.

    Raises:
        ValueError: ``name`` is empty (the root) or not a submodule (the valid names are listed).
    """
    names = [n for n, _ in model.named_modules() if n]
    if name not in names:
        raise ValueError(f"no submodule named {name!r}; valid: {', '.join(names) or '(none)'}")
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    old = getattr(parent, child)
    setattr(parent, child, new)
    return old


def swap_modules(model: nn.Module, match: Callable[[str, nn.Module], bool],
                 make: Callable[[str, nn.Module], nn.Module]) -> Swap:
    """Replace every submodule for which ``match(name, module)`` holds by ``make(name, module)``.

    Matches are collected first and replaced afterwards (outermost first, and a
    replaced module's children are not visited), so a factory may wrap the
    module it replaces.
    """
    swap = Swap()
    chosen = []
    for name, module in model.named_modules():
        if name and match(name, module) and not any(name.startswith(p + ".") for p in chosen):
            chosen.append(name)
    for name in chosen:
        replace_module(model, name, make(name, model.get_submodule(name)))
        swap.replaced.append(name)
    return swap


def _leaf_names(model: nn.Module) -> dict[int, str]:
    return {id(m): n or type(m).__name__ for n, m in model.named_modules()}


class _Trace(TorchFunctionMode):
    """Records which catalog activations run as functions, and inside which module."""

    def __init__(self, stack: list, found: dict):
        super().__init__()
        self.stack, self.found = stack, found

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kind = FUNCTIONAL.get(func)
        if kind is not None and not (self.stack and module_kind(self.stack[-1][1]) is not None):
            owner = self.stack[-1][0] if self.stack else "(top level)"
            self.found.setdefault(f"{owner}/{kind}", kind)
        return func(*args, **(kwargs or {}))


def functional_activations(model: nn.Module, sample: torch.Tensor) -> dict[str, str]:
    """``{"owner/kind": kind}`` for every catalog activation ``model`` computes as a function call.

    Runs one forward on ``sample`` under ``no_grad`` in eval mode (no BatchNorm
    statistics change); the model's mode is restored and every hook removed.
    """
    names = _leaf_names(model)
    stack, found, handles = [], {}, []

    def enter(mod, args) -> None:
        stack.append((names[id(mod)], mod))

    def leave(mod, args, out) -> None:
        stack.pop()

    for m in model.modules():
        handles.append(m.register_forward_pre_hook(enter))
        handles.append(m.register_forward_hook(leave))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), _Trace(stack, found):
            model(sample)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return found


def input_shapes(model: nn.Module, sample: torch.Tensor, names: list[str]) -> dict[str, tuple[int, ...]]:
    """The input shape each named submodule sees on ``sample`` (one no-grad forward in eval mode)."""
    shapes, handles = {}, []
    for name in names:
        mod = model.get_submodule(name)
        handles.append(mod.register_forward_pre_hook(_shape_recorder(shapes, name)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(sample)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return shapes


def _shape_recorder(shapes: dict, name: str):
    def record(module, args) -> None:
        shapes.setdefault(name, tuple(args[0].shape))
    return record


def activation_modules(model: nn.Module) -> list[str]:
    """Names of the catalog activation modules of ``model``, in module order."""
    return [n for n, m in model.named_modules() if n and module_kind(m) is not None]


class _Redirect(TorchFunctionMode):
    """Redirects catalog activations of ``kinds`` called directly by the wrapped forward (depth 0)."""

    def __init__(self, owner: "SwapFunctional"):
        super().__init__()
        self.owner = owner

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if self.owner.depth == 0 and FUNCTIONAL.get(func) in self.owner.kinds:
            return self.owner.replacement(args[0])
        return func(*args, **(kwargs or {}))


class SwapFunctional(nn.Module):
    """``inner`` with its ``forward``'s own calls to activations of ``kinds`` replaced by ``replacement``.

    Calls made inside ``inner``'s submodules are left alone (they are modules, swapped by name).
    In-place forms (``F.relu_``, ``x.relu_()``) return the replacement's new tensor instead.
    """

    def __init__(self, inner: nn.Module, kinds: set[str], replacement: Callable[[torch.Tensor], torch.Tensor]):
        super().__init__()
        self.inner, self.kinds, self.replacement, self.depth = inner, set(kinds), replacement, 0
        for child in inner.modules():
            if child is not inner:
                child.register_forward_pre_hook(self._enter)
                child.register_forward_hook(self._leave)

    def _enter(self, module, args) -> None:
        self.depth += 1

    def _leave(self, module, args, out) -> None:
        self.depth -= 1

    def forward(self, *args, **kwargs):
        self.depth = 0
        with _Redirect(self):
            return self.inner(*args, **kwargs)


def swap_functional(model: nn.Module, owners: list[str], kinds: set[str], replacement) -> nn.Module:
    """Wrap each owner (a submodule name, or the root's class name) in :class:`SwapFunctional`; returns the model
    (a new root when the root itself is an owner)."""
    names = {n for n, _ in model.named_modules() if n}
    for owner in owners:
        if owner in names:
            replace_module(model, owner, SwapFunctional(model.get_submodule(owner), kinds, replacement))
    if any(owner not in names for owner in owners):
        model = SwapFunctional(model, kinds, replacement)
    return model
