"""The doctor's zoo: small broken and healthy training setups on digits and MNIST-1D.

Each :class:`Setup` builds a fresh model, its data and an optimizer factory
when called; a broken setup lists the codes the doctor must report after a
short training run under the monitor, a healthy one (standardized inputs,
He/Glorot init matched to its activation, a sensible learning rate) lists
none. ``benchmarks/doctor_zoo.py`` measures per-code recall and the healthy
false-positive rate over :func:`zoo`; the tests reuse the model builders and
:func:`init_weights`. Nothing here trains, and building a setup only
constructs it.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from impediments.data import load_dataset
from impediments.models import cnn1d, cnn2d, mlp
from impediments.norm import freeze

LINEAR_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d)
FAMILIES = ("mlp", "cnn", "residual")


@dataclass
class Setup:
    """One training setup of the zoo.

    Attributes:
        name: unique name, e.g. ``"dead_bias_mlp"``.
        family: ``"mlp"``, ``"cnn"`` or ``"residual"``.
        expected: the codes the doctor must report; empty for a healthy setup.
        build: ``() -> dict`` with ``model``, ``data`` (a tuple ``(X, y)``),
            ``opt`` (``params -> Optimizer``) and optionally ``prepare``
            (``model -> None``, called before training).
        steps: training steps for this setup; ``None`` uses the caller's default.
        batch_size: mini-batch size.
        extra: free-form notes.
    """

    name: str
    family: str
    expected: frozenset
    build: Callable[[], dict]
    steps: int | None = None
    batch_size: int = 64
    extra: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------ helpers
def init_weights(model: nn.Module, kind: str = "he", *, bias: float = 0.0, scale: float = 1.0,
                 std: float | None = None) -> nn.Module:
    """Initialize every Linear/Conv1d/Conv2d weight in place, then fill its bias with ``bias``.

    Args:
        model: the model; other modules (norm layers, ...) keep their init.
        kind: ``"he"`` (Kaiming normal for ReLU), ``"glorot"`` (Xavier normal),
            ``"normal"`` (N(0, ``std``²)) or ``"constant"`` (every weight ``std``).
        bias: the value of every bias.
        scale: multiplies the weights after they are drawn.
        std: the standard deviation (``"normal"``) or value (``"constant"``).

    Returns:
        ``model``.

    Raises:
        ValueError: for an unknown ``kind``.
    """
    if kind not in ("he", "glorot", "normal", "constant"):
        raise ValueError(f"unknown init {kind!r}; valid: he, glorot, normal, constant")
    for m in model.modules():
        if isinstance(m, LINEAR_TYPES):
            w = m.weight
            if kind == "he":
                nn.init.kaiming_normal_(w, nonlinearity="relu")
            elif kind == "glorot":
                nn.init.xavier_normal_(w)
            elif kind == "normal":
                nn.init.normal_(w, std=std)
            else:
                nn.init.constant_(w, std)
            with torch.no_grad():
                w.mul_(scale)
            if m.bias is not None:
                nn.init.constant_(m.bias, bias)
    return model


def load_xy(name: str = "digits", *, standardize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The training inputs and labels of a dataset (see :func:`impediments.data.load_dataset`)."""
    d = load_dataset(name, standardize=standardize)
    return d.X_train, d.y_train


def sgd(lr: float, **kw) -> Callable:
    """An optimizer factory ``params -> torch.optim.SGD(params, lr=lr, **kw)``."""
    return lambda params: torch.optim.SGD(params, lr=lr, **kw)


def digits_mlp(depth: int = 3, width: int = 64, act: str = "relu", **kw) -> nn.Module:
    """An :func:`impediments.mlp` for the 64 inputs and 10 classes of digits."""
    return mlp(64, 10, width=width, depth=depth, activation=act, **kw)


def digits_cnn(act: str = "relu", **kw) -> nn.Module:
    """A two-layer :func:`impediments.cnn2d` on 8x8 digits."""
    return cnn2d((1, 8, 8), 10, width=16, depth=2, activation=act, **kw)


