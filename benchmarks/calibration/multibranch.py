"""Multi-branch convnets at tiny width for 3x16x16 inputs: DenseNet-BC, an Inception (GoogLeNet-style)
net, and a PNASNet-A-like separable-conv cell net."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .layers import classifier_head, conv_bn, init_torchvision_cnn


class DenseLayer(nn.Module):
    """Huang et al. 2017 (BC): BN-ReLU-1x1 conv (4k) - BN-ReLU-3x3 conv (k), concatenated to the input."""

    def __init__(self, cin: int, growth: int):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, 4 * growth, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(4 * growth), nn.Conv2d(4 * growth, growth, 3, 1, 1, bias=False)

    def forward(self, x):
        out = self.conv1(F.relu(self.bn1(x)))
        return torch.cat([x, self.conv2(F.relu(self.bn2(out)))], dim=1)


def densenet_bc(classes: int = 10, growth: int = 8, depths=(4, 4, 4)) -> nn.Module:
    """Three dense blocks joined by BN-ReLU-1x1 conv-avgpool transitions with compression 0.5."""
    cin = 2 * growth
    layers = [nn.Conv2d(3, cin, 3, 1, 1, bias=False)]
    for i, n in enumerate(depths):
        for _ in range(n):
            layers.append(DenseLayer(cin, growth))
            cin += growth
        if i < len(depths) - 1:
            layers += [nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, cin // 2, 1, bias=False), nn.AvgPool2d(2)]
            cin //= 2
    layers += [nn.BatchNorm2d(cin), nn.ReLU(), classifier_head(cin, classes)]
    return init_torchvision_cnn(nn.Sequential(*layers), conv_mode="fan_in", linear_std=None)


class Inception(nn.Module):
    """Szegedy et al. 2015 (BN version): 1x1 | 1x1-3x3 | 1x1-3x3-3x3 | maxpool-1x1, concatenated."""

    def __init__(self, cin: int, c1: int, c3r: int, c3: int, c5r: int, c5: int, pool: int):
        super().__init__()
        self.b1 = conv_bn(cin, c1, 1)
        self.b2 = nn.Sequential(conv_bn(cin, c3r, 1), conv_bn(c3r, c3, 3))
        self.b3 = nn.Sequential(conv_bn(cin, c5r, 1), conv_bn(c5r, c5, 3), conv_bn(c5, c5, 3))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), conv_bn(cin, pool, 1))

    def forward(self, x):
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], dim=1)


def inception_net(classes: int = 10) -> nn.Module:
    """Stem 3x3 conv, two Inception modules, max-pool, two more; torchvision GoogLeNet init
    (truncated normal std 0.01 for convs and Linear)."""
    model = nn.Sequential(
        conv_bn(3, 32),
        Inception(32, 16, 16, 24, 4, 8, 8), Inception(56, 24, 24, 32, 8, 16, 16), nn.MaxPool2d(2),
        Inception(88, 32, 24, 40, 8, 16, 16), Inception(104, 32, 32, 48, 8, 16, 16),
        classifier_head(112, classes, dropout=0.2))
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, 0.0, 0.01, -0.02, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model


class SepConv(nn.Module):
    """PNASNet's separable conv as in the common CIFAR code: a depthwise-grouped kxk conv, then BN."""

    def __init__(self, cin: int, cout: int, k: int, stride: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, groups=cin, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return self.bn(self.conv(x))


class CellA(nn.Module):
    """Liu et al. 2018 (PNASNet-A cell): ``relu(sep7x7(x) + maxpool3x3(x))`` (1x1 conv-BN on the pool when
    the width changes)."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.sep = SepConv(cin, cout, 7, stride)
        self.pool = nn.MaxPool2d(3, stride, 1)
        self.proj = conv_bn(cin, cout, 1, act=None) if cin != cout else nn.Identity()

    def forward(self, x):
        return F.relu(self.sep(x) + self.proj(self.pool(x)))


def pnasnet(classes: int = 10) -> nn.Module:
    layers, cin = [conv_bn(3, 16)], 16
    for cout, stride in [(16, 1), (32, 2), (32, 1), (64, 2), (64, 1)]:
        layers.append(CellA(cin, cout, stride))
        cin = cout
    return init_torchvision_cnn(nn.Sequential(*layers, classifier_head(cin, classes)), linear_std=None)
