"""The first NaN/Inf of a run: exact step, and the first module or call that produced it.

Every step, the output and the loss are checked on the device, and the gradient norms on sampled steps
and wherever they come free (``clip_grad_norm_``'s total; between sampled steps a NaN gradient reaches
the next output through its parameter, and the gradients still held are read then and on leaving:
:mod:`~impediments.monitor.probes.params`); for each kind a register ``[step, code]`` keeps the first
failure, updated with ``torch.where`` (no host sync):

.. math:: r \\leftarrow \\begin{cases} (s, c) & r_0 < 0 \\wedge \\text{bad} \\\\ r & \\text{otherwise} \\end{cases}

Within one step the causal order decides: input, forward (activation/module), output, loss,
gradient, parameter. For the gradient the origin is the parameter the backward pass meets first,
i.e. the last bad one in registration order.

Localisation on CPU (where reading a flag costs nothing): the first training forward whose output
is non-finite is replayed once under interception with the same inputs (and, for models with
Dropout, the RNG state saved before that forward); buffers and the RNG are restored afterwards, so
training is unchanged. A forward that modifies its own input in place before the NaN appears can
be replayed inexactly; the first module output or
activation call (in execution order) holding NaN/Inf is recorded. On accelerators the layer comes
from the non-finite counts of sampled steps (exact when the failing step was sampled).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from impediments.monitor.hooks.intercept import Interceptor, module_kind
from impediments.monitor.state.moments import to_device


@dataclass
class NonFinite:
    """First NaN/Inf: the step and where (``kind`` is loss, activation, gradient, parameter or input)."""

    step: int
    where: str
    kind: str

PRIORITY = {"input": 0, "localised": 1, "activation": 2, "output": 3, "loss": 4, "gradient": 5, "parameter": 6}


class FirstNonFinite:
    def __init__(self) -> None:
        self.reg: dict[str, torch.Tensor] = {}
        self.where: list[str] = []
        self._code: dict[str, int] = {}
        self.host: tuple[int, str, str] | None = None   # (step, kind, where) from localisation
        self.first: dict[str, tuple[int, int]] = {}        # kind -> (step, code) read on the host (CPU)
        self._codes_on_device: dict = {}

    @property
    def forward_found(self) -> bool:
        return self.host is not None

    def code(self, where: str) -> int:
        c = self._code.get(where)
        if c is None:
            c = self._code[where] = len(self.where)
            self.where.append(where)
        return c

    def _set(self, kind: str, bad: torch.Tensor, step: int, code) -> None:
        if bad.device.type == "cpu":   # no device to wait for: read the flag on the host (cheapest)
            if kind not in self.first and bool(bad):
                self.first[kind] = (step, int(code))
            return
        reg = self.reg.get(kind)
        code = torch.full((), code, dtype=torch.int64, device=bad.device) if isinstance(code, int) else code
        new = torch.stack([torch.full((), step, dtype=torch.int64, device=bad.device), code.to(torch.int64)])
        if reg is None:
            reg = torch.full((2,), -1, dtype=torch.int64, device=bad.device)
        self.reg[kind] = torch.where((reg[0] < 0) & bad, new.to(torch.int64), reg)

    def update(self, kind: str, bad: torch.Tensor, step: int, where: str) -> None:
        if kind in self.first:
            return
        self._set(kind, bad, step, self.code(where))

    def update_forward(self, bad, step: int, where: str) -> None:
        """``bad``: the non-finite count of a module/activation output (int on CPU, else a tensor)."""
        if "activation" in self.first:
            return
        if isinstance(bad, int):
            if bad:
                self.first["activation"] = (step, self.code(where))
            return
        self._set("activation", bad > 0, step, self.code(where))

    def step_of(self, kind: str) -> int | None:
        """First step of ``kind`` (syncs), or None."""
        if kind in self.first:
            return self.first[kind][0]
        reg = self.reg.get(kind)
        s = int(reg[0]) if reg is not None else -1
        return s if s >= 0 else None

    def update_vector(self, kind: str, bad: torch.Tensor, step: int, wheres: list[str]) -> None:
        """``bad[i]`` for ``wheres[i]``; the last bad one is recorded (the backward pass meets it first)."""
        if kind in self.first:
            return
        if bad.device.type == "cpu":
            if bool(bad.any()):
                last = max(i for i, b in enumerate(bad.tolist()) if b)
                self.first[kind] = (step, self.code(wheres[last]))
            return
        key = (tuple(wheres), str(bad.device))
        if key not in self._codes_on_device:   # built once: a host->device copy per step would wait
            self._codes_on_device[key] = to_device([self.code(w) for w in wheres], torch.int64, bad.device)
        codes = self._codes_on_device[key]
        last = (bad.long() * torch.arange(1, len(wheres) + 1, device=bad.device)).argmax()
        self._set(kind, bad.any(), step, codes.gather(0, last.view(1)).squeeze(0))   # not codes[last]: .item()

    def result(self):
        """``(step, kind, where)`` of the first non-finite value, or ``None`` (syncs)."""
        cands = []
        if self.host is not None:
            s, kind, where = self.host
            cands.append((s, PRIORITY["input" if kind == "input" else "localised"], kind, where))
        regs = [(k, torch.tensor(v)) for k, v in self.first.items()] + list(self.reg.items())
        for kind, reg in regs:
            s, c = reg.cpu().tolist()
            if s >= 0:
                out_kind = "activation" if kind == "output" else kind
                cands.append((s, PRIORITY[kind], out_kind, self.where[c]))
        if not cands:
            return None
        s, _, kind, where = min(cands)
        return s, kind, where

    def merge(self, other: "FirstNonFinite") -> "FirstNonFinite":
        mine, theirs = self.result(), other.result()
        best = min([r for r in (mine, theirs) if r is not None], default=None,
                   key=lambda r: (r[0], PRIORITY.get(r[1], 9)))
        self.reg, self.where, self._code, self.first = {}, [], {}, {}
        self.host = best
        return self

    def state(self) -> dict:
        return {"result": self.result()}

    @classmethod
    def from_state(cls, d: dict) -> "FirstNonFinite":
        f = cls()
        f.host = tuple(d["result"]) if d.get("result") else None
        return f

    def tensors(self) -> int:
        return len(self.reg)

    def stats(self) -> NonFinite | None:
        """The first non-finite value as :class:`NonFinite` (syncs), or None."""
        first = self.result()
        return NonFinite(step=first[0], kind=first[1], where=first[2]) if first else None


def localise(nonfinite: FirstNonFinite, included, model, root_args, rng_state, step: int) -> None:
    """Replay the forward of ``step`` on CPU to name where its first NaN/Inf appeared (see module doc)."""
    args, kwargs = root_args
    leaves = [t for t in torch.utils._pytree.tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
    if any(t.is_floating_point() and not bool(torch.isfinite(t).all()) for t in leaves):
        nonfinite.host = (step, "input", "input")
        return
    found: list[str] = []

    def check(name, out):
        if found:
            return
        for t in torch.utils._pytree.tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.is_floating_point() and not bool(torch.isfinite(t).all()):
                found.append(name)
                return

    names = {id(m): n for n, m in model.named_modules() if included(n)}
    kinds = {id(m): k for m in model.modules() if id(m) in names and (k := module_kind(m)) is not None}
    icpt = Interceptor(names, kinds, lambda name, kind, x: name, check, lambda *a: None,
                       lambda name, module, a, out: check(name, out))
    # The replay runs on clones of the buffers, swapped in and back out: the originals are never
    # written, so their autograd versions (BatchNorm saves running_mean/var for backward) stay intact.
    buffers = [(m, key, b) for m in model.modules() for key, b in m._buffers.items() if b is not None]
    for m, key, b in buffers:
        m._buffers[key] = b.detach().clone()
    after_rng = torch.get_rng_state()
    try:
        if rng_state is not None:
            torch.set_rng_state(rng_state)
        with torch.no_grad():
            icpt.arm(model, args)
            out = model.forward(*args, **kwargs)
        check("", out)
    finally:
        icpt.disarm()
        for m, key, b in buffers:
            m._buffers[key] = b
        torch.set_rng_state(after_rng)
    if found:
        nonfinite.host = (step, "activation", found[0])
