"""`srcr bench gpu`: the GPU acceptance check, one command. Before a paper-scale suite starts on
GPUs it checks, on a Cityscapes-layout fixture at full resolution (2 train + 2 val images of
1024x2048, written under OUT/data by srcr.data.fixtures):

- training: the paper-scale model of config/cityscapes_mscan_s.yaml (MSCAN-S + SRM + CRM, the
  auxiliary and embedding heads, cross-entropy + contrastive loss from the first iteration) at
  1024x1024 crops, batch 2 per GPU, bf16 autocast, channels-last, fused AdamW, through srcr.train's
  own step; images/s, peak memory, the step split into data / forward / backward / optimiser, and
  a loss that is finite and decreasing over --iters (50) iterations;
- DDP: the same under ``torchrun --nproc_per_node 1`` (a process group of one: NCCL on CUDA,
  DistributedDataParallel, SyncBN);
- evaluation: srcr evaluate's slide inference and metrics on the two 1024x2048 images;
- forward throughput: srcr bench model's card (whole 1024x2048 image, batch 1, fp32 and bf16):
  latency beside the counted GFLOPs, as achieved TFLOP/s.

It writes OUT/gpu_check.json and OUT/gpu_check.md (also printed) and exits 1 if a check fails.
``--dry`` (= ``--device cpu --tiny``) runs the same code at tiny sizes (tiny MSCAN, 64x128 images,
32x32 crops, 10 iterations) with bf16 autocast on the CPU; the tests run it
(tests/test_bench_gpu.py).

    srcr bench gpu [--out results/bench_gpu] [--iters 50]      # on a GPU
    srcr bench gpu --dry --out /tmp/gpu_dry                    # anywhere, in about a minute
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from ..errors import UserError

FULL = {"image": (1024, 2048), "per_split": 2, "iters": 50, "repeats": 10}
TINY = {"image": (64, 128), "per_split": 2, "iters": 10, "repeats": 3}
TINY_OVERRIDES = [
    "model.backbone=mscan_t",
    "model.backbone_options={embed_dims: [8, 16, 16, 16], depths: [1, 1, 1, 1], "
    "drop_path_rate: 0.0}",
    "model.fpn_dim=8",
    "model.embed_dim=8",
    "data.num_workers=0",
    "train.optimizer.lr=1e-3",
    "data.train_pipeline={scale: [64, 128], ratio_range: [0.5, 2.0], crop_size: [32, 32]}",
    "eval.crop_size=[32, 32]",
    "eval.stride=[24, 24]",
    "train.loss.contrastive={warmup: 0, max_samples: 64, max_views: 8}",
]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", default="results/bench_gpu", help="folder for the fixture and the results"
    )
    parser.add_argument(
        "--config", default="config/cityscapes_mscan_s.yaml", help="the paper-scale config"
    )
    parser.add_argument(
        "--iters", type=int, default=None, help="training iterations (default 50; tiny 10)"
    )
    parser.add_argument(
        "--warmup", type=int, default=3, help="first iterations left out of the timings (default 3)"
    )
    parser.add_argument(
        "--batch-per-gpu", type=int, default=2, help="images per process (default 2)"
    )
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument(
        "--tiny", action="store_true", help="tiny model and images (the dry rehearsal)"
    )
    parser.add_argument("--dry", action="store_true", help="--device cpu --tiny")
    parser.add_argument("--no-ddp", action="store_true", help="skip the torchrun phase")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--phase", default=None, choices=["ddp"], help=argparse.SUPPRESS
    )  # torchrun worker


def run(args: argparse.Namespace) -> int:
    from ..utils.threads import set_threads

    if args.dry:
        args.device, args.tiny = "cpu", True
    sizes = TINY if args.tiny else FULL
    iters = args.iters if args.iters is not None else sizes["iters"]
    if iters < 2 or args.warmup < 0 or args.warmup >= iters or args.batch_per_gpu < 1:
        raise UserError(
            f"--iters must be >= 2, --warmup in [0, iters) and --batch-per-gpu >= 1; got "
            f"iters {iters}, warmup {args.warmup}, batch {args.batch_per_gpu}"
        )
    out = Path(args.out)
    set_threads(args.threads)
    if args.phase == "ddp":
        return _ddp_worker(args, out, iters)
    device = _device(args.device, args.tiny)
    cfg = check_config(args.config, out, args.tiny, iters, args.batch_per_gpu)
    report = acceptance_check(args, cfg, out, device, iters, sizes)
    _write_report(out, report)
    failed = [c["name"] for c in report["checks"] if not c["ok"]]
    if failed:
        print(
            f"srcr bench gpu: FAILED: {', '.join(failed)} (see {out / 'gpu_check.md'})",
            file=sys.stderr,
        )
        return 1
    return 0


def _device(device: str, tiny: bool):
    import torch

    from ..engine.distributed import pick_device

    if device == "auto" and not torch.cuda.is_available() and not tiny:
        raise UserError(
            "no CUDA device: run srcr bench gpu on a GPU, or --dry for the tiny CPU rehearsal "
            "(--device cpu runs the paper scale on the CPU: hours)"
        )
    return pick_device(device)


def fixture_root(out: Path, tiny: bool) -> Path:
    return out / "data" / ("cityscapes_tiny" if tiny else "cityscapes")


def check_config(
    path: str, out: Path, tiny: bool, iters: int, batch_per_gpu: int, world_size: int = 1
) -> dict:
    """The paper-scale config with the check's settings: the fixture, the batch, the iterations,
    bf16 autocast, the contrastive loss from the first iteration, no pretrained weights."""
    from ..config import load_config

    over = [
        f"data.root={fixture_root(out, tiny)}",
        "model.pretrained=null",
        f"train.batch_size={batch_per_gpu * world_size}",
        f"train.iterations={iters}",
        f"train.schedule.warmup_iters={max(1, iters // 10)}",
        "train.amp=always",
        "train.channels_last=true",
        "train.loss.contrastive.warmup=0",
    ]
    cfg = load_config(path, over + (TINY_OVERRIDES if tiny else []))
    if cfg["data"]["dataset"] != "cityscapes":
        raise UserError(
            f"{path}: data.dataset is {cfg['data']['dataset']!r}; the check's fixture is "
            f"Cityscapes: give a Cityscapes config"
        )
    return cfg


def acceptance_check(args, cfg: dict, out: Path, device, iters: int, sizes: dict) -> dict:
    from ..data.fixtures import ensure_cityscapes_fixture
    from ..engine.distributed import DistContext
    from ..utils.machine import machine_info
    from .gpu_phases import eval_phase, forward_phase, train_phase

    say = _progress()
    say(f"fixture: {sizes['per_split']}+{sizes['per_split']} Cityscapes images of {sizes['image']}")
    ensure_cityscapes_fixture(fixture_root(out, args.tiny), sizes["per_split"], sizes["image"])
    report: dict = {
        "mode": "tiny (dry rehearsal)" if args.tiny else "paper scale",
        "config": str(args.config),
        "machine": machine_info(device),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "image_size": list(sizes["image"]),
        "checks": [],
    }
    say(f"training: {iters} iterations on {device}")
    train, model = _guard(
        report,
        "training",
        lambda: train_phase(cfg, DistContext(device=device), args.warmup, out / "train"),
    )
    if train is not None:
        report["train"] = train
        _check_training(report, "training", train)
        say("evaluation: slide inference and metrics")
        ev = _guard(
            report, "evaluation", lambda m=model: (eval_phase(cfg, m, out / "train", device), None)
        )[0]
        if ev is not None:
            report["eval"] = ev
            _check(
                report,
                "evaluation",
                ev["images"] == sizes["per_split"],
                f"{ev['images']} images scored",
            )
    del model
    _release(device)  # the torchrun process needs the GPU memory this one's allocator keeps cached
    if not args.no_ddp:
        say("DDP: torchrun --nproc_per_node 1")
        ddp = _guard(report, "ddp", lambda: (_run_ddp(args, out, iters, device), None))[0]
        if ddp is not None:
            report["ddp"] = ddp
            _check_training(report, "ddp", ddp)
            _check(
                report,
                "ddp wrapping",
                ddp["ddp"] and ddp["sync_bn"],
                f"DistributedDataParallel {ddp['ddp']}, SyncBN {ddp['sync_bn']}",
            )
    say("forward: whole image, fp32 and bf16")
    fwd = _guard(
        report,
        "forward",
        lambda: (
            forward_phase(cfg, sizes["image"], device, sizes["repeats"], 3 if not args.tiny else 1),
            None,
        ),
    )[0]
    if fwd is not None:
        report["forward"] = fwd
        _check(
            report, "forward", all(c["latency_ms"] > 0 for c in fwd), "fp32 and bf16 forwards ran"
        )
    return report


def _release(device) -> None:
    import gc

    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _progress():
    t0 = time.perf_counter()

    def say(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:7.1f} s] bench gpu: {msg}", file=sys.stderr, flush=True)

    return say


def _guard(report: dict, name: str, fn):
    """Run a phase; an exception fails its check (with the error) instead of the whole command."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - every failure of a phase is a finding of the check
        _check(
            report, name, False, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        )
        return None, None


