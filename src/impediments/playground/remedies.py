"""The playground's "Apply remedy": the fix registry's remedies, projected onto the page's settings.

Which remedies treat a code, and in which order, is written once, in
:mod:`impediments.fix.remedies.registry` (what ``impediments fix`` tries). The page can carry out
only some of them with its controls; :data:`PROJECTIONS` says how (a fix remedy name -> the settings
that do the same on the page's MLP). :func:`remedy_options` lists, for a finding, every remedy the page
can express that changes the current settings, in the fix's order, each on its own: run B is run A with
**one** remedy applied, so the student sees which change fixed it (and tries the next one to compare).
The activation is what the page's user studies, so the fix's activation swaps are not offered. Codes none
of whose remedies the page can express (training-loop bugs, BatchNorm put in eval mode, weight decay)
have nothing to apply.

One remedy is itself taken one step at a time: standardizing inputs is centring them, then dividing by
their spread; from raw inputs the page first centres them (``inputs="centred"``, the same scale), so raw
against centred isolates the sign of the inputs, the zig-zag's mechanism (LeCun et al. 1998, section 4.3).

Measured on digits, sigmoid, depth 3, width 64, SGD 0.1 (``saturated_units``: Glorot init from the init
slot, BatchNorm before the nonlinearity from the structure slot): test accuracy after 150 / 600 steps
0.34 / 0.51 with the too-large init, 0.10 / 0.61 with Glorot init alone (it first sits on the plateau),
0.93 / 0.97 with both.
"""
from __future__ import annotations

from collections.abc import Callable

from impediments.activations.catalog import taxonomy
from impediments.doctor.codes import CODES
from impediments.fix.remedies.registry import REMEDIES as FIX_REMEDIES
from impediments.fix.remedies.labels import label
from impediments.fix.remedies.registry import remedies_for
from impediments.playground.config import CHOICES, PlaygroundConfig


def _variance_preserving(c: PlaygroundConfig) -> dict:
    """He init for rectifiers (He et al. 2015), Glorot otherwise (Glorot & Bengio 2010), zero biases."""
    t = taxonomy(c.activation)
    rectifier = t is not None and t.family in ("rectifier", "leaky")
    return {"init": "he_normal" if rectifier else "glorot_normal", "bias": 0.0}


def _norm_before_activation(norm: str) -> Callable[[PlaygroundConfig], dict]:
    def project(c: PlaygroundConfig) -> dict:
        return {"norm": norm, "norm_position": "pre"} if c.norm == "none" else {}
    return project


def _norm_for_batchnorm(norm: str) -> Callable[[PlaygroundConfig], dict]:
    def project(c: PlaygroundConfig) -> dict:
        return {"norm": norm} if c.norm == "batch" else {}
    return project


def _activation_swap(old: tuple[str, ...], new: str) -> Callable[[PlaygroundConfig], dict]:
    def project(c: PlaygroundConfig) -> dict:
        return {"activation": new} if c.activation in old else {}
    return project


def _scaled_lr(c: PlaygroundConfig, factor: float) -> dict:
    """The offered learning rate nearest ``lr * factor`` on the far side (at most it when lowering, at least
    it when raising); nothing when no offered rate is that far."""
    target = c.lr * factor
    offered = [lr for lr in CHOICES["lr"] if (lr <= target if factor < 1 else lr >= target)]
    if not offered:
        return {}
    return {"lr": max(offered) if factor < 1 else min(offered)}


def _larger_batch(c: PlaygroundConfig) -> dict:
    larger = [b for b in CHOICES["batch_size"] if b >= 32 and b > c.batch_size]
    return {"batch_size": min(larger)} if c.batch_size < 32 and larger else {}


#: fix remedy name -> the page settings that carry it out (remedies absent here the page cannot express)
PROJECTIONS: dict[str, Callable[[PlaygroundConfig], dict]] = {
    "variance_preserving_init": _variance_preserving,
    "lsuv_init": lambda c: {"init": "lsuv", "bias": 0.0},                        # Mishkin & Matas 2016
    "glorot_init": lambda c: {"init": "glorot_normal", "bias": 0.0},
    "leaky_relu_swap": _activation_swap(("relu",), "leaky_relu"),
    "gelu_swap": _activation_swap(("relu",), "gelu"),
    "tanh_for_sigmoid": _activation_swap(("sigmoid",), "tanh"),
    "relu_for_sigmoid": _activation_swap(("sigmoid", "tanh"), "relu"),
    "batchnorm_before_activation": _norm_before_activation("batch"),             # Ioffe & Szegedy 2015
    "layernorm_before_activation": _norm_before_activation("layer"),
    "groupnorm_for_batchnorm": _norm_for_batchnorm("group"),                     # Wu & He 2018
    "layernorm_for_batchnorm": _norm_for_batchnorm("layer"),
    "larger_batch": _larger_batch,
    "dropout_after_batchnorm": lambda c: {"norm_position": "pre"},               # Li et al. 2019
    "standardize_inputs": lambda c: {"inputs": "centred" if c.inputs == "raw" else "standardized"},  # LeCun 1998
    **{r.name: (lambda c, f=r.fn.factor: _scaled_lr(c, f)) for r in FIX_REMEDIES.values() if hasattr(r.fn, "factor")},
}


def _changes(remedy, config: PlaygroundConfig) -> dict:
    project = PROJECTIONS.get(remedy.name)
    if project is None or remedy.slot == "activation":
        return {}
    return {k: v for k, v in project(config).items() if getattr(config, k) != v}


def remedy_options(code: str, config: PlaygroundConfig) -> list[dict]:
    """The remedies the page can apply for ``code`` in ``config``, one at a time, in the fix's order.

    Each is ``{"remedy": fix remedy name, "label": it in words, "changes": {setting: new value}}``; two fix
    remedies that change the settings the same way are offered once (the first).

    Raises:
        ValueError: for an unknown code (valid codes listed).
    """
    if code not in CODES:
        raise ValueError(f"unknown diagnosis code {code!r}; valid: {', '.join(CODES)}")
    options: list[dict] = []
    for remedy in remedies_for(code):
        changes = _changes(remedy, config)
        if changes and all(o["changes"] != changes for o in options):
            words = "centred inputs (standardizing's first step)" if changes == {"inputs": "centred"} else label(remedy.name)
            options.append({"remedy": remedy.name, "label": words, "changes": changes})
    return options


def remedy_changes(code: str, config: PlaygroundConfig, remedy: str | None = None) -> dict | None:
    """The settings that remedy ``remedy`` (default: the first of :func:`remedy_options`) changes to treat
    ``code`` in ``config``; ``None`` if the page can apply none (or not that one).

    Raises:
        ValueError: for an unknown code (valid codes listed).
    """
    options = remedy_options(code, config)
    chosen = [o for o in options if remedy is None or o["remedy"] == remedy]
    return chosen[0]["changes"] if chosen else None


def apply_remedy(code: str, config: PlaygroundConfig, remedy: str | None = None) -> PlaygroundConfig | None:
    """``config`` with one remedy for ``code`` applied (:func:`remedy_changes`), or ``None`` when none applies."""
    changes = remedy_changes(code, config, remedy)
    return config.replace(**changes) if changes else None