def mnist1d_cnn(act: str = "relu", **kw) -> nn.Module:
    """A three-layer :func:`impediments.cnn1d` on MNIST-1D (40 samples)."""
    return cnn1d((1, 40), 10, width=16, depth=3, activation=act, **kw)


class FunctionalMLP(nn.Module):
    """A ReLU MLP on digits whose activations are called functionally (``F.relu``), not as modules."""

    def __init__(self, depth: int = 3, width: int = 64):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(64 if i == 0 else width, width) for i in range(depth))
        self.out = nn.Linear(width, 10)

    def forward(self, x):
        for layer in self.layers:
            x = F.relu(layer(x))
        return self.out(x)


class BasicBlock(nn.Module):
    """A torchvision-style ResNet BasicBlock: conv-BN-ReLU-conv-BN, identity shortcut, ReLU."""

    def __init__(self, c: int):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + x)


class ResNet(nn.Module):
    """A small BN ResNet on flattened 8x8 digits: stem, ``blocks`` BasicBlocks, global average pool, linear head.

    Args:
        c: channels.
        blocks: number of BasicBlocks in ``layer1``.
        dropout_before_bn: put ``Dropout2d(0.3)`` between the stem's conv and its BatchNorm.
    """

    def __init__(self, c: int = 16, blocks: int = 2, dropout_before_bn: bool = False):
        super().__init__()
        dropout = [nn.Dropout2d(0.3)] if dropout_before_bn else []
        self.stem = nn.Sequential(nn.Conv2d(1, c, 3, padding=1, bias=False), *dropout, nn.BatchNorm2d(c),
                                  nn.ReLU(inplace=True))
        self.layer1 = nn.Sequential(*[BasicBlock(c) for _ in range(blocks)])
        self.fc = nn.Linear(c, 10)

    def forward(self, x):
        return self.fc(self.layer1(self.stem(x.view(-1, 1, 8, 8))).mean((2, 3)))


def eval_model(model: nn.Module) -> None:
    """The whole model in eval mode while it trains (model.eval() for validation, no model.train() after it)."""
    model.eval()


