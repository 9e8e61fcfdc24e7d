"""Remedies that change the optimizer, the training loop or the data: learning rate, clipping, warm-up,
batch size, training mode, weight-decay groups, standardized and finite inputs."""
from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from impediments.fix.pieces import Pieces
from impediments.fix.remedies.base import Change, Context, NotApplicable, with_model

CLIP_NORM = 1.0
WARMUP_FRACTION = 0.2
MIN_BN_BATCH = 32   # Wu & He 2018: BatchNorm's error rises quickly below batch 32


def base_lr(pieces: Pieces) -> tuple[str, float]:
    """The optimizer's class name and learning rate (built once on a dummy parameter)."""
    opt = pieces.opt_fn([nn.Parameter(torch.zeros(1))])
    return type(opt).__name__, float(opt.param_groups[0]["lr"])


class ScaledLR:
    """``params -> optimizer`` with every group's learning rate multiplied by ``factor``."""

    def __init__(self, inner, factor: float):
        self.inner, self.factor = inner, factor

    def __call__(self, params):
        opt = self.inner(params)
        for group in opt.param_groups:
            group["lr"] = group["lr"] * self.factor
        opt.defaults["lr"] = opt.defaults.get("lr", 0.0) * self.factor
        return opt


def scale_lr(factor: float):
    """A remedy multiplying the learning rate by ``factor``."""
    def remedy(pieces: Pieces, ctx: Context) -> Change:
        name, lr = base_lr(pieces)
        new = replace(pieces, opt_fn=ScaledLR(pieces.opt_fn, factor))
        return Change(new, f"torch.optim.{name}(net.parameters(), lr={lr * factor:.4g}, ...)  # was lr={lr:.4g}")

    remedy.__doc__ = f"Learning rate x {factor:.4g}."
    remedy.factor = factor                     # read by the playground's projection of this remedy
    return remedy


def clip_gradients(pieces: Pieces, ctx: Context) -> Change:
    """Clip the global gradient norm to 1 before every step (Pascanu, Mikolov & Bengio 2013)."""
    if pieces.step_fn is not None:
        raise NotApplicable("the setup's own train_step owns the step; clip inside it")
    new = replace(pieces, clip_grad_norm=CLIP_NORM)
    return Change(new, f"loss.backward()\ntorch.nn.utils.clip_grad_norm_(net.parameters(), {CLIP_NORM})\nopt.step()")


def warmup(pieces: Pieces, ctx: Context) -> Change:
    """Linear learning-rate warm-up over the first fifth of the steps (Goyal et al. 2017)."""
    if pieces.step_fn is not None:
        raise NotApplicable("the setup's own train_step owns the step; add the warm-up there")
    steps = max(1, int(pieces.steps * WARMUP_FRACTION))
    new = replace(pieces, warmup_steps=steps)
    return Change(new, f"sched = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1 / {steps}, total_iters={steps})"
                       "\n# ... sched.step() after every opt.step()")


def larger_batch(pieces: Pieces, ctx: Context) -> Change:
    """Batches of at least 32 examples, so BatchNorm's statistics are estimated from enough values."""
    size = min(max(MIN_BN_BATCH, pieces.batch_size), len(pieces.X))
    if size <= pieces.batch_size:
        raise NotApplicable(f"the batch ({pieces.batch_size}) is already as large as the data allows ({len(pieces.X)})")
    return Change(replace(pieces, batch_size=size), f"BATCH_SIZE = {size}  # was {pieces.batch_size}")


class _TrainModules:
    """``prepare`` that runs the setup's own, then puts the named layers (every one for ``"model"``) in training
    mode, except BatchNorm frozen on purpose with :func:`impediments.norm.freeze`."""

    def __init__(self, inner, names):
        self.inner, self.names = inner, names

    def __call__(self, model):
        from impediments.norm import is_frozen

        if self.inner is not None:
            self.inner(model)
        for name, module in model.named_modules():
            if (name in self.names or "model" in self.names) and not is_frozen(module):
                module.train()


