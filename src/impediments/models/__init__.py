"""Model builders with readable layer names: ``mlp``, ``cnn1d``, ``cnn2d``."""
from impediments.models.cnn import ToShape, cnn1d, cnn2d
from impediments.models.layers import ACTIVATION_MODULES, NORM_NAMES, activation, norm_layer
from impediments.models.mlp import ResidualBlock, hidden_block, mlp

__all__ = ["ACTIVATION_MODULES", "NORM_NAMES", "ResidualBlock", "ToShape", "activation", "cnn1d", "cnn2d",
           "hidden_block", "mlp", "norm_layer"]