def _check(report: dict, name: str, ok: bool, detail: str) -> None:
    report["checks"].append({"name": name, "ok": bool(ok), "detail": detail})


def _check_training(report: dict, name: str, t: dict) -> None:
    loss = t["loss"]
    _check(
        report,
        f"{name} loss",
        loss["decreasing"],
        f"finite {loss['finite']}; mean of the first {loss['window']} {loss['first_mean']:.4f}, "
        f"of the last {loss['window']} {loss['last_mean']:.4f}",
    )
    _check(
        report,
        f"{name} settings",
        t["bf16_autocast"] and t["channels_last"] and t["fused_optimizer"],
        f"bf16 autocast {t['bf16_autocast']}, channels-last {t['channels_last']}, "
        f"fused {t['optimizer']} {t['fused_optimizer']}",
    )


def _run_ddp(args, out: Path, iters: int, device) -> dict:
    """The training phase again, in a torchrun job of one process; its figures from OUT/ddp.json."""
    from ..utils.io import read_json

    result = out / "ddp.json"
    result.unlink(missing_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nnodes=1",
        "--nproc_per_node=1",
        "-m",
        "srcr.cli",
        "bench",
        "gpu",
        "--phase",
        "ddp",
        "--out",
        str(out),
        "--config",
        str(args.config),
        "--device",
        device.type,
        "--iters",
        str(iters),
        "--warmup",
        str(args.warmup),
        "--batch-per-gpu",
        str(args.batch_per_gpu),
    ] + (["--tiny"] if args.tiny else [])
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not result.is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"torchrun exited with {proc.returncode}: " + " | ".join(tail))
    return read_json(result, "the torchrun phase's result")


def _ddp_worker(args, out: Path, iters: int) -> int:
    from ..engine.distributed import cleanup, init_distributed
    from ..utils.io import write_json
    from .gpu_phases import train_phase

    ctx = init_distributed(args.device, group=True)
    if not ctx.grouped:
        raise UserError("--phase ddp runs under torchrun (srcr bench gpu starts it)")
    try:
        cfg = check_config(args.config, out, args.tiny, iters, args.batch_per_gpu, ctx.world_size)
        result, _ = train_phase(cfg, ctx, args.warmup, out / "ddp")
        result["backend"] = __import__("torch").distributed.get_backend()
        if ctx.is_main:
            write_json(out / "ddp.json", result)
    finally:
        cleanup(ctx)
    return 0


def _write_report(out: Path, report: dict) -> None:
    from ..utils.io import write_json, write_text
    from .gpu_summary import format_summary

    text = format_summary(report)
    write_json(out / "gpu_check.json", report)
    write_text(out / "gpu_check.md", text)
    print(text, end="")


__all__ = ["configure", "run", "check_config", "acceptance_check", "TINY_OVERRIDES"]
