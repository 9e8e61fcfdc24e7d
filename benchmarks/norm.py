"""Forward+backward time of ``impediments.norm`` layers against torch's native layers.

Usage::

    python benchmarks/norm.py [--repeats 21] [--number N] [--threads 1] [--large]

For each layer and shape (the dense and conv shapes of the experiments:
MLP batch 60 × 100 units, 128 × 256, MNIST-1D CNN 64 × 25 × 20, 2-D CNN
32 × 16 × 14 × 14; ``--large`` adds 256 × 1024 and 64 × 32 × 28 × 28),
both implementations run in the same process with the same input; repeats
are interleaved (ours, native, ours, native, ...) so machine load hits both
alike, and each column is the median over repeats of the mean time of
``number`` calls of ``y = layer(x); y.backward(g)`` (by default ``number``
is chosen so that one repeat of the native layer takes about 10 ms).
BatchNorm runs in training mode (batch statistics + running-stat update).
A second table times whole training steps (forward, backward, SGD step) of
the library's models with their torch norms swapped for ours.
"""
from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from impediments import norm
from impediments.models import cnn1d, mlp
from impediments.models.layers import group_count

DENSE = [(60, 100), (128, 256)]
CONV = [(64, 25, 20), (32, 16, 14, 14)]
LARGE_DENSE = [(256, 1024)]
LARGE_CONV = [(64, 32, 28, 28)]


def cases(large: bool = False) -> list[tuple[str, tuple[int, ...], Callable[[], nn.Module], Callable[[], nn.Module]]]:
    dense, conv = DENSE + (LARGE_DENSE if large else []), CONV + (LARGE_CONV if large else [])
    out = []
    for shape in dense + conv:
        c = shape[1]
        native_bn = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d}[len(shape)]
        out.append(("BatchNorm", shape, lambda c=c: norm.BatchNorm(c), lambda c=c, f=native_bn: f(c)))
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


def interleaved(run_ours: Callable[[], object], run_native: Callable[[], object], repeats: int,
                number: int | None) -> tuple[float, float]:
    """Median over interleaved repeats of the mean time of ``number`` calls; returns (ours, native) seconds."""

    def run(fn: Callable[[], object], calls: int) -> float:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        return (time.perf_counter() - start) / calls

    run(run_ours, 3), run(run_native, 3)  # warm-up
    number = number or max(1, round(0.01 / run(run_native, 5)))
    times: dict[str, list[float]] = {"ours": [], "native": []}
    for _ in range(repeats):
        times["ours"].append(run(run_ours, number))
        times["native"].append(run(run_native, number))
    return statistics.median(times["ours"]), statistics.median(times["native"])


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


def train_step(model: nn.Module, batch: int, in_features: int) -> Callable[[], None]:
    x, y = torch.randn(batch, in_features), torch.randint(0, 10, (batch,))
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
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--number", type=int, default=None, help="calls per repeat (default: ~10 ms of native)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--large", action="store_true", help="also time larger shapes")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    machine = platform.processor() or platform.machine()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {os.cpu_count()} CPU(s) {machine}, "
          f"{repeats_note(args)}")
    print(f"{'layer':<26} {'shape':<18} {'native µs':>10} {'ours µs':>10} {'ours/native':>12}")
    for name, shape, make_ours, make_native in cases(args.large):
        ours, native = make_ours().train(), make_native().train()
        t_ours, t_native = interleaved(layer_step(ours, shape), layer_step(native, shape), args.repeats, args.number)
        print(f"{name:<26} {str(shape):<18} {t_native * 1e6:>10.1f} {t_ours * 1e6:>10.1f} {t_ours / t_native:>12.2f}")
    print("\nwhole training step (forward, backward, SGD step) with the model's norms swapped for ours")
    for name, make, batch, features in MODELS:
        native = make().train()
        ours = with_our_norms(native)
        t_ours, t_native = interleaved(train_step(ours, batch, features), train_step(native, batch, features),
                                       args.repeats, args.number)
        print(f"{name:<26} {f'batch {batch}':<18} {t_native * 1e6:>10.1f} {t_ours * 1e6:>10.1f} "
              f"{t_ours / t_native:>12.2f}")


def repeats_note(args: argparse.Namespace) -> str:
    calls = args.number or "~10 ms of"
    return f"median of {args.repeats} interleaved repeats × {calls} calls"


if __name__ == "__main__":
    main()
