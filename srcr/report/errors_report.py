"""Boundary-versus-interior error report: per variant and class the share of errors within w px of
a label boundary for each trimap width; per table the classes whose band and interior IoU each
module changes most relative to its baseline, with paired intervals; Markdown with the figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .figures import percent_heatmap, plt, save, variant_colors, variant_markers
from .stats import Statistics
from .tables import _num


def class_error_shares(stats: Statistics, variant: str) -> np.ndarray:
    """(widths, classes) share (%) of the wrong pixels of each class (label = c, prediction != c)
    that lie within each band width, from the summed counts, averaged over seeds."""
    out = []
    for s in stats.suite.seeds(variant):
        c = stats.suite.runs[variant][s].counts
        wrong = (c["conf_gt"] - c["conf_tp"]).sum(0).astype(np.float64)  # (C,)
        band_wrong = (c["band_gt"] - c["band_tp"]).sum(0).astype(np.float64)  # (K, C)
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append(
                np.where(wrong > 0, 100 * band_wrong / np.where(wrong > 0, wrong, 1), np.nan)
            )
    with np.errstate(invalid="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(out, axis=0)


def error_share_frame(stats: Statistics, variants: list[str]) -> pd.DataFrame:
    widths = stats.suite.eval_config["trimap_widths"]
    rows = []
    for v in variants:
        sh = class_error_shares(stats, v)
        for k, w in enumerate(widths):
            for c, name in enumerate(stats.suite.class_names):
                rows.append({"variant": v, "class": name, "width": w, "error_share": sh[k, c]})
    return pd.DataFrame(rows)


def share_heatmap(stats: Statistics, variants: list[str], stem: Path) -> list[Path]:
    widths = [float(w) for w in stats.suite.eval_config["trimap_widths"]]
    k = widths.index(stats.layout.band_width)
    data = np.stack([class_error_shares(stats, v)[k] for v in variants])
    bw = stats.layout.band_width
    label = f"share of the class's errors within {bw:g} px (%)"
    title = f"{stats.suite.name}: where each class's errors lie (band ≤ {bw:g} px)"
    return percent_heatmap(data, stats.suite.class_names, variants, "rocket_r", label, title, stem)


def share_curves(stats: Statistics, variants: list[str], stem: Path) -> list[Path]:
    """Share of all wrong pixels within the band against its width, one line per variant."""
    widths = [float(w) for w in stats.suite.eval_config["trimap_widths"]]
    colors, markers = variant_colors(variants), variant_markers(variants)
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for v in variants:
        per_seed = []
        for s in stats.suite.seeds(v):
            c = stats.suite.runs[v][s].counts
            wrong = float((c["conf_gt"] - c["conf_tp"]).sum())
            per_seed.append(100 * (c["band_gt"] - c["band_tp"]).sum(axis=(0, 2)) / max(wrong, 1))
        ax.plot(
            widths,
            np.mean(per_seed, axis=0),
            "-",
            marker=markers[v],
            color=colors[v],
            label=v,
            ms=5,
        )
    ax.set_xscale("log", base=2)
    ax.set_xticks(widths, [f"{w:g}" for w in widths])
    ax.set_ylim(0, 100)
    ax.set_xlabel("band width w (px from a label boundary)")
    ax.set_ylabel("share of all wrong pixels within w px (%)")
    ax.set_title(f"{stats.suite.name}: how much of the error is boundary error")
    ax.legend(fontsize=8, ncol=2 if len(variants) > 7 else 1, loc="lower right")
    return save(fig, stem)


def class_changes(stats: Statistics, spec: dict) -> pd.DataFrame:
    """Per non-baseline variant and class: Δ band IoU and Δ interior IoU with intervals."""
    rows = []
    for v in spec["variants"]:
        if v == spec["baseline"]:
            continue
        d = stats.diff(v, spec["baseline"])
        for region in ("band", "interior"):
            sl = stats.layout.block(f"{region}_IoU")
            for c, name in enumerate(stats.suite.class_names):
                i = sl.start + c
                rows.append(
                    {
                        "variant": v,
                        "baseline": spec["baseline"],
                        "region": region,
                        "class": name,
                        "d_IoU": d.point[i],
                        "lo": d.lo[i],
                        "hi": d.hi[i],
                        "significant": bool(d.significant[i]),
                        "method": d.method,
                        "n_seeds": d.n_seeds,
                    }
                )
    return pd.DataFrame(rows)


def changes_figure(df: pd.DataFrame, title: str, stem: Path) -> list[Path]:
    """Forest plot: per variant a panel, per class the band (orange) and interior (green) Δ IoU."""
    variants = list(dict.fromkeys(df["variant"]))
    classes = list(dict.fromkeys(df["class"]))
    fig, axes = plt.subplots(
        1,
        len(variants),
        figsize=(3.6 * len(variants) + 1.2, 0.32 * len(classes) + 1.8),
        sharey=True,
        squeeze=False,
    )
    y = np.arange(len(classes))
    for ax, v in zip(axes[0], variants):
        for off, region, color in ((-0.17, "band", "#d95f02"), (0.17, "interior", "#1b9e77")):
            sub = (
                df[(df["variant"] == v) & (df["region"] == region)].set_index("class").loc[classes]
            )
            err = np.vstack([sub["d_IoU"] - sub["lo"], sub["hi"] - sub["d_IoU"]])
            ax.errorbar(
                sub["d_IoU"],
                y + off,
                xerr=np.where(np.isfinite(err), err, 0),
                fmt="o",
                ms=3.5,
                color=color,
                capsize=2,
                label=region,
            )
        ax.axvline(0, color="black", lw=0.8)
        ax.set_title(f"{v}\nvs {df['baseline'].iloc[0]}", fontsize=9)
        ax.set_xlabel("Δ IoU (points, 95% CI)")
    axes[0][0].set_yticks(y, classes)
    axes[0][0].invert_yaxis()
    axes[0][0].legend(fontsize=8, loc="best")
    fig.suptitle(title, fontsize=10, y=1.04)  # above the two-line panel titles
    return save(fig, stem)


def top_changes_md(df: pd.DataFrame, k: int = 3) -> list[str]:
    lines = []
    for v in dict.fromkeys(df["variant"]):
        parts = []
        for region in ("band", "interior"):
            sub = df[(df["variant"] == v) & (df["region"] == region)].dropna(subset=["d_IoU"])
            sub = sub.reindex(sub["d_IoU"].abs().sort_values(ascending=False).index).head(k)
            cells = [
                f"{r['class']} {_num(r['d_IoU'], sign=True)} [{_num(r['lo'], sign=True)}, "
                f"{_num(r['hi'], sign=True)}]{'' if r['significant'] else ' n.s.'}"
                for _, r in sub.iterrows()
            ]
            parts.append(f"{region}: " + "; ".join(cells))
        lines.append(f"- **{v}** vs {df['baseline'].iloc[0]} — " + " — ".join(parts))
    return lines
