"""Row-normalised confusion matrices of a table's baseline and full variant (its last), and their
difference, from the pixel counts of eval/per_image.npz summed over seeds.

Row = label class, column = predicted class, cell = % of the row's non-void pixels; the
difference is full minus baseline in percentage points (the diagonal is per-class recall).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .figures import plt, save


def row_normalised(confusion: np.ndarray) -> np.ndarray:
    """% of each row's pixels; a row with no pixels (a class absent from the labels) is NaN."""
    conf = np.asarray(confusion, np.float64)
    rows = conf.sum(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(rows > 0, 100.0 * conf / rows, np.nan)


def pooled(suite, variant: str) -> np.ndarray:
    """The variant's confusion counts summed over its seeds."""
    return sum(run.confusion for run in suite.runs[variant].values())


def _heatmap(
    ax, mat: np.ndarray, names: list[str], title: str, cmap: str, vmin: float, vmax: float, fmt: str
) -> None:
    import seaborn as sns

    small = len(names) <= 12
    sns.heatmap(
        mat,
        ax=ax,
        cmap=cmap,
        vmin=vmin,
        vmax=vmax,
        center=0 if vmin < 0 else None,
        annot=small,
        fmt=fmt,
        annot_kws={"fontsize": 6},
        xticklabels=names,
        yticklabels=names,
        square=True,
        cbar_kws={"shrink": 0.7},
    )
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("predicted")
    ax.set_ylabel("label")
    ax.tick_params(labelsize=7)


def confusion_figure(suite, spec: dict, stem: Path) -> list[Path]:
    """Baseline, full variant (the table's last) and full minus baseline, row-normalised."""
    base, full = spec["baseline"], spec["variants"][-1]
    names = suite.class_names
    a, b = row_normalised(pooled(suite, base)), row_normalised(pooled(suite, full))
    diff = b - a
    lim = max(float(np.nanmax(np.abs(diff))) if np.isfinite(diff).any() else 0.0, 0.5)
    side = 0.45 * len(names)
    fig, axes = plt.subplots(
        1, 3, figsize=(3 * max(4.0, side + 1.5), side + 2.0), layout="constrained"
    )
    seeds = ", ".join(map(str, sorted(suite.runs[full])))
    _heatmap(axes[0], a, names, f"{base} (baseline): % of label row", "Blues", 0, 100, ".1f")
    _heatmap(axes[1], b, names, f"{full}: % of label row", "Blues", 0, 100, ".1f")
    _heatmap(axes[2], diff, names, f"{full} − {base} (points)", "RdBu_r", -lim, lim, "+.1f")
    fig.suptitle(
        f"{suite.name} / {spec.get('title', '')}: confusion, rows normalised, pixels of "
        f"seeds {seeds} pooled",
        fontsize=11,
    )
    return save(fig, stem)
