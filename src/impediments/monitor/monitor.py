"""The :class:`Monitor`: a scoped resource that owns the probes and dispatches to them.

Every step pays only for a root forward pre/post hook (step counting, the schedule, a finiteness
check of the output and the loss) and host counters; gradients are read on sampled steps only (a
gradient gone NaN in between shows at the next output: :mod:`~impediments.monitor.probes.params`). Sampled steps
(:mod:`~impediments.monitor.schedule`) also arm the :class:`~impediments.monitor.hooks.intercept.Interceptor`
for that forward, whose callbacks the monitor routes to the probe of each kind of module: activations,
Linear/Conv layers, BatchNorm, recurrent modules and residual blocks. With a schedule denser than the
default (``every=1``), the window statistics keep the default's pace and the other sampled steps record
the dense ones only, with module hooks alone where they suffice.

The monitor holds no statistic itself: each probe (:mod:`~impediments.monitor.probes.base`) declares
its fields, owns its hooks and returns its part of :meth:`Monitor.stats`; merging, state dicts and the
DDP sync walk the same declared fields. Every hook it puts on the model is portable
(:mod:`~impediments.monitor.hooks.portable`): the model pickles, saves and deep-copies inside
``watch()`` as outside it.

Non-finite values are located exactly: the step from the per-step checks (output, loss; gradient
norms on sampled steps, and the held gradients at the first non-finite output and on leaving), held
in device registers updated with ``torch.where`` (no sync); on CPU, the first forward whose output is
non-finite is replayed once under interception (with RNG and buffers restored, so training is
unchanged) to name the first module or functional call that produced it. On other devices the layer
comes from sampled steps. See :mod:`~impediments.monitor.probes.nonfinite`.
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn

from impediments.monitor import schema as S
from impediments.monitor import sharding
from impediments.monitor.hooks import compiled
from impediments.monitor.hooks.intercept import Interceptor, module_kind
from impediments.monitor.hooks.portable import PortableHook
from impediments.monitor.probes.activations import ActivationProbe, flush_histograms
from impediments.monitor.probes.base import Context
from impediments.monitor.probes.batchnorm import BatchNormProbe
from impediments.monitor.probes.inputs import InputProbe
from impediments.monitor.probes.layers import LAYER_TYPES, LayerProbe
from impediments.monitor.probes.loop.probe import LoopProbe
from impediments.monitor.probes.loss import LossProbe
from impediments.monitor.probes.mode import ModeProbe
from impediments.monitor.probes.nonfinite import FirstNonFinite, localise
from impediments.monitor.probes.output import OutputProbe, first_tensor
from impediments.monitor.probes.params import ParamProbe
from impediments.monitor.probes.recurrent.probe import RecurrentProbe
from impediments.monitor.probes.residual import ResidualProbe
from impediments.monitor.probes.symmetry import SymmetryProbe
from impediments.monitor.schedule import full_schedule, make_schedule
from impediments.monitor.state.windows import DEFAULT_CAPACITY, Windows

#: most CPU replays tried when an output sum overflows without any NaN/Inf value being found
MAX_REPLAYS = 3
#: the state-dict layout this monitor writes and reads
STATE_VERSION = 2
#: the probes whose meta a state dict carries, by key (the merge of two processes' metas is theirs)
PROBE_TYPES = {p.key: p for p in (ActivationProbe, LayerProbe, BatchNormProbe, ParamProbe, InputProbe, LossProbe,
                                  ModeProbe, SymmetryProbe, RecurrentProbe, ResidualProbe)}


class Monitor:
    """Streaming statistics of one model; use as a context manager (see :func:`impediments.watch`).

    Args:
        model: any ``nn.Module``; only forwards in training mode are recorded.
        optimizer: counts steps (its step hooks) and enables gradient and update statistics cheaply.
        every: ``None`` (default schedule), ``k`` or ``step -> bool`` (:mod:`~impediments.monitor.schedule`).
        include: module-name prefixes (or ``name -> bool``) to watch; default all.
        windows: the most time windows kept (even, >= 2).
        modules / parameters: ``{name: module}`` / ``{name: parameter}`` to watch instead of
            ``model.named_modules()`` / ``named_parameters()``, for frameworks whose layers are not
            registered as children (Keras 3 on torch: :mod:`impediments.integrations.keras`).

    Raises:
        TypeError: if ``model`` is not an ``nn.Module``.
        ValueError: for a bad ``every`` or ``windows``.
    """

    def __init__(self, model: nn.Module, optimizer=None, every=None, include=None,
                 windows: int = DEFAULT_CAPACITY, *, modules: dict | None = None,
                 parameters: dict | None = None) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"watch needs an nn.Module, got {type(model).__name__}")
        schedule = make_schedule(every)
        self.ctx = Context(model, compiled.uncompiled(model), schedule, full_schedule(schedule), Windows(windows),
                           FirstNonFinite(), include)
        self._optimizer = optimizer
        self._named_modules, self._named_parameters = modules, parameters   # framework-supplied names
        self._handles: list = []
        self._icpt: Interceptor | None = None
        self._roles: dict = {}            # id(module) -> what it is (see _role)
        self._root_depth = 0              # nesting of the model's own forwards (only the outermost is a step)
        self._root_args = self._rng = None
        self._replays = 0
        self._counted_step = -1           # the step whose first sampled forward was counted
        self._eager = None                # torch.compile'd model: sampled forwards run eagerly
        self._compiled = self._uses_rng = False
        ctx = self.ctx
        self.activations = ActivationProbe(ctx)
        self.layers = LayerProbe(ctx)
        self.inputs = InputProbe(ctx)
        self.loss = LossProbe(ctx)
        self.mode = ModeProbe(ctx)
        self.symmetry = SymmetryProbe(ctx)
        self.recurrent = RecurrentProbe(ctx, self.activations)
        self.residual = ResidualProbe(ctx)
        self.output = OutputProbe(ctx)
        self.params: ParamProbe | None = None
        self.batchnorm: BatchNormProbe | None = None
        self.loop: LoopProbe | None = None   # kept after close: its statistics outlive the hooks
        ctx.note_step = self.mode.note_step

    # --------------------------------------------------------------------- counters
    steps = property(lambda self: self.ctx.steps, doc="optimizer steps (or training forwards, without one)")
    sampled_steps = property(lambda self: self.ctx.sampled_steps, doc="steps whose statistics were recorded")
    training_forwards = property(lambda self: self.ctx.training_forwards, doc="training-mode forwards of the model")
    windows = property(lambda self: self.ctx.windows)
    nonfinite = property(lambda self: self.ctx.nonfinite)
    schedule = property(lambda self: self.ctx.schedule)
    full_schedule = property(lambda self: self.ctx.full_schedule)

    def probes(self) -> list:
        """Every probe, in the order their statistics are assembled."""
        return [p for p in (self.activations, self.layers, self.params, self.batchnorm, self.inputs, self.loss,
                            self.mode, self.symmetry, self.recurrent, self.residual, self.output, self.loop)
                if p is not None]

    # --------------------------------------------------------------------- scope
    def __enter__(self) -> "Monitor":
        ctx, root = self.ctx, self.ctx.model      # hooks on a torch.compile wrapper run outside its graph
        model = ctx.module                        # names and parameters come from the module it wraps
        named = (list(self._named_modules.items()) if self._named_modules is not None
                 else [(compiled.clean_name(n), m) for n, m in model.named_modules()])
        names = {id(m): n for n, m in named if ctx.included(n)}
        kinds = {id(m): k for m in model.modules() if id(m) in names and (k := module_kind(m)) is not None}
        self._icpt = Interceptor(names, kinds, self.activations.record_input, self.activations.record_output,
                                 self._module_pre, self._module_post)
        self._icpt.on_gate = self.activations.mark_gate
        if compiled.is_compiled(root):
            self._eager = compiled.EagerForward() if compiled.can_run_eagerly() else None
            self._compiled = True
            ctx.not_checked.update(compiled.not_checked())
        self._handles = [root.register_forward_pre_hook(PortableHook(self._root_pre), with_kwargs=True),
                         root.register_forward_hook(PortableHook(self._root_post), always_call=True)]
        self._uses_rng = any(isinstance(m, nn.modules.dropout._DropoutNd) for m in model.modules())
        ctx.tensor_parallel_replica = sharding.tensor_parallel_replica(model)
        self.params = ParamProbe(ctx, model, self._optimizer, self._named_parameters)
        self.batchnorm = BatchNormProbe(ctx, [(n, m) for n, m in named if id(m) in names],
                                        lambda: self.params.meta.get("optimizer") if self.params else None)
        self.loop = LoopProbe(ctx, model, self.params.optimizer, self._named_parameters, self._named_modules)
        for probe in (self.params, self.batchnorm, self.loss, self.loop, self.output):
            self._handles += probe.attach()
        if self.params.not_hooked:
            ctx.not_checked["optimizer"] = self.params.not_hooked
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Remove every hook and drop every reference to the model and optimizer (idempotent)."""
        if self._icpt is not None:
            self._icpt.disarm()
        if self._eager is not None:
            self._eager.exit()
        for h in self._handles:
            h.remove()
        for probe in self.probes():
            probe.detach()
        self._handles, self._icpt = [], None
        self.ctx.close()
        self._optimizer = self._root_args = None

    # --------------------------------------------------------------------- root hooks (every forward)
    def _root_pre(self, model, args, kwargs):
        self._root_depth += 1
        if self._root_depth > 1:         # a re-entrant call (Lightning's training_step calling self(x)):
            return None                  # part of the outer forward
        icpt, ctx = self._icpt, self.ctx
        if icpt is None:
            return None
        if not model.training:
            self.mode.eval_forward(model)
            return None
        self.mode.training_forward()
        if icpt.armed:                   # a previous forward raised while armed
            icpt.disarm()
        step = ctx.steps
        if not self.params.counts_steps:
            self.params.flush()
            ctx.steps += 1
        ctx.step = step
        ctx.training_forwards += 1
        self._root_args = (args, kwargs)
        if self._uses_rng and not ctx.nonfinite.forward_found:
            self._rng = torch.get_rng_state()    # only to replay dropout masks when localising a NaN
        ctx.sampled = sampled = bool(ctx.schedule(step))
        full = ctx.full_schedule
        ctx.full = sampled and (full.decide(step) if hasattr(full, "decide") else bool(full(step)))
        if sampled:
            self._begin_sampled(model, args, kwargs, step)
            if self._eager is not None:      # torch.compile'd: this forward runs eagerly (see compiled)
                self._eager.enter()
        return None

    def _begin_sampled(self, model, args, kwargs, step: int) -> None:
        ctx = self.ctx
        if step != self._counted_step:   # a closure optimizer (LBFGS) runs several forwards in one step
            self._counted_step = step
            ctx.sampled_steps += 1
            ctx.full_steps += ctx.full
            if ctx.full:
                self.symmetry.record(compiled.uncompiled(model), step)
        ctx.hist_queue.clear()
        if ctx.full:                     # the input's moments are a window statistic (see schedule)
            self.inputs.record(args, kwargs)
        if not self._compiled or self._eager is not None:   # a compiled graph without eager fallback hides it
            self._icpt.arm(model, args, full=ctx.full)

    def _root_post(self, model, args, out):
        self._root_depth = max(0, self._root_depth - 1)
        if self._root_depth:
            return None
        if self._eager is not None:
            self._eager.exit()
        ctx = self.ctx
        if self._icpt is None or not model.training:
            return None
        if ctx.sampled:
            if ctx.full and (head := self._icpt.activation_of(first_tensor(out))) is not None:
                self.activations.mark_model_output(head)     # the output head, not a hidden nonlinearity
            # dense: kept, inert till the next forward (not for torch.compile, which warns of global hooks)
            self._icpt.disarm(keep_hooks=not self._compiled and bool(ctx.schedule(ctx.step + 1)))
            flush_histograms(ctx.hist_queue)
            ctx.forget_forward()
        if isinstance(out, torch.Tensor) and out.device.type == "cpu" and out.is_floating_point():
            bad = not math.isfinite(float(out.detach().sum()))   # one reduction, read for free on CPU
        else:
            bad = _nonfinite_flag(out)
        nf = ctx.nonfinite
        if bad is not None and not isinstance(bad, bool) and bad.device.type != "cpu":
            nf.update("output", bad, ctx.step, "output")
        elif bad and not nf.forward_found and self._replays < MAX_REPLAYS:
            self._replays += 1
            self.params.find_nonfinite()     # a gradient gone NaN on an unsampled step, if still held

            localise(nf, ctx.included, compiled.uncompiled(model), self._root_args, self._rng, ctx.step)
        self._root_args, self._rng = None, None
        return None

    # --------------------------------------------------------------------- interception (sampled forwards)
    def _role(self, module) -> tuple:
        """``(leaf, Linear/Conv, BatchNorm, recurrent)`` of a module, computed once per module."""
        role = self._roles.get(id(module))
        if role is None:
            role = self._roles[id(module)] = (next(module.children(), None) is None, isinstance(module, LAYER_TYPES),
                                              self.batchnorm.is_batch_norm(module),
                                              self.recurrent.is_recurrent(module))
        return role

    def _module_pre(self, name, module, args):
        _, _, bn, rnn = self._role(module)
        if rnn:                                      # its dropout masks, to replay (see recurrent)
            self.recurrent.before(module, args)
        if bn:
            self.batchnorm.record(name, module, args, self._icpt.names)

    def _module_post(self, name, module, args, out):
        leaf, layer, _, rnn = self._role(module)
        ctx = self.ctx
        if leaf:
            ctx.last_leaf, ctx.last_out, ctx.last_moments = module, out, None
        if layer:
            self.layers.record(name, module, out, args)
        elif rnn:                                    # gates inside one fused op: recomputed (see recurrent)
            self.recurrent.record(name, module, args, out)
        elif not leaf and ctx.full:                  # a block on a residual stream? (a window statistic)
            self.residual.record(name, module, args, out)

    # --------------------------------------------------------------------- recording from outside
    def record_loss(self, loss) -> None:
        """Record the loss of the current step (no sync). Call once per step, before or after ``step()``.
        Without any call, each step's first ``loss.backward()`` is recorded instead."""
        self.loss.record(loss)

    def record_batchnorm_forward(self, name: str, kind: str, *, running_statistics: bool, frozen: bool,
                                 values_per_channel: int) -> None:
        """Count one training-mode forward of a batch-normalization layer the monitor cannot recognise
        itself (Keras 3's ``BatchNormalization``), as its own hooks count a torch BatchNorm's: whether it
        normalised with running statistics (``bn_inference_mode_in_training``) and how many values per
        channel it saw (``bn_small_batch``). Call from a forward hook of that layer."""
        self.batchnorm.count_external(name, kind, running_statistics=running_statistics, frozen=frozen,
                                      values_per_channel=values_per_channel)

    # --------------------------------------------------------------------- statistics
    def stats(self) -> S.MonitorStats:
        """All statistics as a :class:`~impediments.monitor.schema.MonitorStats` (syncs here only)."""
        ctx = self.ctx
        windows = ctx.windows.all()
        total = ctx.windows.total()
        fields: dict = {}
        for probe in self.probes():
            fields.update(probe.stats(total, windows))
        wins = []
        for start, end, st in windows:
            w = S.Window(start_step=start, end_step=end, loss_mean=None)
            for probe in self.probes():
                probe.window(st, w)
            wins.append(w)
        return S.MonitorStats(
            schema_version=S.SCHEMA_VERSION, steps=ctx.steps, sampled_steps=ctx.sampled_steps,
            model_training_steps=ctx.training_forwards, nonfinite=ctx.nonfinite.stats(), windows=wins,
            not_checked={**ctx.not_checked, **self._unseen()}, **{"optimizer": None, **fields})

    def _unseen(self) -> dict[str, str]:
        """What the hooks could not see, said plainly (the report's "not checked")."""
        ctx, out = self.ctx, {}
        loop = self.loop
        stepped = loop is not None and (loop.steps or loop.backwards)
        grads = self.params is not None and bool(self.params.meta.get("param_names"))
        evaluated = self.mode.meta.get("eval_forwards", 0)   # forwards that ran, in eval mode
        if not ctx.training_forwards and not evaluated and (stepped or grads or self.loss.meta["source"]):
            out["forward"] = ("the model's forward hooks never ran in training mode although it trained: its "
                              "forward was called directly (model.forward(x), or a submodule's .forward(...)), "
                              "which bypasses module hooks; call model(x) instead. Activations, layer outputs, "
                              "BatchNorm, inputs and the output's finiteness were not recorded")
        if self._optimizer is None and loop is not None and not loop.steps and ctx.training_forwards:
            out["optimizer steps"] = ("no torch optimizer stepped (updates made by hand, such as p -= lr * p.grad?): "
                                      "steps were counted by training forwards, and gradient clearing, learning "
                                      "rates, forwards per step and update-to-weight ratios were not checked")
        return out

    # --------------------------------------------------------------------- state, merge, sync
    def state_dict(self) -> dict:
        """Everything needed to resume or merge, on the host (plain tensors, ints and dicts)."""
        ctx = self.ctx
        meta = {p.key: (p.state_meta() if isinstance(p, SymmetryProbe) else p.meta)
                for p in self.probes() if p.key in PROBE_TYPES}
        return {"version": STATE_VERSION, "windows": ctx.windows.state(), "meta": copy.deepcopy(meta),
                "not_checked": dict(ctx.not_checked), "steps": ctx.steps, "sampled_steps": ctx.sampled_steps,
                "training_forwards": ctx.training_forwards, "nonfinite": ctx.nonfinite.state()}

    def load_state_dict(self, sd: dict) -> None:
        """Restore :meth:`state_dict` output (statistics only; hooks are unchanged).

        Raises:
            ValueError: on an unknown version.
        """
        if sd.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported monitor state_dict version {sd.get('version')!r}; "
                             f"supported: [{STATE_VERSION}]")
        ctx = self.ctx
        ctx.windows = Windows.from_state(sd["windows"])
        ctx.nonfinite = FirstNonFinite.from_state(sd["nonfinite"])
        ctx.not_checked = dict(sd.get("not_checked", {}))
        ctx.steps, ctx.sampled_steps, ctx.training_forwards = sd["steps"], sd["sampled_steps"], sd["training_forwards"]
        meta = copy.deepcopy(sd["meta"])
        for probe in self.probes():
            if probe.key in meta:
                probe.load_meta(meta[probe.key])

    def merge(self, other: "Monitor") -> "Monitor":
        """Fold another monitor of the same model over the same steps (e.g. another process) into this one."""
        self.load_state_dict(merge_states([self.state_dict(), other.state_dict()]))
        return self

    def sync(self, group=None) -> "Monitor":
        """All-gather the state of every process and merge it (call on all ranks; see distributed)."""
        from impediments.monitor.distributed import sync

        return sync(self, group)

    # --------------------------------------------------------------------- exports
    def to_json(self, path) -> None:
        """Write :meth:`stats` as versioned JSON (see :mod:`~impediments.monitor.export`); rank 0 only."""
        from impediments.monitor.distributed import is_reporting_rank
        from impediments.monitor.export import to_json

        if is_reporting_rank():          # rank 0 only under torch.distributed
            to_json(self.stats(), path)

    def to_tensorboard(self, writer) -> int:
        """Write :meth:`stats` to TensorBoard (scalars, histograms and histograms over time); returns the
        number of events. ``writer``: a ``SummaryWriter``, or a log folder (created, written, closed).

        Raises:
            ImportError: for a folder when the ``tensorboard`` extra is not installed.
        """
        from impediments.monitor.distributed import is_reporting_rank
        from impediments.monitor.export import to_tensorboard

        if not is_reporting_rank():      # rank 0 only under torch.distributed
            return 0
        if hasattr(writer, "add_scalar"):
            return to_tensorboard(self.stats(), writer)
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise ImportError("writing TensorBoard events needs the tensorboard package: "
                              "pip install 'impediments[tensorboard]'") from exc
        sw = SummaryWriter(str(writer))
        try:
            return to_tensorboard(self.stats(), sw)
        finally:
            sw.close()

    def memory(self) -> dict:
        """Tensor count and bytes held in the statistics, pending parts folded (for the flat-memory test)."""
        windows = self.ctx.windows
        for _, _, st in windows.all():
            for b in st.values():
                b.t  # noqa: B018 - folds pending parts
        return {"tensors": windows.tensors() + self.ctx.nonfinite.tensors(), "bytes": windows.nbytes()}


def merge_states(states: list[dict]) -> dict:
    """Merge :meth:`Monitor.state_dict` outputs of processes (or monitors) over the same steps: windows
    by their declared fields, each probe's meta by its own ``merge_meta``, counters by their maximum.

    Raises:
        ValueError: for an empty list.
    """
    if not states:
        raise ValueError("merge_states needs at least one state")
    base = copy.deepcopy(states[0])
    wins = Windows.from_state(base["windows"])
    nf = FirstNonFinite.from_state(base["nonfinite"])
    for other in states[1:]:
        wins.merge(Windows.from_state(other["windows"]))
        nf.merge(FirstNonFinite.from_state(other["nonfinite"]))
        for key, theirs in other["meta"].items():
            PROBE_TYPES[key].merge_meta(base["meta"].setdefault(key, {}), theirs)
        base["not_checked"] = {**other.get("not_checked", {}), **base.get("not_checked", {})}
        for counter in ("sampled_steps", "steps", "training_forwards"):
            base[counter] = max(base[counter], other[counter])
    base["windows"], base["nonfinite"] = wins.state(), nf.state()
    return base


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

