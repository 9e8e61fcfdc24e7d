"""Parameters, gradients and updates, as vectors over all parameters (fused ``_foreach_norm``).

With an optimizer, its step pre-hook checks every step that all gradient norms are finite (one
``_foreach_norm``; on CPU the norms are read on the host, elsewhere a device register is updated,
no sync) and, on sampled steps, records per parameter

.. math:: \\|g\\|,\\ \\max \\|g\\|,\\ \\frac{\\|g\\|}{\\|w\\|},\\ \\frac{\\|\\Delta w\\|}{\\|w\\|}

(the update-to-weight ratio, Karpathy 2016; the post-hook takes :math:`\\Delta w`); for the first weight
matrix only (the input layer, in definition order), the sign agreement of its gradient's rows,
:math:`\\frac{1}{m}\\sum_j |\\sum_i \\operatorname{sign} g_{ji}| / \\#\\{i: g_{ji} \\ne 0\\}`: 1 when every row's
non-zero entries share a sign, about :math:`\\sqrt{2/(\\pi n)}` for n random signs (a feature that is
always 0, such as a blank border pixel, has a zero gradient and does not count). It measures the mechanism LeCun et al. (1998) give for
uncentered inputs: with inputs of one sign, a unit's incoming weights all grow or all shrink together
in a step, so reaching a direction of mixed signs takes a zig-zag. Gradient and weight
norms come from one fused ``_foreach_norm``. The update ratio needs a copy of every parameter before
the step and two more passes after it, so it is a window statistic: on the full sampled steps only
(:mod:`~impediments.monitor.schedule`: every sampled step unless the schedule is denser than the
default). Without an optimizer, per-parameter post-accumulate-grad hooks record :math:`\\|g\\|` (update
ratios are then NaN).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from impediments.monitor import sharding
from impediments.monitor.hooks.compiled import clean_name
from impediments.monitor.hooks.portable import PortableHook
from impediments.monitor.probes.base import Probe
from impediments.monitor.state.bag import Field
from impediments.monitor.state.moments import to_device

NAN = float("nan")


@dataclass
class ParamStats:
    """Per parameter (name as in ``model.named_parameters()``)."""

    module: str
    grad_norm: float
    grad_norm_max: float
    weight_norm: float
    grad_to_weight: float
    update_to_weight: float
    samples: int
    #: mean row sign agreement of the gradient (first weight matrix only; NaN elsewhere, see the module doc)
    sign_agreement: float = NAN

#: attributes under which optimizer wrappers keep the torch optimizer they wrap
#: (Hugging Face Accelerate's ``AcceleratedOptimizer.optimizer``, Lightning's ``LightningOptimizer._optimizer``)
WRAPPED_OPTIMIZER_ATTRIBUTES = ("optimizer", "_optimizer")


def unwrap_optimizer(optimizer):
    """``(torch optimizer or None, reason it could not be hooked or "")`` for any optimizer-like object.

    Wrappers are unwrapped through :data:`WRAPPED_OPTIMIZER_ATTRIBUTES` (Accelerate's wrapper subclasses
    ``torch.optim.Optimizer`` without running its ``__init__``, so it has ``register_step_pre_hook`` but
    no hook table) down to a ``torch.optim.Optimizer`` whose step hooks (torch >= 2.0) can be registered.
    Anything else (a Keras optimizer, a custom stepper) is named in the reason, and the monitor falls
    back to per-parameter post-accumulate-grad hooks: gradients are recorded, update ratios are not.
    """
    if optimizer is None:
        return None, ""
    seen, obj = [type(optimizer).__name__], optimizer
    for _ in range(8):
        inner = next((getattr(obj, a) for a in WRAPPED_OPTIMIZER_ATTRIBUTES
                      if getattr(obj, a, None) is not None and getattr(obj, a) is not obj), None)
        if inner is None:
            break
        obj = inner
        seen.append(type(obj).__name__)
    if isinstance(obj, torch.optim.Optimizer) and hasattr(obj, "_optimizer_step_pre_hooks"):
        return obj, ""
    return None, (f"{' -> '.join(seen)} has no torch optimizer step hooks (looked in "
                  f"{', '.join('.' + a for a in WRAPPED_OPTIMIZER_ATTRIBUTES)}): steps are counted by training "
                  f"forwards and update-to-weight ratios are not measured")


def _norm(t: torch.Tensor) -> torch.Tensor:
    """The 2-norm of a tensor, dense or sparse (a sparse one is coalesced first: duplicate indices add)."""
    if t.is_sparse:
        return t.coalesce().values().norm()
    return torch.linalg.vector_norm(t)


def norms(tensors: list) -> torch.Tensor:
    """2-norms of ``tensors`` as one vector: one fused ``_foreach_norm`` for the dense ones (which it
    cannot take sparse tensors among), :func:`_norm` for each sparse one (an ``nn.Embedding(sparse=True)``)."""
    sparse = [i for i, t in enumerate(tensors) if t.is_sparse]
    if not sparse:
        return torch.stack(torch._foreach_norm(tensors))
    dense = [i for i, t in enumerate(tensors) if not t.is_sparse]
    out = [None] * len(tensors)
    for i, v in zip(dense, torch._foreach_norm([tensors[i] for i in dense]) if dense else []):
        out[i] = v
    for i in sparse:
        out[i] = _norm(tensors[i])
    return torch.stack(out)


class ParamProbe(Probe):
    """Gradient, weight and update norms of every watched parameter (see the module docstring).

    Args:
        ctx: the monitor's context.
        model: the (uncompiled) model.
        optimizer: any optimizer-like object, or None (:func:`unwrap_optimizer`).
        parameters: ``{name: parameter}`` to watch instead of ``model.named_parameters()``.
    """

    key = "params"
    #: per parameter, summed over sampled steps
    GRAD = Field("grad", "sum", columns=("grad_norm", "grad_to_weight", "samples"))
    GRAD_MAX = Field("gmax", "max")
    WEIGHT_NORM = Field("wnorm", "last")
    #: per parameter, summed over full steps (a copy of the parameters is needed)
    UPDATE = Field("update", "sum", columns=("update_to_weight", "samples"))
    #: the first weight matrix's gradient row sign agreement, summed over sampled steps, and its count
    SIGN = Field("sign", "sum", columns=("sign_agreement", "samples"))

    def __init__(self, ctx, model: nn.Module, optimizer, parameters: dict | None = None) -> None:
        super().__init__(ctx)
        optimizer, self.not_hooked = unwrap_optimizer(optimizer)
        self.optimizer = optimizer
        named = (list(parameters.items()) if parameters is not None
                 else [(clean_name(n), p) for n, p in model.named_parameters()])
        named = [(n, p) for n, p in named if ctx.included(n.rsplit(".", 1)[0] if "." in n else "")]
        if optimizer is not None:
            in_opt = {id(p) for g in optimizer.param_groups for p in g["params"]}
            named = [(n, p) for n, p in named if id(p) in in_opt]
        self.names = [n for n, _ in named]
        self.params = [p for _, p in named]
        self.first_matrix = next((i for i, p in enumerate(self.params) if p.dim() >= 2), None)
        self.counts_steps = optimizer is not None
        self._before = None
        self._copy: tuple | None = None   # (parameter indices, buffers) reused by consecutive sampled steps
        self._pending: dict[int, torch.Tensor] = {}
        self._pending_step = 0
        self._handles: list = []
        self._index: dict = {}
        self._ones_cache: dict = {}
        self.meta = {"param_names": [], "optimizer": self.optimizer_info()}

    def optimizer_info(self) -> dict | None:
        opt = self.optimizer
        if opt is None:
            return None
        ids = {id(p): n for n, p in zip(self.names, self.params)}
        groups = []
        for g in opt.param_groups:
            info = {k: v for k, v in g.items() if k != "params" and isinstance(v, (int, float, bool, str))}
            info["params"] = [ids[id(p)] for p in g["params"] if id(p) in ids]
            groups.append(info)
        return {"type": type(opt).__name__, "groups": groups}

    def attach(self) -> list:
        if self.optimizer is not None:
            return [self.optimizer.register_step_pre_hook(PortableHook(self._step_pre)),
                    self.optimizer.register_step_post_hook(PortableHook(self._step_post))]
        return [p.register_post_accumulate_grad_hook(_GradientHook(self, i))
                for i, p in enumerate(self.params) if p.requires_grad]

    def detach(self) -> None:
        self.flush()
        self.params, self.optimizer, self._before, self._copy = [], None, None, None

    # --------------------------------------------------------------------- optimizer path
    def _step_pre(self, opt, args, kwargs):
        closure = kwargs.get("closure", args[1] if len(args) > 1 else None)   # args[0] is the optimizer
        if callable(closure):            # step(closure): the gradients exist only once the closure ran
            return self._read_after(closure, args, kwargs)
        self._read_gradients()
        return None

    def _read_after(self, closure, args, kwargs):
        """``opt.step(closure)`` (Lightning's automatic optimization, LBFGS) runs forward and backward
        inside ``step``: the pre-hook hands ``step`` a closure that reads the gradients right after its
        first call, before the update (a step pre-hook may return new ``(args, kwargs)``)."""
        done: list = []

        def closure_then_read():
            out = closure()
            if not done:
                done.append(True)
                self._read_gradients()
            return out

        if "closure" in kwargs:
            return args, {**kwargs, "closure": closure_then_read}
        return (args[0], closure_then_read, *args[2:]), kwargs

    @torch.no_grad()
    def _read_gradients(self) -> None:
        ctx = self.ctx
        step = ctx.steps
        ctx.note_step()
        params = self.params
        idx = [i for i, p in enumerate(params) if p.grad is not None]
        if not idx:
            return
        grads = [params[i].grad for i in idx]      # (no_grad: no detach needed)
        sampled = ctx.schedule(step)
        ps = [params[i] for i in idx] if sampled else []
        # gradient and (sampled) weight norms: one fused _foreach_norm of what this rank holds; sharded
        # (FSDP2/TP DTensor) ones merged over their mesh on sampled steps only (see monitor.sharding)
        both = norms([sharding.local(t, resolve=sampled) for t in grads + ps])
        if sampled:
            both = sharding.global_norms(grads + ps, both)
        k = len(idx)
        nf = ctx.nonfinite
        # on CPU the norms are read on the host (free, one read) and recorded as host rows (no kernel);
        # elsewhere a device register is updated and device rows recorded (no sync)
        host = both.tolist() if both.is_cpu else None
        if "gradient" not in nf.first and (host is None or not all(map(math.isfinite, host[:k]))):
            nf.update_vector("gradient", ~torch.isfinite(both[:k]), step, [self.names[i] for i in idx])
        if not sampled:
            self._copy = None
            return
        if host is not None:
            w = self._record_host(step, idx, host[:k], host[k:])
        else:
            w = self._record(step, idx, both[:k], both[k:])
        self._record_sign(step)
        if ctx.full_schedule(step):   # update ratios: a window statistic (a copy and two passes more)
            self._before = (idx, self._copy_of(idx, [sharding.local(p) for p in ps]), w)

    def _copy_of(self, idx: list, ps: list) -> list:
        """The parameters before the update, in buffers kept while consecutive steps are sampled (a fresh
        large tensor on CPU is a fresh mmap whose pages fault on first touch: see ``collectors.Scratch``)."""
        key = tuple(idx)
        if self._copy is not None and self._copy[0] == key:
            torch._foreach_copy_(self._copy[1], ps)
        else:
            self._copy = (key, torch._foreach_mul(ps, 1.0))   # one fused copy
        return self._copy[1]

    @torch.no_grad()
    def _step_post(self, opt, args, kwargs):
        ctx = self.ctx
        step = ctx.steps
        ctx.steps += 1
        if self._before is None:
            return
        idx, before, w = self._before
        self._before = None
        if isinstance(w, list):
            w = torch.tensor(w, dtype=torch.float64)
        after = [sharding.local(self.params[i]) for i in idx]
        torch._foreach_sub_(before, after)                          # in place: no second copy
        dnorm = sharding.global_norms([self.params[i] for i in idx], torch.stack(torch._foreach_norm(before)))
        if not ctx.full_schedule(step + 1):                     # the next step keeps no copy
            self._copy = None
        ratio = torch.stack([dnorm.double() / w, self._ones(len(idx), w.device)])
        ctx.windows.at(step).bag(self.key, "").add(self.UPDATE, self._scatter(idx, ratio))

    # --------------------------------------------------------------------- no-optimizer path
    def gradient_arrived(self, i: int, p: torch.Tensor) -> None:
        """Parameter ``i``'s gradient was accumulated (its post-accumulate-grad hook)."""
        ctx = self.ctx
        if not self._pending or i in self._pending:   # the first gradient of a backward pass
            ctx.note_step()
        if self._pending and self._pending_step != ctx.step:
            self.flush()
        self._pending_step = ctx.step
        self._pending[i] = _norm(sharding.local(p.grad.detach(), resolve=False))

    def flush(self) -> None:
        """Fold gradient norms collected by the no-optimizer hooks (one backward) into the stats."""
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        idx = sorted(pending)
        gnorm = torch.stack([pending[i] for i in idx])
        step = self._pending_step
        self.ctx.nonfinite.update_vector("gradient", ~torch.isfinite(gnorm), step, [self.names[i] for i in idx])
        if self.ctx.schedule(step) and self.params:
            ps = [self.params[i] for i in idx]
            wnorm = sharding.global_norms(ps, torch.stack(torch._foreach_norm([sharding.local(p.detach()) for p in ps])))
            gnorm = sharding.global_norms(ps, gnorm)      # (a gradient has its parameter's placements)
            self._record(step, idx, gnorm, wnorm)
            self._record_sign(step)

    # --------------------------------------------------------------------- shared
    def _scatter(self, idx, values: torch.Tensor) -> torch.Tensor:
        """``values[..., j]`` of parameter ``idx[j]`` placed in a row over all parameters (zeros elsewhere)."""
        if len(idx) == len(self.names):   # every parameter had a gradient: already in order
            return values
        key = (tuple(idx), str(values.device))
        if key not in self._index:
            self._index = {key: to_device(idx, torch.int64, values.device)}   # the last pattern only
        full = values.new_zeros((*values.shape[:-1], len(self.names)))
        return full.index_copy(-1, self._index[key], values)

    def _scatter_host(self, idx, row: list) -> list:
        """:meth:`_scatter` of a host row."""
        if len(idx) == len(self.names):
            return row
        full = [0.0] * len(self.names)
        for i, v in zip(idx, row):
            full[i] = v
        return full

    def _record_host(self, step, idx, g: list, w: list) -> list:
        """:meth:`_record` from host floats (CPU): host rows, no kernel; returns ``w``."""
        bag = self.ctx.windows.at(step).bag(self.key, "")
        ratio = [a / b if b else (a * math.inf if a else math.nan) for a, b in zip(g, w)]   # as torch divides
        rows = [self._scatter_host(idx, g), self._scatter_host(idx, ratio), self._scatter_host(idx, [1.0] * len(g))]
        bag.add(self.GRAD, rows)
        bag.add(self.GRAD_MAX, rows[0])
        bag.add(self.WEIGHT_NORM, self._scatter_host(idx, w))
        self._names_recorded()
        return w

    def _names_recorded(self) -> None:
        if not self.meta["param_names"]:
            self.meta["param_names"] = list(self.names)

    def _ones(self, n: int, device) -> torch.Tensor:
        """A float64 vector of ``n`` ones (the per-parameter sample count), made once per size and device."""
        key = (n, str(device))
        ones = self._ones_cache.get(key)
        if ones is None:
            ones = self._ones_cache[key] = torch.ones(n, dtype=torch.float64, device=device)
        return ones

    def _record(self, step, idx, gnorm, wnorm) -> torch.Tensor:
        """One row per parameter into :attr:`GRAD` (``[|g|, |g|/|w|, 1]``), :attr:`GRAD_MAX` and
        :attr:`WEIGHT_NORM`; :attr:`UPDATE` (``[|dw|/|w|, 1]``) comes from the step post-hook.
        Returns ``|w|`` in float64."""
        bag = self.ctx.windows.at(step).bag(self.key, "")
        g, w = torch.stack([gnorm.detach(), wnorm]).double().unbind(0)
        bag.add(self.GRAD, self._scatter(idx, torch.stack([g, g / w, self._ones(len(idx), g.device)])))
        bag.add(self.GRAD_MAX, self._scatter(idx, g))
        bag.add(self.WEIGHT_NORM, self._scatter(idx, w))
        self._names_recorded()
        return w

    def _record_sign(self, step) -> None:
        """The first weight matrix's row sign agreement (module doc) into :attr:`SIGN` (no host read)."""
        i = self.first_matrix
        g = self.params[i].grad if i is not None else None
        if g is None or g.is_sparse:
            return
        signs = sharding.local(g.detach()).flatten(1).sign()
        rows = torch.stack([signs.sum(1), signs.abs().sum(1)], 1)   # per row: sum of signs, non-zero count
        if sharding.is_sharded(g):       # rows or columns split across ranks: whole rows (monitor.sharding)
            rows = sharding.global_rows(g, rows)
        agreement = (rows[:, 0].abs() / rows[:, 1].clamp_min(1)).mean().double()
        self.ctx.windows.at(step).bag(self.key, "").add(self.SIGN, torch.stack([agreement, torch.ones_like(agreement)]))

    # --------------------------------------------------------------------- reading
    def stats(self, total, windows) -> dict:
        self.flush()
        names = self.meta.get("param_names") or []
        bag = total.get((self.key, ""))
        if bag is None or not names:
            return {"params": {}, "optimizer": self.meta.get("optimizer")}
        zeros = [0.0] * len(names)
        read = lambda f: bag.read(f).cpu().tolist() if bag.read(f) is not None else None  # noqa: E731
        grad = self.GRAD.unpack(read(self.GRAD) or [zeros, zeros, zeros])
        update = self.UPDATE.unpack(read(self.UPDATE) or [zeros, zeros])
        gmax, wnorm = read(self.GRAD_MAX), read(self.WEIGHT_NORM)
        sign = self.SIGN.unpack(read(self.SIGN)) if read(self.SIGN) is not None else None
        out = {}
        for i, n in enumerate(names):
            c, uc = int(grad["samples"][i]), update["samples"][i]
            out[n] = ParamStats(
                module=n.rsplit(".", 1)[0] if "." in n else "", samples=c,
                grad_norm=grad["grad_norm"][i] / c if c else NAN, grad_norm_max=gmax[i] if c else NAN,
                weight_norm=wnorm[i] if c else NAN, grad_to_weight=grad["grad_to_weight"][i] / c if c else NAN,
                update_to_weight=update["update_to_weight"][i] / uc if uc else NAN,
                sign_agreement=(sign["sign_agreement"] / sign["samples"] if sign and sign["samples"]
                                and i == self.first_matrix else NAN))
        return {"params": out, "optimizer": self.meta.get("optimizer")}

    def window(self, st, w) -> None:
        bag = st.get((self.key, ""))
        names = self.meta.get("param_names") or []
        if bag is None:
            return
        if bag.read(self.GRAD) is not None:
            grad = self.GRAD.unpack(bag.read(self.GRAD).cpu().tolist())
            for n, gi, ci in zip(names, grad["grad_norm"], grad["samples"]):
                if ci:
                    w.grad_norm[n] = gi / ci
        if bag.read(self.UPDATE) is not None:
            update = self.UPDATE.unpack(bag.read(self.UPDATE).cpu().tolist())
            for n, ui, ci in zip(names, update["update_to_weight"], update["samples"]):
                if ci:
                    w.update_to_weight[n] = ui / ci

    @staticmethod
    def merge_meta(mine: dict, other: dict) -> None:
        if not mine.get("param_names") and other.get("param_names"):
            mine["param_names"] = other["param_names"]
        if mine.get("optimizer") is None:
            mine["optimizer"] = other.get("optimizer")


class _GradientHook(PortableHook):
    """Parameter ``i``'s post-accumulate-grad hook (portable: see :mod:`~impediments.monitor.hooks.portable`)."""

    __slots__ = ("i",)

    def __init__(self, probe: ParamProbe, i: int) -> None:
        super().__init__(probe.gradient_arrived)
        self.i = i

    def __call__(self, p):
        self.fn(self.i, p)
