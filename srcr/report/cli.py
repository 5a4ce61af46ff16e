"""`srcr report`: tables with paired intervals, figures, offset visualisations and the
boundary-versus-interior error report from finished runs (result files only, never checkpoints).

    srcr report --results results/synthetic [--results results/cityscapes ...] --grid ablations/grid.yaml
                --out reports [--tables components,alignment] [--bootstrap 1000] [--seed 0]
                [--adjust holm]

Outputs (SUITE = basename of each --results, TABLE = each selected table, stable names):

    OUT/index.md                                   with two or more --results: links to every suite report
                                                   and cross-dataset table
    OUT/SUITE/report.md                            every table of the suite + the figures, embedded
    OUT/SUITE/errors.md                            boundary-versus-interior error report, figures embedded
    OUT/SUITE/tables/TABLE.md  .tex  .csv          one per table (LaTeX: booktabs)
    OUT/SUITE/tables/offset_correctness.csv        per offset variant, step and kind (if any offset variant)
    OUT/SUITE/tables/class_error_shares.csv        per variant, class and trimap width
    OUT/SUITE/tables/class_changes.csv             per table, variant, class: Δ band / interior IoU + CI
    OUT/SUITE/figures/NAME.png  .pdf               NAME in mIoU_vs_gflops, trimap_curves, band_vs_interior,
                                                   per_class_iou, per_class_bf, error_share_curves,
                                                   class_error_shares, class_changes_TABLE,
                                                   offset_correctness (if any offset variant),
                                                   curves_TABLE (training loss terms and lr from
                                                   log.jsonl), confusion_TABLE (tables with a baseline)
    OUT/SUITE/figures/offsets/VARIANT_K.png  .pdf  K = 0..--offset-images-1, for each variant of the
                                                   tables whose model.align is srm, fam or alignfa
    OUT/cross/TABLE.md  .tex  .csv                 with two or more --results
    OUT/.../NAME.html                              for every NAME.md above, and every .csv without a .md:
                                                   a self-contained page (figures embedded) that
                                                   Snakemake's --report shows inline (srcr.report.html_pages)

srcr.report.outputs.expected_outputs(grid, suites, tables, offset_images) lists exactly these paths
from the grid alone, for a workflow rule's outputs. Captions for Snakemake's --report:
workflow/report/NAME.rst (one per figure / table kind).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import UserError
from ..module_names import OFFSET_ALIGNS
from ..utils.io import write_text
from .html_pages import html_sources, write_html_twin
from .outputs import REPORT_FIGURES


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--results",
        action="append",
        required=True,
        metavar="DIR",
        help="results/{suite} directory (repeat for a cross-dataset table)",
    )
    parser.add_argument(
        "--grid", default="ablations/grid.yaml", help="variant grid YAML (tables, baselines)"
    )
    parser.add_argument("--out", required=True, help="report directory")
    parser.add_argument(
        "--tables", default=None, help="comma-separated tables of the grid (default: all)"
    )
    parser.add_argument(
        "--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resamples")
    parser.add_argument(
        "--band-width", type=float, default=4, help="trimap band width of the tables (px)"
    )
    parser.add_argument(
        "--offset-images", type=int, default=2, help="offset figures per offset variant"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="processes for the bootstrap resamples (default 1)",
    )
    parser.add_argument(
        "--adjust",
        choices=("none", "holm"),
        default="none",
        help="multiplicity: none (default: each interval on its own, as the "
        "notes say) or holm (Holm's correction within each table)",
    )
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="report tables whose variants lack some seeds (else refused), with a "
        "note under each such table naming the missing runs",
    )


def run(args: argparse.Namespace) -> int:
    tables = [t.strip() for t in args.tables.split(",") if t.strip()] if args.tables else None
    make_report(
        [Path(r) for r in args.results],
        Path(args.grid),
        Path(args.out),
        tables,
        args.bootstrap,
        args.seed,
        args.band_width,
        args.offset_images,
        not args.no_progress,
        workers=args.threads or 1,
        allow_missing=args.allow_missing,
        adjust=None if args.adjust == "none" else args.adjust,
    )
    return 0


def offset_variants(suite, variants: list[str]) -> list[str]:
    return [v for v in variants if suite.runs[v][suite.seeds(v)[0]].align in OFFSET_ALIGNS]


def make_report(
    results: list[Path],
    grid_path: Path,
    out: Path,
    tables: list[str] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    band_width: float = 4,
    offset_images: int = 2,
    progress: bool = True,
    figures: bool = True,
    workers: int = 1,
    allow_missing: bool = False,
    adjust: str | None = None,
) -> list[Path]:
    """Write the whole report; returns the paths written. ``figures=False`` writes the tables only
    (OUT/SUITE/tables/TABLE.* and OUT/cross/*), for quick checks. Runs whose per-image counts do
    not reproduce their metrics.json, and tables whose variants lack seeds, are refused
    (srcr.report.consistency; ``allow_missing``: noted under the table instead). ``adjust="holm"``
    marks significance after Holm's correction within each table."""
    from .consistency import check_counts, check_seeds
    from .load import load_grid, load_suite
    from .offsets import load_offsets
    from .stats import Statistics, make_layout

    grid = load_grid(grid_path, tables)
    names = [Path(r).name for r in results]
    if len(set(names)) != len(names):
        raise UserError(f"--results directories must have distinct names, got {names}")
    # everything is read and checked before any bootstrap runs
    suites = [load_suite(r, grid) for r in results]
    missing = {}
    for suite in suites:
        check_counts(suite)
        missing[suite.name] = check_seeds(suite, grid, allow_missing)
    for suite in suites:
        for v in offset_variants(suite, _variants(grid)):
            run = suite.runs[v][suite.seeds(v)[0]]
            off = load_offsets(run.offsets_path)
            n = len(off["ids"])
            if off["label"] is None:
                raise UserError(
                    f"{run.offsets_path}: no 'label' array (written by an older srcr evaluate); "
                    "re-run srcr evaluate for offset correctness and the offset figures"
                )
            if n < offset_images:
                raise UserError(
                    f"{run.offsets_path}: {n} offset image(s), --offset-images asks for {offset_images}"
                )
    written: list[Path] = []
    per_suite = {}
    for suite in suites:
        stats = Statistics(suite, make_layout(suite, band_width), n_boot, seed, progress)
        stats.prefetch(workers)
        per_suite[suite.name] = _suite_report(
            stats,
            grid,
            out / suite.name,
            offset_images,
            written,
            figures,
            workers,
            missing[suite.name],
            adjust,
        )
    if len(suites) > 1:
        _cross(grid, per_suite, out / "cross", written)
    index = ["# srcr report", ""]
    index += [
        f"- [{s.name}]({s.name}/report.md) — error report: [{s.name}/errors.md]({s.name}/errors.md)"
        for s in suites
    ]
    if len(suites) > 1:
        index += [
            f"- cross-dataset: [{t}](cross/{t}.md)"
            for t, spec in grid.tables.items()
            if not spec.get("twins")
        ]
    if figures and len(suites) > 1:  # one suite's report.md is its own front page
        _write(out / "index.md", "\n".join(index) + "\n", written)
    # last: the pages embed the figures written above
    written += [write_html_twin(p) for p in html_sources(list(written))]
    print(f"report: {len(written)} files in {out}", file=sys.stderr)
    return written


def _variants(grid) -> list[str]:
    """The variants of the paper tables (control tables' variants stay out of the figures)."""
    return list(
        dict.fromkeys(
            v for spec in grid.tables.values() if not spec.get("twins") for v in spec["variants"]
        )
    )


def _write(path: Path, text: str, written: list[Path]) -> None:
    write_text(path, text)
    written.append(path)


def _offset_figure_job(args: tuple) -> list[Path]:
    from .offset_vis import offset_figure

    return offset_figure(*args)


def _suite_report(
    stats,
    grid,
    out: Path,
    offset_images: int,
    written: list[Path],
    figures: bool = True,
    workers: int = 1,
    missing: dict | None = None,
    adjust: str | None = None,
) -> dict:
    import pandas as pd

    from ..utils.parallel import fork_map
    from . import figures as fg
    from .controls import build_control_table
    from .offsets import run_correctness, run_geometry
    from .tables import build_table, to_csv, to_latex, to_markdown

    suite = stats.suite
    variants = _variants(grid)
    num_classes = stats.layout.num_classes
    fg.style()
    # offset correctness (first seed of each offset variant)
    correctness, geometry = {}, {}
    for v in offset_variants(suite, variants):
        run = suite.runs[v][suite.seeds(v)[0]]
        correctness[v] = run_correctness(run.offsets_path, run.align, num_classes)
        geometry[v] = run_geometry(run.offsets_path)
    tables = {}
    md = [
        f"# {suite.name}: ablation report",
        "",
        f"Results: `{suite.root}`; grid: `{grid.path}`. How to read these tables: docs/report.md.",
        "",
    ]
    for name, spec in grid.tables.items():
        if spec.get("twins"):
            t = build_control_table(stats, name, spec, adjust)
        else:
            t = build_table(stats, name, spec, correctness, adjust)
        t.notes += (missing or {}).get(name, [])
        tables[name] = t
        _write(out / "tables" / f"{name}.md", to_markdown(t, "#"), written)
        _write(out / "tables" / f"{name}.tex", to_latex(t), written)
        _write(out / "tables" / f"{name}.csv", to_csv(t.csv), written)
        md += [to_markdown(t, "##"), ""]
    if not figures:
        return tables
    figs = out / "figures"
    written += fg.miou_vs_gflops(stats, variants, figs / "mIoU_vs_gflops")
    written += fg.trimap_curves(stats, variants, figs / "trimap_curves")
    written += fg.band_vs_interior(stats, variants, figs / "band_vs_interior")
    written += fg.class_heatmap(stats, variants, "IoU", figs / "per_class_iou", "IoU")
    written += fg.class_heatmap(stats, variants, "BF@3", figs / "per_class_bf", "BF@3")
    md += ["## Figures", ""] + [f"![{n}](figures/{n}.png)" for n in REPORT_FIGURES] + [""]
    md += _training_figures(suite, grid, figs, written)
    if correctness:
        rows = [
            {
                "variant": v,
                "align": suite.runs[v][suite.seeds(v)[0]].align,
                "step": s,
                "kind": k,
                "learned": val[0],
                "zero": val[1],
                "pixels": val[2],
                **geometry[v][(s, k)],
            }
            for v, oc in correctness.items()
            for (s, k), val in sorted(oc.items())
        ]
        _write(out / "tables" / "offset_correctness.csv", to_csv(pd.DataFrame(rows)), written)
        written += fg.offset_correctness_figure(
            suite.name, correctness, {}, figs / "offset_correctness", geometry
        )
        md += [
            "## Offset correctness",
            "",
            "![offset correctness](figures/offset_correctness.png)",
            "",
        ]
        md += _offset_md(rows) + [""]
        md += ["## Offset visualisations", ""]
        jobs = []
        for v in correctness:
            run = suite.runs[v][suite.seeds(v)[0]]
            for k in range(offset_images):
                jobs.append(
                    (
                        run.offsets_path,
                        run.align,
                        k,
                        f"{suite.name} / {v} / seed {run.seed}: offsets on validation image {k}",
                        num_classes,
                        stats.layout.band_width,
                        figs / "offsets" / f"{v}_{k}",
                    )
                )
                md.append(f"![{v} image {k}](figures/offsets/{v}_{k}.png)")
        # two thirds of a report's time, and independent of each other
        for paths in fork_map(_offset_figure_job, jobs, workers):
            written += paths
        md.append("")
    _write(out / "report.md", "\n".join(md), written)
    _errors_md(stats, grid, out, variants, written)
    return tables


def _offset_md(rows: list[dict]) -> list[str]:
    """The offset table of report.md: correctness, length and the share outside the map per step."""
    md = [
        (
            "Per step and offset kind (first seed, every pixel of the offset images): correctness "
            "within 1 px of a boundary, learned (zero offsets); median offset length in fine-grid px "
            "(90th percentile) and as % of the map's short side; % of sampling points outside the map."
        ),
        "",
        "| variant | kind | step | correct % (zero) | median px (p90) | median, % of side | outside % |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    order = {s: i for i, s in enumerate(("s16", "s8", "s4"))}
    for r in sorted(rows, key=lambda r: (r["variant"], r["kind"], order.get(r["step"], 9))):
        md.append(
            f"| {r['variant']} | {r['kind']} | {r['step']} | {r['learned']:.1f} ({r['zero']:.1f}) | "
            f"{r['median_px']:.2f} ({r['p90_px']:.2f}) | {r['median_rel']:.1f} | "
            + (f"{r['outside']:.1f} |" if r["outside"] == r["outside"] else "– (not sampled) |")
        )
    return md


def _training_figures(suite, grid, figs: Path, written: list[Path]) -> list[str]:
    """Training curves of every table and confusion matrices of its baseline and full variant;
    returns the report.md lines that embed them."""
    from .confusion import confusion_figure
    from .outputs import confusion_tables
    from .training_curves import curves_figure

    md = [
        "## Training curves",
        "",
        (
            "Training loss terms and learning rate against iteration (log.jsonl): mean over seeds, "
            "band = the seeds' range."
        ),
        "",
    ]
    for name, spec in grid.tables.items():
        written += curves_figure(suite, spec, figs / f"curves_{name}")
        md.append(f"![training curves {name}](figures/curves_{name}.png)")
    md += [
        "",
        "## Confusion matrices",
        "",
        (
            "Each table's baseline and full variant (its last), rows normalised to 100% of a label "
            "class's pixels (seeds pooled), and their difference in points."
        ),
        "",
    ]
    for name in confusion_tables(grid):
        written += confusion_figure(suite, grid.tables[name], figs / f"confusion_{name}")
        md.append(f"![confusion {name}](figures/confusion_{name}.png)")
    return md + [""]


def _errors_md(stats, grid, out: Path, variants: list[str], written: list[Path]) -> None:
    import pandas as pd

    from . import errors_report as er
    from .tables import to_csv

    figs = out / "figures"
    bw = f"{stats.layout.band_width:g}"
    written += er.share_curves(stats, variants, figs / "error_share_curves")
    written += er.share_heatmap(stats, variants, figs / "class_error_shares")
    _write(
        out / "tables" / "class_error_shares.csv",
        to_csv(er.error_share_frame(stats, variants)),
        written,
    )
    md = [
        f"# {stats.suite.name}: boundary versus interior errors",
        "",
        f"Errors are wrong non-void pixels. Band = within w px of a label boundary (trimap), interior = "
        f"beyond. Class changes compare per-class IoU inside the {bw} px band and in the interior "
        "to each table's baseline, with paired 95% intervals (method as in the tables; n.s. = the interval "
        "contains zero). Per-class intervals are many comparisons: read them as a map, not as findings.",
        "",
        "## How much of the error is boundary error",
        "",
        "![error share curves](figures/error_share_curves.png)",
        "",
        f"## Per class: share of errors within {bw} px",
        "",
        "![class error shares](figures/class_error_shares.png)",
        "",
    ]
    frames = []
    for name, spec in grid.tables.items():
        if spec.get("twins"):
            continue
        df = er.class_changes(stats, spec)
        if df.empty:
            continue
        df.insert(0, "table", name)
        frames.append(df)
        written += er.changes_figure(
            df,
            f"{stats.suite.name} / {spec.get('title', name)}: per-class Δ IoU in "
            f"the {bw} px band and the interior",
            figs / f"class_changes_{name}",
        )
        md += [
            f"## {spec.get('title', name)}",
            "",
            "Largest per-class changes (Δ IoU, band and interior):",
            "",
        ]
        md += er.top_changes_md(df) + [
            "",
            f"![class changes {name}](figures/class_changes_{name}.png)",
            "",
        ]
    if frames:
        _write(out / "tables" / "class_changes.csv", to_csv(pd.concat(frames)), written)
    _write(out / "errors.md", "\n".join(md), written)


def _cross(grid, per_suite: dict, out: Path, written: list[Path]) -> None:
    from .tables import cross_table, to_csv, to_latex, to_markdown

    for name, spec in grid.tables.items():
        if spec.get("twins"):  # a control is read per dataset
            continue
        t = cross_table(name, spec.get("title", name), [tabs[name] for tabs in per_suite.values()])
        _write(out / f"{name}.md", to_markdown(t, "#"), written)
        _write(out / f"{name}.tex", to_latex(t), written)
        _write(out / f"{name}.csv", to_csv(t.csv), written)
