"""`srcr aggregate`: one row per (variant, seed) of a suite's results, RESULTS/runs.csv.

Reads RESULTS/{variant}/seed{N}/eval/metrics.json, RESULTS/{variant}/seed{N}/summary.json and
RESULTS/flops/{variant}.json. Columns: variant, seed, the headline metrics (aAcc, mIoU, mAcc,
mBF@t for each tolerance, mBIoU, band/interior mIoU at each trimap width), gflops, params_m
(inference model, from srcr flops), iterations, train_time_s, num_images, dataset, srcr_version,
git, machine (device, cpu or gpu, threads, torch); with --latency (a suite's `latency:`) also
srcr bench model's latency_ms and achieved_gflops_per_s from RESULTS/latency/{variant}.json.
With --html, the same table as a self-contained HTML page (the CSV's cells as written), which
Snakemake's --report shows inline.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import UserError

HEADLINE = ("aAcc", "mIoU", "mAcc")


def _read_json(path: Path, what: str) -> dict:
    from ..utils.io import read_json

    return read_json(path, f"{path.name} ({what}); run the suite step that writes it first")


def run_row(results: Path, variant: str, seed: int, latency: bool = False) -> dict:
    from ..utils.machine import describe

    run = results / variant / f"seed{seed}"
    metrics = _read_json(run / "eval" / "metrics.json", "srcr evaluate output")
    summary = _read_json(run / "summary.json", "written by srcr train when it finishes")
    flops = _read_json(results / "flops" / f"{variant}.json", "srcr flops --json output")
    m = metrics["metrics"]
    row: dict = {"variant": variant, "seed": seed}
    row.update({k: m[k] for k in HEADLINE})
    row.update({k: v for k, v in m.items() if k.startswith("mBF@") or k == "mBIoU"})
    for width, t in sorted(m.get("trimap", {}).items(), key=lambda kv: int(kv[0])):
        row[f"band_mIoU@{width}"] = t["band_mIoU"]
        row[f"interior_mIoU@{width}"] = t["interior_mIoU"]
    row.update(
        {
            "gflops": flops["gflops"],
            "params_m": flops["params"] / 1e6,
            "flops_size": "x".join(str(s) for s in flops["size"]),
            "iterations": summary["iterations"],
            "train_time_s": round(summary["train_time_s"], 2),
            "num_images": m["num_images"],
            "dataset": metrics.get("dataset", {}).get("name"),
            "srcr_version": metrics["code_version"].get("srcr"),
            "git": metrics["code_version"].get("git"),
            "machine": describe(summary["machine"]),
        }
    )
    if latency:
        row.update(
            latency_columns(
                _read_json(
                    results / "latency" / f"{variant}.json", "srcr bench model --json output"
                )
            )
        )
    return row


def latency_columns(card: dict) -> dict:
    """srcr bench model's figures beside the GFLOPs (the card's own GFLOPs count its protocol's
    windows and batch), with what they were measured on."""
    from ..utils.machine import chip

    return {
        "latency_ms": card["latency_ms"],
        "achieved_gflops_per_s": card["achieved_gflops_per_s"],
        "latency_batch": card["batch"],
        "latency_dtype": card["dtype"],
        "latency_mode": card["mode"],
        "latency_size": "x".join(str(s) for s in card["size"]),
        "latency_device": chip(card["machine"]),
    }


def aggregate(results: str | Path, variants: list[str], seeds: list[int], latency: bool = False):
    import pandas as pd

    results = Path(results)
    return pd.DataFrame([run_row(results, v, s, latency) for v in variants for s in seeds])


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--results", required=True, help="the suite's results folder (results/NAME)"
    )
    parser.add_argument("--variants", required=True, help="comma-separated variant names")
    parser.add_argument("--seeds", required=True, help="comma-separated seeds")
    parser.add_argument(
        "--out", required=True, help="CSV to write (atomically), e.g. results/NAME/runs.csv"
    )
    parser.add_argument(
        "--html",
        default=None,
        metavar="PATH",
        help="also write the CSV as a self-contained HTML page (for Snakemake's --report)",
    )
    parser.add_argument(
        "--latency",
        action="store_true",
        help="add srcr bench model's figures from RESULTS/latency/VARIANT.json",
    )


def _csv_list(text: str, what: str) -> list[str]:
    items = [s.strip() for s in text.split(",") if s.strip()]
    if not items:
        raise UserError(f"--{what}: expected a comma-separated list, got {text!r}")
    return items


def run(args: argparse.Namespace) -> int:
    from ..utils.io import write_text

    try:
        seeds = [int(s) for s in _csv_list(args.seeds, "seeds")]
    except ValueError:
        raise UserError(f"--seeds: expected integers, got {args.seeds!r}") from None
    df = aggregate(args.results, _csv_list(args.variants, "variants"), seeds, args.latency)
    write_text(args.out, df.to_csv(index=False, float_format="%.4f"))
    if args.html:
        from ..report.html_pages import write_html_twin

        write_html_twin(Path(args.out), Path(args.html))
    print(f"wrote {len(df)} runs to {args.out}", file=sys.stderr)
    return 0
