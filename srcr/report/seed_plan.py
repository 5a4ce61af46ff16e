"""`srcr plan`: how many seeds each table needs, from a finished pilot suite of two or more seeds.

    srcr plan --pilot results/NAME [--effect 0.5] [--power 0.8] [--alpha 0.05] [--suite CONFIG]
              [--grid ablations/grid.yaml] [--tables a,b] [--bootstrap 1000] [--json OUT]

Per table: the pooled paired seed sd of the pilot (every pair of its variants), the image part of
the variance (the median over the table's comparisons of the paired image bootstrap's variance of
Δ mIoU, seeds fixed), the seeds a two-sided paired t-test needs to detect --effect mIoU with
--power at --alpha (noncentral t, (V - 1)(n - 1) degrees of freedom for V variants), and the 95%
half-width at 2, 3, 4, 6 and 8 seeds. With --suite: V is that suite's number of variants, and the
training FLOPs of the seeds needed come from `srcr cost` (srcr.suite.cost.variant_cost).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from . import power as pw


@dataclass
class TablePlan:
    table: str
    comparisons: int
    pilot_seeds: int
    n_variants: int  # V of the degrees of freedom (V - 1)(n - 1)
    seed_sd: float  # pooled paired seed sd of Δ mIoU
    image_sd: float  # sqrt of the table's median image part
    seeds_needed: int | None  # None: not reachable (the image part alone is too wide)
    half_widths: dict[int, float]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pilot", required=True, metavar="DIR", help="results/NAME of a finished suite, >= 2 seeds"
    )
    parser.add_argument(
        "--effect", type=float, default=0.5, help="difference to detect, mIoU points (0.5)"
    )
    parser.add_argument("--power", type=float, default=0.8, help="power to detect it (0.8)")
    parser.add_argument(
        "--alpha", type=float, default=0.05, help="two-sided level of the test (0.05)"
    )
    parser.add_argument(
        "--suite", default=None, help="suite config to plan (its tables, grid, variants, FLOPs)"
    )
    parser.add_argument(
        "--grid", default="ablations/grid.yaml", help="variant grid without --suite"
    )
    parser.add_argument(
        "--tables", default=None, help="comma-separated tables (default: the suite's, or all)"
    )
    parser.add_argument(
        "--bootstrap", type=int, default=1000, help="image resamples for the image part (1000)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the image resamples")
    parser.add_argument(
        "--band-width", type=float, default=4, help="trimap width of the layout (px)"
    )
    from ..suite.cost import add_throughput_args

    add_throughput_args(parser)  # GPU-hours with --suite, from a measured rate only
    parser.add_argument("--json", default=None, help="also write the plan as JSON (atomically)")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from ..utils.io import write_json

    _check_levels(args.effect, args.power, args.alpha)
    suite_plan = None
    if args.suite:
        from ..suite.plan import load_plan

        suite_plan = load_plan(args.suite)
    tables = [t.strip() for t in args.tables.split(",") if t.strip()] if args.tables else None
    grid_path = suite_plan.grid.path if suite_plan else Path(args.grid)
    plans = plan_tables(
        Path(args.pilot),
        grid_path,
        tables or (list(suite_plan.tables) if suite_plan else None),
        args.effect,
        args.power,
        args.alpha,
        args.bootstrap,
        args.seed,
        args.band_width,
        len(suite_plan.variants) if suite_plan else None,
        not args.no_progress,
    )
    print(format_plans(plans, args.effect, args.power, args.alpha))
    rate = None
    if suite_plan and (args.throughput is not None or args.images_per_second is not None):
        from ..suite.cost import throughput

        rate = throughput(args)["train_flops_per_s"]
    cost = suite_cost(suite_plan, plans, rate) if suite_plan else None
    if cost:
        print("\n" + cost["text"])
    if args.json:
        write_json(
            args.json,
            {
                "pilot": args.pilot,
                "effect": args.effect,
                "power": args.power,
                "alpha": args.alpha,
                "suite": args.suite,
                "tables": [asdict(p) for p in plans],
                "cost": {k: v for k, v in (cost or {}).items() if k != "text"} or None,
            },
        )
    return 0


def _check_levels(effect: float, power: float, alpha: float) -> None:
    if not effect > 0:
        raise UserError(f"--effect must be a positive difference in mIoU points, got {effect}")
    if not 0 < power < 1:
        raise UserError(f"--power must lie strictly between 0 and 1, got {power}")
    if not 0 < alpha < 1:
        raise UserError(f"--alpha must lie strictly between 0 and 1, got {alpha}")


def check_pilot(pilot: Path, grid) -> None:
    """A pilot of another grid is refused before anything is read, naming every missing variant."""
    from .load import _seed_dirs

    if not pilot.is_dir():
        raise UserError(f"pilot results directory not found: {pilot}")
    needed = list(dict.fromkeys(v for spec in grid.tables.values() for v in spec["variants"]))
    missing = [v for v in needed if not _seed_dirs(pilot / v)]
    if missing:
        raise UserError(
            f"{pilot}: not a pilot of the tables {', '.join(grid.tables)} of {grid.path}: no runs "
            f"of variant(s) {', '.join(missing)} (expected {pilot}/VARIANT/seed<N>/eval/"
            "metrics.json); the pilot must come from the same grid"
        )


def check_seeds(suite, grid) -> None:
    """A pilot needs two seeds of every table variant: one seed measures no seed spread."""
    short = [
        f"{v} (seed {', '.join(map(str, suite.seeds(v)))})"
        for v in dict.fromkeys(v for spec in grid.tables.values() for v in spec["variants"])
        if len(suite.seeds(v)) < 2
    ]
    if short:
        raise UserError(
            f"{suite.root}: srcr plan needs the seed spread, so at least two seeds of every "
            f"variant of the tables; only one seed of: {', '.join(short)}. Run the pilot at two "
            "seeds, e.g. snakemake ... --config 'seeds=[0,1]'"
        )


def plan_tables(
    pilot: Path,
    grid_path: Path,
    tables: list[str] | None,
    effect: float,
    power: float,
    alpha: float,
    n_boot: int = 1000,
    seed: int = 0,
    band_width: float = 4,
    n_variants: int | None = None,
    progress: bool = False,
) -> list[TablePlan]:
    """One TablePlan per table; ``n_variants``: V of the planned suite (default: the pilot's)."""
    from .load import load_grid, load_suite
    from .stats import Statistics, make_layout

    _check_levels(effect, power, alpha)
    grid = load_grid(grid_path, tables)
    check_pilot(pilot, grid)
    suite = load_suite(pilot, grid)
    check_seeds(suite, grid)
    stats = Statistics(suite, make_layout(suite, band_width), n_boot, seed, progress)
    sd, _ = stats.pooled_sd
    if not np.isfinite(sd):
        seeds = "; ".join(f"{v}: {suite.seeds(v)}" for v in suite.runs)
        raise UserError(
            f"{pilot}: no two variants share two seeds ({seeds}); the seed spread is measured "
            "on paired seeds"
        )
    V = n_variants or stats.pooled_design[0]
    i = stats.layout.index("mIoU")
    out = []
    for name, spec in grid.tables.items():
        pairs = spec["twins"] or [
            (v, spec["baseline"]) for v in spec["variants"] if v != spec["baseline"]
        ]
        v_img = (
            float(np.median([stats.image_variance(v, b)[i] for v, b in pairs])) if pairs else 0.0
        )
        pilot_seeds = min(len(suite.seeds(v)) for v in spec["variants"])
        out.append(
            TablePlan(
                name,
                len(pairs),
                pilot_seeds,
                V,
                sd,
                float(np.sqrt(v_img)),
                pw.seeds_needed(effect, sd**2, v_img, V, power, alpha),
                {n: pw.half_width(sd**2, v_img, n, V) for n in pw.PLAN_SEEDS},
            )
        )
    return out


def format_plans(plans: list[TablePlan], effect: float, power: float, alpha: float) -> str:
    import pandas as pd

    rows = [
        {
            "table": p.table,
            "comparisons": p.comparisons,
            "pilot seeds": p.pilot_seeds,
            "seed sd": f"{p.seed_sd:.3f}",
            "image sd": f"{p.image_sd:.3f}",
            f"seeds for Δ {effect:g} at power {power:g}": pw.seeds_text(p.seeds_needed),
            **{f"±95% at {n}": f"{h:.2f}" for n, h in p.half_widths.items()},
        }
        for p in plans
    ]
    V = plans[0].n_variants if plans else 0
    return "\n".join(
        [
            pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True),
            "",
            "seed sd: pooled seed sd of paired Δ mIoU over every pair of variants of the pilot; "
            "image sd: the median over the table's comparisons of the paired image bootstrap's sd "
            "of Δ mIoU (seeds fixed; it does not shrink with more seeds).",
            f"Seeds: the smallest n whose two-sided paired t-test at level {alpha:g} detects a "
            f"true Δ of {effect:g} mIoU with power {power:g} (noncentral t, noncentrality "
            f"Δ / sqrt(sd²/n + image sd²), (V − 1)(n − 1) degrees of freedom with V = {V} "
            "variants). ±95% at n: the half-width of a paired 95% interval over n seeds, "
            "t(0.975, (V − 1)(n − 1)) · sqrt(sd²/n + image sd²).",
        ]
    )


