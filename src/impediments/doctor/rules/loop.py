"""Rules on the training loop itself (``stats.loop``, :mod:`impediments.monitor.probes.loop.probe`): the silent bugs.

A missing ``zero_grad``, an optimizer over another model's parameters, a step before the backward, a
loss cut from the model (rebuilt from ``.item()``), a cut graph, probabilities fed to a loss that
applies its own softmax, a broadcast regression target, unshuffled or repeated batches, an optimizer
that almost never steps, a learning rate annealed away early, clipping that swallows every step. None raises; each
only makes the loss creep. TrainCheck (Jiang et al. 2025, OSDI) shows such errors are visible within
an iteration as violated invariants of the loop; these rules check the invariants directly.
"""
from __future__ import annotations

import math

from impediments.doctor.rules.base import finding, loss_drop, rule

#: names listed in a finding's evidence before "and N more"
SHOWN = 8
_PROBABILITY_NODES = ("SoftmaxBackward0", "SigmoidBackward0")


def _names(names: list[str]) -> list[str]:
    return names[:SHOWN] + ([f"... and {len(names) - SHOWN} more"] if len(names) > SHOWN else [])


def _modules(loop, names) -> list[str]:
    """The modules owning ``names``, in their order, each once."""
    return list(dict.fromkeys(loop.params[n].module or "(root)" for n in names))


def _inside(module: str, container: str) -> bool:
    """``module`` is a submodule of ``container`` (every module is inside the root, ``""``)."""
    return module != container and (container == "" or module.startswith(container + "."))


def _containers(loop) -> set[str]:
    """Modules owning parameters directly that also hold submodules owning parameters."""
    modules = {p.module for p in loop.params.values()}
    return {c for c in modules if any(_inside(m, c) for m in modules)}


@rule("gradients_not_cleared", requires=("loop",))
def gradients_not_cleared(stats, th):
    """A backward started with the last optimizer step's gradient still in ``.grad`` (accumulation: info)."""
    loop = stats.loop
    stale = [n for n, p in loop.params.items() if p.stale]
    fps = loop.forwards_per_step
    if not stale:
        if loop.grad_checks and loop.optimizer_steps >= th.loop_min_observations and fps and fps[0] >= 2:
            return [finding(
                "gradients_not_cleared", "info", ["optimizer"],
                {"forwards_per_optimizer_step": fps, "optimizer_steps": loop.optimizer_steps,
                 "checked_backwards": loop.grad_checks},
                f"Gradient accumulation recognised: {fps[0]}-{fps[1]} forward/backward passes per optimizer step, "
                "and every gradient was cleared after the step that used it. That is intentional, not the bug.",
                "Nothing to fix; divide each micro-batch loss by the number of micro-batches so the step matches "
                "one large batch")]
        return []
    worst = max(loop.params[n].stale for n in stale)
    share = worst / max(loop.grad_checks, 1)
    return [finding(
        "gradients_not_cleared", "error" if share >= th.stale_gradient_error else "warning", _modules(loop, stale),
        {"steps_with_stale_gradients": loop.stale_steps, "stale_backwards": worst,
         "checked_backwards": loop.grad_checks, "stale_share": share, "threshold_error": th.stale_gradient_error,
         "parameters": _names(stale), "forwards_per_optimizer_step": fps},
        "Each backward adds into .grad. After an optimizer step nothing cleared it, so the next step used the "
        "sum of this gradient and every earlier one: the steps grow and point to where the loss was, not where "
        "it is.",
        "Call optimizer.zero_grad(set_to_none=True) once per optimizer step, before the backward; for gradient "
        "accumulation over k micro-batches, step and clear together every k backwards")]


def _resolvable(p, lr, th) -> bool:
    """Whether a step of ``lr`` times its mean gradient norm would show in float32 (else it cannot change)."""
    if lr is None or p.weight_norm is None:
        return True
    return lr * p.gradient_norm_sum / p.received >= th.update_resolution * p.weight_norm


