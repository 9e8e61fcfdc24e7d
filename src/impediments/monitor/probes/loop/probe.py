"""The training loop as the monitor sees it: clearing, steps, learning rates, loss calls, clipping, batches.

Every step pays only for host integers and floats: the optimizer's step hooks count steps and the
forwards between them and read each group's learning rate, and a wrapper around
``torch.nn.utils.clip_grad_norm_`` (installed only while watching, restored on exit) reads the norm it
returns (and, for free, whether any gradient is NaN/Inf at that step). On sampled steps (the monitor's schedule) the probe also

* fingerprints the model's first input (a strided sample, compared with the previous sampled input);
* notes the forward order of the modules that own parameters (global module pre-hooks, that forward only);
* from the end of the forward to the optimizer step, arms a :class:`~torch.overrides.TorchFunctionMode`
  that sees the loss-function calls (``F.cross_entropy``, ``F.nll_loss``, ``F.mse_loss``, ...) with
  their arguments, and ``Tensor.backward``. A parameter whose ``.grad`` is the very tensor, at the
  version the backward passes since left it, that it held right after the previous optimizer step,
  with a non-zero norm, *when the next optimizer step takes it*, still holds that step's gradient
  (nobody cleared it). The verdict waits for that step: a GAN's generator backward passes through the
  discriminator and adds into its stepped gradient, which ``netD.zero_grad()`` then clears before the
  discriminator's own step. After each backward, the parameters whose ``.grad`` was written received
  a gradient;
* an optimizer step that comes after a sampled forward with no backward between them, and no
  gradient written since that forward, steps before backward (``optimizer.step(); loss.backward()``):
  the mode then stays armed past the step, so the late backward is still seen.

Every ``DataLoader.__iter__`` call while watching is counted with the loader's length (wrapped like
the clipping functions): an iterator started on (nearly) every step of a loader that holds several
batches is ``next(iter(loader))`` inside the loop, whereas full-batch training has one batch per pass.
``clip_grad_value_`` is wrapped too: on full steps (a window statistic: two passes over the gradients),
the total gradient norm before and after it gives the factor by which it shrank the gradient.

Each parameter is fingerprinted on entry and on exit (:func:`fingerprints`): one whose fingerprint
is bitwise unchanged was never updated. On CPU values are read on the host; elsewhere they accumulate
in device tensors read by :meth:`LoopProbe.to_stats` only (no sync in a hook). Read by the
``doctor/rules/loop.py`` rules (Jiang et al. 2025, TrainCheck, OSDI: silent training errors).
"""
from __future__ import annotations

import functools
import math
import weakref
from dataclasses import dataclass

import torch
from torch import nn

from impediments.monitor.hooks.intercept import remove_mode
from impediments.monitor.hooks.portable import PortableHook
from impediments.monitor import sharding
from impediments.monitor.probes.base import Probe
from impediments.monitor.probes.loop.loss_calls import LossCalls, LossCallStats, LossMode
from impediments.monitor.probes.output import first_tensor
from impediments.monitor.state.moments import to_device

