"""Training-loop bugs (issue 18) injected, the way people write them, into real loops, and their look-alikes.

Each of the doctor's loop codes is injected into the training loop of three architectures on
standardized digits (a ReLU MLP, a two-layer CNN, a BatchNorm ResNet; He init, SGD) as a field of
the :class:`~impediments.train.setup.Setup` (its step function, batch order, scheduler, loss, or its
model or optimizer factory). :func:`loop_cases` hands them to the doctor's zoo;
``benchmarks/loop_bugs.py`` measures after how many steps each is found, and that the legitimate
look-alikes (gradient accumulation, a frozen first layer, cosine schedules, a class-balanced sampler,
clipping at max_norm 1) stay quiet.
"""
from __future__ import annotations

from functools import partial

import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

from impediments.train.setup import Setup
from impediments.train.zoo.cases import Case, ResNet, digits_cnn, digits_mlp, init_weights, load_xy, sgd

#: the doctor's training-loop codes (``doctor/rules/loop.py``; a test checks this list against the doctor's)
LOOP_CODES = ("gradients_not_cleared", "parameters_not_updated", "parameters_without_gradient",
              "softmax_before_loss", "loss_broadcast", "unshuffled_batches", "repeated_batch",
              "learning_rate_collapsed", "gradient_clipping_dominates", "optimizer_rarely_steps", "almost_all_frozen",
              "parameters_reset")
#: training steps a code needs before it can be named at all (one optimizer step per rare_step_factor = 32 forwards)
MIN_STEPS = {"optimizer_rarely_steps": 40}
#: architecture -> (model builder, the module after which the graph is cut for parameters_without_gradient)
ARCHITECTURES = {
    "mlp": (lambda: init_weights(digits_mlp()), "hidden2"),
    "cnn": (lambda: init_weights(digits_cnn()), "conv2"),
    "resnet": (lambda: init_weights(ResNet()), "layer1.0"),
}
LR = {"mlp": 0.1, "cnn": 0.05, "resnet": 0.05}
LOOK_ALIKES = ("gradient_accumulation", "frozen_first_layer", "cosine_per_epoch", "cosine_per_batch_sized_to_run",
               "class_balanced_sampler", "clipping_at_1")


# ------------------------------------------------------------------------------------------------ the loops
def no_zero_grad(model, opt, loss_fn, xb, yb, step):
    """The step without ``zero_grad``: every backward adds to the previous gradients."""
    loss = loss_fn(model(xb), yb)
    loss.backward()                                   # the bug: no opt.zero_grad()
    opt.step()
    return loss


def scheduler_per_batch(model, opt, loss_fn, xb, yb, step, scheduler):
    """The plain step, then the scheduler stepped after every batch."""
    loss = loss_fn(model(xb), yb)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    scheduler.step()                                  # stepped every batch; sized for epochs or for the run
    return loss


def clipped(max_norm):
    """A step function clipping the global gradient norm to ``max_norm`` before every optimizer step."""
    def step_fn(model, opt, loss_fn, xb, yb, step):
        loss = loss_fn(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=max_norm)
        opt.step()
        return loss
    return step_fn


def accumulate(model, opt, loss_fn, xb, yb, step, k=4):
    """Gradient accumulation over ``k`` micro-batches (the legitimate look-alike of a missing ``zero_grad``)."""
    loss = loss_fn(model(xb), yb) / k
    loss.backward()
    if (step + 1) % k == 0:                           # step and clear together every k micro-batches
        opt.step()
        opt.zero_grad(set_to_none=True)
    return loss


def sorted_batches(X, y, batch_size, seed):
    """Batches in label order, never shuffled."""
    order = torch.argsort(y, stable=True)
    while True:
        yield from DataLoader(TensorDataset(X[order], y[order]), batch_size=batch_size, shuffle=False)


def first_batch_again(X, y, batch_size, seed):
    """The first batch at every step: a fresh loader iterator per step."""
    loader = DataLoader(TensorDataset(X, y), batch_size=batch_size)
    while True:
        yield next(iter(loader))                      # a fresh iterator each step


def class_balanced(X, y, batch_size, seed):
    """Batches drawn with a class-balancing ``WeightedRandomSampler`` (legitimately not a shuffle)."""
    weights = (1.0 / torch.bincount(y).double())[y]
    sampler = WeightedRandomSampler(weights, len(y), generator=torch.Generator().manual_seed(seed))
    while True:
        yield from DataLoader(TensorDataset(X, y), batch_size=batch_size, sampler=sampler)


def detach_after(model, name):
    """A ``.detach()`` on the output of module ``name`` (as if written in its forward)."""
    dict(model.named_modules())[name].register_forward_hook(lambda m, a, out: out.detach())
    return model


def reinitialized(model, opt, loss_fn, xb, yb, step):
    """The plain step after re-initializing every layer that can: the model starts over each iteration."""
    for m in model.modules():
        if m is not model and hasattr(m, "reset_parameters"):
            m.reset_parameters()                      # the bug: belongs before the loop
    loss = loss_fn(model(xb), yb)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss


