"""Parameters, gradients and updates, as vectors over all parameters (fused ``_foreach_norm``).

With an optimizer, its step pre-hook records, on sampled steps, per parameter

.. math:: \\|g\\|,\\ \\max \\|g\\|,\\ \\frac{\\|g\\|}{\\|w\\|},\\ \\frac{\\|\\Delta w\\|}{\\|w\\|}

(the update-to-weight ratio, Karpathy 2016; the post-hook takes :math:`\\Delta w`) and checks that every
gradient norm is finite; for the first weight matrix only (the input layer, in definition order; an
embedding's table is looked up, not a layer of weights on input features, and is passed over), the
sign agreement of its gradient's rows,
:math:`\\frac{1}{m}\\sum_j |\\sum_i \\operatorname{sign} g_{ji}| / \\#\\{i: g_{ji} \\ne 0\\}`: 1 when every row's
non-zero entries share a sign, about :math:`\\sqrt{2/(\\pi n)}` for n random signs (a feature that is
always 0, such as a blank border pixel, has a zero gradient and does not count). It measures the mechanism LeCun et al. (1998) give for
uncentered inputs: with inputs of one sign, a unit's incoming weights all grow or all shrink together
in a step, so reaching a direction of mixed signs takes a zig-zag; it is a window statistic (full steps).
Gradient and weight norms come from one fused ``_foreach_norm``.

Steps that are not sampled read no gradient at all: a norm of every gradient is a pass over as many
bytes as the model (0.5 GB for a 124M model, 6 % of a CPU step of 64 tokens). A gradient that turns
NaN/Inf on such a step is still found, one forward later: every torch optimizer writes it into its
parameter (``p - lr * nan`` is NaN, at any ``lr``), so the next output is non-finite, and the first
non-finite output makes :meth:`ParamProbe.find_nonfinite` read the gradients (still there when the loop
clears them after the forward) and the parameters once: the gradient is named at its own step when it
is still held, else the parameter the update wrote, at the step before the output (kind ``parameter``).
Leaving ``watch()`` runs the same check, for a gradient that turned NaN on the run's last step.

Update ratios are a window statistic (on the full sampled steps only: see
:mod:`~impediments.monitor.schedule`). They need the parameters before the step: a parameter of at most
:data:`EXACT_UPDATE_VALUES` values is copied whole (the ratio is exact); a larger one keeps a fixed,
seeded sample of :math:`k = \\max(` :data:`UPDATE_SAMPLE_MIN`, :math:`n /` :data:`UPDATE_SAMPLE_DIVISOR` :math:`)` of
its :math:`n` values (indices drawn uniformly with replacement, once), and

.. math:: \\widehat{\\|\\Delta w\\|^2} = \\frac{n}{k} \\sum_{j=1}^{k} \\Delta w_{i_j}^2, \\qquad
          \\frac{\\operatorname{sd}}{\\|\\Delta w\\|^2} = \\sqrt{\\frac{n \\sum_i \\Delta w_i^4 / (\\sum_i \\Delta w_i^2)^2 - 1}{k}}

is unbiased, with the relative standard deviation on the right (uniform sampling with replacement,
Cochran 1977, ch. 2): about :math:`\\sqrt{2/k}` (1.1 % at k = 16384) for a dense Gaussian-like update
(:math:`E[\\Delta^4] = 3 E[\\Delta^2]^2`), and :math:`\\sqrt{(3 n/n_{\\mathrm{changed}} - 1)/k}` when only :math:`n_{\\mathrm{changed}}` values move (an
embedding's rows of the tokens in the batch, under SGD: 64 of GPT-2's 50257 rows give 6 % at
k = n/64); the ratio, a square root, has half that error. The copy is then at most
:math:`1/` :data:`UPDATE_SAMPLE_DIVISOR` of the parameters' bytes plus :data:`UPDATE_SAMPLE_MIN` values per
tensor, instead of all of them. Without an optimizer, per-parameter post-accumulate-grad hooks record
:math:`\\|g\\|` on sampled steps (update ratios are then NaN).

References:
    Cochran (1977), Sampling Techniques, 3rd ed., ch. 2 (the variance of an estimated total).
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
#: a parameter of at most this many values is copied whole before a full step (its update ratio is exact):
#: every parameter of the zoo's and most of the calibration corpus's models, a transformer's biases and norms
EXACT_UPDATE_VALUES = 2 ** 16
#: the least sample of a larger one: relative sd of its squared update norm about sqrt(2/k) = 1.1 % for a dense
#: update (module doc); 2^16 kept 84 x 2^16 values of a 134M Llama-style model (+50 MiB with their indices)
UPDATE_SAMPLE_MIN = 2 ** 14
#: a larger parameter keeps n / UPDATE_SAMPLE_DIVISOR of its n values (1.6 % of its bytes): an embedding whose
#: batch touches 64 of 50257 rows still has about 600 sampled values moving per step at GPT-2's size
UPDATE_SAMPLE_DIVISOR = 64
#: the seed of the sampled values' indices (drawn once per parameter, the same at every full step)
UPDATE_SAMPLE_SEED = 26


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


def update_sample(numel: int, seed: int, device=None) -> torch.Tensor | None:
    """The indices of the values of a flattened parameter of ``numel`` values whose update is measured, or
    ``None`` when all of them are (at most :data:`EXACT_UPDATE_VALUES`): ``max(UPDATE_SAMPLE_MIN, numel //
    UPDATE_SAMPLE_DIVISOR)`` indices drawn uniformly with replacement from a generator seeded with ``seed``,
    sorted (reads in memory order), int32 where they fit."""
    if numel <= EXACT_UPDATE_VALUES:
        return None
    k = max(UPDATE_SAMPLE_MIN, numel // UPDATE_SAMPLE_DIVISOR)
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(numel, (k,), generator=gen).sort().values
    return idx.to(torch.int32 if numel < 2 ** 31 else torch.int64).to(device)


def update_norm_squared(before: torch.Tensor, after: torch.Tensor, sample: torch.Tensor | None) -> torch.Tensor:
    """:math:`\\|\\Delta w\\|^2` of one parameter from its values ``before`` and ``after`` a step: exact for
    ``sample=None``, else the unbiased estimate of the module doc from the values at ``sample``
    (:func:`update_sample`). The reference the probe's fused path is tested against."""
    b, a = before.detach().reshape(-1), after.detach().reshape(-1)
    if sample is None:
        return (a - b).double().pow(2).sum()
    d = (a.index_select(0, sample) - b.index_select(0, sample)).double()
    return d.pow(2).sum() * (b.numel() / sample.numel())


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
        lookups = {id(m.weight) for m in model.modules() if isinstance(m, (nn.Embedding, nn.EmbeddingBag))}
        # the input layer's matrix: an embedding's rows are looked up, not weighed against input features
        self.first_matrix = next((i for i, p in enumerate(self.params) if p.dim() >= 2 and id(p) not in lookups),
                                 None)
        self.counts_steps = optimizer is not None
        self._before = None
        self._copy: tuple | None = None   # (parameter indices, buffers) reused by consecutive sampled steps
        self._samples: dict = {}          # parameter index -> (numel, update_sample indices or None)
        self._last_read = -1              # the last step whose gradients the optimizer's pre-hook saw
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
        if self.params and self._last_read >= 0:
            self.find_nonfinite(parameters=True)       # a gradient that turned NaN on the last, unsampled step
        self.params, self.optimizer, self._before, self._copy, self._samples = [], None, None, None, {}

    @torch.no_grad()
    def find_nonfinite(self, parameters: bool = False) -> None:
        """Unsampled steps read no gradient (module doc): at the first non-finite output, and on leaving,
        read the gradients still held once; a non-finite one is recorded at the last step whose optimizer
        step took them (:attr:`_last_read`; the parameter the backward met first, as on a sampled step).
        ``parameters`` (on leaving): else a non-finite parameter, at that step (the update that wrote it).
        One fused norm, this rank's shards (no collective); nothing when a gradient was already found."""
        nf = self.ctx.nonfinite
        if "gradient" in nf.first or self._last_read < 0 or not self.params:
            return
        names, params = self.names, self.params
        held = [i for i, p in enumerate(params) if p.grad is not None]
        if held:
            g = norms([sharding.local(params[i].grad, resolve=False) for i in held])
            nf.update_vector("gradient", ~torch.isfinite(g), self._last_read, [names[i] for i in held])
        if parameters and "gradient" not in nf.first and "parameter" not in nf.first:
            w = torch.stack(torch._foreach_norm([sharding.local(p.detach(), resolve=False) for p in params]))
            nf.update_vector("parameter", ~torch.isfinite(w), self._last_read, names)

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
        self._last_read = step
        if not ctx.schedule(step):       # nothing read (module doc: a NaN gradient shows one forward later)
            self._copy = None
            return
        params = self.params
        idx = [i for i, p in enumerate(params) if p.grad is not None]
        if not idx:
            return
        grads = [params[i].grad for i in idx]      # (no_grad: no detach needed)
        ps = [params[i] for i in idx]
        # gradient and weight norms: one fused _foreach_norm of what this rank holds; sharded (FSDP2/TP
        # DTensor) ones merged over their mesh (see monitor.sharding)
        both = sharding.global_norms(grads + ps, norms([sharding.local(t) for t in grads + ps]))
        k = len(idx)
        nf = ctx.nonfinite
        # on CPU the norms are read on the host (free, one read) and recorded as host rows (no kernel);
        # elsewhere a device register is updated and device rows recorded (no sync)
        host = both.tolist() if both.is_cpu else None
        if "gradient" not in nf.first and (host is None or not all(map(math.isfinite, host[:k]))):
            nf.update_vector("gradient", ~torch.isfinite(both[:k]), step, [self.names[i] for i in idx])
        if host is not None:
            w = self._record_host(step, idx, host[:k], host[k:])
        else:
            w = self._record(step, idx, both[:k], both[k:])
        if ctx.full_schedule(step):   # window statistics: sign agreement, update ratios (a copy, two passes)
            self._record_sign(step)
            self._before = (idx, self._copy_of(idx, self._sampled_values(idx)), w)

    def _sample_of(self, i: int, flat: torch.Tensor) -> torch.Tensor | None:
        """Parameter ``i``'s :func:`update_sample` for its (local) flattened values ``flat``, drawn once."""
        got = self._samples.get(i)
        if got is None or got[0] != flat.numel() or (got[1] is not None and got[1].device != flat.device):
            got = self._samples[i] = (flat.numel(), update_sample(flat.numel(), UPDATE_SAMPLE_SEED + i, flat.device))
        return got[1]

    def _sampled_values(self, idx: list) -> list:
        """The values of parameters ``idx`` whose update is measured (this rank's shard, flattened): all of a
        small one (a view: copied by :meth:`_copy_of`), the fixed sample of a large one (module doc)."""
        out = []
        for i in idx:
            flat = sharding.local(self.params[i]).reshape(-1)
            sample = self._sample_of(i, flat)
            out.append(flat if sample is None else flat.index_select(0, sample))
        return out

    def _copy_of(self, idx: list, values: list) -> list:
        """``values`` before the update, in buffers kept while consecutive steps are sampled (a fresh
        large tensor on CPU is a fresh mmap whose pages fault on first touch: see ``collectors.Scratch``)."""
        key = tuple(idx)
        if self._copy is not None and self._copy[0] == key:
            torch._foreach_copy_(self._copy[1], values)
        else:
            self._copy = (key, torch._foreach_mul(values, 1.0))   # one fused copy
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
        after = self._sampled_values(idx)
        torch._foreach_sub_(before, after)                          # in place: no second copy
        local = torch.stack(torch._foreach_norm(before))
        scale = [self._samples[i][0] / s.numel() if (s := self._samples[i][1]) is not None else 1.0 for i in idx]
        if any(c != 1.0 for c in scale):                            # sampled: n/k times the sampled sum of squares
            local = local * to_device(scale, local.dtype, local.device).sqrt()   # (no blocking copy on CUDA)
        dnorm = sharding.global_norms([self.params[i] for i in idx], local)
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
        self._pending[i] = (_norm(sharding.local(p.grad.detach(), resolve=False)) if ctx.schedule(ctx.step)
                            else None)           # not sampled: nothing read (module doc)

    def flush(self) -> None:
        """Fold gradient norms collected by the no-optimizer hooks (one backward) into the stats."""
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        step = self._pending_step
        self._last_read = step
        idx = sorted(i for i, v in pending.items() if v is not None)
        if not idx:
            return
        gnorm = torch.stack([pending[i] for i in idx])
        self.ctx.nonfinite.update_vector("gradient", ~torch.isfinite(gnorm), step, [self.names[i] for i in idx])
        if self.ctx.schedule(step) and self.params:
            ps = [self.params[i] for i in idx]
            wnorm = sharding.global_norms(ps, torch.stack(torch._foreach_norm([sharding.local(p.detach()) for p in ps])))
            gnorm = sharding.global_norms(ps, gnorm)      # (a gradient has its parameter's placements)
            self._record(step, idx, gnorm, wnorm)
            if self.ctx.full_schedule(step):
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
        local = sharding.local(g.detach()).flatten(1)
        signs = local.sign()                                         # per row: sum of signs, non-zero count
        rows = torch.stack([signs.sum(1), (local != 0).sum(1).to(signs.dtype)], 1)
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
