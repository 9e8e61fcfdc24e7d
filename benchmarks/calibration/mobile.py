"""Depthwise convnets at tiny width for 3x16x16 inputs: MobileNet v1, MobileNetV2 (ReLU6),
ShuffleNetV2 (channel split + shuffle), EfficientNet-style MBConv (SiLU, squeeze-excitation)."""
from __future__ import annotations

import torch
from torch import nn

from .layers import SqueezeExcite, classifier_head, conv_bn, init_torchvision_cnn


def mobilenet_v1(classes: int = 10) -> nn.Module:
    """Howard et al. 2017: depthwise 3x3 + pointwise 1x1, each BN-ReLU."""
    plan = [(32, 1), (64, 2), (64, 1), (128, 2), (128, 1)]
    layers, cin = [conv_bn(3, 16)], 16
    for cout, stride in plan:
        layers += [conv_bn(cin, cin, 3, stride, groups=cin), conv_bn(cin, cout, 1)]
        cin = cout
    return init_torchvision_cnn(nn.Sequential(*layers, classifier_head(cin, classes)))


class InvertedResidual(nn.Module):
    """Sandler et al. 2018: expand 1x1 (ReLU6), depthwise 3x3 (ReLU6), linear 1x1 projection."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        layers = [conv_bn(cin, hidden, 1, act=nn.ReLU6)] if expand != 1 else []
        layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6),
                   conv_bn(hidden, cout, 1, act=None)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.block(x) if self.residual else self.block(x)


def mobilenet_v2(classes: int = 10) -> nn.Module:
    plan = [(1, 8, 1, 1), (6, 12, 2, 2), (6, 16, 2, 2), (6, 24, 1, 1)]    # (expand t, channels c, repeats n, stride s)
    layers, cin = [conv_bn(3, 16, act=nn.ReLU6)], 16
    for t, c, n, s in plan:
        for i in range(n):
            layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
            cin = c
    layers.append(conv_bn(cin, 96, 1, act=nn.ReLU6))
    return init_torchvision_cnn(nn.Sequential(*layers, classifier_head(96, classes, dropout=0.2)))


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class ShuffleUnit(nn.Module):
    """Ma et al. 2018: split channels, transform one half (1x1, depthwise 3x3, 1x1), concat, shuffle."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.stride = stride
        half = cout // 2
        bin_ = cin if stride > 1 else cin // 2
        self.branch = nn.Sequential(conv_bn(bin_, half, 1), conv_bn(half, half, 3, stride, groups=half, act=None),
                                    conv_bn(half, half, 1))
        self.side = (nn.Sequential(conv_bn(cin, cin, 3, stride, groups=cin, act=None), conv_bn(cin, half, 1))
                     if stride > 1 else None)

    def forward(self, x):
        if self.stride == 1:
            a, b = x.chunk(2, dim=1)
            out = torch.cat([a, self.branch(b)], dim=1)
        else:
            out = torch.cat([self.side(x), self.branch(x)], dim=1)
        return channel_shuffle(out, 2)


def shufflenet_v2(classes: int = 10) -> nn.Module:
    """Stages of (channels, repeats): (32, 2), (64, 2), (128, 1); conv5 to 192; PyTorch default init."""
    layers, cin = [conv_bn(3, 24)], 24
    for cout, repeats in [(32, 2), (64, 2), (128, 1)]:
        for i in range(repeats):
            layers.append(ShuffleUnit(cin, cout, 2 if i == 0 else 1))
            cin = cout
    layers.append(conv_bn(cin, 192, 1))
    return nn.Sequential(*layers, classifier_head(192, classes))


class MBConv(nn.Module):
    """Tan & Le 2019: expand 1x1 (SiLU), depthwise kxk (SiLU), squeeze-excitation (SiLU, sigmoid gate),
    linear 1x1 projection, residual when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int, k: int):
        super().__init__()
        hidden = cin * expand
        layers = [conv_bn(cin, hidden, 1, act=nn.SiLU)] if expand != 1 else []
        layers += [conv_bn(hidden, hidden, k, stride, groups=hidden, act=nn.SiLU),
                   SqueezeExcite(hidden, max(1, cin // 4), act=nn.SiLU), conv_bn(hidden, cout, 1, act=None)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.block(x) if self.residual else self.block(x)


def efficientnet(classes: int = 10) -> nn.Module:
    """EfficientNet-B0's pattern at tiny width; torchvision init (Kaiming fan_out convs, uniform Linear)."""
    plan = [(1, 16, 1, 1, 3), (6, 24, 2, 2, 3), (6, 40, 2, 2, 5), (6, 64, 1, 2, 3)]   # (t, c, n, s, k)
    layers, cin = [conv_bn(3, 16, act=nn.SiLU)], 16
    for t, c, n, s, k in plan:
        for i in range(n):
            layers.append(MBConv(cin, c, s if i == 0 else 1, t, k))
            cin = c
    layers.append(conv_bn(cin, 128, 1, act=nn.SiLU))
    model = init_torchvision_cnn(nn.Sequential(*layers, classifier_head(128, classes, dropout=0.2)),
                                 linear_std=None)
    head = model[-1][-1]
    bound = 1.0 / head.out_features ** 0.5
    nn.init.uniform_(head.weight, -bound, bound)
    nn.init.zeros_(head.bias)
    return model
