"""Shared building blocks of the metrics: input codes, boundary maps, Euclidean disks and the
exact class-aware "is a same-class pixel within distance r" test.

Definitions follow docs/metrics.md. Everything works on uint8 *codes*: classes 0..C-1, ``VOID``
(255) for ignored label pixels; that lets OpenCV's SIMD morphology do the heavy lifting.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ..errors import UserError

VOID = 255  # code of ignored (void) pixels and of "no reference pixel here"
BAD = 254  # code of a value that is neither a class nor the ignore index
MAX_CLASSES = 254  # codes 0..253 are classes; 254/255 are reserved

CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], np.uint8)  # 4-neighbourhood + centre


# ----------------------------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------------------------


def as_numpy(x, what: str) -> np.ndarray:
    """A numpy view of a numpy array or (any-device) torch tensor of class indices."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor, without importing torch
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.dtype == bool or not np.issubdtype(x.dtype, np.integer):
        raise UserError(
            f"{what}: expected integer class indices, got dtype {x.dtype} "
            "(take the argmax of the logits first)"
        )
    return x


def _lut(num_classes: int, ignore_index: int, ignore_code: int) -> np.ndarray:
    lut = np.full(256, BAD, np.uint8)
    lut[:num_classes] = np.arange(num_classes, dtype=np.uint8)
    if 0 <= ignore_index < 256:
        lut[ignore_index] = ignore_code
    return lut


def to_codes(x: np.ndarray, num_classes: int, ignore_index: int, ignore_code: int) -> np.ndarray:
    """Map an integer map to uint8 codes: classes stay, ``ignore_index`` -> ``ignore_code``,
    anything else -> BAD (the caller decides whether that is an error)."""
    if x.dtype != np.uint8:
        lo, hi = (int(x.min()), int(x.max())) if x.size else (0, 0)
        if lo >= 0 and hi < 256:
            x = x.astype(np.uint8)
        else:  # values beyond uint8: classify them directly
            out = np.full(x.shape, BAD, np.uint8)
            cls = (x >= 0) & (x < num_classes)
            out[cls] = x[cls]
            out[x == ignore_index] = ignore_code
            return out
    lut = _lut(num_classes, ignore_index, ignore_code)
    if x.size == 0:
        return x.copy()
    x = np.ascontiguousarray(x)
    return cv2.LUT(x.reshape(x.shape[0], -1), lut).reshape(x.shape)


def bad_values(x: np.ndarray, mask: np.ndarray, limit: int = 6) -> list[int]:
    """A few distinct offending values of ``x`` where ``mask`` is set (for error messages)."""
    return [int(v) for v in np.unique(x[mask])[:limit]]


# ----------------------------------------------------------------------------------------------
# boundaries (docs/metrics.md)
# ----------------------------------------------------------------------------------------------


