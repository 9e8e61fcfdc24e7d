r"""BatchNorm at training time versus inference time.

In training mode BatchNorm normalizes with the mean and (biased) variance of
the current mini-batch; "at inference time all the parameters are fixed ...
population statistics computed over the full training dataset, usually by a
decaying moving average" (module, Batch Normalization). Four checks:

1. **EMA vs exact population statistics.** During training the running
   (EMA) statistics are compared with the exact statistics of the current
   weights from PreciseBN (:func:`impediments.norm.recompute_bn_stats`; Wu &
   Johnson 2021), and test accuracy is measured with each.
2. **Unbiased variance.** Inference uses
   :math:`\mathrm{Var}[x] = \frac{m}{m-1} E_B[\sigma_B^2]` (Ioffe & Szegedy
   2015, Alg. 2): averaged over many batches of size m from unit-variance
   data, the biased batch variance is about (m−1)/m, torch's running variance
   about 1.
3. **Determinism.** In inference mode an example's output does not depend
   on the rest of its batch, and batch size 1 works; in training mode it
   does depend on the batch, and batch size 1 is an error.
4. **Folding.** :func:`impediments.norm.fold_bn` merges each inference-mode
   BatchNorm into the Linear layer before it with identical outputs.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from impediments.experiments.framework import Claim, Presets, Table, claim, seeded, train

SECTION = "Batch Normalization at inference"
SOURCE = "seed: Batch Normalization (At inference time)"


@dataclass(frozen=True)
class Config(Presets):
    seed: int = 0
    width: int = 64
    depth: int = 3
    lr: float = 0.2
    batch_size: int = 50         # 1347 = 26·50 + 47: no tiny last batch to jolt the EMA
    epochs: int = 8
    momentum: float = 0.1        # torch's BN momentum (EMA weight of the new batch)
    batch_sizes: tuple[int, ...] = (2, 4, 8, 32)   # for the m/(m-1) check
    draws: int = 2000            # batches per size in the m/(m-1) check

    FULL = dict(width=128, epochs=20, batch_sizes=(2, 3, 4, 8, 16, 32, 128), draws=20000)


@dataclass
class Result:
    steps: list
    acc_ema: list                # test accuracy with the running (EMA) statistics, per evaluation
    acc_precise: list            # test accuracy with PreciseBN statistics of the same weights
    mean_gap: list               # mean over channels |μ_ema − μ_exact| / σ_exact, per evaluation
    var_gap: list                # mean over channels |log(σ²_ema / σ²_exact)|, per evaluation
    batch_sizes: list
    draws: int                   # batches averaged per m
    biased_var: list             # average biased batch variance of unit-variance data, per m
    running_var: list            # torch's running variance (cumulative average) after the same batches, per m
    one_step_ratio: list         # running_var / biased batch variance after a single momentum-1 step, per m
    eval_batch_diff: float       # max |output alone − output inside a batch| in inference mode
    train_batch_diff: float      # the same in training mode (different batch companions)
    batch1_eval_ok: bool
    batch1_train_error: str      # the error torch raises for a training-mode batch of 1
    fold_max_diff: float         # max |model(x) − fold_bn(model)(x)| on the test set, inference mode
    fold_same_predictions: float  # fraction of identical argmax
    fold_bn_left: int            # BatchNorm modules left in the folded copy


class PreciseProbe:
    """Training callback: EMA vs PreciseBN statistics and the test accuracy with each, at every evaluation."""

    def __init__(self, model: nn.Module, data, batch_size: int) -> None:
        self.model, self.data, self.batch_size = model, data, batch_size
        self.acc_precise, self.mean_gap, self.var_gap = [], [], []

    def on_eval(self, step, metrics) -> None:
        from impediments.data.batching import iterate_batches
        from impediments.norm import is_batch_norm, recompute_bn_stats
        from impediments.train import evaluate

        exact = copy.deepcopy(self.model).eval()
        recompute_bn_stats(exact, list(iterate_batches(self.data.X_train, self.data.y_train, self.batch_size,
                                                       shuffle=False)), max_batches=10_000)
        self.acc_precise.append(evaluate(exact, self.data.X_test, self.data.y_test)[1])
        pairs = [(a, b) for a, b in zip(self.model.modules(), exact.modules()) if is_batch_norm(a)]
        self.mean_gap.append(float(torch.cat([((a.running_mean - b.running_mean).abs() / (b.running_var + b.eps).sqrt())
                                              for a, b in pairs]).mean()))
        self.var_gap.append(float(torch.cat([(a.running_var / b.running_var).log().abs() for a, b in pairs]).mean()))


def unbiased_variance(batch_sizes, draws: int, seed: int) -> tuple[list, list, list]:
    """Average biased batch variance, torch's running variance, and the one-step m/(m−1) ratio, per batch size m."""
    g = torch.Generator().manual_seed(seed)
    biased, running, ratio = [], [], []
    for m in batch_sizes:
        x = torch.randn(draws, m, 1, generator=g)
        bn = nn.BatchNorm1d(1, momentum=None)       # momentum=None: cumulative average of batch statistics
        for b in x:
            bn(b)
        biased.append(float(x.var(dim=1, unbiased=False).mean()))
        running.append(float(bn.running_var))
        one = nn.BatchNorm1d(1, momentum=1.0)       # running_var := this batch's stored variance
        one(x[0])
        ratio.append(float(one.running_var / x[0].var(unbiased=False)))
    return biased, running, ratio


