"""The measured phases of `srcr bench gpu` (srcr.bench.gpu): training steps through srcr.train's
own step (its model, SyncBN/DDP wrapping, optimiser, loader and autocast), evaluation through
srcr.evaluate, and the forward card of srcr.bench.model. One function per phase, each returning
a JSON-able dict; the DDP phase is the training phase run under torchrun."""

from __future__ import annotations

import math
import statistics
import time
from pathlib import Path

PHASES = ("data", "forward", "backward", "optimiser")


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


class PhaseClock:
    """The ``clock`` of srcr.train._train_step: seconds of each phase of one step, the device
    synchronised at each boundary so that a phase's kernels count in that phase."""

    def __init__(self, device):
        self.device = device
        self.split: dict[str, float] = {}
        self.last = time.perf_counter()

    def __call__(self, phase: str) -> None:
        _sync(self.device)
        now = time.perf_counter()
        self.split[phase] = now - self.last
        self.last = now


def loss_trend(losses: list[float]) -> dict:
    """Finite, and the mean of the last fifth below that of the first fifth."""
    k = max(1, len(losses) // 5)
    first, last = statistics.fmean(losses[:k]), statistics.fmean(losses[-k:])
    finite = all(math.isfinite(v) for v in losses)
    return {
        "finite": finite,
        "first_mean": first,
        "last_mean": last,
        "window": k,
        "decreasing": finite and last < first,
    }


def train_phase(cfg: dict, ctx, warmup: int, out: Path) -> tuple[dict, object]:
    """``train.iterations`` steps of srcr.train on ``cfg``'s data; the figures and the model."""
    import torch
    from torch.nn.parallel import DistributedDataParallel

    from ..engine.amp import amp_enabled
    from ..engine.distributed import CPUSyncBatchNorm
    from ..losses import build_criterion
    from ..train import _build_run, _make_loader, _set_determinism, _train_step, build_train_dataset
    from .model import peak_memory_mb

    tcfg = cfg["train"]
    iters = int(tcfg["iterations"])
    _set_determinism(ctx)
    dataset = build_train_dataset(cfg, ctx)
    run = _build_run(cfg, ctx, build_criterion(tcfg["loss"], cfg["model"]["num_classes"]))
    loader = iter(_make_loader(dataset, cfg, ctx, 0))
    _reset_peak(ctx.device)
    steps, terms = [], []
    try:
        for it in range(iters):
            clock = PhaseClock(ctx.device)
            batch = next(loader)
            terms.append(
                _train_step(run, cfg, ctx, batch, it, None, out / "checkpoints", clock=clock)
            )
            steps.append(clock.split)
    finally:
        del loader
    timed = steps[warmup:] or steps
    step_s = statistics.fmean(sum(s.values()) for s in timed)
    memory, what = peak_memory_mb(ctx.device)
    per_process = int(tcfg["batch_size"]) // ctx.world_size
    norms = (torch.nn.SyncBatchNorm, CPUSyncBatchNorm)
    result = {
        "iterations": iters,
        "timed_iterations": len(timed),
        "world_size": ctx.world_size,
        "batch_per_process": per_process,
        "crop_size": list(cfg["data"]["train_pipeline"]["crop_size"]),
        "images_per_s": per_process * ctx.world_size / step_s,
        "step_ms": 1e3 * step_s,
        "phase_ms": {p: 1e3 * statistics.fmean(s[p] for s in timed) for p in PHASES},
        "peak_memory_mb": memory,
        "peak_memory_measures": what,
        "losses": [t["loss"] for t in terms],
        "last_terms": terms[-1],
        "loss": loss_trend([t["loss"] for t in terms]),
        "bf16_autocast": amp_enabled(tcfg["amp"], ctx.device),
        "channels_last": bool(tcfg["channels_last"]),
        "fused_optimizer": bool(run.optimizer.defaults.get("fused")),
        "optimizer": type(run.optimizer).__name__,
        "ddp": isinstance(run.train_model, DistributedDataParallel),
        "sync_bn": any(isinstance(m, norms) for m in run.model.modules()),
    }
    return result, run.model


def eval_phase(cfg: dict, model, out: Path, device) -> dict:
    """srcr evaluate of ``model``'s weights (saved as a checkpoint) on the validation split."""
    from .. import __version__
    from ..engine.checkpoint import save_final
    from ..evaluate import evaluate
    from .model import peak_memory_mb

    ckpt = save_final(
        out / "checkpoints",
        {
            "model": model.state_dict(),
            "config": cfg,
            "iteration": int(cfg["train"]["iterations"]),
            "srcr_version": __version__,
        },
    )
    _reset_peak(device)
    t0 = time.perf_counter()
    record = evaluate(cfg, ckpt, out / "eval", device=device.type, progress=False)
    _sync(device)
    wall = time.perf_counter() - t0
    memory, what = peak_memory_mb(device)
    n = record["dataset"]["num_images"]
    return {
        "images": n,
        "mode": record["inference"]["mode"],
        "crop_size": record["inference"]["crop_size"],
        "stride": record["inference"]["stride"],
        "seconds": wall,
        "seconds_per_image": wall / n,
        "inference_and_scoring_s": record["seconds"],
        "mIoU": record["metrics"]["mIoU"],
        "peak_memory_mb": memory,
        "peak_memory_measures": what,
    }


def forward_phase(cfg: dict, size, device, repeats: int, warmup: int) -> list[dict]:
    """srcr bench model's card, whole image at ``size``, batch 1, in fp32 and bf16 autocast."""
    from .model import bench_model

    cards = []
    for dtype in ("fp32", "bf16"):
        card = bench_model(cfg, size, 1, dtype, "whole", repeats, warmup, device)
        card["achieved_tflops_per_s"] = card["achieved_gflops_per_s"] / 1e3
        card.pop("latency_runs_ms")
        cards.append(card)
    return cards


__all__ = ["train_phase", "eval_phase", "forward_phase", "loss_trend", "PhaseClock", "PHASES"]
