"""LeNet-5, VGG-11-BN and the ResNet family (ResNet-18, ResNet-50 bottleneck, PreAct-ResNet-18,
SE-ResNet-18, RegNet-X) at tiny width, for 3x16x16 inputs (LeNet-5: 1x32x32 digits)."""
from __future__ import annotations

from torch import nn
from torch.nn import functional as F

from .layers import SqueezeExcite, classifier_head, conv_bn, init_regnet, init_torchvision_cnn


def lenet5(classes: int = 10) -> nn.Module:
    """LeCun et al. 1998 (ReLU + max-pool, as in today's re-implementations); PyTorch default init."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, classes))


def vgg11_bn(classes: int = 10, width: int = 16) -> nn.Module:
    """Simonyan & Zisserman 2015, config A with BN (CIFAR form: one Linear head); torchvision init."""
    cfg = [1, "M", 2, "M", 4, 4, "M", 8, 8, "M", 8, 8]
    layers, cin = [], 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers.append(conv_bn(cin, v * width))
            cin = v * width
    return init_torchvision_cnn(nn.Sequential(*layers, classifier_head(cin, classes)))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, width: int, stride: int = 1, se: bool = False):
        super().__init__()
        cout = width * self.expansion
        self.conv1 = conv_bn(cin, width, 3, stride)
        self.conv2 = conv_bn(width, cout, 3, 1, act=None)
        self.se = SqueezeExcite(cout, max(cout // 16, 4)) if se else nn.Identity()
        self.shortcut = (conv_bn(cin, cout, 1, stride, act=None) if stride != 1 or cin != cout else nn.Identity())
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.se(self.conv2(self.conv1(x))) + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1, se: bool = False):
        super().__init__()
        cout = width * self.expansion
        self.conv1 = conv_bn(cin, width, 1)
        self.conv2 = conv_bn(width, width, 3, stride)
        self.conv3 = conv_bn(width, cout, 1, act=None)
        self.shortcut = (conv_bn(cin, cout, 1, stride, act=None) if stride != 1 or cin != cout else nn.Identity())
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.conv3(self.conv2(self.conv1(x))) + self.shortcut(x))


class ResNet(nn.Module):
    """He et al. 2016 (CIFAR stem: one 3x3 conv, no max-pool); torchvision init."""

    def __init__(self, block, depths, classes: int = 10, width: int = 16, se: bool = False):
        super().__init__()
        self.stem = conv_bn(3, width)
        stages, cin = [], width
        for i, n in enumerate(depths):
            blocks = []
            for j in range(n):
                blocks.append(block(cin, width * 2 ** i, 2 if (j == 0 and i > 0) else 1, se=se))
                cin = width * 2 ** i * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.head = classifier_head(cin, classes)
        init_torchvision_cnn(self, linear_std=None)

    def forward(self, x):
        return self.head(self.stages(self.stem(x)))


def resnet18(classes: int = 10) -> nn.Module:
    return ResNet(BasicBlock, [2, 2, 2, 2], classes)


def resnet50(classes: int = 10) -> nn.Module:
    """Bottleneck blocks (expansion 4), depths [3, 4, 6, 3] shortened to [1, 2, 2, 1], base width 8."""
    return ResNet(Bottleneck, [1, 2, 2, 1], classes, width=8)


def se_resnet18(classes: int = 10) -> nn.Module:
    """Hu et al. 2018: a squeeze-excitation gate (reduction 16, at least 4 units) on every residual branch."""
    return ResNet(BasicBlock, [2, 2, 2, 2], classes, se=True)


class PreActBlock(nn.Module):
    """He et al. 2016b: ``x + conv(relu(bn(conv(relu(bn(x))))))``."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False) if stride != 1 or cin != cout else None

    def forward(self, x):
        out = F.relu(self.bn1(x))
        skip = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        return self.conv2(F.relu(self.bn2(out))) + skip


def preact_resnet18(classes: int = 10, width: int = 16) -> nn.Module:
    layers, cin = [nn.Conv2d(3, width, 3, 1, 1, bias=False)], width
    for i in range(4):
        for j in range(2):
            layers.append(PreActBlock(cin, width * 2 ** i, 2 if (j == 0 and i > 0) else 1))
            cin = width * 2 ** i
    layers += [nn.BatchNorm2d(cin), nn.ReLU(), classifier_head(cin, classes)]
    return init_torchvision_cnn(nn.Sequential(*layers), linear_std=None)


class XBlock(nn.Module):
    """Radosavovic et al. 2020 RegNet-X block: 1x1, grouped 3x3 (group width 8), 1x1, residual."""

    def __init__(self, cin: int, cout: int, stride: int, group_width: int = 8):
        super().__init__()
        self.a = conv_bn(cin, cout, 1)
        self.b = conv_bn(cout, cout, 3, stride, groups=cout // group_width)
        self.c = conv_bn(cout, cout, 1, act=None)
        self.shortcut = conv_bn(cin, cout, 1, stride, act=None) if stride != 1 or cin != cout else nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.c(self.b(self.a(x))) + self.shortcut(x))


def regnet_x(classes: int = 10, widths=(16, 32, 48, 64), depths=(1, 1, 2, 2)) -> nn.Module:
    layers, cin = [conv_bn(3, 16)], 16
    for i, (w, d) in enumerate(zip(widths, depths)):
        for j in range(d):
            layers.append(XBlock(cin, w, 2 if (j == 0 and i > 0) else 1))
            cin = w
    return init_regnet(nn.Sequential(*layers, classifier_head(cin, classes)))
