"""Training-loop bugs (issue 18): each injected into real loops on several architectures, and the look-alikes.

Usage::

    python benchmarks/loop_bugs.py [--steps 5 10 20] [--look-alike-steps 60] [--only CODE ...] [--json out.json]

Every code of ``doctor/rules/loop.py`` is injected, the way people write it, into the training loop of
three architectures on standardized digits (a ReLU MLP, a two-layer CNN, a BatchNorm ResNet; He init,
SGD), trained under :func:`impediments.monitor.watch` with the default schedule and diagnosed with
default thresholds. A bug counts as found at the fewest of ``--steps`` training steps after which its
code is reported as a warning or error. The legitimate look-alikes (gradient accumulation, a frozen
first layer, cosine schedules stepped per epoch or sized to the run in batches, a class-balanced
sampler, clipping at max_norm 1) train ``--look-alike-steps`` steps and must raise no loop code above
info. :func:`loop_setups` hands the same injections to the doctor's zoo (``benchmarks/zoo.py``).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

sys.path.insert(0, str(Path(__file__).resolve().parent))

from impediments.cli.spec import train_under_monitor  # noqa: E402
from impediments.doctor import CODES  # noqa: E402
from zoo import ResNet, Setup, digits_cnn, digits_mlp, init_weights, load_xy, sgd  # noqa: E402

LOOP_CODES = [c for c in CODES if CODES[c].experiment.startswith("examples/loop_")]
#: architecture -> (model builder, the module after which the graph is cut for parameters_without_gradient)
ARCHITECTURES = {
    "mlp": (lambda: init_weights(digits_mlp()), "hidden2"),
    "cnn": (lambda: init_weights(digits_cnn()), "conv2"),
    "resnet": (lambda: init_weights(ResNet()), "layer1.0"),
}
LR = {"mlp": 0.1, "cnn": 0.05, "resnet": 0.05}


# ------------------------------------------------------------------------------------------------ the loops
def no_zero_grad(model, opt, loss_fn, xb, yb, step):
    loss = loss_fn(model(xb), yb)
    loss.backward()                                   # the bug: no opt.zero_grad()
    opt.step()
    return loss


def scheduler_per_batch(model, opt, loss_fn, xb, yb, step, scheduler):
    loss = loss_fn(model(xb), yb)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    scheduler.step()                                  # stepped every batch; sized for epochs or for the run
    return loss


def clipped(max_norm):
    def step_fn(model, opt, loss_fn, xb, yb, step):
        loss = loss_fn(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=max_norm)
        opt.step()
        return loss
    return step_fn


def accumulate(model, opt, loss_fn, xb, yb, step, k=4):
    loss = loss_fn(model(xb), yb) / k
    loss.backward()
    if (step + 1) % k == 0:                           # step and clear together every k micro-batches
        opt.step()
        opt.zero_grad(set_to_none=True)
    return loss


def sorted_batches(X, y, batch_size, seed):
    order = torch.argsort(y, stable=True)
    while True:
        yield from DataLoader(TensorDataset(X[order], y[order]), batch_size=batch_size, shuffle=False)


def first_batch_again(X, y, batch_size, seed):
    loader = DataLoader(TensorDataset(X, y), batch_size=batch_size)
    while True:
        yield next(iter(loader))                      # a fresh iterator each step


def class_balanced(X, y, batch_size, seed):
    weights = (1.0 / torch.bincount(y).double())[y]
    sampler = WeightedRandomSampler(weights, len(y), generator=torch.Generator().manual_seed(seed))
    while True:
        yield from DataLoader(TensorDataset(X, y), batch_size=batch_size, sampler=sampler)


def detach_after(model, name):
    """A ``.detach()`` on the output of module ``name`` (as if written in its forward)."""
    dict(model.named_modules())[name].register_forward_hook(lambda m, a, out: out.detach())
    return model


def freeze_first(model):
    first = next(m for m in model.modules() if next(m.parameters(recurse=False), None) is not None)
    first.requires_grad_(False)
    return model


def _bug(code, arch):
    """``build()`` of architecture ``arch`` with ``code`` injected into its loop."""
    make, cut = ARCHITECTURES[arch]
    lr = LR[arch]

    def build():
        X, y = load_xy()
        parts = dict(model=make(), data=(X, y), opt=sgd(lr), loop={})
        if code == "gradients_not_cleared":
            parts["loop"]["step_fn"] = no_zero_grad
        elif code == "parameters_not_updated":
            other = make()                            # the optimizer over another instance
            parts["opt"] = lambda params: torch.optim.SGD(other.parameters(), lr=lr)
        elif code == "parameters_without_gradient":
            detach_after(parts["model"], cut)
        elif code == "softmax_before_loss":
            parts["loop"]["loss_fn"] = lambda out, t: F.cross_entropy(out.softmax(1), t)
        elif code == "loss_broadcast":               # a one-output regression head, shape (N, 1), target (N,)
            parts["data"] = (X, y.float() / 9)
            parts["loop"]["loss_fn"] = lambda out, t: F.mse_loss(out[:, :1], t)
        elif code == "unshuffled_batches":
            parts["loop"]["batches"] = sorted_batches
        elif code == "repeated_batch":
            parts["loop"]["batches"] = first_batch_again
        elif code == "learning_rate_collapsed":      # StepLR meant for epochs, stepped every batch
            parts["loop"].update(step_fn=scheduler_per_batch,
                                 scheduler=lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=5, gamma=0.1))
        elif code == "gradient_clipping_dominates":
            parts["loop"]["step_fn"] = clipped(1e-3)
        return parts
    return build


def _look_alike(name, arch, steps):
    make, _ = ARCHITECTURES[arch]
    lr = LR[arch]

    def build():
        parts = dict(model=make(), data=load_xy(), opt=sgd(lr), loop={})
        cosine = lambda t: (lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=t))  # noqa: E731
        if name == "gradient_accumulation":
            parts["loop"]["step_fn"] = accumulate
        elif name == "frozen_first_layer":
            freeze_first(parts["model"])
        elif name == "cosine_per_epoch":             # the default loop steps a scheduler once per epoch
            parts["loop"]["scheduler"] = cosine(3)
        elif name == "cosine_per_batch_sized_to_run":
            parts["loop"].update(step_fn=scheduler_per_batch, scheduler=cosine(steps))
        elif name == "class_balanced_sampler":
            parts["loop"]["batches"] = class_balanced
        elif name == "clipping_at_1":
            parts["loop"]["step_fn"] = clipped(1.0)
        return parts
    return build


LOOK_ALIKES = ("gradient_accumulation", "frozen_first_layer", "cosine_per_epoch", "cosine_per_batch_sized_to_run",
               "class_balanced_sampler", "clipping_at_1")


def loop_setups() -> list[Setup]:
    """Zoo cases: each loop bug on the MLP and the CNN (the ResNet too for a cut graph), two look-alikes healthy."""
    family = {"mlp": "mlp", "cnn": "cnn", "resnet": "residual"}
    out = [Setup(f"{code}_{arch}", family[arch], frozenset({code}), _bug(code, arch), steps=20)
           for code in LOOP_CODES for arch in ("mlp", "cnn")]
    out.append(Setup("parameters_without_gradient_resnet", "residual", frozenset({"parameters_without_gradient"}),
                     _bug("parameters_without_gradient", "resnet"), steps=20))
    out += [Setup("healthy_gradient_accumulation_mlp", "mlp", frozenset(), _look_alike("gradient_accumulation", "mlp",
                                                                                         60), steps=60),
            Setup("healthy_class_balanced_cnn", "cnn", frozenset(), _look_alike("class_balanced_sampler", "cnn", 60),
                  steps=60)]
    return out


def train(parts: dict, steps: int, batch_size: int = 64, seed: int = 0):
    """Train a built setup under the monitor (its ``loop`` entries: step_fn, batches, scheduler, loss_fn)."""
    model, (X, y) = parts["model"], parts["data"]
    opt = parts["opt"](model.parameters())
    loop = dict(parts.get("loop", {}))
    if "scheduler" in loop:
        loop["scheduler"] = loop["scheduler"](opt)
    loss_fn = loop.pop("loss_fn", F.cross_entropy)
    return train_under_monitor(model, X, y, opt, loss_fn, steps=steps, batch_size=batch_size, seed=seed,
                               prepare=parts.get("prepare"), **loop)


def diagnose_run(build, steps: int, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    start = time.perf_counter()
    report = train(build(), steps, seed=seed).report()
    return {"flagged": sorted({f.code for f in report.findings if f.severity in ("warning", "error")}),
            "info": sorted({f.code for f in report.findings if f.severity == "info"}),
            "seconds": time.perf_counter() - start}


# ------------------------------------------------------------------------------------------------ main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--look-alike-steps", type=int, default=60)
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    codes = [c for c in LOOP_CODES if not args.only or c in args.only]
    archs = list(ARCHITECTURES)
    rows, ok = [], True
    print(f"| code | {' | '.join(archs)} | other codes raised (at {max(args.steps)} steps) |\n|---|"
          + "---|" * len(archs) + "---|")
    for code in codes:
        cells, others = [], set()
        for arch in archs:
            found = None
            for n in sorted(args.steps):
                r = diagnose_run(_bug(code, arch), n)
                if code in r["flagged"]:
                    found = n
                    others |= set(r["flagged"]) - {code} if n == max(args.steps) else set()
                    break
            if found is not None and found != max(args.steps):
                others |= set(diagnose_run(_bug(code, arch), max(args.steps))["flagged"]) - {code}
            rows.append({"code": code, "arch": arch, "found_at_steps": found})
            cells.append(f"found by step {found}" if found is not None else "**missed**")
            ok &= found is not None
        print(f"| `{code}` | {' | '.join(cells)} | {', '.join(sorted(others)) or '-'} |", flush=True)
    print(f"\n| look-alike ({args.look_alike_steps} steps) | {' | '.join(archs)} |\n|---|" + "---|" * len(archs))
    for name in LOOK_ALIKES if not args.only else ():
        cells = []
        for arch in archs:
            r = diagnose_run(_look_alike(name, arch, args.look_alike_steps), args.look_alike_steps)
            loud = sorted(set(r["flagged"]) & set(LOOP_CODES))
            rows.append({"look_alike": name, "arch": arch, "loop_codes_flagged": loud, "flagged": r["flagged"],
                         "info": r["info"]})
            info = sorted(set(r["info"]) & set(LOOP_CODES))
            cells.append(("**" + ", ".join(loud) + "**") if loud else "quiet" + (f" (info: {', '.join(info)})"
                                                                                 if info else ""))
            ok &= not loud
        print(f"| {name} | {' | '.join(cells)} |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
