"""`srcr bench train`: training throughput (images/s) and model FLOP utilisation, side by side for
a config and variants of it.

Each variant runs full training steps (forward, loss, backward, optimiser step; bf16 autocast and
channels_last when the config asks) on a fixed random batch at the training crop size, so
data loading is excluded. Model FLOP utilisation (MFU) = training FLOPs per second / the FLOPs per
second of a plain fp32 matmul measured in the same run, with training FLOPs = 3 x the forward FLOPs
of the training-mode model (fvcore via srcr.flops.count_flops, auxiliary and embedding heads
included) per image x images/s. FLOPs follow fvcore's unit (one multiply-add = one FLOP) on both
sides of the ratio, so MFU does not depend on the convention.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time

import torch.nn as nn

from ..errors import UserError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="YAML config")
    parser.add_argument(
        "--iters", type=int, default=10, help="timed training steps per variant (default 10)"
    )
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config entry for every variant (repeatable)",
    )
    parser.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="K=V[,K=V...]",
        help="a variant: comma-separated overrides on top of the config (repeatable), "
        "e.g. --compare 'model.align=bilinear,model.context=none'",
    )
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")


def run(args: argparse.Namespace) -> int:
    from ..config import apply_overrides, load_config, validate
    from ..engine.distributed import pick_device
    from ..utils.threads import set_threads

    if args.iters < 1 or args.warmup < 0:
        raise UserError("--iters must be >= 1 and --warmup >= 0")
    base = load_config(args.config, args.overrides)
    variants = [("config", base)]
    for spec in args.compare:
        items = [s.strip() for s in _split_overrides(spec) if s.strip()]
        cfg = apply_overrides(base, items)
        validate(cfg, f"--compare {spec!r}")
        variants.append((",".join(items), cfg))
    threads = set_threads(args.threads)
    device = pick_device(args.device)

    matmul = matmul_rate(device)
    print(
        f"device {device} ({threads} threads); fp32 matmul {matmul['n']}x{matmul['n']}: "
        f"{matmul['flops_per_s'] / 1e9:.1f} GFLOP/s (1 multiply-add = 1 FLOP)",
        file=sys.stderr,
    )
    results = []
    for label, cfg in variants:
        r = bench_variant(cfg, device, args.iters, args.warmup)
        r["variant"] = label
        r["mfu"] = r["train_flops_per_s"] / matmul["flops_per_s"]
        results.append(r)
        print(f"  {label}: {r['images_per_s']:.2f} img/s", file=sys.stderr)
    print(format_table(results, matmul))
    if args.json:
        from ..utils.io import write_json

        write_json(
            args.json,
            {"device": str(device), "threads": threads, "matmul": matmul, "variants": results},
        )
    return 0


def _split_overrides(spec: str) -> list[str]:
    """Split 'a=1,b=[1, 2],c=x' at the commas outside brackets and braces."""
    out, depth, cur = [], 0, ""
    for ch in spec:
        if ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return out


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_rate(device, min_seconds: float = 0.5) -> dict:
    """FLOP/s of a square fp32 matmul (n^3 multiply-adds each), TF32 off."""
    import torch

    n = 8192 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    prev = torch.backends.cuda.matmul.allow_tf32 if device.type == "cuda" else None
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
    try:
        torch.mm(a, b)
        _sync(device)
        reps, elapsed = 0, 0.0
        t0 = time.perf_counter()
        while elapsed < min_seconds or reps < 3:
            torch.mm(a, b)
            reps += 1
            _sync(device)
            elapsed = time.perf_counter() - t0
    finally:
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = prev
    return {"n": n, "seconds_per_matmul": elapsed / reps, "flops_per_s": n**3 * reps / elapsed}


class TrainForward(nn.Module):
    """Wraps a Segmentor so that fvcore traces its training-mode forward (all heads)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.m = model

    def forward(self, x):
        self.m.train()  # count_flops puts the wrapper (and so the model) in eval mode
        try:
            out = self.m(x)
        finally:
            self.m.eval()
        return tuple(out[k] for k in sorted(out)) if isinstance(out, dict) else out


