"""Tiny (or full-size) Cityscapes trees in the dataset's real on-disk layout, with learnable
content: blocky labels (random rectangles over a background class) and images of the class colours
plus noise. Deterministic in ``seed``. The tests' dataset fixtures (tests/dataset_fixtures.py) and
``srcr bench gpu`` (a full-resolution fixture) write them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

# Cityscapes label ids (cityscapesscripts labels.py) -> train ids; ids without a train id -> 255.
CITYSCAPES_ID_TO_TRAINID = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12, 26: 13,
    27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}
CITYSCAPES_VOID_IDS = [0, 1, 2, 3, 4, 5, 6, 9, 10, 14, 15, 16, 18, 29, 30]


def blocky_label(rng: np.random.Generator, size, values, n_rects: int = 6) -> np.ndarray:
    """An HxW uint8 map: a background value and ``n_rects`` random rectangles, values from ``values``."""
    h, w = size
    values = np.asarray(values)
    lab = np.full((h, w), rng.choice(values), dtype=np.uint8)
    for _ in range(n_rects):
        y0, x0 = int(rng.integers(0, h)), int(rng.integers(0, w))
        y1 = min(h, y0 + int(rng.integers(max(2, h // 8), max(3, h // 2))))
        x1 = min(w, x0 + int(rng.integers(max(2, w // 8), max(3, w // 2))))
        lab[y0:y1, x0:x1] = rng.choice(values)
    return lab


def colour_image(rng: np.random.Generator, train_ids: np.ndarray, palette, noise: int = 20) -> np.ndarray:
    """RGB uint8 image: each pixel its class colour (grey for 255) plus uniform noise."""
    pal = np.full((256, 3), 128, dtype=np.int16)
    pal[: len(palette)] = np.asarray(palette, dtype=np.int16)
    img = pal[train_ids] + rng.integers(-noise, noise + 1, size=train_ids.shape + (3,))
    return np.clip(img, 0, 255).astype(np.uint8)


def make_cityscapes(root, n_per_split: int = 2, size=(64, 128), label_kind: str = "labelIds", seed: int = 0) -> Path:
    """leftImg8bit/{split}/{city}/*_leftImg8bit.png + gtFine/{split}/{city}/*_gtFine_{labelIds,labelTrainIds}.png
    (``label_kind``: 'labelIds', 'labelTrainIds' or 'both'), plus the _color/_instanceIds/_polygons
    decoys of the real release, which the reader must ignore."""
    from .cityscapes import PALETTE

    assert label_kind in ("labelIds", "labelTrainIds", "both")
    root = Path(root)
    rng = np.random.default_rng(seed)
    lut = np.full(256, 255, dtype=np.uint8)
    for i, t in CITYSCAPES_ID_TO_TRAINID.items():
        lut[i] = t
    cities = {"train": ["aachen", "bochum"], "val": ["frankfurt"]}
    ids = list(CITYSCAPES_ID_TO_TRAINID) + CITYSCAPES_VOID_IDS[:4]
    for split in ("train", "val"):
        for k in range(n_per_split):
            city = cities[split][k % len(cities[split])]
            stem = f"{city}_{k:06d}_000019"
            img_dir = root / "leftImg8bit" / split / city
            gt_dir = root / "gtFine" / split / city
            img_dir.mkdir(parents=True, exist_ok=True)
            gt_dir.mkdir(parents=True, exist_ok=True)
            label_ids = blocky_label(rng, size, ids)
            train_ids = lut[label_ids]
            Image.fromarray(colour_image(rng, train_ids, PALETTE)).save(img_dir / f"{stem}_leftImg8bit.png")
            if label_kind in ("labelIds", "both"):
                Image.fromarray(label_ids).save(gt_dir / f"{stem}_gtFine_labelIds.png")
            if label_kind in ("labelTrainIds", "both"):
                Image.fromarray(train_ids).save(gt_dir / f"{stem}_gtFine_labelTrainIds.png")
            Image.fromarray(colour_image(rng, train_ids, PALETTE, noise=0)).save(gt_dir / f"{stem}_gtFine_color.png")
            Image.fromarray(label_ids.astype(np.uint16) * 1000).save(gt_dir / f"{stem}_gtFine_instanceIds.png")
            (gt_dir / f"{stem}_gtFine_polygons.json").write_text(json.dumps({"imgHeight": size[0], "imgWidth": size[1],
                                                                              "objects": []}))
    return root


def ensure_cityscapes_fixture(root, n_per_split: int, size, seed: int = 0) -> Path:
    """``make_cityscapes`` written into a temporary sibling and renamed onto ``root``, so ``root``
    only ever exists complete; an existing ``root`` is reused as it is."""
    import shutil
    import tempfile

    root = Path(root)
    if root.is_dir():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".tmp", dir=root.parent))
    try:
        make_cityscapes(tmp, n_per_split=n_per_split, size=tuple(size), label_kind="labelIds", seed=seed)
        tmp.rename(root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root
