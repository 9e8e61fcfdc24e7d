"""Mergeable accumulators of sufficient statistics, kept in device tensors (one import for all):
moments (:mod:`~impediments.monitor.moments`), fixed-edge histograms
(:mod:`~impediments.monitor.histogram`) and the :class:`~impediments.monitor.bag.Bag` that holds them.
"""
from impediments.monitor.bag import Bag
from impediments.monitor.histogram import (
    HIST_BINS,
    HIST_DECADES,
    HIST_EDGES,
    HIST_MAX_VALUES,
    HIST_PER_DECADE,
    histogram_counts,
    histogram_many,
    histogram_subsample,
    subsample_stride,
)
from impediments.monitor.moments import (
    MOMENT_FIELDS,
    Batch,
    as_state,
    batch_moments,
    empty_moments,
    fold_moments,
    merge_moments,
    moments_dict,
)

__all__ = ["HIST_BINS", "HIST_DECADES", "HIST_EDGES", "HIST_MAX_VALUES", "HIST_PER_DECADE", "MOMENT_FIELDS", "Bag",
           "Batch", "as_state", "batch_moments", "empty_moments", "fold_moments", "histogram_counts",
           "histogram_many", "histogram_subsample", "merge_moments", "moments_dict", "subsample_stride"]