def determinism(model: nn.Module, X: torch.Tensor) -> tuple[float, float, bool, str]:
    """Output of example 0 alone vs inside a batch, in inference and training mode; batch size 1 in each mode."""
    with torch.no_grad():
        model.eval()
        alone, inside = model(X[:1]), model(X[:16])[:1]
        eval_diff = float((alone - inside).abs().max())
        probe = copy.deepcopy(model).train()
        a, b = probe(X[:16])[:1], probe(torch.cat([X[:1], X[16:31]]))[:1]
        train_diff = float((a - b).abs().max())
        try:
            probe(X[:1])
            error = ""
        except ValueError as exc:
            error = str(exc)
    return eval_diff, train_diff, bool(torch.isfinite(alone).all()), error


def run(config: Config) -> Result:
    from impediments.data import load_dataset
    from impediments.models import mlp
    from impediments.norm import fold_bn, is_batch_norm

    data = load_dataset("digits", seed=config.seed)
    model = seeded(config.seed, mlp, data.in_features, data.num_classes, width=config.width, depth=config.depth,
                   activation="relu", norm="batch")
    for m in model.modules():
        if is_batch_norm(m):
            m.momentum = config.momentum
    probe = PreciseProbe(model, data, config.batch_size)
    h = train(model, data, seed=config.seed, epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
              callbacks=[probe])
    biased, running, ratio = unbiased_variance(config.batch_sizes, config.draws, config.seed)
    eval_diff, train_diff, ok, error = determinism(model, data.X_test)
    folded = fold_bn(model)
    with torch.no_grad():
        out, out_folded = model.eval()(data.X_test), folded(data.X_test)
    return Result(
        steps=h.eval_steps, acc_ema=h.test_acc, acc_precise=probe.acc_precise, mean_gap=probe.mean_gap,
        var_gap=probe.var_gap, batch_sizes=list(config.batch_sizes), draws=config.draws, biased_var=biased,
        running_var=running,
        one_step_ratio=ratio, eval_batch_diff=eval_diff, train_batch_diff=train_diff, batch1_eval_ok=ok,
        batch1_train_error=error, fold_max_diff=float((out - out_folded).abs().max()),
        fold_same_predictions=float((out.argmax(1) == out_folded.argmax(1)).float().mean()),
        fold_bn_left=sum(is_batch_norm(m) for m in folded.modules()))


def plot(result: Result):
    from impediments.plots.part2 import plot_bn_inference

    return plot_bn_inference(result)


