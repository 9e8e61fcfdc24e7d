"""Offline datasets, standardization, input diagnostics and seeded batching."""
from impediments.data.batching import batch_indices, infinite_batches, iterate_batches, make_generator
from impediments.data.datasets import DATASET_NAMES, Dataset, load_dataset
from impediments.data.idx import IDXError, load_idx_folder, read_idx, write_idx
from impediments.data.report import InputReport, input_report
from impediments.data.standardize import Standardizer

__all__ = [
    "DATASET_NAMES", "Dataset", "IDXError", "InputReport", "Standardizer", "batch_indices", "infinite_batches",
    "input_report", "iterate_batches", "load_dataset", "load_idx_folder", "make_generator", "read_idx", "write_idx",
]
