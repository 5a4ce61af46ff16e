"""Boundary-versus-interior (trimap) evaluation, as in Kohli et al. (IJCV 2009) and the DeepLab
papers, with the exact Euclidean distance to the class-agnostic label boundary (docs/metrics.md).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .maps import disk_radius2

TILE = (256, 512)  # core tile (rows, cols): small enough for the transform to stay in cache


def width_thresholds(widths) -> np.ndarray:
    """float32 thresholds t_k with dist > t_k  <=>  squared distance > floor(w_k^2): halfway (in
    squared distance) between the last integer inside and the first outside, far from any float32
    rounding of the transform's square roots."""
    return np.array([math.sqrt(disk_radius2(w) + 0.5) for w in widths], np.float32)


def width_index(tb: np.ndarray, widths) -> np.ndarray:
    """uint8 map: how many of the (ascending) ``widths`` w have dist > w, where dist is the exact
    Euclidean distance to the nearest pixel of ``tb``. The band of w_k is {index <= k}, its interior
    {index > k}.

    OpenCV's DIST_MASK_PRECISE is the exact linear-time transform of Felzenszwalb & Huttenlocher
    (2004). It runs on tiles with a halo of max(widths) + 1: a pixel within max(widths) of the
    boundary has its nearest boundary pixel inside its tile's halo, and a farther one stays farther
    on the tile. Tiles keep the transform and the comparisons in cache (about twice as fast as one
    transform of a 1024 x 2048 map)."""
    H, W = tb.shape
    idx = np.full((H, W), len(widths), np.uint8)  # tiles without boundary within reach: interior
    if not len(widths):
        return idx
    thresholds = width_thresholds(widths)
    halo = math.isqrt(disk_radius2(max(widths))) + 1
    th, tw = TILE
    if halo > th // 2:
        th, tw = H, W  # very wide bands: one transform over the whole map
    src = np.ascontiguousarray(~tb).view(np.uint8)
    for y0 in range(0, H, th):
        for x0 in range(0, W, tw):
            y1, x1 = min(H, y0 + th), min(W, x0 + tw)
            a, b = max(0, y0 - halo), min(H, y1 + halo)
            c, d = max(0, x0 - halo), min(W, x1 + halo)
            tile = src[a:b, c:d]
            if tile.all():
                continue
            dist = cv2.distanceTransform(tile, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[
                y0 - a : y1 - a, x0 - c : x1 - c
            ]
            out = np.zeros(dist.shape, np.uint8)
            for t in thresholds:
                np.add(out, dist > t, out=out, casting="unsafe")
            idx[y0:y1, x0:x1] = out
    return idx
