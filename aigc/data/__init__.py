"""Datasets: built-in image sets (IDX), and the shared ImageData container."""
from aigc.data.images import ImageData, load_dataset, read_idx, dataset_names, binarize, DATASETS

__all__ = ["ImageData", "load_dataset", "read_idx", "dataset_names", "binarize", "DATASETS"]
