"""Rules on gradients: across depth (backward signal per hidden layer) and overall (parameter norms, updates).

Across depth, only signals that one learning rate has to serve are compared:

* **Hidden layers only.** The output layer's gradient is the loss's own (softmax minus one-hot), and
  a head that runs after the positions were reduced (global pooling, a BERT pooler on the [CLS]
  token) sees one value per example where the body sees ``H*W`` or ``T``: neither is "the last hidden
  layer" of the body.
* **Not the weights that feed a BatchNorm.** Their output is normalized, so the loss is invariant to
  their scale: :math:`\\partial L / \\partial z = (\\gamma / \\sigma_z)\\, P\\, \\partial L / \\partial y`
  scales as :math:`1/\\sigma_z`, and the gradient of such a weight is orthogonal to it with norm
  :math:`\\propto 1/\\|w\\|`. Each step grows :math:`\\|w\\|` where the gradient is large, so the relative
  step settles by itself (the angular update tends to :math:`\\sqrt{2\\eta\\lambda/(1+\\mu)}`, Wan et al.
  2021; van Laarhoven 2017; Hoffer et al. 2018). That BN nets' raw backward signal grows toward the
  input at init (Yang et al. 2019, a mean-field theory of BN) is therefore not an impediment.
* **With an adaptive optimizer** (Adam, RMSprop, ...), each parameter's step is normalized by its own
  gradient scale: a gradient spread across layers hurts only if the update-to-weight ratios
  :math:`\\|\\Delta w\\| / \\|w\\|` are spread as well, so those must agree.
* **Not the layers inside a residual block whose stream is measured.** Inside
  :math:`x_{l+1} = x_l + F_l(x_l)` a branch layer's gradient is the stream's gradient times that
  branch's own local Jacobian, so comparing branch layers across blocks mixes unlike signals; the
  stream's gradient is the comparable one, and :mod:`~impediments.doctor.rules.residual` judges it.
  This is what a transformer's layers are: a layer-scale or zero-init branch (ConvNeXt's
  :math:`\\gamma = 10^{-6}`, Touvron et al. 2021, CaiT) scales its layers' gradient by :math:`\\gamma`
  on purpose, a mixture-of-experts layer sees only the tokens routed to it (Shazeer et al. 2017), and
  a LayerNorm/RMSNorm inside the branch divides the gradient by the stream's RMS (Xiong et al. 2020).
* **Not the attention query/key projections.** Their outputs reach the loss only through the
  attention scores :math:`q k^\\top / \\sqrt{d}`, a bilinear form: :math:`\\partial L / \\partial q`
  is proportional to :math:`k` (and to the softmax's Jacobian, near uniform at init), so its energy is
  second order in the init scale while every other layer's is first order (Vaswani et al. 2017). It
  is not a signal lost on its way back through depth.
* **One chain per stream.** An encoder-decoder's encoder reaches the loss through the decoder's
  cross-attention at every decoder block, not through the decoder's first layer: the layers of the
  two stacks are two chains, compared each on its own, never read as one stream by depth.

At ``checkup`` (no optimizer step yet) a trend is a verdict on the init only where it does not depend
on the optimizer: with no optimizer known, a stack whose blocks hold a normalization is left to
``watch()`` (:mod:`~impediments.doctor.rules.residual`).

Overall, a gradient's absolute size is not an explosion by itself: the step the optimizer takes is
:math:`\\Delta w`, and an adaptive optimizer's step does not scale with :math:`\\|g\\|`, nor does a plain
step taken at a learning rate sized for a summed loss. Where the update-to-weight ratio is measured,
it is the verdict; a ratio above 1 is an error, except from a quasi-Newton step (L-BFGS sizes its
step by the inverse curvature and a line search), which is an error only when the loss is hurt (it
rose or went non-finite), else info with the evidence kept.
"""
from __future__ import annotations

import math
import re

from impediments.doctor.rules.base import by_depth, finding, finite, geometric_ratio, not_checked, rule

