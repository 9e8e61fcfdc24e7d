"""``watch(model, optimizer=...)``: the monitor as a scoped resource.

Every step pays only for a root forward pre/post hook (step counting, the schedule, a finiteness
check of the output) and, with an optimizer, one fused ``_foreach_norm`` of the gradients in its
step pre-hook. Sampled steps (:mod:`~impediments.monitor.schedule`) also arm the
:class:`~impediments.monitor.intercept.Interceptor` for that forward (activations, layer outputs
and their gradients, BatchNorm, inputs) and record parameters, gradients and updates. With a
schedule denser than the default (``every=1``), the window statistics (histograms, region counts,
update ratios, the loop probe's checks, ...) keep the default's pace and the other sampled steps
record the dense ones only, with module hooks alone where they suffice (see ``schedule``).

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
from impediments.monitor import compiled, symmetry
from impediments.monitor.intercept import Interceptor, module_kind
from impediments.monitor.nonfinite import FirstNonFinite
from impediments.monitor.loop import LoopProbe
from impediments.monitor.params import ParamWatcher
from impediments.monitor.recording import Recorder
from impediments.monitor.schedule import WindowView, full_schedule, make_schedule
from impediments.monitor.windows import DEFAULT_CAPACITY, Windows

class Monitor(Recorder):
    """Streaming statistics of one model (see :func:`watch`). Use as a context manager."""

    def __init__(self, model: nn.Module, optimizer=None, every=None, include=None,
                 windows: int = DEFAULT_CAPACITY, live=False, *, modules: dict | None = None,
                 parameters: dict | None = None) -> None:
        """See :func:`watch`. ``modules`` / ``parameters``: ``{name: module}`` / ``{name: parameter}`` to
        watch instead of ``model.named_modules()`` / ``named_parameters()``, for frameworks whose layers
        are not registered as children (Keras 3 on torch: :mod:`impediments.integrations.keras`)."""
        if not isinstance(model, nn.Module):
            raise TypeError(f"watch needs an nn.Module, got {type(model).__name__}")
        self.schedule = make_schedule(every)
        self.full_schedule = full_schedule(self.schedule)   # window statistics (see schedule)
        self.windows = Windows(windows)
        self.meta: dict = {"act": {}, "layer": {}, "bn": {}, "optimizer": None, "names": {}}
        self.steps = self.sampled_steps = self.training_forwards = 0
        self.nonfinite = FirstNonFinite()
        self._model, self._optimizer, self._include = model, optimizer, include
        self._named_modules, self._named_parameters = modules, parameters   # framework-supplied names
        self._handles: list = []
        self._icpt: Interceptor | None = None
        self._params: ParamWatcher | None = None
        self._loop: LoopProbe | None = None   # kept after close: its statistics outlive the hooks
        self._fwd_step, self._sampled_now, self._rng = 0, False, None
        self._last_leaf: nn.Module | None = None
        self._last_out = self._root_args = None
        self._sym: dict = {}
        self._roles: dict = {}            # id(module) -> what it is (Recorder._role)
        self._replays = 0
        self._last_moments = None
        self._hist_queue: list = []
        self._scratch = C.Scratch()       # full-size temporaries, reused by every sampled step
        self._loss_bag = None             # (step, the loss bag of its window)
        self._sampled_now, self._full_now, self._uses_rng = False, False, False
        self._live, self._live_feed = live, None   # live dashboard (impediments.playground.live)
        self._compiled, self._eager = False, None   # torch.compile'd model: sampled forwards run eagerly

    # --------------------------------------------------------------------- scope
    def __enter__(self) -> "Monitor":
        root = self._model                        # hooks on a torch.compile wrapper run outside its graph
        model = compiled.uncompiled(root)         # names and parameters come from the module it wraps
        named = (list(self._named_modules.items()) if self._named_modules is not None
                 else [(compiled.clean_name(n), m) for n, m in model.named_modules()])
        names = {id(m): n for n, m in named if self._included(n)}
        kinds = {id(m): k for m in model.modules() if id(m) in names and (k := module_kind(m)) is not None}
        self._icpt = Interceptor(names, kinds, self._act_in, self._act_out, self._mod_pre, self._mod_post)
        self._icpt.on_gate = self._gate
        if compiled.is_compiled(root):
            self._eager = compiled.EagerForward() if compiled.can_run_eagerly() else None
            self._compiled = True
            self.meta.setdefault("not_checked", {}).update(compiled.not_checked())
        self._handles = [root.register_forward_pre_hook(self._root_pre, with_kwargs=True),
                         root.register_forward_hook(self._root_post, always_call=True)]
        self._uses_rng = any(isinstance(m, nn.modules.dropout._DropoutNd) for m in model.modules())
        self._handles += [m.register_forward_pre_hook(self._bn_count(n)) for n, m in named
                          if id(m) in names and C.is_batch_norm(m)]
        self._params = ParamWatcher(self, model, self._optimizer, self._named_parameters)
        self._handles += self._params.attach()
        self.meta["optimizer"] = self._params.optimizer_info()
        self._loop = LoopProbe(WindowView(self), model, self._params.optimizer, self._named_parameters,
                               self._named_modules)
        self._loop.attach(root)
        if self._params.not_hooked:
            self.meta.setdefault("not_checked", {})["optimizer"] = self._params.not_hooked
        if self._live:
            self.serve(self._live)
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Remove every hook and drop every reference to the model and optimizer (idempotent)."""
        if self._live_feed is not None:       # publishes the final state while the statistics are whole
            self._live_feed.detach()
            self._live_feed = None
        if self._icpt is not None:
            self._icpt.disarm()
        if self._eager is not None:
            self._eager.exit()
        for h in self._handles:
            h.remove()
        if self._loop is not None:
            self._loop.detach()
        if self._params is not None:
            self._params.detach()
        self._handles, self._icpt, self._params = [], None, None
        self._scratch.clear()
        self._model = self._optimizer = self._last_leaf = self._last_out = self._root_args = None

    def _included(self, name: str) -> bool:
        inc = self._include
        if inc is None:
            return True
        if callable(inc):
            return bool(inc(name))
        return any(name == p or name.startswith(p + ".") for p in inc) or name == ""

    # --------------------------------------------------------------------- public API
    def stats(self):
        """All statistics as a :class:`~impediments.monitor.schema.MonitorStats` (syncs here only)."""
        from impediments.monitor.stats import compute

        stats = compute(self)
        stats.loop = self._loop.to_stats() if self._loop is not None else None
        return stats

    def report(self, thresholds=None):
        """The doctor's diagnosis of :meth:`stats` (``impediments.doctor.diagnose``); under
        ``torch.distributed``, on rank 0 only (``None`` elsewhere: call :meth:`sync` first)."""
        from impediments.doctor import diagnose
        from impediments.monitor.distributed import is_reporting_rank

        return diagnose(self.stats(), thresholds) if is_reporting_rank() else None

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

    def record_batchnorm_forward(self, name: str, kind: str, *, running_statistics: bool, frozen: bool,
                                 values_per_channel: int) -> None:
        """Count one training-mode forward of a batch-normalization layer the monitor cannot recognise
        itself (Keras 3's ``BatchNormalization``), as its own hooks count a torch BatchNorm's: whether it
        normalised with running statistics (``bn_inference_mode_in_training``) and how many values per
        channel it saw (``bn_small_batch``). Call from a forward hook of that layer."""
        meta = self.meta["bn"].setdefault(name, {"kind": kind, "values_per_channel": None})
        v = meta["values_per_channel"]
        meta["values_per_channel"] = values_per_channel if v is None else min(v, values_per_channel)
        meta["frozen"] = frozen
        bag = self.state().bag("bn", name)
        bag.count("training_forwards")
        if running_statistics:
            bag.count("running_forwards")

    def memory(self) -> dict:
        """Tensor count and bytes held in the statistics, pending parts folded (for the flat-memory test)."""
        for _, _, st in self.windows.all():
            for b in st.values():
                b.t  # noqa: B018 - folds pending parts
        return {"tensors": self.windows.tensors() + self.nonfinite.tensors(), "bytes": self.windows.nbytes()}


    def serve(self, server=True):
        """Show this monitor live in the browser (inside the ``with`` block; the URL is printed).

        ``server``: ``True`` starts a local dashboard on a free port; or pass one from
        ``impediments.playground.live.start_live_server(port=...)``. Returns the
        :class:`~impediments.playground.live.LiveFeed` (``.url``; ``.close()`` stops the server).
        The page follows the sampled steps; see :mod:`impediments.playground.live` for its cost bound.
        """
        from impediments.playground.live import attach_live

        if self._model is None:
            raise RuntimeError("mon.serve() needs an active monitor: call it inside `with watch(...) as mon:`")
        if self._live_feed is None:
            self._live_feed = attach_live(self, self._model, server)
        return self._live_feed


