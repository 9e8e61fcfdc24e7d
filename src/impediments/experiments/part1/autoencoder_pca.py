"""The autoencoder of layer-wise pre-training against principal components.

The module: an autoencoder's bottleneck :math:`z` "becomes a
reduced-dimensionality approximation of :math:`x`. This is quite similar to
discovering Principal Components." For a *linear* autoencoder trained on the
mean squared reconstruction error the similarity is exact at the optimum
(Bourlard & Kamp 1988; Baldi & Hornik 1989): the best rank-:math:`k`
reconstruction is the projection on the top-:math:`k` principal subspace,
whose error is the variance PCA leaves out (Eckart–Young),

.. math:: \\min \\frac{1}{Nd}\\lVert X - X P \\rVert_F^2 = \\frac{1}{Nd}\\sum_{i > k} s_i^2,

with :math:`s_i` the singular values of the centred data, and the encoder's
rows span that subspace. Here one hidden layer of :math:`k` units is
pre-trained by the package's own :func:`impediments.init.pretrain_layerwise`
(Adam, mean squared error, a fresh linear decoder) with the identity as
activation and with sigmoid, on standardized digits. The encoder's row space
is compared with PCA's top-:math:`k` subspace by its principal angles
:math:`\\theta_i`, summarized as the overlap :math:`\\frac{1}{k}\\sum_i
\\cos^2\\theta_i` (1: the same subspace; a random subspace gives
:math:`k/d` on average).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from impediments.experiments.framework import Claim, Presets, Table, claim, seeded

SECTION = "Initialization: layer-wise pre-training"
SOURCE = "seed: Layer-wise pre-training (Autoencoder)"
PAPER = "Baldi & Hornik 1989"


@dataclass(frozen=True)
class Config(Presets):
    seed: int = 0
    bottleneck: int = 8              # k units
    epochs: int = 30                 # pretrain_layerwise epochs
    lr: float = 1e-2                 # Adam
    batch_size: int = 64

    FULL = dict(epochs=100, lr=3e-3)


@dataclass
class Result:
    angles: dict                     # "identity"/"sigmoid" -> principal angles (degrees, ascending) to PCA's top k
    overlap: dict                    # "identity"/"sigmoid" -> mean cos² of those angles
    recon_mse: dict                  # "identity"/"sigmoid" -> final reconstruction MSE
    recon_curve: dict                # "identity"/"sigmoid" -> reconstruction MSE after each epoch (0: before)
    pca_mse: float                   # the optimum: variance left out by PCA's top k, per entry
    random_overlap: float            # overlap of a random k-dimensional subspace (expected k/d)
    bottleneck: int
    dimension: int


def principal_angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Principal angles (radians, ascending) between the column spaces of ``a`` and ``b`` (Björck & Golub 1973):
    the arccosines of the singular values of :math:`Q_a^T Q_b`."""
    qa, qb = np.linalg.qr(a)[0], np.linalg.qr(b)[0]
    cos = np.clip(np.linalg.svd(qa.T @ qb, compute_uv=False), -1.0, 1.0)
    return np.sort(np.arccos(cos))


