"""The training loop as the monitor sees it: clearing, steps, learning rates, loss calls, clipping, batches.

Every step pays only for host integers and floats: the optimizer's step hooks count steps and the
forwards between them and read each group's learning rate, and a wrapper around
``torch.nn.utils.clip_grad_norm_`` (installed only while watching, restored on exit) reads the norm it
returns. On sampled steps (the monitor's schedule) the probe also

* fingerprints the model's first input (a strided sample, compared with the previous sampled input);
* notes the forward order of the modules that own parameters (global module pre-hooks, that forward only);
* from the end of the forward to the optimizer step, arms a :class:`~torch.overrides.TorchFunctionMode`
  that sees the loss-function calls (``F.cross_entropy``, ``F.nll_loss``, ``F.mse_loss``, ...) with
  their arguments, and ``Tensor.backward``. Before the backward runs, a parameter whose ``.grad`` is
  the very tensor, at the same version, that it held right after the previous optimizer step, with a
  non-zero norm, still holds that step's gradient (nobody cleared it); after it, the parameters whose
  ``.grad`` was written received a gradient.

Each parameter is fingerprinted on entry and on exit (:func:`fingerprints`): one whose fingerprint
is bitwise unchanged was never updated. On CPU values are read on the host; elsewhere they accumulate
in device tensors read by :meth:`LoopProbe.to_stats` only (no sync in a hook). Read by the
``doctor/rules/loop.py`` rules (Jiang et al. 2025, TrainCheck, OSDI: silent training errors).
"""
from __future__ import annotations

import math
import weakref
from dataclasses import dataclass

import torch
from torch import nn

from impediments.monitor.hooks.intercept import remove_mode
from impediments.monitor.hooks.portable import PortableHook
from impediments.monitor.probes.base import Probe
from impediments.monitor.probes.loop.loss_calls import LossCalls, LossCallStats, LossMode
from impediments.monitor.state.moments import to_device

#: learning-rate decades tracked: first step at lr <= max lr / 10^k, k = 1..LR_DECADES
LR_DECADES = 6
#: clipping ratios counted: calls with total_norm / max_norm >= 10^k, k = 0..CLIP_DECADES-1
CLIP_DECADES = 5
#: sampled steps remembered as evidence of uncleared gradients
STALE_STEPS_KEPT = 16


@dataclass
class LoopParamStats:
    """One trainable parameter as the training loop treated it (:mod:`~impediments.monitor.loop`).

    ``order`` is the forward order of its module on sampled steps (None: the module never ran);
    ``in_optimizer`` and ``lr`` are None without a watched optimizer; ``received`` counts the sampled
    backward passes that wrote its ``.grad``, ``gradient_norm_sum`` sums those gradients' norms;
    ``changed``: its fingerprint (norm, sum, ramp-weighted sample) differs between entering and leaving
    ``watch()``; ``stale`` counts sampled
    backward passes that began with the previous optimizer step's non-zero gradient still in ``.grad``.
    """

    module: str
    order: int | None
    in_optimizer: bool | None
    lr: float | None
    received: int
    gradient_norm_sum: float
    changed: bool
    stale: int
    #: its norm when last fingerprinted (leaving ``watch()``, or now)
    weight_norm: float | None = None


@dataclass
class LoopStats:
    """The training loop: steps, gradient clearing, loss calls, targets, inputs, learning rates, clipping.

    ``forwards_per_step`` is ``[min, max]`` training forwards between two optimizer steps;
    ``stale_steps`` the first sampled steps whose backward began with uncleared gradients. Targets:
    per sampled batch of integer class targets, the mean number of targets and of distinct classes,
    and the class counts over those batches. ``repeated_inputs`` counts sampled forwards whose input
    equalled the previous sampled one, of ``compared_inputs``. ``learning_rates``: per param group,
    ``first``, ``max``, ``min``, ``last`` and ``below[k]``, the first step with lr <= max / 10^(k+1).
    ``clip_at_least[k]`` counts ``clip_grad_norm_`` calls with total norm >= 10^k max_norm.
    """

    optimizer_steps: int
    forwards_per_step: list[int]
    backwards: int
    grad_checks: int
    stale_steps: list[int]
    params: dict[str, LoopParamStats]
    losses: dict[str, LossCallStats]
    target_batches: int
    targets_per_batch: float | None
    distinct_classes_per_batch: float | None
    class_counts: list[int]
    compared_inputs: int
    repeated_inputs: int
    learning_rates: list[dict]
    clip_calls: int
    clip_max_norm: float | None
    clip_at_least: list[int]
    clip_log_ratio_mean: float | None

    @classmethod
    def from_dict(cls, d: dict) -> "LoopStats":
        d = dict(d)
        d["params"] = {k: LoopParamStats(**v) for k, v in d["params"].items()}
        d["losses"] = {k: LossCallStats(**v) for k, v in d["losses"].items()}
        return cls(**d)


