"""The files a `srcr report` run writes, from the grid alone (no results needed), so a workflow
rule can declare them as outputs:

    from srcr.report.outputs import expected_outputs
    expected_outputs("ablations/grid.yaml", ["synthetic"], tables=None, offset_images=2)

A variant gets offset figures when its grid `set` makes model.align a module that predicts offsets
(srcr.module_names.OFFSET_ALIGNS; the grid sets the alignment of every variant, so this matches
what the runs record).
"""

from __future__ import annotations

from pathlib import Path

from ..module_names import OFFSET_ALIGNS
from .html_pages import html_sources, html_twin
from .load import load_grid

FIGURE_EXTS = ("png", "pdf")
TABLE_EXTS = ("md", "tex", "csv")
# the figures of SUITE/report.md and of SUITE/errors.md, in the order the pages show them
REPORT_FIGURES = (
    "mIoU_vs_gflops",
    "trimap_curves",
    "band_vs_interior",
    "per_class_iou",
    "per_class_bf",
)
ERROR_FIGURES = ("error_share_curves", "class_error_shares")
SUITE_FIGURES = REPORT_FIGURES + ERROR_FIGURES


def confusion_tables(grid) -> list[str]:
    """Tables with a confusion-matrix figure: a baseline and another (full) variant, no twins."""
    return [
        t
        for t, spec in grid.tables.items()
        if spec.get("baseline") and len(spec["variants"]) > 1 and not spec.get("twins")
    ]


def training_figures(grid) -> list[str]:
    """Per-table figure names: training curves of every table, confusion matrices of some."""
    return [f"curves_{t}" for t in grid.tables] + [f"confusion_{t}" for t in confusion_tables(grid)]


def offset_variants_of_grid(grid, variants: list[str]) -> list[str]:
    return [
        v
        for v in variants
        if (grid.variants[v].get("set") or {}).get("model.align") in OFFSET_ALIGNS
    ]


def expected_outputs(
    grid_path: str | Path,
    suites: list[str],
    tables: list[str] | None = None,
    offset_images: int = 2,
) -> list[str]:
    """Paths relative to --out, in a stable order."""
    grid = load_grid(grid_path, tables)
    variants = list(
        dict.fromkeys(
            v for spec in grid.tables.values() if not spec.get("twins") for v in spec["variants"]
        )
    )
    offs = offset_variants_of_grid(grid, variants)
    out = ["index.md"] if len(suites) > 1 else []
    for s in suites:
        out += [f"{s}/report.md", f"{s}/errors.md"]
        out += [f"{s}/tables/{t}.{e}" for t in grid.tables for e in TABLE_EXTS]
        out += [f"{s}/tables/class_error_shares.csv"]
        changes = [
            t
            for t, spec in grid.tables.items()
            if len(spec["variants"]) > 1 and not spec.get("twins")
        ]
        if changes:
            out.append(f"{s}/tables/class_changes.csv")
        figs = (
            list(SUITE_FIGURES) + [f"class_changes_{t}" for t in changes] + training_figures(grid)
        )
        if offs:
            out.append(f"{s}/tables/offset_correctness.csv")
            figs.append("offset_correctness")
            figs += [f"offsets/{v}_{k}" for v in offs for k in range(offset_images)]
        out += [f"{s}/figures/{f}.{e}" for f in figs for e in FIGURE_EXTS]
    if len(suites) > 1:
        out += [
            f"cross/{t}.{e}"
            for t, spec in grid.tables.items()
            if not spec.get("twins")
            for e in TABLE_EXTS
        ]
    return out + [html_twin(p) for p in html_sources(out)]
