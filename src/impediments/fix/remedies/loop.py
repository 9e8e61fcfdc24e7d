"""Remedies for training-loop bugs: the plain step, reshuffled batches, the optimizer over the model's own
parameters, logits into the loss (matching loss shapes: :mod:`.loss_shapes`)."""
from __future__ import annotations

from dataclasses import replace

from torch import nn

from impediments.fix.pieces import Pieces
from impediments.fix.remedies.base import Change, Context, NotApplicable, probe_model, with_model
from impediments.fix.surgery import replace_module

PLAIN_STEP = ("loss = loss_fn(net(xb), yb)\nopt.zero_grad(set_to_none=True)\nloss.backward()\nopt.step()\n"
              "# and step an epoch-based scheduler once per epoch, not per batch")


def plain_train_step(pieces: Pieces, ctx: Context) -> Change:
    """The plain step (train mode, zero_grad, backward, step; scheduler per epoch) instead of the spec's own."""
    if pieces.step_fn is None:
        raise NotApplicable("the setup already uses the plain training step")
    return Change(replace(pieces, step_fn=None), PLAIN_STEP)


def reshuffled_batches(pieces: Pieces, ctx: Context) -> Change:
    """Reshuffled epochs (a fresh permutation each epoch) instead of the spec's own batches."""
    if pieces.batches_fn is None:
        raise NotApplicable("the setup already draws reshuffled batches")
    return Change(replace(pieces, batches_fn=None),
                  "loader = DataLoader(TensorDataset(X, y), batch_size=BATCH_SIZE, shuffle=True)\n"
                  "for epoch in ...:\n    for xb, yb in loader:   # one iterator per epoch")


class _OwnParameters:
    """``params -> optimizer`` of the same class and hyper-parameters, over the parameters it was given."""

    def __init__(self, inner):
        self.inner = inner

    def __call__(self, params):
        params = list(params)
        opt = self.inner(params)
        return type(opt)(params, **opt.defaults)


def optimizer_over_model_parameters(pieces: Pieces, ctx: Context) -> Change:
    """The optimizer rebuilt (same class and settings) over the parameters of the model being trained."""
    from impediments.fix.remedies.training import base_lr

    name, lr = base_lr(pieces)
    return Change(replace(pieces, opt_fn=_OwnParameters(pieces.opt_fn)),
                  f"def optimizer(params):\n    return torch.optim.{name}(params, lr={lr:.4g})  # the params passed in")


def drop_final_softmax(pieces: Pieces, ctx: Context) -> Change:
    """The model's final Softmax/Sigmoid removed: the loss gets logits (it applies its own log-softmax)."""
    probe = probe_model(pieces, ctx.seed)
    last = [(n, m) for n, m in probe.named_modules() if n and not list(m.children())][-1:]
    if not last or not isinstance(last[0][1], (nn.Softmax, nn.LogSoftmax, nn.Sigmoid)):
        raise NotApplicable("the model's last module is not a Softmax/Sigmoid module (a functional softmax in "
                            "forward() has to be removed by hand)")
    name = last[0][0]

    def drop(model) -> None:
        replace_module(model, name, nn.Identity())

    return Change(with_model(pieces, drop),
                  f"imp.fix.replace_module(net, {name!r}, nn.Identity())   # the loss takes logits")


def default_loss_on_logits(pieces: Pieces, ctx: Context) -> Change:
    """The setup's own loss replaced by the default one on the raw outputs (cross-entropy on logits for integer
    targets, else MSE): a softmax inside a custom loss is gone with it."""
    from impediments.fix.pieces import default_loss

    if pieces.loss_fn is default_loss:
        raise NotApplicable("the setup already uses the default loss")
    return Change(replace(pieces, loss_fn=default_loss),
                  "loss = F.cross_entropy(net(xb), yb)   # logits in: the loss applies its own log-softmax")
