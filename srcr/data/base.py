"""Shared dataset machinery: pairing image and label files, validation, decoding, item dicts.

Every reader (Cityscapes, BDD100K, ADE20K, the synthetic set) goes through this one code path, so
the same checks guard all of them:

- on construction (cheap, file names only): missing root, missing split folder, images without a
  label and labels without an image;
- per item (lazily, when the files are decoded): unreadable or truncated files (a full decode is
  forced), image and label of different sizes, label values outside the dataset's range.

Raw label values are mapped to train ids through a 256-entry lookup table per label file; entries
of -1 mark raw values that are not valid for the dataset, so "after mapping, every value is
< num_classes or 255" holds by construction and the error can name the offending *raw* values.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image, ImageFile
from torch.utils.data import Dataset

from ..errors import UserError
from ..utils.seed import derive_seed

IGNORE_INDEX = 255
SPLITS = ("train", "val")
# Mixed into the per-index seed of ``ds[i]`` (no explicit seed), so it differs from seeds the
# training sampler derives from small integers.
_INDEX_SEED_SALT = 0x5EED_DA7A
_MAX_LISTED = 5


class DataProblem(UserError):
    """A problem with one file (or a set of files) of a dataset; ``kind`` classifies it for
    ``srcr check-data``: missing, unpaired, count, unreadable, mode, size, values."""

    def __init__(self, kind: str, path: str | Path, message: str):
        super().__init__(message)
        self.kind = kind
        self.path = str(path)

    def __reduce__(self):  # picklable across check-data worker processes
        return (type(self), (self.kind, self.path, str(self)))


@dataclass(frozen=True)
class Layout:
    """Where one split's files live and how image and label names correspond."""

    image_dir: Path
    image_suffix: str | tuple[str, ...]  # image file ending(s), stripped to get the key
    label_dir: Path
    label_suffixes: tuple[str, ...]   # label endings in order of preference
    recursive: bool = False           # search sub-folders (Cityscapes' city folders)


def identity_lut(num_classes: int) -> np.ndarray:
    """Raw value == train id; only ``0..num_classes-1`` and 255 are valid."""
    lut = np.full(256, -1, dtype=np.int16)
    lut[:num_classes] = np.arange(num_classes)
    lut[IGNORE_INDEX] = IGNORE_INDEX
    return lut


def _list_names(paths: Sequence[str]) -> str:
    shown = ", ".join(paths[:_MAX_LISTED])
    more = len(paths) - _MAX_LISTED
    return shown + (f", ... ({more} more)" if more > 0 else "")


def read_image(path: Path) -> np.ndarray:
    """Decode an image fully (truncated files raise) into uint8 HxWx3 RGB."""
    im = _open_fully(path, "image")
    try:
        if im.mode != "RGB":
            im = im.convert("RGB")
        return np.array(im, dtype=np.uint8)
    finally:
        im.close()


def read_label_raw(path: Path) -> np.ndarray:
    """Decode a single-channel label image fully into a 2-D integer array (raw values)."""
    im = _open_fully(path, "label")
    try:
        # "P" images hold palette indices, which are the class values (VOC-style annotations).
        if im.mode not in ("L", "P", "I", "I;16", "I;16B", "I;16L", "1"):
            raise DataProblem("mode", path,
                              f"{path}: label image has mode {im.mode} ({len(im.getbands())} channels); "
                              f"expected a single-channel (8-bit or 16-bit grey / palette) PNG of class ids")
        arr = np.array(im)
    finally:
        im.close()
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    return arr


def _open_fully(path: Path, what: str) -> Image.Image:
    # PIL decodes lazily and, with LOAD_TRUNCATED_IMAGES, silently fills missing data with black:
    # force a full decode with truncation treated as an error.
    prev = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    im = None
    try:
        im = Image.open(path)
        im.load()
        return im
    except DataProblem:
        raise
    except FileNotFoundError:
        raise DataProblem("unreadable", path, f"{path}: {what} file does not exist") from None
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, ... for bad files
        if im is not None:
            im.close()
        raise DataProblem("unreadable", path,
                          f"{path}: cannot decode {what} ({type(e).__name__}: {e}); "
                          f"expected a complete, readable {'PNG/JPEG' if what == 'image' else 'PNG'} file") from None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = prev


