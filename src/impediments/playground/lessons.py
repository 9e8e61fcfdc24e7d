"""The playground's lessons: one preset per lesson of the module, in the module's order.

Each :class:`Lesson` is a setup that shows one impediment (its settings, on top of
:class:`~impediments.playground.config.PlaygroundConfig`'s defaults), one sentence on what to look for
on the page, the notebook section that teaches it (``notebooks/``, jupytext sources) and the experiment
``impediments reproduce`` checks it with. The page lists them on its first screen and opens one from a
link (``#lesson=NAME``); "Apply remedy" then trains run B with one remedy applied, beside run A.

What each sentence promises was measured with these settings on the project's 2-core VM, run A against
each one-change run B (``docs/playground.md`` has the numbers: the zig-zag lesson over 5 seeds, the others
at seed 0); ``tests/test_playground.py`` re-checks the zig-zag and dead-unit lessons at seed 0 and the
browser tests the zig-zag lesson end to end. The lessons the page cannot show are left out and said so:
layer-wise pre-training (the page has no pre-training step), residual connections (its MLP has none) and
frozen against inference-mode BatchNorm (its runs are always in training mode; see
``notebooks/09_bn_transfer_learning.py``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from impediments.playground.config import PlaygroundConfig, to_fragment


@dataclass(frozen=True)
class Lesson:
    """One preset: ``settings`` (changes to the defaults), what to look for, where the module teaches it."""

    name: str
    title: str
    settings: dict = field(hash=False)
    look_for: str
    notebook: str               # file under notebooks/
    section: str                # a "## " heading of that notebook
    experiment: str             # impediments reproduce NAME

    @property
    def config(self) -> PlaygroundConfig:
        return PlaygroundConfig().replace(**self.settings)

    def to_dict(self) -> dict:
        return {"name": self.name, "title": self.title, "look_for": self.look_for, "notebook": self.notebook,
                "section": self.section, "experiment": self.experiment, "config": self.config.to_dict(),
                "fragment": to_fragment(self.config) + f"&lesson={self.name}"}


LESSONS: tuple[Lesson, ...] = (
    Lesson("saturation", "Saturated activations",
           dict(activation="sigmoid", init="too_large", depth=3, width=64, steps=1000),
           "Weights drawn with std 2 push every sigmoid into its flat tails: the histograms pile up at 0 and 1, "
           "the saturated bars stand near 100 % and the loss barely moves. Apply one remedy at a time (Glorot "
           "init, or BatchNorm before each activation) and compare run B's histograms and final accuracy.",
           "01_activations.py", "The experiment", "activations"),
    Lesson("zigzag", "Zero-centred inputs",
           dict(activation="tanh", init="glorot_normal", depth=1, width=32, batch_size=32, lr=0.1, steps=500,
                inputs="raw"),
           "Raw pixels (0..16) are never negative, so at each step every first-layer weight of a unit moves the "
           "same way and descent zig-zags. Apply the remedy (centred inputs: the same pixels, mean removed, same "
           "scale): run B ends its 500 steps with the lower training loss. Both still saturate some tanh units: "
           "the pixels keep their scale.",
           "02_inputs.py", "Zero-centred inputs and the zig-zag", "zigzag"),
    Lesson("dead_units", "Dead ReLU units",
           dict(activation="relu", init="he_normal", bias=-3.0, depth=3, width=64, lr=0.05, batch_size=32),
           "A bias of -3 puts most ReLU inputs below 0: the dead bars fill up, those units' histograms are one "
           "spike at 0 and no gradient reaches their weights. Apply the remedy (bias 0) and watch the dead bars "
           "empty.",
           "03_bad_choices.py", "Dead ReLU units from a negative bias", "dead_bias"),
    Lesson("symmetry", "Identical weights",
           dict(activation="sigmoid", init="zero", depth=2, width=32, lr=0.5, batch_size=32),
           "With every weight 0 all units of a layer compute the same value and get the same update, so they "
           "stay identical (the doctor's symmetric_units): the network learns no better than one unit per layer. "
           "Apply a random init and compare the final accuracy.",
           "04_identical_weights.py", "All weights zero", "zero_init"),
    Lesson("too_small", "Too-small init and the depth distributions",
           dict(activation="tanh", init="too_small", depth=10, width=256, batch_size=256),
           "Weights of std 0.01 shrink the signal at every layer: the histograms narrow to a spike at 0 from the "
           "first layers on, and the gradient/weight ratios are tiny. Apply Glorot init: each layer keeps its "
           "spread.",
           "05_constant_variance.py", "The distribution of each layer's outputs, by depth", "depth_distributions"),
    Lesson("glorot_he", "Glorot against He for ReLU",
           dict(activation="relu", init="glorot_normal", depth=20, width=64, optimizer="momentum", lr=0.003),
           "Glorot init keeps the variance for tanh; a ReLU zeroes half of its inputs, so under Glorot each "
           "layer's output variance halves and the deepest histograms shrink toward 0. Apply He init (twice the "
           "variance) and compare the histograms of the last layers and the final accuracy.",
           "05_constant_variance.py", "Glorot and He initialization", "glorot_he"),
    Lesson("batchnorm", "BatchNorm rescues a deep sigmoid network",
           dict(activation="sigmoid", init="glorot_normal", depth=6, width=100, lr=0.5, batch_size=50),
           "Six sigmoid layers, even at Glorot init: the gradient shrinks on its way down and the loss sits at "
           "ln 10, the test accuracy at chance. Apply BatchNorm before each activation: every pre-activation is "
           "standardized over the batch and the loss falls.",
           "07_batch_normalization.py", "BatchNorm rescues a sigmoid network", "bn_sigmoid"),
    Lesson("small_batch", "BatchNorm at batch size 2; LayerNorm and GroupNorm",
           dict(activation="relu", norm="batch", depth=3, width=32, batch_size=2, optimizer="momentum", lr=0.05),
           "With 2 examples per batch, BatchNorm's mean and variance come from 2 values, so an example is "
           "normalized differently at every step and the loss does not fall. Apply GroupNorm or LayerNorm, which "
           "normalize each example on its own, or a larger batch, one at a time, and compare the final accuracies.",
           "08_final_words.py", "Small batches: BatchNorm against LayerNorm and GroupNorm", "small_batch_norms"),
)

LESSON_NAMES = tuple(lesson.name for lesson in LESSONS)


def lesson(name: str) -> Lesson:
    """The lesson called ``name``.

    Raises:
        ValueError: for an unknown name (the valid names listed).
    """
    for candidate in LESSONS:
        if candidate.name == name:
            return candidate
    raise ValueError(f"no playground lesson {name!r}; valid: {', '.join(LESSON_NAMES)}")


def notebooks_folder() -> Path | None:
    """The repository's ``notebooks/`` folder when the package runs from a source checkout, else None."""
    folder = Path(__file__).resolve().parents[3] / "notebooks"
    return folder if folder.is_dir() else None
