"""Offset correctness (a measure the paper could not make) from eval/offsets.npz.

At an alignment step with fine stride f (s16: 16, s8: 8, s4: 4), a fine-grid pixel p samples the
map it aligns at p + offset(p). With align_corners=True sampling (srcr.models.align.grid) the
sampled map's pixel coordinate is (p + offset) * (w - 1) / (W - 1); the cell read most is the
nearest one. The pixel is *correct* when that cell's majority label equals p's own label.

- own label of p: the majority label of its f x f cell of the label map (void cells skipped);
- the sampled map has stride 2f (the coarser input: SRM initial/refined, FAM flow, AlignFA high)
  or f (AlignFA's low offsets resample the fine map itself); its cell labels are majority labels;
- only pixels within ``width`` fine-grid pixels of a label boundary of the fine label map count
  (class-agnostic 4-neighbour boundary, Euclidean distance).
The zero-offset share is what bilinear upsampling reads; learned minus zero is what the module adds.

Beside correctness, :func:`run_geometry` gives each field's length (fine-grid px and % of the map's
short side) and the share of sampling points outside the map (:func:`outside_map`).
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..errors import UserError
from ..module_names import PRIMARY  # noqa: F401  (the kind the tables report; re-exported)

VOID = 255
STEPS = ("s16", "s8", "s4")


def majority_labels(
    label: np.ndarray, stride: int, shape: tuple[int, int], num_classes: int
) -> np.ndarray:
    """(h, w) majority label of each stride x stride cell (VOID where a cell is all void)."""
    h, w = shape
    lab = np.full((h * stride, w * stride), VOID, np.int64)
    hh, ww = min(label.shape[0], h * stride), min(label.shape[1], w * stride)
    lab[:hh, :ww] = label[:hh, :ww]
    cells = lab.reshape(h, stride, w, stride).transpose(0, 2, 1, 3).reshape(h * w, stride * stride)
    valid = cells != VOID
    cell_id = np.broadcast_to(np.arange(h * w)[:, None], cells.shape)
    counts = np.bincount(
        (cell_id[valid] * num_classes + cells[valid]), minlength=h * w * num_classes
    )
    counts = counts.reshape(h * w, num_classes)
    out = counts.argmax(1)
    out[counts.sum(1) == 0] = VOID
    return out.reshape(h, w)


def near_boundary(lab: np.ndarray, width: float) -> np.ndarray:
    """Non-void pixels within ``width`` of a class-agnostic 4-neighbour boundary of ``lab``."""
    b = np.zeros(lab.shape, bool)
    for a, c, sl_a, sl_c in (
        (lab[:, :-1], lab[:, 1:], (slice(None), slice(None, -1)), (slice(None), slice(1, None))),
        (lab[:-1], lab[1:], (slice(None, -1), slice(None)), (slice(1, None), slice(None))),
    ):
        edge = (a != c) & (a != VOID) & (c != VOID)
        b[sl_a] |= edge
        b[sl_c] |= edge
    if not b.any():
        return np.zeros(lab.shape, bool)
    dist = ndimage.distance_transform_edt(~b)
    return (dist <= width) & (lab != VOID)


def sampled_cells(
    offset: np.ndarray, coarse_shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of the coarse cell each fine pixel reads most (nearest to its sampling point)."""
    _, H, W = offset.shape
    h, w = coarse_shape
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    u = (xs + offset[0]) * ((w - 1) / max(W - 1, 1))
    v = (ys + offset[1]) * ((h - 1) / max(H - 1, 1))
    return (
        np.clip(np.rint(v), 0, h - 1).astype(np.int64),
        np.clip(np.rint(u), 0, w - 1).astype(np.int64),
    )


