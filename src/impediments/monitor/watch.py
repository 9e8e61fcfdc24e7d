"""``watch(model, optimizer=...)``: the monitor as a scoped resource.

Every step pays only for a root forward pre/post hook (step counting, the schedule, a finiteness
check of the output) and, with an optimizer, one fused ``_foreach_norm`` of the gradients in its
step pre-hook. Sampled steps (:mod:`~impediments.monitor.schedule`) also arm the
:class:`~impediments.monitor.intercept.Interceptor` for that forward (activations, layer outputs
and their gradients, BatchNorm, inputs) and record parameters, gradients and updates.

Non-finite values are located exactly: the step from the per-step checks (output, loss,
gradient norms), held in device registers updated with ``torch.where`` (no sync); on CPU, the
first forward whose output is non-finite is replayed once under interception (with RNG and buffers
restored, so training is unchanged) to name the first module or functional call that produced it.
On other devices the layer comes from sampled steps. See :mod:`~impediments.monitor.nonfinite`.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from impediments.monitor import collectors as C
from impediments.monitor import symmetry
from impediments.monitor.accumulators import batch_moments
from impediments.monitor.intercept import Interceptor, module_kind
from impediments.monitor.nonfinite import FirstNonFinite, localise
from impediments.monitor.params import ParamWatcher
from impediments.monitor.schedule import make_schedule
from impediments.monitor.windows import DEFAULT_CAPACITY, Windows

#: most CPU replays tried when an output sum overflows without any NaN/Inf value being found
MAX_REPLAYS = 3


class Monitor:
    """Streaming statistics of one model (see :func:`watch`). Use as a context manager."""

    def __init__(self, model: nn.Module, optimizer=None, every=None, include=None,
                 windows: int = DEFAULT_CAPACITY) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"watch needs an nn.Module, got {type(model).__name__}")
        self.schedule = make_schedule(every)
        self.windows = Windows(windows)
        self.meta: dict = {"act": {}, "layer": {}, "bn": {}, "optimizer": None, "names": {}}
        self.steps = self.sampled_steps = self.training_forwards = 0
        self.nonfinite = FirstNonFinite()
        self._model, self._optimizer, self._include = model, optimizer, include
        self._handles: list = []
        self._icpt: Interceptor | None = None
        self._params: ParamWatcher | None = None
        self._fwd_step, self._sampled_now, self._rng = 0, False, None
        self._last_leaf: nn.Module | None = None
        self._last_out = self._root_args = None
        self._sym: dict = {}
        self._replays = 0
        self._last_moments = None
        self._hist_queue: list = []

    # --------------------------------------------------------------------- scope
    def __enter__(self) -> "Monitor":
        model = self._model
        names = {id(m): n for n, m in model.named_modules() if self._included(n)}
        kinds = {id(m): k for m in model.modules() if id(m) in names and (k := module_kind(m)) is not None}
        self._icpt = Interceptor(names, kinds, self._act_in, self._act_out, self._mod_pre, self._mod_post)
        self._handles = [model.register_forward_pre_hook(self._root_pre, with_kwargs=True),
                         model.register_forward_hook(self._root_post, always_call=True)]
        self._uses_rng = any(isinstance(m, nn.modules.dropout._DropoutNd) for m in model.modules())
        self._params = ParamWatcher(self, model, self._optimizer)
        self._handles += self._params.attach()
        self.meta["optimizer"] = self._params.optimizer_info()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Remove every hook and drop every reference to the model and optimizer (idempotent)."""
        if self._icpt is not None:
            self._icpt.disarm()
        for h in self._handles:
            h.remove()
        if self._params is not None:
            self._params.detach()
        self._handles, self._icpt, self._params = [], None, None
        self._model = self._optimizer = self._last_leaf = self._last_out = self._root_args = None

    def _included(self, name: str) -> bool:
        inc = self._include
        if inc is None:
            return True
        if callable(inc):
            return bool(inc(name))
        return any(name == p or name.startswith(p + ".") for p in inc) or name == ""

    # --------------------------------------------------------------------- root hooks (every forward)
    def _root_pre(self, model, args, kwargs):
        if self._icpt is None or not model.training:
            return None
        self._icpt.disarm()          # a previous forward may have raised while armed
        self._hist_queue.clear()
        if self._params.counts_steps:
            self._fwd_step = self.steps
        else:
            self._params.flush()
            self.steps += 1
            self._fwd_step = self.steps - 1
        self.training_forwards += 1
        self._root_args = (args, kwargs)
        x = _first_tensor(args, kwargs)
        if self._uses_rng and x is not None and x.device.type == "cpu" and not self.nonfinite.forward_found:
            self._rng = torch.get_rng_state()    # only to replay dropout masks when localising a NaN
        self._sampled_now = bool(self.schedule(self._fwd_step))
        if self._sampled_now:
            self.sampled_steps += 1
            if x is not None and x.dim() >= 1 and x.is_floating_point():
                self.state().bag("input", "").add("x", batch_moments(x.reshape(len(x), -1) if x.dim() > 1
                                                                      else x.reshape(-1, 1), dim=0), "moments")
            if symmetry.due(self._fwd_step):
                symmetry.snapshot(model, self._included, self._fwd_step, self._sym)
            self._icpt.arm(model, args)
        return None

    def _root_post(self, model, args, out):
        if self._icpt is None or not model.training:
            return None
        self._icpt.disarm()
        C.flush_histograms(self._hist_queue)
        self._last_leaf = self._last_out = self._last_moments = None
        if isinstance(out, torch.Tensor) and out.device.type == "cpu" and out.is_floating_point():
            bad = not math.isfinite(float(out.detach().sum()))   # one reduction, read for free on CPU
        else:
            bad = _nonfinite_flag(out)
        if bad is not None and not isinstance(bad, bool) and bad.device.type != "cpu":
            self.nonfinite.update("output", bad, self._fwd_step, "output")
        elif bad is not None:
            if not self.nonfinite.forward_found and self._replays < MAX_REPLAYS and bool(bad):
                self._replays += 1
                localise(self, model, self._root_args, self._rng, self._fwd_step)
        self._root_args, self._rng = None, None
        return None

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
            meta = self.meta["act"][name] = {"kind": kind, "depth": len(self.meta["act"]), "units": 0}
        bag = self.state().bag("act", name)
        known = self._last_moments if self._last_out is x else None   # fed directly by a Linear/Conv
        meta["units"] = max(meta["units"], C.record_activation_input(bag, x, kind, dim, known))
        return name, bag

    def _act_out(self, token, out):
        name, bag = token
        m = C.record_activation_output(bag, out, self._hist_queue)
        self.nonfinite.update_forward(m.bad, self._fwd_step, name)

    def _mod_pre(self, name, module, args):
        if not C.is_batch_norm(module) or not args or not isinstance(args[0], torch.Tensor):
            return
        x = args[0]
        meta = self.meta["bn"].setdefault(name, {"kind": type(module).__name__, "values_per_channel": None})
        if x.dim() >= 2:
            v = x.numel() // max(1, x.shape[1])
            meta["values_per_channel"] = v if meta["values_per_channel"] is None else min(v, meta["values_per_channel"])
        meta["frozen"] = C.is_frozen(module)
        prev = self._last_leaf
        meta["preceded_by"] = type(prev).__name__ if prev is not None else None
        meta["preceded_by_name"] = self._icpt.names.get(id(prev)) if prev is not None else None
        fed = isinstance(prev, C.LAYER_TYPES) and self._last_out is x
        meta["feeding_layer"] = meta["preceded_by_name"] if fed else None
        C.record_batchnorm(self.state().bag("bn", name), module, x)

    def _mod_post(self, name, module, args, out):
        if next(module.children(), None) is None:
            self._last_leaf, self._last_out, self._last_moments = module, out, None
        if isinstance(module, C.LAYER_TYPES) and isinstance(out, torch.Tensor):
            meta = self.meta["layer"]
            if name not in meta:
                meta[name] = {"kind": type(module).__name__, "depth": len(meta)}
            m = C.record_layer_output(self.state().bag("layer", name), out)
            self._last_moments = m
            self.nonfinite.update_forward(m.bad, self._fwd_step, name)

    # --------------------------------------------------------------------- public API
    def record_loss(self, loss: torch.Tensor) -> None:
        """Record the loss of the current step (no sync). Call once per step, before or after ``step()``."""
        if not isinstance(loss, torch.Tensor):
            loss = torch.tensor(float(loss))
        v = loss.detach().reshape(-1)[0] if loss.numel() else loss.detach().sum()
        bag = self.windows.at(self._fwd_step).bag("loss", "")
        bag.count("count")
        if v.device.type == "cpu":          # host floats: reading a CPU scalar costs nothing
            f = float(v)
            for field, rule in (("sum", "sum"), ("min", "min"), ("first", "first"), ("last", "last")):
                bag.addf(field, f, rule)
            if "loss" not in self.nonfinite.first and not math.isfinite(f):
                self.nonfinite.first["loss"] = (self._fwd_step, self.nonfinite.code("loss"))
            return
        v = v.double()
        bag.add("sum", v, "sum")
        bag.add("min", v, "min")
        bag.add("first", v, "first")
        bag.add("last", v, "last")
        self.nonfinite.update("loss", ~torch.isfinite(v), self._fwd_step, "loss")

    def stats(self):
        """All statistics as a :class:`~impediments.monitor.schema.MonitorStats` (syncs here only)."""
        from impediments.monitor.stats import compute

        return compute(self)

    def report(self, thresholds=None):
        """The doctor's diagnosis of :meth:`stats` (``impediments.doctor.diagnose``)."""
        from impediments.doctor import diagnose

        return diagnose(self.stats(), thresholds)

    def state_dict(self) -> dict:
        """Everything needed to resume or merge, on the host (plain tensors, ints and dicts)."""
        import dataclasses

        if self._sym:
            self.meta["symmetry"] = {n: dataclasses.asdict(s) for n, s in symmetry.groups(self._sym).items()}
        return {"version": 1, "windows": self.windows.state(), "meta": self.meta, "steps": self.steps,
                "sampled_steps": self.sampled_steps, "training_forwards": self.training_forwards,
                "nonfinite": self.nonfinite.state()}

    def load_state_dict(self, sd: dict) -> None:
        """Restore :meth:`state_dict` output (statistics only; hooks are unchanged).

        Raises:
            ValueError: on an unknown version.
        """
        if sd.get("version") != 1:
            raise ValueError(f"unsupported monitor state_dict version {sd.get('version')!r}; supported: [1]")
        import copy

        self.windows = Windows.from_state(sd["windows"])
        self.meta = copy.deepcopy(sd["meta"])
        self.steps, self.sampled_steps = sd["steps"], sd["sampled_steps"]
        self.training_forwards = sd["training_forwards"]
        self.nonfinite = FirstNonFinite.from_state(sd["nonfinite"])
        self._sym = {}

    def merge(self, other: "Monitor") -> "Monitor":
        """Fold another monitor of the same model over the same steps (e.g. another process) into this one."""
        from impediments.monitor.distributed import merge_states

        self.load_state_dict(merge_states([self.state_dict(), other.state_dict()]))
        return self

    def sync(self, group=None) -> "Monitor":
        """All-gather the state of every process and merge it (call on all ranks; see distributed)."""
        from impediments.monitor.distributed import sync

        return sync(self, group)

    def to_json(self, path) -> None:
        """Write :meth:`stats` as versioned JSON (see :mod:`~impediments.monitor.export`)."""
        from impediments.monitor.export import to_json

        to_json(self.stats(), path)

    def memory(self) -> dict:
        """Tensor count and bytes held in the statistics, pending parts folded (for the flat-memory test)."""
        for _, _, st in self.windows.all():
            for b in st.values():
                b.t  # noqa: B018 - folds pending parts
        return {"tensors": self.windows.tensors() + self.nonfinite.tensors(), "bytes": self.windows.nbytes()}


def watch(model: nn.Module, optimizer=None, every=None, include=None, windows: int = DEFAULT_CAPACITY) -> Monitor:
    """Watch ``model`` while it trains; use as ``with watch(model, optimizer=opt) as mon: ...``.

    Args:
        model: any ``nn.Module``; only forwards in training mode are recorded.
        optimizer: counts steps (its step hooks) and enables gradient/update statistics cheaply;
            without it, steps are training-mode forwards of ``model`` and gradients come from
            per-parameter post-accumulate hooks.
        every: ``None`` for the default schedule, ``k`` for every ``k``-th step, or ``step -> bool``
            (:mod:`~impediments.monitor.schedule`).
        include: module-name prefixes (or ``name -> bool``) to watch; default all.
        windows: the most time windows kept (even, >= 2).

    Returns:
        A :class:`Monitor`; hooks exist only inside the ``with`` block.

    Raises:
        TypeError: if ``model`` is not an ``nn.Module``.
        ValueError: for a bad ``every`` or ``windows``.
    """
    return Monitor(model, optimizer=optimizer, every=every, include=include, windows=windows)


def _first_tensor(args, kwargs):
    for a in list(args) + list(kwargs.values()):
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
