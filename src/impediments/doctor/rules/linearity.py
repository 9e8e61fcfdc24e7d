"""No nonlinearity: stacked Linear/Conv layers that compose to one affine map.

.. math:: W_2 (W_1 x + b_1) + b_2 = (W_2 W_1)\\, x + (W_2 b_1 + b_2)

so any number of layers with nothing nonlinear between them computes an affine map of their input: the
depth adds parameters, not expressive power (Goodfellow et al. 2016, sec. 6.1; Saxe et al. 2014 study how
such deep linear networks train). The evidence is read from what each layer saw on its first recorded
step: the input of every layer after the first is exactly the previous layer's output (the same count,
mean and variance: nothing ran between them, not even a dropout), or an average pool of it (a whole number
of values per value, the same mean, no more variance: a max-pool raises the mean), and the monitor saw no
hidden activation anywhere in the model (an activation applied to the model's output, a sigmoid head,
does not change what the stack can fit), nor a recurrent module or a residual stream.

A Linear -> Linear pair inside a nonlinear network (a LoRA pair, a bottleneck projection) is not this: its
network has hidden activations. A single Linear layer is a linear model by design, not a stack.

Severity by measured cost, as ``linear_regime`` grades near-linear activations: a warning when the loss has
settled (its last third of windows after the transient under ``plateau_improvement`` below the middle third:
the stack reached the best affine fit it can reach) **and** that fit costs the run: the loss shed less than
``trains_loss_drop`` of its reference (:func:`affine_fit_drop`: its start, the label prior for a
classification loss, the best constant prediction's loss for a regression). A task an affine map fits (a linear
regression, ``y = A x + b`` plus noise) settles after shedding nearly all of its loss: info, with the evidence.
Info too while the loss is still falling (the cost not shown yet), or in a run too short to tell.
"""
from __future__ import annotations

import math

from impediments.doctor.rules.base import finding, finite, loss_drop, rule
from impediments.doctor.rules.loss_trend import after_transient, loss_thirds

#: the unit roundoff of float32: an average pool sums its k values in float32 before dividing
FLOAT32_ROUNDOFF = 2.0 ** -24


def _close_means(before, after, k: int, th) -> bool:
    """The two means agree to ``same_tensor_tol`` of the tensor's standard deviation plus the float32 rounding of a
    ``k``-term mean (``k`` u times the root mean square, which bounds the mean absolute value): a tolerance on the
    scale of the values, not of their mean, which a centred tensor puts near zero."""
    rms = math.sqrt(before.mean ** 2 + max(before.var, 0.0))
    tol = th.same_tensor_tol * math.sqrt(max(before.var, 0.0)) + k * FLOAT32_ROUNDOFF * rms
    return abs(before.mean - after.mean) <= tol


def _same(a, b, th) -> bool:
    """``b`` is ``a``: the same count, mean (:func:`_close_means`) and variance (to ``same_tensor_tol`` of itself)."""
    if a is None or b is None or a.count != b.count or a.count == 0:
        return False
    if not all(map(finite, (a.mean, b.mean, a.var, b.var))):
        return False
    return _close_means(a, b, 0, th) and math.isclose(a.var, b.var, rel_tol=th.same_tensor_tol, abs_tol=1e-30)


def _averaged(before, after, th) -> bool:
    """``after`` is an average pool of ``before``: a whole number k (2 or more) of values per value, the same mean
    (:func:`_close_means`, with a k-term mean's rounding), and a variance no larger (an average of k values has the
    mean of the values it tiles and, by Jensen, at most their variance). A max-pool raises the mean, so it is not
    taken for one."""
    if before is None or after is None or after.count < 1 or before.count % after.count or before.count < 2 * after.count:
        return False
    if not all(map(finite, (before.mean, after.mean, before.var, after.var))):
        return False
    k = before.count // after.count
    rounding = k * FLOAT32_ROUNDOFF * (before.mean ** 2 + max(before.var, 0.0))
    return _close_means(before, after, k, th) and after.var <= before.var * (1 + th.same_tensor_tol) + rounding


def affine_fit_drop(stats, th) -> float | None:
    """How much of its reference the loss shed: :func:`~impediments.doctor.rules.base.loss_drop` (the first loss,
    and the label prior for a classification loss), and for a regression loss whose recorded loss is that call's
    (its first value is the first call's) also the loss of the best constant prediction on the targets
    (``LossCallStats.constant_loss``: the targets' variance for a mean squared error, the mean absolute deviation
    from their median for an L1 loss): :math:`1 - \\bar{L}_{last} / L_{const}` is how much of the targets' spread
    the fit explains (:math:`R^2` for the squared error). The smaller is returned: a regression that starts far off
    and settles at the best line (a sine: first loss 1.36, the best line 0.42 against the targets' variance 0.50)
    shed most of its first loss but little of what a curve could explain."""
    drop = loss_drop(stats)
    calls = stats.loop.losses if stats.loop is not None else {}
    later = [m for _, m in after_transient(stats, th)] if stats.loss is not None else []
    if drop is None or len(calls) != 1 or not later or not all(map(finite, later)):
        return drop
    [call] = calls.values()
    if call.constant_loss is None or not call.constant_loss > 0 or call.first_loss_step != 0 \
            or call.first_loss is None or not math.isclose(call.first_loss, stats.loss.first, rel_tol=1e-5):
        return drop
    return min(drop, 1.0 - loss_thirds(later)[1] / call.constant_loss)