def biases_only(model):
    """Every weight frozen by accident: only biases (and norm parameters) stay trainable."""
    for name, p in model.named_parameters():
        p.requires_grad_(name.endswith("bias") or p.dim() == 1)
    return model


def freeze_first(model):
    first = next(m for m in model.modules() if next(m.parameters(recurse=False), None) is not None)
    first.requires_grad_(False)
    return model


def bug_setup(code: str, arch: str) -> Setup:
    """The setup of architecture ``arch`` (see :data:`ARCHITECTURES`) with loop bug ``code`` injected."""
    make, cut = ARCHITECTURES[arch]
    lr = LR[arch]
    X, y = load_xy()
    fields = {}
    if code == "gradients_not_cleared":
        fields["step_fn"] = no_zero_grad
    elif code == "parameters_not_updated":          # the optimizer over another instance
        fields["opt_fn"] = lambda params: torch.optim.SGD(make().parameters(), lr=lr)
    elif code == "parameters_without_gradient":
        fields["model_fn"] = lambda: detach_after(make(), cut)
    elif code == "softmax_before_loss":
        fields["loss_fn"] = lambda out, t: F.cross_entropy(out.softmax(1), t)
    elif code == "loss_broadcast":                  # a one-output regression head, shape (N, 1), target (N,)
        y = y.float() / 9
        fields["loss_fn"] = lambda out, t: F.mse_loss(out[:, :1], t)
    elif code == "unshuffled_batches":
        fields["batches_fn"] = sorted_batches
    elif code == "repeated_batch":
        fields["batches_fn"] = first_batch_again
    elif code == "learning_rate_collapsed":         # StepLR meant for epochs, stepped every batch
        fields.update(step_fn=scheduler_per_batch,
                      scheduler_fn=lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=5, gamma=0.1))
    elif code == "gradient_clipping_dominates":
        fields["step_fn"] = clipped(1e-3)
    elif code == "optimizer_rarely_steps":          # an accumulation counter that reaches its target once
        fields["step_fn"] = partial(accumulate, k=40)
    elif code == "almost_all_frozen":
        fields["model_fn"] = lambda: biases_only(make())
    elif code == "parameters_reset":
        fields["step_fn"] = reinitialized
    else:
        raise ValueError(f"unknown loop code {code!r}; valid: {', '.join(LOOP_CODES)}")
    return Setup(**{"model_fn": make, "X": X, "y": y, "loss_fn": F.cross_entropy, "opt_fn": sgd(lr), **fields})


def look_alike_setup(name: str, arch: str, steps: int) -> Setup:
    """The setup of architecture ``arch`` with the legitimate look-alike ``name`` (see :data:`LOOK_ALIKES`)."""
    make, _ = ARCHITECTURES[arch]
    cosine = lambda t: (lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=t))  # noqa: E731
    fields = {}
    if name == "gradient_accumulation":
        fields["step_fn"] = accumulate
    elif name == "frozen_first_layer":
        fields["model_fn"] = lambda: freeze_first(make())
    elif name == "cosine_per_epoch":                # the plain step steps a scheduler once per epoch
        fields["scheduler_fn"] = cosine(3)
    elif name == "cosine_per_batch_sized_to_run":
        fields.update(step_fn=scheduler_per_batch, scheduler_fn=cosine(steps))
    elif name == "class_balanced_sampler":
        fields["batches_fn"] = class_balanced
    elif name == "clipping_at_1":
        fields["step_fn"] = clipped(1.0)
    else:
        raise ValueError(f"unknown look-alike {name!r}; valid: {', '.join(LOOK_ALIKES)}")
    X, y = load_xy()
    return Setup(**{"model_fn": make, "X": X, "y": y, "loss_fn": F.cross_entropy, "opt_fn": sgd(LR[arch]),
                    **fields})


def loop_cases() -> list[Case]:
    """Zoo cases: each loop bug on the MLP and the CNN (the ResNet too for a cut graph), two look-alikes healthy."""
    family = {"mlp": "mlp", "cnn": "cnn", "resnet": "residual"}
    out = [Case(f"{code}_{arch}", family[arch], frozenset({code}), partial(bug_setup, code, arch),
                steps=MIN_STEPS.get(code, 20)) for code in LOOP_CODES for arch in ("mlp", "cnn")]
    out.append(Case("parameters_without_gradient_resnet", "residual", frozenset({"parameters_without_gradient"}),
                    partial(bug_setup, "parameters_without_gradient", "resnet"), steps=20))
    out += [Case("healthy_gradient_accumulation_mlp", "mlp", frozenset(),
                 partial(look_alike_setup, "gradient_accumulation", "mlp", 60), steps=60),
            Case("healthy_class_balanced_cnn", "cnn", frozenset(),
                 partial(look_alike_setup, "class_balanced_sampler", "cnn", 60), steps=60)]
    return out

