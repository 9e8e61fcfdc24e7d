r"""Greedy layer-wise pre-training of a deep sigmoid network.

"Before good weight initialization techniques were discovered, a technique
called layer-wise pre-training was very popular" (module, "Layer-wise
pre-training"). Each hidden layer in turn is trained as the encoder of an
autoencoder that reconstructs that layer's input (the output of the layers
below, already pre-trained), then the whole network is fine-tuned on the
labels (:func:`impediments.init.pretrain_layerwise`). Here a 6-layer
sigmoid MLP on digits under PyTorch's default random
init (:math:`U[\pm 1/\sqrt{n}]`) is compared with the same network after pre-training, both
fine-tuned by the same SGD, and with Glorot's normalized init without
pre-training; the random-init network gets extra steps equal to the
pre-training steps so both budgets are reported. Pre-training steps
train one layer and a decoder, so they are cheaper than full steps: steps,
not seconds, are compared.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from torch import nn

from impediments.experiments.framework import Claim, Presets, Table, claim, seeded, train

SECTION = "Initialization: layer-wise pre-training"
SOURCE = "seed: Layer-wise pre-training"


@dataclass(frozen=True)
class Config(Presets):
    seed: int = 0
    depth: int = 6
    width: int = 64
    pretrain_epochs: int = 5         # per layer (impediments.init.pretrain_layerwise)
    pretrain_lr: float = 0.01        # Adam, mean squared reconstruction error
    finetune_steps: int = 300
    lr: float = 0.5                  # SGD for fine-tuning and for the random-init baseline
    momentum: float = 0.9
    batch_size: int = 64

    FULL = dict(depth=8, width=128, pretrain_epochs=10, finetune_steps=1000)


@dataclass
class Result:
    recon_first: list                # per layer: reconstruction MSE before its pre-training
    recon_last: list                 # ... and after
    pretrain_steps_total: int
    pre_steps: list                  # fine-tuning evaluation steps (pre-trained network)
    pre_train_loss: list
    pre_test_acc: list
    rand_steps: list                 # evaluation steps of the random-init run (longer: equal total budget)
    rand_train_loss: list
    rand_test_acc: list
    glorot_steps: list               # no pre-training, Glorot normalized init, fine-tuning budget
    glorot_train_loss: list
    glorot_test_acc: list
    finetune_steps: int


def run(config: Config) -> Result:
    from impediments.data import load_dataset
    from impediments.init import initialize, pretrain_layerwise
    from impediments.models import mlp

    data = load_dataset("digits", seed=config.seed)

    def fresh() -> nn.Module:
        return seeded(config.seed, mlp, data.in_features, data.num_classes, width=config.width, depth=config.depth,
                      activation="sigmoid")

    pre = fresh()
    history = pretrain_layerwise(pre, data, epochs_per_layer=config.pretrain_epochs, lr=config.pretrain_lr,
                                 batch_size=config.batch_size, seed=config.seed)
    first, last = [h.losses[0] for h in history], [h.losses[-1] for h in history]
    kw = dict(seed=config.seed, batch_size=config.batch_size, lr=config.lr, momentum=config.momentum,
              eval_every=max(config.finetune_steps // 10, 1))
    hp = train(pre, data, steps=config.finetune_steps, **kw)
    total = config.depth * config.pretrain_epochs * math.ceil(len(data.X_train) / config.batch_size)
    hr = train(fresh(), data, steps=config.finetune_steps + total, **kw)
    glorot = fresh()
    initialize(glorot, "glorot_uniform", bias=0.0, seed=config.seed)
    hg = train(glorot, data, steps=config.finetune_steps, **kw)
    return Result(recon_first=first, recon_last=last, pretrain_steps_total=total, pre_steps=hp.eval_steps,
                  pre_train_loss=hp.train_loss, pre_test_acc=hp.test_acc, rand_steps=hr.eval_steps,
                  rand_train_loss=hr.train_loss, rand_test_acc=hr.test_acc, glorot_steps=hg.eval_steps,
                  glorot_train_loss=hg.train_loss, glorot_test_acc=hg.test_acc, finetune_steps=config.finetune_steps)


def at_step(steps: list, values: list, step: int) -> float:
    """The value evaluated at ``step`` (the last evaluation at or before it)."""
    i = int(np.searchsorted(np.asarray(steps), step, side="right")) - 1
    return float(values[max(i, 0)])


def plot(result: Result):
    from impediments.plots.exp_layerwise_pretraining import plot_layerwise_pretraining

    return plot_layerwise_pretraining(result)


def best_until(steps: list, values: list, step: int) -> float:
    """The lowest value evaluated at or before ``step`` (best-so-far training loss)."""
    return float(min(v for s, v in zip(steps, values) if s <= step))


def claims(result: Result) -> list[Claim]:
    r = result
    n, total = r.finetune_steps, r.finetune_steps + r.pretrain_steps_total
    pre = best_until(r.pre_steps, r.pre_train_loss, n)
    finals = {"pretrained_final_loss": r.pre_train_loss[-1], "random_final_loss": r.rand_train_loss[-1],
              "glorot_final_loss": r.glorot_train_loss[-1]}
    labels = {"pretrained_loss": f"pre-trained: best training loss within {n} fine-tuning steps",
              "pretrained_final_loss": "pre-trained: final training loss",
              "random_final_loss": "random init: final training loss",
              "glorot_final_loss": "Glorot init: final training loss", "ln10": "ln 10 (chance level)"}
    note = (" Losses are the best training loss evaluated within the budget: SGD at this learning rate is noisy "
            "and can flare up late (final losses reported).")
    return [
        claim("Greedy pre-training does what it says: every layer's autoencoder lowers its reconstruction error.",
              SOURCE, {"min_reconstruction_improvement": min(f - l for f, l in zip(r.recon_first, r.recon_last))},
              "min_reconstruction_improvement > 0",
              labels={"min_reconstruction_improvement": "smallest drop of reconstruction MSE over the layers"}),
        claim(f"With the same {n} fine-tuning steps, the pre-trained deep sigmoid network trains while the "
              "randomly initialized one is still stuck near ln(10)." + note, SOURCE,
              {"pretrained_loss": pre, "random_loss_same_steps": best_until(r.rand_steps, r.rand_train_loss, n),
               "ln10": math.log(10), **finals},
              "pretrained_loss <= random_loss_same_steps - 0.3",
              labels={**labels, "random_loss_same_steps": f"random init: best training loss within {n} steps"}),
        claim(f"Counting the {r.pretrain_steps_total} pre-training steps too (equal total steps; pre-training "
              "steps are cheaper, so this favours random init), random init has still not caught up at this "
              "budget." + note, SOURCE,
              {"pretrained_loss": pre,
               "random_loss_equal_total_steps": best_until(r.rand_steps, r.rand_train_loss, total)},
              "pretrained_loss < random_loss_equal_total_steps",
              labels={"pretrained_loss": labels["pretrained_loss"],
                      "random_loss_equal_total_steps": f"random init: best training loss within {total} steps"}),
        claim("Glorot's normalized init alone does not rescue this deep sigmoid network at the same fine-tuning "
              "budget either (sigmoid's non-zero mean saturates the top layers, Glorot & Bengio 2010): here "
              "pre-training still wins." + note, "Glorot & Bengio 2010; " + SOURCE,
              {"pretrained_loss": pre, "glorot_loss_same_steps": best_until(r.glorot_steps, r.glorot_train_loss, n)},
              "pretrained_loss <= glorot_loss_same_steps - 0.3",
              labels={"pretrained_loss": labels["pretrained_loss"],
                      "glorot_loss_same_steps": f"Glorot init: best training loss within {n} steps"}),
    ]


def tables(result: Result) -> list[Table]:
    rows = [[k + 1, f, l] for k, (f, l) in enumerate(zip(result.recon_first, result.recon_last))]
    return [Table("pre-training: reconstruction mean squared error per layer", ["layer", "before", "after"],
                  rows)]
