"""The doctor's zoo: small broken and healthy training setups on digits and MNIST-1D.

Each :class:`Case` names a :class:`~impediments.train.setup.Setup` (built when asked for) and the
codes the doctor must report after a short training run under the monitor; a healthy case
(standardized inputs, He/Glorot init matched to its activation, a sensible learning rate) lists
none. ``benchmarks/doctor_zoo.py`` measures per-code recall and the healthy false-positive rate
over :func:`zoo`, ``benchmarks/fix_zoo.py`` runs ``impediments fix`` on it, and the tests reuse
the cases, the model builders and :func:`init_weights`. Nothing here trains, and building a setup
only loads its data; its model is built by the setup's ``model_fn``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.nn import functional as F

from impediments.data import load_dataset
from impediments.models import cnn1d, cnn2d, mlp
from impediments.norm import freeze
from impediments.train.setup import Setup

LINEAR_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d)
FAMILIES = ("mlp", "cnn", "residual")


@dataclass(frozen=True)
class Case:
    """One case of the zoo: a named training setup and the codes the doctor must report on it.

    Attributes:
        name: unique name, e.g. ``"dead_bias_mlp"``.
        family: ``"mlp"``, ``"cnn"`` or ``"residual"``.
        expected: the codes the doctor must report; empty for a healthy setup.
        make: ``() -> Setup``, loading the data (the model is built by the setup's ``model_fn``).
        steps: training steps for this case; ``None`` uses the caller's default.
    """

    name: str
    family: str
    expected: frozenset
    make: Callable[[], Setup]
    steps: int | None = None

    def setup(self, default_steps: int) -> Setup:
        """The setup, trained for the case's own steps or else ``default_steps``."""
        return replace(self.make(), steps=self.steps or default_steps)


def case(name: str, family: str, expected, model_fn: Callable[[], nn.Module], *, data: Callable | None = None,
         opt: Callable | None = None, steps: int | None = None, loss_fn: Callable = F.cross_entropy,
         **setup) -> Case:
    """A :class:`Case` training ``model_fn()`` on ``data()`` (default: standardized digits) with ``opt``
    (default: SGD lr 0.1) and cross-entropy; ``setup`` holds any other :class:`Setup` field (``batch_size``,
    ``prepare``, ``step_fn``, ``batches_fn``, ``scheduler_fn``, ``scheduler_interval``)."""
    data, opt = data or load_xy, opt or sgd(0.1)

    def make() -> Setup:
        X, y = data()
        return Setup(model_fn=model_fn, X=X, y=y, loss_fn=loss_fn, opt_fn=opt, **setup)
    return Case(name, family, frozenset(expected), make, steps)


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


def parity_xy() -> tuple[torch.Tensor, torch.Tensor]:
    """Standardized digits with a binary target: the digit is odd, as a float column (N, 1)."""
    X, y = load_xy()
    return X, (y % 2).float().unsqueeze(1)


def digit_value_xy() -> tuple[torch.Tensor, torch.Tensor]:
    """Standardized digits regressed on the digit's value in raw units, 100 x digit (mean ~450): unscaled targets."""
    X, y = load_xy()
    return X, 100.0 * y.float().unsqueeze(1)


def shuffled_labels_xy() -> tuple[torch.Tensor, torch.Tensor]:
    """Standardized digits with the labels permuted apart from the inputs: the labels carry no information."""
    X, y = load_xy()
    return X, y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))]