def restore_training_mode(pieces: Pieces, ctx: Context) -> Change:
    """Training mode restored on the layers found in eval mode (those frozen with ``impediments.norm.freeze`` stay)."""
    names = sorted(set(ctx.where("bn_inference_mode_in_training")) | set(ctx.where("model_in_eval_mode")))
    if not names:
        raise NotApplicable("no layer was found in eval mode")
    new = replace(pieces, prepare=_TrainModules(pieces.prepare, set(names)))
    return Change(new, f"net.train()  # and no .eval() on {', '.join(names[:4])}{' ...' if len(names) > 4 else ''} "
                       "while training; freeze on purpose with imp.norm.freeze(net)")


NO_DECAY_TAG = "_impediments_no_decay"


class _NoDecayOnTagged:
    """``params -> optimizer`` with the parameters tagged :data:`NO_DECAY_TAG` in groups of weight decay 0."""

    def __init__(self, inner):
        self.inner = inner

    def __call__(self, params):
        opt = self.inner(params)
        groups = []
        for group in opt.param_groups:
            plain = {k: v for k, v in group.items() if k != "params"}
            keep = [p for p in group["params"] if not getattr(p, NO_DECAY_TAG, False)]
            free = [p for p in group["params"] if getattr(p, NO_DECAY_TAG, False)]
            groups += [{**plain, "params": keep}] if keep else []
            groups += [{**plain, "params": free, "weight_decay": 0.0}] if free else []
        return type(opt)(groups, **opt.defaults)


def no_decay_before_batchnorm(pieces: Pieces, ctx: Context) -> Change:
    """No weight decay on the weights that feed a BatchNorm (scale-invariant, van Laarhoven 2017)."""
    layers = ctx.where("weight_decay_with_bn")
    if not layers:
        raise NotApplicable("no BatchNorm-fed layer with weight decay was found")

    def tag(model):
        for name in layers:
            setattr(model.get_submodule(name).weight, NO_DECAY_TAG, True)

    new = replace(with_model(pieces, tag), opt_fn=_NoDecayOnTagged(pieces.opt_fn))
    names = [f"{n}.weight" for n in layers]
    return Change(new, f"NO_DECAY = {names[:4]}{' + ...' if len(names) > 4 else ''}\n"
                       "decay = [p for n, p in net.named_parameters() if n not in NO_DECAY]\n"
                       "no_decay = [p for n, p in net.named_parameters() if n in NO_DECAY]\n"
                       "opt = torch.optim.SGD([{'params': decay}, {'params': no_decay, 'weight_decay': 0.0}], ...)")


def standardize_inputs(pieces: Pieces, ctx: Context) -> Change:
    """A :class:`~impediments.data.Standardizer` fitted on the training inputs, applied to every split (LeCun 1998)."""
    from impediments.data import Standardizer

    s = Standardizer().fit(pieces.X)
    new = replace(pieces, X=s.transform(pieces.X), X_val=s.transform(pieces.X_val))
    return Change(new, "s = imp.data.Standardizer().fit(X_train)\nX_train, X_val = s.transform(X_train), "
                       "s.transform(X_val)")


def drop_nonfinite_examples(pieces: Pieces, ctx: Context) -> Change:
    """Examples with a NaN/Inf input dropped from every split (the cause found was the data itself)."""
    kinds = {e.get("kind") for e in ctx.evidence("non_finite")}
    if "input" not in kinds:
        raise NotApplicable(f"the first NaN/Inf came from {', '.join(map(str, kinds)) or 'nowhere'}, not the inputs")
    keep, keep_val = (torch.isfinite(x).flatten(1).all(1) for x in (pieces.X, pieces.X_val))
    new = replace(pieces, X=pieces.X[keep], y=pieces.y[keep], X_val=pieces.X_val[keep_val],
                  y_val=pieces.y_val[keep_val])
    return Change(new, "keep = torch.isfinite(X).flatten(1).all(1)\nX, y = X[keep], y[keep]",
                  f"dropped {int((~keep).sum())} training and {int((~keep_val).sum())} validation example(s)")