#: optimizers whose step is a quasi-Newton direction sized by a line search or the inverse curvature (Nocedal
#: 1980; Liu & Nocedal 1989): a step as large as the weight is how they converge, and the loss says whether it helped
QUASI_NEWTON_OPTIMIZERS = frozenset({"LBFGS"})
#: optimizers that divide each parameter's step by a running scale of its own gradient
ADAPTIVE_OPTIMIZERS = frozenset({"Adam", "AdamW", "Adamax", "NAdam", "RAdam", "RMSprop", "Adagrad", "Adadelta",
                                 "SparseAdam", "Adafactor", "LAMB", "Lamb", "Lion"})


def batchnorm_fed(stats) -> set[str]:
    """Layers whose output goes straight into a BatchNorm (scale-invariant weights)."""
    return {bn.feeding_layer for bn in stats.batchnorm.values() if bn.feeding_layer}


def head_layers(layers) -> set[str]:
    """The output layer plus any head after the positions were reduced (global pool, [CLS] pooler).

    When the body has several positions per example (conv ``H*W``, sequence ``T``), the trailing layers
    (by depth) with one position per example run after that reduction. An MLP has one position
    everywhere, so only its output layer is the head.
    """
    ordered = by_depth(layers)
    if not ordered:
        return set()
    head = {ordered[-1][0]}
    if any(l.positions > 1 for _, l in ordered):
        for name, l in reversed(ordered):
            if l.positions > 1:
                break
            head.add(name)
    return head


#: the last name component of a separate attention query or key projection, across PyTorch and transformers
#: conventions (``q_proj``/``k_proj`` Llama, ``query``/``key`` BERT, ``q_lin``/``k_lin`` DistilBERT, ``q``/``k``
#: T5, ``wq``/``wk``, ``to_q``/``to_k``, DeepSeek's low-rank ``q_a_proj``/``q_b_proj``). A fused projection
#: (``c_attn``, ``qkv``, ``query_key_value``) also carries the values, whose gradient is first order, and stays.
QUERY_KEY = re.compile(r"(?:^|\.)(?:q|k|query|key|q_proj|k_proj|q_lin|k_lin|wq|wk|to_q|to_k|query_proj|key_proj"
                       r"|q_a_proj|q_b_proj|linear_q|linear_k|query_global|key_global)$")
#: the module names of the two stacks of an encoder-decoder (transformers, torch.nn.Transformer): where no
#: residual block was recognized (blocks that return tuples), a layer's stack is read from its path
STACKS = ("encoder", "decoder")


def _stack_by_name(name: str) -> str:
    """The path up to its first ``encoder``/``decoder`` component (``led.encoder``), or "" (neither)."""
    parts = name.split(".")
    for i, p in enumerate(parts):
        if p in STACKS:
            return ".".join(parts[:i + 1])
    return ""


def stream_of(block: str) -> str:
    """The stack a residual block belongs to: its container's parent path, without trailing indices.

    ``model.encoder.layers.0`` -> ``model.encoder``; ``model.decoder.layers.1`` -> ``model.decoder``;
    the stages of one stream (``swin.encoder.layers.2.blocks.0``, ``convnext.encoder.stages.1.layers.0``)
    -> ``swin.encoder.layers``, ``convnext.encoder.stages``: sibling stages run one after the other on one
    stream, while an encoder and a decoder are differently named stacks.
    """
    parts = block.split(".")[:-1]           # the block's container (a ModuleList / Sequential)
    parts = parts[:-1]                      # its owner: the stack
    while parts and parts[-1].isdigit():
        parts = parts[:-1]
    return ".".join(parts)