def claims(result: Result) -> list[Claim]:
    m = np.asarray(result.batch_sizes, dtype=float)
    biased, running = np.asarray(result.biased_var), np.asarray(result.running_var)
    # s²_B of m unit-variance Gaussians is (m−1)/m · χ²_{m−1}/(m−1): variance ((m−1)/m)² · 2/(m−1)
    se = (m - 1) / m * np.sqrt(2 / (m - 1) / result.draws)
    gaps = result.mean_gap[1:]
    return [
        claim("The running (EMA) statistics are not the population statistics of the current weights: they lag "
              "behind the weights (Wu & Johnson 2021). Mean gap over training, in σ units, is above 0.01.",
              "Wu & Johnson 2021", {"mean_gap_mean": float(np.mean(gaps)), "mean_gap_final": gaps[-1],
                                    "var_gap_mean": float(np.mean(result.var_gap[1:]))},
              "mean_gap_mean > 0.01",
              labels={"mean_gap_mean": "|EMA mean - exact mean| / σ, average over training",
                      "mean_gap_final": "|EMA mean - exact mean| / σ, at the end",
                      "var_gap_mean": "relative gap of the variances, average over training"}),
        claim("Measured: test accuracy with EMA statistics versus exact PreciseBN statistics of the same weights "
              "(at this small scale the two are close; checked only that PreciseBN is not worse by more than 0.02 "
              "at the end).", "Wu & Johnson 2021",
              {"acc_ema_final": result.acc_ema[-1], "acc_precise_final": result.acc_precise[-1],
               "acc_ema_mean": float(np.mean(result.acc_ema[1:])),
               "acc_precise_mean": float(np.mean(result.acc_precise[1:]))},
              "acc_precise_final >= acc_ema_final - 0.02",
              labels={"acc_ema_final": "final test accuracy, EMA statistics",
                      "acc_precise_final": "final test accuracy, PreciseBN statistics",
                      "acc_ema_mean": "test accuracy over training, EMA statistics",
                      "acc_precise_mean": "test accuracy over training, PreciseBN statistics"}),
        claim("Training normalizes with the biased batch variance, whose average over batches of size m is "
              ":math:`(m-1)/m` of the population variance; inference uses "
              ":math:`\\mathrm{Var} = \\frac{m}{m-1} \\mathbb{E}_B[\\sigma_B^2]`, the unbiased estimate "
              "(torch's running variance; each step stores :math:`\\frac{m}{m-1} \\sigma_B^2`). The first bound is "
              "4 standard errors of the average.", "Ioffe & Szegedy 2015, Alg. 2",
              {"max_z_biased": float(np.max(np.abs(biased - (m - 1) / m) / se)),
               "max_rel_err_running": float(np.max(np.abs(running / (m / (m - 1) * biased) - 1))),
               "max_rel_err_one_step": float(np.max(np.abs(np.asarray(result.one_step_ratio) / (m / (m - 1)) - 1))),
               "running_var_at_smallest_m": float(running[0])},
              "max_z_biased <= 4 and max_rel_err_running <= 1e-4 and max_rel_err_one_step <= 1e-4",
              paper="the factor m/(m−1) of Alg. 2, step 10: the same estimator, checked per batch size",
              labels={"max_z_biased": "largest |mean biased variance - (m-1)/m| in standard errors",
                      "max_rel_err_running": "largest relative error, running variance vs m/(m-1)·biased",
                      "max_rel_err_one_step": "largest relative error of one step's m/(m-1) factor",
                      "running_var_at_smallest_m": "running variance at the smallest batch size"}),
        claim("Inference is deterministic: an example's output does not depend on its batch companions, and batch "
              "size 1 works; in training mode it depends on the batch, and batch size 1 is an error.", SOURCE,
              {"eval_batch_diff": result.eval_batch_diff, "train_batch_diff": result.train_batch_diff,
               "batch1_eval_ok": result.batch1_eval_ok, "batch1_train_error": bool(result.batch1_train_error)},
              "eval_batch_diff <= 1e-5 and log10(train_batch_diff) > -3 and batch1_eval_ok >= 1 "
              "and batch1_train_error >= 1",
              labels={"eval_batch_diff": "inference: output change when the batch changes",
                      "train_batch_diff": "training: output change when the batch changes",
                      "batch1_eval_ok": "inference at batch size 1 works (1 = yes)",
                      "batch1_train_error": "training at batch size 1 raises (1 = yes)"}),
        claim("fold_bn merges every inference-mode BatchNorm into the preceding Linear layer with identical "
              "outputs (float32 rounding) and identical predictions.", "Jacob et al. 2018",
              {"fold_max_diff": result.fold_max_diff, "same_predictions": result.fold_same_predictions,
               "bn_left": result.fold_bn_left},
              "fold_max_diff <= 1e-4 and same_predictions >= 1 and bn_left <= 0",
              labels={"fold_max_diff": "largest output difference after folding",
                      "same_predictions": "fraction of identical predictions", "bn_left": "BatchNorm layers left"}),
    ]


def tables(result: Result) -> list[Table]:
    rows = [[m, (m - 1) / m, b, r, q] for m, b, r, q in zip(result.batch_sizes, result.biased_var,
                                                           result.running_var, result.one_step_ratio)]
    return [Table("biased batch variance vs torch's running variance (unit-variance data)",
                  ["batch size m", "(m−1)/m", "mean biased σ²_B", "running var", "one step: running/σ²_B"], rows)]
