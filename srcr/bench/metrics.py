"""`srcr bench metrics`: time per image of the full metric set (SegEvaluator) next to a GSCNN-style
boundary scorer (per class, per tolerance: binary dilation of the boundary by a disk, then count,
as GSCNN's and SegFix's evaluation code do), on synthetic Cityscapes-sized label/prediction
pairs, and check that both give exactly the same boundary counts."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import cv2
import numpy as np

from ..errors import UserError
from ..metrics import SegEvaluator
from ..metrics.maps import CROSS, disk_kernel

TOLERANCES = (1, 3, 5)


# ----------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------


def synthetic_pair(rng: np.random.Generator, height: int, width: int, num_classes: int):
    """A blobby label map (smooth random class fields, warped edges, small objects, a void band at
    the bottom like Cityscapes' ego vehicle and void seams along some edges) and a prediction =
    the label with perturbed boundaries, wrong blobs and speckles. Returns (pred, label) uint8."""
    H, W, C = height, width, num_classes
    h4, w4 = max(H // 4, 1), max(W // 4, 1)

    def field(scale: int) -> np.ndarray:
        g = rng.standard_normal((max(H // scale, 2), max(W // scale, 2))).astype(np.float32)
        return cv2.resize(g, (w4, h4), interpolation=cv2.INTER_CUBIC)

    prior = np.log(np.geomspace(3.0, 0.3, C)[rng.permutation(C)]).astype(np.float32)
    scores = np.stack([field(256) + 0.4 * field(64) + prior[c] for c in range(C)])
    lab = cv2.resize(scores.argmax(0).astype(np.uint8), (W, H), interpolation=cv2.INTER_NEAREST)
    xx, yy = np.meshgrid(np.arange(W, dtype=np.float32), np.arange(H, dtype=np.float32))

    def warp(img: np.ndarray, amplitude: float, scale: int) -> np.ndarray:
        def disp():
            g = rng.standard_normal((max(H // scale, 2), max(W // scale, 2))).astype(np.float32)
            return cv2.resize(g, (W, H), interpolation=cv2.INTER_CUBIC) * amplitude

        return cv2.remap(
            img, xx + disp(), yy + disp(), cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT
        )

    def ellipses(img: np.ndarray, n: int, rmin: int, rmax: int) -> None:
        for _ in range(n):
            a = int(rng.integers(rmin, rmax))
            axes = (a, max(1, int(a * rng.uniform(0.3, 3))))
            centre = (int(rng.integers(W)), int(rng.integers(H)))
            cv2.ellipse(
                img, centre, axes, float(rng.uniform(0, 180)), 0, 360, int(rng.integers(C)), -1
            )

    scale = max(1.0, min(H / 1024, W / 2048))
    lab = warp(lab, 4.0, 32)
    ellipses(lab, 80, 2, max(3, int(30 * scale)))  # poles, signs, people
    pred = warp(lab, 1.5, 16)
    ellipses(pred, 25, 5, max(6, int(80 * scale)))  # wrong regions
    speck = cv2.resize(
        (rng.random((h4, w4)) < 0.003).astype(np.uint8), (W, H), interpolation=cv2.INTER_NEAREST
    ).astype(bool)
    pred[speck] = rng.integers(0, C, int(speck.sum()), dtype=np.uint8)
    lab[int(H * 0.88) :, :] = 255  # ego vehicle
    k = np.ones((3, 3), np.uint8)
    seam = (cv2.dilate(lab, k) != cv2.erode(lab, k)) & (rng.random((H, W)) < 0.2)
    lab[seam] = 255  # unlabelled seams along some edges
    return pred, lab


# ----------------------------------------------------------------------------------------------
# the GSCNN-style scorer (reference implementation of the same counts, the classic way)
# ----------------------------------------------------------------------------------------------


def _dilate_scipy(mask: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    from scipy.ndimage import binary_dilation  # what skimage.morphology.binary_dilation calls

    return binary_dilation(mask, structure=kernel.astype(bool))


def _dilate_opencv(mask: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    return cv2.dilate(
        mask.view(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0
    ).view(bool)


def gscnn_style_counts(
    pred: np.ndarray,
    label: np.ndarray,
    num_classes: int,
    tolerances,
    impl: str = "opencv",
    ignore_index: int = 255,
) -> dict[str, np.ndarray]:
    """Boundary counts (bf_np, bf_ng, bf_tpp, bf_tpg) by per-class binary masks and per-class,
    per-tolerance disk dilations, with the boundary definition of docs/metrics.md."""
    dilate = _dilate_opencv if impl == "opencv" else _dilate_scipy
    void = label == ignore_index
    near_void = cv2.dilate(void.view(np.uint8), CROSS).view(bool)  # void or 4-adjacent to it
    kernels = [disk_kernel(t) for t in tolerances]
    C, T = num_classes, len(tolerances)
    out = {
        "bf_np": np.zeros(C, np.int64),
        "bf_ng": np.zeros(C, np.int64),
        "bf_tpp": np.zeros((T, C), np.int64),
        "bf_tpg": np.zeros((T, C), np.int64),
    }

    def boundary(mask: np.ndarray) -> np.ndarray:
        # eroding with a border of ones: the image border is not a boundary
        inner = cv2.erode(mask.view(np.uint8), CROSS, borderType=cv2.BORDER_CONSTANT, borderValue=1)
        return mask & ~inner.view(bool) & ~near_void

    for c in range(C):
        bg = boundary(label == c)
        bp = boundary((pred == c) & ~void)
        out["bf_ng"][c], out["bf_np"][c] = np.count_nonzero(bg), np.count_nonzero(bp)
        if not (out["bf_ng"][c] or out["bf_np"][c]):
            continue
        for t, k in enumerate(kernels):
            out["bf_tpp"][t, c] = np.count_nonzero(bp & dilate(bg, k))
            out["bf_tpg"][t, c] = np.count_nonzero(bg & dilate(bp, k))
    return out


# ----------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", type=int, default=3, help="number of image pairs (default 3)")
    parser.add_argument(
        "--threads",
        type=int,
        default=2,
        help="OpenCV/torch threads; >1 also lets the trimap transform overlap (default 2)",
    )
    parser.add_argument(
        "--pin", action="store_true", help="pin the process to the first --threads CPUs (Linux)"
    )
    parser.add_argument(
        "--size",
        type=int,
        nargs=2,
        default=(1024, 2048),
        metavar=("H", "W"),
        help="image size (default 1024 2048)",
    )
    parser.add_argument("--classes", type=int, default=19, help="number of classes (default 19)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--baseline",
        default="scipy,opencv",
        help="comma-separated dilations for the GSCNN-style scorer: 'scipy' (scipy.ndimage, "
        "what skimage's binary_dilation in GSCNN's and SegFix's code calls) and/or "
        "'opencv' (the same algorithm with OpenCV's faster dilation); default both",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the figures to this JSON file")


def _stats(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {"mean_ms": float(a.mean()), "median_ms": float(np.median(a)), "min_ms": float(a.min())}


def _check_args(args: argparse.Namespace) -> list[str]:
    """Bad arguments -> UserError before anything runs; returns the baseline dilations."""
    if args.images < 1:
        raise UserError(f"--images must be >= 1, got {args.images}")
    H, W = args.size
    if H < 8 or W < 8:
        raise UserError(f"--size must be at least 8 x 8, got {H} x {W}")
    if not 2 <= args.classes <= 254:
        raise UserError(f"--classes must be in 2..254, got {args.classes}")
    if args.threads < 1:
        raise UserError(f"--threads must be >= 1, got {args.threads}")
    if args.pin and not hasattr(os, "sched_setaffinity"):
        raise UserError("--pin needs Linux (os.sched_setaffinity)")
    baselines = [b.strip() for b in args.baseline.split(",") if b.strip()]
    for b in baselines:
        if b not in ("scipy", "opencv"):
            raise UserError(f"--baseline: unknown dilation {b!r}, expected scipy and/or opencv")
    return baselines


def _set_threads(threads: int, pin: bool) -> None:
    from ..utils.threads import set_threads

    if pin:
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:threads])
    cv2.setNumThreads(threads)
    set_threads(threads)


def _time_scorers(
    args: argparse.Namespace, baselines: list[str], names: list[str]
) -> tuple[dict[str, list[float]], dict[str, list[float]], list[str], int]:
    """Score ``args.images`` random pairs with every scorer: per-image wall and CPU milliseconds,
    the images whose boundary counts disagree with a GSCNN-style scorer, and the boundary pixels
    compared."""
    from tqdm import tqdm

    H, W = args.size
    C = args.classes
    rng = np.random.default_rng(args.seed)
    full = SegEvaluator(C, bf_tolerances=TOLERANCES)
    bf_only = SegEvaluator(C, bf_tolerances=TOLERANCES, biou_width=None, trimap_widths=())
    # warm-up (first-call costs of OpenCV and numpy) on a small pair
    wp, wl = synthetic_pair(np.random.default_rng(1 << 30), 64, 128, C)
    SegEvaluator(C).update(wp, wl)
    for b in baselines:
        gscnn_style_counts(wp, wl, C, TOLERANCES, b)

    wall = {k: [] for k in names}
    cpu = {k: [] for k in names}
    mismatches, n_boundary = [], 0

    def timed(key, fn, *a):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn(*a)
        wall[key].append(1e3 * (time.perf_counter() - t0))
        cpu[key].append(1e3 * (time.process_time() - c0))
        return out

    for i in tqdm(range(args.images), desc="bench metrics", file=sys.stderr, disable=None):
        pred, label = synthetic_pair(rng, H, W, C)
        timed("full", full.update, pred, label)
        timed("bf_only", bf_only.update, pred, label)
        mine = {k: v[-1] for k, v in full.per_image.items()}
        n_boundary += int(mine["bf_np"].sum() + mine["bf_ng"].sum())
        for b in baselines:
            ref = timed(f"gscnn_style_{b}", gscnn_style_counts, pred, label, C, TOLERANCES, b)
            for k, v in ref.items():
                if not np.array_equal(v, mine[k]):
                    mismatches.append(f"image {i}: {k} differs from the {b} GSCNN-style scorer")
    return wall, cpu, mismatches, n_boundary


def _print_summary(
    args: argparse.Namespace,
    result: dict[str, Any],
    baselines: list[str],
    names: list[str],
    mismatches: list[str],
) -> None:
    H, W = args.size
    med = {k: result["wall_ms"][k]["median_ms"] for k in names}
    med_cpu = {k: result["cpu_ms"][k]["median_ms"] for k in names}
    print(
        f"srcr bench metrics: {args.images} images {H}x{W}, {args.classes} classes, "
        f"threads={args.threads} (OpenCV {result['opencv_threads']}), {result['cpus']} CPUs "
        f"visible, load average {result['load_average_1min']:.2f}"
    )
    print(f"{'per image (medians)':48s} {'wall ms':>9s} {'CPU ms':>9s}")
    labels = {
        "full": "full set (conf, mBF@1/3/5, BIoU, trimap x6)",
        "bf_only": "  mBF@1/3/5 + confusion alone",
    }
    for b in baselines:
        labels[f"gscnn_style_{b}"] = f"GSCNN-style dilation ({b}), mBF@1/3/5 only"
    for k in names:
        print(f"{labels[k]:48s} {med[k]:9.1f} {med_cpu[k]:9.1f}")
    for b in baselines:
        print(
            f"speed-up of the full set over the {b} GSCNN-style scorer: "
            f"{result['speedup_wall'][b]:.1f}x wall, {result['speedup_cpu'][b]:.1f}x CPU; "
            f"of mBF alone: {med[f'gscnn_style_{b}'] / med['bf_only']:.1f}x wall"
        )
    if mismatches:
        print("boundary counts DISAGREE: " + "; ".join(mismatches[:10]))
    else:
        print(
            f"boundary counts agree exactly (matched and total boundary pixels per class, tau "
            f"{', '.join(map(str, TOLERANCES))}; {result['boundary_pixels_checked']} boundary "
            f"pixels)"
        )


def run(args: argparse.Namespace) -> int:
    from ..utils.io import write_json

    baselines = _check_args(args)
    _set_threads(args.threads, args.pin)
    names = ["full", "bf_only"] + [f"gscnn_style_{b}" for b in baselines]
    wall, cpu, mismatches, n_boundary = _time_scorers(args, baselines, names)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    ncpu = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    med = {k: float(np.median(wall[k])) for k in names}
    med_cpu = {k: float(np.median(cpu[k])) for k in names}
    result = {
        "images": args.images,
        "size": list(args.size),
        "classes": args.classes,
        "threads": args.threads,
        "opencv_threads": cv2.getNumThreads(),
        "cpus": ncpu,
        "load_average_1min": load,
        "tolerances": list(TOLERANCES),
        "wall_ms": {k: _stats(v) for k, v in wall.items()},
        "cpu_ms": {k: _stats(v) for k, v in cpu.items()},
        "speedup_wall": {b: med[f"gscnn_style_{b}"] / med["full"] for b in baselines},
        "speedup_cpu": {b: med_cpu[f"gscnn_style_{b}"] / med_cpu["full"] for b in baselines},
        "counts_agree": not mismatches,
        "boundary_pixels_checked": n_boundary,
    }
    _print_summary(args, result, baselines, names, mismatches)
    if args.json:
        write_json(args.json, result)
    return 0 if not mismatches else 1