@rule("parameters_not_updated", requires=("loop",))
def parameters_not_updated(stats, th):
    """Trainable parameters that received non-zero gradients yet never changed."""
    loop = stats.loop
    if loop.optimizer_steps < 1:
        return []
    late = loop.steps_before_backward
    step_first = late >= th.loop_min_observations and 2 * late >= loop.step_checks
    top_lr = max((g["max"] for g in loop.learning_rates), default=None)
    graded = [n for n, p in loop.params.items() if p.received and p.gradient_norm_sum > 0 and (
        (p.in_optimizer and p.lr == 0) or _resolvable(p, p.lr or top_lr, th))]
    stuck = [n for n in graded if not loop.params[n].changed]
    if not stuck:
        return []
    outside = [n for n in stuck if loop.params[n].in_optimizer is False]
    zero_lr = [n for n in stuck if loop.params[n].in_optimizer and loop.params[n].lr == 0]
    other = [n for n in stuck if n not in outside and n not in zero_lr]
    why = []
    if step_first and other:
        why.append(f"optimizer.step() came before loss.backward() on {late} of {loop.step_checks} sampled steps: "
                   "each step found no gradient (zero_grad had cleared it) and the backward that came after it "
                   "was cleared before the next step")
        other = []
    if outside:
        why.append(f"{len(outside)} are not in the optimizer (was it built on another model instance?)")
    if zero_lr:
        why.append(f"{len(zero_lr)} sit in a param group with learning rate 0")
    if other:
        why.append(f"{len(other)} are in the optimizer with a non-zero rate but did not change "
                   "(a different optimizer steps, or the step is skipped)")
    return [finding(
        "parameters_not_updated", "error" if len(stuck) == len(graded) else "warning", _modules(loop, stuck),
        {"parameters": _names(stuck), "not_updated": len(stuck), "with_gradient": len(graded),
         "not_in_optimizer": len(outside), "zero_learning_rate": len(zero_lr), "unexplained": len(other),
         "optimizer_steps": loop.optimizer_steps, "steps_before_backward": late,
         "sampled_steps_checked": loop.step_checks},
        "These parameters receive gradients but their values never changed: " + "; ".join(why) + ". Backward "
        "pays for their gradients and they keep their initial values: that part of the model does not learn.",
        ("Call loss.backward() before optimizer.step() (zero_grad, forward, loss, backward, step)" if step_first
         else "Build the optimizer from this model's parameters (optimizer = SGD(model.parameters(), ...) after the "
              "model is final), give every group a positive lr; to freeze on purpose, set requires_grad_(False)"))]


