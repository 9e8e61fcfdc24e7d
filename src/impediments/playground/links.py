"""Playground links for the module's experiments (``impediments reproduce NAME``).

:func:`experiment_config` gives the playground setup closest to an experiment (its network,
activation, init and optimizer, at the experiment's quick size), and :func:`experiment_url` the
link that opens it: ``http://127.0.0.1:PORT/#dataset=digits&depth=...``.
"""
from __future__ import annotations

from pathlib import Path

from impediments.playground.config import PlaygroundConfig, to_fragment
from impediments.playground.lessons import LESSONS, notebooks_folder

#: experiment name -> the playground settings that show its mechanism live
EXPERIMENT_SETUPS: dict[str, dict] = {
    # part 1
    "activations": dict(activation="sigmoid", init="too_large", depth=3, width=64),
    "linear_depth": dict(dataset="mnist1d", activation="identity", depth=4, width=64, optimizer="adam", lr=0.001),
    "dead_bias": dict(activation="relu", init="he_normal", bias=-3.0, depth=3, width=64, lr=0.05, batch_size=32),
    "depth_distributions": dict(activation="tanh", init="too_small", depth=10, width=256, batch_size=256),
    "glorot_he": dict(activation="relu", init="glorot_normal", depth=20, width=64, optimizer="momentum",
                      lr=0.003),
    "identical_init": dict(activation="tanh", init="identical", depth=2, width=32, batch_size=32),
    "layerwise_pretraining": dict(activation="sigmoid", init="glorot_normal", depth=6, width=64,
                                  optimizer="momentum", lr=0.5),
    "residual_limits": dict(activation="relu", init="he_normal", depth=20, width=64, lr=0.05),
    "zero_init": dict(activation="sigmoid", init="zero", depth=2, width=32, lr=0.5, batch_size=32),
    "zigzag": dict(activation="tanh", init="glorot_normal", depth=1, width=32, inputs="raw", batch_size=32,
                   steps=500),
    "autoencoder_pca": dict(activation="sigmoid", init="glorot_normal", depth=6, width=64, optimizer="momentum",
                            lr=0.5),         # the page has no autoencoder: the deep sigmoid net pre-training is for
    # part 2
    "bn_placement": dict(activation="relu", norm="batch", norm_position="post", depth=3, width=64, batch_size=50),
    "bn_gamma_beta": dict(activation="sigmoid", norm="batch", depth=3, width=64, batch_size=50),
    "bn_gradient_scale": dict(activation="relu", norm="batch", depth=4, width=64, lr=1.0, batch_size=32),
    "bn_dropout": dict(activation="relu", norm="batch", norm_position="post", dropout=0.5, depth=3, width=128,
                       batch_size=50),
    "bn_inference": dict(activation="relu", norm="batch", depth=3, width=64, lr=0.2, batch_size=50),
    "bn_learning_rates": dict(activation="relu", norm="batch", depth=4, width=64, lr=3.0, batch_size=32),
    "bn_output_stats": dict(activation="relu", norm="batch", depth=4, width=64, batch_size=32),
    "bn_sigmoid": dict(activation="sigmoid", norm="batch", init="normal", depth=3, width=100, lr=0.5,
                       batch_size=50),
    "frozen_bn_transfer": dict(activation="relu", norm="batch", depth=2, width=64, lr=0.05, batch_size=8),
    "l2_with_bn": dict(activation="relu", norm="batch", depth=3, width=64, batch_size=50, optimizer="adamw"),
    "norm_every_k": dict(activation="relu", norm="batch", depth=8, width=64),
    "small_batch_norms": dict(activation="relu", norm="batch", depth=3, width=32, batch_size=2,
                              optimizer="momentum", lr=0.05),
}


def experiment_config(name: str) -> PlaygroundConfig:
    """The playground setup of experiment ``name``.

    Raises:
        ValueError: for a name with no setup (the valid names listed).
    """
    if name not in EXPERIMENT_SETUPS:
        raise ValueError(f"no playground setup for experiment {name!r}; valid: {', '.join(EXPERIMENT_SETUPS)}")
    return PlaygroundConfig().replace(**EXPERIMENT_SETUPS[name])


def experiment_fragment(name: str) -> str:
    """The URL fragment of experiment ``name``'s setup; when a lesson teaches that experiment with this very setup,
    it names the lesson too (``&lesson=...``), so the page shows what to look for."""
    config = experiment_config(name)
    taught = [item for item in LESSONS if item.experiment == name and item.config == config]
    return to_fragment(config) + (f"&lesson={taught[0].name}" if taught else "")


def experiment_url(name: str, base: str = "http://127.0.0.1:8765/") -> str:
    """The playground link that opens experiment ``name``'s setup (``base``: where the playground runs)."""
    return f"{base.rstrip('/')}/#{experiment_fragment(name)}"


def experiment_notebook(name: str) -> Path | None:
    """The notebook under ``notebooks/`` whose cell opens experiment ``name`` in the playground (its section of
    the module), e.g. ``notebooks/03_bad_choices.py``; None outside a source checkout or for no such cell."""
    folder = notebooks_folder()
    if folder is None:
        return None
    cell = f'experiment_url("{name}")'
    return next((path for path in sorted(folder.glob("*.py")) if cell in path.read_text(encoding="utf-8")), None)


def experiment_links(name: str, base: str = "http://127.0.0.1:8765/") -> list[tuple[str, str]]:
    """The lab notebook's "try it" links of experiment ``name``: its Jupyter notebook (a path relative to the
    repository, when run from a source checkout) and its playground setup (start ``impediments playground
    --port 8765``). Empty for an experiment with no playground setup."""
    if name not in EXPERIMENT_SETUPS:
        return []
    notebook = experiment_notebook(name)
    links = [(f"Jupyter notebook notebooks/{notebook.name}", notebook.as_uri())] if notebook else []
    return links + [("playground setup (impediments playground --port 8765)", experiment_url(name, base))]
