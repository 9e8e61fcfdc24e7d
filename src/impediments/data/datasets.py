"""Offline datasets: scikit-learn digits, MNIST-1D, IDX folders, synthetic blobs.

Nothing here touches the network: digits ships inside scikit-learn, MNIST-1D
is *generated* with ``mnist1d.data.make_dataset`` (never its download path),
IDX files are read from a folder the user names, and blobs are synthetic.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import numpy as np
import torch

from impediments.data.idx import load_idx_folder
from impediments.data.standardize import Standardizer

DATASET_NAMES = ("digits", "mnist1d", "blobs", "idx:<folder>")


@dataclass(frozen=True)
class Dataset:
    """Train and test tensors of a classification task.

    Attributes:
        name: the name it was loaded with.
        X_train, y_train, X_test, y_test: float32 inputs ``(N, *feature_shape)``
            and int64 labels ``(N,)``.
        num_classes: number of classes.
        feature_shape: shape of one example, e.g. ``(64,)``.
        image_shape: channel-first shape for convolutional models, e.g. ``(1, 8, 8)``.
        standardizer: the fitted :class:`Standardizer` when ``standardize=True``.
    """

    name: str
    X_train: torch.Tensor
    y_train: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    feature_shape: tuple[int, ...]
    image_shape: tuple[int, ...]
    standardizer: Standardizer | None = None

    @property
    def in_features(self) -> int:
        return int(np.prod(self.feature_shape))

    def subset(self, classes: list[int] | tuple[int, ...], *, relabel: bool = True) -> "Dataset":
        """Keep only ``classes`` (for transfer experiments); relabel them 0..k-1."""
        classes = list(classes)
        bad = [c for c in classes if not 0 <= c < self.num_classes]
        if bad or not classes:
            raise ValueError(f"classes {bad or classes} invalid; valid classes: 0..{self.num_classes - 1}")
        lut = torch.full((self.num_classes,), -1, dtype=torch.long)
        lut[torch.tensor(classes)] = torch.arange(len(classes)) if relabel else torch.tensor(classes)
        tr, te = lut[self.y_train] >= 0, lut[self.y_test] >= 0
        return replace(
            self, X_train=self.X_train[tr], y_train=lut[self.y_train[tr]], X_test=self.X_test[te],
            y_test=lut[self.y_test[te]], num_classes=len(classes) if relabel else self.num_classes,
        )


def load_dataset(name: str, *, seed: int = 0, standardize: bool = True) -> Dataset:
    """Load a dataset by name, with no network access.

    Args:
        name: ``"digits"``, ``"mnist1d"``, ``"blobs"`` or ``"idx:<folder>"``.
        seed: seed for the train/test split (digits) or generation (blobs).
        standardize: fit a :class:`Standardizer` on the training inputs and
            apply it to both splits.

    Returns:
        A :class:`Dataset`.

    Raises:
        ValueError: for an unknown name (the message lists the valid names).
        FileNotFoundError / IDXError: for a missing or corrupt IDX folder.
    """
    if not isinstance(name, str):
        raise TypeError(f"dataset name must be a string, got {type(name).__name__}; valid: {DATASET_NAMES}")
    if name.startswith("idx:"):
        folder = name[4:]
        if not folder:
            raise ValueError("dataset 'idx:' needs a folder, e.g. 'idx:/data/mnist'")
        ds = _idx(folder)
    elif name in _LOADERS:
        ds = _LOADERS[name](seed)
    else:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASET_NAMES)}")
    return _standardize(ds) if standardize else ds


def _standardize(ds: Dataset) -> Dataset:
    s = Standardizer().fit(ds.X_train)
    return replace(ds, X_train=s.transform(ds.X_train), X_test=s.transform(ds.X_test), standardizer=s)


def _digits(seed: int) -> Dataset:
    from sklearn.model_selection import train_test_split

    X, y = _digits_arrays()
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, stratify=y, random_state=seed)
    return _make("digits", Xtr, ytr, Xte, yte, 10, (1, 8, 8))


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.data.astype(np.float32), d.target.astype(np.int64)


def _mnist1d(seed: int) -> Dataset:
    x, y, xt, yt = _mnist1d_arrays()
    return _make("mnist1d", x, y, xt, yt, 10, (1, 40))


@functools.lru_cache(maxsize=1)
def _mnist1d_arrays() -> tuple[np.ndarray, ...]:
    """Generate MNIST-1D with the package defaults (4000 train, 1000 test, length 40)."""
    from mnist1d.data import get_dataset_args, make_dataset

    state = np.random.get_state()  # make_dataset reseeds numpy's global RNG; restore it
    try:
        d = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(state)
    return (d["x"].astype(np.float32), d["y"].astype(np.int64), d["x_test"].astype(np.float32),
            d["y_test"].astype(np.int64))


def _blobs(seed: int, n_train: int = 2000, n_test: int = 500, features: int = 16, classes: int = 4) -> Dataset:
    g = torch.Generator().manual_seed(seed)
    centers = 2.0 * torch.randn(classes, features, generator=g)
    n = n_train + n_test
    y = torch.arange(n) % classes
    y = y[torch.randperm(n, generator=g)]
    X = centers[y] + torch.randn(n, features, generator=g)
    return _make("blobs", X[:n_train], y[:n_train], X[n_train:], y[n_train:], classes, (1, features))


def _idx(folder: str) -> Dataset:
    a = load_idx_folder(folder)
    Xtr = a["train_images"].reshape(len(a["train_images"]), -1).astype(np.float32)
    Xte = a["test_images"].reshape(len(a["test_images"]), -1).astype(np.float32)
    image = (1, *a["train_images"].shape[1:])
    classes = int(max(a["train_labels"].max(), a["test_labels"].max())) + 1
    return _make(f"idx:{folder}", Xtr, a["train_labels"], Xte, a["test_labels"], classes, image)


def _make(name, Xtr, ytr, Xte, yte, classes, image_shape) -> Dataset:
    Xtr, Xte = torch.as_tensor(Xtr, dtype=torch.float32), torch.as_tensor(Xte, dtype=torch.float32)
    return Dataset(
        name=name, X_train=Xtr, y_train=torch.as_tensor(ytr, dtype=torch.long), X_test=Xte,
        y_test=torch.as_tensor(yte, dtype=torch.long), num_classes=int(classes),
        feature_shape=tuple(Xtr.shape[1:]), image_shape=tuple(image_shape),
    )


_LOADERS = {"digits": _digits, "mnist1d": _mnist1d, "blobs": _blobs}
