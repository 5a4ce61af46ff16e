"""Checks that a results tree is what its tables claim, before any statistics run: each run's
per-image counts reproduce its own metrics.json (a per_image.npz copied over another seed's would
otherwise pass for that seed), and every variant of a table has the same seeds (a deleted run
would otherwise shrink one variant's mean to fewer seeds without a word)."""

from __future__ import annotations

import math
import sys

from ..errors import UserError

# the metrics.json figures recomputed from per_image.npz (percent; float32-safe tolerance)
CHECKED = ("aAcc", "mIoU", "mAcc", "mBF@3")
TOLERANCE = 1e-4


def _differs(recorded, again) -> bool:
    a = float("nan") if recorded is None else float(recorded)
    b = float("nan") if again is None else float(again)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) != math.isnan(b)
    return abs(a - b) > TOLERANCE * max(1.0, abs(a))


def check_counts(suite) -> None:
    """A UserError naming the per_image.npz whose counts do not give its metrics.json figures."""
    from ..metrics.summary import summarize

    for variant, seeds in suite.runs.items():
        for seed, run in seeds.items():
            recorded = run.metrics_json.get("metrics", {})
            again = summarize(run.counts, run.eval_config)
            bad = [
                f"{k} {recorded[k]} recorded, {again[k]:.4f} from the counts"
                for k in CHECKED
                if k in recorded and k in again and _differs(recorded[k], again[k])
            ]
            if bad:
                ev = run.dir / "eval"
                raise UserError(
                    f"{ev / 'per_image.npz'} does not reproduce {ev / 'metrics.json'} "
                    f"({'; '.join(bad)}): the two files come from different "
                    f"evaluations (copied or mixed up?); re-run srcr evaluate for "
                    f"{variant} seed {seed}"
                )


def missing_seeds(suite, grid) -> dict[str, list[str]]:
    """{table: ["VARIANT seed(s) S (path)", ...]} for each table with a variant that lacks a seed
    found for any variant of the selected tables (a seed lost by every variant of one table is
    still seen in the others)."""
    out: dict[str, list[str]] = {}
    selected = {v for spec in grid.tables.values() for v in spec["variants"] if v in suite.runs}
    seeds = sorted({s for v in selected for s in suite.runs[v]})
    for name, spec in grid.tables.items():
        variants = [v for v in spec["variants"] if v in suite.runs]
        gaps = []
        for v in variants:
            lacking = [s for s in seeds if s not in suite.runs[v]]
            if lacking:
                gaps.append(
                    f"{v} seed(s) {', '.join(map(str, lacking))} "
                    f"({suite.root / v}/seed{lacking[0]}/eval/metrics.json)"
                )
        if gaps:
            out[name] = gaps
    return out


def check_seeds(suite, grid, allow_missing: bool = False) -> dict[str, list[str]]:
    """Refuse tables whose variants lack seeds that others have (naming each missing run), or with
    ``allow_missing`` warn and return {table: [note]} for the notes under each such table."""
    gaps = missing_seeds(suite, grid)
    if not gaps:
        return {}
    lines = [f"table '{t}': {g}" for t, gs in gaps.items() for g in gs]
    if not allow_missing:
        raise UserError(
            f"{suite.root}: variants of a table must share their seeds (means over "
            f"other seeds are no comparison); missing runs:\n  "
            + "\n  ".join(lines)
            + "\nrun them, or pass --allow-missing to report what exists (noted under "
            "each table)"
        )
    print(
        f"warning: {suite.root}: missing runs (--allow-missing):\n  " + "\n  ".join(lines),
        file=sys.stderr,
    )
    return {
        t: [
            f"Missing runs (--allow-missing): {'; '.join(g.split(' (')[0] for g in gs)}; "
            f"these variants' figures use fewer seeds than the others'."
        ]
        for t, gs in gaps.items()
    }
