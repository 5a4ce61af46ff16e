"""Suite figures (PNG and PDF, matplotlib Agg + seaborn): mIoU against GFLOPs, trimap curves, band
versus interior bars, per-class IoU / BF heatmaps, offset correctness."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..utils.io import atomic_path  # noqa: E402
from .stats import Statistics  # noqa: E402

DPI = 150


def style() -> None:
    import seaborn as sns

    sns.set_theme(context="paper", style="whitegrid", font_scale=1.1)
    # a fixed title height: matplotlib otherwise measures every axes of a row at each draw to lift
    # titles over top tick labels, which no figure here has (the offset figures draw 3x faster, to
    # the same pixels)
    plt.rcParams.update(
        {
            "figure.dpi": DPI,
            "savefig.bbox": "tight",
            "savefig.pad_inches": 0.05,
            "pdf.fonttype": 42,
            "axes.titley": 1.0,
        }
    )


def save(fig, path_stem: Path) -> list[Path]:
    """Write path_stem.png and path_stem.pdf atomically; returns both paths."""
    out = []
    for ext in ("png", "pdf"):
        path = path_stem.with_suffix(f".{ext}")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=ext, dpi=DPI)
        out.append(path)
    plt.close(fig)
    return out


def variant_colors(variants: list[str]) -> dict[str, tuple]:
    """Distinguishable colours: tab10 up to 10 variants, tab20 beyond."""
    cmap = plt.get_cmap("tab10" if len(variants) <= 10 else "tab20")
    return {v: cmap(i % cmap.N) for i, v in enumerate(variants)}


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "*", "p", "8")


def variant_markers(variants: list[str]) -> dict[str, str]:
    """A marker per variant as well as a colour: tab20's light/dark pairs alone are hard to tell apart."""
    return {v: MARKERS[i % len(MARKERS)] for i, v in enumerate(variants)}


def _seed_stats(stats: Statistics, v: str, name: str) -> tuple[float, float]:
    mean, sd = stats.mean_sd(v)
    i = stats.layout.index(name)
    return float(mean[i]), (float(sd[i]) if np.isfinite(sd[i]) else 0.0)


def miou_vs_gflops(stats: Statistics, variants: list[str], stem: Path) -> list[Path]:
    colors, markers = variant_colors(variants), variant_markers(variants)
    fig, ax = plt.subplots(figsize=(8.5, 5.5))
    for v in variants:
        m, sd = _seed_stats(stats, v, "mIoU")
        g = float(stats.suite.flops[v]["gflops"])
        ax.errorbar(
            g,
            m,
            yerr=sd,
            fmt=markers[v],
            color=colors[v],
            capsize=3,
            ms=7,
            label=v,
            markeredgecolor="black",
            markeredgewidth=0.5,
        )
        ax.annotate(v, (g, m), xytext=(5, 3), textcoords="offset points", fontsize=7)
    ax.set_xlabel("GFLOPs (fvcore, 1 multiply-add = 1 FLOP)")
    ax.set_ylabel("mIoU (%)")
    n = sorted({len(stats.suite.seeds(v)) for v in variants})
    ax.set_title(
        f"{stats.suite.name}: mIoU against GFLOPs (error bars: ±1 sd over {'/'.join(map(str, n))} seed(s))"
    )
    ax.legend(fontsize=8, ncol=2 if len(variants) > 7 else 1, loc="best", frameon=True)
    return save(fig, stem)


def trimap_curves(stats: Statistics, variants: list[str], stem: Path) -> list[Path]:
    """Band mIoU against band width (DeepLab's trimap plot), mean over seeds."""
    colors, markers = variant_colors(variants), variant_markers(variants)
    widths = [float(w) for w in stats.suite.eval_config["trimap_widths"]]
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for v in variants:
        curves = []
        for s in stats.suite.seeds(v):
            from ..metrics.summary import summarize

            r = stats.suite.runs[v][s]
            tri = summarize(r.counts, r.eval_config)["trimap"]
            curves.append([tri[k]["band_mIoU"] for k in tri])
        ax.plot(
            widths,
            np.nanmean(curves, axis=0),
            "-",
            marker=markers[v],
            color=colors[v],
            label=v,
            ms=5,
        )
    ax.set_xscale("log", base=2)
    ax.set_xticks(widths, [f"{w:g}" for w in widths])
    ax.set_xlabel("trimap band width (px from a label boundary)")
    ax.set_ylabel("mIoU within the band (%)")
    ax.set_title(f"{stats.suite.name}: trimap curves (mean over seeds)")
    ax.legend(fontsize=8, ncol=2 if len(variants) > 7 else 1, loc="lower right")
    return save(fig, stem)


def band_vs_interior(stats: Statistics, variants: list[str], stem: Path) -> list[Path]:
    bw = f"{stats.layout.band_width:g}"
    x = np.arange(len(variants))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(variants) + 2), 4.5))
    for k, (name, label, color) in enumerate(
        (
            (f"band_mIoU@{bw}", f"band (≤ {bw} px)", "#d95f02"),
            (f"interior_mIoU@{bw}", f"interior (> {bw} px)", "#1b9e77"),
        )
    ):
        vals = [_seed_stats(stats, v, name) for v in variants]
        # points, not bars from zero: the variants differ by tenths of a point, which bars hide
        ax.errorbar(
            x + (k - 0.5) * 0.3,
            [m for m, _ in vals],
            yerr=[s for _, s in vals],
            fmt="o",
            capsize=3,
            label=label,
            color=color,
        )
    ax.set_xticks(x, variants, rotation=35, ha="right")
    ax.set_ylabel("mIoU (%)")
    ax.set_title(f"{stats.suite.name}: boundary band versus interior (±1 sd over seeds)")
    ax.legend(loc="best", fontsize=9, framealpha=0.95)
    return save(fig, stem)