def morph_min_max(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum and maximum code over each pixel's 4-neighbourhood (centre included), looking only
    at neighbours inside the image (OpenCV's default morphology border)."""
    return cv2.erode(codes, CROSS), cv2.dilate(codes, CROSS)


def class_boundaries(lab: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class-wise boundary maps of the label and the prediction, as codes (class of the boundary
    pixel, VOID elsewhere).

    Boundary of a mask M: pixels of M with a 4-neighbour inside the image not in M; pixels 4-adjacent
    to void (or void themselves) are dropped. Because each pixel belongs to exactly one class mask,
    the boundaries of all classes are disjoint and fit in one map: p is on the boundary of its own
    class iff some 4-neighbour has another code. Void is the largest code, so "no void within the
    4-neighbourhood" is "4-neighbourhood maximum != VOID" (for the prediction too: P_c excludes V).
    """
    lmin, lmax = morph_min_max(lab)
    pmin, pmax = morph_min_max(pred)
    keep = lmax != VOID
    bg = np.where(keep & (lmax != lmin), lab, np.uint8(VOID))
    bp = np.where(keep & (pmax != pmin), pred, np.uint8(VOID))
    return bg, bp


def trimap_boundary(lab: np.ndarray) -> np.ndarray:
    """Class-agnostic label boundary of the trimap: non-void pixels with a non-void 4-neighbour of
    another label. Shifting codes by one (void wraps to 0) makes void the smallest value, so the
    4-neighbourhood maximum ignores it; the minimum ignores void as is."""
    lab1 = lab + np.uint8(1)
    return (lab1 != 0) & ((cv2.erode(lab, CROSS) != lab) | (cv2.dilate(lab1, CROSS) != lab1))


# ----------------------------------------------------------------------------------------------
# Euclidean disks and the class-aware neighbourhood test
# ----------------------------------------------------------------------------------------------


def disk_radius2(radius: float) -> int:
    """Largest integer squared distance within ``radius`` (offsets with dy^2 + dx^2 <= r^2)."""
    if not (radius >= 0 and math.isfinite(radius)):
        raise UserError(f"tolerance/width must be a finite number >= 0, got {radius!r}")
    return int(math.floor(radius * radius + 1e-9))


def disk_kernel(radius: float) -> np.ndarray:
    """Structuring element of the closed Euclidean disk {dy^2 + dx^2 <= r^2} (skimage's ``disk``)."""
    r2 = disk_radius2(radius)
    r = math.isqrt(r2)
    y, x = np.mgrid[-r : r + 1, -r : r + 1]
    return (y * y + x * x <= r2).astype(np.uint8)


def disk_offsets(radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Row and column offsets of the disk's pixels, nearest first."""
    k = disk_kernel(radius)
    r = k.shape[0] // 2
    y, x = np.nonzero(k)
    y, x = y - r, x - r
    order = np.argsort(y * y + x * x, kind="stable")
    return y[order], x[order]


def any_same_class(
    flat_idx: np.ndarray,
    cls: np.ndarray,
    radius: float,
    shape,
    member,
    block: int = 32,
    chunk: int = 1 << 22,
) -> np.ndarray:
    """Exact test, per query pixel, whether ``member(flat_index, cls)`` holds at some in-image
    pixel within ``radius``.

    Offsets go nearest first in blocks; each block tests all (query, offset) pairs at once and
    the queries found leave before the next block. Queries at least the radius away from the image
    border need no bounds checks."""
    H, W = shape
    dy, dx = disk_offsets(radius)
    r = int(np.abs(dy).max())
    found = np.zeros(flat_idx.shape, bool)
    y, x = np.divmod(flat_idx, W)
    far = (y >= r) & (y < H - r) & (x >= r) & (x < W - r)
    for interior in (True, False):
        todo = np.flatnonzero(far == interior)
        for b in range(0, dy.size, block):
            if todo.size == 0:
                break
            by, bx = dy[b : b + block], dx[b : b + block]
            step = max(1, chunk // by.size)
            hit = np.zeros(todo.size, bool)
            for s in range(0, todo.size, step):
                q = todo[s : s + step]
                if interior:
                    h = member(flat_idx[q, None] + (by * W + bx), cls[q, None])
                else:
                    yy, xx = y[q, None] + by, x[q, None] + bx
                    inside = (yy >= 0) & (yy < H) & (xx >= 0) & (xx < W)
                    h = inside & member(np.where(inside, yy * W + xx, 0), cls[q, None])
                hit[s : s + step] = h.any(1)
            found[todo[hit]] = True
            todo = todo[~hit]
    return found


class ClassNeighbourhood:
    """Answers "is there a reference pixel of class c within Euclidean distance r of pixel p?"
    exactly, for many (p, c) at once.

    The reference is given by two code maps: ``lo`` holds the smallest class a reference pixel
    carries (VOID where none) and ``hi1`` the largest class + 1 (0 where none); for disjoint class
    boundaries both describe the same single class. A grey erosion of ``lo`` and dilation of ``hi1``
    by the disk give the smallest and largest class present within r: c equal to either is present,
    c outside their range is absent, and only c strictly between them (three or more classes meet
    within r, rare) needs the exact look-up ``member(flat_index, c)``. That replaces one dilation
    per class and tolerance by two per tolerance.
    """

    def __init__(self, lo: np.ndarray, hi1: np.ndarray, member):
        self.lo, self.hi1, self.member = lo, hi1, member
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def extrema(self, radius: float) -> tuple[np.ndarray, np.ndarray]:
        r2 = disk_radius2(radius)
        if r2 not in self._cache:
            k = disk_kernel(radius)
            self._cache[r2] = (
                cv2.erode(self.lo, k, borderType=cv2.BORDER_CONSTANT, borderValue=VOID),
                cv2.dilate(self.hi1, k, borderType=cv2.BORDER_CONSTANT, borderValue=0),
            )
        return self._cache[r2]

    def query(self, flat_idx: np.ndarray, cls: np.ndarray, radius: float) -> np.ndarray:
        """Bool per query (flat pixel index, class code): a reference pixel of that class lies
        within ``radius``."""
        lo_map, hi_map = self.extrema(radius)
        lo = lo_map.ravel()[flat_idx]
        hi = hi_map.ravel()[flat_idx]
        cls1 = cls + np.uint8(1)
        found = (lo == cls) | (hi == cls1)
        amb = np.flatnonzero((lo < cls) & (cls1 < hi))
        if amb.size:
            found[amb] = any_same_class(flat_idx[amb], cls[amb], radius, self.lo.shape, self.member)
        return found

    def dense(self, cls: np.ndarray, valid: np.ndarray, radius: float) -> np.ndarray:
        """``query`` for every pixel at once, with the class map ``cls`` (valid where ``valid``)."""
        lo, hi = self.extrema(radius)
        cls1 = cls + np.uint8(1)
        found = valid & ((lo == cls) | (hi == cls1))
        amb = np.flatnonzero(valid & (lo < cls) & (cls1 < hi))
        if amb.size:
            found.ravel()[amb] = any_same_class(
                amb, cls.ravel()[amb], radius, cls.shape, self.member
            )
        return found


def single_class_reference(codes: np.ndarray) -> ClassNeighbourhood:
    """Reference map where each pixel carries at most one class (``codes``; VOID = none)."""
    flat = codes.ravel()
    return ClassNeighbourhood(codes, codes + np.uint8(1), lambda idx, c: flat[idx] == c)
