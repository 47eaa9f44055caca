"""Datasets as uint8 arrays and the device-resident loader that batches and augments them."""

from odenet.data.datasets import ArrayDataset, available_datasets, load_dataset
from odenet.data.fetch import Resource, ensure_file, search_dirs
from odenet.data.loader import DeviceLoader, fixed_subset, make_loaders, resolve_device
from odenet.data.synthetic import SyntheticSpec, make_synthetic

__all__ = [
    "ArrayDataset",
    "DeviceLoader",
    "Resource",
    "SyntheticSpec",
    "available_datasets",
    "ensure_file",
    "fixed_subset",
    "load_dataset",
    "make_loaders",
    "make_synthetic",
    "resolve_device",
    "search_dirs",
]
