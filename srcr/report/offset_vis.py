"""Offset visualisations on fixed validation images (eval/offsets.npz): per alignment step the
offset field as a flow-colour image (hue = direction, brightness = length, colour wheel beside)
and as arrows over the image; SRM's initial offsets and the entropy of its neighbour weights;
AlignFA's second (low) field; the image, label, prediction and an error map with boundary and
interior errors in different colours."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..module_names import SECONDARY
from .figures import plt, save
from .offsets import PRIMARY, STEPS, VOID, load_offsets, near_boundary, outside_map

BOUNDARY_ERR = np.array([230, 25, 75], np.uint8)  # red
INTERIOR_ERR = np.array([0, 130, 200], np.uint8)  # blue


def flow_rgb(offset: np.ndarray, scale: float | None = None) -> tuple[np.ndarray, float]:
    """HSV flow colouring: hue = direction, value = length / scale (scale = max length)."""
    from matplotlib.colors import hsv_to_rgb

    dx, dy = offset[0], offset[1]
    mag = np.hypot(dx, dy)
    scale = float(scale if scale else max(mag.max(), 1e-6))
    hue = (np.arctan2(dy, dx) / (2 * np.pi)) % 1.0
    hsv = np.stack([hue, np.ones_like(hue), np.clip(mag / scale, 0, 1)], -1)
    return hsv_to_rgb(hsv), scale


def color_wheel(ax, size: int = 101) -> None:
    ys, xs = np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]
    rgb, _ = flow_rgb(np.stack([xs, ys]), 1.0)
    rgb[np.hypot(xs, ys) > 1] = 1.0
    ax.imshow(rgb, extent=(-1, 1, 1, -1))  # image y axis points down, as offsets do
    ax.set_title("direction (x right, y down)\nbrightness = length", fontsize=8)
    ax.axis("off")


def error_map(label: np.ndarray, pred: np.ndarray, width: float) -> np.ndarray:
    """Black = right, red = wrong within ``width`` px of a label boundary, blue = wrong in the
    interior, grey = void."""
    out = np.zeros(label.shape + (3,), np.uint8)
    wrong = (pred != label) & (label != VOID)
    near = near_boundary(label.astype(np.int64), width)
    out[wrong & near] = BOUNDARY_ERR
    out[wrong & ~near] = INTERIOR_ERR
    out[label == VOID] = 128
    return out


def _labels_rgb(lab: np.ndarray, num_classes: int) -> np.ndarray:
    cmap = plt.get_cmap("tab20" if num_classes > 10 else "tab10")
    rgb = (np.array([cmap(i % cmap.N)[:3] for i in range(256)]) * 255).astype(np.uint8)
    rgb[VOID] = 0
    return rgb[lab]


def _entropy(weights: np.ndarray) -> np.ndarray:
    p = np.clip(weights / np.maximum(weights.sum(0, keepdims=True), 1e-12), 1e-12, 1)
    return -(p * np.log(p)).sum(0)


def _arrows(ax, image: np.ndarray, offset: np.ndarray, stride: int, title: str) -> None:
    """Arrows of each fine-grid pixel's offset (in label pixels) over the image, thinned to ~24 per row."""
    ax.imshow(image)
    _, H, W = offset.shape
    step = max(1, W // 24)
    ys, xs = np.mgrid[0:H:step, 0:W:step]
    u, v = offset[0][ys, xs] * stride, offset[1][ys, xs] * stride
    ax.quiver(
        (xs + 0.5) * stride,
        (ys + 0.5) * stride,
        u,
        v,
        color="yellow",
        angles="xy",
        scale_units="xy",
        scale=1,
        width=0.004,
        headwidth=3,
    )
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def _flow(ax, offset: np.ndarray, title: str, sampled: bool = True) -> None:
    """Flow colours; the title gives the median and max length and, for a field that samples a
    map (``sampled``), the share of its sampling points outside the map."""
    rgb, scale = flow_rgb(offset)
    ax.imshow(rgb, interpolation="nearest")
    med = float(np.median(np.hypot(offset[0], offset[1])))
    where = f", {100 * outside_map(offset).mean():.0f}% outside" if sampled else ""
    ax.set_title(f"{title}\nmedian {med:.2f}, max {scale:.2f} px{where}", fontsize=9)
    ax.axis("off")


def offset_figure(
    path: Path, align: str, k: int, title: str, num_classes: int, width: float, stem: Path
) -> list[Path]:
    """Figure of the k-th offset image of one run."""
    return draw_offset_figure(load_offsets(path), align, k, title, num_classes, width, stem)


def draw_offset_figure(
    off: dict, align: str, k: int, title: str, num_classes: int, width: float, stem: Path
) -> list[Path]:
    """Figure of the k-th image of ``off`` (as load_offsets returns it); without a label (images
    of `srcr predict`) the top row shows the image and the prediction only."""
    primary = PRIMARY.get(align, next(iter(next(iter(off["steps"].values())))))
    extra = SECONDARY.get(align)
    steps = [s for s in STEPS if s in off["steps"]]
    ncols = 5
    fig = plt.figure(figsize=(3.4 * ncols, 2.3 * (len(steps) + 1) + 0.6), layout="constrained")
    gs = fig.add_gridspec(len(steps) + 1, ncols)
    top = [fig.add_subplot(gs[0, j]) for j in range(ncols)]
    image = off["image"][k] if off["image"] is not None else None
    lab = off["label"][k] if off["label"] is not None else None
    pred = off["pred"][k] if off["pred"] is not None else None
    panels = [("image", image)] if image is not None or lab is not None else []
    if lab is not None:
        panels.append(("label", _labels_rgb(lab, num_classes)))
    if pred is not None and (lab is not None or image is not None):
        panels.append(("prediction", _labels_rgb(pred, num_classes)))
    if lab is not None and pred is not None:
        panels.append(
            (
                f"errors: red ≤ {width:g} px of a boundary, blue interior",
                error_map(lab, pred, width),
            )
        )
    for ax, (name, img) in zip(top, panels):
        if img is not None:
            ax.imshow(img, interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    for ax in top[len(panels) : ncols - 1]:
        ax.axis("off")
    color_wheel(top[-1])
    backdrop = image if image is not None else np.zeros(lab.shape + (3,), np.uint8)
    for r, step in enumerate(steps, start=1):
        stride = int(step[1:])
        kinds = off["steps"][step]
        axes = [fig.add_subplot(gs[r, j]) for j in range(ncols)]
        _flow(axes[0], kinds[primary][k], f"{step} {primary} offsets (stride-{stride} px)")
        _arrows(
            axes[1], backdrop, kinds[primary][k], stride, f"{step} {primary} (arrows, image px)"
        )
        if extra and extra in kinds:
            _flow(axes[2], kinds[extra][k], f"{step} {extra} offsets", sampled=align != "srm")
            if align == "srm":
                diff = kinds[primary][k] - kinds[extra][k]
                _flow(axes[3], diff, f"{step} refined − initial", sampled=False)
            else:
                _arrows(axes[3], backdrop, kinds[extra][k], stride, f"{step} {extra} (arrows)")
        else:
            axes[2].axis("off")
            axes[3].axis("off")
        n_weights = kinds["weights"][k].shape[0] if "weights" in kinds else 0
        if n_weights > 1:
            ent = _entropy(kinds["weights"][k].astype(np.float64))
            im = axes[4].imshow(
                ent, cmap="magma", vmin=0, vmax=np.log(n_weights), interpolation="nearest"
            )
            axes[4].set_title(f"{step} neighbour-weight entropy\n(max log {n_weights})", fontsize=9)
            fig.colorbar(im, ax=axes[4], fraction=0.046, pad=0.02)
        for ax in axes[2 if not extra else 4 :]:
            if not ax.images:
                ax.axis("off")
        for ax in axes[4:]:
            ax.axis("off")
    fig.suptitle(title, fontsize=11)
    return save(fig, stem)
