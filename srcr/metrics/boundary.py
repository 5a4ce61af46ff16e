"""Boundary F-score counts (mBF@tau, docs/metrics.md): exact Euclidean matching of class-wise
boundary pixels, many-to-one, as DAVIS (Perazzi et al., CVPR 2016) and MATLAB's ``bfscore``
(Csurka et al., BMVC 2013) match, but counted over the whole set."""

from __future__ import annotations

import numpy as np

from .maps import VOID, ClassNeighbourhood


def boundary_pixels(bmap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices and classes of the boundary pixels of a class-boundary code map."""
    flat = bmap.ravel()
    idx = np.flatnonzero(flat != VOID)
    return idx, flat[idx]


def bf_counts(
    bg: np.ndarray,
    bp: np.ndarray,
    ref_g: ClassNeighbourhood,
    ref_p: ClassNeighbourhood,
    tolerances,
    num_classes: int,
) -> dict[str, np.ndarray]:
    """Per-class counts of one image: ``bf_np``/``bf_ng`` (predicted / label boundary pixels) and
    ``bf_tpp``/``bf_tpg`` (T x C: those within tau of a same-class boundary pixel of the other map).

    ``bg``/``bp`` are the class-boundary code maps of label and prediction; ``ref_g``/``ref_p`` the
    neighbourhood tests built on them."""
    C = num_classes
    gi, gc = boundary_pixels(bg)
    pi, pc = boundary_pixels(bp)
    tpp = np.zeros((len(tolerances), C), np.int64)
    tpg = np.zeros((len(tolerances), C), np.int64)
    for t, tau in enumerate(tolerances):
        if pi.size:
            tpp[t] = np.bincount(pc[ref_g.query(pi, pc, tau)], minlength=C)[:C]
        if gi.size:
            tpg[t] = np.bincount(gc[ref_p.query(gi, gc, tau)], minlength=C)[:C]
    return {
        "bf_np": np.bincount(pc, minlength=C)[:C],
        "bf_ng": np.bincount(gc, minlength=C)[:C],
        "bf_tpp": tpp,
        "bf_tpg": tpg,
    }
