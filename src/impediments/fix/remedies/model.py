"""Remedies that change the model: its init, its activations, its normalization layers, its layer order."""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torch.nn import functional as F

from impediments.activations.catalog import kinds_of, module_kind
from impediments.fix.pieces import Pieces
from impediments.fix.remedies.base import Change, Context, NotApplicable, probe_model, sample, with_model
from impediments.fix.surgery import activation_modules, functional_activations, input_shapes, replace_module

#: kinds for which He init preserves variance: the rectifier and leaky families of the one taxonomy
RELU_LIKE = kinds_of("rectifier") | kinds_of("leaky")
BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
MAX_LISTED = 4


def _listed(names: list[str]) -> str:
    """Every name as a Python list (the printed change must run), :data:`MAX_LISTED` names a line."""
    rows = [", ".join(repr(n) for n in names[i:i + MAX_LISTED]) for i in range(0, len(names), MAX_LISTED)]
    return f"[{rows[0] if rows else ''}]" if len(rows) <= 1 else "[\n        " + ",\n        ".join(rows) + "]"


def _kinds(pieces: Pieces, seed: int) -> tuple[set[str], dict[str, str]]:
    """Catalog kinds of the activation modules, and the functional activations, of a probe model."""
    model = probe_model(pieces, seed)
    kinds = {module_kind(model.get_submodule(n)) for n in activation_modules(model)}
    functional = functional_activations(model, sample(pieces))
    return kinds | set(functional.values()), functional


def variance_preserving_scheme(kinds: set[str]) -> str:
    """He (n Var(W) = 2) when any activation is ReLU-like, else Glorot (n Var(W) = 1; tanh, sigmoid, linear)."""
    return "he_normal" if kinds & RELU_LIKE else "glorot_normal"


# --------------------------------------------------------------------------------------------------- init
def variance_preserving_init(pieces: Pieces, ctx: Context) -> Change:
    """He init for ReLU-like activations, Glorot otherwise, biases 0 (He et al. 2015; Glorot & Bengio 2010)."""
    from impediments.init import initialize

    scheme = variance_preserving_scheme(_kinds(pieces, ctx.seed)[0])
    new = with_model(pieces, lambda m: initialize(m, scheme, bias=0.0, seed=ctx.seed))
    return Change(new, f'imp.init.initialize(net, "{scheme}", bias=0.0, seed={ctx.seed})')


def zero_biases(pieces: Pieces, ctx: Context) -> Change:
    """Every Linear/Conv bias set to 0, the weights kept: a large negative bias holds a ReLU unit's
    pre-activation below zero for every input (Lu et al. 2019), and the weights' init may be sound."""
    probe = probe_model(pieces, ctx.seed)
    names = [n for n, m in probe.named_modules()
             if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)) and m.bias is not None]
    if not names:
        raise NotApplicable("no Linear/Conv layer with a bias in the model")

    def zero(model):
        with torch.no_grad():
            for name in names:
                model.get_submodule(name).bias.zero_()

    return Change(with_model(pieces, zero), "with torch.no_grad():\n    for m in net.modules():\n"
                                            "        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)) "
                                            "and m.bias is not None:\n            m.bias.zero_()")


def glorot_init(pieces: Pieces, ctx: Context) -> Change:
    """Glorot (Xavier) normal init, biases 0: unit-gain for sigmoid/tanh (Glorot & Bengio 2010)."""
    from impediments.init import initialize

    new = with_model(pieces, lambda m: initialize(m, "glorot_normal", bias=0.0, seed=ctx.seed))
    return Change(new, f'imp.init.initialize(net, "glorot_normal", bias=0.0, seed={ctx.seed})')


