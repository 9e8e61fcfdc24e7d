"""The remedy for ``init_scale_too_large``: initialize the model at its own scale again.

A transformers model (a ``config`` and ``_init_weights``) gets its config's ``initializer_range`` (or
BART's ``init_std``) back to the config class's default and ``model.apply(model._init_weights)``,
its library's own init; any other model gets each layer's ``reset_parameters()``, PyTorch's default
init (Linear and Conv: :math:`U(-1/\\sqrt{\\text{fan\\_in}}, 1/\\sqrt{\\text{fan\\_in}})`, a variance
gain of 1/3; He et al. 2015, LeCun et al. 1998).
"""
from __future__ import annotations

from torch import nn

from impediments.fix.pieces import Pieces
from impediments.fix.remedies.base import Change, Context, NotApplicable, probe_model, with_model

#: the config fields that set a transformers model's init std
INIT_SCALE_KEYS = ("initializer_range", "init_std")


def _default_scale(config) -> dict[str, float]:
    """``{field: the config class's default}`` for each init-scale field ``config`` has."""
    try:
        defaults = type(config)().to_dict()
    except Exception:                    # a config class that cannot be built without arguments
        return {}
    return {k: defaults[k] for k in INIT_SCALE_KEYS
            if isinstance(getattr(config, k, None), float) and isinstance(defaults.get(k), float)}


def reinit_at_own_scale(model: nn.Module) -> str:
    """Re-initialize ``model`` in place at its own scale (module docstring); returns what was done."""
    config = getattr(model, "config", None)
    own = getattr(model, "_init_weights", None)
    if config is not None and callable(own):
        scale = _default_scale(config)
        for key, value in scale.items():
            setattr(config, key, value)
        model.apply(own)
        return "_init_weights" + (f" at {', '.join(f'{k}={v}' for k, v in scale.items())}" if scale else "")
    count = 0
    for m in model.modules():
        reset = getattr(m, "reset_parameters", None)
        if callable(reset) and any(True for _ in m.parameters(recurse=False)):
            reset()
            count += 1
    if not count:
        raise NotApplicable("no module with reset_parameters() or _init_weights to re-initialize")
    return f"reset_parameters() on {count} modules"


def model_own_init(pieces: Pieces, ctx: Context) -> Change:
    """The model's own init again: a transformers model's _init_weights at its default initializer_range,
    else each layer's reset_parameters() (PyTorch's default init)."""
    what = reinit_at_own_scale(probe_model(pieces, ctx.seed))
    new = with_model(pieces, reinit_at_own_scale)
    if what.startswith("_init_weights"):
        code = ("for key in ('initializer_range', 'init_std'):   # back to the config class's default\n"
                "    if hasattr(net.config, key):\n"
                "        setattr(net.config, key, getattr(type(net.config)(), key))\n"
                "net.apply(net._init_weights)")
    else:
        code = ("for m in net.modules():   # PyTorch's default init, U(-1/sqrt(fan_in), 1/sqrt(fan_in))\n"
                "    if hasattr(m, 'reset_parameters') and list(m.parameters(recurse=False)):\n"
                "        m.reset_parameters()")
    return Change(new, code, note=what)
