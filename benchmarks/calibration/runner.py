"""Run one case: checkup at init, then a short training run under ``watch()``, then ``diagnose``.

This is what a user does (README, "Doctor"): ``imp.checkup(model, x, y, loss_fn)`` on the first
batch, then the training loop under ``imp.watch(model, optimizer=opt)`` with
``mon.record_loss(loss)``, and ``imp.doctor.diagnose(mon.stats())``. The result is a plain dict
(picklable, JSON-able) with every finding's code, severity and where, from both reports.
"""
from __future__ import annotations

import time
from collections.abc import Iterator

import torch

import impediments as imp
from impediments.data.batching import infinite_batches
from impediments.doctor import CODES
from impediments.train import Setup, run_steps, train_mode

from .faults import FAULTS, Case
from .registry import ARCHITECTURES

DEFAULT_STEPS = 30


def _findings(report) -> list[dict]:
    """Code, severity and where of every finding; the evidence too for warnings and errors."""
    rows = []
    for f in report.findings:
        row = {"code": f.code, "severity": f.severity, "where": list(f.where)[:4]}
        if f.severity != "info":
            row["evidence"] = f.to_dict()["evidence"]
        rows.append(row)
    return rows


def make_batches(case: Case, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless mini-batches in the case's order: reshuffled epochs, label order, or one batch repeated."""
    size = min(case.recipe.batch_size, len(case.X))
    if case.order == "shuffled":
        yield from infinite_batches(case.X, case.y, size, seed=seed)
    if case.order == "repeated":        # the bug as written: a fresh loader iterator each step, its first batch
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(case.X, case.y), batch_size=size)
        while True:
            yield next(iter(loader))
    order = torch.argsort(case.y, stable=True) if case.order == "sorted" else torch.arange(size)
    X, y = case.X[order], case.y[order]
    while True:
        for i in range(0, len(X) - size + 1, size):
            yield X[i:i + size], y[i:i + size]


def without_zero_grad(clip: float | None):
    """The recipe's step with the fault ``no_zero_grad``: gradients are never cleared."""
    def step(model, opt, loss_fn, xb, yb, step, scheduler):
        loss = loss_fn(model(xb), yb)
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        scheduler.step()
        return loss
    return step


def case_setup(case: Case, batches: Iterator, steps: int) -> Setup:
    """The case as a training setup on the (already started) ``batches``: the recipe's optimizer, its
    scheduler stepped after every step, its clipping; the case's loss, preparation and mode."""
    def prepare(model):
        if case.prepare is not None:
            case.prepare(model)
        if case.eval_mode:
            model.eval()
    recipe = case.recipe
    return Setup(model_fn=lambda: case.model, X=case.X, y=case.y, loss_fn=case.loss, opt_fn=recipe.make_optimizer,
                 steps=steps, batch_size=min(recipe.batch_size, len(case.X)), prepare=prepare,
                 batches_fn=lambda X, y, size, seed: batches, scheduler_fn=recipe.make_scheduler,
                 scheduler_interval="step", clip_grad_norm=recipe.clip,
                 step_fn=None if case.zero_grad else without_zero_grad(recipe.clip))


def build_case(arch_name: str, fault: str | None = None, seed: int = 0) -> Case:
    """The architecture's model (standard init), data, recipe and loss, with ``fault`` injected."""
    arch = ARCHITECTURES[arch_name]
    torch.manual_seed(seed)
    X, y = arch.data(seed)
    case = Case(arch.build(), X, y, arch.recipe, arch.loss)
    if fault is not None:
        FAULTS[fault].apply(case)
    return case


def run_case(arch_name: str, fault: str | None = None, *, steps: int = DEFAULT_STEPS, seed: int = 0,
             expected: tuple = ()) -> dict:
    """Checkup + ``steps`` training steps of one architecture (healthy when ``fault`` is None).

    Returns:
        ``{"arch", "fault", "expected", "checkup", "training", "codes", "flagged", "missed",
        "unsupported", "loss_first", "loss_last", "steps_run", "seconds"}``: ``checkup`` and
        ``training`` list the findings (code, severity, where); ``codes`` is every code at any
        severity from either report, ``flagged`` those at warning or error; ``unsupported`` the
        expected codes the doctor does not have (yet).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run(arch_name, fault, steps, seed, tuple(expected))
    finally:
        torch.set_num_threads(threads)


def _run(arch_name: str, fault: str | None, steps: int, seed: int, expected: tuple) -> dict:
    start = time.perf_counter()
    case = build_case(arch_name, fault, seed)
    model = case.model
    batches = make_batches(case, seed)
    x0, y0 = next(batches)
    checkup = imp.checkup(model, x0, y0, case.loss)

    setup = case_setup(case, batches, steps)
    opt = setup.opt_fn(case.trainable(model) if case.trainable else model.parameters())
    train_mode(setup, model)
    with imp.watch(model, optimizer=opt) as mon:
        losses = run_steps(setup, model, opt, monitor=mon, seed=seed)
    training = imp.diagnose(mon.stats())

    found = _findings(checkup) + _findings(training)
    codes = sorted({f["code"] for f in found})
    flagged = sorted({f["code"] for f in found if f["severity"] in ("warning", "error")})
    return {"arch": arch_name, "family": ARCHITECTURES[arch_name].family, "fault": fault,
            "expected": list(expected), "checkup": _findings(checkup), "training": _findings(training),
            "codes": codes, "flagged": flagged,
            "missed": [c for c in expected if c not in codes],
            "unsupported": [c for c in expected if c not in CODES],
            "loss_first": losses[0] if losses else float("nan"),
            "loss_last": sum(losses[-5:]) / len(losses[-5:]) if losses else float("nan"),
            "steps_run": len(losses), "seconds": round(time.perf_counter() - start, 2)}
