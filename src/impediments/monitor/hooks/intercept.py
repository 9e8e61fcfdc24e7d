"""Seeing every activation, functional calls included, without patching user code.

Two mechanisms, armed only for sampled forwards (:class:`Interceptor`):

* global module forward (pre-)hooks keep the stack of running modules of the watched model, so a
  call is attributed to the innermost module whose forward is running;
* a :class:`~torch.overrides.TorchFunctionMode` sees each call of a catalog activation function
  (``F.relu``, ``torch.relu``, ``x.relu()``, ``relu_``, ``torch.sigmoid``, ``F.gelu``, ...) and hands
  its input to the callback *before* the function runs, so in-place variants are read correctly,
  and its output after.

A call inside an activation module (``nn.ReLU``) is named after the module (``hidden1.act``); any
other call is named ``"{innermost module}/{kind}#{k}"`` with ``k`` counting calls of that kind in
that module during one forward, from 0 (``"layer1.0/relu#1"`` is the second ReLU of ``layer1.0``;
the root module's name is ``""``). Measured costs are in ``benchmarks/overhead.py``.

A *light* forward (``arm(..., full=False)``: the dense steps of ``watch(every=1)``) tracks no gates and,
when the last full forward showed that module hooks alone see the same activations (every catalog call
was the first one inside an activation module, on the module's own input and returning its output,
and no activation was called as a function elsewhere), arms no mode at all: an activation module's
input and output come from the module hooks (:attr:`Interceptor.modules_suffice`). The mode costs a
Python call per torch function (measured: 1.1x an MLP step on its own).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from impediments.activations import module_kind as catalog_module_kind
from impediments.activations.catalog import MODULE_TYPES

_FUNCTIONS: dict[str, list] = {
    "relu": [F.relu, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_, F.relu_],
    "sigmoid": [torch.sigmoid, torch.sigmoid_, torch.Tensor.sigmoid, torch.Tensor.sigmoid_, F.sigmoid],
    "tanh": [torch.tanh, torch.tanh_, torch.Tensor.tanh, torch.Tensor.tanh_, F.tanh],
    "gelu": [F.gelu], "silu": [F.silu], "leaky_relu": [F.leaky_relu, F.leaky_relu_, torch._C._nn.leaky_relu_],
    "elu": [F.elu, F.elu_, torch._C._nn.elu_], "softplus": [F.softplus], "hardtanh": [F.hardtanh, F.hardtanh_],
    "selu": [F.selu, torch.selu, torch.selu_], "softsign": [F.softsign], "hardsigmoid": [F.hardsigmoid],
    "relu6": [F.relu6], "celu": [F.celu], "mish": [F.mish],
}
#: torch function object -> activation catalog name (the mapping owned by the monitor)
FUNCTION_KINDS: dict = {f: kind for kind, fs in _FUNCTIONS.items() for f in fs}

T = torch.Tensor
#: elementwise products: an activation output multiplied by another tensor here is a gate
PRODUCTS = frozenset({torch.mul, T.mul, T.mul_, T.__mul__, T.__rmul__, T.__imul__, torch.addcmul})
#: elementwise ops that, with a number, keep an output "the activation's" (``0.5 * (1 + tanh(u))``)
SCALAR_OPS = frozenset({torch.add, T.add, T.__add__, T.__radd__, torch.sub, T.sub, T.__sub__, T.__rsub__, torch.rsub,
                        T.__mul__, T.__rmul__, torch.mul, T.mul, T.__truediv__, torch.div, T.div,
                        # views and reshapes keep it too (``x * s[:, :, None, None]``, ``s.view(b, c, 1, 1)``)
                        T.__getitem__, T.view, T.reshape, torch.reshape, T.unsqueeze, torch.unsqueeze, T.expand,
                        T.expand_as, T.flatten, torch.flatten, T.squeeze, torch.squeeze, T.permute, T.transpose,
                        torch.transpose, T.contiguous, T.to, T.type_as})

#: ``nn`` activation class -> kind, from the one table in the activation catalogue
_MODULE_KINDS = {cls: kind for kind, cls in MODULE_TYPES.items()}


def module_kind(module: nn.Module) -> str | None:
    """Catalog name of an activation module (``impediments.activations.module_kind``), or, for the ReLU-like
    modules outside the catalogue (ReLU6, CELU, Mish), their kind; None for anything else."""
    kind = catalog_module_kind(module)
    if kind is not None:
        return kind
    for cls in type(module).__mro__:
        if cls in _MODULE_KINDS:
            return _MODULE_KINDS[cls]
    return None


def _can_gate(kind: str) -> bool:
    """The kind can be a gate (bounded output), per the one taxonomy in the activation catalog."""
    from impediments.activations.catalog import taxonomy

    t = taxonomy(kind)
    return bool(t and t.gate)


class _Mode(TorchFunctionMode):
    def __init__(self, owner: "Interceptor") -> None:
        super().__init__()
        self.owner = owner

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        kind = FUNCTION_KINDS.get(func)
        if kind is None and self.owner.outputs and (func in PRODUCTS or func in SCALAR_OPS):
            return self.owner.elementwise(func, args, kwargs)
        if kind is None or not args or not isinstance(args[0], torch.Tensor):
            return func(*args, **kwargs)
        token = self.owner.before(kind, args[0])
        out = func(*args, **kwargs)
        if token is not None:
            self.owner.after(token, out, kind)
        return out


def remove_mode(mode: TorchFunctionMode) -> None:
    """Take ``mode`` off the torch-function mode stack even when another mode was pushed above it since
    (those stay): ``__exit__`` would pop the top one. Under Lightning's DDP the loop probe arms its mode in
    the post-hook of the re-entrant ``self(x)``, above this one, before the outer forward ends."""
    if mode not in torch.overrides._get_current_function_mode_stack():
        return
    above = []
    while (top := torch._C._pop_torch_function_stack()) is not mode:
        above.append(top)
    for m in reversed(above):
        torch._C._push_on_torch_function_stack(m)


class Interceptor:
    """Module stack + activation calls for one model; ``arm()``/``disarm()`` around sampled forwards.

    Args:
        names: ``{id(module): name}`` of the watched model's modules.
        kinds: ``{id(module): catalog kind}`` of its activation modules.
        on_activation: ``f(name, kind, x_in) -> token`` called before an activation runs and
            ``on_activation_out(token, out)`` after it.
        on_module_pre / on_module_post: ``f(name, module, args)`` / ``f(name, module, args, out)``.
    """

    def __init__(self, names, kinds, on_activation, on_activation_out, on_module_pre, on_module_post) -> None:
        self.names, self.kinds = names, kinds
        self.on_activation, self.on_activation_out = on_activation, on_activation_out
        self.on_module_pre, self.on_module_post = on_module_pre, on_module_post
        self.stack: list[tuple[int, str]] = []
        self.calls: dict[tuple[str, str], int] = {}
        self.seen_in_module: set[int] = set()
        #: ``{id(tensor): (tensor, activation name, kind)}``: activation outputs of this forward (and
        #: their affine images with numbers), held for the forward only so ids stay unique
        self.outputs: dict[int, tuple] = {}
        #: ``f(name)`` when an activation's output multiplies another tensor (a gate); None: not tracked
        self.on_gate = None
        #: the last full forward saw every activation through activation modules (see the module doc)
        self.modules_suffice = False
        self.full = True
        self._mode: _Mode | None = None
        self._armed = False
        self._handles: list = []
        self._hooks: tuple = (self._pre, self._post)
        self._suffice = True
        self._mod_io: dict[int, list] = {}   # full forwards: activation module -> [its input, first call's in, out]
        self._tokens: dict[int, list] = {}   # module-only forwards: activation module -> pending tokens

    armed = property(lambda self: self._armed)

    def arm(self, root: nn.Module, args, full: bool = True) -> None:
        """Start intercepting one forward of ``root`` (called from its pre-hook). Idempotent.

        ``full=False``: a light forward (no gate tracking; no mode when :attr:`modules_suffice`).
        """
        if self._armed:
            return
        self.stack, self.calls, self.seen_in_module, self.outputs = [], {}, set(), {}
        self._mod_io, self._tokens, self._suffice = {}, {}, True
        self.full = full
        modules_only = not full and self.modules_suffice
        self._hooks = (self._pre_modules, self._post_modules) if modules_only else (self._pre, self._post)
        if not self._handles:
            reg = torch.nn.modules.module
            self._handles = [reg.register_module_forward_pre_hook(self._hook_pre),
                             reg.register_module_forward_hook(self._hook_post, always_call=True)]
        self._armed = True
        if not modules_only:
            self._mode = _Mode(self)
            self._mode.__enter__()
        self._hooks[0](root, args)   # the global pre-hook was registered too late to see the root itself

    def disarm(self, keep_hooks: bool = False) -> None:
        """Stop intercepting; safe to call when not armed (also after an exception in forward).

        ``keep_hooks``: leave the global module hooks registered, inert until the next :meth:`arm`
        (when the next forward is sampled too: registering them costs more than an inert call).
        """
        if self._armed and self.full and self._mode is not None:
            self.modules_suffice = self._suffice and not self.stack   # (a forward that raised proves nothing)
        self._armed = False
        mode, self._mode = self._mode, None
        if mode is not None:
            remove_mode(mode)
        if not keep_hooks:
            for h in self._handles:
                h.remove()
            self._handles = []
        self.stack = []
        self.outputs = {}
        self._mod_io, self._tokens = {}, {}

    # --------------------------------------------------------------------- hooks
    def _hook_pre(self, module, args):
        return self._hooks[0](module, args) if self._armed else None

    def _hook_post(self, module, args, out):
        return self._hooks[1](module, args, out) if self._armed else None

    def _enter(self, module) -> tuple[int, str | None]:
        """A watched module starts: pushed on the module stack; ``(id, name)``, name None if not watched."""
        mid = id(module)
        name = self.names.get(mid)
        if name is not None:
            self.stack.append((mid, name))
        return mid, name

    def _leave(self, module) -> tuple[int, str | None]:
        """A watched module ends: popped from the module stack; ``(id, name)``, name None if not watched."""
        mid = id(module)
        name = self.names.get(mid)
        if name is not None and self.stack and self.stack[-1][0] == mid:
            self.stack.pop()
        return mid, name

    def _pre(self, module, args):
        mid, name = self._enter(module)
        if name is None:
            return None
        if mid in self.kinds:            # what module hooks alone would see: its input (checked in _post)
            self._mod_io[mid] = [args[0] if args else None, None, None]
        with torch._C.DisableTorchFunction():   # our own reductions bypass the mode
            self.on_module_pre(name, module, args)
        return None

    def _post(self, module, args, out):
        mid, name = self._leave(module)
        if name is None:
            return None
        self.seen_in_module.discard(mid)
        io = self._mod_io.pop(mid, None)
        if io is not None and not (io[0] is not None and io[1] is io[0] and io[2] is out):
            self._suffice = False        # its catalog call saw other tensors than the module's (or none ran)
        with torch._C.DisableTorchFunction():
            self.on_module_post(name, module, args, out)
        return None

    def _pre_modules(self, module, args):
        """Module-only forwards: an activation module's input goes to the callback before it runs."""
        mid, name = self._enter(module)
        if name is None:
            return None
        with torch._C.DisableTorchFunction():
            self.on_module_pre(name, module, args)
            kind = self.kinds.get(mid)
            if kind is not None and args and isinstance(args[0], torch.Tensor):
                self._tokens.setdefault(mid, []).append(self.on_activation(name, kind, args[0]))
        return None

    def _post_modules(self, module, args, out):
        mid, name = self._leave(module)
        if name is None:
            return None
        with torch._C.DisableTorchFunction():
            pending = self._tokens.get(mid)
            if pending:
                token = pending.pop()
                if token is not None and isinstance(out, torch.Tensor):
                    self.on_activation_out(token, out)
            self.on_module_post(name, module, args, out)
        return None

    def before(self, kind: str, x: torch.Tensor):
        """Name the call and hand its input to the callback; returns a token for :meth:`after`."""
        mid, mname = self.stack[-1] if self.stack else (0, "")
        if mid in self.kinds:            # inside an activation module: its first catalog call is it
            if mid in self.seen_in_module:
                return None
            self.seen_in_module.add(mid)
            io = self._mod_io.get(mid)
            if io is not None:
                io[1] = x
            return self.on_activation(mname, self.kinds[mid], x)
        self._suffice = False            # an activation called as a function: module hooks would miss it
        k = self.calls.get((mname, kind), 0)
        self.calls[(mname, kind)] = k + 1
        return self.on_activation(f"{mname}/{kind}#{k}", kind, x)

    def after(self, token, out, kind: str = "") -> None:
        if self.stack and (io := self._mod_io.get(self.stack[-1][0])) is not None and io[2] is None:
            io[2] = out
        if isinstance(out, torch.Tensor):
            self.on_activation_out(token, out)
            if (self.full and self.on_gate is not None and isinstance(token, tuple)
                    and isinstance(token[0], str)):
                self.outputs[id(out)] = (out, token[0], kind)

    def activation_of(self, tensor) -> str | None:
        """The activation whose output ``tensor`` is in this full forward (itself, a view, or its image under a
        number: ``2 * sigmoid(z) - 1``), else None; asked of the model's output before :meth:`disarm`."""
        hit = self.outputs.get(id(tensor)) if isinstance(tensor, torch.Tensor) else None
        return hit[1] if hit is not None and hit[0] is tensor else None

    def elementwise(self, func, args, kwargs):
        """Run a product or scalar op seen while activation outputs are tracked; name gates.

        A tracked output (or a view of it) times another tensor is a gate (squeeze-excitation ``x * sigmoid(s)``, SwiGLU
        ``silu(a) * b``, ``o * tanh(c)``). When both factors are activation outputs, the gate is the one
        whose kind can be a gate (:data:`impediments.activations.catalog.TAXONOMY`), else the smaller
        (broadcast) one. With a number, the result stays the activation's (``0.5 * (1 + tanh(u))``).
        """
        out = func(*args, **kwargs)
        with torch._C.DisableTorchFunction():
            tensors = [a for a in args[:3] if isinstance(a, torch.Tensor)]
            tracked = [self.outputs[id(t)] for t in tensors if id(t) in self.outputs]
            if not tracked:
                return out
            if func in PRODUCTS and len(tensors) >= 2 and (func is not torch.addcmul or len(tensors) == 3):
                factors = tensors[1:] if func is torch.addcmul else tensors
                mine = [self.outputs[id(t)] for t in factors if id(t) in self.outputs]
                if len(mine) == 1 and len(factors) >= 2:
                    self.on_gate(mine[0][1])
                elif len(mine) >= 2:
                    gates = [m for m in mine if _can_gate(m[2])] or [min(mine, key=lambda m: m[0].numel())]
                    for m in gates:
                        self.on_gate(m[1])
            elif len(tensors) == 1 and isinstance(out, torch.Tensor):
                self.outputs[id(out)] = (out, tracked[0][1], tracked[0][2])
        return out
