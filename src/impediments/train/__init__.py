"""Training loop, history and callback protocol."""
from impediments.train.callbacks import Callback
from impediments.train.fit import OPTIMIZERS, evaluate, fit, make_optimizer
from impediments.train.history import History

__all__ = ["OPTIMIZERS", "Callback", "History", "evaluate", "fit", "make_optimizer"]