def watch(model: nn.Module, optimizer=None, every=None, include=None, windows: int = DEFAULT_CAPACITY,
          live=False) -> Monitor:
    """Watch ``model`` while it trains; use as ``with watch(model, optimizer=opt) as mon: ...``.

    Args:
        model: any ``nn.Module``; only forwards in training mode are recorded.
        optimizer: counts steps (its step hooks) and enables gradient/update statistics cheaply;
            without it, steps are training-mode forwards of ``model`` and gradients come from
            per-parameter post-accumulate hooks.
        every: ``None`` for the default schedule, ``k`` for every ``k``-th step, or ``step -> bool``
            (:mod:`~impediments.monitor.schedule`; ``every=1`` records the dense statistics at every
            step and the window statistics at the default schedule's pace).
        include: module-name prefixes (or ``name -> bool``) to watch; default all.
        windows: the most time windows kept (even, >= 2).
        live: ``True`` to show the statistics and findings live in the browser while it trains
            (:meth:`Monitor.serve`), or a server from ``impediments.playground.live.start_live_server``.

    Returns:
        A :class:`Monitor`; hooks exist only inside the ``with`` block.

    Raises:
        TypeError: if ``model`` is not an ``nn.Module``.
        ValueError: for a bad ``every`` or ``windows``.
    """
    return Monitor(model, optimizer=optimizer, every=every, include=include, windows=windows, live=live)
