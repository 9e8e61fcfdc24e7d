"""Forward+backward time of ``impediments.norm`` layers against torch's native layers.

Usage::

    python benchmarks/norm.py [--repeats 21] [--number N] [--threads 1] [--large] [--json PATH]

For each layer and shape (the dense and conv shapes of the experiments: MLP batch 60 × 100 units,
128 × 256, MNIST-1D CNN 64 × 25 × 20, 2-D CNN 32 × 16 × 14 × 14, and a ResNet-like
64 × 64 × 32 × 32; ``--large`` adds 256 × 1024 and 64 × 32 × 28 × 28), three implementations run
in the same process on the same input: ours (the default, fused path), torch's native layer, and
our explicit reference path (:func:`impediments.norm.fused.reference_path`). Repeats are
interleaved (ours, native, reference, ours, ...) so machine load hits all alike. Each time is the
median over repeats of the mean time of ``number`` calls of ``y = layer(x); y.backward(g)`` (by
default ``number`` is chosen so that one repeat of the native layer takes about 10 ms). A ratio
is the median of the per-repeat ratios, with their 10th-90th percentile range in brackets.
BatchNorm runs in training mode (batch statistics + running-stat update), inference mode
(``eval()``) and frozen (:func:`impediments.norm.freeze`, which survives ``train()``). A second
table times whole training steps (forward, backward, SGD step) of the library's models with their
torch norms swapped for ours.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from impediments import norm
from impediments.models.cnn import cnn2d
from impediments.norm.fused import reference_path
from impediments.models import cnn1d, mlp
from impediments.models.layers import group_count

DENSE = [(60, 100), (128, 256)]
CONV = [(64, 25, 20), (32, 16, 14, 14), (64, 64, 32, 32)]
LARGE_DENSE = [(256, 1024)]
LARGE_CONV = [(64, 32, 28, 28)]


def cases(large: bool = False) -> list[tuple[str, tuple[int, ...], Callable[[], nn.Module], Callable[[], nn.Module]]]:
    dense, conv = DENSE + (LARGE_DENSE if large else []), CONV + (LARGE_CONV if large else [])
    out = []
    for shape in dense + conv:
        c = shape[1]
        native_bn = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d}[len(shape)]
        out.append(("BatchNorm", shape, lambda c=c: norm.BatchNorm(c), lambda c=c, f=native_bn: f(c)))
        out.append(("BatchNorm eval", shape, lambda c=c: _warm(norm.BatchNorm(c), c).eval(),
                    lambda c=c, f=native_bn: _warm(f(c), c).eval()))
        out.append(("BatchNorm frozen", shape, lambda c=c: norm.freeze(_warm(norm.BatchNorm(c), c)).train(),
                    lambda c=c, f=native_bn: norm.freeze(_warm(f(c), c)).train()))
        g = group_count(c)
        out.append((f"GroupNorm(G={g})", shape, lambda c=c, g=g: norm.GroupNorm(g, c),
                    lambda c=c, g=g: nn.GroupNorm(g, c)))
    for shape in dense:
        c = shape[1]
        out.append(("LayerNorm", shape, lambda c=c: norm.LayerNorm(c), lambda c=c: nn.LayerNorm(c)))
    for shape in conv:
        c = shape[1]
        out.append(("InstanceNorm", shape, lambda c=c: norm.InstanceNorm(c, affine=True),
                    lambda c=c, n=len(shape): (nn.InstanceNorm1d if n == 3 else nn.InstanceNorm2d)(c, affine=True)))
    return out


def _warm(layer: nn.Module, c: int) -> nn.Module:
    """Running statistics away from their initial 0/1, as after some training."""
    with torch.no_grad():
        layer.running_mean.uniform_(-1, 1)
        layer.running_var.uniform_(0.5, 2)
    return layer


def _reference(fn: Callable[[], object]) -> Callable[[], object]:
    def run() -> object:
        with reference_path():
            return fn()
    return run


def interleaved(runs: dict[str, Callable[[], object]], repeats: int, number: int | None) -> dict[str, list[float]]:
    """Per-repeat mean time (seconds) of ``number`` calls of each run, repeats interleaved."""

    def run(fn: Callable[[], object], calls: int) -> float:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        return (time.perf_counter() - start) / calls

    for fn in runs.values():
        run(fn, 3)  # warm-up
    number = number or max(1, round(0.01 / run(runs["native"], 5)))
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            times[name].append(run(fn, number))
    return times


def ratio(times: dict[str, list[float]], name: str) -> tuple[float, float, float]:
    """Median and 10th/90th percentiles of the per-repeat ratio ``name / native``."""
    ratios = sorted(a / b for a, b in zip(times[name], times["native"]))
    pick = lambda q: ratios[min(len(ratios) - 1, round(q * (len(ratios) - 1)))]  # noqa: E731
    return statistics.median(ratios), pick(0.1), pick(0.9)


def _row(label: str, shape: str, times: dict[str, list[float]]) -> dict:
    med = {k: statistics.median(v) for k, v in times.items()}
    row = {"case": label, "shape": shape, "native_us": med["native"] * 1e6, "ours_us": med["ours"] * 1e6,
           "ours_over_native": ratio(times, "ours")}
    if "reference" in times:
        row["reference_us"] = med["reference"] * 1e6
        row["reference_over_native"] = ratio(times, "reference")
    fmt = lambda r: f"{r[0]:.2f} [{r[1]:.2f}-{r[2]:.2f}]"  # noqa: E731
    ref = f"{fmt(row['reference_over_native']):>20}" if "reference" in times else ""
    print(f"{label:<18} {shape:<18} {row['native_us']:>10.1f} {row['ours_us']:>10.1f} "
          f"{fmt(row['ours_over_native']):>20}{ref}")
    return row


def layer_step(layer: nn.Module, shape: tuple[int, ...]) -> Callable[[], None]:
    x = torch.randn(shape, requires_grad=True)
    g = torch.randn(shape)
    return lambda: layer(x).backward(g)


def with_our_norms(model: nn.Module) -> nn.Module:
    """A copy of a library model with each torch BatchNorm/LayerNorm/GroupNorm replaced by ours (same state)."""
    model = copy.deepcopy(model)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                ours = norm.BatchNorm(child.num_features, child.eps, child.momentum)
            elif isinstance(child, nn.LayerNorm):
                ours = norm.LayerNorm(child.normalized_shape, child.eps)
            elif isinstance(child, nn.GroupNorm):
                ours = norm.GroupNorm(child.num_groups, child.num_channels, child.eps)
            else:
                continue
            ours.load_state_dict(child.state_dict())
            setattr(parent, name, ours)
    return model


def train_step(model: nn.Module, batch: int, in_features: int | tuple[int, ...]) -> Callable[[], None]:
    shape = in_features if isinstance(in_features, tuple) else (in_features,)
    x, y = torch.randn(batch, *shape), torch.randint(0, 10, (batch,))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)

    def step() -> None:
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return step


MODELS = [
    ("mlp 784-3x100 sigmoid BN", lambda: mlp(784, 10, width=100, depth=3, activation="sigmoid", norm="batch"), 60, 784),
    ("mlp 784-3x100 LN", lambda: mlp(784, 10, width=100, depth=3, norm="layer"), 60, 784),
    ("cnn1d BN (MNIST-1D)", lambda: cnn1d(norm="batch"), 32, 40),
    ("cnn1d GN (MNIST-1D)", lambda: cnn1d(norm="group"), 32, 40),
    ("cnn1d BN batch 4", lambda: cnn1d(norm="batch"), 4, 40),
    ("cnn2d BN 28x28", lambda: cnn2d(norm="batch", width=32), 32, (1, 28, 28)),
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--number", type=int, default=None, help="calls per repeat (default: ~10 ms of native)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--large", action="store_true", help="also time larger shapes")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    machine = platform.processor() or platform.machine()
    header = (f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {os.cpu_count()} CPU(s) {machine}, "
              f"{repeats_note(args)}")
    print(header)
    print(f"{'layer':<18} {'shape':<18} {'native µs':>10} {'ours µs':>10} {'ours/native':>20} {'reference/native':>20}")
    layers = []
    for name, shape, make_ours, make_native in cases(args.large):
        ours, native = make_ours(), make_native()
        ref = copy.deepcopy(ours)
        times = interleaved({"ours": layer_step(ours, shape), "native": layer_step(native, shape),
                             "reference": _reference(layer_step(ref, shape))}, args.repeats, args.number)
        layers.append(_row(name, str(shape), times))
    print("\nwhole training step (forward, backward, SGD step) with the model's norms swapped for ours")
    steps = []
    for name, make, batch, features in MODELS:
        native = make().train()
        ours, ref = with_our_norms(native), with_our_norms(native)
        times = interleaved({"ours": train_step(ours, batch, features), "native": train_step(native, batch, features),
                             "reference": _reference(train_step(ref, batch, features))}, args.repeats, args.number)
        steps.append(_row(name, f"batch {batch}", times))
    if args.json:
        from impediments._files import write_atomic

        write_atomic(args.json, json.dumps({"machine": header, "layers": layers, "training_steps": steps}, indent=2))


def repeats_note(args: argparse.Namespace) -> str:
    calls = args.number or "~10 ms of"
    return f"median of {args.repeats} interleaved repeats × {calls} calls"


if __name__ == "__main__":
    main()
