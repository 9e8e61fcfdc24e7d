"""The doctor's rules: pure functions ``rule(stats, thresholds) -> list[Finding]``.

Importing this package registers every rule in :data:`RULES` (in catalogue order).
"""
from impediments.doctor.rules import activations, batchnorm, gradients, inputs, loss, nonfinite, symmetry  # noqa: F401
from impediments.doctor.rules.base import RULES, Rule, missing, rule

__all__ = ["RULES", "Rule", "missing", "rule"]
