"""The catalogue of diagnosis codes: what each means, why it stops learning, where it is shown.

Every :class:`~impediments.doctor.Finding` carries one of these codes. The
``experiment`` names the module's experiment that demonstrates the mechanism
(``impediments reproduce <experiment>``).
"""
from __future__ import annotations

from dataclasses import dataclass

SEVERITIES = ("info", "warning", "error")
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}


@dataclass(frozen=True)
class Code:
    """One diagnosis: its name, one-line meaning, and the experiment that shows it."""

    name: str
    summary: str
    experiment: str
    reference: str


_ROWS = (
    ("dead_units", "ReLU-like units whose output was zero for every input seen",
     "dead_bias", "Lu et al. 2019, Dying ReLU and initialization; AUTOTRAINER (Zhang et al. 2021)"),
    ("saturated_units", "sigmoid/tanh-like units that spend most inputs in the zero-derivative region",
     "activations", "Glorot & Bengio 2010; DeepDiagnosis (Wardat et al. 2022)"),
    ("linear_regime", "activation inputs almost entirely in the near-linear region: the network is nearly linear",
     "depth_distributions", "Glorot & Bengio 2010"),
    ("vanishing_activations", "activation variance shrinking geometrically with depth",
     "depth_distributions", "Glorot & Bengio 2010; He et al. 2015"),
    ("exploding_activations", "activation variance growing geometrically with depth",
     "depth_distributions", "He et al. 2015; Zhang et al. 2019 (Fixup)"),
    ("vanishing_gradients", "gradients far too small across layers or overall",
     "glorot_he", "Hochreiter 1991; Glorot & Bengio 2010"),
    ("exploding_gradients", "gradients or updates far too large across layers or overall",
     "residual_limits", "Pascanu et al. 2013; Zhang et al. 2019 (Fixup)"),
    ("symmetric_units", "units of a layer with identical incoming weights: symmetry never broken",
     "zero_init", "Rumelhart, Hinton & Williams 1986; Goodfellow et al. 2016, sec. 8.4"),
    ("uncentered_inputs", "input means share a sign and are large relative to their std (zig-zag)",
     "zigzag", "LeCun, Bottou, Orr & Mueller 1998, Efficient BackProp"),
    ("unequal_input_scales", "input feature variances differ by orders of magnitude",
     "zigzag", "LeCun, Bottou, Orr & Mueller 1998, Efficient BackProp"),
    ("non_finite", "NaN or Inf appeared", "residual_limits", "Goodfellow et al. 2016, sec. 4.1"),
    ("bn_small_batch", "BatchNorm statistics estimated from too few values per channel",
     "small_batch_norms", "Wu & He 2018 (Group Normalization); Ioffe 2017 (Batch Renormalization)"),
    ("dropout_before_bn", "Dropout feeding a BatchNorm: variance shift between training and inference",
     "bn_dropout", "Li, Chen, Hu & Yang 2019"),
    ("bn_inference_mode_in_training", "BatchNorm normalizing with running statistics while the model trains",
     "frozen_bn_transfer", "Ioffe & Szegedy 2015; Keras 3 BatchNormalization docs"),
    ("weight_decay_with_bn", "L2 on weights that feed BatchNorm only changes the effective learning rate",
     "l2_with_bn", "van Laarhoven 2017"),
    ("diverging_loss", "the loss rose or became non-finite", "bn_learning_rates", "Goodfellow et al. 2016, sec. 8.1"),
    ("loss_plateau", "the loss did not fall", "glorot_he", "He et al. 2015; Glorot & Bengio 2010"),
)
CODES: dict[str, Code] = {row[0]: Code(*row) for row in _ROWS}


def check_code(code: str) -> str:
    """Return ``code`` if known, else raise a ValueError listing the valid codes."""
    if code not in CODES:
        raise ValueError(f"unknown diagnosis code {code!r}; valid: {', '.join(CODES)}")
    return code


def check_severity(severity: str) -> str:
    """Return ``severity`` if valid, else raise a ValueError listing the valid ones."""
    if severity not in SEVERITY_RANK:
        raise ValueError(f"unknown severity {severity!r}; valid: {', '.join(SEVERITIES)}")
    return severity
