"""The playground's "Apply remedy": a doctor code -> the configuration change that treats it.

Each change is the first remedy the module teaches for the mechanism (the finding's ``remedy``
text says the same in words); codes the playground cannot act on map to ``None``. This is a
small, fixed table for the page (codes it cannot act on, such as training-loop bugs, are absent);
the full ``impediments fix`` is a separate tool.
"""
from __future__ import annotations

from impediments.doctor.codes import CODES
from impediments.playground.config import PlaygroundConfig

_RELU_LIKE = ("relu", "leaky_relu", "elu", "selu", "gelu", "silu", "softplus")


def _dead_units(c: PlaygroundConfig) -> dict:
    return {"init": "he_normal", "bias": 0.0}                          # He et al. 2015; Lu et al. 2019


def _saturated_units(c: PlaygroundConfig) -> dict:
    """Glorot init (Glorot & Bengio 2010), and BatchNorm before the nonlinearity when there is no norm
    (Ioffe & Szegedy 2015): both named by the finding's remedy. Measured on digits, sigmoid, depth 3, width
    64, SGD 0.1: test accuracy after 150 / 600 steps 0.34 / 0.51 (too large), 0.10 / 0.61 (Glorot alone,
    which first sits on the plateau), 0.93 / 0.97 (Glorot + BatchNorm)."""
    changes = {"init": "glorot_normal", "bias": 0.0}
    if c.norm == "none":
        changes.update(norm="batch", norm_position="pre")
    return changes


def _depth_scaled(c: PlaygroundConfig) -> dict:
    """Variance-preserving init for the activation (He for ReLU-like, Glorot otherwise)."""
    return {"init": "he_normal" if c.activation in _RELU_LIKE else "glorot_normal", "bias": 0.0}


def _symmetric(c: PlaygroundConfig) -> dict:
    return _depth_scaled(c)


def _inputs(c: PlaygroundConfig) -> dict:
    return {"inputs": "standardized"}                                   # LeCun et al. 1998


def _small_batch(c: PlaygroundConfig) -> dict:
    return {"norm": "group"}                                            # Wu & He 2018


def _dropout_before_bn(c: PlaygroundConfig) -> dict:
    return {"norm_position": "pre"}                                     # Li et al. 2019: dropout after the last BN


def _diverging(c: PlaygroundConfig) -> dict:
    lrs = [lr for lr in (0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.05, 0.1) if lr <= c.lr / 3]
    return {"lr": lrs[-1] if lrs else 0.0001}


def _plateau(c: PlaygroundConfig) -> dict:
    if c.norm == "none" and c.depth >= 3:
        return {"norm": "batch", "norm_position": "pre"}                # Ioffe & Szegedy 2015
    return _depth_scaled(c)


REMEDIES = {
    "dead_units": _dead_units,
    "saturated_units": _saturated_units,
    "linear_regime": _depth_scaled,
    "vanishing_activations": _depth_scaled,
    "exploding_activations": _depth_scaled,
    "vanishing_gradients": _depth_scaled,
    "exploding_gradients": _diverging,
    "symmetric_units": _symmetric,
    "uncentered_inputs": _inputs,
    "unequal_input_scales": _inputs,
    "non_finite": _diverging,
    "bn_small_batch": _small_batch,
    "dropout_before_bn": _dropout_before_bn,
    "bn_inference_mode_in_training": None,
    "weight_decay_with_bn": None,
    "diverging_loss": _diverging,
    "loss_plateau": _plateau,
}
assert set(REMEDIES) <= set(CODES), "remedies only for the doctor's codes"


def remedy_changes(code: str, config: PlaygroundConfig) -> dict | None:
    """The settings to change to treat ``code`` in ``config``, or ``None`` if there is nothing to change.

    Raises:
        ValueError: for an unknown code (valid codes listed).
    """
    if code not in CODES:
        raise ValueError(f"unknown diagnosis code {code!r}; valid: {', '.join(CODES)}")
    rule = REMEDIES.get(code)
    if rule is None:
        return None
    changes = {k: v for k, v in rule(config).items() if getattr(config, k) != v}
    return changes or None


def apply_remedy(code: str, config: PlaygroundConfig) -> PlaygroundConfig | None:
    """``config`` with the remedy for ``code`` applied, or ``None`` when it changes nothing."""
    changes = remedy_changes(code, config)
    return config.replace(**changes) if changes else None
