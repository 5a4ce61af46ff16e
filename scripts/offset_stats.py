"""Offset statistics of finished runs, as `srcr report` computes them (srcr.report.offsets): per
run, its mIoU, and per alignment step the offsets it samples with: median length in fine-grid px
and as % of the map's short side, % of sampling points outside the map, and offset correctness
(learned vs zero offsets). The offset-layer lr measurement of docs/calibration.md.

    python scripts/offset_stats.py results/lrmult1/srm_crm/seed0 results/lrmult01/srm_crm/seed0 ...
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from srcr.report.offsets import PRIMARY, STEPS, run_correctness, run_geometry  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "runs", nargs="+", help="run folders (with eval/metrics.json and eval/offsets.npz)"
    )
    for run in map(Path, ap.parse_args().runs):
        record = json.loads((run / "eval" / "metrics.json").read_text())
        align = record["config"]["model"]["align"]
        num_classes = record["config"]["model"]["num_classes"]
        kind = PRIMARY[align]
        geo = run_geometry(run / "eval" / "offsets.npz")
        oc = run_correctness(run / "eval" / "offsets.npz", align, num_classes)
        print(f"{run}: mIoU {record['metrics']['mIoU']:.2f}, {kind} offsets")
        for step in STEPS:
            g, c = geo[(step, kind)], oc[(step, kind)]
            print(
                f"  {step}: median {g['median_px']:.2f} px ({g['median_rel']:.0f}% of the short side), "
                f"p90 {g['p90_px']:.2f} px, outside {g['outside']:.1f}%, "
                f"correct {c[0]:.1f}% (zero offsets {c[1]:.1f}%)"
            )


if __name__ == "__main__":
    main()