def recurrent_default_init(pieces: Pieces, ctx: Context) -> Change:
    """Recurrent layers back to PyTorch's init, U(-1/sqrt(H), 1/sqrt(H)): gates start near their centre."""
    probe = probe_model(pieces, ctx.seed)
    names = [n for n, m in probe.named_modules() if isinstance(m, nn.RNNBase)]
    if not names:
        raise NotApplicable("no recurrent layer (nn.RNN/LSTM/GRU) in the model")

    def reset(model):
        for name in names:
            model.get_submodule(name).reset_parameters()

    return Change(with_model(pieces, reset), f"for name in {_listed(names)}:\n    net.get_submodule(name)"
                                             ".reset_parameters()   # U(-1/sqrt(H), 1/sqrt(H))")


def lsuv_init(pieces: Pieces, ctx: Context) -> Change:
    """LSUV on one training batch: orthonormal weights rescaled to unit output variance (Mishkin & Matas 2016)."""
    from impediments.init import lsuv

    batch = sample(pieces)
    new = with_model(pieces, lambda m: lsuv(m, batch, bias=0.0, seed=ctx.seed))
    return Change(new, f"imp.init.lsuv(net, X_train[:{len(batch)}], bias=0.0, seed={ctx.seed})")


def fixup_init(pieces: Pieces, ctx: Context) -> Change:
    """Fixup for residual nets without normalization (Zhang, Dauphin & Ma 2019)."""
    from impediments.init import fixup
    from impediments.models.mlp import ResidualBlock

    model = probe_model(pieces, ctx.seed)
    blocks = [m for m in model.modules() if isinstance(m, ResidualBlock)]
    if not blocks:
        raise NotApplicable("no impediments ResidualBlock in the model (Fixup needs residual branches)")
    if any(isinstance(m, (*BN_TYPES, nn.LayerNorm, nn.GroupNorm)) for b in blocks for m in b.modules()):
        raise NotApplicable("the residual blocks are normalized already (Fixup is for unnormalized ones)")
    return Change(with_model(pieces, lambda m: fixup(m, seed=ctx.seed)), f"imp.init.fixup(net, seed={ctx.seed})")


# ------------------------------------------------------------------------------------------- activations
def _swap_activation(pieces: Pieces, ctx: Context, from_kinds: set[str], make, label: str, function,
                     function_label: str) -> Change:
    """Swap activation modules by name; functional calls of ``from_kinds`` are redirected to ``function``."""
    from impediments.fix.surgery import swap_functional

    probe = probe_model(pieces, ctx.seed)
    names = [n for n in activation_modules(probe) if module_kind(probe.get_submodule(n)) in from_kinds]
    calls = sorted(k for k, kind in functional_activations(probe, sample(pieces)).items() if kind in from_kinds)
    if not names and not calls:
        raise NotApplicable(f"no {'/'.join(sorted(from_kinds))} activation to swap")
    owners = sorted({c.rpartition("/")[0] for c in calls})

    def swap(model):
        for name in names:
            replace_module(model, name, make())
        return swap_functional(model, owners, from_kinds, function) if owners else model

    lines = [f"for name in {_listed(names)}:\n    imp.fix.replace_module(net, name, {label})"] if names else []
    lines += [f"# in forward() of {owner}: {'/'.join(sorted(from_kinds))}(x) -> {function_label}" for owner in owners]
    note = (f"functional calls redirected while training ({', '.join(calls)}); edit forward() to make it "
            "permanent" if calls else "")
    return Change(with_model(pieces, swap), "\n".join(lines), note)


def leaky_relu_swap(pieces: Pieces, ctx: Context) -> Change:
    """ReLU -> LeakyReLU(0.01): a negative input still passes 1% of the gradient (Maas et al. 2013)."""
    return _swap_activation(pieces, ctx, {"relu"}, lambda: nn.LeakyReLU(0.01), "nn.LeakyReLU(0.01)",
                            lambda x: F.leaky_relu(x, 0.01), "F.leaky_relu(x, 0.01)")


def gelu_swap(pieces: Pieces, ctx: Context) -> Change:
    """ReLU -> GELU, whose derivative is non-zero for negative inputs (Hendrycks & Gimpel 2016)."""
    return _swap_activation(pieces, ctx, {"relu"}, nn.GELU, "nn.GELU()", F.gelu, "F.gelu(x)")