@rule("parameters_without_gradient", requires=("loop",))
def parameters_without_gradient(stats, th):
    """Trainable parameters that never received a gradient while others did: name where the graph is cut.

    A cut (warning) is a module the optimizer is meant to train that ran *before* the first module, in
    forward order, whose parameters get gradients: the signal reached the later modules and stopped on
    the way back. A module that ran after that point without a gradient is a dead end (its output does
    not reach the loss: an auxiliary head left out of it), one the optimizer does not hold was left out
    on purpose (a backbone frozen under ``no_grad``), and one that never ran is unused: those are info.

    The forward order places a *leaf* module's parameters. A container's own parameters (an
    ``nn.Parameter`` held directly by a module that also holds submodules: XLNet's ``mask_emb``, a
    model-level positional table) get the order of the container's *start*, which says nothing about
    where in its forward they are used, or whether they are (XLNet uses ``mask_emb`` only in two-stream
    pre-training). Such a parameter is placed upstream of the cut only when a module inside its
    container is cut too; otherwise it is reported with the info, as not placed.
    """
    loop = stats.loop
    orders = [p.order for p in loop.params.values() if p.received and p.order is not None]
    if not loop.backwards or not loop.params:
        return []
    if not any(p.received for p in loop.params.values()):
        return [finding(
            "parameters_without_gradient", "error", _modules(loop, list(loop.params)),
            {"backwards": loop.backwards, "parameters": _names(list(loop.params)), "with_gradient": 0,
             "without_gradient": len(loop.params), "optimizer_steps": loop.optimizer_steps},
            f"backward() ran {loop.backwards} times on sampled steps and wrote the gradient of none of the "
            f"{len(loop.params)} trainable parameters: the tensor it started from is not connected to the model "
            "(rebuilt from loss.item() or float(loss), wrapped in a new torch.tensor(..., requires_grad=True), or "
            "computed under torch.no_grad()), so the optimizer steps on no gradient and nothing is learned.",
            "Call backward() on the loss computed from the model's output; keep .item() for logging only")]
    first_graded = min(orders, default=None)
    none = [n for n, p in loop.params.items() if not p.received]
    before = [n for n in none if first_graded is not None and loop.params[n].order is not None
              and loop.params[n].order < first_graded and loop.params[n].in_optimizer is not False]
    containers = _containers(loop)
    leaf_cut = [n for n in before if loop.params[n].module not in containers]
    cut = leaf_cut + [n for n in before if loop.params[n].module in containers
                      and any(_inside(loop.params[m].module, loop.params[n].module) for m in leaf_cut)]
    other = [n for n in none if n not in cut]
    out = []
    if cut:
        last = max(cut, key=lambda n: loop.params[n].order)
        first_cut = loop.params[last].module or "(root)"
        out.append(finding(
            "parameters_without_gradient", "warning", [first_cut] + [m for m in _modules(loop, cut) if m != first_cut],
            {"parameters": _names(cut), "without_gradient": len(cut),
             "with_gradient": sum(1 for p in loop.params.values() if p.received), "backwards": loop.backwards,
             "cut_after_module": first_cut},
            f"These modules ran in the forward, the optimizer holds their parameters, yet no backward reached "
            f"them: the graph is cut at the output of '{first_cut}' (the last module, in forward order, before "
            "the first one that gets gradients) or right after it, by a .detach(), a torch.no_grad() block, "
            ".data, or an integer cast.",
            f"Remove the .detach()/no_grad()/.data/int cast after '{first_cut}'; to freeze these layers on purpose, "
            "set requires_grad_(False) instead"))
    if other:
        never_ran = [n for n in other if loop.params[n].order is None]
        unplaced = [n for n in other if n in before]
        out.append(finding(
            "parameters_without_gradient", "info", _modules(loop, other),
            {"parameters": _names(other), "never_ran": len(never_ran), "dead_end_or_not_optimized":
             len(other) - len(never_ran) - len(unplaced), "container_parameters_not_placed": _names(unplaced)},
            "These trainable parameters get no gradient but nothing is cut on the way to the others: their "
            "modules never ran, their output does not reach the loss (an auxiliary head left out of it), the "
            "optimizer does not hold them (frozen under no_grad on purpose), or they are held directly by a "
            "module whose submodules all get gradients (a parameter that forward does not use on this input, as "
            "XLNet's mask_emb outside pre-training).",
            "Fine if intended; otherwise add the head's term to the loss or call the module in forward(); to "
            "freeze, set requires_grad_(False) so backward and the doctor know"))
    return out


@rule("softmax_before_loss", requires=("loop",))
def softmax_before_loss(stats, th):
    """cross_entropy / nll_loss / BCE-with-logits fed probabilities instead of logits or log-probabilities."""
    out = []
    for kind, call in stats.loop.losses.items():
        if kind not in ("cross_entropy", "nll_loss", "binary_cross_entropy_with_logits") or not call.calls:
            continue
        squashed = sum(call.input_from.get(n, 0) for n in _PROBABILITY_NODES)
        probs = max(squashed, call.probability_rows)
        if probs * 2 < call.calls:
            continue
        ev = {"loss": kind, "calls": call.calls, "calls_fed_probabilities": probs, "input_from": call.input_from,
              "mean_largest_probability": call.max_probability, "classes": call.classes,
              "gradient_vs_logits": call.gradient_scale}
        if kind == "cross_entropy" and call.classes:
            ev["lowest_reachable_loss"] = math.log(1 + (call.classes - 1) / math.e)
        effect = {"cross_entropy": "cross_entropy applies log_softmax again: log_softmax(p) of probabilities p "
                                   "in [0, 1] can never be confident, so the loss cannot go below "
                                   "log(1 + (C - 1)/e), and the gradient passes through the softmax Jacobian "
                                   "diag(p) - p p^T, whose entries are at most 1/4 and vanish as p saturates.",
                  "nll_loss": "nll_loss expects log-probabilities: on probabilities it minimises -p_y, whose "
                              "gradient is a constant -1 regardless of how wrong the prediction is, then shrinks "
                              "through the softmax Jacobian diag(p) - p p^T as p saturates.",
                  "binary_cross_entropy_with_logits": "BCE-with-logits applies its own sigmoid: sigmoid(sigmoid(z)) "
                                                      "lies in [0.5, 0.73], the loss never reaches 0 and the "
                                                      "gradient is scaled by sigma'(z) <= 1/4 twice."}[kind]
        fix = {"cross_entropy": "Feed the raw logits to cross_entropy (remove the softmax; apply it only when "
                                "you need probabilities at inference)",
               "nll_loss": "Feed log_softmax(logits) to nll_loss, or raw logits to cross_entropy",
               "binary_cross_entropy_with_logits": "Feed the raw logits to binary_cross_entropy_with_logits "
                                                   "(remove the sigmoid)"}[kind]
        scale = (f" Measured: the gradient reaching the logits is {call.gradient_scale:.2g}x the one cross_entropy "
                 "on the logits would give." if call.gradient_scale is not None else "")
        out.append(finding("softmax_before_loss", "error", [kind], ev,
                           "The loss was fed probabilities (the output of a softmax or sigmoid). " + effect + scale,
                           fix))
    return out