#: learning-rate decades tracked: first step at lr <= max lr / 10^k, k = 1..LR_DECADES
LR_DECADES = 6
#: clipping ratios counted: calls with total_norm / max_norm >= 10^k, k = 0..CLIP_DECADES-1
CLIP_DECADES = 5
#: sampled steps remembered as evidence of uncleared gradients
STALE_STEPS_KEPT = 16
#: normalization layers, whose affine parameters alone (with the biases) are what BitFit-style or
#: "BatchNorm only" training leaves trainable
NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)


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
    ``clip_at_least[k]`` counts clipping calls that cut the gradient's norm 10^k-fold or more
    (``clip_grad_norm_``: total norm >= 10^k max_norm; ``clip_grad_value_``: norm before >= 10^k norm
    after); ``clip_calls`` counts the calls measured: every ``clip_grad_norm_`` call (it returns the norm),
    ``clip_grad_value_`` calls on full steps (measuring one costs two passes over the gradients);
    ``clip_function`` names the last clipping function called.

    ``training_forwards``: training-mode forwards of the model while watching; ``step_checks``: sampled
    optimizer steps checked for step-before-backward, ``steps_before_backward`` of them came after the
    forward with no backward and no gradient written in between. ``loader_iterators``: ``DataLoader``
    iterators started while watching, ``loader_batches``: the most batches one of those loaders holds
    (None: no loader, or one without a length), ``loader_batches_drawn``: batches drawn from them.
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
    clip_function: str | None = None
    training_forwards: int = 0
    step_checks: int = 0
    steps_before_backward: int = 0
    loader_iterators: int = 0
    loader_batches: int | None = None
    loader_batches_drawn: int = 0
    #: parameter values (numel) with requires_grad=False, and those trainable; whether every trainable tensor
    #: is a bias or belongs to a normalization layer (BatchNorm, LayerNorm, GroupNorm, ...)
    #: sampled optimizer steps checked for weights written outside the optimizer between two steps (each
    #: parameter's value print after the step against the print before the next), and those with any written
    external_write_checks: int = 0
    external_writes: int = 0
    frozen_values: int = 0
    trainable_values: int = 0
    trainable_only_norm_or_bias: bool = False

    @classmethod
    def from_dict(cls, d: dict) -> "LoopStats":
        d = dict(d)
        d["params"] = {k: LoopParamStats(**v) for k, v in d["params"].items()}
        d["losses"] = {k: LossCallStats(**v) for k, v in d["losses"].items()}
        return cls(**d)


#: values fingerprinted per tensor (a strided sample)
FINGERPRINT_VALUES = 4096
#: a parameter's float64 norm and sum are taken over blocks of this many values, converted into one float64
#: buffer reused for every block of every parameter (512 KiB). A fresh float64 block per step of the loop is a
#: fresh mid-sized allocation each time: once glibc's dynamic mmap threshold has risen (torch frees large
#: tensors), those land in its heap between small live objects and stay in the process's memory (blocks of
#: 2^23 values left +80-110 MiB of heap on entering watch() on the Llama-style 134M model, the buffer +1).
FINGERPRINT_BLOCK = 2 ** 16