class SegDataset(Dataset):
    """A semantic segmentation split on disk: sorted (image, label) file pairs.

    ``ds[i]`` or ``ds[(i, seed)]`` -> ``{"image": float32 3xHxW, "label": int64 HxW, "path": str}``.
    With ``strict=False`` (used by ``srcr check-data``) pairing problems are collected in
    ``self.problems`` instead of raised; a missing root always raises.
    """

    name = "dataset"            # display name used in messages
    classes: list[str] = []
    palette: list[list[int]] = []
    ignore_index = IGNORE_INDEX
    layout_help = ""            # one line describing the expected tree, appended to layout errors

    def __init__(self, root: str | Path, split: str, transforms: Callable | None = None, *, strict: bool = True):
        if split not in SPLITS:
            raise UserError(f"{self.name}: unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        self.root = Path(root)
        self.split = split
        self.transforms = transforms
        self.cache = False  # build_dataset(..., cache=True): decoded pairs kept after first use
        self._decoded: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.problems: list[DataProblem] = []
        if not self.root.is_dir():
            what = "is not a directory" if self.root.exists() else "does not exist"
            raise UserError(f"{self.name} root {self.root} {what}; expected {self.layout_help}")
        self._load_meta()
        self._check_tables()
        self.pairs: list[tuple[Path, Path]] = []
        self._scan()
        if strict and self.problems:
            raise UserError("\n".join(str(p) for p in self.problems))

    # --- hooks for the readers -------------------------------------------------------------------

    def _load_meta(self) -> None:
        """Read dataset metadata from disk (the synthetic set's meta.json); nothing by default."""

    def layout(self, split: str) -> Layout:
        raise NotImplementedError

    def label_lut(self, label_path: Path) -> np.ndarray:
        """256-entry int16 table raw value -> train id (or 255); -1 marks invalid raw values."""
        return identity_lut(self.num_classes)

    def expected_values(self, label_path: Path) -> str:
        """Human description of the valid raw label values of ``label_path``."""
        return f"0..{self.num_classes - 1} or {IGNORE_INDEX} (ignore)"

    def root_hint(self) -> str:
        """Extra advice when the split folders are missing (e.g. the root is one level too high)."""
        return ""

    # --- properties ------------------------------------------------------------------------------

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.pairs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, n={len(self)})"

    # --- construction-time validation ------------------------------------------------------------

    def _check_tables(self) -> None:
        if len(self.palette) != self.num_classes:
            raise UserError(f"{self.name}: {self.num_classes} classes but {len(self.palette)} palette colours")

    def _scan(self) -> None:
        lay = self.layout(self.split)
        missing = [d for d in (lay.image_dir, lay.label_dir) if not d.is_dir()]
        if missing:
            hint = self.root_hint()
            msg = (f"{self.name} {self.split}: missing folder(s) {', '.join(str(d) for d in missing)}; "
                   f"expected {self.layout_help}" + (f". {hint}" if hint else ""))
            self.problems.append(DataProblem("missing", missing[0], msg))
            return

        image_suffixes = (lay.image_suffix,) if isinstance(lay.image_suffix, str) else lay.image_suffix
        images = self._index(lay.image_dir, image_suffixes, lay.recursive)
        labels = self._index(lay.label_dir, lay.label_suffixes, lay.recursive)
        if not images:
            pattern = ("**/" if lay.recursive else "") + "*" + "|".join(image_suffixes)
            self.problems.append(DataProblem(
                "missing", lay.image_dir,
                f"{self.name} {self.split}: no images matching {pattern} under {lay.image_dir}; "
                f"expected {self.layout_help}"))
        no_label = sorted(k for k in images if k not in labels)
        no_image = sorted(k for k in labels if k not in images)
        if no_label:
            names = [str(images[k].relative_to(lay.image_dir)) for k in no_label]
            want = " or ".join(lay.label_suffixes)
            self.problems.append(DataProblem(
                "unpaired", lay.image_dir,
                f"{self.name} {self.split}: {len(no_label)} image(s) under {lay.image_dir} have no label "
                f"(expected <name>{want} under {lay.label_dir}): {_list_names(names)}"))
        if no_image:
            names = [str(labels[k].relative_to(lay.label_dir)) for k in no_image]
            self.problems.append(DataProblem(
                "unpaired", lay.label_dir,
                f"{self.name} {self.split}: {len(no_image)} label(s) under {lay.label_dir} have no image "
                f"(expected <name>{' or '.join(image_suffixes)} under {lay.image_dir}): "
                f"{_list_names(names)}"))
        self.pairs = [(images[k], labels[k]) for k in sorted(images) if k in labels]

    @staticmethod
    def _index(folder: Path, suffixes: Sequence[str], recursive: bool) -> dict[str, Path]:
        """key (relative path without the suffix) -> path; for several suffixes the first wins."""
        found: dict[str, Path] = {}
        files = folder.rglob("*") if recursive else folder.iterdir()
        by_suffix: dict[str, dict[str, Path]] = {s: {} for s in suffixes}
        for f in files:
            name = f.name
            for s in suffixes:
                if name.endswith(s) and len(name) > len(s) and not name.startswith("."):
                    rel = f.relative_to(folder).as_posix()
                    by_suffix[s][rel[: -len(s)]] = f
                    break
        for s in reversed(suffixes):  # earlier suffixes overwrite later ones: preference order
            found.update(by_suffix[s])
        return found

    # --- decoding --------------------------------------------------------------------------------

    def load_image(self, i: int) -> np.ndarray:
        return read_image(self.pairs[i][0])

    def load_label(self, i: int, counts: bool = False):
        """Mapped label (uint8 HxW, values < num_classes or 255); with ``counts`` also the
        per-class pixel counts (length num_classes + 1, the last entry = ignored pixels)."""
        path = self.pairs[i][1]
        raw = read_label_raw(path)
        lut = self.label_lut(path)
        if raw.dtype != np.uint8:
            lo, hi = int(raw.min()), int(raw.max())
            if lo < 0 or hi > 255:
                bad = np.unique(raw[(raw < 0) | (raw > 255)])
                raise self._values_error(path, bad, int(((raw < 0) | (raw > 255)).sum()))
            raw = raw.astype(np.uint8)
        raw_counts = np.bincount(raw.ravel(), minlength=256)
        bad_mask = (raw_counts > 0) & (lut < 0)
        if bad_mask.any():
            raise self._values_error(path, np.nonzero(bad_mask)[0], int(raw_counts[bad_mask].sum()))
        label = lut.astype(np.uint8)[raw]
        if not counts:
            return label
        class_counts = np.zeros(self.num_classes + 1, dtype=np.int64)
        valid = lut >= 0
        mapped = np.where(lut[valid] == IGNORE_INDEX, self.num_classes, lut[valid])
        np.add.at(class_counts, mapped, raw_counts[valid])
        return label, class_counts

    def _values_error(self, path: Path, bad: np.ndarray, n_pixels: int) -> DataProblem:
        vals = [int(v) for v in bad[:10]]
        more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
        return DataProblem("values", path,
                           f"{path}: label values {vals}{more} ({n_pixels} pixels) are outside the {self.name} "
                           f"range; expected {self.expected_values(path)}")

    def load_pair(self, i: int, counts: bool = False):
        """Decoded (image uint8 HxWx3, label uint8 HxW) of pair ``i``, validated."""
        image = self.load_image(i)
        out = self.load_label(i, counts=counts)
        label = out[0] if counts else out
        if image.shape[:2] != label.shape:
            raise self._size_error(i, image.shape, label.shape)
        return (image, label, out[1]) if counts else (image, label)

    def _pair(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if not self.cache:
            return self.load_pair(i)
        if i not in self._decoded:
            image, label = self.load_pair(i)
            # read-only: a transform that wrote into a cached array would corrupt later epochs
            image.setflags(write=False)
            label.setflags(write=False)
            self._decoded[i] = (image, label)
        return self._decoded[i]

    def _size_error(self, i: int, image_shape, label_shape) -> DataProblem:
        img_path, lbl_path = self.pairs[i]
        return DataProblem("size", lbl_path,
                           f"{lbl_path}: label is {label_shape[1]}x{label_shape[0]} (WxH) but its image "
                           f"{img_path} is {image_shape[1]}x{image_shape[0]}; expected the same size")

    def check_item(self, i: int) -> tuple[list[DataProblem], np.ndarray | None]:
        """Decode pair ``i`` and report every problem found (image and label are checked
        independently); returns (problems, per-class pixel counts or None) without raising."""
        problems: list[DataProblem] = []
        image = label = counts = None
        try:
            image = self.load_image(i)
        except DataProblem as p:
            problems.append(p)
        try:
            label, counts = self.load_label(i, counts=True)
        except DataProblem as p:
            problems.append(p)
        if image is not None and label is not None and image.shape[:2] != label.shape:
            problems.append(self._size_error(i, image.shape, label.shape))
        return problems, (counts if not problems else None)

    # --- items -----------------------------------------------------------------------------------

    def __getitem__(self, key):
        if isinstance(key, tuple):
            index, seed = key
        else:
            index, seed = key, None
        i = operator.index(index)
        n = len(self.pairs)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"{self.name} {self.split}: index {index} out of range for {n} items")
        image, label = self._pair(i)
        if self.transforms is not None:
            rng = np.random.default_rng(derive_seed(_INDEX_SEED_SALT, i) if seed is None else seed)
            image, label = self.transforms(image, label, rng)
        return {"image": _image_tensor(image), "label": _label_tensor(label), "path": str(self.pairs[i][0])}


def _image_tensor(image: np.ndarray) -> torch.Tensor:
    chw = np.ascontiguousarray(np.asarray(image).transpose(2, 0, 1), dtype=np.float32)
    return torch.from_numpy(chw)


def _label_tensor(label: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(label, dtype=np.int64))