@rule("loss_broadcast", requires=("loop",))
def loss_broadcast(stats, th):
    """A regression loss whose input and target shapes differ (torch broadcasts them and only warns)."""
    out = []
    for kind, call in stats.loop.losses.items():
        if not call.shape_mismatches or call.input_shape is None:
            continue
        n_in = math.prod(call.input_shape)
        out.append(finding(
            "loss_broadcast", "error", [kind],
            {"loss": kind, "input_shape": call.input_shape, "target_shape": call.target_shape,
             "values_compared": call.broadcast_numel, "input_values": n_in, "calls_mismatched": call.shape_mismatches,
             "calls": call.calls},
            f"{kind} got input {tuple(call.input_shape)} and target {tuple(call.target_shape)}: broadcasting "
            f"compares {call.broadcast_numel} pairs instead of {n_in}, every prediction against every target, so "
            "the model learns to predict the mean target and the loss plateaus.",
            "Give input and target the same shape: target.view_as(output) or output.squeeze(-1) (a head with "
            "one output returns (N, 1))"))
    return out


@rule("unshuffled_batches", requires=("loop",))
def unshuffled_batches(stats, th):
    """Batches hold far fewer distinct classes than shuffled batches of the same size would."""
    loop = stats.loop
    total = sum(loop.class_counts)
    if (loop.target_batches < th.loop_min_observations or not total or loop.targets_per_batch is None
            or loop.distinct_classes_per_batch is None):
        return []
    b = loop.targets_per_batch
    expected = sum(1 - (1 - c / total) ** b for c in loop.class_counts if c)
    seen = loop.distinct_classes_per_batch
    if expected < th.unshuffled_min_classes or seen > th.unshuffled_distinct_ratio * expected:
        return []
    return [finding(
        "unshuffled_batches", "warning", ["data"],
        {"batches": loop.target_batches, "distinct_classes_per_batch": seen, "expected_if_shuffled": expected,
         "targets_per_batch": b, "classes_seen": sum(1 for c in loop.class_counts if c),
         "threshold_ratio": th.unshuffled_distinct_ratio},
        f"Each batch held {seen:.1f} classes on average where shuffled batches of {b:.0f} targets would hold "
        f"{expected:.1f}: the data arrives sorted or grouped by class. Each stretch of steps then pulls the "
        "model towards a few classes and the next undoes it.",
        "Shuffle every epoch: DataLoader(..., shuffle=True) or a RandomSampler; for imbalance use a "
        "class-balanced sampler, never sorted order")]


def restarts_loader(loop, th) -> bool:
    """Whether the loop starts a fresh ``DataLoader`` iterator on (nearly) every step and draws only its
    first batch, from a loader that holds more than one: ``next(iter(loader))`` inside the loop."""
    steps = loop.optimizer_steps or loop.training_forwards
    return (loop.loader_batches is not None and loop.loader_batches > 1 and steps > 0
            and loop.loader_iterators >= th.repeated_batch_fraction * steps
            and loop.loader_batches_drawn <= th.loader_first_batch_only * loop.loader_iterators)


