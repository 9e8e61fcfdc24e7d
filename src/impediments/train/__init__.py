"""The training setup, the one training loop, ``fit``, its history and callback protocol."""
from impediments.train.callbacks import Callback
from impediments.train.fit import OPTIMIZERS, evaluate, fit, make_optimizer
from impediments.train.history import History
from impediments.train.loop import build, iterate_steps, plain_step, run_steps, train_mode
from impediments.train.setup import SCHEDULER_INTERVALS, Setup, default_optimizer

__all__ = ["OPTIMIZERS", "SCHEDULER_INTERVALS", "Callback", "History", "Setup", "build", "default_optimizer",
           "evaluate", "fit", "iterate_steps", "make_optimizer", "plain_step", "run_steps", "train_mode"]