def tanh_for_sigmoid(pieces: Pieces, ctx: Context) -> Change:
    """Sigmoid -> tanh in hidden layers: zero-centred, derivative 1 at 0 instead of 1/4 (LeCun et al. 1998)."""
    return _swap_activation(pieces, ctx, {"sigmoid"}, nn.Tanh, "nn.Tanh()", torch.tanh, "torch.tanh(x)")


def relu_for_sigmoid(pieces: Pieces, ctx: Context) -> Change:
    """Sigmoid -> ReLU in hidden layers: no saturation for positive inputs (Glorot, Bordes & Bengio 2011)."""
    return _swap_activation(pieces, ctx, {"sigmoid", "tanh"}, nn.ReLU, "nn.ReLU()", torch.relu, "torch.relu(x)")


# ------------------------------------------------------------------------------------------ normalization
def _norm_for(kind: str, shape: tuple[int, ...]) -> tuple[nn.Module, str]:
    c = shape[1]
    if kind == "batch":
        cls = "BatchNorm2d" if len(shape) == 4 else "BatchNorm1d"
        return getattr(nn, cls)(c), f"nn.{cls}({c})"
    if len(shape) == 2:
        return nn.LayerNorm(c), f"nn.LayerNorm({c})"
    return nn.GroupNorm(1, c), f"nn.GroupNorm(1, {c})"


def _norm_before_activations(pieces: Pieces, ctx: Context, kind: str) -> Change:
    probe = probe_model(pieces, ctx.seed)
    names = activation_modules(probe)
    functional = sorted(functional_activations(probe, sample(pieces)))
    note = f"cannot insert a norm before {', '.join(functional)}: called as a function" if functional else ""
    if not names:
        raise NotApplicable(note or "no activation module to put a normalization layer before")
    shapes = input_shapes(probe, sample(pieces), names)
    names = [n for n in names if n in shapes and len(shapes[n]) >= 2]
    labels = {n: _norm_for(kind, shapes[n])[1] for n in names}

    def insert(model):
        for name in names:
            act = model.get_submodule(name)
            replace_module(model, name, nn.Sequential(OrderedDict(norm=_norm_for(kind, shapes[name])[0], act=act)))

    code = "\n".join(f"imp.fix.replace_module(net, {n!r}, nn.Sequential(OrderedDict(norm={labels[n]}, "
                      f"act=net.get_submodule({n!r}))))" for n in names)
    return Change(with_model(pieces, insert), code, note)


def batchnorm_before_activation(pieces: Pieces, ctx: Context) -> Change:
    """BatchNorm before every activation: unit-variance pre-activations at every depth (Ioffe & Szegedy 2015)."""
    return _norm_before_activations(pieces, ctx, "batch")


def layernorm_before_activation(pieces: Pieces, ctx: Context) -> Change:
    """LayerNorm (GroupNorm(1, C) on conv features) before every activation (Ba, Kiros & Hinton 2016)."""
    return _norm_before_activations(pieces, ctx, "layer")


def _replace_batchnorm(pieces: Pieces, ctx: Context, kind: str) -> Change:
    from impediments.models.layers import group_count

    probe = probe_model(pieces, ctx.seed)
    names = [n for n, m in probe.named_modules() if isinstance(m, BN_TYPES)]
    if not names:
        raise NotApplicable("no torch BatchNorm layer to replace")

    def make(bn):
        c = bn.num_features
        if kind == "group" or not isinstance(bn, nn.BatchNorm1d):
            return nn.GroupNorm(group_count(c), c), f"nn.GroupNorm({group_count(c)}, {c})"
        return nn.LayerNorm(c), f"nn.LayerNorm({c})"

    def swap(model):
        for name in names:
            replace_module(model, name, make(model.get_submodule(name))[0])

    label = make(probe.get_submodule(names[0]))[1]
    code = f"for name in {_listed(names)}:\n    imp.fix.replace_module(net, name, {label})  # C of each layer"
    return Change(with_model(pieces, swap), code)