#: values fingerprinted per tensor (a strided sample)
FINGERPRINT_VALUES = 4096


def fingerprints(params: list) -> torch.Tensor | None:
    """Per parameter ``[norm, sum, ramp-weighted sum of a strided sample]``: an ``(N, 3)`` tensor, not read here.

    The norm alone misses updates orthogonal to the weight (a layer followed by BatchNorm is scale
    invariant: its gradient is orthogonal to it and its norm changes only at second order, below float32
    resolution), and the sum misses them too for a vector of ones (BatchNorm's initial weight); the
    ramp-weighted sample does not. Read on entry and exit only, never per step.
    """
    out = []
    for p in params:
        flat = p.detach().reshape(-1)
        s = flat[:: max(1, -(-flat.numel() // FINGERPRINT_VALUES))].double()
        ramp = torch.arange(1, len(s) + 1, dtype=torch.float64, device=s.device)
        out.append(torch.stack([flat.double().norm(), flat.double().sum(), (s * ramp).sum()]))
    return torch.stack([t.to(out[0].device) for t in out]) if out else None


class LoopProbe(Probe):
    """Observes one training loop (see the module docstring); owns its hooks; ``to_stats()`` -> LoopStats."""

    key = "loop"

    def __init__(self, ctx, model: nn.Module, optimizer, parameters: dict | None = None,
                 modules: dict | None = None) -> None:
        """``parameters`` / ``modules``: ``{name: ...}`` supplied by a framework whose layers are not registered
        as children (as for :class:`~impediments.monitor.monitor.Monitor`); default the model's own."""
        super().__init__(ctx)
        self.optimizer = optimizer
        named = [(n, p) for n, p in (parameters.items() if parameters is not None else model.named_parameters())
                 if p.requires_grad and ctx.included(n.rsplit(".", 1)[0] if "." in n else "")]
        self.names = [n for n, _ in named]
        self.params = [p for _, p in named]
        in_opt = {id(p) for g in optimizer.param_groups for p in g["params"]} if optimizer is not None else None
        self.in_optimizer = [None if in_opt is None else id(p) in in_opt for p in self.params]
        self.lr_of = [None] * len(self.params)
        mods = modules.items() if modules is not None else model.named_modules()
        self.owners = {id(m): n for n, m in mods if isinstance(m, nn.Module) and next(m.parameters(recurse=False),
                                                                                        None) is not None}
        self.order: dict[str, int] = {}
        self.steps = self.backwards = self.grad_checks = 0
        self.fps = [None, None]                # forwards between two optimizer steps: min, max
        self._fwd_at_step = 0
        self.received = [0] * len(self.params)
        self.stale_steps: list[int] = []
        self.loss_calls = LossCalls()
        self.inputs = {"compared": 0}
        self.lr: list[dict] = []
        self.clip = {"calls": 0, "max_norm": None}
        self._clip_edges: dict = {}
        self._dev: dict[str, torch.Tensor] = {}  # device accumulators, read by to_stats only
        self._snap: dict[int, tuple] = {}
        self._prev_fp = None
        self._mode: LossMode | None = None
        self._module_hook = None
        self._clip_orig = self._clip_installed = None
        self._start = fingerprints(self.params)
        self._end = None
        self._handles: list = []

    # --------------------------------------------------------------------- scope
    def attach(self) -> list:
        model = self.ctx.model
        h = [model.register_forward_pre_hook(PortableHook(self._root_pre), prepend=True),   # before the Interceptor arms
             model.register_forward_hook(PortableHook(self._root_post), always_call=True)]
        if self.optimizer is not None:
            h += [self.optimizer.register_step_pre_hook(PortableHook(self._step_pre)),
                  self.optimizer.register_step_post_hook(PortableHook(self._step_post))]
        else:
            from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook
            h += [register_optimizer_step_pre_hook(self._step_pre), register_optimizer_step_post_hook(self._step_post)]
        self._handles = h
        self._clip_orig, self._clip_installed = torch.nn.utils.clip_grad_norm_, self._clip_wrapper
        torch.nn.utils.clip_grad_norm_ = self._clip_installed
        return h

    def detach(self) -> None:
        """Disarm, restore ``clip_grad_norm_``, take the final parameter norms and drop every reference."""
        self.disarm()
        self._remove_module_hook()
        for h in self._handles:
            h.remove()
        if self._clip_orig is not None and torch.nn.utils.clip_grad_norm_ is self._clip_installed:
            torch.nn.utils.clip_grad_norm_ = self._clip_orig   # (another watch() entered later restores its own)
        self._clip_installed = None
        if self.params and self._end is None:
            self._end = fingerprints(self.params)
            self.lr_of = self._group_lrs()
        self._handles, self.params, self.optimizer, self._snap, self._prev_fp = [], [], None, {}, None

    def arm(self) -> None:
        if self._mode is None:
            self._mode = LossMode(self)
            self._mode.__enter__()

    def disarm(self) -> None:
        """Take the mode off the stack even when another mode was pushed above it since (those stay)."""
        mode, self._mode = self._mode, None
        if mode is not None:
            remove_mode(mode)

    def _group_lrs(self) -> list:
        """Each parameter's learning rate in the watched optimizer now (None: not in it, or no optimizer)."""
        if self.optimizer is None:
            return [None] * len(self.params)
        lrs = {}
        for g in self.optimizer.param_groups:
            lr = g.get("lr")
            if isinstance(lr, torch.Tensor):
                lr = float(lr) if lr.device.type == "cpu" else None
            lrs.update({id(p): lr for p in g["params"]})
        return [lrs.get(id(p)) for p in self.params]

    def _remove_module_hook(self) -> None:
        if self._module_hook is not None:
            self._module_hook.remove()
            self._module_hook = None

    # --------------------------------------------------------------------- forward
    def _root_pre(self, model, args):
        if not model.training:
            return
        self.disarm()
        if not self.ctx.full_schedule(self.ctx.steps):    # the step the monitor is about to give this forward
            return
        x = next((a for a in args if isinstance(a, torch.Tensor)), None)
        if x is not None and x.numel():
            self._fingerprint(x.detach())
        if id(model) in self.owners:
            self.order.setdefault("", len(self.order))
        if self._module_hook is None:               # a re-entrant forward keeps the outer one's hook
            self._module_hook = torch.nn.modules.module.register_module_forward_pre_hook(self._module_pre)

    def _module_pre(self, module, args):
        name = self.owners.get(id(module))
        if name is not None and name not in self.order:
            self.order[name] = len(self.order)

    def _root_post(self, model, args, out):
        self._remove_module_hook()
        if model.training and self.ctx.full:
            self.arm()

    def _fingerprint(self, x: torch.Tensor) -> None:
        shape = tuple(x.shape)
        if x.layout == torch.sparse_coo:          # a sparse input: its stored values (and their count)
            x = x.coalesce().values()
        elif x.layout != torch.strided:
            x = x.values()
        flat = x.reshape(-1)
        s = flat[:: max(1, -(-flat.numel() // FINGERPRINT_VALUES))].double()
        ramp = torch.arange(1, len(s) + 1, dtype=torch.float64, device=s.device)
        fp = (shape + (flat.numel(),), torch.stack([s.sum(), (s * ramp).sum()]))
        prev, self._prev_fp = self._prev_fp, fp
        if prev is None or prev[0] != fp[0]:
            return
        self.inputs["compared"] += 1
        self._add("repeated_inputs", (prev[1] == fp[1]).all())

    # --------------------------------------------------------------------- optimizer
    def _step_pre(self, opt, args, kwargs):
        step = self.ctx.steps
        for k, g in enumerate(opt.param_groups):
            lr = g.get("lr")
            if isinstance(lr, torch.Tensor):
                if lr.device.type != "cpu":
                    continue
                lr = float(lr)
            if not isinstance(lr, (int, float)):
                continue
            if k == len(self.lr):
                self.lr.append({"first": lr, "max": lr, "min": lr, "last": lr, "below": [None] * LR_DECADES,
                                "first_step": step})
            t = self.lr[k]
            t["last"] = lr
            if lr > t["max"]:
                t["max"] = lr
            if lr < t["min"]:                      # only a new low can cross a decade (the max only grows)
                t["min"] = lr
                for d in range(LR_DECADES):
                    if t["below"][d] is None and lr <= t["max"] / 10 ** (d + 1) * (1 + 1e-9):   # 0.1**3 > 1e-3
                        t["below"][d] = step

    def _step_post(self, opt, args, kwargs):
        self.disarm()
        self.steps += 1
        f = self.ctx.training_forwards - self._fwd_at_step
        self._fwd_at_step = self.ctx.training_forwards
        fps = self.fps
        if fps[0] is None or f < fps[0]:
            fps[0] = f
        if fps[1] is None or f > fps[1]:
            fps[1] = f
        if self.ctx.full_schedule(self.ctx.steps):      # the next step is sampled: remember each gradient as stepped
            self._snap = {i: (weakref.ref(p.grad), p.grad._version) for i, p in enumerate(self.params)
                          if p.grad is not None and self.in_optimizer[i] is not False}

    # --------------------------------------------------------------------- backward and loss (sampled steps)
    def backward(self, func, args, kwargs):
        params = self.params
        stale = [i for i, (ref, ver) in self._snap.items() if (g := params[i].grad) is not None and ref() is g
                 and g._version == ver and not g.is_sparse]
        if self._snap:
            self.grad_checks += 1
            if stale:
                norms = torch.stack(torch._foreach_norm([params[i].grad for i in stale]))
                hit = norms > 0
                self._add_at("stale", stale, hit)
                if len(self.stale_steps) < STALE_STEPS_KEPT and (hit.device.type != "cpu" or bool(hit.any())):
                    self.stale_steps.append(self.ctx.steps)
        self._snap = {}
        before = [(p.grad, None if p.grad is None else p.grad._version) for p in params]
        out = func(*args, **kwargs)
        self.backwards += 1
        got = [i for i, (p, (g, v)) in enumerate(zip(params, before)) if p.grad is not None
               and (p.grad is not g or p.grad._version != v)]
        for i in got:
            self.received[i] += 1
        dense = [i for i in got if not params[i].grad.is_sparse]     # (a sparse embedding gradient: counted only)
        if dense:
            self._add_at("grad_norm", dense, torch.stack(torch._foreach_norm([params[i].grad for i in dense])))
        return out

    # --------------------------------------------------------------------- clipping (every call)
    def _clip_wrapper(self, parameters, max_norm, *args, **kwargs):
        total = self._clip_orig(parameters, max_norm, *args, **kwargs)
        self.clip["calls"] += 1
        self.clip["max_norm"] = float(max_norm)
        if max_norm > 0 and isinstance(total, torch.Tensor):
            ratio = total.detach().double() / float(max_norm)
            edges = self._clip_edges.get(ratio.device)
            if edges is None:                      # once per device: no host-to-device copy per step
                edges = self._clip_edges[ratio.device] = to_device([10.0 ** k for k in range(CLIP_DECADES)],
                                                                   torch.float64, ratio.device)
            self._add("clip_at_least", (ratio >= edges).double())
            self._add("clip_log_ratio", torch.log10(ratio.clamp_min(1e-30)))
        return total

    # --------------------------------------------------------------------- accumulators
    def _add(self, key: str, value: torch.Tensor) -> None:
        v = value.double()
        self._dev[key] = v if key not in self._dev else self._dev[key] + v

    def _add_at(self, key: str, idx: list, values: torch.Tensor) -> None:
        cur = self._dev.get(key)
        if cur is None:
            cur = self._dev[key] = torch.zeros(len(self.names), dtype=torch.float64, device=values.device)
        cur.index_add_(0, to_device(idx, torch.int64, values.device), values.double())

    def to_stats(self) -> LoopStats:
        """The probe's observations as plain data (reads the device accumulators: the only sync)."""
        dev = {k: v.cpu().tolist() for k, v in self._dev.items()}
        end, lr_of = self._end, self.lr_of
        if end is None and self.params:            # still watching: the norms and rates of now
            end, lr_of = fingerprints(self.params), self._group_lrs()
        changed = (self._start != end).any(1).tolist() if self.names else []
        norms = end[:, 0].tolist() if self.names else []
        zeros = [0.0] * len(self.names)
        stale, gnorm = dev.get("stale", zeros), dev.get("grad_norm", zeros)
        params = {n: LoopParamStats(
            module=n.rsplit(".", 1)[0] if "." in n else "", order=self.order.get(n.rsplit(".", 1)[0] if "." in n
                                                                                  else ""),
            in_optimizer=self.in_optimizer[i], lr=lr_of[i], received=self.received[i],
            gradient_norm_sum=gnorm[i], changed=changed[i], stale=int(stale[i]), weight_norm=norms[i])
            for i, n in enumerate(self.names)}
        calls = self.clip["calls"]
        return LoopStats(
            optimizer_steps=self.steps, forwards_per_step=list(self.fps) if self.steps else [],
            backwards=self.backwards, grad_checks=self.grad_checks, stale_steps=list(self.stale_steps),
            params=params, **self.loss_calls.to_stats(), compared_inputs=self.inputs["compared"],
            repeated_inputs=int(dev.get("repeated_inputs", 0)), learning_rates=[dict(t) for t in self.lr],
            clip_calls=calls, clip_max_norm=self.clip["max_norm"],
            clip_at_least=[int(c) for c in dev.get("clip_at_least", [])],
            clip_log_ratio_mean=dev["clip_log_ratio"] / calls if "clip_log_ratio" in dev and calls else None)

    def stats(self, total, windows) -> dict:
        return {"loop": self.to_stats()}
