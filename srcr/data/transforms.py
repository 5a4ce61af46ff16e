"""Seeded training and evaluation transforms, reproducing mmsegmentation's (0.x) pipeline in numpy.

SegNeXt's recipe (the paper-scale default, docs/model.md): Resize(img_scale, ratio_range=(0.5, 2.0))
-> RandomCrop(crop_size, cat_max_ratio=0.75) -> RandomFlip(0.5) -> PhotoMetricDistortion ->
Normalize -> Pad(crop_size, 0, 255). Each transform is ``t(image, label, rng) -> (image, label)``
with ``image`` uint8 HxWx3 RGB (float32 after Normalize), ``label`` HxW, and draws every random
number from ``rng`` (a ``numpy.random.Generator``), so an item is a pure function of its seed.

Images are resized bilinearly with OpenCV when it is importable (as mmcv does), else with PIL;
labels always nearest-neighbour with OpenCV's INTER_NEAREST index rule, computed in numpy so the
result does not depend on which library is installed.
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np

from ..errors import UserError

try:  # pragma: no cover - depends on the environment
    import cv2

    # Loading is parallelised by DataLoader worker processes; OpenCV's own thread pool inside each
    # worker would only oversubscribe the cores.
    cv2.setNumThreads(0)
except ImportError:  # pragma: no cover
    cv2 = None

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
IGNORE_INDEX = 255


# --- resizing helpers ---------------------------------------------------------------------------

def rescale_size(hw: Sequence[int], scale: Sequence[int]) -> tuple[int, int]:
    """mmcv.rescale_size: the largest keep-ratio size whose long edge <= max(scale) and short edge
    <= min(scale) (orientation-free, so (H, W) and mmseg's (W, H) give the same result)."""
    h, w = int(hw[0]), int(hw[1])
    factor = min(max(scale) / max(h, w), min(scale) / min(h, w))
    return int(h * factor + 0.5), int(w * factor + 0.5)


def resize_nearest(arr: np.ndarray, size_hw: Sequence[int]) -> np.ndarray:
    """Nearest-neighbour resize with OpenCV's INTER_NEAREST rule: src = floor(dst * (1 / (dst_n / src_n)))."""
    h, w = int(size_hw[0]), int(size_hw[1])
    H, W = arr.shape[:2]
    if (h, w) == (H, W):
        return arr
    rows = np.minimum(np.floor(np.arange(h) * (1.0 / (h / H))).astype(np.intp), H - 1)
    cols = np.minimum(np.floor(np.arange(w) * (1.0 / (w / W))).astype(np.intp), W - 1)
    return arr[rows[:, None], cols[None, :]]


def resize_bilinear(img: np.ndarray, size_hw: Sequence[int]) -> np.ndarray:
    """Bilinear resize of an HxWxC image (uint8 or float32), keeping its dtype."""
    h, w = int(size_hw[0]), int(size_hw[1])
    if img.shape[:2] == (h, w):
        return img
    if cv2 is not None:
        out = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
        return out.reshape(h, w, *img.shape[2:])
    from PIL import Image

    if img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] in (3, 4):
        return np.asarray(Image.fromarray(img).resize((w, h), Image.BILINEAR))
    chans = img[..., None] if img.ndim == 2 else img
    out = np.stack([np.asarray(Image.fromarray(chans[..., c].astype(np.float32), mode="F")
                               .resize((w, h), Image.BILINEAR)) for c in range(chans.shape[2])], axis=-1)
    out = out.astype(img.dtype) if img.dtype != np.uint8 else np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out.reshape(h, w, *img.shape[2:])


# --- HSV (OpenCV's 8-bit convention: H in [0, 180), S and V in [0, 255]) ------------------------

def rgb_to_hsv(img: np.ndarray) -> np.ndarray:
    if cv2 is not None:
        return cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
    rgb = img.astype(np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    v = rgb.max(axis=-1)
    diff = v - rgb.min(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(v > 0, 255.0 * diff / v, 0.0)
        h = np.where(v == r, 60.0 * (g - b) / diff,
                     np.where(v == g, 120.0 + 60.0 * (b - r) / diff, 240.0 + 60.0 * (r - g) / diff))
    h = np.where(diff > 0, h, 0.0)
    h = np.where(h < 0, h + 360.0, h)
    hsv = np.stack([np.rint(h / 2.0) % 180, np.rint(s), v], axis=-1)
    return hsv.astype(np.uint8)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    if cv2 is not None:
        return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    h = hsv[..., 0].astype(np.float64) * (6.0 / 180.0)
    s = hsv[..., 1].astype(np.float64) / 255.0
    v = hsv[..., 2].astype(np.float64)
    h = np.mod(h, 6.0)
    sector = np.floor(h).astype(np.int64)
    f = h - sector
    tab = np.stack([v, v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))], axis=-1)
    # OpenCV's sector table, as (r, g, b) indices into tab
    idx = np.array([[0, 3, 1], [2, 0, 1], [1, 0, 3], [1, 2, 0], [3, 1, 0], [0, 1, 2]])[sector]
    rgb = np.take_along_axis(tab, idx, axis=-1)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


