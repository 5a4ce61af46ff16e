"""Reader for a dataset of your own in one documented layout (the ``folder`` dataset).

Tree::

    ROOT/classes.yaml
    ROOT/images/{train,val}/NAME.{png,jpg,jpeg}
    ROOT/labels/{train,val}/NAME.png        8-bit, one class index per pixel

Images and labels pair by NAME (the relative path without its ending), so sub-folders are allowed
when the two trees mirror each other. ``classes.yaml``::

    names: [background, road, ...]   # required: the class names in index order (num_classes)
    palette: [[0, 0, 0], ...]        # optional: one [r, g, b] per class (default: DEFAULT_PALETTE)
    ignore_index: 255                # optional: the raw label value of unlabelled pixels
    label_map: {7: 0, 8: 1, 0: 255}  # optional: raw value -> class index or the ignore index

A raw label value is valid when it is mapped, a class index (0..len(names)-1) or the ignore
index; internally the ignore index becomes the suite's 255.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from .base import IGNORE_INDEX, Layout, SegDataset

CLASSES_FILE = "classes.yaml"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
KEYS = ("names", "palette", "ignore_index", "label_map")
LAYOUT_HELP = (
    "ROOT/classes.yaml with ROOT/images/{train,val}/NAME.{png,jpg,jpeg} and "
    "ROOT/labels/{train,val}/NAME.png (8-bit class indices; sub-folders mirrored)"
)


def _voc_colour(i: int) -> list[int]:
    """Pascal VOC's colour map: the bits of ``i`` spread over the high bits of r, g and b."""
    rgb = [0, 0, 0]
    for shift in range(7, -1, -1):
        for c in range(3):
            rgb[c] |= ((i >> c) & 1) << shift
        i >>= 3
    return rgb


# VOC's map from its index 1 on: index 0 is black, which would hide class 0 in an overlay
DEFAULT_PALETTE = [_voc_colour(i + 1) for i in range(254)]


class FolderClasses:
    """classes.yaml, checked: every problem is a UserError naming the file and the key."""

    def __init__(self, path: Path):
        from ..config import load_yaml

        self.path = path
        if not path.is_file():
            raise UserError(
                f"{path} not found: a folder dataset needs it (names: the class names, in "
                f"index order); expected {LAYOUT_HELP}"
            )
        raw = load_yaml(path)
        if not isinstance(raw, dict):
            raise UserError(
                f"{path}: expected a mapping with keys {', '.join(KEYS)}, got {type(raw).__name__}"
            )
        unknown = [str(k) for k in raw if k not in KEYS]
        if unknown:
            raise UserError(
                f"{path}: unknown key(s) {', '.join(unknown)}; expected {', '.join(KEYS)}"
            )
        self.names = self._names(raw.get("names"))
        n = len(self.names)
        self.palette = self._palette(raw.get("palette"), n)
        self.ignore_index = self._ignore(raw.get("ignore_index", IGNORE_INDEX), n)
        self.label_map = self._label_map(raw.get("label_map"), n)
        self.lut = self._lut(n)

    def _fail(self, key: str, message: str) -> UserError:
        return UserError(f"{self.path}: {key}: {message}")

    def _names(self, names: Any) -> list[str]:
        if names is None:
            raise self._fail("names", "missing; expected the list of class names, in index order")
        if not isinstance(names, list) or not names:
            raise self._fail("names", f"expected a non-empty list of class names, got {names!r}")
        bad = [x for x in names if not isinstance(x, str) or not x.strip()]
        if bad:
            raise self._fail("names", f"every name must be a non-empty string; got {bad[0]!r}")
        dup = sorted({x for x in names if names.count(x) > 1})
        if dup:
            raise self._fail("names", f"{', '.join(dup)} listed more than once")
        if len(names) >= IGNORE_INDEX:
            raise self._fail(
                "names",
                f"{len(names)} classes; at most {IGNORE_INDEX - 1} fit in 8-bit "
                f"labels beside the ignore value",
            )
        return list(names)

    def _palette(self, palette: Any, n: int) -> list[list[int]]:
        if palette is None:
            return [list(c) for c in DEFAULT_PALETTE[:n]]
        if not isinstance(palette, list) or len(palette) != n:
            got = f"{len(palette)} colours" if isinstance(palette, list) else repr(palette)
            raise self._fail("palette", f"{got} for {n} classes; expected one [r, g, b] per name")
        for i, c in enumerate(palette):
            if not (
                isinstance(c, list)
                and len(c) == 3
                and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in c)
            ):
                raise self._fail(f"palette[{i}]", f"{c!r}; expected [r, g, b] with integers 0..255")
        return [list(c) for c in palette]

    def _ignore(self, value: Any, n: int) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 255:
            raise self._fail("ignore_index", f"{value!r}; expected an integer 0..255")
        if value < n:
            raise self._fail(
                "ignore_index",
                f"{value} is the index of class {self.names[value]!r}; expected a value outside "
                f"0..{n - 1} (for labels stored with {value} = unlabelled, keep ignore_index 255 and "
                f"map the stored values, e.g. label_map: {{{value}: 255, ...}})",
            )
        return value

    def _label_map(self, mapping: Any, n: int) -> dict[int, int]:
        if mapping is None:
            return {}
        if not isinstance(mapping, dict):
            raise self._fail(
                "label_map", f"expected a mapping raw value -> class index, got {mapping!r}"
            )
        out = {}
        for raw, cls in mapping.items():
            if not isinstance(raw, int) or isinstance(raw, bool) or not 0 <= raw <= 255:
                raise self._fail("label_map", f"key {raw!r}: expected a raw label value 0..255")
            if (
                not isinstance(cls, int)
                or isinstance(cls, bool)
                or not (0 <= cls < n or cls == self.ignore_index)
            ):
                raise self._fail(
                    f"label_map[{raw}]",
                    f"{cls!r}; expected a class index 0..{n - 1} "
                    f"or the ignore index {self.ignore_index}",
                )
            out[raw] = cls
        return out

    def _lut(self, n: int) -> np.ndarray:
        """raw value -> class index or 255; -1 = invalid (neither in range, mapped nor ignore)."""
        lut = np.full(256, -1, dtype=np.int16)
        lut[:n] = np.arange(n)
        lut[self.ignore_index] = IGNORE_INDEX
        for raw, cls in self.label_map.items():
            lut[raw] = IGNORE_INDEX if cls == self.ignore_index else cls
        return lut

    def expected_values(self) -> str:
        text = f"class indices 0..{len(self.names) - 1}"
        if self.label_map:
            text += f", the mapped values {sorted(self.label_map)} (label_map)"
        return text + f" or the ignore index {self.ignore_index} ({self.path})"


def read_classes(root: str | Path) -> FolderClasses:
    return FolderClasses(Path(root) / CLASSES_FILE)


class Folder(SegDataset):
    """A dataset of your own: classes, palette and label ids from ROOT/classes.yaml."""

    name = "folder"
    layout_help = LAYOUT_HELP

    def _load_meta(self) -> None:
        self.meta = read_classes(self.root)
        self.classes = self.meta.names
        self.palette = self.meta.palette

    def layout(self, split: str) -> Layout:
        return Layout(
            self.root / "images" / split,
            IMAGE_SUFFIXES,
            self.root / "labels" / split,
            (".png",),
            recursive=True,
        )

    def label_lut(self, label_path: Path) -> np.ndarray:
        return self.meta.lut

    def expected_values(self, label_path: Path) -> str:
        return self.meta.expected_values()