@rule("repeated_batch", requires=("loop",))
def repeated_batch(stats, th):
    """The same input batch arrives at (nearly) every sampled step because the loader is restarted each step.

    A repeating input alone is not the bug: full-batch training (a small dataset, LBFGS, a whole graph)
    feeds the same tensor every step on purpose. The bug is in how the batch is drawn: a fresh iterator
    of a loader that holds several batches, started on every step, of which only the first batch is
    taken. The probe counts ``DataLoader.__iter__`` calls, the batches drawn, and the loader's length.
    """
    loop = stats.loop
    n = loop.compared_inputs
    if n < th.loop_min_observations or loop.repeated_inputs < th.repeated_batch_fraction * n:
        return []
    ev = {"identical_to_previous": loop.repeated_inputs, "compared": n, "threshold": th.repeated_batch_fraction,
          "loader_iterators_started": loop.loader_iterators, "batches_drawn": loop.loader_batches_drawn,
          "batches_in_loader": loop.loader_batches, "steps": loop.optimizer_steps or loop.training_forwards}
    if not restarts_loader(loop, th):
        how = ("no DataLoader iterator was started on each step" if loop.loader_iterators == 0 or
               loop.loader_batches in (None, 1) or loop.loader_iterators < th.repeated_batch_fraction * ev["steps"]
               else "each loader iterator was read past its first batch")
        return [finding(
            "repeated_batch", "info", ["data"], ev,
            f"{loop.repeated_inputs} of {n} sampled inputs were identical to the previous one, but {how}: this is "
            "full-batch training (the whole dataset, or a whole graph, every step), a legitimate choice on small "
            "data and the one LBFGS expects.",
            "Nothing to fix if full-batch is intended; on data too large for one step, use a shuffled DataLoader")]
    return [finding(
        "repeated_batch", "warning", ["data"], ev,
        f"{loop.repeated_inputs} of {n} sampled inputs were identical to the previous one, and the loop started "
        f"{loop.loader_iterators} loader iterators in {ev['steps']} steps, drawing {loop.loader_batches_drawn} "
        f"batches from a loader of {loop.loader_batches}: next(iter(loader)) inside the loop restarts the iterator "
        "and trains on its first batch again and again. The loss falls on that batch while the model learns "
        "nothing else.",
        "Create the iterator once per epoch (for xb, yb in loader: ...), or keep one iterator and call next() on it")]


@rule("parameters_reset", requires=("loop",))
def parameters_reset(stats, th):
    """Something other than the optimizer rewrote the weights between steps, on ``external_write_fraction`` of
    the sampled steps checked (each stepped parameter's value print right after a step against the print
    right before the next): a loop that re-initializes the model (``model.apply(init)``,
    ``reset_parameters()``) inside the iteration. Legitimate writes between steps exist (WGAN's weight
    clipping, max-norm constraints, pruning masks), so the cost decides: an error where the loss shed less
    than ``trains_loss_drop`` of its start, info where it learns.
    """
    loop = stats.loop
    n = loop.external_write_checks
    if n < th.loop_min_observations or loop.external_writes < th.external_write_fraction * n:
        return []
    drop = loss_drop(stats)
    costly = drop is None or drop < th.trains_loss_drop
    ev = {"steps_with_weights_rewritten": loop.external_writes, "sampled_steps_checked": n,
          "threshold": th.external_write_fraction, "loss_drop": drop, "trains_loss_drop": th.trains_loss_drop}
    if not costly:
        return [finding(
            "parameters_reset", "info", ["model"], ev,
            f"The weights were written outside the optimizer between steps on {loop.external_writes} of {n} sampled "
            f"steps, and the loss shed {drop:.0%} of its start: a constraint applied after each step (weight "
            "clipping, max-norm, a pruning mask), not a reset.",
            "Nothing to fix if the constraint is intended")]
    return [finding(
        "parameters_reset", "error", ["model"], ev,
        f"The weights were rewritten outside the optimizer between steps on {loop.external_writes} of {n} sampled "
        "steps, and the loss " + (f"shed only {drop:.0%} of its start" if drop is not None else "has no trend yet")
        + ": the model is re-initialized inside the loop (model.apply(init), reset_parameters(), or the model "
          "built again), so every step starts over from fresh weights and nothing learned survives.",
        "Initialize once, before the loop; inside it only zero_grad, forward, loss, backward, step")]


