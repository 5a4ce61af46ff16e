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


def _palette(n: int) -> list[list[int]]:
    rng = np.random.default_rng(1234)
    return rng.integers(0, 256, size=(n, 3)).tolist()


def make_cityscapes(root, n_per_split: int = 2, size=(64, 128), label_kind: str = "labelIds", seed: int = 0) -> Path:
    """leftImg8bit/{split}/{city}/*_leftImg8bit.png + gtFine/{split}/{city}/*_gtFine_{labelIds,labelTrainIds}.png
    (``label_kind``: 'labelIds', 'labelTrainIds' or 'both'), plus the _color/_instanceIds/_polygons
    decoys of the real release, which the reader must ignore."""
    from srcr.data.cityscapes import PALETTE

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


FOLDER_CLASSES = ["ground", "object"]
FOLDER_PALETTE = [[20, 160, 40], [220, 30, 30]]
# labels stored with other ids: 10 = ground, 20 = object, 0 = unlabelled (ignored), as label_map says
FOLDER_LABEL_MAP = {10: 0, 20: 1, 0: 255}
FOLDER_SIZES = ((40, 56), (48, 72))   # [H, W]: two image sizes in each split


def make_folder(root, n_per_split: int = 2, seed: int = 0) -> Path:
    """The folder layout: classes.yaml (two classes plus ignore, a label_map), JPEG images of two
    sizes (``n_per_split`` of each size per split; val's second size in a sub-folder) and 8-bit PNG
    labels with the raw ids 10, 20 and 0 (ignore)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    lines = ["names: [ground, object]", f"palette: {FOLDER_PALETTE}", "ignore_index: 255",
             "label_map: {10: 0, 20: 1, 0: 255}"]
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