# --- transforms ---------------------------------------------------------------------------------

class Compose:
    """Apply transforms in order, all drawing from the same ``rng``."""

    def __init__(self, transforms: Iterable[Callable]):
        self.transforms = list(transforms)

    def __call__(self, image, label, rng):
        for t in self.transforms:
            image, label = t(image, label, rng)
        return image, label

    def __repr__(self) -> str:
        return "Compose(" + ", ".join(map(repr, self.transforms)) + ")"


class RandomResize:
    """mmseg Resize(img_scale, ratio_range, keep_ratio=True): multiply the base ``scale`` (H, W) by a
    ratio drawn uniformly from ``ratio_range``, then rescale the image to fit it, keeping its aspect
    ratio. Without ``ratio_range`` the base scale is used as is."""

    def __init__(self, scale: Sequence[int], ratio_range: Sequence[float] | None = (0.5, 2.0), keep_ratio: bool = True):
        self.scale = (int(scale[0]), int(scale[1]))
        self.ratio_range = None if ratio_range is None else (float(ratio_range[0]), float(ratio_range[1]))
        if self.ratio_range is not None and not 0 < self.ratio_range[0] <= self.ratio_range[1]:
            raise UserError(f"ratio_range {list(ratio_range)} must be [low, high] with 0 < low <= high")
        self.keep_ratio = keep_ratio

    def __call__(self, image, label, rng):
        if self.ratio_range is not None:
            lo, hi = self.ratio_range
            ratio = rng.random() * (hi - lo) + lo
            target = (int(self.scale[0] * ratio), int(self.scale[1] * ratio))
        else:
            target = self.scale
        size = rescale_size(image.shape[:2], target) if self.keep_ratio else target
        return resize_bilinear(image, size), resize_nearest(label, size)

    def __repr__(self) -> str:
        return f"RandomResize(scale={self.scale}, ratio_range={self.ratio_range}, keep_ratio={self.keep_ratio})"


class Resize:
    """Evaluation resize to ``scale`` (H, W) (keep-ratio: fit inside it, as mmseg's test Resize).

    The label keeps its original resolution by default: mmseg scores predictions resized back to
    the original annotation (docs/metrics.md: predictions at label resolution)."""

    def __init__(self, scale: Sequence[int], keep_ratio: bool = True, resize_label: bool = False):
        self.scale = (int(scale[0]), int(scale[1]))
        self.keep_ratio = keep_ratio
        self.resize_label = resize_label

    def __call__(self, image, label, rng=None):
        size = rescale_size(image.shape[:2], self.scale) if self.keep_ratio else self.scale
        image = resize_bilinear(image, size)
        if self.resize_label:
            label = resize_nearest(label, size)
        return image, label

    def __repr__(self) -> str:
        return f"Resize(scale={self.scale}, keep_ratio={self.keep_ratio}, resize_label={self.resize_label})"


class RandomCrop:
    """mmseg RandomCrop: a random ``crop_size`` (H, W) window (the whole side where the image is
    smaller). With ``cat_max_ratio`` < 1 it re-draws the window up to 10 times until the most
    frequent class covers less than ``cat_max_ratio`` of the non-ignored pixels and at least two
    classes are present; like mmseg, the window drawn after the 10th failure is used."""

    def __init__(self, crop_size: Sequence[int], cat_max_ratio: float = 0.75, ignore_index: int = IGNORE_INDEX):
        self.crop_size = (int(crop_size[0]), int(crop_size[1]))
        if min(self.crop_size) < 1:
            raise UserError(f"crop_size {list(crop_size)} must be positive")
        self.cat_max_ratio = float(cat_max_ratio)
        self.ignore_index = ignore_index

    def _bbox(self, shape, rng):
        margin_h = max(shape[0] - self.crop_size[0], 0)
        margin_w = max(shape[1] - self.crop_size[1], 0)
        y = int(rng.integers(0, margin_h + 1))
        x = int(rng.integers(0, margin_w + 1))
        return y, y + self.crop_size[0], x, x + self.crop_size[1]

    def _ok(self, crop: np.ndarray) -> bool:
        counts = np.bincount(crop.ravel(), minlength=256)
        if self.ignore_index < len(counts):
            counts[self.ignore_index] = 0
        counts = counts[counts > 0]
        return len(counts) > 1 and counts.max() / counts.sum() < self.cat_max_ratio

    def __call__(self, image, label, rng):
        y1, y2, x1, x2 = self._bbox(image.shape, rng)
        if self.cat_max_ratio < 1.0:
            for _ in range(10):
                if self._ok(label[y1:y2, x1:x2]):
                    break
                y1, y2, x1, x2 = self._bbox(image.shape, rng)
        return image[y1:y2, x1:x2], label[y1:y2, x1:x2]

    def __repr__(self) -> str:
        return f"RandomCrop(crop_size={self.crop_size}, cat_max_ratio={self.cat_max_ratio})"