@rule("almost_all_frozen", requires=("loop",))
def almost_all_frozen(stats, th):
    """Only biases and normalization layers are trainable, under ``frozen_share`` of the parameter values.

    Training only the BatchNorm affine parameters or the biases of a *pretrained* network is a method
    (Frankle et al. 2021; BitFit, Ben Zaken et al. 2022); of a network that must still learn its weights
    it is an accident (``requires_grad_(False)`` on the wrong modules, a loop that freezes everything
    but the norms). What tells them apart in this run is the cost: a warning when the loss shed less than
    ``trains_loss_drop`` of its start, info (with the counts) when it learns.
    """
    loop = stats.loop
    total = loop.frozen_values + loop.trainable_values
    if not total or not loop.trainable_only_norm_or_bias or loop.trainable_values >= th.frozen_share * total:
        return []
    drop = loss_drop(stats)
    share = loop.trainable_values / total
    ev = {"trainable_values": loop.trainable_values, "frozen_values": loop.frozen_values, "trainable_share": share,
          "threshold": th.frozen_share, "trainable": _names(list(loop.params)), "loss_drop": drop,
          "trains_loss_drop": th.trains_loss_drop}
    costly = drop is None or drop < th.trains_loss_drop
    return [finding(
        "almost_all_frozen", "warning" if costly else "info", _modules(loop, list(loop.params)) or ["model"], ev,
        f"Only {loop.trainable_values} of {total} parameter values ({share:.2%}) are trainable, all of them biases "
        "or normalization parameters: every weight matrix is frozen (requires_grad=False). "
        + ("The loss " + (f"shed only {drop:.0%} of its start" if drop is not None else "has no trend yet")
           + ": the frozen weights are not a trained feature extractor this run can build on." if costly else
           f"The loss shed {drop:.0%} of its start, so the frozen weights carry features (a pretrained network "
           "tuned by its norms or biases on purpose)."),
        "Unfreeze the layers that must learn (module.requires_grad_(True)) and build the optimizer over "
        "model.parameters(); freeze only a pretrained backbone, and only on purpose")]


@rule("optimizer_rarely_steps", requires=("loop",))
def optimizer_rarely_steps(stats, th):
    """Backward after backward, and the optimizer steps once in ``rare_step_factor`` forwards or more (or never),
    so the run takes fewer than ``loop_min_observations`` steps: the model barely moves whatever it learns."""
    loop = stats.loop
    watched = any(p.in_optimizer is not None for p in loop.params.values())
    forwards, steps = loop.training_forwards, loop.optimizer_steps
    if (not watched or not loop.backwards or steps >= th.loop_min_observations
            or forwards < th.rare_step_factor * max(steps, 1)):
        return []
    ev = {"training_forwards": forwards, "optimizer_steps": steps, "forwards_per_step": forwards / max(steps, 1),
          "threshold": th.rare_step_factor, "forwards_per_optimizer_step": loop.forwards_per_step}
    if steps == 0:
        return [finding(
            "optimizer_rarely_steps", "error", ["optimizer"], ev,
            f"{forwards} training forwards with backward passes, and the optimizer never stepped: the gradients "
            "are computed and thrown away (or summed up), and the weights keep their initial values.",
            "Call optimizer.step() after loss.backward() (and zero_grad() after the step)")]
    return [finding(
        "optimizer_rarely_steps", "warning", ["optimizer"], ev,
        f"{forwards} training forwards but only {steps} optimizer step{'s' if steps > 1 else ''}: one step per "
        f"{forwards / steps:.0f} forward/backward passes. Whatever the gradients say, the model moved {steps} "
        "time(s); an accumulation counter that almost never reaches its target (steps taken at "
        "(i + 1) % k == 0 with k near the run's length, or an off-by-one in the condition) looks like this.",
        "Step every k micro-batches with k small against the run (accumulate 2-8, not the whole run); check the "
        "condition that calls optimizer.step()")]


def lr_collapsed_at(lr: dict, steps: int, th) -> int | None:
    """The step at which one param group's learning rate fell ``lr_collapse_factor``-fold below its peak, when
    that happened within the first ``lr_collapse_fraction`` of the ``steps`` optimizer steps and the rate is
    still that low at the end; None otherwise.

    The one definition of a collapsed schedule: ``learning_rate_collapsed`` reports it, and the rules that
    look for another cause of a still loss (``learning_rate_too_low``, ``uninformative_labels``) read it, so a
    schedule annealed to zero over the run (cosine to 0: low only at its end) is not taken for a collapse.
    """
    k = min(max(math.ceil(math.log10(max(th.lr_collapse_factor, 10.0))) - 1, 0), 5)
    at = lr["below"][k] if k < len(lr["below"]) else None
    if (at is None or steps < th.loop_min_observations or lr["max"] <= 0
            or (at - lr["first_step"]) > th.lr_collapse_fraction * steps
            or lr["last"] > lr["max"] / th.lr_collapse_factor):
        return None
    return at


