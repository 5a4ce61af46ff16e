"""Tiny dataset trees in each dataset's real on-disk layout, for tests.

``make_cityscapes(root)``, ``make_bdd100k(root)``, ``make_ade20k(root)`` and ``make_synthetic(root)``
write a few image/label pairs per split (``train`` and ``val``) and return ``root``. Labels are
blocky (random rectangles over a background class) and images are the class colours plus noise,
so a small model can actually learn them. Everything is deterministic in ``seed``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from srcr.data.fixtures import (  # noqa: F401  (re-exported for the tests)
    CITYSCAPES_ID_TO_TRAINID, CITYSCAPES_VOID_IDS, blocky_label, colour_image, make_cityscapes)


def _palette(n: int) -> list[list[int]]:
    rng = np.random.default_rng(1234)
    return rng.integers(0, 256, size=(n, 3)).tolist()


def make_bdd100k(root, n_per_split: int = 2, size=(72, 128), seed: int = 0) -> Path:
    """images/10k/{split}/*.jpg + labels/sem_seg/masks/{split}/*.png (train ids 0..18, 255)."""
    from srcr.data.bdd100k import PALETTE

    root = Path(root)
    rng = np.random.default_rng(seed)
    for split in ("train", "val"):
        img_dir = root / "images" / "10k" / split
        lbl_dir = root / "labels" / "sem_seg" / "masks" / split
        img_dir.mkdir(parents=True, exist_ok=True)
        lbl_dir.mkdir(parents=True, exist_ok=True)
        for k in range(n_per_split):
            stem = f"{split[0]}{k:03d}a{seed:02d}-{k:04x}c0de"
            lab = blocky_label(rng, size, list(range(19)) + [255])
            Image.fromarray(colour_image(rng, lab, PALETTE)).save(img_dir / f"{stem}.jpg", quality=95)
            Image.fromarray(lab).save(lbl_dir / f"{stem}.png")
    return root


def make_ade20k(root, n_per_split: int = 2, size=(64, 96), seed: int = 0) -> Path:
    """``root`` plays ADEChallengeData2016: images/{training,validation}/ADE_*.jpg +
    annotations/{training,validation}/ADE_*.png with raw values 0..150 (0 = other)."""
    from srcr.data.ade20k import PALETTE

    root = Path(root)
    rng = np.random.default_rng(seed)
    for split, d, tag in (("train", "training", "train"), ("val", "validation", "val")):
        img_dir, ann_dir = root / "images" / d, root / "annotations" / d
        img_dir.mkdir(parents=True, exist_ok=True)
        ann_dir.mkdir(parents=True, exist_ok=True)
        for k in range(n_per_split):
            stem = f"ADE_{tag}_{k + 1:08d}"
            raw = blocky_label(rng, size, [0, 1, 2, 3, 5, 13, 150])
            reduced = np.where(raw == 0, 255, raw.astype(np.int16) - 1).astype(np.uint8)
            Image.fromarray(colour_image(rng, reduced, PALETTE)).save(img_dir / f"{stem}.jpg", quality=95)
            Image.fromarray(raw).save(ann_dir / f"{stem}.png")
    return root


def make_synthetic(root, n_per_split: int = 2, size=(32, 48), num_classes: int = 4, seed: int = 0) -> Path:
    """The synthetic layout (meta.json, images/{split}/NNNNN.png, labels/{split}/NNNNN.png) written
    directly, independent of srcr.data.synthetic_gen, for reader tests."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    palette = _palette(num_classes)
    classes = [f"class{c}" for c in range(num_classes)]
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for k in range(n_per_split):
            lab = blocky_label(rng, size, list(range(num_classes)) + [255])
            Image.fromarray(colour_image(rng, lab, palette)).save(root / "images" / split / f"{k:05d}.png")
            Image.fromarray(lab).save(root / "labels" / split / f"{k:05d}.png")
    meta = {"format": "srcr-synthetic", "generator_version": "test-fixture", "seed": seed, "size": list(size),
            "splits": {"train": n_per_split, "val": n_per_split}, "classes": classes, "palette": palette,
            "ignore_index": 255}
    (root / "meta.json").write_text(json.dumps(meta, indent=2))
    return root


def truncate_file(path, keep: float = 0.5) -> Path:
    """Cut a file to ``keep`` of its bytes (a truncated download)."""
    path = Path(path)
    data = path.read_bytes()
    path.write_bytes(data[: max(1, int(len(data) * keep))])
    return path
