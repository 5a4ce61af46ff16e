"""Seed spread of a few variants, as the default suite would train them: the lever measurements of
docs/calibration.md. Trains and evaluates every (variant, seed) with the released `srcr train` and
`srcr evaluate` (two at a time, one thread each; finished runs are kept and reused), then prints
each variant's mIoU per seed and seed sd, every paired difference, and the seed sd of paired
differences pooled over all pairs, as `srcr report` pools it (docs/statistics.md).

    python scripts/seed_spread.py --out results/spread --variants bilinear_none,srm_crm,srm_dam \\
        --seeds 0,1,2,3 [--set KEY=VALUE ...]

Each run gets exactly the overrides the suite's train rule gives it (srcr.suite.plan: the suite's
`set` and `data_root`, the variant's, its pretraining checkpoint, the seed; config/suite.yaml by
default, whose checkpoint `snakemake --cores 2` or its pretrain rule writes first); each --set is
applied after them, e.g. --set train.iterations=150.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from srcr.config import load_yaml  # noqa: E402
from srcr.report.stats import pooled_paired_variance  # noqa: E402
from srcr.suite.plan import make_plan  # noqa: E402


def train_and_evaluate(base_config: str, run: Path, sets: list[str]) -> float:
    metrics = run / "eval" / "metrics.json"
    if not metrics.exists():
        run.parent.mkdir(parents=True, exist_ok=True)
        common = ["--threads", "1", "--device", "cpu"]
        with open(f"{run}.log", "w") as log:
            t0 = time.time()
            subprocess.run(
                [
                    "srcr",
                    "train",
                    "--config",
                    base_config,
                    "--out",
                    str(run),
                    "--no-progress",
                    *common,
                    *sets,
                ],
                cwd=REPO,
                check=True,
                stdout=log,
                stderr=log,
            )
            t1 = time.time()
            subprocess.run(
                [
                    "srcr",
                    "evaluate",
                    "--config",
                    base_config,
                    "--checkpoint",
                    str(run / "checkpoints" / "final.pth"),
                    "--out",
                    str(run / "eval"),
                    *common,
                    *sets,
                ],
                cwd=REPO,
                check=True,
                stdout=log,
                stderr=log,
            )
        print(f"{run}: train {t1 - t0:.0f} s, evaluate {time.time() - t1:.0f} s", flush=True)
    return float(json.loads(metrics.read_text())["metrics"]["mIoU"])


def report(miou: dict, variants: list[str], seeds: list[int]) -> None:
    for v in variants:
        xs = [miou[v, s] for s in seeds]
        print(
            f"  {v:22s} "
            + " ".join(f"{x:6.2f}" for x in xs)
            + f"   mean {np.mean(xs):.2f}  seed sd {np.std(xs, ddof=1):.2f}"
        )
    for u, w in itertools.combinations(variants, 2):
        d = np.array([miou[u, s] - miou[w, s] for s in seeds])
        print(f"  {u} - {w}: " + " ".join(f"{x:+.2f}" for x in d) + f"   mean {d.mean():+.2f}")
    # the report's estimator, with the residual dof of the variant + seed model, (V - 1)(S - 1)
    runs = {v: {s: np.array([miou[v, s]]) for s in seeds} for v in variants}
    s2, dof, _ = pooled_paired_variance(runs)
    print(
        f"  pooled seed sd of paired differences: {np.sqrt(s2[0]):.3f} "
        f"({dof[0]:.0f} degrees of freedom)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="folder for the runs (one per variant and seed)")
    ap.add_argument(
        "--variants", required=True, help="comma-separated variants of ablations/grid.yaml"
    )
    ap.add_argument("--seeds", default="0,1,2,3", help="comma-separated seeds (at least 2)")
    ap.add_argument(
        "--set",
        dest="extra",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an override after the suite's (repeatable)",
    )
    ap.add_argument("--suite", default=str(REPO / "config" / "suite.yaml"))
    args = ap.parse_args()
    out, suite = Path(args.out).resolve(), Path(args.suite).resolve()
    os.chdir(REPO)  # the suite config's paths are relative to the repository
    plan = make_plan(load_yaml(suite))
    variants, seeds = args.variants.split(","), [int(s) for s in args.seeds.split(",")]
    unknown = [v for v in variants if v not in plan.grid.variants]
    if unknown or len(seeds) < 2:
        sys.exit(
            f"seed_spread: unknown variant(s) {unknown} (see {plan.grid.path})"
            if unknown
            else "seed_spread: --seeds needs at least two seeds"
        )
    jobs = [(v, s) for s in seeds for v in variants]
    t0 = time.time()
    with ThreadPoolExecutor(2) as pool:
        values = list(
            pool.map(
                lambda vs: train_and_evaluate(
                    plan.base_config,
                    out / vs[0] / f"seed{vs[1]}",
                    [a for o in plan.overrides(*vs) + args.extra for a in ("--set", o)],
                ),
                jobs,
            )
        )
    print(
        f"== {len(jobs)} runs in {time.time() - t0:.0f} s; overrides after the suite's: {args.extra or 'none'}"
    )
    report(dict(zip(jobs, values)), variants, seeds)


if __name__ == "__main__":
    main()
