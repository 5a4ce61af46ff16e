"""From per-image counts to the reported figures. The one function here, :func:`summarize`,
serves both ``SegEvaluator.compute()`` and bootstrap resampling over images (pass ``weights`` or
``index``), so a confidence interval is computed by exactly the code that gives the point value.

All scores are percentages; per-class lists hold NaN for a class left out of the mean.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..errors import UserError
from .gscnn import gscnn_image_f

CONVENTION = (
    "srcr metrics (docs/metrics.md): region metrics from one confusion matrix over the set "
    "(void excluded, mean over classes with non-zero union); mBF@tau: exact Euclidean tolerance, "
    "4-neighbour class boundaries with edges against void dropped, counts accumulated over the "
    "set, classes absent from the labels left out; BIoU: inner bands of width d around the same "
    "boundaries, accumulated over the set; trimap: exact Euclidean distance to the class-agnostic "
    "label boundary, band = dist <= w, interior = dist > w"
)
GSCNN_CONVENTION = (
    "GSCNN compatibility protocol (Takikawa et al. 2019, utils/f_boundary.py): seg2bmap "
    "boundaries, void set to background, tolerance ceil(f x image diagonal), per-image F per class "
    "with absent classes scoring 1, averaged over images then over all classes"
)

# counts with a leading image axis; all are summed over images except gscnn_* (per-image F)
SUMMED_KEYS = (
    "conf_tp",
    "conf_gt",
    "conf_pred",
    "band_tp",
    "band_gt",
    "band_pred",
    "bf_np",
    "bf_ng",
    "bf_tpp",
    "bf_tpg",
    "biou_inter",
    "biou_g",
    "biou_p",
)


def _pct(num, den) -> np.ndarray:
    num = np.asarray(num, np.float64)
    den = np.asarray(den, np.float64)
    # divide(where=) instead of errstate + where: the same values, a third of a bootstrap's time less
    out = np.full(np.broadcast(num, den).shape, np.nan)
    return np.divide(100.0 * num, den, out=out, where=den > 0)


def _mean(values: np.ndarray) -> float:
    v = values[~np.isnan(values)]
    return float(v.mean()) if v.size else float("nan")


def _left_out(values: np.ndarray) -> list[int]:
    return [int(i) for i in np.flatnonzero(np.isnan(values))]


def _list(values: np.ndarray) -> list[float]:
    return [float(v) for v in values]


def _key(x) -> str:
    """Tolerance/width as it appears in a key: 3 -> '3', 2.5 -> '2.5'."""
    return f"{x:g}"


def _region(tp, gt, pr) -> tuple[np.ndarray, np.ndarray, float]:
    iou = _pct(tp, gt + pr - tp)
    acc = _pct(tp, gt)
    aacc = float(_pct(tp.sum(), gt.sum()))
    return iou, acc, aacc


def image_weights(n: int, weights=None, index=None) -> np.ndarray:
    """Multiplicity of each of ``n`` images: all ones, ``weights`` as given, or counted from a
    resample ``index`` (image indices, repeats allowed)."""
    if weights is not None and index is not None:
        raise ValueError("pass weights or index, not both")
    if index is not None:
        index = np.asarray(index, np.int64)
        if index.size and (index.min() < 0 or index.max() >= n):
            raise UserError(f"image index out of range 0..{n - 1}")
        return np.bincount(index, minlength=n).astype(np.float64)
    if weights is None:
        return np.ones(n, np.float64)
    w = np.asarray(weights, np.float64)
    if w.shape != (n,) or (w < 0).any():
        raise UserError(f"weights must be {n} non-negative numbers, got shape {w.shape}")
    return w


def summarize(counts: Mapping[str, np.ndarray], config: Mapping, weights=None, index=None) -> dict:
    """The metric dictionary from per-image counts (arrays with a leading image axis, as in
    ``SegEvaluator.per_image``) and the evaluator's ``config``.

    ``weights`` (one non-negative number per image) or ``index`` (a resample of image indices)
    select/reweight images, e.g. for a bootstrap."""
    C = int(config["num_classes"])
    taus = list(config["bf_tolerances"])
    widths = list(config["trimap_widths"])
    n = int(np.asarray(counts["conf_tp"]).shape[0])
    w = image_weights(n, weights, index)
    tot = {
        k: np.tensordot(w, np.asarray(counts[k], np.float64), axes=(0, 0))
        for k in SUMMED_KEYS
        if k in counts
    }
    names = config.get("class_names")
    out: dict = {
        "num_images": float(w.sum()) if weights is not None else int(w.sum()),
        "num_classes": C,
        "convention": CONVENTION,
    }
    if names:
        out["class_names"] = list(names)
    left: dict = {}

    # region metrics
    iou, acc, aacc = _region(tot["conf_tp"], tot["conf_gt"], tot["conf_pred"])
    out.update(aAcc=aacc, mIoU=_mean(iou), mAcc=_mean(acc), IoU=_list(iou), Acc=_list(acc))
    left["mIoU"], left["mAcc"] = _left_out(iou), _left_out(acc)

    # boundary F-score, accumulated over the set
    ng = tot["bf_ng"]
    np_ = tot["bf_np"]
    keep = ng > 0
    left["mBF"] = [int(i) for i in np.flatnonzero(~keep)]
    for t, tau in enumerate(taus):
        with np.errstate(invalid="ignore", divide="ignore"):
            prec = np.where(np_ > 0, tot["bf_tpp"][t] / np.where(np_ > 0, np_, 1), 0.0)
            rec = tot["bf_tpg"][t] / np.where(keep, ng, 1)
            f = np.where(
                prec + rec > 0, 2 * prec * rec / np.where(prec + rec > 0, prec + rec, 1), 0.0
            )
        f, prec, rec = (np.where(keep, 100.0 * a, np.nan) for a in (f, prec, rec))
        k = _key(tau)
        out[f"mBF@{k}"], out[f"mBP@{k}"], out[f"mBR@{k}"] = _mean(f), _mean(prec), _mean(rec)
        out[f"BF@{k}"], out[f"BP@{k}"], out[f"BR@{k}"] = _list(f), _list(prec), _list(rec)

    # Boundary IoU
    if config.get("biou_width") is not None:
        inter = tot["biou_inter"]
        biou = _pct(inter, tot["biou_g"] + tot["biou_p"] - inter)
        out["mBIoU"], out["BIoU"] = _mean(biou), _list(biou)
        left["mBIoU"] = _left_out(biou)

    # trimap: band of w and its complement (interior) within the non-void pixels
    trimap, left_tri = {}, {}
    wrong_all = tot["conf_gt"].sum() - tot["conf_tp"].sum()
    for k, width in enumerate(widths):
        btp, bgt, bpr = tot["band_tp"][k], tot["band_gt"][k], tot["band_pred"][k]
        itp, igt, ipr = tot["conf_tp"] - btp, tot["conf_gt"] - bgt, tot["conf_pred"] - bpr
        biou_, _, bacc = _region(btp, bgt, bpr)
        iiou, _, iacc = _region(itp, igt, ipr)
        trimap[width] = {
            "band_mIoU": _mean(biou_),
            "band_aAcc": bacc,
            "interior_mIoU": _mean(iiou),
            "interior_aAcc": iacc,
            "error_share": float(_pct(bgt.sum() - btp.sum(), wrong_all)),
            "band_share": float(_pct(bgt.sum(), tot["conf_gt"].sum())),
            "band_IoU": _list(biou_),
            "interior_IoU": _list(iiou),
        }
        left_tri[width] = {"band": _left_out(biou_), "interior": _left_out(iiou)}
    out["trimap"] = trimap
    left["trimap"] = left_tri

    if config.get("gscnn"):
        out.update(_gscnn(counts, config, w))
    out["left_out"] = left
    return out


def _gscnn(counts, config, w) -> dict:
    fractions = list(config["gscnn_fractions"])
    taus = np.asarray(counts["gscnn_tau"])  # (N, F)
    f = gscnn_image_f(
        counts["gscnn_np"],
        counts["gscnn_ng"],
        np.asarray(counts["gscnn_tpp"], np.float64),
        np.asarray(counts["gscnn_tpg"], np.float64),
    )  # (N, F, C)
    sw = w.sum()
    per_class = np.tensordot(w, f, axes=(0, 0)) / sw if sw > 0 else np.full(f.shape[1:], np.nan)
    out = {"gscnn_protocol": GSCNN_CONVENTION, "gscnn_fractions": fractions}
    # key by pixel tolerance when every image shares it and fractions do not collide, else by fraction
    px = [
        int(taus[0, j]) if taus.size and (taus[:, j] == taus[0, j]).all() else None
        for j in range(len(fractions))
    ]
    by_px = None not in px and len(set(px)) == len(px)
    keys = [f"gscnn_F@{p}" if by_px else f"gscnn_F@{frac:g}diag" for p, frac in zip(px, fractions)]
    for j, k in enumerate(keys):
        out[k] = float(100.0 * per_class[j].mean())
        out[k.replace("gscnn_F@", "gscnn_BF@")] = _list(100.0 * per_class[j])
    out["gscnn_keys"] = keys
    out["gscnn_tolerances_px"] = px
    return out
