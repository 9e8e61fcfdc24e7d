"""``BatchNorm``: a thin module around :func:`impediments.norm.functional.batch_norm`.

One class for dense ``(N, C)`` and channel-first ``(N, C, *)`` inputs: it
stands in for ``torch.nn.BatchNorm1d/2d/3d``, with the same parameter and
buffer names, so a ``state_dict`` loads in either direction.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from impediments.norm import finite
from impediments.norm.functional import batch_norm_with_stats, check_batch_norm_input


class BatchNorm(nn.Module):
    r"""Batch Normalization (Ioffe & Szegedy 2015) over every axis except C.

    Three separate states (compare Keras 3's "frozen state and inference
    mode are two separate concepts"):

    * **training** (``module.train()``): normalize with the batch mean and
      biased variance σ²_B over ``m = N·∏spatial`` values per channel;
      update ``running_mean``/``running_var`` with the unbiased
      ``m/(m−1)·σ²_B`` and increment ``num_batches_tracked``.
    * **inference** (``module.eval()``): normalize with the running
      (population) statistics; nothing is updated.
    * **frozen** (:func:`impediments.norm.freeze`): inference mode that
      survives ``model.train()``, and γ, β not trainable.

    .. math:: z = \gamma\,\frac{y-\mu}{\sqrt{\sigma^2+\epsilon}} + \beta

    Args:
        num_features: the channel count C (``input.shape[1]``).
        eps: ε added to the variance.
        momentum: torch convention, running ← (1−momentum)·running +
            momentum·batch; torch's 0.1 is Keras's ``momentum=0.9`` and
            Keras's default 0.99 is torch's 0.01. ``None``: cumulative
            average with factor 1/num_batches_tracked.
        affine: learn γ (``weight``, init 1) and β (``bias``, init 0).
        track_running_stats: keep running statistics; if ``False`` the
            layer uses batch statistics in inference mode too.

    Attributes:
        check_finite: ``None`` (follow :func:`impediments.norm.set_check_finite`,
            initially ``"auto"``), ``"auto"``, ``True`` or ``False``; see
            :mod:`impediments.norm.finite` for what is checked and its cost.

    Shape:
        Input ``(N, C)`` or ``(N, C, *)``; output the same.

    Raises:
        ValueError: for a channel count other than ``num_features``, input of
            rank < 2, or a single value per channel in training mode.

    Examples:
        >>> bn = BatchNorm(3)
        >>> bn(torch.randn(8, 3, 5)).shape
        torch.Size([8, 3, 5])

    References:
        Ioffe & Szegedy 2015, https://arxiv.org/abs/1502.03167
    """

    _version = 2
    check_finite: bool | str | None = None

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device=None, dtype=None) -> None:
        super().__init__()
        if not isinstance(num_features, int) or isinstance(num_features, bool) or num_features < 1:
            raise ValueError(f"num_features must be a positive integer, got {num_features!r}")
        if not eps > 0:
            raise ValueError(f"eps must be positive, got {eps!r}")
        if momentum is not None and (isinstance(momentum, bool) or not 0.0 <= momentum <= 1.0):
            raise ValueError(f"momentum must be None (cumulative average) or in [0, 1], got {momentum!r}")
        factory = {"device": device, "dtype": dtype}
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features, **factory))
            self.bias = nn.Parameter(torch.zeros(num_features, **factory))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features, **factory))
            self.register_buffer("running_var", torch.ones(num_features, **factory))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            nn.init.ones_(self.weight)
            nn.init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        # parameters and buffers read from their dicts: nn.Module.__getattr__ costs about 1 us a lookup,
        # which is a tenth of the fused kernel at small shapes (benchmarks/norm.py)
        params, buffers = self._parameters, self._buffers
        running_mean, running_var = buffers["running_mean"], buffers["running_var"]
        use_batch_stats = self.training or running_mean is None
        check_batch_norm_input(x, self.num_features, use_batch_stats)  # before any buffer changes
        update = self.training and self.track_running_stats
        momentum = self.momentum
        if update:
            tracked = buffers["num_batches_tracked"]
            tracked.add_(1)
            if momentum is None:  # cumulative average; float() syncs on accelerators, as in torch
                momentum = 1.0 / float(tracked)
        keep = update or not use_batch_stats
        y, var = batch_norm_with_stats(
            x, running_mean if keep else None, running_var if keep else None, params["weight"], params["bias"],
            use_batch_stats, 0.0 if momentum is None else momentum, self.eps, check=False)
        if finite.should_check(self, x):
            if var is not None:
                finite.warn_if_nonfinite(self, var, "per-channel batch statistics")
            elif finite.mode_of(self) is True:
                finite.warn_if_nonfinite(self, x.detach(), "input values", nonnegative=False)
        return y

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        version = local_metadata.get("version", None)
        key = prefix + "num_batches_tracked"
        if (version is None or version < 2) and self.track_running_stats and key not in state_dict:
            state_dict[key] = torch.tensor(0, dtype=torch.long)   # old torch checkpoints lack it
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")
