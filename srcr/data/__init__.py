"""Datasets (Cityscapes, BDD100K, ADE20K, the synthetic set, a folder of your own), seeded
transforms and `srcr check-data`."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..errors import UserError
from .ade20k import ADE20K
from .base import IGNORE_INDEX, SPLITS, DataProblem, SegDataset
from .bdd100k import BDD100K
from .cityscapes import Cityscapes
from .folder import Folder
from .synthetic import Synthetic

DATASETS: dict[str, type[SegDataset]] = {
    "cityscapes": Cityscapes,
    "bdd100k": BDD100K,
    "ade20k": ADE20K,
    "synthetic": Synthetic,
    "folder": Folder,
}


def build_dataset(name: str, root: str | Path, split: str, transforms: Callable | None = None,
                  cache: bool = False) -> SegDataset:
    """The ``split`` ('train' or 'val') of dataset ``name`` at ``root``; validates the tree now.
    ``cache`` keeps each decoded pair in memory after its first use (read-only arrays)."""
    try:
        cls = DATASETS[name]
    except KeyError:
        raise UserError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}") from None
    ds = cls(root, split, transforms)
    ds.cache = bool(cache)
    return ds


def dataset_classes(name: str, root: str | Path) -> tuple[list[str], list[list[int]]]:
    """Class names and palette of dataset ``name`` at ``root`` without listing its files (the
    synthetic and folder sets read them from their metadata file there)."""
    try:
        cls = DATASETS[name]
    except KeyError:
        raise UserError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}") from None
    meta = cls.__new__(cls)  # only the metadata: no split folders needed
    meta.root = Path(root)
    meta._load_meta()
    return list(meta.classes), [list(c) for c in meta.palette]


__all__ = ["DATASETS", "build_dataset", "dataset_classes", "SegDataset", "DataProblem", "IGNORE_INDEX", "SPLITS",
           "Cityscapes", "BDD100K", "ADE20K", "Synthetic", "Folder"]
