"""Region counts: one joint histogram per image over (trimap width index, inner-band flags,
label, prediction) gives the overall confusion matrix (mmsegmentation's convention), the
band/interior confusion of every trimap width and the Boundary IoU counts in one pass."""

from __future__ import annotations

import cv2
import numpy as np


def joint_histogram(
    lab: np.ndarray,
    pred: np.ndarray,
    widx: np.ndarray,
    band_g: np.ndarray,
    band_p: np.ndarray,
    num_classes: int,
    num_widths: int,
) -> np.ndarray:
    """int64 array (K+1, 2, 2, C, C): pixel counts by width index, label inner band, prediction
    inner band, label class, predicted class, over the non-void pixels.

    Void pixels go to an extra label bin that is dropped, so no pixel needs to be selected first."""
    C, K = num_classes, num_widths
    nbins = (K + 1) * 4 * (C + 1) * C
    dt = np.uint16 if nbins <= 1 << 16 else np.int32
    flags = widx * np.uint8(4)
    flags += band_g.view(np.uint8) * np.uint8(2)
    flags += band_p.view(np.uint8)
    key = flags.astype(dt)
    key *= dt(C + 1)
    key += np.minimum(lab, np.uint8(C))  # void (255) -> the dropped bin C
    key *= dt(C)
    key += np.minimum(
        pred, np.uint8(C - 1)
    )  # prediction codes off the class range occur only at void
    if dt is np.uint16 and key.size < 1 << 24:
        # OpenCV's histogram counts in int32 and returns float32, exact below 2^24 pixels; about
        # twice as fast as np.bincount, which first widens the keys to int64
        hist = cv2.calcHist([key.reshape(key.shape[0], -1)], [0], None, [nbins], [0, nbins])
        hist = hist.ravel().astype(np.int64)
    else:
        hist = np.bincount(key.ravel(), minlength=nbins)
    return hist.reshape(K + 1, 2, 2, C + 1, C)[:, :, :, :C, :]


def _diag_rows_cols(conf: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(..., C, C) confusion -> true positives, label totals (rows), prediction totals (cols)."""
    return (np.diagonal(conf, axis1=-2, axis2=-1).copy(), conf.sum(-1), conf.sum(-2))


def reduce_histogram(h: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per-image counts from the joint histogram, and the image's full C x C confusion matrix."""
    by_width = h.sum((1, 2))  # (K+1, C, C)
    conf = by_width.sum(0)
    band = np.cumsum(by_width, axis=0)[:-1]  # band of w_k = width index <= k
    tp, gt, pr = _diag_rows_cols(conf)
    btp, bgt, bpr = _diag_rows_cols(band)
    g = h[:, 1].sum((0, 1))  # label inner band, (label, pred)
    p = h[:, :, 1].sum((0, 1))  # prediction inner band
    inter = np.diagonal(h[:, 1, 1].sum(0)).copy()
    counts = {
        "conf_tp": tp,
        "conf_gt": gt,
        "conf_pred": pr,
        "band_tp": btp,
        "band_gt": bgt,
        "band_pred": bpr,
        "biou_inter": inter,
        "biou_g": g.sum(1),
        "biou_p": p.sum(0),
    }
    return counts, conf
