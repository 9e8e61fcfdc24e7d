"""The doctor's rules: pure functions ``rule(stats, thresholds) -> list[Finding]``.

Importing this package registers every rule in :data:`RULES` (in catalogue order).
"""
from impediments.doctor.rules import activations, batchnorm, gradients, inputs, loss, nonfinite, symmetry  # noqa: F401
from impediments.doctor.rules import mode  # noqa: F401  (model left in eval, issue 12)
from impediments.doctor.rules import loop  # noqa: F401  (training-loop bugs, issue 18)
from impediments.doctor.rules import recurrent, residual  # noqa: F401  (through time, along the stream: issue 12)
from impediments.doctor.rules import head  # noqa: F401  (output head, loss and targets: issue 24)
from impediments.doctor.rules import init_scale  # noqa: F401  (the init scale at the first step: issue 25)
from impediments.doctor.rules import learning_rate, linearity  # noqa: F401  (rate too low, one affine map: issue 24)
from impediments.doctor.rules.base import RULES, Rule, missing, rule

__all__ = ["RULES", "Rule", "missing", "rule"]