def suite_cost(plan, plans: list[TablePlan], flops_per_s: float | None = None) -> dict:
    """Training cost of the planned suite at the seeds its tables need (the most any table needs),
    from srcr cost's per-run FLOPs; GPU-hours only with a measured training FLOP rate per GPU
    (``flops_per_s``, as srcr cost measures it), never from an assumed one."""
    from ..suite.cost import variant_cost

    rows = []
    for v in plan.variants:
        print(f"counting {v} ...", file=sys.stderr, flush=True)
        rows.append(variant_cost(plan, v))
    per_seed = float(sum(r["train_pflops_per_run"] for r in rows))
    per_seed_h = None if flops_per_s is None else per_seed * 1e15 / flops_per_s / 3600
    needed = [p.seeds_needed for p in plans]
    n = None if any(s is None for s in needed) else max(needed, default=None)
    text = (
        f"{plan.name}: {len(plan.variants)} variants, {per_seed:.4g} PFLOPs of training per seed "
        "(srcr cost: 3 x forward FLOPs per training image)."
    )
    if n is None:
        text += " No seed count reaches the power for every table (see above)."
    else:
        text += f" At {n} seeds (the most any table needs): {n * per_seed:.4g} PFLOPs"
        text += (
            f", {n * per_seed_h:.4g} GPU-hours at the measured rate."
            if per_seed_h is not None
            else "; GPU-hours need a measured throughput (srcr cost)."
        )
    return {
        "suite": plan.name,
        "variants": len(plan.variants),
        "train_pflops_per_seed": per_seed,
        "seeds": n,
        "train_pflops": None if n is None else n * per_seed,
        "gpu_hours_per_seed": per_seed_h,
        "gpu_hours": None if n is None or per_seed_h is None else n * per_seed_h,
        "text": text,
    }
