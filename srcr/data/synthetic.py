"""Reader for the suite's synthetic dataset (written by ``srcr synth``, see srcr.data.synthetic_gen).

Tree::

    meta.json                     {"format": "srcr-synthetic", "classes": [...], "palette": [...],
                                   "splits": {"train": N, "val": M}, "ignore_index": 255, ...}
    images/{train,val}/NNNNN.png  RGB
    labels/{train,val}/NNNNN.png  8-bit class ids, 255 = ignore

Classes and palette come from meta.json; files go through the same checks as the real datasets.
"""

from __future__ import annotations

import json

from ..errors import UserError
from .base import IGNORE_INDEX, DataProblem, Layout, SegDataset

FORMAT = "srcr-synthetic"


class Synthetic(SegDataset):
    """The synthetic segmentation set; class names, palette and split sizes from ``meta.json``."""

    name = "synthetic"
    layout_help = ("ROOT/meta.json with ROOT/images/{train,val}/NNNNN.png and ROOT/labels/{train,val}/NNNNN.png "
                   "(generate it with `srcr synth`)")

    def _load_meta(self) -> None:
        path = self.root / "meta.json"
        if not path.is_file():
            raise UserError(f"synthetic root {self.root} has no meta.json; expected {self.layout_help}")
        try:
            meta = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise UserError(f"{path}: cannot read JSON ({e}); expected the meta.json written by `srcr synth`") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
            raise UserError(f"{path}: format is {got!r}; expected {FORMAT!r}")
        classes, palette = meta.get("classes"), meta.get("palette")
        if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
            raise UserError(f"{path}: 'classes' must be a non-empty list of names, got {classes!r}")
        if len(classes) >= IGNORE_INDEX:
            raise UserError(f"{path}: {len(classes)} classes; at most {IGNORE_INDEX} fit in 8-bit labels with 255 = ignore")
        if (not isinstance(palette, list) or len(palette) != len(classes)
                or not all(isinstance(c, list) and len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c)
                           for c in palette)):
            raise UserError(f"{path}: 'palette' must be {len(classes)} [r, g, b] triples of 0..255 (one per class)")
        if meta.get("ignore_index", IGNORE_INDEX) != IGNORE_INDEX:
            raise UserError(f"{path}: ignore_index is {meta.get('ignore_index')!r}; expected {IGNORE_INDEX}")
        self.meta = meta
        self.classes = list(classes)
        self.palette = [list(c) for c in palette]

    def layout(self, split: str) -> Layout:
        return Layout(self.root / "images" / split, ".png", self.root / "labels" / split, (".png",))

    def _scan(self) -> None:
        super()._scan()
        expected = (self.meta.get("splits") or {}).get(self.split)
        if isinstance(expected, int) and self.pairs and expected != len(self.pairs):
            self.problems.append(DataProblem(
                "count", self.root / "meta.json",
                f"{self.root / 'meta.json'} lists {expected} {self.split} images but {len(self.pairs)} "
                f"image/label pairs were found under {self.root}; regenerate it with `srcr synth`"))