def eval_bn(model: nn.Module) -> None:
    """Put every BatchNorm in inference mode (the mistake: running statistics used while training)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def frozen_bn(model: ResNet) -> None:
    """Transfer learning done right: the backbone frozen with :func:`impediments.norm.freeze`, the head trains."""
    freeze(model.stem)
    freeze(model.layer1)


def with_nan(X: torch.Tensor) -> torch.Tensor:
    """A copy of ``X`` with one NaN."""
    X = X.clone()
    X[7, 3] = float("nan")
    return X


# ------------------------------------------------------------------------------------------------ the zoo
def zoo() -> list[Setup]:
    """Every setup: the healthy ones first, then at least one broken setup per code."""
    S, fz, init, data = Setup, frozenset, init_weights, load_xy
    mlp_, cnn, cnn1d_ = digits_mlp, digits_cnn, mnist1d_cnn
    healthy = [
        S("healthy_mlp_relu_he", "mlp", fz(), lambda: dict(model=init(mlp_()), data=data(), opt=sgd(0.1))),
        S("healthy_mlp_tanh_glorot", "mlp", fz(), lambda: dict(model=init(mlp_(act="tanh"), "glorot"), data=data(),
                                                               opt=sgd(0.1))),
        S("healthy_mlp_gelu_he_adam", "mlp", fz(), lambda: dict(model=init(mlp_(act="gelu")), data=data(),
                                                                opt=lambda p: torch.optim.Adam(p, lr=1e-3))),
        S("healthy_functional_mlp", "mlp", fz(), lambda: dict(model=init(FunctionalMLP()), data=data(), opt=sgd(0.1))),
        S("healthy_cnn2d_relu_he", "cnn", fz(), lambda: dict(model=init(cnn()), data=data(), opt=sgd(0.05))),
        S("healthy_cnn1d_bn_mnist1d", "cnn", fz(), lambda: dict(model=init(cnn1d_(norm="batch")),
                                                                data=data("mnist1d"), opt=sgd(0.05))),
        S("healthy_residual_mlp_bn", "residual", fz(), lambda: dict(model=init(mlp_(depth=4, residual=True,
                                                                                    norm="batch")),
                                                                    data=data(), opt=sgd(0.05))),
        S("healthy_resnet_bn", "residual", fz(), lambda: dict(model=init(ResNet()), data=data(), opt=sgd(0.05))),
    ]
    broken = [
        S("dead_bias_mlp", "mlp", fz({"dead_units", "loss_plateau"}),
          lambda: dict(model=init(mlp_(), bias=-10.0), data=data(), opt=sgd(0.1))),
        S("dead_bias_cnn", "cnn", fz({"dead_units"}), lambda: dict(model=init(cnn(), bias=-10.0), data=data(),
                                                                   opt=sgd(0.05))),
        S("saturated_sigmoid_mlp", "mlp", fz({"saturated_units"}),
          lambda: dict(model=init(mlp_(depth=4, act="sigmoid"), "he", scale=10.0), data=data(), opt=sgd(0.1))),
        S("saturated_tanh_cnn", "cnn", fz({"saturated_units"}),
          lambda: dict(model=init(cnn(act="tanh"), "he", scale=5.0), data=data(), opt=sgd(0.05))),
        S("linear_tanh_tiny_init", "mlp", fz({"linear_regime"}),
          lambda: dict(model=init(mlp_(act="tanh"), "glorot", scale=0.01), data=data(), opt=sgd(0.1))),
        S("linear_relu_positive_bias", "mlp", fz({"linear_regime"}),
          lambda: dict(model=init(mlp_(), "he", scale=0.1, bias=10.0), data=data(), opt=sgd(0.01))),
        S("vanishing_act_deep_relu", "mlp", fz({"vanishing_activations"}),
          lambda: dict(model=init(mlp_(depth=8), "he", scale=0.5), data=data(), opt=sgd(0.1))),
        S("vanishing_act_deep_cnn", "cnn", fz({"vanishing_activations"}),
          lambda: dict(model=init(cnn1d_(), "he", scale=0.3), data=data("mnist1d"), opt=sgd(0.05))),
        S("exploding_act_deep_relu", "mlp", fz({"exploding_activations"}),
          lambda: dict(model=init(mlp_(depth=6), "he", scale=2.0), data=data(), opt=sgd(1e-4))),
        S("exploding_act_residual_no_norm", "residual", fz({"exploding_activations"}),
          lambda: dict(model=init(mlp_(depth=12, residual=True), "he"), data=data(), opt=sgd(1e-4))),
        S("vanishing_grad_deep_sigmoid", "mlp", fz({"vanishing_gradients"}),
          lambda: dict(model=init(mlp_(depth=6, act="sigmoid"), "glorot"), data=data(), opt=sgd(0.1))),
        S("vanishing_grad_deep_relu_small", "mlp", fz({"vanishing_gradients"}),
          lambda: dict(model=init(mlp_(depth=8), "he", scale=0.5), data=data(), opt=sgd(0.1))),
        S("exploding_grad_huge_lr", "mlp", fz({"exploding_gradients"}),
          lambda: dict(model=init(mlp_()), data=data(), opt=sgd(20.0))),
        S("exploding_grad_deep_relu_large", "mlp", fz({"exploding_gradients"}),
          lambda: dict(model=init(mlp_(depth=8), "he", scale=2.5), data=data(), opt=sgd(1e-4))),
        S("symmetric_zero_init_tanh", "mlp", fz({"symmetric_units"}),
          lambda: dict(model=init(mlp_(act="tanh"), "constant", std=0.0), data=data(), opt=sgd(0.1))),
        S("symmetric_identical_init_relu", "mlp", fz({"symmetric_units"}),
          lambda: dict(model=init(mlp_(), "constant", std=0.05), data=data(), opt=sgd(0.1))),
        S("symmetric_constant_cnn", "cnn", fz({"symmetric_units"}),
          lambda: dict(model=init(cnn(act="tanh"), "constant", std=0.05), data=data(), opt=sgd(0.05))),
        # raw digits: uncentered; their smallest variances are border pixels inked on under 1% of the examples
        # (near-constant, no signal: not an unequal scale, issue 12)
        S("uncentered_raw_digits", "mlp", fz({"uncentered_inputs"}),
          lambda: dict(model=init(mlp_()), data=data(standardize=False), opt=sgd(0.001))),
        S("uncentered_shifted_mnist1d_cnn", "cnn", fz({"uncentered_inputs"}),
          lambda: dict(model=init(cnn1d_()), data=(data("mnist1d")[0] + 3.0, data("mnist1d")[1]), opt=sgd(0.01))),
        S("unequal_scaled_features_mlp", "mlp", fz({"unequal_input_scales"}),
          lambda: dict(model=init(mlp_()), data=(data()[0] * torch.logspace(0, 2, 64), data()[1]), opt=sgd(1e-4))),
        S("non_finite_huge_lr", "mlp", fz({"non_finite", "diverging_loss"}),
          lambda: dict(model=init(mlp_()), data=data(), opt=sgd(200.0))),
        S("non_finite_nan_input_cnn", "cnn", fz({"non_finite"}),
          lambda: dict(model=init(cnn()), data=(with_nan(data()[0]), data()[1]), opt=sgd(0.05))),
        S("bn_small_batch_mlp", "mlp", fz({"bn_small_batch"}),
          lambda: dict(model=init(mlp_(norm="batch")), data=data(), opt=sgd(0.05)), batch_size=4),
        S("bn_small_batch_cnn1d", "cnn", fz({"bn_small_batch"}),
          lambda: dict(model=init(cnn1d_(norm="batch")), data=data("mnist1d"), opt=sgd(0.01)), batch_size=1),
        S("dropout_before_bn_mlp", "mlp", fz({"dropout_before_bn"}),
          lambda: dict(model=init(nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Dropout(0.5), nn.Linear(64, 64),
                                                nn.Dropout(0.5), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 10))),
                       data=data(), opt=sgd(0.05))),
        S("dropout_before_bn_resnet", "residual", fz({"dropout_before_bn"}),
          lambda: dict(model=init(ResNet(dropout_before_bn=True)), data=data(), opt=sgd(0.05))),
        S("model_in_eval_bn_mlp", "mlp", fz({"model_in_eval_mode"}),
          lambda: dict(model=init(mlp_(norm="batch")), data=data(), opt=sgd(0.05), prepare=eval_model)),
        S("bn_eval_during_training_mlp", "mlp", fz({"bn_inference_mode_in_training"}),
          lambda: dict(model=init(mlp_(norm="batch")), data=data(), opt=sgd(0.05), prepare=eval_bn)),
        S("bn_frozen_resnet", "residual", fz({"bn_inference_mode_in_training"}),
          lambda: dict(model=init(ResNet()), data=data(), opt=sgd(0.05), prepare=frozen_bn)),
        S("weight_decay_bn_mlp", "mlp", fz({"weight_decay_with_bn"}),
          lambda: dict(model=init(mlp_(norm="batch")), data=data(), opt=sgd(0.05, weight_decay=5e-4))),
        S("weight_decay_bn_cnn", "cnn", fz({"weight_decay_with_bn"}),
          lambda: dict(model=init(cnn(norm="batch")), data=data(), opt=sgd(0.05, weight_decay=5e-3))),
        S("diverging_adam_lr", "mlp", fz({"diverging_loss"}),
          lambda: dict(model=init(mlp_()), data=data(), opt=lambda p: torch.optim.Adam(p, lr=3.0))),
        S("diverging_residual_lr", "residual", fz({"diverging_loss"}),
          lambda: dict(model=init(mlp_(depth=4, residual=True)), data=data(), opt=sgd(2.0))),
        S("plateau_tiny_lr", "mlp", fz({"loss_plateau"}),
          lambda: dict(model=init(mlp_()), data=data(), opt=sgd(1e-6))),
        S("plateau_dead_cnn", "cnn", fz({"loss_plateau", "dead_units"}),
          lambda: dict(model=init(cnn(), bias=-10.0), data=data(), opt=sgd(0.05))),
    ]
    from loop_bugs import loop_setups      # training-loop bugs and their look-alikes (issue 18)

    return healthy + broken + loop_setups()
