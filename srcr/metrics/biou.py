"""Boundary IoU (Cheng et al., CVPR 2021) per class on the multi-class maps, docs/metrics.md:
the inner band of a mask is its pixels within Euclidean distance d of its own boundary (the
class-wise boundary with void edges dropped), not detectron2's erosion of the whole label map."""

from __future__ import annotations

import numpy as np

from .maps import ClassNeighbourhood


def inner_bands(
    lab: np.ndarray,
    pred: np.ndarray,
    nonvoid: np.ndarray,
    ref_g: ClassNeighbourhood,
    ref_p: ClassNeighbourhood,
    width: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Boolean maps: union over classes of band(G_c) and of band(P_c).

    A pixel q with label c is in band(G_c) iff a boundary pixel of G_c lies within ``width``;
    bands of different classes are disjoint (each pixel has one label and one prediction), so one
    map per side suffices and the per-class counts come from the joint histogram."""
    return ref_g.dense(lab, nonvoid, width), ref_p.dense(pred, nonvoid, width)
