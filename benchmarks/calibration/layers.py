"""Building blocks shared by the corpus's convnets: conv-BN-activation, squeeze-excitation, standard inits."""
from __future__ import annotations

import math

from torch import nn


def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, act: type | None = nn.ReLU):
    """``Conv2d(bias=False) -> BatchNorm2d -> act`` (``act=None``: no activation), 'same' padding."""
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act(inplace=True) if act in (nn.ReLU, nn.ReLU6, nn.SiLU) else act())
    return nn.Sequential(*layers)


class SqueezeExcite(nn.Module):
    """Hu et al. 2018: ``x * sigmoid(W2 act(W1 avgpool(x)))``; the sigmoid is a gate."""

    def __init__(self, channels: int, hidden: int, act: type = nn.ReLU):
        super().__init__()
        self.reduce = nn.Conv2d(channels, hidden, 1)
        self.act = act(inplace=True)
        self.expand = nn.Conv2d(hidden, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x):
        s = x.mean(dim=(2, 3), keepdim=True)
        return x * self.gate(self.expand(self.act(self.reduce(s))))


def init_torchvision_cnn(model: nn.Module, *, conv_mode: str = "fan_out", linear_std: float | None = 0.01):
    """torchvision's ResNet/VGG/MobileNet init: Kaiming-normal convs (``fan_out``, ReLU gain), BN weight 1
    and bias 0, Linear ``N(0, linear_std^2)`` with zero bias (``linear_std=None`` keeps PyTorch's default)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode=conv_mode, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d, nn.GroupNorm, nn.LayerNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linear_std is not None:
            nn.init.normal_(m.weight, 0.0, linear_std)
            nn.init.zeros_(m.bias)
    return model


def init_regnet(model: nn.Module):
    """pycls / torchvision RegNet init: convs ``N(0, 2 / fan_out)``, Linear ``N(0, 0.01^2)``."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)
    return model


def classifier_head(channels: int, classes: int, dropout: float = 0.0):
    """Global average pool, optional dropout, Linear."""
    layers = [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(channels, classes))
    return nn.Sequential(*layers)
