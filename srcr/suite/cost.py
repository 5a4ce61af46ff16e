"""`srcr cost`: what suites cost before they run: runs, iterations and training FLOPs per variant,
and GPU-hours per seed and in total, with the wall time on a stated number of GPUs.

Training FLOPs = 3 x the forward FLOPs of the training-mode model (the auxiliary and embedding
heads included; srcr.bench.train.train_forward_flops, fvcore: one multiply-add = one FLOP) at the
training crop, per image, x iterations x the batch of the suite's own config (never assumed).

GPU time turns FLOPs into seconds at a rate per GPU: measured, from ``srcr bench gpu``'s JSON
(``--throughput results/bench_gpu/gpu_check.json``) or from ``--images-per-second N``, both the
training images/s per GPU of the paper-scale model (the check's config, or ``--reference``:
config/cityscapes_mscan_s.yaml) at its crop; the rate = 3 x that model's training forward FLOPs
x images/s. Without a measurement it assumes
``--assumed-tflops`` (stated in the output). Every variant is then taken to run at that FLOP
rate (time in proportion to its FLOPs: a lighter variant is not assumed to use the GPU better),
and wall time on ``--gpus`` G GPUs = GPU-hours / G (perfect scaling: the runs share the GPUs, or
each run spreads over them under DDP). Evaluation and GFLOPs counting are left out (small).

    srcr cost [--suite config/suite_cityscapes.yaml ...] [--throughput gpu_check.json |
              --images-per-second N] [--gpus 8] [--json OUT]
"""

from __future__ import annotations

import argparse
import functools
import sys

from ..errors import UserError

PAPER_SUITES = (
    "config/suite_cityscapes.yaml",
    "config/suite_bdd100k.yaml",
    "config/suite_ade20k.yaml",
)
REFERENCE_CONFIG = "config/cityscapes_mscan_s.yaml"
ASSUMED_TFLOPS = 10.0  # a conservative guess per GPU; srcr bench gpu measures it


def variant_cost(plan, variant: str) -> dict:
    from ..config import load_config

    cfg = load_config(plan.base_config, plan.overrides(variant))
    crop = cfg["data"]["train_pipeline"]["crop_size"]
    fwd, how = _train_forward(cfg["model"], crop)
    tcfg = cfg["train"]
    images = int(tcfg["iterations"]) * int(tcfg["batch_size"])
    return {
        "variant": variant,
        "crop": "x".join(map(str, crop)),
        "iterations": int(tcfg["iterations"]),
        "batch": int(tcfg["batch_size"]),
        "forward_gflops_per_image": fwd / 1e9,
        "counted": how,
        "train_pflops_per_run": 3 * fwd * images / 1e15,
    }


def _train_forward(model_cfg: dict, crop) -> tuple[int, str]:
    import json

    return _train_forward_cached(json.dumps(model_cfg, sort_keys=True), tuple(crop))