@rule("learning_rate_collapsed", requires=("loop",))
def learning_rate_collapsed(stats, th):
    """The learning rate fell ``lr_collapse_factor``-fold early in the run and stayed there (:func:`lr_collapsed_at`)."""
    loop = stats.loop
    steps = loop.optimizer_steps
    out = []
    for g, lr in enumerate(loop.learning_rates):
        at = lr_collapsed_at(lr, steps, th)
        if at is None:
            continue
        out.append(finding(
            "learning_rate_collapsed", "warning", [f"param_group {g}"],
            {"max_lr": lr["max"], "last_lr": lr["last"], "first_lr": lr["first"], "collapsed_at_step": at,
             "steps": steps, "factor": th.lr_collapse_factor},
            f"The learning rate fell from {lr['max']:.3g} to {lr['last']:.3g}, {th.lr_collapse_factor:.0f}x below "
            f"its peak by step {at} of {steps}: a scheduler meant for epochs is stepped every batch (or its gamma "
            "is too small), so training stops moving early.",
            "Call scheduler.step() once per epoch (after the epoch's batches), or size the schedule in batches "
            "(T_max/step_size = epochs x batches per epoch)"))
    return out


def clipping_dominates_share(loop, th) -> float | None:
    """The share of clipping calls that cut the gradient's norm ``clip_dominates_factor``-fold or more, when it
    reaches ``clip_dominates_fraction`` over at least ``loop_min_observations`` calls; None otherwise. The one
    definition ``gradient_clipping_dominates`` reports and ``learning_rate_too_low`` reads as another cause."""
    k = min(max(round(math.log10(max(th.clip_dominates_factor, 1.0))), 0), 4)
    if loop.clip_calls < th.loop_min_observations or len(loop.clip_at_least) <= k:
        return None
    share = loop.clip_at_least[k] / loop.clip_calls
    return share if share >= th.clip_dominates_fraction else None


@rule("gradient_clipping_dominates", requires=("loop",))
def gradient_clipping_dominates(stats, th):
    """A clipping function (``clip_grad_norm_`` or ``clip_grad_value_``) cut the gradient's norm by
    ``clip_dominates_factor`` or more on nearly every call."""
    loop = stats.loop
    share = clipping_dominates_share(loop, th)
    if share is None:
        return []
    typical = 10 ** loop.clip_log_ratio_mean if loop.clip_log_ratio_mean is not None else None
    if loop.clip_function == "clip_grad_value_":
        return [finding(
            "gradient_clipping_dominates", "warning", ["clip_grad_value_"],
            {"calls": loop.clip_calls, "clip_value": loop.clip_max_norm, "share_cut_10x": share,
             "typical_norm_before_over_after": typical, "threshold": th.clip_dominates_fraction},
            f"On {share:.0%} of the calls clip_grad_value_(clip_value={loop.clip_max_norm:g}) cut the gradient's "
            f"total norm {th.clip_dominates_factor:.0f}x or more (typically {typical:.3g}x): nearly every entry "
            "is clamped to +-clip_value, so the step is lr x clip_value x sign(g), a tiny sign step whose size no "
            "longer follows the gradient.",
            "Raise clip_value above the typical gradient entry (clamping should bite only on outliers), or use "
            "clip_grad_norm_ with max_norm near the typical gradient norm")]
    return [finding(
        "gradient_clipping_dominates", "warning", ["clip_grad_norm_"],
        {"calls": loop.clip_calls, "max_norm": loop.clip_max_norm, "share_clipped_10x": share,
         "typical_norm_over_max_norm": typical, "threshold": th.clip_dominates_fraction},
        f"On {share:.0%} of the calls the total gradient norm was {th.clip_dominates_factor:.0f}x max_norm or more "
        f"(typically {typical:.3g}x): every step is rescaled, so the effective learning rate is lr x max_norm / "
        "||g||, far below the one set, and the step size no longer follows the gradient.",
        "Raise max_norm to about the typical gradient norm (clipping should bite only on spikes), or lower the "
        "learning rate and drop the clipping")]
