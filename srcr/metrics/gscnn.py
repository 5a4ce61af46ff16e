"""GSCNN compatibility protocol (Takikawa et al., ICCV 2019, ``utils/f_boundary.py``, itself DAVIS's
``db_eval_boundary``), reproduced for comparison with published tables only:

- per image and class: binary masks with void set to background in both; boundaries by
  ``seg2bmap`` (a pixel differing from its east, south or south-east neighbour; last row/column
  compare only inside the image); tolerance ceil(f x image diagonal) pixels, matched through a
  disk of that radius;
- precision/recall conventions: no predicted and no label boundary -> F = 1 (absent classes
  score 1 in every image), only one of them empty -> F = 0;
- F averaged over images per class, then over all classes.

Matching here is the same exact Euclidean test as skimage's ``binary_dilation(b, disk(r))`` for
an integer r. GSCNN passes a threshold f >= 1 through as r unchanged; for a non-integer r
skimage's ``disk(r)`` is built on ``np.arange(-r, r + 1)``, a lattice of non-integer coordinates
(disk(2.5) is a 6x6 array whose True part is a 4x4 block), so it has no centre pixel and the
dilation is an off-centre box whose side of the extra pixel depends on the skimage/scipy version.
There is no exact, version-independent answer to reproduce, so such thresholds are rejected.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ..errors import UserError
from .maps import VOID, ClassNeighbourhood

GSCNN_FRACTIONS = (0.0005, 0.001875, 0.00375, 0.005)  # GSCNN's --eval_thresholds


def check_gscnn_fractions(fractions) -> None:
    """GSCNN takes f >= 1 as a pixel radius for skimage's ``disk``; only integers are well defined
    there (module docstring), so a non-integer f >= 1 is a UserError rather than a silent change."""
    for f in fractions:
        if f >= 1 and not float(f).is_integer():
            raise UserError(
                f"gscnn_fractions: {f!r} is >= 1, so GSCNN takes it as a pixel radius, but only whole "
                "pixels are reproducible (skimage's disk of a non-integer radius is an even-sized, "
                "off-centre footprint); use an integer number of pixels or a fraction < 1 of the diagonal"
            )


def gscnn_tolerances(shape, fractions=GSCNN_FRACTIONS) -> list[int]:
    """Pixel tolerances of GSCNN for an image of ``shape``: ceil(f x diagonal) for f < 1; f >= 1 is
    taken as pixels, as there, and must be a whole number (:func:`check_gscnn_fractions`)."""
    check_gscnn_fractions(fractions)
    diag = math.hypot(shape[0], shape[1])
    return [int(f) if f >= 1 else int(math.ceil(f * diag)) for f in fractions]


class Seg2BMap:
    """All classes' ``seg2bmap`` boundaries of one code map at once (void = in no mask).

    Pixel p lies on the boundary of class c iff c is among the codes of p and its (in-image) east,
    south and south-east neighbours and those codes are not all equal; replicating the last
    row/column reproduces seg2bmap's border rule. A pixel can be on several classes' boundaries."""

    def __init__(self, codes: np.ndarray):
        self.shape = codes.shape
        p = cv2.copyMakeBorder(codes, 0, 1, 0, 1, cv2.BORDER_REPLICATE)
        self.codes = [
            codes,
            np.ascontiguousarray(p[:-1, 1:]),
            np.ascontiguousarray(p[1:, :-1]),
            np.ascontiguousarray(p[1:, 1:]),
        ]
        lo = np.minimum.reduce(self.codes)
        hi = np.maximum.reduce(self.codes)
        self.mixed = lo != hi
        self.lo = np.where(self.mixed, lo, np.uint8(VOID))
        hi1 = np.maximum.reduce([c + np.uint8(1) for c in self.codes])  # void wraps to 0
        self.hi1 = np.where(self.mixed, hi1, np.uint8(0))

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(flat index, class) of every boundary membership."""
        idx, cls = [], []
        for k, c in enumerate(self.codes):
            m = self.mixed & (c != VOID)
            for prev in self.codes[:k]:
                m &= c != prev
            i = np.flatnonzero(m)
            idx.append(i)
            cls.append(c.ravel()[i])
        return np.concatenate(idx), np.concatenate(cls)

    def neighbourhood(self) -> ClassNeighbourhood:
        flats = [c.ravel() for c in self.codes]
        mixed = self.mixed.ravel()

        def member(idx, cls):
            hit = flats[0][idx] == cls
            for f in flats[1:]:
                hit |= f[idx] == cls
            return hit & mixed[idx]

        return ClassNeighbourhood(self.lo, self.hi1, member)


def gscnn_counts(
    lab: np.ndarray, pred: np.ndarray, num_classes: int, fractions=GSCNN_FRACTIONS
) -> dict[str, np.ndarray]:
    """Per-image counts: ``gscnn_tau`` (F,), ``gscnn_np``/``gscnn_ng`` (C,) boundary pixels of the
    prediction / label masks, ``gscnn_tpp``/``gscnn_tpg`` (F, C) those matched within tau."""
    C = num_classes
    taus = gscnn_tolerances(lab.shape, fractions)
    pred = np.where(lab == VOID, np.uint8(VOID), pred)  # GSCNN zeroes both masks at void
    bm_g, bm_p = Seg2BMap(lab), Seg2BMap(pred)
    gi, gc = bm_g.pairs()
    pi, pc = bm_p.pairs()
    ref_g, ref_p = bm_g.neighbourhood(), bm_p.neighbourhood()
    tpp = np.zeros((len(taus), C), np.int64)
    tpg = np.zeros((len(taus), C), np.int64)
    for t, tau in enumerate(taus):
        if pi.size:
            tpp[t] = np.bincount(pc[ref_g.query(pi, pc, tau)], minlength=C)[:C]
        if gi.size:
            tpg[t] = np.bincount(gc[ref_p.query(gi, gc, tau)], minlength=C)[:C]
    return {
        "gscnn_tau": np.array(taus, np.int64),
        "gscnn_np": np.bincount(pc, minlength=C)[:C],
        "gscnn_ng": np.bincount(gc, minlength=C)[:C],
        "gscnn_tpp": tpp,
        "gscnn_tpg": tpg,
    }


def gscnn_image_f(n_p, n_g, tp_p, tp_g) -> np.ndarray:
    """GSCNN's per-image, per-class F (arrays broadcast; n_* (..., C), tp_* (..., F, C))."""
    n_p = np.asarray(n_p, np.float64)[..., None, :]
    n_g = np.asarray(n_g, np.float64)[..., None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        prec = np.where(n_p > 0, tp_p / np.maximum(n_p, 1), 1.0)
        rec = np.where(n_g > 0, tp_g / np.maximum(n_g, 1), 1.0)
        prec = np.where((n_p > 0) & (n_g == 0), 0.0, prec)
        rec = np.where((n_p == 0) & (n_g > 0), 0.0, rec)
        s = prec + rec
        return np.where(s > 0, 2 * prec * rec / np.where(s > 0, s, 1), 0.0)