def affine_stack(stats, th) -> list[str] | None:
    """The layers, in forward order, of a model that is one affine map (module doc); None otherwise."""
    if stats.recurrent or stats.residual_stream or any(not a.model_output for a in stats.activations.values()):
        return None
    layers = sorted(stats.layers.items(), key=lambda kv: (kv[1].depth, kv[0]))
    if len(layers) < 2:
        return None
    for (_, before), (_, after) in zip(layers, layers[1:]):
        if not (_same(before.output_at_init, after.input_at_init, th)
                or _averaged(before.output_at_init, after.input_at_init, th)):
            return None
    return [name for name, _ in layers]


@rule("no_nonlinearity", requires=("layers",))
def no_nonlinearity(stats, th):
    """Every Linear/Conv layer feeds the next directly and no hidden activation runs: one affine map (module
    doc); a warning once the loss has settled at that map's best fit having shed under ``trains_loss_drop`` of its
    start, info otherwise."""
    names = affine_stack(stats, th)
    if names is None:
        return []
    later = [m for _, m in after_transient(stats, th)] if stats.loss is not None else []
    settled, improvement = False, None
    if len(later) >= th.loss_min_windows and all(map(finite, later)):
        k = max(1, len(later) // 3)
        middle = sum(later[k:len(later) - k]) / max(1, len(later) - 2 * k)
        last = sum(later[-k:]) / k
        improvement = (middle - last) / abs(middle) if middle else 0.0
        settled = improvement < th.plateau_improvement
    drop = affine_fit_drop(stats, th)
    costs = drop is not None and drop < th.trains_loss_drop     # the best affine fit left most of the loss
    kinds = sorted({stats.layers[n].kind for n in names})
    evidence = {"layers": names, "kinds": kinds, "hidden_activations": 0,
                "last_third_below_middle_third": improvement, "threshold": th.plateau_improvement,
                "settled": settled, "loss_drop": drop, "trains_loss_drop": th.trains_loss_drop}
    chain = " -> ".join(names)
    if settled and not costs:
        return [finding(
            "no_nonlinearity", "info", names, {**evidence, "not_a_warning": (
                f"the loss shed {drop:.0%} of its reference before it settled: an affine map fits what this run learns"
                if drop is not None else "no loss trend to measure the cost by")},
            f"The {len(names)} layers {chain} each take the previous one's output (unchanged or average-pooled) and no activation "
            "runs between them, so together they are one affine map, W x + b. The loss settled after shedding "
            f"{drop:.0%} of its reference (its start, label prior or targets' variance), so an affine map fits this task (a linear regression is one); a task that "
            "needs a curve would stall well above its start." if drop is not None else
            f"The {len(names)} layers {chain} each take the previous one's output (unchanged or average-pooled) and no activation "
            "runs between them, so together they are one affine map, W x + b.",
            None, seen={"layers": len(names)},
            confidence="each layer's input at init equal to the previous layer's output, and no hidden "
                       "activation seen; the loss's drop from its start")]
    if settled:
        return [finding(
            "no_nonlinearity", "warning", names, evidence,
            f"The {len(names)} layers {chain} each take the previous one's output (unchanged or average-pooled) and no activation "
            "runs between them, so together they are one affine map, W x + b; the loss has settled "
            f"(last third {improvement:.1%} below the middle third) having shed only {drop:.0%} of its reference: the "
            "stack reached the best affine fit of its input and more steps cannot go below it.",
            None, seen={"layers": len(names), "losses": stats.loss.count},
            confidence="each layer's input at init equal to the previous layer's output (count, mean, variance), "
                       "and no hidden activation seen")]
    return [finding(
        "no_nonlinearity", "info", names, evidence,
        f"The {len(names)} layers {chain} each take the previous one's output (unchanged or average-pooled) and no activation runs "
        "between them, so together they are one affine map, W x + b. The loss is still falling (or the run is too "
        "short to tell), so its cost is not shown yet: it will settle at the best affine fit.",
        None, seen={"layers": len(names)},
        confidence="each layer's input at init equal to the previous layer's output, and no hidden activation seen")]