class Pad:
    """Pad bottom and right up to ``size`` (H, W): image with ``pad_val``, label with ``seg_pad_val``."""

    def __init__(self, size: Sequence[int], pad_val: float = 0, seg_pad_val: int = IGNORE_INDEX):
        self.size = (int(size[0]), int(size[1]))
        self.pad_val = pad_val
        self.seg_pad_val = seg_pad_val

    def __call__(self, image, label, rng=None):
        ph = max(self.size[0] - image.shape[0], 0)
        pw = max(self.size[1] - image.shape[1], 0)
        if ph == 0 and pw == 0:
            return image, label
        image = np.pad(image, ((0, ph), (0, pw), (0, 0)), constant_values=self.pad_val)
        label = np.pad(label, ((0, ph), (0, pw)), constant_values=self.seg_pad_val)
        return image, label

    def __repr__(self) -> str:
        return f"Pad(size={self.size}, pad_val={self.pad_val}, seg_pad_val={self.seg_pad_val})"


class RandomFlip:
    """Horizontal flip of image and label with probability ``prob``."""

    def __init__(self, prob: float = 0.5):
        self.prob = float(prob)

    def __call__(self, image, label, rng):
        if rng.random() < self.prob:
            image, label = image[:, ::-1], label[:, ::-1]
        return image, label

    def __repr__(self) -> str:
        return f"RandomFlip(prob={self.prob})"


class PhotoMetricDistortion:
    """mmseg PhotoMetricDistortion on uint8 RGB: random brightness, then contrast either first or
    last (a coin flip), saturation and hue in between; each step applied with probability 0.5 and
    the image clipped back to uint8 after every step, as mmseg does."""

    def __init__(self, brightness_delta: int = 32, contrast_range=(0.5, 1.5), saturation_range=(0.5, 1.5),
                 hue_delta: int = 18):
        self.brightness_delta = brightness_delta
        self.contrast_lower, self.contrast_upper = contrast_range
        self.saturation_lower, self.saturation_upper = saturation_range
        self.hue_delta = hue_delta

    @staticmethod
    def _convert(img, alpha=1.0, beta=0.0):
        # mmseg: clip(img * alpha + beta) as float32 -> uint8; a 256-entry table gives the same
        # values per pixel at a fraction of the cost.
        lut = np.clip(np.arange(256, dtype=np.float32) * np.float32(alpha) + np.float32(beta), 0, 255).astype(np.uint8)
        return lut[img]

    def _brightness(self, img, rng):
        if rng.integers(2):
            return self._convert(img, beta=rng.uniform(-self.brightness_delta, self.brightness_delta))
        return img

    def _contrast(self, img, rng):
        if rng.integers(2):
            return self._convert(img, alpha=rng.uniform(self.contrast_lower, self.contrast_upper))
        return img

    def _saturation(self, img, rng):
        if rng.integers(2):
            hsv = rgb_to_hsv(img)
            hsv[..., 1] = self._convert(hsv[..., 1], alpha=rng.uniform(self.saturation_lower, self.saturation_upper))
            return hsv_to_rgb(hsv)
        return img

    def _hue(self, img, rng):
        if rng.integers(2):
            hsv = rgb_to_hsv(img)
            # numpy randint semantics as mmseg: the high end is excluded
            shift = int(rng.integers(-self.hue_delta, self.hue_delta)) if self.hue_delta > 0 else 0
            hsv[..., 0] = ((hsv[..., 0].astype(np.int64) + shift) % 180).astype(np.uint8)
            return hsv_to_rgb(hsv)
        return img

    def __call__(self, image, label, rng):
        if image.dtype != np.uint8:
            raise UserError(f"PhotoMetricDistortion expects a uint8 image (place it before Normalize), got {image.dtype}")
        img = self._brightness(image, rng)
        mode = rng.integers(2)
        if mode == 1:
            img = self._contrast(img, rng)
        img = self._saturation(img, rng)
        img = self._hue(img, rng)
        if mode == 0:
            img = self._contrast(img, rng)
        return img, label

    def __repr__(self) -> str:
        return "PhotoMetricDistortion()"