def _square_sum_and_sum(flat: torch.Tensor, buffer: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sum of squares, sum)`` of a 1-D tensor in float64, over blocks of :data:`FINGERPRINT_BLOCK` values
    converted into ``buffer`` (float64, at least that long; one is made when None). Deterministic: the same
    tensor gives the same bits. Tensors, not read here."""
    squares = total = flat.new_zeros((), dtype=torch.float64)
    if buffer is None or buffer.device != flat.device:
        buffer = torch.empty(min(FINGERPRINT_BLOCK, flat.numel()), dtype=torch.float64, device=flat.device)
    for start in range(0, flat.numel(), FINGERPRINT_BLOCK):
        part = flat[start:start + FINGERPRINT_BLOCK]
        block = buffer[:part.numel()]
        block.copy_(part)
        squares, total = squares + block.dot(block), total + block.sum()
    return squares, total


def fingerprints(params: list) -> torch.Tensor | None:
    """Per parameter ``[norm, sum, ramp-weighted sum of a strided sample]``: an ``(N, 3)`` tensor, not read here.

    The norm alone misses updates orthogonal to the weight (a layer followed by BatchNorm is scale
    invariant: its gradient is orthogonal to it and its norm changes only at second order, below float32
    resolution), and the sum misses them too for a vector of ones (BatchNorm's initial weight); the
    ramp-weighted sample does not. Read on entry and exit only, never per step. A sharded (FSDP2/TP
    ``DTensor``) parameter is fingerprinted on this rank's shard (:func:`merged_fingerprints`).
    """
    out, buffer = [], None
    for p in params:
        flat = sharding.local(p.detach()).reshape(-1)
        s = flat[:: max(1, -(-flat.numel() // FINGERPRINT_VALUES))].double()
        ramp = torch.arange(1, len(s) + 1, dtype=torch.float64, device=s.device)
        if buffer is None or buffer.device != flat.device:
            buffer = torch.empty(FINGERPRINT_BLOCK, dtype=torch.float64, device=flat.device)
        squares, total = _square_sum_and_sum(flat, buffer)
        out.append(torch.stack([squares.sqrt(), total, (s * ramp).sum()]))
    return torch.stack([t.to(out[0].device) for t in out]) if out else None


def merged_fingerprints(params: list, start: torch.Tensor, end: torch.Tensor) -> tuple[list, list] | None:
    """``(changed, weight norms)`` per parameter over every rank's shard, or ``None`` when no parameter is
    sharded: a parameter changed when any shard's fingerprint did, and its norm is the whole parameter's
    (:func:`impediments.monitor.sharding.global_sums`: one all-reduce per mesh, on exit, every rank)."""
    if not any(sharding.is_sharded(p) for p in params):
        return None
    local_changed = (start != end).any(1).double()
    sums = sharding.global_sums(params, torch.stack([end[:, 0].double() ** 2, local_changed], 1))
    return (sums[:, 1] > 0).tolist(), sums[:, 0].sqrt().tolist()


def _value_print(p: torch.Tensor) -> torch.Tensor:
    """A float64 sum of a strided sample of 64 of ``p``'s values: changes when an update writes ``p``, even
    through ``p.data`` (which does not bump ``p._version``). A tensor, not read here."""
    flat = sharding.local(p.detach()).reshape(-1)            # (a sharded parameter: this rank's shard)
    return flat[:: max(1, -(-flat.numel() // 64))].double().sum()


class LoopProbe(Probe):
    """Observes one training loop (see the module docstring); owns its hooks; ``to_stats()`` -> LoopStats."""

    key = "loop"

    def __init__(self, ctx, model: nn.Module, optimizer, parameters: dict | None = None,
                 modules: dict | None = None) -> None:
        """``parameters`` / ``modules``: ``{name: ...}`` supplied by a framework whose layers are not registered
        as children (as for :class:`~impediments.monitor.monitor.Monitor`); default the model's own."""
        super().__init__(ctx)
        self.optimizer = optimizer
        every = [(n, p) for n, p in (parameters.items() if parameters is not None else model.named_parameters())
                 if ctx.included(n.rsplit(".", 1)[0] if "." in n else "")]
        named = [(n, p) for n, p in every if p.requires_grad]
        self.frozen_values = sum(p.numel() for _, p in every if not p.requires_grad)
        self.names = [n for n, _ in named]
        self.params = [p for _, p in named]
        in_opt = {id(p) for g in optimizer.param_groups for p in g["params"]} if optimizer is not None else None
        self.in_optimizer = [None if in_opt is None else id(p) in in_opt for p in self.params]
        self.lr_of = [None] * len(self.params)
        mods = modules.items() if modules is not None else model.named_modules()
        self.owners = {id(m): n for n, m in mods if isinstance(m, nn.Module) and next(m.parameters(recurse=False),
                                                                                        None) is not None}
        norms = {n for n, m in (modules.items() if modules is not None else model.named_modules())
                 if isinstance(m, NORM_TYPES)}
        self.only_norm_or_bias = bool(named) and all(
            n.endswith("bias") or (n.rsplit(".", 1)[0] if "." in n else "") in norms for n, _ in named)
        self.order: dict[str, int] = {}
        self.steps = self.backwards = self.grad_checks = 0
        self.fps = [None, None]                # forwards between two optimizer steps: min, max
        self._fwd_at_step = 0
        self.received = [0] * len(self.params)
        self.stale_steps: list[int] = []
        self.loss_calls = LossCalls()
        self.inputs = {"compared": 0}
        self.lr: list[dict] = []
        self.clip = {"calls": 0, "max_norm": None, "function": None}
        self.loader = {"iterators": 0, "batches": None, "drawn": 0}
        self.step_checks = self.steps_before_backward = 0
        self._window_backwards = 0            # backward passes seen since the last optimizer step
        self._grads_at_forward = None         # (ref, version) of each .grad at the first sampled forward after it
        self._late = False                    # a step came before its backward: stay armed to see that backward
        self._manual: dict = {}               # no optimizer: each .grad and value print after the last backward
        self._prints = None                   # value prints of the stepped parameters right after a sampled step
        self.external_checks = 0
        self._checking = False                # the next backward is the first after a snapshot
        self._opt_index = [i for i, o in enumerate(self.in_optimizer) if o is not False]
        self._clip_edges: dict = {}
        self._dev: dict[str, torch.Tensor] = {}  # device accumulators, read by to_stats only
        self._snap: dict[int, tuple] = {}
        self._prev_fp = None
        self._mode: LossMode | None = None
        self._module_hook = None
        self._clip_orig = self._clip_installed = None
        self._value_orig = self._value_installed = None
        self._iter_orig = self._iter_installed = self._next_orig = self._next_installed = None
        self._start = fingerprints(self.params)
        self._trainable = sum(p.numel() for p in self.params)
        self._end = None
        self._merged = None                    # (changed, norms) over every rank's shard (sharded parameters)
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
        self._value_orig, self._value_installed = torch.nn.utils.clip_grad_value_, self._clip_value_wrapper
        torch.nn.utils.clip_grad_value_ = self._value_installed
        loader_iter = torch.utils.data.DataLoader.__iter__
        self._iter_orig, self._iter_installed = loader_iter, self._iter_wrapper(loader_iter)
        torch.utils.data.DataLoader.__iter__ = self._iter_installed
        base = torch.utils.data.dataloader._BaseDataLoaderIter
        self._next_orig, self._next_installed = base.__next__, self._next_wrapper(base.__next__)
        base.__next__ = self._next_installed
        return h

    def detach(self) -> None:
        """Disarm, restore ``clip_grad_norm_``, take the final parameter norms and drop every reference."""
        self.disarm()
        self._remove_module_hook()
        for h in self._handles:
            h.remove()
        if self._clip_orig is not None and torch.nn.utils.clip_grad_norm_ is self._clip_installed:
            torch.nn.utils.clip_grad_norm_ = self._clip_orig   # (another watch() entered later restores its own)
        if self._value_orig is not None and torch.nn.utils.clip_grad_value_ is self._value_installed:
            torch.nn.utils.clip_grad_value_ = self._value_orig
        if self._iter_orig is not None and torch.utils.data.DataLoader.__iter__ is self._iter_installed:
            torch.utils.data.DataLoader.__iter__ = self._iter_orig
        base = torch.utils.data.dataloader._BaseDataLoaderIter
        if self._next_orig is not None and base.__next__ is self._next_installed:
            base.__next__ = self._next_orig
        self._clip_installed = self._value_installed = self._iter_installed = self._next_installed = None
        if self.params and self._end is None:
            self._end = fingerprints(self.params)
            self._merged = merged_fingerprints(self.params, self._start, self._end)
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
        self._late = False
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
            self.loss_calls.start_window(first_tensor(out))
            if self._grads_at_forward is None:      # the first sampled forward since the last step
                self._grads_at_forward = self._grad_versions()
                self._window_backwards = 0         # (a late backward of the step before does not count)

    def _grad_versions(self) -> list:
        """``(weakref to .grad, its version)`` of every parameter the optimizer steps (None: no gradient)."""
        params = self.params
        return [(i, None) if (g := params[i].grad) is None else (i, (weakref.ref(g), g._version))
                for i in self._opt_index]

    def _grads_written(self, before: list) -> bool:
        """Whether any stepped parameter's ``.grad`` was replaced or written since ``before`` was taken."""
        params = self.params
        for i, was in before:
            g = params[i].grad
            if (g is None) != (was is None) or (g is not None and (was[0]() is not g or g._version != was[1])):
                return True
        return False

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
        if self._mode is not None and self._grads_at_forward is not None and not self._late:
            self.step_checks += 1          # a sampled step after a forward: did a backward come in between?
            if self._window_backwards == 0 and not self._grads_written(self._grads_at_forward):
                self.steps_before_backward += 1
                self._late = True          # stay armed through this step, to see the backward that follows
        if self._snap:
            self._stale_verdict(opt)
        if self._prints is not None:
            self._external_writes()
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
        if not self._late:
            self.disarm()
        self._window_backwards = 0
        self._grads_at_forward = None
        self.steps += 1
        f = self.ctx.training_forwards - self._fwd_at_step
        self._fwd_at_step = self.ctx.training_forwards
        fps = self.fps
        if fps[0] is None or f < fps[0]:
            fps[0] = f
        if fps[1] is None or f > fps[1]:
            fps[1] = f
        self._prints = None
        if self.ctx.full_schedule(self.ctx.steps) and self.optimizer is not None:   # values as the step left them
            self._prints = torch.stack([_value_print(self.params[i]) for i in self._opt_index]) \
                if self._opt_index else None
        if self.ctx.full_schedule(self.ctx.steps):      # the next step is sampled: remember each gradient as stepped
            stepped = self._stepped(opt)
            self._snap = {i: (weakref.ref(p.grad), p.grad._version) for i, p in enumerate(self.params)
                          if p.grad is not None and i in stepped}
            self._checking = bool(self._snap)
        else:
            self._snap = {}

    def _stepped(self, opt) -> set:
        """Indices of the watched parameters that ``opt`` steps (all the watched optimizer holds)."""
        if self.optimizer is not None:
            return set(self._opt_index)
        ids = {id(p) for g in opt.param_groups for p in g["params"]}
        return {i for i, p in enumerate(self.params) if id(p) in ids}

    def _uncleared(self, among, exact: bool = True) -> list:
        """Snapshot indices in ``among`` whose ``.grad`` is still the snapshot's tensor (``exact``: at its version)."""
        params, snap = self.params, self._snap
        return [i for i in among if (g := params[i].grad) is not None and snap[i][0]() is g
                and (not exact or g._version == snap[i][1]) and not g.is_sparse]

    def _stale_verdict(self, opt) -> None:
        """At the optimizer step: a parameter it steps whose gradient, since the step before, was never
        cleared while a backward added into it is stale. Each backward checks the exact version (nothing but
        a clearing touches a gradient between a step and the next backward); from the last backward to the
        step, clipping or unscaling may rescale it in place, so only a zeroing (norm 0) or a new tensor
        clears it then."""
        stepped = self._stepped(opt) & set(self._snap)
        added = [i for i in stepped if self._snap[i][2:]]          # a backward ran into it since
        stale = self._uncleared(added, exact=False)
        for i in stepped:
            del self._snap[i]
        if not stale:
            return
        params = self.params
        norms = torch.stack(torch._foreach_norm([sharding.local(params[i].grad, resolve=False) for i in stale]))
        hit = norms > 0
        self._add_at("stale", stale, hit)
        if len(self.stale_steps) < STALE_STEPS_KEPT and (hit.device.type != "cpu" or bool(hit.any())):
            self.stale_steps.append(self.ctx.steps)

    # --------------------------------------------------------------------- backward and loss (sampled steps)
    def backward(self, func, args, kwargs):
        params = self.params
        if self._checking:
            self.grad_checks += 1
            self._checking = False
        if self._snap:                     # cleared since the step: off the list; uncleared: followed through
            kept = set(self._uncleared(list(self._snap)))
            self._snap = {i: v for i, v in self._snap.items() if i in kept}
        self._window_backwards += 1
        if self.optimizer is None and not self.steps:      # no torch optimizer steps: a hand-written update
            self._manual_check()
        before = [(p.grad, None if p.grad is None else p.grad._version) for p in params]
        out = func(*args, **kwargs)
        self.backwards += 1
        for i, (ref, _ver, *_) in list(self._snap.items()):   # the backward added into an uncleared gradient
            g = params[i].grad
            if g is not None and ref() is g:
                self._snap[i] = (ref, g._version, True)
        got = [i for i, (p, (g, v)) in enumerate(zip(params, before)) if p.grad is not None
               and (p.grad is not g or p.grad._version != v)]
        for i in got:
            self.received[i] += 1
        dense = [i for i in got if not params[i].grad.is_sparse]     # (a sparse embedding gradient: counted only)
        if dense:
            grads = [params[i].grad for i in dense]        # sharded (FSDP2/TP): whole-gradient norms
            self._add_at("grad_norm", dense, sharding.global_norms(grads, torch.stack(torch._foreach_norm(
                [sharding.local(g) for g in grads]))))
        if self.optimizer is None and not self.steps:
            self._manual = {i: (weakref.ref(p.grad), _value_print(p)) for i, p in enumerate(params)
                            if p.grad is not None and not p.grad.is_sparse}
        return out

    def _external_writes(self) -> None:
        """Before a step: did anything but the optimizer write the weights since the last (sampled) step?
        A loop that re-initializes the model each iteration does; so do legitimate constraints (WGAN's
        weight clipping, max-norm, pruning masks): the rule tells them apart by the loss."""
        prints, self._prints = self._prints, None
        now = torch.stack([_value_print(self.params[i]) for i in self._opt_index])
        self.external_checks += 1
        self._add("external_writes", (now != prints).any())

    def _manual_check(self) -> None:
        """Without a torch optimizer (``p.data.add_(p.grad, alpha=-lr)`` by hand, as in PyTorch's word language
        model and regression examples) there is no step to wait for: a backward that starts with the very
        gradient tensor the last observed backward left, still non-zero (``zero_grad`` replaces it or zeroes
        it), while the parameter's values moved in between (an update ran), was never cleared across that
        update. Micro-batches accumulated between two updates leave the values unmoved and are not counted."""
        if not self._manual:
            return
        params, manual = self.params, self._manual
        self._manual = {}
        self.grad_checks += 1
        idx = [i for i, (ref, _) in manual.items() if (g := params[i].grad) is not None and ref() is g]
        if not idx:
            return
        norms = torch.stack(torch._foreach_norm([sharding.local(params[i].grad, resolve=False) for i in idx]))
        moved = torch.stack([_value_print(params[i]) != manual[i][1] for i in idx])
        hit = (norms > 0) & moved.to(norms.device)
        self._add_at("stale", idx, hit)
        if len(self.stale_steps) < STALE_STEPS_KEPT and (hit.device.type != "cpu" or bool(hit.any())):
            self.stale_steps.append(self.ctx.steps)

    # --------------------------------------------------------------------- clipping (every call)
    # A wrapper outlives its monitor only when monitors entered by hand exit out of order (a later one restores
    # this one's wrapper as the function it found): detached, each wrapper passes straight through.
    def _clip_wrapper(self, parameters, max_norm, *args, **kwargs):
        total = self._clip_orig(parameters, max_norm, *args, **kwargs)
        if self._clip_installed is None:
            return total
        self.clip["calls"] += 1
        self.clip["function"] = "clip_grad_norm_"
        self.clip["max_norm"] = float(max_norm)
        if isinstance(total, torch.Tensor):
            # the total norm of every gradient, for free: a non-finite one is found at its own step, sampled or
            # not (the params probe reads gradients on sampled steps only)
            if not sharding.is_sharded(total):     # (a DTensor's local part is not the total)
                self.ctx.nonfinite.update("gradient", ~torch.isfinite(total.detach()), self.ctx.steps, "clip_grad_norm_")
            if max_norm > 0:
                self._clip_ratio(total.detach().double() / float(max_norm))
        return total

    def _clip_ratio(self, ratio: torch.Tensor) -> None:
        """Count one clipping call by the factor ``ratio`` it cut the gradient norm (decades, log mean)."""
        edges = self._clip_edges.get(ratio.device)
        if edges is None:                      # once per device: no host-to-device copy per step
            edges = self._clip_edges[ratio.device] = to_device([10.0 ** k for k in range(CLIP_DECADES)],
                                                               torch.float64, ratio.device)
        self._add("clip_at_least", (ratio >= edges).double())
        self._add("clip_log_ratio", torch.log10(ratio.clamp_min(1e-30)))

    def _clip_value_wrapper(self, parameters, clip_value, *args, **kwargs):
        """``clip_grad_value_``, measured on full steps: the total gradient norm before over after (the factor it cut)."""
        if self._value_installed is None:
            return self._value_orig(parameters, clip_value, *args, **kwargs)
        if not self.ctx.full_schedule(self.ctx.steps):
            self.clip["function"] = "clip_grad_value_"
            return self._value_orig(parameters, clip_value, *args, **kwargs)
        params = [parameters] if isinstance(parameters, torch.Tensor) else list(parameters)
        grads = [p.grad for p in params if p.grad is not None and not p.grad.is_sparse]
        before = torch.stack(torch._foreach_norm(grads)).double().norm() if grads else None
        out = self._value_orig(params, clip_value, *args, **kwargs)
        self.clip["calls"] += 1
        self.clip["function"] = "clip_grad_value_"
        self.clip["max_norm"] = float(clip_value)
        if before is not None:
            after = torch.stack(torch._foreach_norm(grads)).double().norm()
            self._clip_ratio(before / after.clamp_min(1e-300))
        return out

    def _iter_wrapper(self, original):
        """``DataLoader.__iter__`` that counts iterators started and notes the loader's length."""
        loader_stats = self.loader

        @functools.wraps(original)
        def __iter__(loader):
            if self._iter_installed is None:
                return original(loader)
            loader_stats["iterators"] += 1
            try:
                n = len(loader)
            except TypeError:                     # an IterableDataset without a length
                n = None
            if n is not None and (loader_stats["batches"] is None or n > loader_stats["batches"]):
                loader_stats["batches"] = n
            return original(loader)

        return __iter__

    def _next_wrapper(self, original):
        """A ``DataLoader`` iterator's ``__next__`` that counts the batches drawn while watching."""
        loader_stats = self.loader

        @functools.wraps(original)
        def __next__(iterator):
            if self._next_installed is not None:
                loader_stats["drawn"] += 1
            return original(iterator)

        return __next__

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
        if self._merged is not None and self._end is end:     # sharded: merged on exit
            changed, norms = self._merged
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
            clip_log_ratio_mean=dev["clip_log_ratio"] / calls if "clip_log_ratio" in dev and calls else None,
            clip_function=self.clip["function"], training_forwards=self.ctx.training_forwards,
            step_checks=self.step_checks, steps_before_backward=self.steps_before_backward,
            loader_iterators=self.loader["iterators"], loader_batches=self.loader["batches"],
            loader_batches_drawn=self.loader["drawn"], frozen_values=self.frozen_values,
            external_write_checks=self.external_checks, external_writes=int(dev.get("external_writes", 0)),
            trainable_values=sum(p.numel() for p in self.params) if self.params else self._trainable,
            trainable_only_norm_or_bias=self.only_norm_or_bias)

    def stats(self, total, windows) -> dict:
        return {"loop": self.to_stats()}
