"""Where a model's forward cuts the autograd graph: the op, its kind and the user's ``file:line``.

The doctor's ``parameters_without_gradient`` names the modules that ran but got no gradient. To find
the call that cut them off, one forward runs under :class:`CutFinder`, a
:class:`~torch.overrides.TorchFunctionMode` that taints those modules' parameters and every tensor
computed from a tainted one. A call whose tainted input requires grad but whose result does not is
a cut, classified by mechanism:

* ``detach``: ``Tensor.detach()`` / ``detach_()`` / ``torch.detach``;
* ``data``: reading ``Tensor.data``;
* ``no_grad``: any op run while grad mode is off (a ``torch.no_grad()`` block or decorator);
* ``python_number``: ``.item()``, ``.tolist()``, ``.numpy()``, ``float()``/``int()`` of a tensor;
* ``integer``: a result of integer or bool dtype (``.long()``, ``.to(torch.int64)``, ``argmax``).

The first three can be neutralised while training (:mod:`impediments.fix.remedies.graph`): the cut
returns its input, or the op runs with grad mode on, and nothing else changes. The last two cannot:
a Python number or an integer tensor has no gradient to pass on, so the computation itself has to
be rewritten. Each cut carries its :class:`~impediments.fix.callsite.Site`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

from impediments.fix.callsite import Site, user_site

#: cuts a training run can neutralise without changing what the forward computes
NEUTRALISABLE = ("detach", "data", "no_grad")
_DATA_GETTER = torch._C.TensorBase.__dict__["data"]
_DETACH = ("detach", "detach_")
_NUMBER = ("item", "tolist", "numpy", "__float__", "__int__", "__index__")
#: what to edit, per kind of cut
ADVICE = {
    "detach": "remove `.detach()`",
    "data": "use the tensor itself instead of `.data`",
    "no_grad": "move this call out of the `torch.no_grad()` block (or decorator) it runs under",
    "python_number": "keep the value a tensor (no `.item()`/`.tolist()`/`float()`): a Python number has no "
                     "gradient, so this cannot be neutralised automatically; rewrite it with tensor ops",
    "integer": "keep the value floating point: an integer or bool tensor has no gradient, so this cannot be "
               "neutralised automatically (a rounding that must train needs a straight-through estimator)",
}


@dataclass(frozen=True)
class Cut:
    """One call that cut the graph: its ``kind`` (see the module docstring), ``op`` name and ``site``."""

    kind: str
    op: str
    site: Site

    @property
    def neutralisable(self) -> bool:
        return self.kind in NEUTRALISABLE

    def describe(self) -> str:
        """``<advice> at file:line`` and the source line."""
        text = self.site.text
        return f"{ADVICE[self.kind]} at {self.site.short()}" + (f":   {text}" if text else "")


def is_data_getter(func) -> bool:
    """Whether ``func`` is the ``Tensor.data`` getter (seen by a mode as a bound ``__get__``)."""
    return getattr(func, "__self__", None) is _DATA_GETTER


def op_name(func) -> str:
    if is_data_getter(func):
        return "data"
    return getattr(func, "__name__", type(func).__name__)


def classify(func, outputs: list) -> str | None:
    """The kind of cut a call is, given its outputs (None: not a cut by any known mechanism)."""
    name = op_name(func)
    if name in _DETACH:
        return "detach"
    if name == "data":
        return "data"
    if not torch.is_grad_enabled():
        return "no_grad"
    if name in _NUMBER:
        return "python_number"
    tensors = [t for t in outputs if isinstance(t, torch.Tensor)]
    if tensors and not any(t.is_floating_point() or t.is_complex() for t in tensors):
        return "integer"
    return None


class CutFinder(TorchFunctionMode):
    """Records the calls that cut the graph downstream of ``sources`` (see the module docstring).

    Args:
        sources: the tensors to taint (the parameters that got no gradient).

    Attributes:
        cuts: the cuts in forward order, each (kind, site) once.
    """

    def __init__(self, sources) -> None:
        super().__init__()
        self.tainted = {id(t): t for t in sources}    # strong references: no id reuse during the probe
        self.cuts: list[Cut] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        hit = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor) and id(t) in self.tainted]
        if not hit:
            return out
        outputs = tree_leaves(out)
        for t in outputs:
            if isinstance(t, torch.Tensor):
                self.tainted[id(t)] = t
        if any(t.requires_grad for t in hit) and not any(isinstance(t, torch.Tensor) and t.requires_grad
                                                         for t in outputs):
            kind = classify(func, outputs)
            site = user_site(func)
            if kind is not None and site is not None:
                cut = Cut(kind, op_name(func), site)
                if all((c.kind, c.site) != (cut.kind, cut.site) for c in self.cuts):
                    self.cuts.append(cut)
        return out


def find_cuts(model: torch.nn.Module, x, sources) -> list[Cut]:
    """The cuts one training-mode forward of ``model`` on ``x`` makes downstream of ``sources``."""
    with CutFinder(sources) as finder:
        model(x)
    return finder.cuts
