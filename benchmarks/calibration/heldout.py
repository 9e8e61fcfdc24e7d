"""The held-out architectures, run only with ``--held-out`` (never looked at while tuning rules):
ResNeXt (grouped bottlenecks), ConvNeXt (depthwise 7x7, LayerNorm, GELU, layer scale), MLP-Mixer,
and a vanilla tanh RNN language model; a second set added later (not run through the doctor when
added): Wide ResNet, PyTorch's own ``nn.TransformerEncoder`` (post-LN) and a temporal convolutional
network."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

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


class WideBasic(nn.Module):
    """Zagoruyko & Komodakis 2016: pre-activation ``BN-ReLU-conv3x3-BN-ReLU-conv3x3`` (dropout 0), identity
    shortcut, or a 1x1 conv on the activated input when the width or stride changes."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False) if stride != 1 or cin != cout else None

    def forward(self, x):
        out = F.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(out)
        return self.conv2(F.relu(self.bn2(self.conv1(out)))) + skip


def wide_resnet(classes: int = 10, depth: int = 16, k: int = 2, base: int = 8) -> nn.Module:
    """WRN-16-2 at half the base width: a 3x3 stem of 16, three groups of (16-4)/6 = 2 blocks of widths
    ``base * k * (1, 2, 4)`` = (16, 32, 64), strides (1, 2, 2), BN-ReLU, average pool, Linear. Init as in
    the reference code: convs ``N(0, 2 / (k*k*out))`` (Kaiming fan_out), BN weight 1 bias 0, Linear bias 0."""
    n = (depth - 4) // 6
    layers, cin = [nn.Conv2d(3, 16, 3, 1, 1, bias=False)], 16
    for i, stride in enumerate((1, 2, 2)):
        for j in range(n):
            layers.append(WideBasic(cin, base * k * 2 ** i, stride if j == 0 else 1))
            cin = base * k * 2 ** i
    layers += [nn.BatchNorm2d(cin), nn.ReLU(inplace=True), classifier_head(cin, classes)]
    return init_torchvision_cnn(nn.Sequential(*layers), linear_std=None)


class TorchTransformerLM(nn.Module):
    """Vaswani et al. 2017 as PyTorch ships it: ``nn.TransformerEncoder`` of 4 post-LN
    ``nn.TransformerEncoderLayer`` (d 64, 4 heads, feed-forward 128, ReLU, dropout 0.1) under a causal
    mask, a learned token embedding plus learned positions (dropout 0.1), a Linear head. Every layer keeps
    PyTorch's default init (MultiheadAttention's Xavier in-projection, Linear's Kaiming-uniform,
    Embedding's ``N(0, 1)``): the code under test is torch's, not this project's."""

    def __init__(self, vocab: int = 32, length: int = 32, d: int = 64):
        super().__init__()
        self.tok, self.pos, self.drop = nn.Embedding(vocab, d), nn.Embedding(length, d), nn.Dropout(0.1)
        layer = nn.TransformerEncoderLayer(d, 4, dim_feedforward=128, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=4, enable_nested_tensor=False)
        self.head = nn.Linear(d, vocab)         # registered last: the output layer

    def forward(self, idx):
        t = idx.shape[1]
        mask = nn.Transformer.generate_square_subsequent_mask(t)
        h = self.drop(self.tok(idx) + self.pos(torch.arange(t)))
        return self.head(self.encoder(h, mask=mask, is_causal=True))


class TemporalBlock(nn.Module):
    """Bai, Kolter & Koltun 2018: two dilated causal convs (left padding ``(k-1)*d``, then the right end
    chomped off), each followed by ReLU and dropout; ``relu(out + res)`` with a 1x1 conv ``res`` when the
    channels differ. Weights ``N(0, 0.01^2)`` as in the reference code (its weight_norm is left out)."""

    def __init__(self, cin: int, cout: int, dilation: int, k: int = 3, dropout: float = 0.05):
        super().__init__()
        self.chomp = (k - 1) * dilation
        self.conv1 = nn.Conv1d(cin, cout, k, padding=self.chomp, dilation=dilation)
        self.conv2 = nn.Conv1d(cout, cout, k, padding=self.chomp, dilation=dilation)
        self.drop1, self.drop2 = nn.Dropout(dropout), nn.Dropout(dropout)
        self.downsample = nn.Conv1d(cin, cout, 1) if cin != cout else None
        for conv in (self.conv1, self.conv2, self.downsample):
            if conv is not None:
                nn.init.normal_(conv.weight, 0.0, 0.01)

    def forward(self, x):
        out = self.drop1(F.relu(self.conv1(x)[..., :-self.chomp]))
        out = self.drop2(F.relu(self.conv2(out)[..., :-self.chomp]))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class TCN(nn.Module):
    """A TCN language model (the reference code's word_cnn at tiny width): embedding 32, three temporal
    blocks of 64 channels with kernel 3 and dilations 1, 2, 4 (receptive field 29), Linear decoder;
    encoder and decoder ``N(0, 0.01^2)``, decoder bias 0. The recipe (registry) is the reference code's
    sequential-MNIST / adding-problem defaults: Adam lr 2e-3, dropout 0.05, no gradient clipping. The tiny
    init starts slowly: in a plain loop (no monitor) the loss falls 3.47 -> 3.24 (mean of steps 26-30),
    3.01 at 60 steps and 1.91 at 150."""

    def __init__(self, vocab: int = 32, emb: int = 32, channels: int = 64):
        super().__init__()
        self.encoder = nn.Embedding(vocab, emb)
        self.tcn = nn.Sequential(*[TemporalBlock(emb if i == 0 else channels, channels, 2 ** i) for i in range(3)])
        self.decoder = nn.Linear(channels, vocab)
        nn.init.normal_(self.encoder.weight, 0.0, 0.01)
        nn.init.normal_(self.decoder.weight, 0.0, 0.01)
        nn.init.zeros_(self.decoder.bias)

    def forward(self, idx):
        return self.decoder(self.tcn(self.encoder(idx).transpose(1, 2)).transpose(1, 2))
