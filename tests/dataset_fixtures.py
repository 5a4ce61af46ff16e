"""Tiny dataset trees in each dataset's real on-disk layout, for tests.

``make_cityscapes(root)``, ``make_bdd100k(root)``, ``make_ade20k(root)``, ``make_synthetic(root)`` and
``make_folder(root)``
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
    CITYSCAPES_ID_TO_TRAINID,
    CITYSCAPES_VOID_IDS,
    blocky_label,
    colour_image,
    make_cityscapes,
)


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
            Image.fromarray(colour_image(rng, lab, PALETTE)).save(
                img_dir / f"{stem}.jpg", quality=95
            )
            Image.fromarray(lab).save(lbl_dir / f"{stem}.png")
    return root


def make_ade20k(root, n_per_split: int = 2, size=(64, 96), seed: int = 0) -> Path:
    """``root`` plays ADEChallengeData2016: images/{training,validation}/ADE_*.jpg +
    annotations/{training,validation}/ADE_*.png with raw values 0..150 (0 = other)."""
    from srcr.data.ade20k import PALETTE

    root = Path(root)
    rng = np.random.default_rng(seed)
    for d, tag in (("training", "train"), ("validation", "val")):
        img_dir, ann_dir = root / "images" / d, root / "annotations" / d
        img_dir.mkdir(parents=True, exist_ok=True)
        ann_dir.mkdir(parents=True, exist_ok=True)
        for k in range(n_per_split):
            stem = f"ADE_{tag}_{k + 1:08d}"
            raw = blocky_label(rng, size, [0, 1, 2, 3, 5, 13, 150])
            reduced = np.where(raw == 0, 255, raw.astype(np.int16) - 1).astype(np.uint8)
            Image.fromarray(colour_image(rng, reduced, PALETTE)).save(
                img_dir / f"{stem}.jpg", quality=95
            )
            Image.fromarray(raw).save(ann_dir / f"{stem}.png")
    return root


def make_synthetic(
    root, n_per_split: int = 2, size=(32, 48), num_classes: int = 4, seed: int = 0
) -> Path:
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
            Image.fromarray(colour_image(rng, lab, palette)).save(
                root / "images" / split / f"{k:05d}.png"
            )
            Image.fromarray(lab).save(root / "labels" / split / f"{k:05d}.png")
    meta = {
        "format": "srcr-synthetic",
        "generator_version": "test-fixture",
        "seed": seed,
        "size": list(size),
        "splits": {"train": n_per_split, "val": n_per_split},
        "classes": classes,
        "palette": palette,
        "ignore_index": 255,
    }
    (root / "meta.json").write_text(json.dumps(meta, indent=2))
    return root


FOLDER_CLASSES = ["ground", "object"]
FOLDER_PALETTE = [[20, 160, 40], [220, 30, 30]]
# labels stored with other ids: 10 = ground, 20 = object, 0 = unlabelled (ignored), as label_map says
FOLDER_LABEL_MAP = {10: 0, 20: 1, 0: 255}
FOLDER_SIZES = ((40, 56), (48, 72))  # [H, W]: two image sizes in each split


def make_folder(root, n_per_split: int = 2, seed: int = 0) -> Path:
    """The folder layout: classes.yaml (two classes plus ignore, a label_map), JPEG images of two
    sizes (``n_per_split`` of each size per split; val's second size in a sub-folder) and 8-bit PNG
    labels with the raw ids 10, 20 and 0 (ignore)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    lines = [
        "names: [ground, object]",
        f"palette: {FOLDER_PALETTE}",
        "ignore_index: 255",
        "label_map: {10: 0, 20: 1, 0: 255}",
    ]
    root.mkdir(parents=True, exist_ok=True)
    (root / "classes.yaml").write_text("\n".join(lines) + "\n")
    for split in ("train", "val"):
        for s, size in enumerate(FOLDER_SIZES):
            sub = "sub/" if split == "val" and s == 1 else ""
            for k in range(n_per_split):
                ids = blocky_label(rng, size, [0, 1, 255], n_rects=3)
                raw = np.select([ids == 0, ids == 1], [10, 20], 0).astype(np.uint8)
                stem = f"{sub}img{s}_{k}"
                (root / "images" / split / stem).parent.mkdir(parents=True, exist_ok=True)
                (root / "labels" / split / stem).parent.mkdir(parents=True, exist_ok=True)
                image = colour_image(rng, ids, FOLDER_PALETTE)
                Image.fromarray(image).save(root / "images" / split / f"{stem}.jpg", quality=95)
                Image.fromarray(raw).save(root / "labels" / split / f"{stem}.png")
    return root


def truncate_file(path, keep: float = 0.5) -> Path:
    """Cut a file to ``keep`` of its bytes (a truncated download)."""
    path = Path(path)
    data = path.read_bytes()
    path.write_bytes(data[: max(1, int(len(data) * keep))])
    return path