def probability_bce(p: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Keras's binary cross-entropy on probabilities, written by hand (no loss-function call to observe)."""
    p = p.clamp(1e-7, 1 - 1e-7)
    return -(target * p.log() + (1 - target) * (1 - p).log()).mean()


def hand_written_cross_entropy(p: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Categorical cross-entropy on probabilities, written by hand, ``-(y log p).sum(1).mean()`` (Keras's
    ``categorical_crossentropy``; no loss-function call to observe)."""
    return -(target * p.clamp_min(1e-7).log()).sum(1).mean()


def with_nan(X: torch.Tensor) -> torch.Tensor:
    """A copy of ``X`` with one NaN."""
    X = X.clone()
    X[7, 3] = float("nan")
    return X


# ------------------------------------------------------------------------------------------------ the zoo
def zoo() -> list[Case]:
    """Every case: the healthy ones first, then at least one broken case per code."""
    from impediments.train.zoo.loop_bugs import loop_cases    # training-loop bugs and their look-alikes (issue 18)

    C, init = case, init_weights
    mlp_, cnn, cnn1d_ = digits_mlp, digits_cnn, mnist1d_cnn
    mnist1d = lambda: load_xy("mnist1d")  # noqa: E731
    healthy = [
        C("healthy_mlp_relu_he", "mlp", (), lambda: init(mlp_())),
        C("healthy_mlp_tanh_glorot", "mlp", (), lambda: init(mlp_(act="tanh"), "glorot")),
        C("healthy_mlp_gelu_he_adam", "mlp", (), lambda: init(mlp_(act="gelu")),
          opt=lambda p: torch.optim.Adam(p, lr=1e-3)),
        C("healthy_functional_mlp", "mlp", (), lambda: init(FunctionalMLP())),
        C("healthy_cnn2d_relu_he", "cnn", (), lambda: init(cnn()), opt=sgd(0.05)),
        C("healthy_cnn1d_bn_mnist1d", "cnn", (), lambda: init(cnn1d_(norm="batch")), data=mnist1d, opt=sgd(0.05)),
        C("healthy_residual_mlp_bn", "residual", (), lambda: init(mlp_(depth=4, residual=True, norm="batch")),
          opt=sgd(0.05)),
        C("healthy_resnet_bn", "residual", (), lambda: init(ResNet()), opt=sgd(0.05)),
    ]
    broken = [
        C("dead_bias_mlp", "mlp", {"dead_units", "loss_plateau"}, lambda: init(mlp_(), bias=-10.0)),
        C("dead_bias_cnn", "cnn", {"dead_units"}, lambda: init(cnn(), bias=-10.0), opt=sgd(0.05)),
        C("saturated_sigmoid_mlp", "mlp", {"saturated_units"}, lambda: init(mlp_(depth=4, act="sigmoid"), "he",
                                                                              scale=10.0)),
        C("saturated_tanh_cnn", "cnn", {"saturated_units"}, lambda: init(cnn(act="tanh"), "he", scale=5.0),
          opt=sgd(0.05)),
        C("linear_tanh_tiny_init", "mlp", {"linear_regime"}, lambda: init(mlp_(act="tanh"), "glorot", scale=0.01)),
        C("linear_relu_positive_bias", "mlp", {"linear_regime"}, lambda: init(mlp_(), "he", scale=0.1, bias=10.0),
          opt=sgd(0.01)),
        C("vanishing_act_deep_relu", "mlp", {"vanishing_activations"}, lambda: init(mlp_(depth=8), "he", scale=0.5)),
        C("vanishing_act_deep_cnn", "cnn", {"vanishing_activations"}, lambda: init(cnn1d_(), "he", scale=0.3),
          data=mnist1d, opt=sgd(0.05)),
        C("exploding_act_deep_relu", "mlp", {"exploding_activations"}, lambda: init(mlp_(depth=6), "he", scale=2.0),
          opt=sgd(1e-4)),
        C("exploding_act_residual_no_norm", "residual", {"exploding_activations"},
          lambda: init(mlp_(depth=12, residual=True), "he"), opt=sgd(1e-4)),
        C("vanishing_grad_deep_sigmoid", "mlp", {"vanishing_gradients"},
          lambda: init(mlp_(depth=6, act="sigmoid"), "glorot")),
        C("vanishing_grad_deep_relu_small", "mlp", {"vanishing_gradients"},
          lambda: init(mlp_(depth=8), "he", scale=0.5)),
        C("exploding_grad_huge_lr", "mlp", {"exploding_gradients"}, lambda: init(mlp_()), opt=sgd(20.0)),
        C("exploding_grad_deep_relu_large", "mlp", {"exploding_gradients"},
          lambda: init(mlp_(depth=8), "he", scale=2.5), opt=sgd(1e-4)),
        # nn.init.normal_ with its default std 1.0 on every Linear: each multiplies its input's variance by fan_in
        C("init_scale_std_one_mlp", "mlp", {"init_scale_too_large"}, lambda: init(mlp_(), "normal", std=1.0),
          opt=sgd(1e-3)),
        C("symmetric_zero_init_tanh", "mlp", {"symmetric_units"}, lambda: init(mlp_(act="tanh"), "constant", std=0.0)),
        C("symmetric_identical_init_relu", "mlp", {"symmetric_units"}, lambda: init(mlp_(), "constant", std=0.05)),
        C("symmetric_constant_cnn", "cnn", {"symmetric_units"}, lambda: init(cnn(act="tanh"), "constant", std=0.05),
          opt=sgd(0.05)),
        # raw digits: uncentered; their smallest variances are border pixels inked on under 1% of the examples
        # (near-constant, no signal: not an unequal scale, issue 12)
        C("uncentered_raw_digits", "mlp", {"uncentered_inputs"}, lambda: init(mlp_()),
          data=lambda: load_xy(standardize=False), opt=sgd(0.001)),
        C("uncentered_shifted_mnist1d_cnn", "cnn", {"uncentered_inputs"}, lambda: init(cnn1d_()),
          data=lambda: (mnist1d()[0] + 3.0, mnist1d()[1]), opt=sgd(0.01)),
        C("unequal_scaled_features_mlp", "mlp", {"unequal_input_scales"}, lambda: init(mlp_()),
          data=lambda: (load_xy()[0] * torch.logspace(0, 2, 64), load_xy()[1]), opt=sgd(1e-4)),
        C("non_finite_huge_lr", "mlp", {"non_finite", "diverging_loss"}, lambda: init(mlp_()), opt=sgd(200.0)),
        C("non_finite_nan_input_cnn", "cnn", {"non_finite"}, lambda: init(cnn()),
          data=lambda: (with_nan(load_xy()[0]), load_xy()[1]), opt=sgd(0.05)),
        C("bn_small_batch_mlp", "mlp", {"bn_small_batch"}, lambda: init(mlp_(norm="batch")), opt=sgd(0.05),
          batch_size=4),
        C("bn_small_batch_cnn1d", "cnn", {"bn_small_batch"}, lambda: init(cnn1d_(norm="batch")), data=mnist1d,
          opt=sgd(0.01), batch_size=1),
        C("dropout_before_bn_mlp", "mlp", {"dropout_before_bn"},
          lambda: init(nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Dropout(0.5), nn.Linear(64, 64), nn.Dropout(0.5),
                                     nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 10))), opt=sgd(0.05)),
        C("dropout_before_bn_resnet", "residual", {"dropout_before_bn"}, lambda: init(ResNet(dropout_before_bn=True)),
          opt=sgd(0.05)),
        C("model_in_eval_bn_mlp", "mlp", {"model_in_eval_mode"}, lambda: init(mlp_(norm="batch")), opt=sgd(0.05),
          prepare=eval_model),
        C("bn_eval_during_training_mlp", "mlp", {"bn_inference_mode_in_training"}, lambda: init(mlp_(norm="batch")),
          opt=sgd(0.05), prepare=eval_bn),
        C("bn_frozen_resnet", "residual", {"bn_inference_mode_in_training"}, lambda: init(ResNet()), opt=sgd(0.05),
          prepare=frozen_bn),
        C("weight_decay_bn_mlp", "mlp", {"weight_decay_with_bn"}, lambda: init(mlp_(norm="batch")),
          opt=sgd(0.05, weight_decay=5e-4)),
        C("weight_decay_bn_cnn", "cnn", {"weight_decay_with_bn"}, lambda: init(cnn(norm="batch")),
          opt=sgd(0.05, weight_decay=5e-3)),
        C("diverging_adam_lr", "mlp", {"diverging_loss"}, lambda: init(mlp_()),
          opt=lambda p: torch.optim.Adam(p, lr=3.0)),
        C("diverging_residual_lr", "residual", {"diverging_loss"}, lambda: init(mlp_(depth=4, residual=True)),
          opt=sgd(2.0)),
        C("plateau_tiny_lr", "mlp", {"loss_plateau", "learning_rate_too_low"}, lambda: init(mlp_()), opt=sgd(1e-6)),
        # a learning rate too low, a stack with no nonlinearity (issue 24)
        C("lr_too_low_adam_mlp", "mlp", {"learning_rate_too_low"}, lambda: init(mlp_()),
          opt=lambda p: torch.optim.Adam(p, lr=1e-5)),
        C("no_nonlinearity_mlp", "mlp", {"no_nonlinearity"},
          lambda: init(nn.Sequential(nn.Linear(40, 64), nn.Linear(64, 64), nn.Linear(64, 10)), "glorot"),
          data=mnist1d, opt=lambda p: torch.optim.Adam(p, lr=1e-3)),
        C("plateau_dead_cnn", "cnn", {"loss_plateau", "dead_units"}, lambda: init(cnn(), bias=-10.0), opt=sgd(0.05)),
        # the output head, the loss and the targets (issue 24)
        C("head_softmax_one_unit_mlp", "mlp", {"output_head_mismatch"},
          lambda: nn.Sequential(init(mlp(64, 1, width=64, depth=2)), nn.Softmax(dim=1)), data=parity_xy,
          loss_fn=probability_bce, opt=lambda p: torch.optim.Adam(p, lr=1e-3)),
        C("head_unscaled_targets_mlp", "mlp", {"unscaled_targets"}, lambda: init(mlp(64, 1, width=64, depth=2)),
          data=digit_value_xy, loss_fn=F.mse_loss, opt=lambda p: torch.optim.Adam(p, lr=1e-3)),
        C("head_initial_loss_high_mlp", "mlp", {"initial_loss_high"}, lambda: init(mlp_(depth=2), "he", scale=8.0),
          opt=lambda p: torch.optim.Adam(p, lr=1e-3)),
        C("head_dropout_on_output_mlp", "mlp", {"dropout_on_output"},
          lambda: nn.Sequential(init(mlp_(depth=2)), nn.Dropout(0.5)), opt=lambda p: torch.optim.Adam(p, lr=1e-3)),
        C("head_uninformative_labels_mlp", "mlp", {"uninformative_labels"}, lambda: init(mlp_(depth=2)),
          data=shuffled_labels_xy, opt=lambda p: torch.optim.Adam(p, lr=1e-3)),
        C("head_hand_written_ce_softmax_one_unit_mlp", "mlp", {"output_head_mismatch"},
          lambda: nn.Sequential(init(mlp(64, 1, width=64, depth=2)), nn.Softmax(dim=1)), data=parity_xy,
          loss_fn=hand_written_cross_entropy, opt=lambda p: torch.optim.Adam(p, lr=1e-3)),
    ]
    return healthy + broken + loop_cases()