def pca(X: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    """PCA's top-``k`` directions (columns) of the centred data and the MSE per entry of its reconstruction."""
    centred = X - X.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    return vt[:k].T, float((s[k:] ** 2).sum() / centred.size)


def run(config: Config) -> Result:
    from impediments.data import load_dataset
    from impediments.init import pretrain_layerwise
    from impediments.models import mlp

    data = load_dataset("digits", seed=config.seed)
    X = data.X_train.double().numpy()
    top, pca_mse = pca(X, config.bottleneck)
    angles, overlap, mse, curve = {}, {}, {}, {}
    for act in ("identity", "sigmoid"):
        model = seeded(config.seed, mlp, data.in_features, data.num_classes, width=config.bottleneck, depth=1,
                       activation=act)
        history = pretrain_layerwise(model, data, epochs_per_layer=config.epochs, lr=config.lr,
                                     batch_size=config.batch_size, seed=config.seed)
        encoder = model.hidden1.linear.weight.detach().double().numpy().T      # d x k: its rows, as columns
        theta = principal_angles(encoder, top)
        angles[act], overlap[act] = np.degrees(theta).tolist(), float(np.mean(np.cos(theta) ** 2))
        mse[act], curve[act] = history[0].losses[-1], list(history[0].losses)
    rng = np.random.default_rng(config.seed)
    random = principal_angles(rng.standard_normal((X.shape[1], config.bottleneck)), top)
    return Result(angles=angles, overlap=overlap, recon_mse=mse, recon_curve=curve, pca_mse=pca_mse,
                  random_overlap=float(np.mean(np.cos(random) ** 2)), bottleneck=config.bottleneck,
                  dimension=X.shape[1])


def plot(result: Result):
    from impediments.plots.exp_autoencoder_pca import plot_autoencoder_pca

    return plot_autoencoder_pca(result)


def claims(result: Result) -> list[Claim]:
    r = result
    k, d = r.bottleneck, r.dimension
    return [
        claim(f"A linear autoencoder with a {k}-unit bottleneck, trained by pre-training's own loop, reconstructs "
              "the inputs almost as well as the best rank-k projection, PCA's (within 5 %: Adam's mini-batch noise "
              "at this budget; the optimum itself cannot be beaten).", f"{PAPER}; {SOURCE}",
              {"linear_ae_mse": r.recon_mse["identity"], "pca_mse": r.pca_mse},
              "linear_ae_mse / pca_mse < 1.05", paper="equal at the global minimum (Baldi & Hornik 1989)",
              labels={"linear_ae_mse": "linear autoencoder: reconstruction MSE",
                      "pca_mse": f"PCA, top {k} components: reconstruction MSE (the optimum)"}),
        claim(f"The linear encoder's weights span PCA's top-{k} subspace, nearly: its overlap (mean cos² of the "
              f"principal angles) is above 0.8, where a random {k}-dimensional subspace of the {d} inputs overlaps "
              f"by {k}/{d} on average. Not exactly 1: the last components carry nearly equal variance, so the "
              "loss is nearly flat along rotations among them.", f"{PAPER}; {SOURCE}",
              {"linear_overlap": r.overlap["identity"], "random_overlap": r.random_overlap},
              "linear_overlap > 0.8",
              paper=f"overlap 1 at the global minimum (Baldi & Hornik 1989); random subspace: k/d = {k / d:.3g}",
              labels={"linear_overlap": "linear encoder: overlap with PCA's subspace",
                      "random_overlap": "random subspace: overlap with PCA's subspace"}),
        claim("A sigmoid encoder, as layer-wise pre-training of a sigmoid network uses, is only *similar* to PCA: "
              "its weights overlap PCA's subspace less than the linear encoder's do, and it reconstructs worse.",
              SOURCE,
              {"sigmoid_overlap": r.overlap["sigmoid"], "linear_overlap": r.overlap["identity"],
               "sigmoid_ae_mse": r.recon_mse["sigmoid"], "linear_ae_mse": r.recon_mse["identity"]},
              "sigmoid_overlap < linear_overlap and sigmoid_ae_mse > linear_ae_mse",
              labels={"sigmoid_overlap": "sigmoid encoder: overlap with PCA's subspace",
                      "linear_overlap": "linear encoder: overlap with PCA's subspace",
                      "sigmoid_ae_mse": "sigmoid autoencoder: reconstruction MSE",
                      "linear_ae_mse": "linear autoencoder: reconstruction MSE"}),
    ]


def tables(result: Result) -> list[Table]:
    rows = [[name, result.recon_mse[key], result.overlap[key], result.angles[key][-1]]
            for key, name in (("identity", "linear autoencoder"), ("sigmoid", "sigmoid autoencoder"))]
    rows.append([f"PCA, top {result.bottleneck}", result.pca_mse, 1.0, 0.0])
    rows.append(["random subspace", float("nan"), result.random_overlap, float("nan")])
    return [Table("encoder subspace against PCA's", ["encoder", "reconstruction MSE", "overlap (mean cos²)",
                                                     "largest principal angle (°)"], rows)]