@functools.cache
def _train_forward_cached(model_json: str, crop: tuple) -> tuple[int, str]:
    # the reference model is also one of the Cityscapes suite's variants: counted once
    import json

    import torch

    from ..bench.train import train_forward_flops
    from ..models.segmentor import build_model

    torch.manual_seed(0)
    return train_forward_flops(build_model({**json.loads(model_json), "pretrained": None}), crop)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--suite",
        action="append",
        default=None,
        help="suite config (repeatable; default: the three paper-scale suites "
        + ", ".join(PAPER_SUITES)
        + ")",
    )
    add_throughput_args(parser)
    parser.add_argument(
        "--assumed-tflops",
        type=float,
        default=ASSUMED_TFLOPS,
        help=f"training TFLOP/s per GPU assumed without a measurement (default {ASSUMED_TFLOPS:g})",
    )
    parser.add_argument("--gpus", type=int, default=8, help="GPUs for the wall time (default 8)")
    parser.add_argument("--json", default=None, help="also write the tables as JSON (atomically)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def add_throughput_args(parser: argparse.ArgumentParser) -> None:
    """--throughput / --images-per-second / --reference: a measured training rate (srcr cost,
    srcr plan)."""
    src = parser.add_mutually_exclusive_group()
    src.add_argument(
        "--throughput",
        default=None,
        metavar="JSON",
        help="srcr bench gpu's gpu_check.json: its measured training images/s per GPU",
    )
    src.add_argument(
        "--images-per-second",
        type=float,
        default=None,
        metavar="N",
        help="measured training images/s per GPU of --reference at its crop",
    )
    parser.add_argument(
        "--reference",
        default=REFERENCE_CONFIG,
        help=f"the config --images-per-second was measured with (default {REFERENCE_CONFIG})",
    )


def run(args: argparse.Namespace) -> int:
    from ..utils.io import write_json
    from ..utils.threads import set_threads

    if (
        args.gpus < 1
        or args.assumed_tflops <= 0
        or (args.images_per_second is not None and args.images_per_second <= 0)
    ):
        raise UserError("--gpus must be >= 1, --assumed-tflops and --images-per-second > 0")
    set_threads(args.threads)
    plans = [_plan(path) for path in (args.suite or PAPER_SUITES)]  # every suite checked first
    rate = throughput(args)
    print(rate["statement"])
    suites = [suite_cost(path, plan, rate["train_flops_per_s"], args.gpus) for path, plan in plans]
    total = sum(s["gpu_hours_total"] for s in suites)
    if len(suites) > 1:
        print(
            f"\nall {len(suites)} suites: {total:,.0f} GPU-hours, {_wall(total / args.gpus)} on "
            f"{args.gpus} GPUs"
        )
    if args.json:
        write_json(
            args.json,
            {"throughput": rate, "gpus": args.gpus, "suites": suites, "gpu_hours_total": total},
        )
    return 0


def _plan(path: str):
    from .plan import load_plan

    return path, load_plan(path)


def throughput(args) -> dict:
    """The training FLOP rate per GPU, where it comes from, and one sentence that says so."""
    if args.throughput is None and args.images_per_second is None:
        rate = args.assumed_tflops * 1e12
        return {
            "source": "assumed",
            "train_flops_per_s": rate,
            "statement": f"ASSUMED, not measured: {args.assumed_tflops:g} TFLOP/s of training "
            f"per GPU "
            f"(1 multiply-add = 1 FLOP; --assumed-tflops); measure it with srcr bench gpu "
            f"and pass --throughput results/bench_gpu/gpu_check.json",
        }
    from ..config import load_config

    ips, where, ref, crop, batch = (
        args.images_per_second,
        "--images-per-second",
        args.reference,
        None,
        None,
    )
    if args.throughput is not None:
        ips, where, ref, crop, batch = _measured(args.throughput)
    cfg = load_config(ref)
    crop = crop or cfg["data"]["train_pipeline"]["crop_size"]
    print(f"counting {ref}'s training forward at {crop[0]}x{crop[1]} ...", file=sys.stderr)
    fwd, _ = _train_forward(cfg["model"], crop)
    rate = 3 * fwd * ips
    at = f", batch {batch} per GPU" if batch else ""
    return {
        "source": where,
        "images_per_s": ips,
        "reference_config": ref,
        "crop": list(crop),
        "train_flops_per_s": rate,
        "statement": f"measured ({where}): {ips:.3g} images/s per GPU of {ref} at "
        f"{crop[0]}x{crop[1]}{at} = {rate / 1e12:.3g} TFLOP/s of training (3 x "
        f"{fwd / 1e9:.1f} GFLOPs per image); every variant assumed to run at that rate",
    }


def _measured(path: str) -> tuple[float, str, str, list, int]:
    from ..utils.io import read_json

    report = read_json(path, "srcr bench gpu's gpu_check.json")
    train = report.get("train") if isinstance(report, dict) else None
    if not isinstance(train, dict) or "images_per_s" not in train:
        raise UserError(f"{path}: no train.images_per_s; expected srcr bench gpu's gpu_check.json")
    if report.get("mode") != "paper scale":
        raise UserError(
            f"{path}: written by a {report.get('mode')!r} run, not a measurement of the "
            f"paper-scale model: run srcr bench gpu without --dry/--tiny on a GPU"
        )
    gpu = (report.get("machine") or {}).get("gpu") or "cpu"
    return (
        float(train["images_per_s"]) / int(train["world_size"]),
        f"{path}, {gpu}",
        str(report["config"]),
        list(train["crop_size"]),
        int(train["batch_per_process"]),
    )


def suite_cost(path: str, plan, flops_per_s: float, gpus: int) -> dict:
    import pandas as pd

    rows = []
    for v in plan.variants:
        print(f"counting {v} ...", file=sys.stderr, flush=True)
        r = variant_cost(plan, v)
        r["gpu_hours_per_run"] = r["train_pflops_per_run"] * 1e15 / flops_per_s / 3600
        rows.append(r)
    df = pd.DataFrame(rows)
    seeds = len(plan.seeds)
    per_seed = float(df["gpu_hours_per_run"].sum())
    pflops = float(df["train_pflops_per_run"].sum()) * seeds
    print(f"\n## {plan.name} ({path})\n")
    print(df.drop(columns=["counted"]).to_markdown(index=False, floatfmt=".4g"))
    counted = sorted(set(df["counted"]))
    print(f"\nforward counted: {'; '.join(counted)}")
    print(
        f"{plan.name}: {len(plan.variants)} variants x {seeds} seed(s) = "
        f"{len(plan.variants) * seeds} runs, "
        f"{int(df['iterations'].sum()) * seeds} iterations, {pflops:.4g} PFLOPs of training "
        f"(3 x forward, 1 multiply-add = 1 FLOP)"
    )
    print(
        f"{plan.name}: {per_seed:,.0f} GPU-hours per seed ({_wall(per_seed / gpus)} on {gpus} "
        f"GPUs); {seeds} seed(s): {per_seed * seeds:,.0f} GPU-hours "
        f"({_wall(per_seed * seeds / gpus)} on {gpus} GPUs)"
    )
    return {
        "suite": path,
        "name": plan.name,
        "runs": len(plan.variants) * seeds,
        "seeds": seeds,
        "total_train_pflops": pflops,
        "gpu_hours_per_seed": per_seed,
        "gpu_hours_total": per_seed * seeds,
        "wall_hours_per_seed": per_seed / gpus,
        "wall_hours_total": per_seed * seeds / gpus,
        "variants": rows,
    }


def _wall(hours: float) -> str:
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"
