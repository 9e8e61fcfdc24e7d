"""Build the data, model and optimizer of a :class:`~impediments.playground.config.PlaygroundConfig`.

Only library code runs here: :func:`impediments.load_dataset`, :func:`impediments.mlp`,
:func:`impediments.init.initialize` / :func:`~impediments.init.lsuv` and the optimizers of
:mod:`impediments.train.fit`.
"""
from __future__ import annotations

import dataclasses
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


@functools.lru_cache(maxsize=9)
def dataset(name: str, inputs: str) -> Dataset:
    """The dataset with its inputs as the page's ``inputs`` control says (cached: the page switches back and forth).

    ``"standardized"``: every feature at zero mean and unit variance (on the training set); ``"centred"``: the
    training mean subtracted and nothing else, so the features keep their raw scale (digits: pixels 0..16 become
    -m..16-m); ``"raw"``: as loaded (digits' pixels are all non-negative). Raw against centred changes one thing,
    the sign of the inputs, which is what makes every first-layer weight of a unit move the same way
    (LeCun et al. 1998, *Efficient BackProp*, section 4.3).
    """
    if inputs == "standardized":
        return load_dataset(name, seed=0, standardize=True)
    data = load_dataset(name, seed=0, standardize=False)
    if inputs == "raw":
        return data
    if inputs != "centred":
        raise ValueError(f"inputs={inputs!r} is not offered; valid inputs: standardized, centred, raw")
    mean = data.X_train.mean(0)
    return dataclasses.replace(data, X_train=data.X_train - mean, X_test=data.X_test - mean)


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
