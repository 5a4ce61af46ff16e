"""`srcr cost`: what a suite costs before it runs: runs, iterations, images, and training FLOPs
(3 x the training-mode forward FLOPs at the training crop, per image, counted by srcr.flops /
fvcore: one multiply-add = one FLOP), per variant and in total.

    srcr cost --suite config/suite_cityscapes.yaml [--json OUT]
"""

from __future__ import annotations

import argparse
import sys

from ..errors import UserError


def variant_cost(plan, variant: str) -> dict:
    from ..bench.train import train_forward_flops
    from ..config import load_config
    from ..models.segmentor import build_model

    import torch

    cfg = load_config(plan.base_config, plan.overrides(variant))
    crop = cfg["data"]["train_pipeline"]["crop_size"]
    torch.manual_seed(0)
    fwd, how = train_forward_flops(build_model({**cfg["model"], "pretrained": None}), crop)
    tcfg = cfg["train"]
    images = int(tcfg["iterations"]) * int(tcfg["batch_size"])
    return {"variant": variant, "crop": "x".join(map(str, crop)), "iterations": int(tcfg["iterations"]),
            "batch": int(tcfg["batch_size"]), "forward_gflops_per_image": fwd / 1e9, "counted": how,
            "train_pflops_per_run": 3 * fwd * images / 1e15}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", required=True, help="suite config (config/suite*.yaml)")
    parser.add_argument("--json", default=None, help="also write the table as JSON (atomically)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from ..config import load_yaml
    from ..utils.io import write_json
    from ..utils.threads import set_threads
    from .plan import make_plan

    set_threads(args.threads)
    raw = load_yaml(args.suite)
    if not isinstance(raw, dict):
        raise UserError(f"{args.suite}: not a suite config mapping")
    raw.setdefault("grid", "ablations/grid.yaml")
    raw.setdefault("resources", {s: {"threads": 1, "mem_mb": 1000, "runtime": 1, "gpu": 0}
                                 for s in ("train", "evaluate", "flops")})
    plan = make_plan(raw)
    rows = []
    for v in plan.variants:
        print(f"counting {v} ...", file=sys.stderr, flush=True)
        rows.append(variant_cost(plan, v))
    df = pd.DataFrame(rows)
    seeds = len(plan.seeds)
    total = df["train_pflops_per_run"].sum() * seeds
    print(df.to_markdown(index=False, floatfmt=".4g"))
    print(f"\n{plan.name}: {len(plan.variants)} variants x {seeds} seed(s) = {len(plan.variants) * seeds} runs, "
          f"{int(df['iterations'].sum()) * seeds} iterations, {total:.4g} PFLOPs of training "
          f"(3 x forward, 1 multiply-add = 1 FLOP)")
    if args.json:
        write_json(args.json, {"suite": args.suite, "runs": len(plan.variants) * seeds,
                               "total_train_pflops": total, "variants": rows})
    return 0
