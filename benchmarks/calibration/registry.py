"""The corpus: each architecture with its standard init (in its builder), task and training recipe.

``ARCHITECTURES`` maps a name to an :class:`Architecture`; the ones with ``held_out=True`` are
excluded from a default run (``benchmarks/calibration.py --held-out`` adds them) so that the rules
can be judged on architectures nobody tuned them on.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from . import heldout, mobile, multibranch, recurrent, residual, tasks, transformers


@dataclass(frozen=True)
class Recipe:
    """The training recipe: optimizer, learning rate, batch size, warm-up and gradient clipping.

    Attributes:
        optimizer: ``"sgd"`` (momentum), ``"adamw"`` or ``"adam"``.
        lr: peak learning rate.
        batch_size: examples per step.
        momentum: SGD momentum.
        weight_decay: decoupled (AdamW) or L2 (SGD) weight decay.
        betas: Adam betas.
        warmup: linear warm-up steps (0: none).
        clip: maximum global gradient norm (``None``: no clipping).
    """

    optimizer: str
    lr: float
    batch_size: int = 32
    momentum: float = 0.9
    weight_decay: float = 0.0
    betas: tuple = (0.9, 0.999)
    warmup: int = 0
    clip: float | None = None

    def make_optimizer(self, params) -> torch.optim.Optimizer:
        if self.optimizer == "sgd":
            return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)
        if self.optimizer == "adamw":
            return torch.optim.AdamW(params, lr=self.lr, betas=self.betas, weight_decay=self.weight_decay)
        if self.optimizer == "adam":
            return torch.optim.Adam(params, lr=self.lr, betas=self.betas, weight_decay=self.weight_decay)
        raise ValueError(f"unknown optimizer {self.optimizer!r}; valid: sgd, adamw, adam")

    def make_scheduler(self, opt: torch.optim.Optimizer):
        warm = max(self.warmup, 1)
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / warm))


def classification_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(output, target)


def language_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy over every position: ``output (B, T, V)``, ``target (B, T)``."""
    return F.cross_entropy(output.reshape(-1, output.shape[-1]), target.reshape(-1))


TASKS: dict[str, tuple[Callable, Callable]] = {
    "images": (tasks.smooth_images, classification_loss),
    "digits": (tasks.digits_images, classification_loss),
    "language": (tasks.language, language_loss),
    "chains": (tasks.chain_classification, classification_loss),
}


@dataclass(frozen=True)
class Architecture:
    """One architecture of the corpus.

    Attributes:
        name: short unique name (``"resnet18"``).
        family: ``"cnn"``, ``"transformer"`` or ``"recurrent"``.
        build: ``() -> nn.Module`` with the architecture's standard init.
        task: a key of :data:`TASKS`.
        recipe: its standard training recipe at this scale.
        held_out: excluded from a default run.
    """

    name: str
    family: str
    build: Callable[[], nn.Module]
    task: str
    recipe: Recipe
    held_out: bool = False

    def data(self, seed: int = 0):
        return TASKS[self.task][0](seed=seed)

    @property
    def loss(self):
        return TASKS[self.task][1]


# CIFAR recipe (SGD momentum 0.9, weight decay 5e-4); lr 0.05 at batch 32 instead of 0.1 at batch 128.
CNN = Recipe("sgd", lr=0.05, weight_decay=5e-4)
LENET = Recipe("adam", lr=1e-3)
GPT = Recipe("adamw", lr=1e-3, batch_size=16, betas=(0.9, 0.95), weight_decay=0.1, warmup=5, clip=1.0)
BERT = Recipe("adamw", lr=1e-3, batch_size=16, weight_decay=0.01, warmup=5, clip=1.0)
VIT = Recipe("adamw", lr=1e-3, batch_size=32, weight_decay=0.05, warmup=5, clip=1.0)
RNN = Recipe("adam", lr=5e-3, batch_size=16, clip=1.0)
# Bai et al. 2018's reference code, sequential MNIST / adding problem: Adam lr 2e-3, no clipping.
TCN = Recipe("adam", lr=2e-3, batch_size=16)

_ROWS = [
    ("lenet5", "cnn", residual.lenet5, "digits", LENET),
    ("vgg11_bn", "cnn", residual.vgg11_bn, "images", CNN),
    ("resnet18", "cnn", residual.resnet18, "images", CNN),
    ("resnet50", "cnn", residual.resnet50, "images", CNN),
    ("preact_resnet18", "cnn", residual.preact_resnet18, "images", CNN),
    ("densenet_bc", "cnn", multibranch.densenet_bc, "images", CNN),
    ("inception", "cnn", multibranch.inception_net, "images", CNN),
    ("mobilenet_v1", "cnn", mobile.mobilenet_v1, "images", CNN),
    ("mobilenet_v2", "cnn", mobile.mobilenet_v2, "images", CNN),
    ("shufflenet_v2", "cnn", mobile.shufflenet_v2, "images", CNN),
    ("se_resnet18", "cnn", residual.se_resnet18, "images", CNN),
    ("efficientnet", "cnn", mobile.efficientnet, "images", CNN),
    ("regnet_x", "cnn", residual.regnet_x, "images", CNN),
    ("pnasnet", "cnn", multibranch.pnasnet, "images", CNN),
    ("gpt2", "transformer", transformers.GPT2, "language", GPT),
    ("bert", "transformer", transformers.BERTClassifier, "chains", BERT),
    ("llama", "transformer", transformers.Llama, "language", GPT),
    ("vit", "transformer", transformers.ViT, "images", VIT),
    ("lstm_lm", "recurrent", lambda: recurrent.RNNLanguageModel("lstm"), "language", RNN),
    ("gru_lm", "recurrent", lambda: recurrent.RNNLanguageModel("gru"), "language", RNN),
    # held out: run only with --held-out
    ("resnext", "cnn", heldout.resnext, "images", CNN),
    ("convnext", "cnn", heldout.convnext, "images", Recipe("adamw", lr=1e-3, weight_decay=0.05, warmup=5)),
    ("mlp_mixer", "transformer", heldout.MLPMixer, "images", VIT),
    ("rnn_lm", "recurrent", lambda: recurrent.RNNLanguageModel("rnn"), "language", RNN),
    # the second held-out set (added without running the doctor on it)
    ("wide_resnet", "cnn", heldout.wide_resnet, "images", CNN),
    ("torch_transformer", "transformer", heldout.TorchTransformerLM, "language", GPT),
    ("tcn", "cnn", heldout.TCN, "language", TCN),
]
HELD_OUT = ("resnext", "convnext", "mlp_mixer", "rnn_lm", "wide_resnet", "torch_transformer", "tcn")
ARCHITECTURES: dict[str, Architecture] = {row[0]: Architecture(*row, held_out=row[0] in HELD_OUT) for row in _ROWS}
