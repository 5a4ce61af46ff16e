"""`srcr tables`: a plain Markdown table per ablation group from runs.csv: per variant the mean and
seed standard deviation of mIoU and mBF@3, GFLOPs and parameters, and the mean paired (same seed)
difference in mIoU to the group's baseline with its seed standard deviation. No intervals: the
reports (`srcr report`) compute those."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import UserError


def _mean_sd(values) -> str:
    values = list(values)
    if len(values) == 1:
        return f"{values[0]:.2f}"
    import statistics

    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def table_frame(runs, table):
    """One row per variant of ``table`` (a srcr.suite.grid.Table) from the runs DataFrame."""
    import pandas as pd

    missing = [v for v in table.variants if v not in set(runs["variant"])]
    if missing:
        raise UserError(f"table {table.name}: no runs of {missing} in runs.csv")
    base = runs[runs["variant"] == table.baseline].set_index("seed")["mIoU"]
    rows = []
    for v in table.variants:
        r = runs[runs["variant"] == v].sort_values("seed")
        paired = (r.set_index("seed")["mIoU"] - base).dropna()
        rows.append({
            "variant": v + (" (baseline)" if v == table.baseline else ""),
            "mIoU": _mean_sd(r["mIoU"]),
            "mBF@3": _mean_sd(r["mBF@3"]),
            "Δ mIoU": "—" if v == table.baseline else _mean_sd(paired),
            "GFLOPs": f"{r['gflops'].iloc[0]:.3g}",
            "params (M)": f"{r['params_m'].iloc[0]:.3f}",
            "seeds": ",".join(str(s) for s in r["seed"]),
        })
    return pd.DataFrame(rows)


def render(runs, table) -> str:
    df = table_frame(runs, table)
    seeds = sorted(set(runs["seed"]))
    first = runs.iloc[0]
    notes = (f"\nMean ± standard deviation over seeds {', '.join(map(str, seeds))}; Δ is the mean paired "
             f"(same-seed) difference to {table.baseline}. No confidence intervals here: see the reports.\n"
             f"Dataset {first['dataset']}, {first['num_images']} evaluation images, GFLOPs at "
             f"{first['flops_size']}; srcr {first['srcr_version']} ({first['git']}); {first['machine']}.\n")
    return f"## {table.title}\n\n{df.to_markdown(index=False)}\n{notes}"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", required=True, help="runs.csv written by srcr aggregate")
    parser.add_argument("--grid", required=True, help="the variant grid (ablations/grid.yaml)")
    parser.add_argument("--tables", required=True, help="comma-separated table names of the grid")
    parser.add_argument("--out", required=True, help="folder for TABLE.md files")


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from ..utils.io import write_text
    from .grid import load_grid

    grid = load_grid(args.grid)
    names = [t.strip() for t in args.tables.split(",") if t.strip()]
    unknown = [t for t in names if t not in grid.tables]
    if unknown or not names:
        raise UserError(f"--tables: unknown or empty {unknown or names} (the grid has: {', '.join(grid.tables)})")
    if not Path(args.runs).is_file():
        raise UserError(f"{args.runs}: not found (written by srcr aggregate)")
    runs = pd.read_csv(args.runs)
    for name in names:
        path = Path(args.out) / f"{name}.md"
        write_text(path, render(runs, grid.tables[name]))
        print(f"wrote {path}", file=sys.stderr)
    return 0