def chains(stats) -> dict[str, list[tuple[str, float]]]:
    """The body's hidden layers as ``{stream: [(name, gradient energy), ...]}`` by depth (module docstring).

    Left out: the head, BatchNorm-fed layers, attention query/key projections (:data:`QUERY_KEY`), layers
    whose backward signal is exactly zero (a path multiplied by a zero-initialized gate on purpose, as in
    xLSTM's feed-forward, is blocked, not attenuated by depth: a geometric trend needs positive values,
    and a network where every gradient is zero is ``gradients_vanished_overall``'s), and every layer
    inside a residual block whose stream gradient was measured (:attr:`~impediments.monitor.schema.MonitorStats.residual_stream`). With
    several streams (an encoder and a decoder), each layer goes to the stream whose stack holds it,
    and the layers of neither (embeddings' projections, a shared head) form a chain of their own. Where
    no block was recognized, a layer's stack is the ``encoder``/``decoder`` component of its path
    (:data:`STACKS`).
    """
    skip = head_layers(stats.layers) | batchnorm_fed(stats)
    blocks = [b for b, s in stats.residual_stream.items() if s.samples > 0]
    roots = sorted({stream_of(b) for b in blocks})
    by_name = len({_stack_by_name(n) for n in stats.layers} - {""}) > 1      # both an encoder and a decoder
    out: dict[str, list[tuple[str, float]]] = {}
    for n, l in by_depth(stats.layers):
        if (not finite(l.grad_var) or l.grad_var == 0 or n in skip or QUERY_KEY.search(n)
                or any(n.startswith(b + ".") for b in blocks)):
            continue
        if len(roots) > 1:
            stream = next((r for r in roots if n == r or n.startswith(r + ".")), "")
        else:
            stream = _stack_by_name(n) if by_name else ""
        out.setdefault(stream, []).append((n, float(l.grad_var) * max(l.output.count, 1)))
    return out


def _adaptive(stats) -> bool:
    return bool(stats.optimizer) and stats.optimizer.get("type") in ADAPTIVE_OPTIMIZERS


def _relative_steps(stats, names) -> list[tuple[str, float]]:
    """Per layer, the measured update-to-weight ratio of its weight (the steps the optimizer took)."""
    out = []
    for n in names:
        p = stats.params.get(f"{n}.weight")
        if p is not None and p.samples > 0 and finite(p.update_to_weight) and p.update_to_weight > 0:
            out.append((n, float(p.update_to_weight)))
    return out


@rule("vanishing_gradients", "exploding_gradients", requires=("layers",))
def gradient_variance_with_depth(stats, th):
    """Back-propagated gradient energy (d loss / d layer output) along the hidden layers of the body.

    The energy per example, :math:`E_l = n_l \\operatorname{Var}(\\partial L / \\partial z_l)` with
    :math:`n_l` values per example, is what a fan-in variance-preserving init keeps constant backward
    (He et al. 2015); ``output.count`` is proportional to :math:`n_l` for layers called once per
    forward. Compared along a least-squares geometric trend (last / first) against
    ``gradient_var_ratio``; with an adaptive optimizer the update-to-weight ratios must be spread
    the same way, by at least its square root (norms, not energies).
    """
    skip_head, skip_bn = head_layers(stats.layers), batchnorm_fed(stats)
    streams = chains(stats)
    if not any(len(c) >= th.depth_min_layers and any(v > 0 for _, v in c) for c in streams.values()):
        n_chain = sum(len(c) for c in streams.values())
        if skip_bn and n_chain < th.depth_min_layers:
            return [not_checked("vanishing_gradients", sorted(skip_bn)[:3],
                                f"{len(skip_bn)} layers feed BatchNorm (scale-invariant: their gradient scale "
                                f"settles by itself); {n_chain} other hidden layers, fewer than "
                                f"{th.depth_min_layers} needed for a trend")]
        return []
    out = []
    for stream, chain in streams.items():
        if len(chain) >= th.depth_min_layers and any(v > 0 for _, v in chain):
            out.extend(_depth_trend(stats, th, chain, stream, skip_head, skip_bn))
    return out


