"""What the monitor does inside one training step: the root hooks and the interception callbacks.

Every training-mode forward of the watched model pays only for a root forward pre/post hook (step
counting, the schedule, one finiteness reduction of the output); the loss costs one host read. A
sampled step (:mod:`~impediments.monitor.schedule`) also records the input's per-feature moments,
arms the :class:`~impediments.monitor.intercept.Interceptor` for that forward (activations, Linear
and Conv outputs and their gradients, BatchNorm) and, after the forward, counts every queued
histogram in one pass. Full-size temporaries come from one :class:`~impediments.monitor.collectors.Scratch`
kept while the monitor is open. Nothing here syncs with an accelerator: on CPU, reading a scalar is free and is used.
"""
from __future__ import annotations

import math

import torch

from impediments.monitor import collectors as C
from impediments.monitor import compiled, recurrent, residual, symmetry
from impediments.monitor.moments import batch_moments
from impediments.monitor.nonfinite import localise

#: most CPU replays tried when an output sum overflows without any NaN/Inf value being found
MAX_REPLAYS = 3


class Recorder:
    """The per-step half of :class:`~impediments.monitor.watch.Monitor` (a mixin: it reads the
    monitor's ``schedule``, ``windows``, ``meta``, ``nonfinite``, ``_icpt`` and ``_params``)."""

    #: nesting of the watched model's own forwards (only the outermost one is a step)
    _root_depth = 0

    #: ids of the modules that may be residual blocks (:func:`impediments.monitor.residual.candidates`)
    _stream_candidates: set | None = None

    #: sampled steps that were full (see :mod:`~impediments.monitor.schedule`): symmetry checks count these
    _full_steps = 0

    #: forwards of the model since the last optimizer step (or backward): in eval mode, in training mode
    _eval_since_step = 0
    _trained_since_step = 0

    # --------------------------------------------------------------------- root hooks (every forward)
    def _root_pre(self, model, args, kwargs):
        self._root_depth += 1
        if self._root_depth > 1:         # a re-entrant call (Lightning's training_step calling self(x)):
            return None                  # part of the outer forward
        icpt = self._icpt
        if icpt is None:
            return None
        if not model.training:
            self._eval_forward(model)
            return None
        self._trained_since_step += 1
        if icpt.armed:                   # a previous forward raised while armed
            icpt.disarm()
        if self._params.counts_steps:
            step = self.steps
        else:
            self._params.flush()
            step = self.steps
            self.steps += 1
        self._fwd_step = step
        self.training_forwards += 1
        self._root_args = (args, kwargs)
        if self._uses_rng and not self.nonfinite.forward_found:
            self._rng = torch.get_rng_state()    # only to replay dropout masks when localising a NaN
        self._sampled_now = bool(self.schedule(step))
        full = self.full_schedule
        self._full_now = self._sampled_now and (full.decide(step) if hasattr(full, "decide") else bool(full(step)))
        if self._sampled_now:
            self._begin_sampled(model, args, kwargs, step)
            if self._eager is not None:      # torch.compile'd: this forward runs eagerly (see compiled)
                self._eager.enter()
        return None

    def _begin_sampled(self, model, args, kwargs, step: int) -> None:
        self.sampled_steps += 1
        self._full_steps += self._full_now
        self._hist_queue.clear()
        x = _first_tensor(args, kwargs) if self._full_now else None   # a window statistic (see schedule)
        if x is not None and x.dim() >= 1 and x.is_floating_point() and x.numel():
            rows = x.reshape(len(x), -1) if x.dim() > 1 else x.reshape(-1, 1)
            self.state().bag("input", "").add("x", batch_moments(rows, dim=0), "moments")
            self.meta["input_shape"] = list(x.shape[1:])
        if self._full_now and symmetry.due(self._full_steps - 1):   # the 1st, 2nd, 3rd, 5th, 9th ... full step
            symmetry.snapshot(compiled.uncompiled(model), self._included, step, self._sym)
        if not self._compiled or self._eager is not None:   # a compiled graph without eager fallback hides it
            self._icpt.arm(model, args, full=self._full_now)

    def _root_post(self, model, args, out):
        self._root_depth = max(0, self._root_depth - 1)
        if self._root_depth:
            return None
        if self._eager is not None:
            self._eager.exit()
        if self._icpt is None or not model.training:
            return None
        if self._sampled_now:
            # dense: kept, inert till the next forward (not for torch.compile, which warns of global hooks)
            self._icpt.disarm(keep_hooks=not self._compiled and bool(self.schedule(self._fwd_step + 1)))
            C.flush_histograms(self._hist_queue)
            self._last_leaf = self._last_out = self._last_moments = None
        if isinstance(out, torch.Tensor) and out.device.type == "cpu" and out.is_floating_point():
            bad = not math.isfinite(float(out.detach().sum()))   # one reduction, read for free on CPU
        else:
            bad = _nonfinite_flag(out)
        if bad is not None and not isinstance(bad, bool) and bad.device.type != "cpu":
            self.nonfinite.update("output", bad, self._fwd_step, "output")
        elif bad and not self.nonfinite.forward_found and self._replays < MAX_REPLAYS:
            self._replays += 1
            localise(self, compiled.uncompiled(model), self._root_args, self._rng, self._fwd_step)
        self._root_args, self._rng = None, None
        return None

    def _bn_count(self, name: str):
        """A forward pre-hook counting every BatchNorm forward of a training-mode step (no tensor op)."""
        def hook(module, args):
            if compiled.compiling():         # inside a compiled graph: counted on (eager) sampled steps only
                return
            if self._model is not None and self._model.training:
                C.count_batchnorm_forward(self.state().bag("bn", name), module)
        return hook

    def _eval_forward(self, model) -> None:
        """An eval-mode forward costs one counter (and, the first time, counting BN/Dropout modules)."""
        mode = self.meta.get("mode")
        if mode is None:
            mode = self.meta["mode"] = {"eval_forwards": 0, "eval_only_steps": 0, "trained_steps": 0,
                                        "first_eval_only_step": None}
        if "batchnorm" not in mode:
            modules = list(model.modules())
            mode["batchnorm"] = sum(C.is_batch_norm(m) for m in modules)
            mode["dropout"] = sum(isinstance(m, torch.nn.modules.dropout._DropoutNd) for m in modules)
        mode["eval_forwards"] += 1
        self._eval_since_step += 1

    def _note_step(self) -> None:
        """Called at each optimizer step (or backward): were the forwards since the last one all in eval mode?"""
        mode = self.meta.get("mode")
        if mode is None:
            mode = self.meta["mode"] = {"eval_forwards": 0, "eval_only_steps": 0, "trained_steps": 0,
                                        "first_eval_only_step": None}
        if self._trained_since_step:
            mode["trained_steps"] += 1
        elif self._eval_since_step:
            mode["eval_only_steps"] += 1
            if mode["first_eval_only_step"] is None:
                mode["first_eval_only_step"] = self.steps
        self._eval_since_step = self._trained_since_step = 0

    def state(self):
        """The window state of the current step."""
        return self.windows.at(self._fwd_step)

    # --------------------------------------------------------------------- interception callbacks
    def _act_in(self, name, kind, x):
        if not x.is_floating_point():
            return None
        meta = self.meta["act"].get(name)
        dim = C.unit_dim(x, self._last_leaf)
        if meta is None:
            meta = self.meta["act"][name] = {"kind": kind, "depth": len(self.meta["act"]), "units": 0,
                                             "regions": kind in C.catalog_kinds(), "values_per_example": 0}
        bag = self.state().bag("act", name)
        known = self._last_moments if self._last_out is x else None   # fed directly by a Linear/Conv
        units = C.record_activation_input(bag, x, kind, dim, known, self._scratch, full=self._full_now)
        meta["units"] = max(meta["units"], units)
        if units and x.dim() >= 2 and x.numel():
            meta["values_per_example"] = max(meta.get("values_per_example", 0), x.numel() // (x.shape[0] * units))
        return name, bag

    def _gate(self, name: str) -> None:
        """The output of activation ``name`` multiplied another tensor (see Interceptor): it is a gate."""
        meta = self.meta["act"].get(name)
        if meta is not None:
            meta["gate"] = True

    def _act_out(self, token, out):
        if not self._full_now:           # the output's moments are a window statistic (see schedule)
            return
        name, bag = token
        m = C.record_activation_output(bag, out, self._hist_queue, self._scratch)
        self.nonfinite.update_forward(m.bad, self._fwd_step, name)

    def _role(self, module) -> tuple:
        """``(leaf, Linear/Conv, Conv, BatchNorm, recurrent)`` of a module, computed once per module."""
        role = self._roles.get(id(module))
        if role is None:
            role = self._roles[id(module)] = (next(module.children(), None) is None,
                                              isinstance(module, C.LAYER_TYPES), isinstance(module, C.ConvNd),
                                              C.is_batch_norm(module), recurrent.is_recurrent(module))
        return role

    def _mod_pre(self, name, module, args):
        _, _, _, bn, rnn = self._role(module)
        if rnn:                                      # its dropout masks, to replay (see recurrent)
            recurrent.before(module, args)
        if not bn or not args or not isinstance(args[0], torch.Tensor):
            return
        x = args[0]
        meta = self.meta["bn"].setdefault(name, {"kind": type(module).__name__, "values_per_channel": None})
        if x.dim() >= 2:
            v = x.numel() // max(1, x.shape[1])
            meta["values_per_channel"] = v if meta["values_per_channel"] is None else min(v, meta["values_per_channel"])
            meta["examples_per_batch"] = min(len(x), meta.get("examples_per_batch") or len(x))
        meta["frozen"] = C.is_frozen(module)
        prev = self._last_leaf
        meta["preceded_by"] = type(prev).__name__ if prev is not None else None
        meta["preceded_by_name"] = self._icpt.names.get(id(prev)) if prev is not None else None
        fed = isinstance(prev, C.LAYER_TYPES) and self._last_out is x
        meta["feeding_layer"] = meta["preceded_by_name"] if fed else None
        C.record_batchnorm(self.state().bag("bn", name), module, x, self._scratch)

    def _mod_post(self, name, module, args, out):
        leaf, layer, conv, _, rnn = self._role(module)
        if leaf:
            self._last_leaf, self._last_out, self._last_moments = module, out, None
        if layer and isinstance(out, torch.Tensor):
            meta = self.meta["layer"].get(name)
            if meta is None:
                meta = self.meta["layer"][name] = {"kind": type(module).__name__, "depth": len(self.meta["layer"])}
            if out.dim() >= 2 and out.numel():
                channels = out.shape[1] if conv else out.shape[-1]
                meta["positions"] = out.numel() // (out.shape[0] * max(1, channels))
            m = C.record_layer_output(self.state().bag("layer", name), out, self._scratch, full=self._full_now)
            self._last_moments = m
            self.nonfinite.update_forward(m.bad, self._fwd_step, name)
        elif rnn:                                    # gates inside one fused op: recomputed (see recurrent)
            recurrent.record(self, name, module, args, out)
        elif not leaf and self._full_now:            # a block on a residual stream? (a window statistic)
            residual.record(self, name, module, args, out)

    # --------------------------------------------------------------------- the loss
    def record_loss(self, loss: torch.Tensor) -> None:
        """Record the loss of the current step (no sync). Call once per step, before or after ``step()``."""
        if not isinstance(loss, torch.Tensor):
            loss = torch.tensor(float(loss))
        cpu = loss.is_cpu
        v = None if cpu else (loss.detach().reshape(-1)[0] if loss.numel() else loss.detach().sum())
        step = self._fwd_step
        if self._loss_bag is None or self._loss_bag[0] != step:
            self._loss_bag = (step, self.windows.at(step).bag("loss", ""))
        bag = self._loss_bag[1]
        bag.count("count")
        if cpu:                             # host floats: reading a CPU scalar costs nothing
            n = loss.numel()
            f = loss.item() if n == 1 else float(loss.detach().reshape(-1)[0]) if n else float(loss.detach().sum())
            h = bag.h
            if "sum" in h:
                h["sum"] += f
                h["min"] = min(h["min"], f)
                h["last"] = f
            else:
                for field, rule in (("sum", "sum"), ("min", "min"), ("first", "first"), ("last", "last")):
                    bag.addf(field, f, rule)
            if not math.isfinite(f) and "loss" not in self.nonfinite.first:
                self.nonfinite.first["loss"] = (step, self.nonfinite.code("loss"))
            return
        v = v.double()
        for rule in ("sum", "min", "first", "last"):
            bag.add(rule, v, rule)
        self.nonfinite.update("loss", ~torch.isfinite(v), step, "loss")


def _first_tensor(args, kwargs):
    """The first tensor among the arguments, looking inside lists, tuples and dicts (a batch ``(x, y)``)."""
    for a in (*args, *kwargs.values()):
        if isinstance(a, torch.Tensor):
            return a
    for a in torch.utils._pytree.tree_leaves((args, kwargs)):
        if isinstance(a, torch.Tensor):
            return a
    return None


def _nonfinite_flag(out):
    """Device bool: the sum of the floating output tensors is NaN/Inf (one reduction per tensor).

    Any NaN/Inf makes the sum non-finite; a finite output whose sum overflows is a false alarm that
    the localisation replay rejects (it records only values that are themselves non-finite).
    """
    if isinstance(out, torch.Tensor):
        leaves = [out] if out.is_floating_point() else []
    else:
        leaves = [t for t in torch.utils._pytree.tree_leaves(out) if isinstance(t, torch.Tensor) and t.is_floating_point()]
    if not leaves:
        return None
    total = leaves[0].detach().sum()
    for t in leaves[1:]:
        total = total + t.detach().sum()
    return ~torch.isfinite(total)