def correctness(
    offset: np.ndarray,
    label: np.ndarray,
    fine_stride: int,
    coarse: bool,
    num_classes: int,
    width: float = 1.0,
) -> tuple[float, float, int]:
    """(learned share, zero-offset share, number of pixels counted) for one image and step, in %."""
    _, H, W = offset.shape
    own = majority_labels(label, fine_stride, (H, W), num_classes)
    if coarse:
        shape, stride = (-(-H // 2), -(-W // 2)), 2 * fine_stride
    else:
        shape, stride = (H, W), fine_stride
    cell_lab = majority_labels(label, stride, shape, num_classes)
    sel = near_boundary(own, width)
    n = int(sel.sum())
    if n == 0:
        return float("nan"), float("nan"), 0
    shares = []
    for off in (offset, np.zeros_like(offset)):
        r, c = sampled_cells(off, shape)
        shares.append(100.0 * float((cell_lab[r, c] == own)[sel].mean()))
    return shares[0], shares[1], n


def load_offsets(path: Path) -> dict:
    """offsets.npz as {"steps": {step: {kind: (N, C, h, w)}}, "label", "pred", "image", "ids"}
    (per-image lists instead of (N, ...) arrays where the images differ in size)."""
    if not path.is_file():
        raise UserError(f"missing result file: {path} (srm / fam / alignfa runs write offsets)")
    try:
        return _read_offsets(path)
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as e:
        raise UserError(
            f"{path}: cannot read offsets ({type(e).__name__}: {e}); re-run srcr evaluate for it"
        ) from None


def _read_offsets(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return offsets_from_arrays({k: z[k] for k in z.files})


def _per_image_lists(arrays: dict) -> dict:
    """Images of different sizes are stored as KEY_i (srcr.evaluate._offset_arrays): KEY becomes
    the list of its images, indexed like a stacked array."""
    out, parts = {}, {}
    for k, v in arrays.items():
        base, _, idx = k.rpartition("_")
        if k != "image_ids" and base and idx.isdigit():
            parts.setdefault(base, {})[int(idx)] = v
        else:
            out[k] = v
    out.update({base: [d[i] for i in sorted(d)] for base, d in parts.items()})
    return out


def offsets_from_arrays(arrays: dict) -> dict:
    """The arrays of an offsets.npz (STEP_KIND, image_ids, label, pred, image; N first, or one
    KEY_i per image when their sizes differ) as load_offsets returns them: every per-image entry
    indexable by image (`srcr predict` builds them in memory)."""
    arrays = _per_image_lists(arrays)
    steps: dict = {}
    for k in set(arrays) - {"image_ids", "label", "pred", "image"}:
        step, kind = k.split("_", 1)
        steps.setdefault(step, {})[kind] = arrays[k]
    out = {"steps": steps, "ids": [str(s) for s in arrays["image_ids"]]}
    for k in ("label", "pred", "image"):
        out[k] = arrays.get(k)
    return out


def run_correctness(path: Path, align: str, num_classes: int, width: float = 1.0) -> dict:
    """{(step, kind): (learned %, zero %, pixels)} pooled over the offset images of one run (pixel
    counts summed, so the share is over all counted pixels)."""
    off = load_offsets(path)
    if off["label"] is None:
        raise UserError(
            f"{path}: no 'label' array (written by an older srcr evaluate); re-run srcr evaluate "
            "for offset correctness"
        )
    out = {}
    for step, kinds in off["steps"].items():
        for kind, arr in kinds.items():
            if kind == "weights":
                continue
            hits_l = hits_z = total = 0.0
            for i in range(len(arr)):
                lrn, zero, n = correctness(
                    arr[i],
                    off["label"][i],
                    int(step[1:]),
                    not (align == "alignfa" and kind == "low"),
                    num_classes,
                    width,
                )
                if n:
                    hits_l += lrn * n / 100
                    hits_z += zero * n / 100
                    total += n
            out[(step, kind)] = (
                (100 * hits_l / total, 100 * hits_z / total, int(total))
                if total
                else (float("nan"), float("nan"), 0)
            )
    return out


def outside_map(offset: np.ndarray) -> np.ndarray:
    """(H, W) bool: the sampling point p + offset(p) lies outside the map. With align_corners=True
    grids the sampled map's coordinate is (p + offset) * (w - 1) / (W - 1) for the coarse map and
    p + offset for the fine one, so either way it is outside exactly when p + offset leaves
    [0, W - 1] x [0, H - 1]: beyond the centres of the edge pixels, where border padding clamps
    (SRM) or zero padding fades (FAM, AlignFA) what is read."""
    _, H, W = offset.shape
    ys, xs = np.mgrid[0:H, 0:W]
    x, y = xs + offset[0].astype(np.float64), ys + offset[1].astype(np.float64)
    return (x < 0) | (x > W - 1) | (y < 0) | (y > H - 1)


def run_geometry(path: Path) -> dict:
    """{(step, kind): {"median_px", "p90_px", "median_rel", "outside"}} over every pixel of every
    offset image of one run: offset length in fine-grid pixels, the median as % of the map's short
    side, and the % of sampling points outside the map (:func:`outside_map`; NaN for SRM's initial
    offsets, which are only mixed into the refined ones, never sampled with)."""
    off = load_offsets(path)
    out = {}
    for step, kinds in off["steps"].items():
        for kind, arr in kinds.items():
            if kind == "weights":
                continue
            # one (2, h, w) field per image: images of a folder dataset may differ in size
            fields = [np.asarray(a, dtype=np.float64) for a in arr]
            lengths = np.concatenate([np.hypot(a[0], a[1]).ravel() for a in fields])
            outside = np.concatenate([outside_map(a).ravel() for a in fields])
            # relative to each image's own map, pooled like the lengths
            rel = np.concatenate([np.hypot(a[0], a[1]).ravel() / min(a.shape[-2:]) for a in fields])
            med = float(np.median(lengths))
            out[(step, kind)] = {
                "median_px": med,
                "p90_px": float(np.percentile(lengths, 90)),
                "median_rel": 100.0 * float(np.median(rel)),
                "outside": (float("nan") if kind == "initial" else 100.0 * float(outside.mean())),
            }
    return out
