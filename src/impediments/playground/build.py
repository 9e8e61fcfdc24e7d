"""Build the data, model and optimizer of a :class:`~impediments.playground.config.PlaygroundConfig`.

Only library code runs here: :func:`impediments.load_dataset`, :func:`impediments.mlp`,
:func:`impediments.init.initialize` / :func:`~impediments.init.lsuv` and the optimizers of
:mod:`impediments.train.fit`.
"""
from __future__ import annotations

import functools

import torch
from torch import nn

from impediments.data.datasets import Dataset, load_dataset
from impediments.init import initialize, lsuv
from impediments.models.mlp import mlp
from impediments.playground.config import PlaygroundConfig
from impediments.train.fit import make_optimizer

#: weight std of the deeplearning.ai page's "too small" and "too large" inits
TOO_SMALL_STD, TOO_LARGE_STD = 0.01, 2.0
#: SGD momentum of the "momentum" optimizer choice
MOMENTUM = 0.9


@functools.lru_cache(maxsize=6)
def dataset(name: str, standardized: bool) -> Dataset:
    """The dataset (cached: the page switches back and forth)."""
    return load_dataset(name, seed=0, standardize=standardized)


def build_model(config: PlaygroundConfig, data: Dataset) -> nn.Sequential:
    """The MLP with the chosen init applied (seeded by ``config.seed``)."""
    torch.manual_seed(config.seed)
    model = mlp(data.in_features, data.num_classes, width=config.width, depth=config.depth,
                activation=config.activation, norm=None if config.norm == "none" else config.norm,
                norm_position=config.norm_position, dropout=config.dropout)
    apply_init(model, config, data)
    return model


def apply_init(model: nn.Module, config: PlaygroundConfig, data: Dataset) -> None:
    """Initialise every Linear layer as ``config.init`` and ``config.bias`` say."""
    name, bias, seed = config.init, config.bias, config.seed
    if name == "torch_default":
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, nn.Linear) and m.bias is not None:
                    m.bias.fill_(bias)
    elif name == "zero":
        initialize(model, "zeros", bias=bias, seed=seed)
    elif name == "too_small":
        initialize(model, "normal", std=TOO_SMALL_STD, bias=bias, seed=seed)
    elif name == "too_large":
        initialize(model, "normal", std=TOO_LARGE_STD, bias=bias, seed=seed)
    elif name == "lsuv":
        lsuv(model, data.X_train[:256], bias=bias, seed=seed)
    else:
        initialize(model, name, bias=bias, seed=seed)


def build_optimizer(config: PlaygroundConfig, params) -> torch.optim.Optimizer:
    """The optimizer ``config.optimizer`` over ``params`` at ``config.lr``."""
    if config.optimizer == "momentum":
        return make_optimizer("sgd", params, lr=config.lr, momentum=MOMENTUM)
    return make_optimizer(config.optimizer, params, lr=config.lr)
