"""Cityscapes reader (Cordts et al., CVPR 2016): the 19 evaluation classes of the fine annotations.

Tree (``root`` holds both folders, as distributed)::

    leftImg8bit/{train,val}/{city}/{city}_{seq}_{frame}_leftImg8bit.png
    gtFine/{train,val}/{city}/{city}_{seq}_{frame}_gtFine_labelIds.png        (raw ids 0..33)
    gtFine/{train,val}/{city}/{city}_{seq}_{frame}_gtFine_labelTrainIds.png   (optional, preferred)

Raw ids go through the official ``cityscapesscripts/helpers/labels.py`` id -> trainId table; every
id without a train id (void classes, parking, guard rail, ..., and license plate, id -1, which
reads as 255 in an 8-bit PNG) becomes 255.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import IGNORE_INDEX, Layout, SegDataset, identity_lut

CLASSES = ["road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
           "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle",
           "bicycle"]
PALETTE = [[128, 64, 128], [244, 35, 232], [70, 70, 70], [102, 102, 156], [190, 153, 153], [153, 153, 153],
           [250, 170, 30], [220, 220, 0], [107, 142, 35], [152, 251, 152], [70, 130, 180], [220, 20, 60],
           [255, 0, 0], [0, 0, 142], [0, 0, 70], [0, 60, 100], [0, 80, 100], [0, 0, 230], [119, 11, 32]]

# (name, id, trainId) from cityscapesscripts/helpers/labels.py; trainId 255/-1 = not evaluated.
LABELS = [
    ("unlabeled", 0, 255), ("ego vehicle", 1, 255), ("rectification border", 2, 255), ("out of roi", 3, 255),
    ("static", 4, 255), ("dynamic", 5, 255), ("ground", 6, 255), ("road", 7, 0), ("sidewalk", 8, 1),
    ("parking", 9, 255), ("rail track", 10, 255), ("building", 11, 2), ("wall", 12, 3), ("fence", 13, 4),
    ("guard rail", 14, 255), ("bridge", 15, 255), ("tunnel", 16, 255), ("pole", 17, 5), ("polegroup", 18, 255),
    ("traffic light", 19, 6), ("traffic sign", 20, 7), ("vegetation", 21, 8), ("terrain", 22, 9),
    ("sky", 23, 10), ("person", 24, 11), ("rider", 25, 12), ("car", 26, 13), ("truck", 27, 14),
    ("bus", 28, 15), ("caravan", 29, 255), ("trailer", 30, 255), ("train", 31, 16), ("motorcycle", 32, 17),
    ("bicycle", 33, 18), ("license plate", -1, -1),
]
ID_TO_TRAINID = {i: (t if t >= 0 else IGNORE_INDEX) for _, i, t in LABELS}

IMAGE_SUFFIX = "_leftImg8bit.png"
TRAINIDS_SUFFIX = "_gtFine_labelTrainIds.png"
LABELIDS_SUFFIX = "_gtFine_labelIds.png"


def _labelids_lut() -> np.ndarray:
    lut = np.full(256, -1, dtype=np.int16)  # ids 34..254 do not exist in the table: invalid
    for i, t in ID_TO_TRAINID.items():
        lut[i % 256] = t  # -1 (license plate) is stored as 255 in an 8-bit PNG
    return lut


_LABELIDS_LUT = _labelids_lut()
_TRAINIDS_LUT = identity_lut(len(CLASSES))


class Cityscapes(SegDataset):
    """Cityscapes fine annotations, 19 classes; ``*_gtFine_labelTrainIds.png`` is used when present,
    else ``*_gtFine_labelIds.png`` mapped through the official table."""

    name = "cityscapes"
    classes = CLASSES
    palette = PALETTE
    layout_help = ("ROOT/leftImg8bit/{train,val}/CITY/*_leftImg8bit.png with "
                   "ROOT/gtFine/{train,val}/CITY/*_gtFine_labelIds.png (or *_gtFine_labelTrainIds.png)")

    def layout(self, split: str) -> Layout:
        return Layout(self.root / "leftImg8bit" / split, IMAGE_SUFFIX, self.root / "gtFine" / split,
                      (TRAINIDS_SUFFIX, LABELIDS_SUFFIX), recursive=True)

    def label_lut(self, label_path: Path) -> np.ndarray:
        return _TRAINIDS_LUT if label_path.name.endswith(TRAINIDS_SUFFIX) else _LABELIDS_LUT

    def expected_values(self, label_path: Path) -> str:
        if label_path.name.endswith(TRAINIDS_SUFFIX):
            return f"train ids 0..{len(CLASSES) - 1} or 255 (ignore)"
        return "Cityscapes label ids 0..33, or 255 (license plate, id -1)"

    def root_hint(self) -> str:
        for sub in ("cityscapes", "Cityscapes"):
            if (self.root / sub / "leftImg8bit").is_dir():
                return f"Did you mean --root {self.root / sub}?"
        return ""