def _depth_trend(stats, th, chain, stream, skip_head, skip_bn) -> list:
    """The finding (if any) for one stream's chain of ``(layer, gradient energy)``."""
    ratio = geometric_ratio([max(v, 1e-45) for _, v in chain])  # last / first (output side / input side)
    code = "vanishing_gradients" if ratio > th.gradient_var_ratio else (
        "exploding_gradients" if ratio < 1 / th.gradient_var_ratio else None)
    if code is None:
        return []
    energy = dict(chain)
    evidence = {"output_over_input_grad_energy": ratio, "threshold": th.gradient_var_ratio,
                "first_layer": chain[0][0], "last_hidden_layer": chain[-1][0],
                "grad_variance_by_layer": {n: stats.layers[n].grad_var for n in energy},
                "left_out": {"head": sorted(skip_head), "feeding_batchnorm": len(skip_bn),
                             "residual_blocks": len(stats.residual_stream)}}
    if stream:
        evidence["stream"] = stream
    seen = {"layers": len(chain), "sampled_steps": stats.sampled_steps, "steps": stats.steps}
    confidence = (f"a geometric trend over {len(chain)} hidden layers, {abs(math.log10(ratio)):.1f} decades "
                  f"first to last (the threshold is {math.log10(th.gradient_var_ratio):.0f})")
    if _adaptive(stats):
        steps = _relative_steps(stats, energy)
        if not steps:       # checkup given an adaptive optimizer: no step taken yet, its first step is known
            kind = stats.optimizer.get("type")
            return [finding(
                code, "info", list(energy), {**evidence, "optimizer": kind},
                f"The back-propagated gradient energy changes {abs(math.log10(ratio)):.1f} decades from the first "
                f"to the last hidden layer at these weights, but the optimizer ({kind}) normalizes each parameter's "
                "step by its own gradient scale: its first step is lr g / (|g| + eps), about lr per weight whatever "
                "the gradient's size (Kingma & Ba 2015), which evens this out. watch() measures the steps taken.",
                None, seen=seen, confidence=confidence)]
        if len(steps) >= th.depth_min_layers:
            step_ratio = geometric_ratio([v for _, v in steps])
            evidence["update_to_weight_last_over_first"] = step_ratio
            bound = math.sqrt(th.gradient_var_ratio)
            if not (step_ratio > bound if code == "vanishing_gradients" else step_ratio < 1 / bound):
                return []       # the adaptive optimizer's per-parameter scaling already evens the steps out
    return [finding(code, "warning", list(energy), evidence, seen=seen, confidence=confidence)]


def _weights(stats):
    return [(n, p) for n, p in stats.params.items() if p.samples > 0]


@rule("vanishing_gradients", requires=("params",))
def gradients_vanished_overall(stats, th):
    """Every parameter gradient (essentially) zero: nothing is learning."""
    params = [(n, p.grad_norm_max) for n, p in _weights(stats) if finite(p.grad_norm_max)]
    if not params:
        return []
    largest = max(v for _, v in params)
    if largest >= th.vanishing_grad_norm:
        return []
    return [finding("vanishing_gradients", "error", [n for n, _ in params],
                    {"max_grad_norm": largest, "threshold": th.vanishing_grad_norm, "parameters": len(params)},
                    "Every parameter's gradient is essentially zero, so no step changes the network: the signal "
                    "is blocked (dead or saturated units, or zero weights downstream).",
                    seen={"parameters": len(params), "sampled_steps": stats.sampled_steps, "steps": stats.steps},
                    confidence=f"the largest gradient norm of any parameter at any sampled step was {largest:.2g}")]


def loss_hurt(stats) -> bool | None:
    """Whether the recorded loss was hurt: it went non-finite, or it ended no lower than it started.

    None when no loss was recorded (``checkup``, or a run whose loss the monitor never saw).
    """
    loss = stats.loss
    if loss is None or loss.count < 2:
        return None
    if loss.first_nonfinite_step is not None or not finite(loss.last) or not finite(loss.first):
        return True
    return loss.last >= loss.first


def _measured_update(stats, name: str) -> float | None:
    p = stats.params.get(name)
    if p is None or not finite(p.update_to_weight):
        return None
    return float(p.update_to_weight)


