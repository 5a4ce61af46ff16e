"""BDD100K semantic segmentation reader (Yu et al., CVPR 2020): the 10K images, 19 classes.

Tree (``root`` is the ``bdd100k`` folder of the official release)::

    images/10k/{train,val}/NAME.jpg
    labels/sem_seg/masks/{train,val}/NAME.png      (train ids 0..18, 255 = ignore)

The masks already hold train ids (the same 19 classes as Cityscapes), so they pass through.
"""

from __future__ import annotations

from .base import Layout, SegDataset
from .cityscapes import CLASSES as _CITYSCAPES_CLASSES
from .cityscapes import PALETTE as _CITYSCAPES_PALETTE

# BDD100K's own label table (bdd100k/label/label.py) uses the Cityscapes names, order and colours.
CLASSES = list(_CITYSCAPES_CLASSES)
PALETTE = [list(c) for c in _CITYSCAPES_PALETTE]


class BDD100K(SegDataset):
    """BDD100K 10K semantic segmentation (7000 train / 1000 val), 19 classes."""

    name = "bdd100k"
    classes = CLASSES
    palette = PALETTE
    layout_help = "ROOT/images/10k/{train,val}/*.jpg with ROOT/labels/sem_seg/masks/{train,val}/*.png"

    def layout(self, split: str) -> Layout:
        return Layout(self.root / "images" / "10k" / split, ".jpg",
                      self.root / "labels" / "sem_seg" / "masks" / split, (".png",))

    def root_hint(self) -> str:
        if (self.root / "bdd100k" / "images").is_dir():
            return f"Did you mean --root {self.root / 'bdd100k'}?"
        if (self.root / "seg" / "images").is_dir():
            return ("This looks like the older 'seg' release (seg/images, seg/labels/*_train_id.png); "
                    "arrange it as images/10k/SPLIT/NAME.jpg and labels/sem_seg/masks/SPLIT/NAME.png")
        return ""
