"""The playground's settings: every control, its offered choices, validation and the URL form.

The page may choose only among :data:`CHOICES`; :func:`validate` rejects anything else (an unknown
field, a value not offered) with one line naming the bad value and the valid ones, so no path,
code or free number from the browser reaches Python. The whole configuration round-trips through
the URL fragment (``#dataset=digits&depth=3&...``, :func:`to_fragment` / :func:`from_fragment`),
so a link reproduces a run.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

from impediments.activations.catalog import names as activation_names
from impediments.init.initialize import SCHEMES

#: extra init names beyond the variance-scaling presets: the deeplearning.ai initialization page's
#: zero / too small / too large, symmetric identical rows, LSUV (Mishkin & Matas 2016) and torch's default.
INIT_EXTRAS = {
    "zero": "all weights 0 (symmetry never broken)",
    "too_small": "N(0, 0.01²): activations vanish with depth",
    "too_large": "N(0, 2²): activations saturate or explode",
    "lsuv": "orthonormal, then rescaled layer by layer to unit output variance (LSUV)",
    "torch_default": "PyTorch's nn.Linear default (Kaiming-uniform, a = √5)",
}
INIT_NAMES = tuple(n for n in SCHEMES if n not in ("zeros", "constant")) + tuple(INIT_EXTRAS)

CHOICES: dict[str, tuple] = {
    "dataset": ("digits", "mnist1d", "blobs"),
    "depth": (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20),
    "width": (8, 16, 32, 64, 100, 128, 256, 512),
    "activation": tuple(activation_names()),
    "init": INIT_NAMES,
    "bias": (-10.0, -5.0, -3.0, -1.0, 0.0, 0.01, 0.1, 1.0),
    "norm": ("none", "batch", "layer", "group"),
    "norm_position": ("pre", "post"),
    "dropout": (0.0, 0.1, 0.2, 0.3, 0.5),
    "optimizer": ("sgd", "momentum", "adam", "adamw"),
    "lr": (0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 3.0, 10.0),
    "batch_size": (1, 2, 4, 8, 16, 32, 50, 64, 128, 256),
    "inputs": ("standardized", "centred", "raw"),
    "steps": (100, 200, 500, 1000, 2000, 5000, 20000),
    "seed": tuple(range(10)),
}


@dataclass(frozen=True)
class PlaygroundConfig:
    """One playground run. Every field takes only the values in :data:`CHOICES`."""

    dataset: str = "digits"
    depth: int = 3
    width: int = 64
    activation: str = "relu"
    init: str = "he_normal"
    bias: float = 0.0
    norm: str = "none"
    norm_position: str = "pre"
    dropout: float = 0.0
    optimizer: str = "sgd"
    lr: float = 0.1
    batch_size: int = 64
    inputs: str = "standardized"
    steps: int = 1000
    seed: int = 0

    def replace(self, **changes) -> "PlaygroundConfig":
        """A validated copy with ``changes`` applied."""
        return validate({**self.to_dict(), **changes})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


FIELDS = tuple(f.name for f in dataclasses.fields(PlaygroundConfig))
assert set(FIELDS) == set(CHOICES), "every field needs its offered choices"


class ConfigError(ValueError):
    """A setting the page does not offer (one line: the field, the bad value, the valid choices)."""


def _coerce(field: str, value):
    """``value`` (a JSON or URL value) as the offered choice it equals, else raise ConfigError."""
    choices, received = CHOICES[field], value
    if isinstance(value, bool):
        value = None
    elif isinstance(choices[0], (int, float)) and isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            value = None
    for choice in choices:
        if isinstance(choice, str) and value == choice:
            return choice
        if not isinstance(choice, str) and isinstance(value, (int, float)) and float(value) == float(choice):
            return choice
    raise ConfigError(f"{field}={received!r} is not offered; valid {field}: {', '.join(map(str, choices))}")


def validate(values: dict) -> PlaygroundConfig:
    """A :class:`PlaygroundConfig` from ``values`` (missing fields take the defaults).

    Raises:
        ConfigError: for a non-dict, an unknown field, or a value not in :data:`CHOICES`.
    """
    if not isinstance(values, dict):
        raise ConfigError(f"config must be an object of settings, got {type(values).__name__}")
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(map(repr, unknown))}; valid: {', '.join(FIELDS)}")
    return PlaygroundConfig(**{k: _coerce(k, v) for k, v in values.items()})


def to_fragment(config: PlaygroundConfig) -> str:
    """The URL fragment (without ``#``) holding every field, e.g. ``dataset=digits&depth=3&...``."""
    return urlencode([(k, _format(v)) for k, v in config.to_dict().items()])


def from_fragment(fragment: str) -> PlaygroundConfig:
    """Inverse of :func:`to_fragment` (a leading ``#`` is ignored; missing fields take defaults; a ``lesson=``
    pair, which the page adds to name the lesson on screen, is not a setting and is skipped).

    Raises:
        ConfigError: as :func:`validate`, or for a field given twice.
    """
    pairs = [(k, v) for k, v in parse_qsl(fragment.lstrip("#"), keep_blank_values=True) if k != "lesson"]
    keys = [k for k, _ in pairs]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise ConfigError(f"setting(s) given more than once: {', '.join(twice)}")
    return validate(dict(pairs))


def _format(value) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def choices_document() -> dict:
    """What the page offers: ``{"fields": [...], "choices": {...}, "defaults": {...}, "init_help": {...}}``."""
    return {"fields": list(FIELDS), "choices": {k: list(v) for k, v in CHOICES.items()},
            "defaults": PlaygroundConfig().to_dict(), "init_help": dict(INIT_EXTRAS)}