def percent_heatmap(
    data, names: list[str], variants: list[str], cmap: str, label: str, title: str, stem: Path
) -> list[Path]:
    """Variants x classes of percentages (0-100), annotated where the classes fit; the per-class
    heatmaps of the report and the error report."""
    import seaborn as sns

    fig, ax = plt.subplots(
        figsize=(max(6.0, 0.62 * len(names) + 2.5), max(3.0, 0.42 * len(variants) + 1.5))
    )
    sns.heatmap(
        data,
        annot=len(names) <= 20,
        fmt=".0f",
        cmap=cmap,
        vmin=0,
        vmax=100,
        ax=ax,
        xticklabels=names,
        yticklabels=variants,
        cbar_kws={"label": label},
        annot_kws={"fontsize": 7},
    )
    ax.set_xticklabels(ax.get_xticklabels(), rotation=40, ha="right")
    ax.set_title(title)
    return save(fig, stem)


def class_heatmap(
    stats: Statistics, variants: list[str], block: str, stem: Path, what: str
) -> list[Path]:
    sl = stats.layout.block(block)
    data = np.stack([stats.mean_sd(v)[0][sl] for v in variants])
    title = f"{stats.suite.name}: per-class {what} (mean over seeds)"
    return percent_heatmap(
        data, stats.suite.class_names, variants, "viridis", f"{what} (%)", title, stem
    )


def offset_correctness_figure(
    suite_name: str, correctness: dict, aligns: dict, stem: Path, geometry: dict | None = None
) -> list[Path]:
    """Grouped bars per (variant, offset kind): learned vs zero offsets at each step; with
    ``geometry`` (variant -> srcr.report.offsets.run_geometry) a second column: the share of
    sampling points outside the map, each bar labelled with the median length (% of the map)."""
    from .offsets import STEPS

    groups = [(v, kind) for v, oc in correctness.items() for kind in sorted({k for _, k in oc})]
    # one row per step, as wide as the bars need: the default grid has ~25 (variant, kind) groups
    width = max(7.0, 0.42 * len(groups) + 1.5)
    ncols = 2 if geometry else 1
    fig, axes = plt.subplots(
        len(STEPS), ncols, figsize=(width * ncols, 3.3 * len(STEPS)), sharex="col", squeeze=False
    )
    colors = variant_colors(list(correctness))  # one colour per variant; the kind is in the label
    if geometry:
        _outside_bars(axes[:, 1], groups, geometry, colors)
    for ax, step in zip(axes[:, 0], STEPS):
        labels, learned, zero = [], [], []
        for v, kind in groups:
            val = correctness[v].get((step, kind))
            if val is None:
                continue
            labels.append(f"{v} · {kind}")
            learned.append(val[0])
            zero.append(val[1])
        x = np.arange(len(labels))
        ax.bar(
            x,
            learned,
            0.6,
            color=[colors[lab.split(" · ")[0]] for lab in labels],
            label="learned offsets",
            edgecolor="black",
            linewidth=0.4,
        )
        ax.scatter(
            x, zero, marker="_", s=400, color="black", zorder=3, label="zero offsets (bilinear)"
        )
        ax.set_xticks(x, labels, rotation=45, ha="right", rotation_mode="anchor", fontsize=8)
        ax.set_title(f"step {step}", fontsize=10)
        ax.set_ylim(0, 118)  # headroom for the legend above the bars
        ax.set_yticks(range(0, 101, 20))
        ax.set_ylabel("own-class samples (%)")
    axes[0, 0].legend(loc="upper left", fontsize=8, ncol=2)
    what = "offset correctness (pixels within 1 px of a boundary, per alignment step)"
    if geometry:
        what += "; sampling points outside the map"
    fig.suptitle(f"{suite_name}: {what}; first seed")
    return save(fig, stem)


def _outside_bars(axes, groups: list[tuple[str, str]], geometry: dict, colors: dict) -> None:
    """Per step: % of sampling points outside the map, labelled with the median offset length as
    % of the map's short side."""
    from .offsets import STEPS

    for ax, step in zip(axes, STEPS):
        # the same slots as the correctness column; fields never sampled with (SRM initial) stay empty
        keep = [
            (i, v, k)
            for i, (v, k) in enumerate(groups)
            if np.isfinite(geometry.get(v, {}).get((step, k), {}).get("outside", np.nan))
        ]
        vals = [geometry[v][(step, k)] for _, v, k in keep]
        bars = ax.bar(
            [i for i, _, _ in keep],
            [g["outside"] for g in vals],
            0.6,
            color=[colors[v] for _, v, _ in keep],
            edgecolor="black",
            linewidth=0.4,
        )
        ax.bar_label(bars, [f"{g['median_rel']:.0f}%" for g in vals], fontsize=6, padding=1)
        ax.set_xticks(
            np.arange(len(groups)),
            [f"{v} · {k}" for v, k in groups],
            rotation=45,
            ha="right",
            rotation_mode="anchor",
            fontsize=8,
        )
        ax.set_ylim(0, 110)
        ax.set_yticks(range(0, 101, 20))
        ax.set_ylabel("outside the map (%)")
        ax.set_title(
            f"step {step}: sampling points outside the map "
            "(labels: median length, % of the map's short side)",
            fontsize=9,
        )
