"""The doctor's zoo: broken and healthy setups, per-code detection recall and healthy false-positive rate.

Usage::

    python benchmarks/doctor_zoo.py [--steps 60] [--only NAME ...] [--json out.json]

Every setup trains briefly under :func:`impediments.monitor.watch` (digits or
MNIST-1D, standardized unless the setup breaks that on purpose) and is
diagnosed with default thresholds. A broken setup lists the codes it must
produce; a code counts as detected at any severity. A healthy setup (standardized
inputs, He/Glorot init matched to its activation, a sensible learning rate)
counts as a false positive if it produces any warning or error.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

import impediments as imp
from impediments.doctor import CODES
from impediments.doctor.spec import train_under_monitor

LINEAR_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d)


@dataclass
class Setup:
    name: str
    family: str                     # "mlp" | "cnn" | "residual"
    expected: frozenset             # empty: healthy
    build: object                   # () -> dict(model, data, opt, ...)
    steps: int | None = None
    batch_size: int = 64
    extra: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------ helpers
def init(model, kind="he", *, bias=0.0, scale=1.0, std=None):
    """He/Glorot/normal(std)/constant init of every Linear/Conv; ``scale`` multiplies the std."""
    for m in model.modules():
        if isinstance(m, LINEAR_TYPES):
            w = m.weight
            if kind == "he":
                nn.init.kaiming_normal_(w, nonlinearity="relu")
            elif kind == "glorot":
                nn.init.xavier_normal_(w)
            elif kind == "normal":
                nn.init.normal_(w, std=std)
            elif kind == "constant":
                nn.init.constant_(w, std)
            with torch.no_grad():
                w.mul_(scale)
            if m.bias is not None:
                nn.init.constant_(m.bias, bias)
    return model


def data(name="digits", *, standardize=True):
    d = imp.load_dataset(name, standardize=standardize)
    return d.X_train, d.y_train


def sgd(lr, **kw):
    return lambda params: torch.optim.SGD(params, lr=lr, **kw)


def mlp(depth=3, width=64, act="relu", **kw):
    return imp.mlp(64, 10, width=width, depth=depth, activation=act, **kw)


def cnn(act="relu", **kw):
    return imp.cnn2d((1, 8, 8), 10, width=16, depth=2, activation=act, **kw)


def cnn1d(act="relu", **kw):
    return imp.cnn1d((1, 40), 10, width=16, depth=3, activation=act, **kw)


class FunctionalMLP(nn.Module):
    """Activations called functionally (F.relu), not as modules."""

    def __init__(self, depth=3, width=64):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(64 if i == 0 else width, width) for i in range(depth))
        self.out = nn.Linear(width, 10)

    def forward(self, x):
        for layer in self.layers:
            x = F.relu(layer(x))
        return self.out(x)


class BasicBlock(nn.Module):
    """torchvision-style ResNet BasicBlock on 8x8 digits."""

    def __init__(self, c):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + x)


class ResNet(nn.Module):
    def __init__(self, c=16, blocks=2, dropout_before_bn=False):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, c, 3, padding=1, bias=False),
                                  nn.Dropout2d(0.3) if dropout_before_bn else nn.Identity(),
                                  nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.layer1 = nn.Sequential(*[BasicBlock(c) for _ in range(blocks)])
        self.fc = nn.Linear(c, 10)

    def forward(self, x):
        x = self.layer1(self.stem(x.view(-1, 1, 8, 8)))
        return self.fc(x.mean((2, 3)))


def eval_bn(model):
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def frozen_bn(model):
    """Transfer learning done right: the backbone frozen with impediments.norm.freeze, the head trains."""
    imp.norm.freeze(model.stem)
    imp.norm.freeze(model.layer1)


# ------------------------------------------------------------------------------------------------ the zoo
def zoo() -> list[Setup]:
    S = Setup
    fz = frozenset
    healthy = [
        S("healthy_mlp_relu_he", "mlp", fz(), lambda: dict(model=init(mlp()), data=data(), opt=sgd(0.1))),
        S("healthy_mlp_tanh_glorot", "mlp", fz(), lambda: dict(model=init(mlp(act="tanh"), "glorot"), data=data(),
                                                               opt=sgd(0.1))),
        S("healthy_mlp_gelu_he_adam", "mlp", fz(), lambda: dict(model=init(mlp(act="gelu")), data=data(),
                                                                opt=lambda p: torch.optim.Adam(p, lr=1e-3))),
        S("healthy_functional_mlp", "mlp", fz(), lambda: dict(model=init(FunctionalMLP()), data=data(), opt=sgd(0.1))),
        S("healthy_cnn2d_relu_he", "cnn", fz(), lambda: dict(model=init(cnn()), data=data(), opt=sgd(0.05))),
        S("healthy_cnn1d_bn_mnist1d", "cnn", fz(), lambda: dict(model=init(cnn1d(norm="batch")),
                                                                data=data("mnist1d"), opt=sgd(0.05))),
        S("healthy_residual_mlp_bn", "residual", fz(), lambda: dict(model=init(mlp(depth=4, residual=True,
                                                                                   norm="batch")),
                                                                    data=data(), opt=sgd(0.05))),
        S("healthy_resnet_bn", "residual", fz(), lambda: dict(model=init(ResNet()), data=data(), opt=sgd(0.05))),
    ]
    broken = [
        S("dead_bias_mlp", "mlp", fz({"dead_units", "loss_plateau"}),
          lambda: dict(model=init(mlp(), bias=-10.0), data=data(), opt=sgd(0.1))),
        S("dead_bias_cnn", "cnn", fz({"dead_units"}), lambda: dict(model=init(cnn(), bias=-10.0), data=data(),
                                                                   opt=sgd(0.05))),
        S("saturated_sigmoid_mlp", "mlp", fz({"saturated_units"}),
          lambda: dict(model=init(mlp(depth=4, act="sigmoid"), "he", scale=10.0), data=data(), opt=sgd(0.1))),
        S("saturated_tanh_cnn", "cnn", fz({"saturated_units"}),
          lambda: dict(model=init(cnn(act="tanh"), "he", scale=5.0), data=data(), opt=sgd(0.05))),
        S("linear_tanh_tiny_init", "mlp", fz({"linear_regime"}),
          lambda: dict(model=init(mlp(act="tanh"), "glorot", scale=0.01), data=data(), opt=sgd(0.1))),
        S("linear_relu_positive_bias", "mlp", fz({"linear_regime"}),
          lambda: dict(model=init(mlp(), "he", scale=0.1, bias=10.0), data=data(), opt=sgd(0.01))),
        S("vanishing_act_deep_relu", "mlp", fz({"vanishing_activations"}),
          lambda: dict(model=init(mlp(depth=8), "he", scale=0.5), data=data(), opt=sgd(0.1))),
        S("vanishing_act_deep_cnn", "cnn", fz({"vanishing_activations"}),
          lambda: dict(model=init(cnn1d(), "he", scale=0.3), data=data("mnist1d"), opt=sgd(0.05))),
        S("exploding_act_deep_relu", "mlp", fz({"exploding_activations"}),
          lambda: dict(model=init(mlp(depth=6), "he", scale=2.0), data=data(), opt=sgd(1e-4))),
        S("exploding_act_residual_no_norm", "residual", fz({"exploding_activations"}),
          lambda: dict(model=init(mlp(depth=12, residual=True), "he"), data=data(), opt=sgd(1e-4))),
        S("vanishing_grad_deep_sigmoid", "mlp", fz({"vanishing_gradients"}),
          lambda: dict(model=init(mlp(depth=6, act="sigmoid"), "glorot"), data=data(), opt=sgd(0.1))),
        S("vanishing_grad_deep_relu_small", "mlp", fz({"vanishing_gradients"}),
          lambda: dict(model=init(mlp(depth=8), "he", scale=0.5), data=data(), opt=sgd(0.1))),
        S("exploding_grad_huge_lr", "mlp", fz({"exploding_gradients"}),
          lambda: dict(model=init(mlp()), data=data(), opt=sgd(20.0))),
        S("exploding_grad_deep_relu_large", "mlp", fz({"exploding_gradients"}),
          lambda: dict(model=init(mlp(depth=8), "he", scale=2.5), data=data(), opt=sgd(1e-4))),
        S("symmetric_zero_init_tanh", "mlp", fz({"symmetric_units"}),
          lambda: dict(model=init(mlp(act="tanh"), "constant", std=0.0), data=data(), opt=sgd(0.1))),
        S("symmetric_identical_init_relu", "mlp", fz({"symmetric_units"}),
          lambda: dict(model=init(mlp(), "constant", std=0.05), data=data(), opt=sgd(0.1))),
        S("symmetric_constant_cnn", "cnn", fz({"symmetric_units"}),
          lambda: dict(model=init(cnn(act="tanh"), "constant", std=0.05), data=data(), opt=sgd(0.05))),
        S("uncentered_raw_digits", "mlp", fz({"uncentered_inputs", "unequal_input_scales"}),
          lambda: dict(model=init(mlp()), data=data(standardize=False), opt=sgd(0.001))),
        S("uncentered_shifted_mnist1d_cnn", "cnn", fz({"uncentered_inputs"}),
          lambda: dict(model=init(cnn1d()), data=(data("mnist1d")[0] + 3.0, data("mnist1d")[1]), opt=sgd(0.01))),
        S("unequal_scaled_features_mlp", "mlp", fz({"unequal_input_scales"}),
          lambda: dict(model=init(mlp()), data=(data()[0] * torch.logspace(0, 2, 64), data()[1]), opt=sgd(1e-4))),
        S("non_finite_huge_lr", "mlp", fz({"non_finite", "diverging_loss"}),
          lambda: dict(model=init(mlp()), data=data(), opt=sgd(200.0))),
        S("non_finite_nan_input_cnn", "cnn", fz({"non_finite"}),
          lambda: dict(model=init(cnn()), data=(_with_nan(data()[0]), data()[1]), opt=sgd(0.05))),
        S("bn_small_batch_mlp", "mlp", fz({"bn_small_batch"}),
          lambda: dict(model=init(mlp(norm="batch")), data=data(), opt=sgd(0.05)), batch_size=4),
        S("bn_small_batch_cnn1d", "cnn", fz({"bn_small_batch"}),
          lambda: dict(model=init(cnn1d(norm="batch")), data=data("mnist1d"), opt=sgd(0.01)), batch_size=1),
        S("dropout_before_bn_mlp", "mlp", fz({"dropout_before_bn"}),
          lambda: dict(model=init(nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Dropout(0.5), nn.Linear(64, 64),
                                                nn.Dropout(0.5), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 10))),
                       data=data(), opt=sgd(0.05))),
        S("dropout_before_bn_resnet", "residual", fz({"dropout_before_bn"}),
          lambda: dict(model=init(ResNet(dropout_before_bn=True)), data=data(), opt=sgd(0.05))),
        S("bn_eval_during_training_mlp", "mlp", fz({"bn_inference_mode_in_training"}),
          lambda: dict(model=init(mlp(norm="batch")), data=data(), opt=sgd(0.05), prepare=eval_bn)),
        S("bn_frozen_resnet", "residual", fz({"bn_inference_mode_in_training"}),
          lambda: dict(model=init(ResNet()), data=data(), opt=sgd(0.05), prepare=frozen_bn)),
        S("weight_decay_bn_mlp", "mlp", fz({"weight_decay_with_bn"}),
          lambda: dict(model=init(mlp(norm="batch")), data=data(), opt=sgd(0.05, weight_decay=5e-4))),
        S("weight_decay_bn_cnn", "cnn", fz({"weight_decay_with_bn"}),
          lambda: dict(model=init(cnn(norm="batch")), data=data(), opt=sgd(0.05, weight_decay=5e-3))),
        S("diverging_adam_lr", "mlp", fz({"diverging_loss"}),
          lambda: dict(model=init(mlp()), data=data(), opt=lambda p: torch.optim.Adam(p, lr=3.0))),
        S("diverging_residual_lr", "residual", fz({"diverging_loss"}),
          lambda: dict(model=init(mlp(depth=4, residual=True)), data=data(), opt=sgd(2.0))),
        S("plateau_tiny_lr", "mlp", fz({"loss_plateau"}),
          lambda: dict(model=init(mlp()), data=data(), opt=sgd(1e-6))),
        S("plateau_dead_cnn", "cnn", fz({"loss_plateau", "dead_units"}),
          lambda: dict(model=init(cnn(), bias=-10.0), data=data(), opt=sgd(0.05))),
    ]
    return healthy + broken


def _with_nan(X):
    X = X.clone()
    X[7, 3] = float("nan")
    return X


# ------------------------------------------------------------------------------------------------ running
def run_setup(setup: Setup, steps: int, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    parts = setup.build()
    model, (X, y) = parts["model"], parts["data"]
    opt = parts["opt"](model.parameters())
    start = time.perf_counter()
    mon = train_under_monitor(model, X, y, opt, F.cross_entropy, steps=setup.steps or steps,
                              batch_size=setup.batch_size, seed=seed, prepare=parts.get("prepare"))
    report = mon.report()
    flagged = {f.code for f in report.findings if f.severity in ("warning", "error")}
    return {"name": setup.name, "family": setup.family, "expected": sorted(setup.expected),
            "found": sorted(report.codes), "flagged": sorted(flagged),
            "missed": sorted(setup.expected - report.codes), "seconds": time.perf_counter() - start}


def summarize(rows: list[dict]) -> dict:
    recall, flagged = {}, {}
    for code in CODES:
        hits = [code in r["found"] for r in rows if code in r["expected"]]
        recall[code] = (sum(hits), len(hits))
        flagged[code] = sum(code in r["flagged"] for r in rows if code in r["expected"])
    healthy = [r for r in rows if not r["expected"]]
    fp = [r for r in healthy if r["flagged"]]
    return {"recall": recall, "flagged": flagged, "healthy": len(healthy), "false_positives": len(fp),
            "false_positive_setups": {r["name"]: r["flagged"] for r in fp}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    setups = [s for s in zoo() if not args.only or s.name in args.only]
    rows = []
    for s in setups:
        row = run_setup(s, args.steps, args.seed)
        rows.append(row)
        status = "ok" if not row["missed"] and (row["expected"] or not row["flagged"]) else "MISS"
        print(f"{status:4s} {s.name:34s} {s.family:8s} expected={','.join(row['expected']) or '-'} "
              f"found={','.join(row['found']) or '-'} ({row['seconds']:.1f}s)", flush=True)
    summary = summarize(rows)
    print("\n| code | detected / setups | recall | of which warning or error |\n|---|---|---|---|")
    for code, (hit, total) in summary["recall"].items():
        print(f"| `{code}` | {hit} / {total} | {hit / total:.0%} | {summary['flagged'][code]} |" if total
              else f"| `{code}` | 0 / 0 | n/a | |")
    print(f"\nhealthy setups: {summary['healthy']}, false positives (any warning/error): "
          f"{summary['false_positives']} ({summary['false_positives'] / max(summary['healthy'], 1):.0%})"
          + (f" {summary['false_positive_setups']}" if summary["false_positives"] else ""))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rows": rows, "summary": summary}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
