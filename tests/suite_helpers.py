"""Helpers of the suite tests: the smoke suite config with overrides, and a fabricated results
tree (metrics.json, summary.json, flops JSON) for runs.csv and tables."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def suite(**over) -> dict:
    cfg = yaml.safe_load((REPO / "config" / "suite_smoke.yaml").read_text())
    cfg.update(base_config=str(REPO / cfg["base_config"]), grid=str(REPO / cfg["grid"]))
    cfg.update(over)
    return cfg


def fabricate(results: Path, miou: dict) -> None:
    """metrics.json / summary.json / flops json for {(variant, seed): mIoU}."""
    for (v, s), m in miou.items():
        run = results / v / f"seed{s}"
        (run / "eval").mkdir(parents=True, exist_ok=True)
        metrics = {
            "aAcc": 90.0,
            "mIoU": m,
            "mAcc": m + 1,
            "mBF@1": 50.0,
            "mBF@3": m / 2,
            "mBF@5": 70.0,
            "mBIoU": 40.0,
            "num_images": 7,
            "trimap": {"4": {"band_mIoU": m - 10, "interior_mIoU": m + 5}},
        }
        (run / "eval" / "metrics.json").write_text(
            json.dumps(
                {
                    "metrics": metrics,
                    "dataset": {"name": "synthetic"},
                    "code_version": {"srcr": "0.1.0", "git": "abc"},
                }
            )
        )
        (run / "summary.json").write_text(
            json.dumps(
                {
                    "iterations": 600,
                    "train_time_s": 61.5,
                    "params": 123,
                    "machine": {
                        "cpu": "TestCPU",
                        "cores": 2,
                        "device": "cpu",
                        "gpu": None,
                        "threads": 1,
                        "torch": "2.x",
                    },
                }
            )
        )
        (results / "flops").mkdir(exist_ok=True)
        (results / "flops" / f"{v}.json").write_text(
            json.dumps({"gflops": 0.5 if v == "a" else 0.6, "params": 540000, "size": [128, 256]})
        )