def train_forward_flops(model, crop_size) -> tuple[int, str]:
    """Forward FLOPs per image of the training-mode model; falls back to the eval-mode count."""
    import torch

    from ..flops import count_flops

    probe = copy.deepcopy(model).cpu().float()
    # batch 1 where it runs (the counts are linear in the batch: half the work of batch 2);
    # batch 2 where training-mode BatchNorm meets a 1x1 map (PPM's pooled bins)
    for batch in (1, 2):
        try:
            x = torch.zeros(batch, 3, int(crop_size[0]), int(crop_size[1]))
            r = count_flops(TrainForward(probe), inputs=(x,), breakdown=[("model", "m")])
            return int(r["flops"]) // batch, "training-mode forward (all heads)"
        except (UserError, ValueError, RuntimeError):
            continue
    r = count_flops(probe, tuple(crop_size))
    return int(r["flops"]), "eval-mode forward (training heads not counted)"


def bench_variant(cfg: dict, device, iters: int, warmup: int) -> dict:
    import torch

    from ..engine.amp import amp_enabled, autocast
    from ..losses import build_criterion
    from ..models.segmentor import build_model
    from ..optim import apply_lr, build_optimizer

    torch.manual_seed(int(cfg["seed"]))
    tcfg = cfg["train"]
    crop = cfg["data"]["train_pipeline"]["crop_size"]
    batch = int(tcfg["batch_size"])
    num_classes = int(cfg["model"]["num_classes"])
    model = build_model(
        {**cfg["model"], "pretrained": None}
    )  # speed does not depend on the weights
    flops_per_image, counted = train_forward_flops(model, crop)
    model = model.to(device).train()
    channels_last = bool(tcfg["channels_last"])  # as srcr.train: on any device
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    criterion = build_criterion(tcfg["loss"], num_classes).to(device)
    optimizer = build_optimizer(model, tcfg["optimizer"])
    apply_lr(optimizer, 1.0)
    g = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 3, *crop, generator=g).to(device)
    labels = torch.randint(0, num_classes, (batch, *crop), generator=g).to(device)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    # past the contrastive warm-up, so every loss term is computed as in the bulk of training
    iteration = int(tcfg["loss"]["contrastive"]["warmup"])
    gen = torch.Generator(device=device).manual_seed(0)

    def step():
        with autocast(tcfg["amp"], device):
            out = model(images)
        out = {k: v.float() for k, v in out.items()}
        loss, _ = criterion(out, labels, iteration, gen)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    from tqdm import tqdm

    for _ in range(warmup):
        step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in tqdm(
        range(iters), desc="bench train", file=sys.stderr, leave=False, dynamic_ncols=True
    ):
        step()
    _sync(device)
    elapsed = time.perf_counter() - t0
    ips = batch * iters / elapsed
    return {
        "batch_size": batch,
        "crop_size": list(crop),
        "iters": iters,
        "seconds": elapsed,
        "images_per_s": ips,
        "step_ms": 1000 * elapsed / iters,
        "forward_flops_per_image": flops_per_image,
        "flops_counted": counted,
        "train_flops_per_s": 3 * flops_per_image * ips,
        "amp_bf16": amp_enabled(tcfg["amp"], device),
        "channels_last": bool(channels_last),
    }


def format_table(results: list[dict], matmul: dict) -> str:
    base = results[0]["images_per_s"]
    width = max(12, max(len(r["variant"]) for r in results))
    lines = [
        f"{'variant':<{width}}  {'img/s':>9}  {'step ms':>8}  {'fwd GFLOPs/img':>14}  "
        f"{'train GFLOP/s':>13}  {'MFU':>7}  {'vs config':>9}"
    ]
    for r in results:
        lines.append(
            f"{r['variant']:<{width}}  {r['images_per_s']:>9.2f}  {r['step_ms']:>8.1f}  "
            f"{r['forward_flops_per_image'] / 1e9:>14.3f}  {r['train_flops_per_s'] / 1e9:>13.2f}  "
            f"{100 * r['mfu']:>6.2f}%  {r['images_per_s'] / base:>8.2f}x"
        )
    lines.append(
        f"MFU = 3 x forward FLOPs x img/s / fp32 matmul {matmul['n']}^2 rate "
        f"({matmul['flops_per_s'] / 1e9:.1f} GFLOP/s); 1 multiply-add = 1 FLOP; batch "
        f"{results[0]['batch_size']} at {results[0]['crop_size'][0]}x{results[0]['crop_size'][1]}, "
        f"random data (no loading)"
    )
    return "\n".join(lines)


__all__ = [
    "configure",
    "run",
    "bench_variant",
    "matmul_rate",
    "train_forward_flops",
    "format_table",
    "TrainForward",
]