def groupnorm_for_batchnorm(pieces: Pieces, ctx: Context) -> Change:
    """GroupNorm (up to 8 groups) in place of every BatchNorm: independent of the batch size (Wu & He 2018)."""
    return _replace_batchnorm(pieces, ctx, "group")


def layernorm_for_batchnorm(pieces: Pieces, ctx: Context) -> Change:
    """LayerNorm in place of every BatchNorm1d (GroupNorm for conv BN): per-example statistics (Ba et al. 2016)."""
    return _replace_batchnorm(pieces, ctx, "layer")


def _move_dropout(container: nn.Sequential) -> nn.Sequential | None:
    """The container with every Dropout that precedes its last BatchNorm moved after it (and its activation)."""
    items = list(container.named_children())
    last_bn = max((i for i, (_, m) in enumerate(items) if isinstance(m, BN_TYPES)), default=None)
    if last_bn is None:
        return None
    moved = [(n, m) for i, (n, m) in enumerate(items) if i < last_bn and isinstance(m, nn.modules.dropout._DropoutNd)]
    if not moved:
        return None
    kept = [(n, m) for n, m in items if all(m is not d for _, d in moved)]
    at = next(i for i, (_, m) in enumerate(kept) if isinstance(m, BN_TYPES) and m is items[last_bn][1]) + 1
    if at < len(kept) and module_kind(kept[at][1]) is not None:
        at += 1
    strongest = max(moved, key=lambda nm: nm[1].p)
    return nn.Sequential(OrderedDict(kept[:at] + [strongest] + kept[at:]))


def dropout_after_batchnorm(pieces: Pieces, ctx: Context) -> Change:
    """Dropout moved after the last BatchNorm of its block (one Dropout, the largest rate) (Li et al. 2019)."""
    probe = probe_model(pieces, ctx.seed)
    targets = [n for n, m in probe.named_modules() if isinstance(m, nn.Sequential) and _move_dropout(m) is not None]
    if not targets:
        raise NotApplicable("no Sequential block with a Dropout before its last BatchNorm")

    def move(model):
        if "" in targets:
            return _move_dropout(model)
        for name in targets:
            replace_module(model, name, _move_dropout(model.get_submodule(name)))

    rows = []
    for name in targets:
        new = _move_dropout(probe.get_submodule(name) if name else probe)
        rows.append(f"# {name or 'net'}: " + ", ".join(_short(m) for m in new) + " (the same modules, reordered)")
        order = ", ".join(f"({child!r}, net.get_submodule({(f'{name}.{child}' if name else child)!r}))"
                          for child, _ in new.named_children())
        block = f"nn.Sequential(OrderedDict([{order}]))"
        rows.append(f"net = {block}" if not name else f"imp.fix.replace_module(net, {name!r}, {block})")
    return Change(with_model(pieces, move), "\n".join(rows))


def _short(module: nn.Module) -> str:
    """``nn.Linear(64, 64)``, ``nn.BatchNorm1d(64)``, ``nn.Dropout(0.5)``, ``nn.ReLU()``: the constructor, short."""
    cls = type(module).__name__
    if isinstance(module, nn.Linear):
        return f"nn.Linear({module.in_features}, {module.out_features})"
    if isinstance(module, nn.modules.conv._ConvNd):
        return f"nn.{cls}({module.in_channels}, {module.out_channels}, {module.kernel_size[0]})"
    if isinstance(module, nn.modules.batchnorm._NormBase):
        return f"nn.{cls}({module.num_features})"
    if isinstance(module, nn.modules.dropout._DropoutNd):
        return f"nn.{cls}({module.p})"
    if module_kind(module) is not None or not list(module.children()):
        return f"nn.{cls}()" if "\n" not in repr(module) else f"{cls}(...)"
    return f"{cls}(...)"
