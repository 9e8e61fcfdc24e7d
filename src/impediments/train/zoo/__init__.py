"""The doctor's zoo: named broken and healthy training setups, shared by the tests and the benchmarks.

    cases.py      :class:`Case`, :func:`zoo` and the model builders and inits the cases use
    loop_bugs.py  training-loop bugs injected into real loops, and their legitimate look-alikes
"""
from impediments.train.zoo.cases import (
    FAMILIES,
    LINEAR_TYPES,
    Case,
    FunctionalMLP,
    ResNet,
    case,
    digits_cnn,
    digits_mlp,
    init_weights,
    load_xy,
    mnist1d_cnn,
    sgd,
    zoo,
)
from impediments.train.zoo.loop_bugs import LOOK_ALIKES, LOOP_CODES, bug_setup, look_alike_setup, loop_cases

__all__ = ["FAMILIES", "LINEAR_TYPES", "LOOK_ALIKES", "LOOP_CODES", "Case", "FunctionalMLP", "ResNet", "bug_setup",
           "case", "digits_cnn", "digits_mlp", "init_weights", "load_xy", "look_alike_setup", "loop_cases",
           "mnist1d_cnn", "sgd", "zoo"]
