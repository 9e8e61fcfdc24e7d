"""The held-out architectures, run only with ``--held-out`` (never looked at while tuning rules):
ResNeXt (grouped bottlenecks), ConvNeXt (depthwise 7x7, LayerNorm, GELU, layer scale), MLP-Mixer,
and a vanilla tanh RNN language model."""
from __future__ import annotations

import torch
from torch import nn

from .layers import classifier_head, conv_bn, init_torchvision_cnn


class ResNeXtBlock(nn.Module):
    """Xie et al. 2017: 1x1, grouped 3x3 (cardinality 8), 1x1 (x2 width), residual."""

    def __init__(self, cin: int, width: int, stride: int, cardinality: int = 8):
        super().__init__()
        cout = 2 * width
        self.body = nn.Sequential(conv_bn(cin, width, 1), conv_bn(width, width, 3, stride, groups=cardinality),
                                  conv_bn(width, cout, 1, act=None))
        self.shortcut = conv_bn(cin, cout, 1, stride, act=None) if stride != 1 or cin != cout else nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.body(x) + self.shortcut(x))


def resnext(classes: int = 10) -> nn.Module:
    layers, cin = [conv_bn(3, 16)], 16
    for width, stride in [(16, 1), (32, 2), (64, 2)]:
        layers.append(ResNeXtBlock(cin, width, stride))
        cin = 2 * width
    return init_torchvision_cnn(nn.Sequential(*layers, classifier_head(cin, classes)), linear_std=None)


class ChannelsLastNorm(nn.LayerNorm):
    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    """Liu et al. 2022: depthwise 7x7, LayerNorm, 1x1 (4x) GELU 1x1, layer scale 1e-6, residual."""

    def __init__(self, dim: int):
        super().__init__()
        self.dw, self.norm = nn.Conv2d(dim, dim, 7, padding=3, groups=dim), ChannelsLastNorm(dim, eps=1e-6)
        self.pw1, self.act, self.pw2 = nn.Conv2d(dim, 4 * dim, 1), nn.GELU(), nn.Conv2d(4 * dim, dim, 1)
        self.gamma = nn.Parameter(1e-6 * torch.ones(dim, 1, 1))

    def forward(self, x):
        return x + self.gamma * self.pw2(self.act(self.pw1(self.norm(self.dw(x)))))


def convnext(classes: int = 10) -> nn.Module:
    """Patchify stem (2x2), stages of widths (32, 64) with downsampling layers; truncated-normal 0.02 init."""
    model = nn.Sequential(
        nn.Conv2d(3, 32, 2, 2), ChannelsLastNorm(32, eps=1e-6), ConvNeXtBlock(32), ConvNeXtBlock(32),
        ChannelsLastNorm(32, eps=1e-6), nn.Conv2d(32, 64, 2, 2), ConvNeXtBlock(64), ConvNeXtBlock(64),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.LayerNorm(64, eps=1e-6), nn.Linear(64, classes))
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, 0.0, 0.02, -0.04, 0.04)
            nn.init.zeros_(m.bias)
    return model


class MixerBlock(nn.Module):
    """Tolstikhin et al. 2021: token-mixing MLP across patches, channel-mixing MLP across features."""

    def __init__(self, tokens: int, dim: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.token_mlp = nn.Sequential(nn.Linear(tokens, 2 * tokens), nn.GELU(), nn.Linear(2 * tokens, tokens))
        self.channel_mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x):
        x = x + self.token_mlp(self.norm1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.channel_mlp(self.norm2(x))


class MLPMixer(nn.Module):
    def __init__(self, classes: int = 10, dim: int = 64, patch: int = 4, size: int = 16):
        super().__init__()
        tokens = (size // patch) ** 2
        self.stem = nn.Conv2d(3, dim, patch, patch)
        self.blocks = nn.Sequential(MixerBlock(tokens, dim), MixerBlock(tokens, dim))
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, classes)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.normal_(m.bias, 0.0, 1e-6)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x):
        h = self.stem(x).flatten(2).transpose(1, 2)
        return self.head(self.norm(self.blocks(h)).mean(dim=1))