class Normalize:
    """(image - mean) / std per RGB channel on the 0..255 scale; returns float32."""

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD):
        self.mean = np.asarray(mean, dtype=np.float32).reshape(1, 1, -1)
        self.std = np.asarray(std, dtype=np.float32).reshape(1, 1, -1)
        if self.mean.size != 3 or self.std.size != 3:
            raise UserError(f"mean {list(mean)} and std {list(std)} must have 3 values (R, G, B)")
        if (self.std <= 0).any():
            raise UserError(f"std {list(std)} must be positive")

    def __call__(self, image, label, rng=None):
        out = image.astype(np.float32)  # a fresh array: normalise it in place
        out -= self.mean
        out /= self.std
        return out, label

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.ravel().tolist()}, std={self.std.ravel().tolist()})"


# --- builders -----------------------------------------------------------------------------------

TRAIN_PIPELINE_DEFAULTS = {
    "scale": [1024, 2048],
    "ratio_range": [0.5, 2.0],
    "crop_size": [1024, 1024],
    "cat_max_ratio": 0.75,
    "flip_prob": 0.5,
    "photometric": True,
}


def _pair(cfg_key: str, value) -> tuple[int, int] | None:
    if value is None:
        return None
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in value)):
        raise UserError(f"data.train_pipeline.{cfg_key} = {value!r}; expected [H, W] positive integers or null")
    return int(value[0]), int(value[1])


def build_train_transforms(pipeline_cfg: dict, mean: Sequence[float] = IMAGENET_MEAN,
                           std: Sequence[float] = IMAGENET_STD) -> Compose:
    """The training pipeline from ``cfg["data"]["train_pipeline"]`` (keys: scale, ratio_range,
    crop_size, cat_max_ratio, flip_prob, photometric; a null scale / crop_size skips that step).
    Passing the whole ``data`` section also works: its train_pipeline, mean and std are used."""
    if isinstance(pipeline_cfg, dict) and "train_pipeline" in pipeline_cfg:
        data_cfg = pipeline_cfg
        pipeline_cfg = data_cfg["train_pipeline"]
        mean, std = data_cfg.get("mean", mean), data_cfg.get("std", std)
    cfg = dict(TRAIN_PIPELINE_DEFAULTS)
    unknown = set(pipeline_cfg or {}) - set(cfg)
    if unknown:
        raise UserError(f"data.train_pipeline: unknown key(s) {sorted(unknown)}; expected {sorted(cfg)}")
    cfg.update(pipeline_cfg or {})
    scale, crop = _pair("scale", cfg["scale"]), _pair("crop_size", cfg["crop_size"])
    ratio = cfg["ratio_range"]
    if ratio is not None and (not isinstance(ratio, (list, tuple)) or len(ratio) != 2):
        raise UserError(f"data.train_pipeline.ratio_range = {ratio!r}; expected [low, high] or null")
    if not 0 <= float(cfg["flip_prob"]) <= 1:
        raise UserError(f"data.train_pipeline.flip_prob = {cfg['flip_prob']!r}; expected a probability in [0, 1]")
    if not 0 < float(cfg["cat_max_ratio"]) <= 1:
        raise UserError(f"data.train_pipeline.cat_max_ratio = {cfg['cat_max_ratio']!r}; expected a value in (0, 1]")

    ts: list[Callable] = []
    if scale is not None:
        ts.append(RandomResize(scale, ratio))
    if crop is not None:
        ts.append(RandomCrop(crop, cat_max_ratio=float(cfg["cat_max_ratio"])))
    if float(cfg["flip_prob"]) > 0:
        ts.append(RandomFlip(float(cfg["flip_prob"])))
    if cfg["photometric"]:
        ts.append(PhotoMetricDistortion())
    ts.append(Normalize(mean, std))
    if crop is not None:
        # As mmseg: pad after Normalize, so padded pixels are 0 in normalised units (the mean colour).
        ts.append(Pad(crop, pad_val=0, seg_pad_val=IGNORE_INDEX))
    return Compose(ts)


def build_eval_transforms(scale: Sequence[int] | dict | None = None, mean: Sequence[float] = IMAGENET_MEAN,
                          std: Sequence[float] = IMAGENET_STD) -> Compose:
    """Evaluation pipeline: optional keep-ratio Resize to ``scale`` (H, W) (``cfg["eval"]["scale"]``,
    e.g. mmseg's (2048, 512) for ADE20K; the label keeps its size), then Normalize. Passing the
    ``data`` section instead of a scale uses its mean and std and no resize."""
    if isinstance(scale, dict):
        mean, std = scale.get("mean", mean), scale.get("std", std)
        scale = None
    ts: list[Callable] = []
    if scale is not None:
        if len(scale) != 2 or min(scale) <= 0:
            raise UserError(f"eval.scale = {scale!r}; expected [H, W] positive integers or null")
        ts.append(Resize(scale))
    ts.append(Normalize(mean, std))
    return Compose(ts)
