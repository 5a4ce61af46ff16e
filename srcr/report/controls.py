"""Control tables: each handicapped variant against its uncorrupted twin (a grid table with
``twins``). The first pair's loss is the whole handicap (bilinear upsampling cannot undo it);
every other pair's recovery is the share of that loss its module wins back:

    recovered = 1 - Δ_module / Δ_reference,    Δ = mIoU(handicapped) - mIoU(clean), paired by seed.

A control shows that the suite detects an effect that is known to be there; it is not a module of
the paper and stays out of the paper tables and their figures.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .stats import METHOD_TEXT, Statistics
from .tables import (
    EXCLUDED_NOTE,
    Table,
    _diff_cell,
    _mean_sd,
    _num,
    diff_columns,
    marks,
    multiplicity_note,
    seed_notes,
)


def build_control_table(
    stats: Statistics, name: str, spec: dict, adjust: str | None = None
) -> Table:
    """``adjust``: None or "holm" (significance after Holm's correction over the table's pairs)."""
    suite, lay = stats.suite, stats.layout
    i = lay.index("mIoU")
    diffs = [(hand, clean, stats.diff(hand, clean)) for hand, clean in spec["twins"]]
    sig = marks([d for _, _, d in diffs], i, adjust)
    ref = diffs[0][2].point[i]
    rows, shown = [], []
    for (hand, clean, d), mark in zip(diffs, sig):
        (mc, sc), (mh, sh) = stats.mean_sd(clean), stats.mean_sd(hand)
        n = d.n_seeds
        recovered = 100.0 * (1.0 - d.point[i] / ref) if ref < 0 else float("nan")
        rows.append(
            {
                "table": name,
                "suite": suite.name,
                "clean": clean,
                "handicapped": hand,
                "align": suite.runs[clean][suite.seeds(clean)[0]].align,
                "n_seeds": n,
                "n_images": stats.n_images,
                "mIoU_clean": mc[i],
                "mIoU_clean_sd": sc[i],
                "mIoU_handicapped": mh[i],
                "mIoU_handicapped_sd": sh[i],
                **diff_columns(d, "mIoU", i, mark if adjust else None),
                "recovered_pct": recovered,
                "method": d.method,
            }
        )
        shown.append(
            {
                "alignment": rows[-1]["align"],
                "clean": clean,
                "handicapped": hand,
                "seeds": str(n),
                "mIoU clean": _mean_sd(mc[i], sc[i], n),
                "mIoU handicapped": _mean_sd(mh[i], sh[i], n),
                "Δ mIoU [95% CI]": _diff_cell(d, i, mark),
                "handicap recovered": "reference"
                if hand == diffs[0][0]
                else f"{_num(recovered, 0)}%",
            }
        )
    halves = [float(d.half_width[i]) for _, _, d in diffs]
    notes = _notes(stats, spec, diffs, float(np.median(halves)), adjust)
    return Table(
        name,
        suite.name,
        spec.get("title", name),
        pd.DataFrame(rows),
        pd.DataFrame(shown),
        notes,
        float(np.median(halves)),
    )


def _notes(stats: Statistics, spec: dict, diffs: list, sdd: float, adjust: str | None) -> list[str]:
    suite = stats.suite
    hand0, clean0, _ = diffs[0]
    desc = suite.grid.variants[hand0].get("description", "")
    methods = sorted({d.method for _, _, d in diffs})
    notes = [
        f"Dataset: {suite.dataset.get('name', suite.name)} ({stats.n_images} images). A control, not a paper "
        f"table: {desc}.",
        "Δ: handicapped minus clean twin, paired by seed, with its 95% interval; a significant negative Δ means "
        "the suite detects the handicap. n.s. = the interval contains zero.",
        f"Handicap recovered: 1 − Δ / Δ({hand0} vs {clean0}), the share of the reference pair's loss the module "
        "wins back (a point estimate; 100% = the handicap costs it nothing).",
        "Intervals: "
        + "; ".join(METHOD_TEXT[m] for m in methods)
        + f" ({stats.B} resamples). Median "
        f"95% half-width of Δ mIoU: {_num(sdd)}. "
        + multiplicity_note(len(diffs), adjust, "comparisons of a variant to its twin"),
        EXCLUDED_NOTE,
    ]
    return notes + seed_notes(stats, [d for _, _, d in diffs])