@rule("exploding_gradients", requires=("params",))
def gradients_exploded_overall(stats, th):
    """Updates as large as the weights, or gradient norms that overflow any learning rate.

    Judged by the step the optimizer takes (module docstring): a gradient norm above
    ``exploding_grad_norm`` is an explosion only where that parameter's update-to-weight ratio was not
    measured (no optimizer hooked) or is itself above ``exploding_update_ratio``: an adaptive step
    (:math:`\\Delta w = -\\eta\\, \\hat m / (\\sqrt{\\hat v} + \\epsilon)`, Kingma & Ba 2015) does not grow
    with :math:`\\|g\\|`, and a plain step at a learning rate sized for a summed loss is
    :math:`\\eta \\|g\\|`, whatever the two factors are apart. An update ratio above
    ``exploding_update_ratio`` is an error for a first-order optimizer (a step that replaces the weight
    every step, whatever the loss does meanwhile); under a quasi-Newton optimizer
    (:data:`QUASI_NEWTON_OPTIMIZERS`: L-BFGS sizes its step by the inverse curvature and accepts it by a
    line search) it is an error only when the loss was hurt (non-finite, or no lower at the end than at
    the start) or not recorded, else info.
    """
    big_update, big_grad = {}, {}
    for name, p in _weights(stats):
        if (name.endswith("weight") and finite(p.update_to_weight) and finite(p.weight_norm) and p.weight_norm > 1e-6
                and p.update_to_weight > th.exploding_update_ratio):
            big_update[name] = float(p.update_to_weight)
        if finite(p.grad_norm_max) and p.grad_norm_max > th.exploding_grad_norm:
            big_grad[name] = float(p.grad_norm_max)
    for w in stats.windows:     # per-window norms survive a later NaN in the means
        for name, g in w.grad_norm.items():
            if finite(g) and g > th.exploding_grad_norm:
                big_grad[name] = max(big_grad.get(name, 0.0), float(g))
    if not big_update and not big_grad:
        return []
    # a large gradient whose step was measured and is not large: the optimizer's step is the verdict
    step_measured = {n: u for n in big_grad if (u := _measured_update(stats, n)) is not None}
    unmeasured = {n: g for n, g in big_grad.items() if n not in step_measured}
    hurt = loss_hurt(stats)
    evidence = {"update_to_weight": big_update, "update_threshold": th.exploding_update_ratio,
                "grad_norm_max": big_grad, "grad_norm_threshold": th.exploding_grad_norm,
                "loss_hurt": hurt, "optimizer": (stats.optimizer or {}).get("type")}
    if big_update:
        evidence["max_update_to_weight"] = max(big_update.values())
    if big_grad:
        evidence["max_grad_norm"] = max(big_grad.values())
    if step_measured:
        evidence["update_to_weight_of_large_gradients"] = step_measured
    seen = {"parameters": len(stats.params), "sampled_steps": stats.sampled_steps, "steps": stats.steps}
    line_search = evidence["optimizer"] in QUASI_NEWTON_OPTIMIZERS
    if big_update and not (line_search and hurt is False) or unmeasured:
        what = (f"mean update-to-weight ratio up to {max(big_update.values()):.2g} over the sampled steps"
                if big_update else f"gradient norms up to {max(unmeasured.values()):.2g} (update ratios not measured)")
        return [finding("exploding_gradients", "error", sorted({*big_update, *big_grad}), evidence,
                        seen=seen, confidence=f"{what}; measured, not extrapolated")]
    if big_update:
        why = (f"updates up to {max(big_update.values()):.2g} of the weight per step, but the loss fell from "
               f"{stats.loss.first:.4g} to {stats.loss.last:.4g}: {evidence['optimizer']}'s quasi-Newton steps are "
               f"sized by the inverse curvature and accepted by its line search")
    else:
        why = (f"gradient norms up to {max(big_grad.values()):.2g}, but the optimizer's "
               f"({evidence['optimizer'] or 'unknown'}) steps were at most {max(step_measured.values()):.2g} of the "
               f"weight: the step taken is the verdict (an adaptive optimizer's step does not grow with the "
               f"gradient; a summed loss's larger gradient is met by its learning rate)")
    return [finding("exploding_gradients", "info", sorted({*big_update, *big_grad}), evidence,
                    "Large numbers, not an explosion: " + why + ".", "Nothing to change for this",
                    seen=seen, confidence=why)]


def first_weights_gradient_vanished(stats, th) -> bool | None:
    """The first and the last weight in optimizer order carry gradient energy more than ``gradient_var_ratio``
    apart (or the first none): the gradient vanished before the first layers, which stalls the loss whatever the
    labels or the rate (Adam hides it in the update sizes, not in the gradients). Norm layers' small gains between
    them are not compared. Read by ``uninformative_labels`` and ``learning_rate_too_low`` as another cause. None
    where fewer than two weights have a gradient norm and an optimizer order (nothing to compare)."""
    loop = stats.loop
    ordered = sorted((loop.params[n].order, p.grad_norm) for n, p in stats.params.items()
                     if n.endswith("weight") and n in loop.params and loop.params[n].order is not None
                     and finite(p.grad_norm))
    if len(ordered) < 2:
        return None
    return ordered[0][1] <= 0 or (ordered[-1][1] / ordered[0][1]) ** 2 > th.gradient_var_ratio
